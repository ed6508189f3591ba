//! Generation work → a fixed number of plain threads, behind a bounded waiting line.
//!
//! The model runs synchronously; the HTTP side only hands closures over and awaits their
//! answers. A request that finds the line full is refused at once (503) rather than left to
//! time out, and background jobs enter without the bound because they are already queued on
//! disk.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// A unit of work for a generation thread.
type Task = Box<dyn FnOnce() + Send + 'static>;

/// The line is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Full;

/// Generation threads and their waiting line.
pub(crate) struct Pool {
    sender: Mutex<Option<mpsc::Sender<Task>>>,
    waiting: Arc<AtomicUsize>,
    running: Arc<AtomicUsize>,
    /// Tasks handed over and not yet finished (waiting or running). Admission counts these
    /// rather than `waiting`: a task a thread is about to take still holds its place, so a
    /// burst always gets `capacity` places in line plus one per thread, however the threads
    /// are scheduled.
    admitted: Arc<AtomicUsize>,
    capacity: usize,
    threads: usize,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

/// What the pool is doing, for `/health`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Load {
    /// Tasks running.
    running: usize,
    /// Tasks waiting for a thread.
    waiting: usize,
    /// Generation threads.
    workers: usize,
    /// Most tasks that may wait.
    capacity: usize,
}

impl Pool {
    /// `workers` threads (at least one) and room for `capacity` waiting tasks.
    pub(crate) fn new(workers: usize, capacity: usize) -> std::io::Result<Pool> {
        let (tx, rx) = mpsc::channel::<Task>();
        let rx = Arc::new(Mutex::new(rx));
        let waiting = Arc::new(AtomicUsize::new(0));
        let running = Arc::new(AtomicUsize::new(0));
        let admitted = Arc::new(AtomicUsize::new(0));
        let threads = workers.max(1);
        let mut handles = Vec::new();
        for i in 0..threads {
            let rx = Arc::clone(&rx);
            let (waiting, running) = (Arc::clone(&waiting), Arc::clone(&running));
            let admitted = Arc::clone(&admitted);
            let handle = std::thread::Builder::new()
                .name(format!("vlm-generate-{i}"))
                .spawn(move || loop {
                    let task = match rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    let Ok(task) = task else { return };
                    waiting.fetch_sub(1, Ordering::SeqCst);
                    running.fetch_add(1, Ordering::SeqCst);
                    // A panicking task must not take the thread (and its share of the
                    // server's capacity) with it; its caller sees the dropped reply channel.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(task));
                    running.fetch_sub(1, Ordering::SeqCst);
                    admitted.fetch_sub(1, Ordering::SeqCst);
                })?;
            handles.push(handle);
        }
        Ok(Pool {
            sender: Mutex::new(Some(tx)),
            waiting,
            running,
            admitted,
            capacity,
            threads,
            workers: Mutex::new(handles),
        })
    }

    /// Queues `task` unless every thread is busy and `capacity` tasks already wait.
    pub(crate) fn try_submit(&self, task: Task) -> Result<(), Full> {
        let limit = self.capacity + self.threads;
        self.admitted
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |a| {
                (a < limit).then_some(a + 1)
            })
            .map_err(|_| Full)?;
        self.waiting.fetch_add(1, Ordering::SeqCst);
        self.send(task)
    }

    /// Queues `task` whatever the line's length.
    pub(crate) fn submit(&self, task: Task) -> Result<(), Full> {
        self.admitted.fetch_add(1, Ordering::SeqCst);
        self.waiting.fetch_add(1, Ordering::SeqCst);
        self.send(task)
    }

    fn send(&self, task: Task) -> Result<(), Full> {
        let sent = match self.sender.lock() {
            Ok(guard) => guard.as_ref().is_some_and(|tx| tx.send(task).is_ok()),
            Err(_) => false,
        };
        if !sent {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            self.admitted.fetch_sub(1, Ordering::SeqCst);
            return Err(Full);
        }
        Ok(())
    }

    /// Running and waiting counts.
    pub(crate) fn load(&self) -> Load {
        Load {
            running: self.running.load(Ordering::SeqCst),
            waiting: self.waiting.load(Ordering::SeqCst),
            workers: self.workers.lock().map_or(0, |w| w.len()),
            capacity: self.capacity,
        }
    }

    /// Accepts nothing more, lets the queued tasks finish, and waits for the threads.
    pub(crate) fn shutdown(&self) {
        if let Ok(mut s) = self.sender.lock() {
            s.take();
        }
        let handles = match self.workers.lock() {
            Ok(mut w) => std::mem::take(&mut *w),
            Err(_) => Vec::new(),
        };
        for h in handles {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;
    use std::time::Duration;

    #[test]
    fn a_full_line_refuses_and_the_rest_runs() {
        let pool = Pool::new(1, 2).unwrap();
        let (gate_tx, gate_rx) = channel::<()>();
        let (done_tx, done_rx) = channel::<usize>();
        // Occupy the one thread until the gate opens.
        pool.try_submit(Box::new(move || {
            gate_rx.recv().unwrap();
        }))
        .unwrap();
        while pool.load().running == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        for i in 0..2 {
            let tx = done_tx.clone();
            pool.try_submit(Box::new(move || tx.send(i).unwrap()))
                .unwrap();
        }
        assert_eq!(pool.try_submit(Box::new(|| {})), Err(Full));
        // Jobs bypass the bound.
        let tx = done_tx.clone();
        pool.submit(Box::new(move || tx.send(9).unwrap())).unwrap();
        gate_tx.send(()).unwrap();
        let mut got: Vec<usize> = (0..3).map(|_| done_rx.recv().unwrap()).collect();
        got.sort();
        assert_eq!(got, vec![0, 1, 9]);
        pool.shutdown();
        assert_eq!(pool.try_submit(Box::new(|| {})), Err(Full));
    }

    #[test]
    fn a_burst_gets_the_line_plus_one_place_per_thread() {
        let pool = Pool::new(2, 3).unwrap();
        // Submitted back to back, before the threads need have taken anything: admission
        // must not depend on how fast they do.
        let gates: Vec<_> = (0..5)
            .map(|_| {
                let (tx, rx) = channel::<()>();
                pool.try_submit(Box::new(move || {
                    let _ = rx.recv();
                }))
                .unwrap();
                tx
            })
            .collect();
        assert_eq!(pool.try_submit(Box::new(|| {})), Err(Full));
        drop(gates);
        pool.shutdown();
    }

    #[test]
    fn a_panicking_task_keeps_its_thread() {
        let pool = Pool::new(1, 4).unwrap();
        pool.try_submit(Box::new(|| panic!("boom"))).unwrap();
        let (tx, rx) = channel();
        pool.try_submit(Box::new(move || tx.send(1).unwrap()))
            .unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok(1));
        pool.shutdown();
    }
}
