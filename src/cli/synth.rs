//! `vlm synth --preset 256m --out DIR [--quant TYPE]`: write a synthetic checkpoint.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use vlm::apps::{self, SynthOptions, SynthStep};
use vlm::synthetic::Preset;
use vlm::weights::QuantType;

/// `vlm synth --preset PRESET --out DIR [--quant TYPE]`
#[derive(Args, Debug)]
pub(crate) struct SynthArgs {
    /// Architecture: 256m, 500m, 2.2b (SmolVLM2), or tiny (a few MB, for smoke tests). The
    /// weights are the ones `--synthetic PRESET` builds in memory (fixed seed). Memory while
    /// writing: about 1 GB (256m), 2 GB (500m), 9 GB (2.2b).
    #[arg(long, value_name = "PRESET")]
    preset: Preset,
    /// Output directory; it must not exist yet or be empty (nothing is overwritten).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Write a llama.cpp GGUF pair (text model + mmproj) quantized to this type instead of
    /// model.safetensors: q8_0, q4_k, q4_0, f16 or bf16 (the `vlm quantize` policy).
    #[arg(long, value_name = "TYPE")]
    quant: Option<String>,
}

pub(crate) fn run(args: SynthArgs) -> Result<()> {
    let quant = match &args.quant {
        Some(q) => Some(q.parse::<QuantType>()?),
        None => None,
    };
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    let report = apps::synth(
        args.preset,
        &args.out,
        &SynthOptions { quant },
        &mut |step| match step {
            SynthStep::Drawing => bar.set_message("drawing random weights"),
            SynthStep::Writing(path) => bar.set_message(format!("writing {}", path.display())),
            SynthStep::Tensor(p) => {
                bar.set_message(format!("{}/{} {}: {}", p.done, p.total, p.file, p.tensor))
            }
        },
    );
    bar.finish_and_clear();
    let report = report.with_context(|| {
        format!(
            "writing synthetic {} into {}",
            args.preset,
            args.out.display()
        )
    })?;

    let stdout = std::io::stdout();
    let mut w = stdout.lock();
    writeln!(
        w,
        "{}: {} parameters, random weights",
        args.preset.model_id(),
        report.parameters
    )?;
    for f in &report.files {
        writeln!(w, "{}  {} bytes", f.path.display(), f.bytes)?;
    }
    match &report.gguf {
        Some((text, mmproj)) => writeln!(
            w,
            "benchmark: vlm bench --model {} --mmproj {}",
            text.display(),
            mmproj.display()
        )?,
        None => writeln!(w, "benchmark: vlm bench --model {}", args.out.display())?,
    }
    w.flush()?;
    Ok(())
}
