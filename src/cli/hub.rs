//! Models from the Hub for the command line: download progress bars on stderr, `vlm pull` and
//! `vlm models`.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};

use anyhow::{Context, Result};
use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;
use vlm::hub::{human_bytes, CacheStatus, Hub, HubConfig, HubProgress, Need};
use vlm::registry::{ModelRef, Registry};
use vlm::ModelSource;

/// `vlm pull [MODEL]`
#[derive(Args, Debug)]
pub(crate) struct PullArgs {
    /// A registry alias with an optional variant (`smolvlm2-2.2b:q4_k_m`) or a Hugging Face
    /// repository (`owner/name[@revision]`). Default: the default model.
    #[arg(value_name = "MODEL", env = "VLM_MODEL")]
    model: Option<String>,
    /// Print one JSON object instead of a line of text.
    #[arg(long)]
    json: bool,
}

/// `vlm models`
#[derive(Args, Debug)]
pub(crate) struct ModelsArgs {
    /// Print a JSON array instead of a table.
    #[arg(long)]
    json: bool,
}

/// One progress bar per file, drawn on stderr only when it is a terminal.
struct Bars {
    multi: MultiProgress,
    bars: HashMap<String, ProgressBar>,
}

impl Bars {
    fn new() -> Self {
        let target = if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        Bars {
            multi: MultiProgress::with_draw_target(target),
            bars: HashMap::new(),
        }
    }

    fn bar(&mut self, file: &str, total: u64) -> &ProgressBar {
        let multi = &self.multi;
        self.bars.entry(file.to_string()).or_insert_with(|| {
            let bar = multi.add(ProgressBar::new(total));
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg:40!} [{bar:30}] {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>12} {eta:>4}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_message(file.to_string());
            bar
        })
    }

    fn on(&mut self, event: HubProgress) {
        match event {
            HubProgress::Download {
                file, done, total, ..
            } => {
                let bar = self.bar(&file, total);
                bar.set_length(total);
                bar.set_position(done);
            }
            HubProgress::Done { file, .. } => {
                if let Some(bar) = self.bars.get(&file) {
                    bar.finish();
                }
            }
            HubProgress::Verify { file, .. } => {
                let _ = self.multi.println(format!("verifying {file}"));
            }
            HubProgress::Corrupt {
                repo,
                file,
                problem,
            } => {
                let _ = self.multi.suspend(|| {
                    writeln!(
                        std::io::stderr(),
                        "warning: {repo}: {file}: {problem}; downloading it again"
                    )
                });
            }
            _ => {}
        }
    }
}

fn hub(offline: bool) -> Result<Hub> {
    Ok(Hub::new(HubConfig::from_env()?.or_offline(offline))?)
}

/// The local files of a registry model or Hub repository, downloaded when missing.
/// `weights: false` fetches only what building the processor reads.
pub(crate) fn fetch(
    model: &ModelRef,
    spec: &str,
    weights: bool,
    offline: bool,
) -> Result<ModelSource> {
    let hub = hub(offline)?;
    let need = if weights {
        Need::Everything
    } else {
        Need::Processor
    };
    let mut bars = Bars::new();
    let source = hub.source(model, need, &mut |event| bars.on(event));
    with_hint(source, spec)
}

fn with_hint(source: vlm::Result<ModelSource>, spec: &str) -> Result<ModelSource> {
    match source {
        Err(e @ vlm::Error::NotCached { .. }) => Err(e).with_context(|| {
            format!(
                "model {spec} is not fully downloaded (run `vlm pull {spec}` with network access)"
            )
        }),
        other => other.with_context(|| format!("fetching model {spec}")),
    }
}

