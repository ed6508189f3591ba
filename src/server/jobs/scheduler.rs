//! Running jobs: submissions → a queue; the runner takes one job at a time to a generation
//! thread, reports its progress and records its outcome; `DELETE` → cancellation of a queued
//! or running job.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::store::{now, Input};
use super::{CompareFormat, Inner, Job, JobRequest, Jobs, Progress, State, TaskKind};
use crate::apps::compare::{
    compare_with, render, Answer, CompareEvent, CompareOptions, Extractor, ModelExtractor, Opened,
    Question, Shot,
};
use crate::server::errors::ApiError;
use crate::server::queue::Pool;
use crate::{CancelToken, Engine, Event, GenerateOptions, ImageInput};

/// Why `DELETE` did nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CancelError {
    /// No such job.
    NotFound,
    /// It had already finished.
    Finished(State),
}

impl Jobs {
    /// Stores a new job (its images already read) and queues it.
    pub(crate) fn submit(
        &self,
        req: &JobRequest,
        images: Vec<Vec<u8>>,
        max_tokens: usize,
    ) -> std::io::Result<Job> {
        let job = self.create(req, &images, max_tokens)?;
        let mut inner = self.lock();
        inner.jobs.insert(job.id.clone(), job.clone());
        inner.queue.push_back(job.id.clone());
        self.wake.notify_all();
        Ok(job)
    }

    /// A job's record.
    pub(crate) fn get(&self, id: &str) -> Option<Job> {
        self.lock().jobs.get(id).cloned()
    }

    /// Every job, newest first.
    pub(crate) fn list(&self) -> Vec<Job> {
        let mut all: Vec<Job> = self.lock().jobs.values().cloned().collect();
        all.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
        all
    }

    /// Cancels a queued job at once, or asks a running one to stop (its record says
    /// `cancelled` once it has).
    pub(crate) fn cancel(&self, id: &str) -> Result<Job, CancelError> {
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
    pub(crate) fn stop(&self) {
        let mut inner = self.lock();
        inner.stopping = true;
        for token in inner.running.values() {
            token.cancel();
        }
        self.wake.notify_all();
    }

    /// The runner: takes queued jobs one at a time, runs each on the generation pool, and
    /// records the outcome. Returns after [`Jobs::stop`].
    pub(crate) fn run(self: &Arc<Self>, engine: &Engine, pool: &Pool, cache_dir: &Path) {
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

    pub(super) fn start(&self, inner: &mut Inner, id: String) -> (String, CancelToken) {
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
        let input = self.read_input(id)?;
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
                    "finish_reason": crate::server::openai::finish_reason(g.finish),
                    "usage": crate::server::openai::Usage::from(g.usage),
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
                "finish_reason": crate::server::openai::finish_reason(g.finish),
                "usage": crate::server::openai::Usage::from(g.usage),
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
