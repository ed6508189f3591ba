//! HTTP routes → handlers: `/health`, `/v1/models`, `/v1/chat/completions` (JSON or
//! server-sent events) and `/v1/jobs`. Handlers parse and check on the async threads, read
//! images on the blocking pool, and hand generation to the generation threads.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tokio::sync::mpsc;

use super::auth::{require_key, ApiKey};
use super::chat::{self, Limits};
use super::errors::ApiError;
use super::images::ImagePolicy;
use super::jobs::{self, CancelError, JobRequest, Jobs};
use super::openai::{
    finish_reason, AssistantMessage, ChatChunk, ChatCompletion, ChatRequest, Choice, ChunkChoice,
    Delta, ModelObject, Usage,
};
use super::queue::Pool;
use crate::EmbeddingCache;
use crate::{CancelToken, Engine, Event, Generation, Progress};

/// What every handler shares.
pub(crate) struct AppState {
    /// The loaded model.
    pub(crate) engine: Engine,
    /// The id clients name in `model`.
    pub(crate) model_id: String,
    /// When the model was loaded (unix seconds).
    pub(crate) created: u64,
    /// Generation threads.
    pub(crate) pool: Arc<Pool>,
    /// Image sources allowed.
    pub(crate) images: ImagePolicy,
    /// Per-request limits.
    pub(crate) limits: Limits,
    /// Largest request body.
    pub(crate) body_limit: usize,
    /// Background jobs.
    pub(crate) jobs: Arc<Jobs>,
    /// Image embeddings shared by all requests.
    pub(crate) cache: Option<EmbeddingCache>,
}

type Shared = Arc<AppState>;

/// The router: every route but `/health` behind the API key, when there is one.
pub(crate) fn router(state: Shared, key: Option<ApiKey>) -> Router {
    let body_limit = state.body_limit;
    let api = Router::new()
        .route("/v1/models", get(models))
        .route("/v1/models/{id}", get(model))
        .route(
            "/v1/chat/completions",
            axum::routing::post(chat_completions),
        )
        .route("/v1/jobs", get(list_jobs).post(submit_job))
        .route("/v1/jobs/{id}", get(get_job).delete(cancel_job))
        .fallback(unknown_route)
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .layer(axum::middleware::from_fn_with_state(key, require_key));
    Router::new()
        .route("/health", get(health))
        .merge(api)
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

async fn unknown_route() -> ApiError {
    ApiError::not_found("unknown_route", "no such route")
}

async fn health(State(s): State<Shared>) -> Response {
    Json(serde_json::json!({
        "status": "ok",
        "model": s.model_id,
        "load": s.pool.load(),
    }))
    .into_response()
}

fn model_object(s: &AppState) -> ModelObject {
    ModelObject {
        id: s.model_id.clone(),
        object: "model",
        created: s.created,
        owned_by: "vlm",
    }
}

async fn models(State(s): State<Shared>) -> Response {
    Json(serde_json::json!({"object": "list", "data": [model_object(&s)]})).into_response()
}

async fn model(State(s): State<Shared>, Path(id): Path<String>) -> Response {
    if id != s.model_id {
        return ApiError::not_found(
            "model_not_found",
            format!(
                "the model `{id}` does not exist; this server runs `{}`",
                s.model_id
            ),
        )
        .into_response();
    }
    Json(model_object(&s)).into_response()
}

/// The body, or 413 past the limit.
fn body(bytes: Result<Bytes, BytesRejection>, limit: usize) -> Result<Bytes, ApiError> {
    bytes.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large(limit)
        } else {
            ApiError::bad_request(format!("the request body cannot be read: {r}"))
        }
    })
}

fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("the body is not a valid {what}: {e}")))
}

/// Cancels the generation when dropped: when the client goes away, the handler's future (or
/// the event stream) is dropped, and the generation thread stops at its next token.
struct CancelOnDrop(CancelToken);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// What a generation thread tells its handler.
enum Msg {
    /// The prompt is being run: preprocessing succeeded.
    Started,
    Token(String),
    Done(Result<Generation, ApiError>),
}