pub(crate) fn pull(args: PullArgs) -> Result<()> {
    let spec = args
        .model
        .as_deref()
        .unwrap_or(vlm::registry::DEFAULT_MODEL);
    let model = Registry::builtin()?.resolve(spec)?;
    let hub = hub(false)?;
    let mut bars = Bars::new();
    let source = with_hint(hub.pull(&model, &mut |event| bars.on(event)), spec)?;
    let (dir, files) = match &source {
        ModelSource::Dir(dir) => (dir.clone(), vec![dir.clone()]),
        ModelSource::Gguf {
            model,
            mmproj,
            config_dir,
        } => {
            let mut files = vec![model.clone()];
            files.extend(mmproj.iter().cloned());
            let dir = config_dir
                .clone()
                .unwrap_or_else(|| model.parent().map(|p| p.to_path_buf()).unwrap_or_default());
            (dir, files)
        }
        _ => (Default::default(), Vec::new()),
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if args.json {
        let value = json!({
            "model": model.describe(),
            "config_dir": dir,
            "files": files,
        });
        serde_json::to_writer_pretty(&mut out, &value)?;
        writeln!(out)?;
    } else {
        writeln!(out, "{}: ready", model.describe())?;
        for f in files {
            writeln!(out, "  {}", f.display())?;
        }
    }
    Ok(())
}

pub(crate) fn models(args: ModelsArgs) -> Result<()> {
    let registry = Registry::builtin()?;
    let hub = hub(true)?;
    let mut rows = Vec::new();
    for model in registry.models() {
        let mut variants: Vec<_> = model.variants.iter().collect();
        variants.sort_by_key(|(key, _)| **key != model.default_variant);
        for (key, variant) in variants {
            let files = variant.files();
            let known: u64 = files.iter().filter_map(|f| f.size).sum();
            let unknown = files.iter().filter(|f| f.size.is_none()).count();
            let size = match (known, unknown) {
                (k, 0) => human_bytes(k),
                (0, _) => "?".to_string(),
                (k, _) => format!("≥ {}", human_bytes(k)),
            };
            let cached = match hub.status(model, key) {
                CacheStatus::Complete => "yes".to_string(),
                CacheStatus::Missing => "no".to_string(),
                CacheStatus::Partial { missing } => format!("partial ({missing} missing)"),
            };
            let default = key == &model.default_variant;
            rows.push((model, key, variant, size, known, unknown, cached, default));
        }
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if args.json {
        let list: Vec<_> = rows
            .iter()
            .map(|(m, key, variant, _, known, unknown, cached, default)| {
                json!({
                    "alias": m.alias(),
                    "name": m.name,
                    "variant": key,
                    "default": default,
                    "format": variant.format(),
                    "repo": variant.repo(),
                    "config_repo": m.config.repo,
                    "download_bytes": known,
                    "files_of_unknown_size": unknown,
                    "context_length": m.context_length,
                    "license": m.license,
                    "cached": cached,
                })
            })
            .collect();
        serde_json::to_writer_pretty(&mut out, &list)?;
        writeln!(out)?;
        return Ok(());
    }
    let header = ("MODEL", "REPO", "SIZE", "CACHED");
    let name = |m: &vlm::registry::ModelEntry, key: &str, default: bool| {
        format!("{}:{key}{}", m.alias(), if default { " *" } else { "" })
    };
    let w0 = rows
        .iter()
        .map(|r| name(r.0, r.1, r.7).chars().count())
        .chain([header.0.len()])
        .max()
        .unwrap_or(0);
    let w1 = rows
        .iter()
        .map(|r| r.2.repo().len())
        .chain([header.1.len()])
        .max()
        .unwrap_or(0);
    let w2 = rows
        .iter()
        .map(|r| r.3.chars().count())
        .chain([header.2.len()])
        .max()
        .unwrap_or(0);
    writeln!(
        out,
        "{:w0$}  {:w1$}  {:>w2$}  {}",
        header.0, header.1, header.2, header.3
    )?;
    for (m, key, variant, size, _, _, cached, default) in &rows {
        let label = name(m, key, *default);
        let repo = variant.repo();
        writeln!(
            out,
            "{:w0$}  {:w1$}  {:>w2$}  {cached}",
            label,
            repo,
            size,
            w0 = w0 + label.len() - label.chars().count(),
            w2 = w2 + size.len() - size.chars().count(),
        )?;
    }
    writeln!(
        out,
        "\n* default variant; `--model ALIAS` takes it, `--model ALIAS:VARIANT` another. Sizes are the weights; the JSON files add a few MB. Cache: {}",
        hub.config().cache_dir.display()
    )?;
    Ok(())
}
