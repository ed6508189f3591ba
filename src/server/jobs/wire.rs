//! The HTTP side of jobs: `POST /v1/jobs` bodies → a checked [`JobRequest`]; a job's state →
//! the [`Job`] record that `GET /v1/jobs/{id}` returns (and that is stored on disk as is).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::server::errors::ApiError;

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum TaskKind {
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
pub(crate) enum CompareFormat {
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
pub(crate) struct JobRequest {
    /// The task.
    pub(crate) task: TaskKind,
    /// Image URLs (the same forms as chat `image_url`s).
    #[serde(default)]
    pub(crate) images: Vec<String>,
    /// The question (`ask`).
    #[serde(default)]
    pub(crate) prompt: Option<String>,
    /// The result's format (`compare`).
    #[serde(default)]
    pub(crate) format: Option<CompareFormat>,
    /// Most tokens per answer (`describe`, `ask`).
    #[serde(default)]
    pub(crate) max_tokens: Option<usize>,
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum State {
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
    pub(super) fn finished(self) -> bool {
        matches!(self, State::Done | State::Failed | State::Cancelled)
    }
}

/// How far a running job is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Progress {
    /// Units done.
    pub(crate) done: usize,
    /// Units in all.
    pub(crate) total: usize,
    /// `image`, `token` or `field`.
    pub(crate) unit: String,
}

/// A job's record, as `GET /v1/jobs/{id}` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Job {
    /// `job_…`.
    pub(crate) id: String,
    /// Always `job`.
    pub(crate) object: String,
    /// The task.
    pub(crate) task: TaskKind,
    /// Where it is.
    pub(crate) state: State,
    /// Unix seconds.
    pub(crate) created_at: u64,
    /// Unix seconds.
    pub(crate) started_at: Option<u64>,
    /// Unix seconds.
    pub(crate) finished_at: Option<u64>,
    /// When a finished job's record will be deleted (unix seconds).
    pub(crate) expires_at: Option<u64>,
    /// Set while running and after.
    pub(crate) progress: Option<Progress>,
    /// The answer, once done.
    pub(crate) result: Option<Value>,
    /// Why it failed (`{"message", "type", "code"}`).
    pub(crate) error: Option<Value>,
}

/// Checks a job request before anything is stored.
pub(crate) fn validate(req: &JobRequest, max_images: usize) -> Result<(), ApiError> {
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
