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

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::errors::ApiError;
use super::queue::Pool;
use crate::apps::compare::{
    compare_with, render, Answer, CompareEvent, CompareOptions, Extractor, ModelExtractor, Opened,
    Question, Shot,
};
use crate::{CancelToken, Engine, Event, GenerateOptions, ImageInput};

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskKind {
    /// Describe each image, one answer per image.
    Describe,
    /// One question about the images (or none).
    Ask,
    /// A comparison card over two or more screenshots.
    Compare,
}

/// How a comparison's result is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum CompareFormat {
    /// The card as a JSON value.
    #[default]
    Json,
    /// A Markdown table.
    Markdown,
    /// A self-contained HTML page.
    Html,
}

/// `POST /v1/jobs`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobRequest {
    /// The task.
    pub task: TaskKind,
    /// Image URLs (the same forms as chat `image_url`s).
    #[serde(default)]
    pub images: Vec<String>,
    /// The question (`ask`).
    #[serde(default)]
    pub prompt: Option<String>,
    /// The result's format (`compare`).
    #[serde(default)]
    pub format: Option<CompareFormat>,
    /// Most tokens per answer (`describe`, `ask`).
    #[serde(default)]
    pub max_tokens: Option<usize>,
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Waiting for a generation thread.
    Queued,
    /// Running.
    Running,
    /// Finished; `result` holds the answer.
    Done,
    /// Ended with an error; `error` says why.
    Failed,
    /// Cancelled by `DELETE`.
    Cancelled,
}

impl State {
    fn finished(self) -> bool {
        matches!(self, State::Done | State::Failed | State::Cancelled)
    }
}

/// How far a running job is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Units done.
    pub done: usize,
    /// Units in all.
    pub total: usize,
    /// `image`, `token` or `field`.
    pub unit: String,
}

/// A job's record, as `GET /v1/jobs/{id}` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// `job_…`.
    pub id: String,
    /// Always `job`.
    pub object: String,
    /// The task.
    pub task: TaskKind,
    /// Where it is.
    pub state: State,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds.
    pub started_at: Option<u64>,
    /// Unix seconds.
    pub finished_at: Option<u64>,
    /// When a finished job's record will be deleted (unix seconds).
    pub expires_at: Option<u64>,
    /// Set while running and after.
    pub progress: Option<Progress>,
    /// The answer, once done.
    pub result: Option<Value>,
    /// Why it failed (`{"message", "type", "code"}`).
    pub error: Option<Value>,
}

/// What a job runs on, written once at submission: the images as bytes in base64.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Input {
    task: TaskKind,
    images: Vec<String>,
    prompt: Option<String>,
    format: Option<CompareFormat>,
    max_tokens: usize,
}

/// The jobs of one data directory.
pub struct Jobs {
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

/// Why `DELETE` did nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelError {
    /// No such job.
    NotFound,
    /// It had already finished.
    Finished(State),
}

