//! `vlm serve`: flags → [`vlm::server::ServeOptions`], load the model, serve until a signal.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::Args;

use super::args::ModelArgs;

#[derive(Args, Debug)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Address to listen on. Anything but loopback exposes the model to the network: set
    /// --api-key then.
    #[arg(long, default_value = "127.0.0.1", value_name = "IP")]
    host: IpAddr,
    /// Port to listen on (0 picks a free one; the address is printed on stderr).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// The name clients give as `model` (default: the model's alias, directory or file name).
    #[arg(long, value_name = "NAME")]
    served_model_name: Option<String>,
    /// Require `Authorization: Bearer <KEY>` on every route but /health.
    #[arg(long, env = "VLM_API_KEY", value_name = "KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Fetch http(s):// image URLs (size cap --max-image-bytes, timeout --remote-timeout).
    #[arg(long)]
    allow_remote_images: bool,
    /// Accept file:// URLs and paths naming images inside DIR (nothing outside it, whether by
    /// `..` or by a symbolic link).
    #[arg(long, value_name = "DIR")]
    allow_local_files: Option<PathBuf>,
    /// Generations that run at once.
    #[arg(long, default_value_t = 1, value_name = "N")]
    max_concurrent: usize,
    /// Requests that may wait for a generation slot; past that, new ones get 503 with
    /// Retry-After.
    #[arg(long, default_value_t = 16, value_name = "N")]
    queue: usize,
    /// Largest request body in bytes (images in data: URLs count).
    #[arg(long, default_value_t = 32 << 20, value_name = "BYTES")]
    body_limit: usize,
    /// Most tokens one request may generate (also the default when it names none).
    #[arg(long, default_value_t = 1024, value_name = "N")]
    max_tokens_cap: usize,
    /// Most images in one request or job.
    #[arg(long, default_value_t = 16, value_name = "N")]
    max_images: usize,
    /// Largest image in bytes, from any source.
    #[arg(long, default_value_t = 20 << 20, value_name = "BYTES")]
    max_image_bytes: usize,
    /// Time limit of a remote image fetch, in seconds.
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    remote_timeout: u64,
    /// Where jobs and cached image embeddings are kept (default: ~/.cache/vlm/server).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Hours a finished job's result is kept.
    #[arg(long, default_value_t = 24.0, value_name = "HOURS")]
    job_ttl_hours: f64,
    /// Do not keep image embeddings between requests.
    #[arg(long)]
    no_embedding_cache: bool,
}

impl ServeArgs {
    /// The model id clients name: an alias as given, a directory's or file's name.
    fn model_id(&self) -> String {
        if let Some(name) = &self.served_model_name {
            return name.clone();
        }
        let spec = self.model.spec();
        let path = std::path::Path::new(&spec);
        if path.exists() {
            if let Some(name) = path.file_name() {
                return name.to_string_lossy().into_owned();
            }
        }
        spec
    }

    fn options(&self) -> Result<vlm::server::ServeOptions> {
        if self.max_concurrent == 0 {
            bail!("invalid option `--max-concurrent`: 0 would never generate; use at least 1");
        }
        if !(self.job_ttl_hours.is_finite() && self.job_ttl_hours >= 0.0) {
            bail!(
                "invalid option `--job-ttl-hours`: {} must be 0 or more",
                self.job_ttl_hours
            );
        }
        Ok(vlm::server::ServeOptions {
            addr: SocketAddr::new(self.host, self.port),
            model_id: self.model_id(),
            api_key: self.api_key.clone().filter(|k| !k.is_empty()),
            allow_remote_images: self.allow_remote_images,
            allow_local_files: self.allow_local_files.clone(),
            max_concurrent: self.max_concurrent,
            queue: self.queue,
            body_limit: self.body_limit,
            max_tokens_cap: self.max_tokens_cap,
            max_images: self.max_images,
            max_image_bytes: self.max_image_bytes,
            remote_timeout: Duration::from_secs(self.remote_timeout),
            data_dir: self
                .data_dir
                .clone()
                .unwrap_or_else(vlm::server::ServeOptions::default_data_dir),
            job_ttl: Duration::from_secs_f64(self.job_ttl_hours * 3600.0),
            embedding_cache: !self.no_embedding_cache,
        })
    }
}

pub(crate) fn run(args: ServeArgs) -> Result<()> {
    let opts = args.options()?;
    let engine = super::run::load(&args.model, None)?;
    let id = opts.model_id.clone();
    let data_dir = opts.data_dir.clone();
    vlm::server::serve(engine, opts, |addr| {
        eprintln!(
            "vlm serve: model `{id}` on http://{addr} (data in {})",
            data_dir.display()
        );
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        serve: ServeArgs,
    }

    #[test]
    fn defaults_bind_loopback_and_one_generation() {
        let w = Wrap::parse_from(["vlm", "--model", "smolvlm2-256m"]);
        let o = w.serve.options().unwrap();
        assert_eq!(o.addr.to_string(), "127.0.0.1:8080");
        assert_eq!(o.max_concurrent, 1);
        assert_eq!(o.model_id, "smolvlm2-256m");
        assert!(!o.allow_remote_images && o.allow_local_files.is_none());
    }

    #[test]
    fn zero_concurrency_is_refused() {
        let w = Wrap::parse_from(["vlm", "--max-concurrent", "0"]);
        assert!(w
            .serve
            .options()
            .unwrap_err()
            .to_string()
            .contains("--max-concurrent"));
    }
}