async fn chat_completions(
    State(s): State<Shared>,
    bytes: Result<Bytes, BytesRejection>,
) -> Response {
    match chat_inner(s, bytes).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn chat_inner(s: Shared, bytes: Result<Bytes, BytesRejection>) -> Result<Response, ApiError> {
    let bytes = body(bytes, s.body_limit)?;
    let req: ChatRequest = parse(&bytes, "chat completion request")?;
    let plan = chat::plan(&req, &s.model_id, &s.limits)?;
    let state = Arc::clone(&s);
    let messages = tokio::task::spawn_blocking(move || chat::resolve(plan.messages, &state.images))
        .await
        .map_err(|e| ApiError::internal(format!("reading images failed: {e}")))??;

    let cancel = CancelToken::new();
    let guard = CancelOnDrop(cancel.clone());
    let (tx, mut rx) = mpsc::channel::<Msg>(256);
    let (stream, opts) = (plan.stream, plan.opts);
    let state = Arc::clone(&s);
    let task_cancel = cancel.clone();
    let submitted = s.pool.try_submit(Box::new(move || {
        // The client left while the request waited.
        if task_cancel.is_cancelled() {
            return;
        }
        let mut on_event = |e: Event<'_>| {
            let msg = match e {
                Event::Progress(Progress::Prefill { .. }) => Msg::Started,
                Event::Token(t) if stream => Msg::Token(t.to_string()),
                _ => return ControlFlow::Continue(()),
            };
            match tx.blocking_send(msg) {
                Ok(()) => ControlFlow::Continue(()),
                Err(_) => ControlFlow::Break(()),
            }
        };
        let result = chat::generate(
            &state.engine,
            state.cache.as_ref(),
            messages,
            &opts,
            &task_cancel,
            &mut on_event,
        )
        .map_err(ApiError::from);
        let _ = tx.blocking_send(Msg::Done(result));
    }));
    if submitted.is_err() {
        return Err(ApiError::overloaded(
            "the server is busy: every generation slot is taken and the queue is full; retry shortly",
            1,
        ));
    }

    let id = format!("chatcmpl-{:016x}", rand::random::<u64>());
    let created = unix_now();
    if !stream {
        loop {
            match rx.recv().await {
                Some(Msg::Done(result)) => {
                    drop(guard);
                    let g = result?;
                    return Ok(Json(ChatCompletion {
                        id,
                        object: "chat.completion",
                        created,
                        model: s.model_id.clone(),
                        choices: vec![Choice {
                            index: 0,
                            message: AssistantMessage {
                                role: "assistant",
                                content: g.text,
                            },
                            finish_reason: finish_reason(g.finish),
                            logprobs: None,
                        }],
                        usage: Usage::from(g.usage),
                    })
                    .into_response());
                }
                Some(_) => continue,
                None => return Err(ApiError::internal("the generation thread failed")),
            }
        }
    }
    // Streaming: wait until the prompt is accepted, so that bad input still gets a status
    // code rather than an error inside a 200 stream.
    match rx.recv().await {
        Some(Msg::Started) => {}
        Some(Msg::Done(Err(e))) => return Err(e),
        Some(Msg::Done(Ok(_)) | Msg::Token(_)) | None => {
            return Err(ApiError::internal("the generation thread failed"))
        }
    }
    let mut stream = ChunkStream {
        rx,
        _guard: guard,
        id,
        created,
        model: s.model_id.clone(),
        include_usage: plan.include_usage,
        pending: VecDeque::new(),
        finished: false,
    };
    stream.pending.push_back(stream.chunk(
        Delta {
            role: Some("assistant"),
            content: Some(String::new()),
        },
        None,
    ));
    let events = futures_util::stream::unfold(stream, |mut st| async move {
        let event = st.next().await?;
        Some((Ok::<_, Infallible>(event), st))
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// The `chat.completion.chunk` events of one streamed answer, ending in `[DONE]`.
struct ChunkStream {
    rx: mpsc::Receiver<Msg>,
    _guard: CancelOnDrop,
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
    pending: VecDeque<SseEvent>,
    finished: bool,
}

impl ChunkStream {
    fn chunk(&self, delta: Delta, finish: Option<&'static str>) -> SseEvent {
        self.event(&ChatChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk",
            created: self.created,
            model: self.model.clone(),
            choices: vec![ChunkChoice {
                index: 0,
                delta,
                finish_reason: finish,
                logprobs: None,
            }],
            usage: None,
        })
    }

    fn event<T: serde::Serialize>(&self, value: &T) -> SseEvent {
        SseEvent::default().data(serde_json::to_string(value).unwrap_or_default())
    }

    async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Some(e);
            }
            if self.finished {
                return None;
            }
            match self.rx.recv().await {
                Some(Msg::Started) => {}
                Some(Msg::Token(t)) => {
                    return Some(self.chunk(
                        Delta {
                            role: None,
                            content: Some(t),
                        },
                        None,
                    ))
                }
                Some(Msg::Done(Ok(g))) => {
                    self.finished = true;
                    let last = self.chunk(Delta::default(), Some(finish_reason(g.finish)));
                    self.pending.push_back(last);
                    if self.include_usage {
                        let usage = self.event(&ChatChunk {
                            id: self.id.clone(),
                            object: "chat.completion.chunk",
                            created: self.created,
                            model: self.model.clone(),
                            choices: Vec::new(),
                            usage: Some(Usage::from(g.usage)),
                        });
                        self.pending.push_back(usage);
                    }
                    self.pending.push_back(SseEvent::default().data("[DONE]"));
                }
                Some(Msg::Done(Err(e))) => {
                    self.finished = true;
                    self.pending.push_back(self.event(&e.body()));
                    self.pending.push_back(SseEvent::default().data("[DONE]"));
                }
                None => {
                    self.finished = true;
                    let e = ApiError::internal("the generation thread failed");
                    self.pending.push_back(self.event(&e.body()));
                }
            }
        }
    }
}

