//! `vlm serve`: one loaded [`Engine`] behind an OpenAI-compatible HTTP API, plus background
//! jobs stored on disk.
//!
//! ```text
//! request ─► auth ─► routes (parse, check) ─► images (blocking pool) ─► queue ─► generation
//!                                                                      thread ─► JSON / SSE
//! POST /v1/jobs ─► jobs (record on disk) ─► runner ─► queue ─► generation thread ─► record
//! ```
//!
//! The HTTP side is async (tokio, axum); the model is not: generation runs on a fixed set of
//! plain threads, so the library itself stays free of an async runtime and this module is
//! compiled only with the `server` feature.

mod auth;
mod chat;
mod errors;
mod images;
mod jobs;
mod openai;
mod queue;
mod routes;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::embedding_cache::{EmbeddingCache, DEFAULT_MAX_BYTES};
use crate::Engine;

/// How to serve.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeOptions {
    /// Address to listen on (port 0 picks a free one).
    pub addr: SocketAddr,
    /// The id clients name in `model`.
    pub model_id: String,
    /// Key every route but `/health` requires, if any.
    pub api_key: Option<String>,
    /// Fetch `http(s)://` image URLs.
    pub allow_remote_images: bool,
    /// Directory local image paths may name.
    pub allow_local_files: Option<PathBuf>,
    /// Generations that run at once.
    pub max_concurrent: usize,
    /// Requests that may wait for a generation slot before new ones get 503.
    pub queue: usize,
    /// Largest request body, in bytes.
    pub body_limit: usize,
    /// Most tokens one request may generate.
    pub max_tokens_cap: usize,
    /// Most images in one request or job.
    pub max_images: usize,
    /// Largest image, in bytes.
    pub max_image_bytes: usize,
    /// Time limit of a remote image fetch.
    pub remote_timeout: Duration,
    /// Where jobs and the embedding cache live.
    pub data_dir: PathBuf,
    /// How long finished jobs are kept.
    pub job_ttl: Duration,
    /// Keep image embeddings across requests.
    pub embedding_cache: bool,
}

impl ServeOptions {
    /// `$XDG_CACHE_HOME/vlm/server`, else `~/.cache/vlm/server`, else a temporary directory.
    pub fn default_data_dir() -> PathBuf {
        crate::paths::cache_dir("server").unwrap_or_else(|| std::env::temp_dir().join("vlm-server"))
    }
}

/// Serves until SIGINT or SIGTERM. `on_ready` is told the bound address once requests are
/// accepted. On a signal the server stops accepting connections, lets in-flight requests
/// finish, records a running job as interrupted (queued jobs wait for the next start), and
/// returns.
pub fn serve(
    engine: Engine,
    opts: ServeOptions,
    on_ready: impl FnOnce(SocketAddr) + Send,
) -> std::io::Result<()> {
    let images = images::ImagePolicy::new(
        opts.allow_remote_images,
        opts.allow_local_files.as_deref(),
        opts.max_image_bytes,
        opts.remote_timeout,
    )?;
    let jobs = jobs::Jobs::open(&opts.data_dir.join("jobs"), opts.job_ttl)?;
    let pool = Arc::new(queue::Pool::new(opts.max_concurrent, opts.queue)?);
    let cache_dir = routes::embeddings_dir(&opts.data_dir);
    let state = Arc::new(routes::AppState {
        engine: engine.clone(),
        model_id: opts.model_id.clone(),
        created: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        pool: Arc::clone(&pool),
        images,
        limits: chat::Limits {
            max_tokens_cap: opts.max_tokens_cap.max(1),
            max_images: opts.max_images,
        },
        body_limit: opts.body_limit,
        jobs: Arc::clone(&jobs),
        cache: opts
            .embedding_cache
            .then(|| EmbeddingCache::new(cache_dir.clone(), DEFAULT_MAX_BYTES)),
    });
    let key = opts.api_key.as_deref().map(auth::ApiKey::new);
    let app = routes::router(state, key);

    let runner = {
        let (jobs, pool, engine) = (Arc::clone(&jobs), Arc::clone(&pool), engine.clone());
        std::thread::Builder::new()
            .name("vlm-jobs".into())
            .spawn(move || jobs.run(&engine, &pool, &cache_dir))?
    };

    // The async side only parses, waits and writes; two threads are plenty and leave the
    // cores to the model.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("vlm-http")
        .enable_all()
        .build()?;
    let served = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(opts.addr).await?;
        on_ready(listener.local_addr()?);
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown_signal())
            .await
    });
    jobs.stop();
    let _ = runner.join();
    pool.shutdown();
    runtime.shutdown_timeout(Duration::from_secs(1));
    served
}

/// Resolves on SIGINT (Ctrl-C) or, on Unix, SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