fn now() -> u64 {
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
    pub fn open(dir: &Path, ttl: Duration) -> std::io::Result<Arc<Jobs>> {
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

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while the lock was held leaves consistent data (every change is one
        // assignment); keep serving.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn record_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    fn input_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.input.json"))
    }

    fn persist(&self, job: &Job) {
        let written = serde_json::to_vec_pretty(job)
            .map_err(std::io::Error::other)
            .and_then(|bytes| write_atomic(&self.record_path(&job.id), &bytes));
        if let Err(e) = written {
            tracing::error!("job {}: cannot write its record: {e}", job.id);
        }
    }

    /// Stores a new job (its images already read) and queues it.
    pub fn submit(
        &self,
        req: &JobRequest,
        images: Vec<Vec<u8>>,
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
        let mut inner = self.lock();
        inner.jobs.insert(id.clone(), job.clone());
        inner.queue.push_back(id);
        self.wake.notify_all();
        Ok(job)
    }

    /// A job's record.
    pub fn get(&self, id: &str) -> Option<Job> {
        self.lock().jobs.get(id).cloned()
    }

    /// Every job, newest first.
    pub fn list(&self) -> Vec<Job> {
        let mut all: Vec<Job> = self.lock().jobs.values().cloned().collect();
        all.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
        all
    }

    /// Cancels a queued job at once, or asks a running one to stop (its record says
    /// `cancelled` once it has).
    pub fn cancel(&self, id: &str) -> Result<Job, CancelError> {
        let mut inner = self.lock();
        let state = inner.jobs.get(id).ok_or(CancelError::NotFound)?.state;
        match state {
            State::Queued => {
                inner.queue.retain(|q| q != id);
                self.finish(&mut inner, id, State::Cancelled, None, None);
            }
            State::Running => {
                if let Some(token) = inner.running.get(id) {
                    token.cancel();
                }
            }
            finished => return Err(CancelError::Finished(finished)),
        }
        inner.jobs.get(id).cloned().ok_or(CancelError::NotFound)
    }

    fn finish(
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
    fn expire(&self, inner: &mut Inner) {
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

    fn set_progress(&self, id: &str, done: usize, total: usize, unit: &str) {
        let mut inner = self.lock();
        let due = inner
            .written
            .get(id)
            .is_none_or(|t| t.elapsed() >= Duration::from_millis(500))
            || done == total;
        let Some(job) = inner.jobs.get_mut(id) else {
            return;
        };
        job.progress = Some(Progress {
            done,
            total,
            unit: unit.into(),
        });
        if due {
            let job = job.clone();
            self.persist(&job);
            inner.written.insert(id.to_string(), Instant::now());
        }
    }

    /// Asks the runner to stop: the running job is cancelled and recorded as failed (the
    /// server shut down); queued jobs stay queued for the next start.
    pub fn stop(&self) {
        let mut inner = self.lock();
        inner.stopping = true;
        for token in inner.running.values() {
            token.cancel();
        }
        self.wake.notify_all();
    }

    /// The runner: takes queued jobs one at a time, runs each on the generation pool, and
    /// records the outcome. Returns after [`Jobs::stop`].
    pub fn run(self: &Arc<Self>, engine: &Engine, pool: &Pool, cache_dir: &Path) {
        loop {
            let (id, cancel) = {
                let mut inner = self.lock();
                loop {
                    if inner.stopping {
                        return;
                    }
                    if let Some(id) = inner.queue.pop_front() {
                        break self.start(&mut inner, id);
                    }
                    self.expire(&mut inner);
                    inner = match self.wake.wait_timeout(inner, Duration::from_secs(30)) {
                        Ok((guard, _)) => guard,
                        Err(p) => p.into_inner().0,
                    };
                }
            };
            let outcome = self.execute(engine, pool, cache_dir, &id, &cancel);
            let mut inner = self.lock();
            let (state, result, error) = match outcome {
                _ if cancel.is_cancelled() && inner.stopping => (
                    State::Failed,
                    None,
                    Some(ApiError {
                        code: Some("interrupted"),
                        ..ApiError::internal(
                            "interrupted: the server shut down while this job was running; submit it again",
                        )
                    }),
                ),
                _ if cancel.is_cancelled() => (State::Cancelled, None, None),
                Ok(value) => (State::Done, Some(value), None),
                Err(e) => (State::Failed, None, Some(e)),
            };
            self.finish(&mut inner, &id, state, result, error);
        }
    }

    fn start(&self, inner: &mut Inner, id: String) -> (String, CancelToken) {
        let token = CancelToken::new();
        inner.running.insert(id.clone(), token.clone());
        if let Some(job) = inner.jobs.get_mut(&id) {
            job.state = State::Running;
            job.started_at = Some(now());
            let job = job.clone();
            self.persist(&job);
        }
        (id, token)
    }

    /// Runs job `id` on a generation thread and waits for it.
    fn execute(
        self: &Arc<Self>,
        engine: &Engine,
        pool: &Pool,
        cache_dir: &Path,
        id: &str,
        cancel: &CancelToken,
    ) -> Result<Value, ApiError> {
        let input: Input = std::fs::read(self.input_path(id))
            .map_err(|e| ApiError::internal(format!("the job's input cannot be read: {e}")))
            .and_then(|b| {
                serde_json::from_slice(&b)
                    .map_err(|e| ApiError::internal(format!("the job's input is damaged: {e}")))
            })?;
        let (tx, rx) = std::sync::mpsc::channel();
        let (engine, cancel, jobs) = (engine.clone(), cancel.clone(), Arc::clone(self));
        let (id_owned, cache_dir) = (id.to_string(), cache_dir.to_path_buf());
        pool.submit(Box::new(move || {
            let mut progress = |done: usize, total: usize, unit: &str| {
                jobs.set_progress(&id_owned, done, total, unit)
            };
            let result = run_task(&engine, &cache_dir, &input, &cancel, &mut progress);
            let _ = tx.send(result);
        }))
        .map_err(|_| ApiError::internal("the server is shutting down"))?;
        rx.recv()
            .unwrap_or_else(|_| Err(ApiError::internal("the job's generation thread failed")))
    }
}

/// Runs one task to its result value.
fn run_task(
    engine: &Engine,
    cache_dir: &Path,
    input: &Input,
    cancel: &CancelToken,
    progress: &mut dyn FnMut(usize, usize, &str),
) -> Result<Value, ApiError> {
    use base64::Engine as _;
    let images = input
        .images
        .iter()
        .map(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b)
                .map(ImageInput::Encoded)
                .map_err(|e| ApiError::internal(format!("the job's input is damaged: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let opts = GenerateOptions {
        max_new_tokens: input.max_tokens,
        ..GenerateOptions::default()
    };
    match input.task {
        TaskKind::Describe => {
            let total = images.len();
            progress(0, total, "image");
            let mut answers = Vec::with_capacity(total);
            for (i, image) in images.into_iter().enumerate() {
                if cancel.is_cancelled() {
                    break;
                }
                let g = crate::apps::describe(engine, vec![image], &opts, cancel, &mut |_| {
                    std::ops::ControlFlow::Continue(())
                })?;
                answers.push(serde_json::json!({
                    "image": i,
                    "text": g.text,
                    "finish_reason": super::openai::finish_reason(g.finish),
                    "usage": super::openai::Usage::from(g.usage),
                }));
                progress(i + 1, total, "image");
            }
            Ok(serde_json::json!({ "descriptions": answers }))
        }
        TaskKind::Ask => {
            let question = input.prompt.as_deref().unwrap_or_default();
            let mut tokens = 0;
            progress(0, input.max_tokens, "token");
            let g = crate::apps::ask(engine, images, question, &opts, cancel, &mut |e| {
                if let Event::Token(_) = e {
                    tokens += 1;
                    progress(tokens.min(input.max_tokens), input.max_tokens, "token");
                }
                std::ops::ControlFlow::Continue(())
            })?;
            progress(
                g.usage.completion_tokens,
                g.usage.completion_tokens,
                "token",
            );
            Ok(serde_json::json!({
                "text": g.text,
                "finish_reason": super::openai::finish_reason(g.finish),
                "usage": super::openai::Usage::from(g.usage),
            }))
        }
        TaskKind::Compare => {
            let copts = CompareOptions {
                cache: true,
                cache_dir: Some(cache_dir.to_path_buf()),
                ..CompareOptions::default()
            };
            let mut extractor = Cancellable {
                inner: ModelExtractor::new(engine, &copts),
                cancel,
            };
            let shots = images.len();
            let mut on_event = |e: CompareEvent<'_>| {
                if let CompareEvent::Field {
                    index, done, total, ..
                } = e
                {
                    progress(index * total + done, shots * total, "field");
                }
            };
            let comparison = compare_with(&mut extractor, &images, &mut on_event)?;
            let format = input.format.unwrap_or_default();
            Ok(match format {
                CompareFormat::Json => serde_json::json!({
                    "format": "json",
                    "comparison": serde_json::from_str::<Value>(&render::json(&comparison))
                        .map_err(|e| ApiError::internal(e.to_string()))?,
                }),
                CompareFormat::Markdown => serde_json::json!({
                    "format": "markdown",
                    "content": render::markdown(&comparison),
                }),
                CompareFormat::Html => {
                    let thumbs: Vec<Option<String>> = images
                        .iter()
                        .map(|i| match i {
                            ImageInput::Encoded(b) => render::thumbnail_data_url(b, 480).ok(),
                            _ => None,
                        })
                        .collect();
                    serde_json::json!({
                        "format": "html",
                        "content": render::html(&comparison, &thumbs)?,
                    })
                }
            })
        }
    }
}

/// A comparison that stops between questions once its job is cancelled.
struct Cancellable<'a, 'e> {
    inner: ModelExtractor<'e>,
    cancel: &'a CancelToken,
}

impl Cancellable<'_, '_> {
    fn check(&self) -> crate::Result<()> {
        if self.cancel.is_cancelled() {
            return Err(crate::Error::InvalidOption {
                name: "job",
                reason: "cancelled".into(),
            });
        }
        Ok(())
    }
}

impl Extractor for Cancellable<'_, '_> {
    fn open(&mut self, shot: &Shot) -> crate::Result<Opened> {
        self.check()?;
        self.inner.open(shot)
    }

    fn answer(&mut self, question: &Question) -> crate::Result<Answer> {
        self.check()?;
        self.inner.answer(question)
    }
}

/// Checks a job request before anything is stored.
pub fn validate(req: &JobRequest, max_images: usize) -> Result<(), ApiError> {
    let n = req.images.len();
    if n > max_images {
        return Err(ApiError::bad_param(
            "images",
            format!("{n} images; this server takes at most {max_images} (--max-images)"),
        ));
    }
    match req.task {
        TaskKind::Describe if n == 0 => Err(ApiError::bad_param(
            "images",
            "describe needs at least one image",
        )),
        TaskKind::Ask if req.prompt.as_deref().is_none_or(str::is_empty) => Err(
            ApiError::bad_param("prompt", "ask needs a non-empty prompt"),
        ),
        TaskKind::Compare if n < 2 => Err(ApiError::bad_param(
            "images",
            format!("compare needs two or more screenshots, got {n}"),
        )),
        _ if req.max_tokens == Some(0) => Err(ApiError::bad_param(
            "max_tokens",
            "0 would generate nothing; use at least 1",
        )),
        _ => Ok(()),
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