async fn submit_job(State(s): State<Shared>, bytes: Result<Bytes, BytesRejection>) -> Response {
    match submit_job_inner(s, bytes).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn submit_job_inner(
    s: Shared,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let bytes = body(bytes, s.body_limit)?;
    let req: JobRequest = parse(&bytes, "job request")?;
    jobs::validate(&req, s.limits.max_images)?;
    let state = Arc::clone(&s);
    let job = tokio::task::spawn_blocking(move || {
        let images = req
            .images
            .iter()
            .enumerate()
            .map(|(i, url)| state.images.resolve(url, &format!("images[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        let max_tokens = req
            .max_tokens
            .unwrap_or(state.limits.max_tokens_cap)
            .min(state.limits.max_tokens_cap);
        state
            .jobs
            .submit(&req, images, max_tokens)
            .map_err(|e| ApiError::internal(format!("the job cannot be stored: {e}")))
    })
    .await
    .map_err(|e| ApiError::internal(format!("storing the job failed: {e}")))??;
    Ok((StatusCode::ACCEPTED, Json(job)).into_response())
}

async fn list_jobs(State(s): State<Shared>) -> Response {
    Json(serde_json::json!({"object": "list", "data": s.jobs.list()})).into_response()
}

fn job_not_found(id: &str) -> ApiError {
    ApiError::not_found("job_not_found", format!("no job `{id}`"))
}

async fn get_job(State(s): State<Shared>, Path(id): Path<String>) -> Response {
    match s.jobs.get(&id) {
        Some(job) => Json(job).into_response(),
        None => job_not_found(&id).into_response(),
    }
}

async fn cancel_job(State(s): State<Shared>, Path(id): Path<String>) -> Response {
    match s.jobs.cancel(&id) {
        Ok(job) => Json(job).into_response(),
        Err(CancelError::NotFound) => job_not_found(&id).into_response(),
        Err(CancelError::Finished(state)) => ApiError::conflict(format!(
            "job `{id}` has already finished ({})",
            serde_json::to_value(state)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        ))
        .into_response(),
    }
}

/// The embedding-cache directory under the data directory.
pub(crate) fn embeddings_dir(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join("embeddings")
}
