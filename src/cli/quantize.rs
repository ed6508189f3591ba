//! `vlm quantize DIR`: write a llama.cpp GGUF pair from a Hugging Face checkpoint directory.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use vlm::apps::{self, QuantizeOptions};
use vlm::weights::QuantType;

/// `vlm quantize DIR [--out DIR] [--type TYPE] [--force]`
#[derive(Args, Debug)]
pub(crate) struct QuantizeArgs {
    /// Hugging Face checkpoint directory (config.json, safetensors, tokenizer files).
    #[arg(value_name = "DIR")]
    dir: PathBuf,
    /// Directory for the two GGUF files (default: the checkpoint directory).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Weight type: q8_0, q4_k (written as Q4_K_M), q4_0, f16 or bf16. Norms, biases and the
    /// vision embeddings stay F32; rows that do not fit the type's blocks fall back as in
    /// llama.cpp; the vision tower stays at 8 bits under 4-bit types.
    #[arg(long = "type", value_name = "TYPE", default_value = "q8_0")]
    ty: String,
    /// Overwrite output files that already exist.
    #[arg(long)]
    force: bool,
}

pub(crate) fn run(args: QuantizeArgs) -> Result<()> {
    let ty: QuantType = args.ty.parse().map_err(|e| match e {
        vlm::Error::InvalidOption { reason, .. } => vlm::Error::InvalidOption {
            name: "type",
            reason,
        },
        other => other,
    })?;
    let out = args.out.clone().unwrap_or_else(|| args.dir.clone());
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} tensors  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let report = apps::quantize(
        &args.dir,
        &out,
        ty,
        &QuantizeOptions { force: args.force },
        &mut |p| {
            bar.set_length(p.total as u64);
            bar.set_position(p.done as u64);
            bar.set_message(format!("{}: {}", p.file, p.tensor));
        },
    );
    bar.finish_and_clear();
    let report = report.with_context(|| format!("quantizing {}", args.dir.display()))?;

    let stdout = std::io::stdout();
    let mut w = stdout.lock();
    for f in &report.files {
        let types: Vec<String> = f.types.iter().map(|(t, n)| format!("{t}×{n}")).collect();
        writeln!(
            w,
            "{}  {}  {}",
            f.path.display(),
            human_size(f.bytes),
            types.join(", ")
        )?;
    }
    w.flush()?;
    Ok(())
}

fn human_size(bytes: u64) -> String {
    let b = bytes as f64;
    match bytes {
        0..=1_048_575 => format!("{:.1} KiB", b / 1024.0),
        1_048_576..=1_073_741_823 => format!("{:.1} MiB", b / 1_048_576.0),
        _ => format!("{:.2} GiB", b / 1_073_741_824.0),
    }
}
