//! A fixed team of threads that spin between calls, for the decode step's parallel sections.
//!
//! A decode step forks about 150 small sections per token (the q/k/v, o, gate/up and down
//! products of 30 layers, and the head), a few tens of microseconds each. rayon parks an idle
//! worker after a short spin, so many sections began by waking a parked thread, a futex round
//! trip that a VM makes slow and uneven; llama.cpp's threads spin between operations instead.
//! Here the team's threads spin on a counter for up to [`SPIN`] after each call and only then
//! park, so the sections of one step find them awake, and each member takes a fixed
//! contiguous share of the items (no shared counter whose cache line would bounce between
//! cores). On a Q8_0 256M model (2-core Zen 4 VM) decode went from 135–148 to 156–162 tok/s.
//! A process that stops decoding has the threads parked again within [`SPIN`].
//!
//! input: a count `n` and `f` → `f(0)`, …, `f(n − 1)` on the team's threads and the caller's.

use std::any::Any;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long an idle member spins before it parks.
const SPIN: Duration = Duration::from_micros(500);

/// The published work of one call: `f` with its lifetime erased. [`Team::for_each`] does not
/// return before every member is done with it, which is what makes the erasure sound.
#[derive(Clone, Copy)]
struct Job(*const (dyn Fn(usize) + Sync + 'static));
// SAFETY: the pointee is `Sync` and outlives every use (see `Job`).
unsafe impl Send for Job {}

struct Shared {
    /// Bumped once per call; a member runs the job once per new value.
    epoch: AtomicUsize,
    job: Mutex<Option<Job>>,
    /// Members (the caller not counted) still inside this call's job.
    running: AtomicUsize,
    /// The payload of a member's panic in this call, handed to the caller.
    panic: Mutex<Option<Box<dyn Any + Send>>>,
    /// Parked members, and the lock and condition they park on.
    parked: AtomicUsize,
    park: Mutex<()>,
    wake: Condvar,
}

/// The team: the caller plus `members − 1` threads.
pub(crate) struct Team {
    shared: Arc<Shared>,
    members: usize,
    /// One call at a time (two sessions may decode from two threads).
    calls: Mutex<()>,
}

impl Team {
    /// The process's team, as many members as the thread pool has threads; its threads
    /// start on first use.
    pub(crate) fn global() -> &'static Team {
        static TEAM: OnceLock<Team> = OnceLock::new();
        TEAM.get_or_init(|| Team::new(crate::threads::current().max(1)))
    }

    fn new(members: usize) -> Team {
        let shared = Arc::new(Shared {
            epoch: AtomicUsize::new(0),
            job: Mutex::new(None),
            running: AtomicUsize::new(0),
            panic: Mutex::new(None),
            parked: AtomicUsize::new(0),
            park: Mutex::new(()),
            wake: Condvar::new(),
        });
        let mut started = 1;
        for i in 1..members {
            let s = Arc::clone(&shared);
            let spawned = std::thread::Builder::new()
                .name(format!("vlm-decode-{i}"))
                .spawn(move || member(&s, i, 0));
            // A thread that cannot start leaves a smaller team, not a failed decode.
            if spawned.is_err() {
                break;
            }
            started += 1;
        }
        Team {
            shared,
            members: started,
            calls: Mutex::new(()),
        }
    }

    /// Calls `f(i)` for every `i` in `0..n`, each member (the caller included) taking a
    /// contiguous share; returns when all are done. A panic in `f`
    /// reaches the caller once every member has stopped using `f`. `f` must not call
    /// `for_each` itself (calls are serialized, so that would wait forever).
    pub(crate) fn for_each(&self, n: usize, f: &(dyn Fn(usize) + Sync)) {
        if self.members == 1 || n <= 1 {
            (0..n).for_each(f);
            return;
        }
        let _one_call = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        let s = &*self.shared;
        let members = self.members;
        // Contiguous shares, fixed in advance: a shared item counter would bounce its cache
        // line between the cores on every item.
        let work = |member: usize| {
            for i in member * n / members..(member + 1) * n / members {
                f(i);
            }
        };
        let work: &(dyn Fn(usize) + Sync) = &work;
        // SAFETY: only the lifetime changes; the job is withdrawn below before `work` (and
        // `f`) go out of scope, after every member has finished with it.
        let erased: *const (dyn Fn(usize) + Sync + 'static) = unsafe { std::mem::transmute(work) };
        *s.job.lock().unwrap_or_else(|e| e.into_inner()) = Some(Job(erased));
        s.running.store(self.members - 1, Ordering::SeqCst);
        s.epoch.fetch_add(1, Ordering::SeqCst);
        if s.parked.load(Ordering::SeqCst) > 0 {
            let _g = s.park.lock().unwrap_or_else(|e| e.into_inner());
            s.wake.notify_all();
        }
        let mine = catch_unwind(AssertUnwindSafe(|| work(0)));
        let mut spins = 0u32;
        while s.running.load(Ordering::Acquire) != 0 {
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(1 << 12) {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
        *s.job.lock().unwrap_or_else(|e| e.into_inner()) = None;
        if let Err(panic) = mine {
            resume_unwind(panic);
        }
        if let Some(panic) = s.panic.lock().unwrap_or_else(|e| e.into_inner()).take() {
            resume_unwind(panic);
        }
    }
}

/// A member's life: wait for a new epoch (spinning, then parked), run the job, report.
/// `seen` is the epoch at the team's creation, so a call made before this thread first looks
/// is still run.
fn member(s: &Shared, index: usize, mut seen: usize) {
    loop {
        let start = Instant::now();
        let mut spins = 0u32;
        loop {
            let e = s.epoch.load(Ordering::SeqCst);
            if e != seen {
                seen = e;
                break;
            }
            spins = spins.wrapping_add(1);
            if !spins.is_multiple_of(256) || start.elapsed() < SPIN {
                std::hint::spin_loop();
                continue;
            }
            let mut g = s.park.lock().unwrap_or_else(|e| e.into_inner());
            s.parked.fetch_add(1, Ordering::SeqCst);
            // Checked again under the lock: a call that bumped the epoch before `parked` rose
            // is seen here; one after it will take the lock and notify.
            while s.epoch.load(Ordering::SeqCst) == seen {
                g = s.wake.wait(g).unwrap_or_else(|e| e.into_inner());
            }
            s.parked.fetch_sub(1, Ordering::SeqCst);
            drop(g);
            seen = s.epoch.load(Ordering::SeqCst);
            break;
        }
        let job = *s.job.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(Job(f)) = job {
            // SAFETY: `for_each` keeps the job alive until `running` reaches zero.
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| unsafe { (*f)(index) })) {
                *s.panic.lock().unwrap_or_else(|e| e.into_inner()) = Some(panic);
            }
        }
        s.running.fetch_sub(1, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_item_runs_once_across_many_calls() {
        let team = Team::new(3);
        for n in [0usize, 1, 2, 7, 100] {
            for _ in 0..50 {
                let hits: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
                team.for_each(n, &|i| {
                    hits[i].fetch_add(1, Ordering::Relaxed);
                });
                assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1), "n {n}");
            }
        }
    }

    #[test]
    fn parked_members_wake_for_the_next_call() {
        let team = Team::new(2);
        let count = AtomicUsize::new(0);
        team.for_each(4, &|_| {
            count.fetch_add(1, Ordering::Relaxed);
        });
        // Long enough for the member to park.
        std::thread::sleep(SPIN * 4);
        team.for_each(4, &|_| {
            count.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(count.load(Ordering::Relaxed), 8);
    }

    #[test]
    fn a_panicking_item_reaches_the_caller_and_the_team_still_works() {
        let team = Team::new(2);
        let r = catch_unwind(AssertUnwindSafe(|| {
            team.for_each(8, &|i| assert!(i != 5, "item five"));
        }));
        assert!(r.is_err());
        let count = AtomicUsize::new(0);
        team.for_each(8, &|_| {
            count.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(count.load(Ordering::Relaxed), 8);
    }
}
