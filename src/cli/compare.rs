//! `vlm compare SHOT|DIR…`: arguments → [`vlm::apps::compare`] → a Markdown, JSON or HTML
//! card on stdout or in `--out`; progress on stderr (only when it is a terminal). `--from-json`
//! renders a saved card again without the model.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use vlm::apps::compare::{self, render, CompareEvent, CompareOptions};
use vlm::ImageInput;

use crate::cli::args::ModelArgs;

/// `vlm compare SCREENSHOT SCREENSHOT...`
#[derive(Args, Debug)]
pub(crate) struct CompareArgs {
    /// Screenshots of two or more tools' landing, pricing, review or model-card pages; a
    /// directory stands for its PNG, JPEG, WebP and GIF files in name order.
    #[arg(
        value_name = "SCREENSHOT",
        required_unless_present_any = ["schema", "from_json"],
        conflicts_with = "from_json"
    )]
    shots: Vec<PathBuf>,
    /// Render a card saved with `--format json` (vlm-compare-card/2 or /1) again, in
    /// `--format`, without loading a model.
    #[arg(long, value_name = "CARD.json")]
    from_json: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Md)]
    format: Format,
    /// Write the card to this file instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    out: Option<PathBuf>,
    /// Print the card's JSON schema and exit.
    #[arg(long)]
    schema: bool,
    /// Neither read nor write the image-embedding cache.
    #[arg(long)]
    no_cache: bool,
    /// Directory of the image-embedding cache (default: $XDG_CACHE_HOME/vlm/embeddings or
    /// ~/.cache/vlm/embeddings).
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Size cap of the embedding cache, in MiB; the oldest entries go first.
    #[arg(long, value_name = "MIB", default_value_t = 512)]
    cache_max_mib: u64,
    /// Feed each screenshot as one downscaled view instead of tiles plus a global view.
    #[arg(long)]
    no_splitting: bool,
    /// Print where the time went (encode, prefill, questions) to stderr.
    #[arg(long, short = 'v')]
    verbose: bool,
    #[command(flatten)]
    model: ModelArgs,
}

/// How the card is written.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// An aligned Markdown table and the verdict.
    Md,
    /// JSON following `vlm compare --schema`.
    Json,
    /// One self-contained HTML page with thumbnails of the screenshots.
    Html,
}

pub(crate) fn run(args: CompareArgs) -> Result<()> {
    if args.schema {
        return emit(
            &args,
            &serde_json::to_string_pretty(&compare::card_schema())?,
        );
    }
    if let Some(path) = &args.from_json {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let comparison = compare::Comparison::from_json(&text, &path.display().to_string())?;
        let thumbs = vec![None; comparison.tools.len()];
        return emit(&args, &render_as(args.format, &comparison, &thumbs)?);
    }
    let (shots, skipped) = compare::screenshots_at(&args.shots)?;
    for path in skipped {
        eprintln!(
            "warning: skipping {}: not a PNG, JPEG, WebP or GIF file",
            path.display()
        );
    }
    if shots.len() < 2 {
        // Before loading a model: the answer does not depend on it.
        return Err(vlm::Error::InvalidOption {
            name: "screenshots",
            reason: format!("compare needs two or more screenshots, got {}", shots.len()),
        }
        .into());
    }
    let engine = crate::cli::run::load(&args.model, None)?;
    let opts = CompareOptions {
        cache: !args.no_cache,
        cache_dir: args.cache_dir.clone(),
        cache_max_bytes: args.cache_max_mib.saturating_mul(1 << 20),
        processor: args.no_splitting.then(|| vlm::ProcessorOptions {
            image_splitting: Some(false),
            ..engine.processor_options().clone()
        }),
    };
    let per_shot = compare::Field::ALL.len() as u64 + 1;
    let bar = ProgressBar::with_draw_target(
        Some(per_shot * shots.len() as u64),
        ProgressDrawTarget::stderr(),
    );
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{bar:24}] {pos}/{len}  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let mut current = String::new();
    let comparison = compare::compare_with_progress(
        &engine,
        &shots,
        &opts,
        &mut |event| match event {
            CompareEvent::Screenshot { index, total, name } => {
                current = format!("{}/{total} {name}", index + 1);
                bar.set_position(per_shot * index as u64);
                bar.set_message(format!("{current}: encoding"));
            }
            CompareEvent::Opened { opened, .. } => {
                bar.inc(1);
                if let Some(why) = &opened.cache_corrupt {
                    bar.suspend(|| {
                        eprintln!("note: {current}: embedding cache entry unusable ({why}); encoded again")
                    });
                }
                let how = if opened.from_cache {
                    "cached"
                } else {
                    "encoded"
                };
                bar.set_message(format!("{current}: {how}, {} views", opened.views));
            }
            CompareEvent::Field { field, .. } => {
                bar.inc(1);
                bar.set_message(format!("{current}: {}", field.label().to_lowercase()));
            }
            CompareEvent::Warning(w) => bar.suspend(|| eprintln!("warning: {w}")),
            _ => {}
        },
    );
    bar.finish_and_clear();
    let comparison = comparison.context("comparing screenshots")?;
    if args.verbose {
        let s = &comparison.stats;
        eprintln!(
            "{} screenshots ({} encoded, {} from cache): encode {:.2}s, image prefill {:.2}s, {} questions {:.2}s ({} unfinished)",
            comparison.tools.len(),
            s.encoded,
            s.cache_hits,
            s.encode.as_secs_f64(),
            s.prefill.as_secs_f64(),
            s.fields,
            s.questions.as_secs_f64(),
            s.unfinished,
        );
    }
    let thumbs: Vec<Option<String>> = match args.format {
        Format::Html => shots
            .iter()
            .map(|shot| {
                let ImageInput::Path(p) = shot else {
                    return None;
                };
                let bytes = std::fs::read(p).ok()?;
                render::thumbnail_data_url(&bytes, 480).ok()
            })
            .collect(),
        _ => Vec::new(),
    };
    emit(&args, &render_as(args.format, &comparison, &thumbs)?)
}

fn render_as(
    format: Format,
    comparison: &compare::Comparison,
    thumbs: &[Option<String>],
) -> Result<String> {
    Ok(match format {
        Format::Md => render::markdown(comparison),
        Format::Json => render::json(comparison),
        Format::Html => render::html(comparison, thumbs)?,
    })
}

fn emit(args: &CompareArgs, text: &str) -> Result<()> {
    match &args.out {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
        }
        None => {
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            out.write_all(text.as_bytes())?;
            if !text.ends_with('\n') {
                writeln!(out)?;
            }
            out.flush()?;
            Ok(())
        }
    }
}
