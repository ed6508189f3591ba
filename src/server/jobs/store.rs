//! Jobs on disk: a submitted task → `<id>.input.json`, a job's state → `<id>.json`, each
//! written then renamed into place; a data directory at start → the jobs it holds, with
//! interrupted ones failed and expired ones deleted.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{CompareFormat, Inner, Job, JobRequest, Jobs, State, TaskKind};
use crate::server::errors::ApiError;

/// What a job runs on, written once at submission: the images as bytes in base64.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Input {
    pub(super) task: TaskKind,
    pub(super) images: Vec<String>,
    pub(super) prompt: Option<String>,
    pub(super) format: Option<CompareFormat>,
    pub(super) max_tokens: usize,
}

pub(super) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Writes `bytes` to `path` so that a reader (or a restart after a crash) sees the old or the
/// new content, never a mix.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    // The rename itself reaches the disk with the directory's metadata.
    if let Some(dir) = path.parent() {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

impl Jobs {
    /// Opens (or creates) the job directory `dir`: reads every record, fails those a previous
    /// server left running, queues those it left queued, and deletes expired ones.
    pub(crate) fn open(dir: &Path, ttl: Duration) -> std::io::Result<Arc<Jobs>> {
        std::fs::create_dir_all(dir)?;
        let mut inner = Inner::default();
        let mut queued = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if name.starts_with('.') && name.ends_with(".tmp") {
                // A write that a crash interrupted; the record it was replacing is intact.
                let _ = std::fs::remove_file(&path);
                continue;
            }
            if !name.ends_with(".json") || name.ends_with(".input.json") {
                continue;
            }
            let job: Job = match std::fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
            {
                Some(job) => job,
                None => {
                    tracing::warn!("{}: not a job record; left alone", path.display());
                    continue;
                }
            };
            if job.state == State::Queued {
                queued.push((job.created_at, job.id.clone()));
            }
            inner.jobs.insert(job.id.clone(), job);
        }
        queued.sort();
        inner.queue = queued.into_iter().map(|(_, id)| id).collect();
        let jobs = Arc::new(Jobs {
            dir: dir.to_path_buf(),
            ttl,
            inner: Mutex::new(inner),
            wake: Condvar::new(),
        });
        {
            let mut inner = jobs.lock();
            let interrupted: Vec<String> = inner
                .jobs
                .values()
                .filter(|j| j.state == State::Running)
                .map(|j| j.id.clone())
                .collect();
            for id in interrupted {
                let error = ApiError {
                    code: Some("interrupted"),
                    ..ApiError::internal(
                        "interrupted: the server stopped while this job was running; submit it again",
                    )
                };
                jobs.finish(&mut inner, &id, State::Failed, None, Some(error));
            }
            jobs.expire(&mut inner);
        }
        Ok(jobs)
    }

    fn record_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    fn input_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.input.json"))
    }

    /// Writes a new job's input and its queued record (the caller queues it).
    pub(super) fn create(
        &self,
        req: &JobRequest,
        images: &[Vec<u8>],
        max_tokens: usize,
    ) -> std::io::Result<Job> {
        use base64::Engine as _;
        let id = format!("job_{:016x}", rand::random::<u64>());
        let input = Input {
            task: req.task,
            images: images
                .iter()
                .map(|b| base64::engine::general_purpose::STANDARD.encode(b))
                .collect(),
            prompt: req.prompt.clone(),
            format: req.format,
            max_tokens,
        };
        let bytes = serde_json::to_vec(&input).map_err(std::io::Error::other)?;
        write_atomic(&self.input_path(&id), &bytes)?;
        let job = Job {
            id: id.clone(),
            object: "job".into(),
            task: req.task,
            state: State::Queued,
            created_at: now(),
            started_at: None,
            finished_at: None,
            expires_at: None,
            progress: None,
            result: None,
            error: None,
        };
        let bytes = serde_json::to_vec_pretty(&job).map_err(std::io::Error::other)?;
        write_atomic(&self.record_path(&id), &bytes)?;
        Ok(job)
    }

    /// The task and images job `id` was submitted with.
    pub(super) fn read_input(&self, id: &str) -> Result<Input, ApiError> {
        std::fs::read(self.input_path(id))
            .map_err(|e| ApiError::internal(format!("the job's input cannot be read: {e}")))
            .and_then(|b| {
                serde_json::from_slice(&b)
                    .map_err(|e| ApiError::internal(format!("the job's input is damaged: {e}")))
            })
    }

    /// Rewrites a job's record; a failed write is logged, not returned, because the job
    /// itself goes on and the next write may succeed.
    pub(super) fn persist(&self, job: &Job) {
        let written = serde_json::to_vec_pretty(job)
            .map_err(std::io::Error::other)
            .and_then(|bytes| write_atomic(&self.record_path(&job.id), &bytes));
        if let Err(e) = written {
            tracing::error!("job {}: cannot write its record: {e}", job.id);
        }
    }

    /// Ends job `id` in `state`: the record gets its outcome and expiry, the input goes.
    pub(super) fn finish(
        &self,
        inner: &mut Inner,
        id: &str,
        state: State,
        result: Option<Value>,
        error: Option<ApiError>,
    ) {
        let t = now();
        let ttl = self.ttl.as_secs();
        if let Some(job) = inner.jobs.get_mut(id) {
            job.state = state;
            job.finished_at = Some(t);
            job.expires_at = Some(t.saturating_add(ttl));
            job.result = result;
            job.error = error.map(|e| e.body()["error"].clone());
            let job = job.clone();
            self.persist(&job);
        }
        inner.running.remove(id);
        inner.written.remove(id);
        // The images are no longer needed once the job cannot run again.
        let _ = std::fs::remove_file(self.input_path(id));
    }

    /// Deletes finished records past their expiry.
    pub(super) fn expire(&self, inner: &mut Inner) {
        let t = now();
        let old: Vec<String> = inner
            .jobs
            .values()
            .filter(|j| j.state.finished() && j.expires_at.is_some_and(|e| e <= t))
            .map(|j| j.id.clone())
            .collect();
        for id in old {
            inner.jobs.remove(&id);
            let _ = std::fs::remove_file(self.record_path(&id));
            let _ = std::fs::remove_file(self.input_path(&id));
        }
    }
}
