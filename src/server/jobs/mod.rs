//! Background jobs: a task (`describe`, `ask`, `compare`) handed off over HTTP → a record on
//! disk that moves from queued to running to done, failed or cancelled, with progress and,
//! at the end, the result.
//!
//! Each job is two files in the data directory: `<id>.input.json` (the task and its images,
//! written once) and `<id>.json` (the record, rewritten as it changes). Every write goes to a
//! temporary file that is synced and then renamed over the old one, so a crash at any moment
//! leaves either the previous record or the next, never half of one. On start, records found
//! `running` belonged to a server that died: they are marked failed with the reason; queued
//! ones run. Finished records are deleted once they are older than the retention time.

mod scheduler;
mod store;
mod wire;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::CancelToken;

pub(crate) use scheduler::CancelError;
pub(crate) use wire::{validate, CompareFormat, Job, JobRequest, Progress, State, TaskKind};

/// The jobs of one data directory.
pub(crate) struct Jobs {
    dir: PathBuf,
    ttl: Duration,
    inner: Mutex<Inner>,
    wake: Condvar,
}

#[derive(Default)]
struct Inner {
    jobs: BTreeMap<String, Job>,
    queue: VecDeque<String>,
    running: HashMap<String, CancelToken>,
    /// When each running job's record was last written (progress is written at most twice
    /// a second).
    written: HashMap<String, Instant>,
    stopping: bool,
}

impl Jobs {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while the lock was held leaves consistent data (every change is one
        // assignment); keep serving.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(task: TaskKind) -> JobRequest {
        JobRequest {
            task,
            images: Vec::new(),
            prompt: Some("why?".into()),
            format: None,
            max_tokens: None,
        }
    }

    #[test]
    fn records_survive_a_restart_and_running_ones_fail() {
        let dir = tempfile::tempdir().unwrap();
        let jobs = Jobs::open(dir.path(), Duration::from_secs(3600)).unwrap();
        let a = jobs.submit(&request(TaskKind::Ask), vec![], 8).unwrap();
        let b = jobs.submit(&request(TaskKind::Ask), vec![], 8).unwrap();
        let c = jobs.submit(&request(TaskKind::Ask), vec![], 8).unwrap();
        {
            let mut inner = jobs.lock();
            inner.queue.retain(|q| q == &c.id);
            jobs.start(&mut inner, a.id.clone());
            jobs.finish(
                &mut inner,
                &b.id,
                State::Done,
                Some(serde_json::json!({"text": "kept"})),
                None,
            );
        }
        // A crash mid-write leaves a temporary file behind.
        std::fs::write(dir.path().join(format!(".{}.json.tmp", b.id)), b"{half").unwrap();
        drop(jobs);
        let jobs = Jobs::open(dir.path(), Duration::from_secs(3600)).unwrap();
        let a = jobs.get(&a.id).unwrap();
        assert_eq!(a.state, State::Failed);
        assert!(a.error.unwrap()["message"]
            .as_str()
            .unwrap()
            .contains("interrupted"));
        let b = jobs.get(&b.id).unwrap();
        assert_eq!(b.state, State::Done);
        assert_eq!(b.result.unwrap()["text"], "kept");
        assert_eq!(jobs.lock().queue, VecDeque::from([c.id.clone()]));
        assert_eq!(jobs.list().len(), 3);
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(!names.iter().any(|n| n.ends_with(".tmp")), "{names:?}");
    }

    #[test]
    fn cancel_and_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let jobs = Jobs::open(dir.path(), Duration::ZERO).unwrap();
        let a = jobs.submit(&request(TaskKind::Ask), vec![], 8).unwrap();
        assert_eq!(jobs.cancel(&a.id).unwrap().state, State::Cancelled);
        assert_eq!(
            jobs.cancel(&a.id),
            Err(CancelError::Finished(State::Cancelled))
        );
        assert_eq!(jobs.cancel("job_nope"), Err(CancelError::NotFound));
        // A zero retention time expires it at the next sweep.
        jobs.expire(&mut jobs.lock());
        assert!(jobs.get(&a.id).is_none());
        assert!(!dir.path().join(format!("{}.json", a.id)).exists());
    }

    #[test]
    fn requests_are_checked() {
        assert!(validate(&request(TaskKind::Ask), 4).is_ok());
        let e = validate(&request(TaskKind::Describe), 4).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("images"));
        let mut r = request(TaskKind::Compare);
        r.images = vec!["a".into()];
        assert!(validate(&r, 4).unwrap_err().message.contains("two or more"));
        r.images = vec!["a".into(); 5];
        assert!(validate(&r, 4).unwrap_err().message.contains("at most 4"));
        let mut r = request(TaskKind::Ask);
        r.prompt = None;
        assert_eq!(
            validate(&r, 4).unwrap_err().param.as_deref(),
            Some("prompt")
        );
    }
}
