//! `vlm inspect IMAGE... [PROMPT]`: what the model would be given (sizes, tile grid, token
//! counts, expanded prompt), from the processor alone.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use vlm::{apps, ImageInput};

use crate::cli::args::ModelArgs;

/// `vlm inspect IMAGE... [PROMPT]`
#[derive(Args, Debug)]
pub(crate) struct InspectArgs {
    /// One or more images, then optionally the prompt (default: the `describe` question).
    #[arg(required = true, value_name = "IMAGE... [PROMPT]", num_args = 1..)]
    inputs: Vec<String>,
    #[command(flatten)]
    model: ModelArgs,
    /// Feed each image as one downscaled view instead of tiles plus a global view.
    #[arg(long)]
    no_splitting: bool,
    /// Print one JSON object (the expanded prompt in full) instead of a summary.
    #[arg(long)]
    json: bool,
}

impl InspectArgs {
    /// The images and the prompt: the last argument is the prompt unless it is a file.
    fn split(&self) -> (Vec<PathBuf>, &str) {
        match self.inputs.split_last() {
            Some((last, images)) if !Path::new(last).is_file() => {
                (images.iter().map(PathBuf::from).collect(), last)
            }
            _ => (
                self.inputs.iter().map(PathBuf::from).collect(),
                apps::DESCRIBE_PROMPT,
            ),
        }
    }
}

pub(crate) fn run(args: InspectArgs) -> Result<()> {
    let (paths, prompt) = args.split();
    if paths.is_empty() {
        bail!(
            "invalid option `IMAGE`: give at least one image to inspect (`{prompt}` is not a file)"
        );
    }
    let source = args.model.source(false)?;
    let processor = vlm::engine::load_processor(&source)
        .with_context(|| format!("loading model {}", args.model.spec()))?;
    let images: Vec<ImageInput> = paths.iter().cloned().map(ImageInput::Path).collect();
    let report = apps::inspect(
        &processor,
        images,
        prompt,
        &vlm::ProcessorOptions {
            image_splitting: args.no_splitting.then_some(false),
            image_limits: args.model.image_limits(),
            ..Default::default()
        },
    )?;

    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if args.json {
        let mut value = serde_json::to_value(&report)?;
        value["model"] = args.model.spec().into();
        serde_json::to_writer_pretty(&mut out, &value)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(out, "model: {}", args.model.spec())?;
    for (i, img) in report.images.iter().enumerate() {
        writeln!(out, "image {}: {}", i + 1, img.origin)?;
        let [w, h] = img.size;
        let [rw, rh] = img.resized;
        match img.stretched {
            Some([sw, sh]) => writeln!(
                out,
                "  {w}x{h} → {rw}x{rh} (longest edge) → {sw}x{sh} (multiples of {})",
                report.tile_size
            )?,
            None => writeln!(out, "  {w}x{h} → {rw}x{rh} (longest edge), not split")?,
        }
        if img.rows * img.cols > 0 {
            writeln!(
                out,
                "  {} rows x {} cols + global view = {} views x {} = {} image tokens",
                img.rows, img.cols, img.views, report.image_seq_len, img.image_tokens
            )?;
        } else {
            writeln!(
                out,
                "  1 view x {} = {} image tokens",
                report.image_seq_len, img.image_tokens
            )?;
        }
    }
    writeln!(
        out,
        "prompt: {} tokens ({} image tokens)",
        report.prompt_tokens, report.image_tokens
    )?;
    writeln!(out, "expanded prompt (runs of image tokens shortened):")?;
    writeln!(out, "{}", shorten_runs(&report.expanded, "<image>"))?;
    Ok(())
}

/// `<image><image><image>` → `<image>×3`: a 17-view image is 1088 tokens otherwise.
fn shorten_runs(text: &str, token: &str) -> String {
    let mut out = String::with_capacity(text.len() / 4);
    let mut rest = text;
    while let Some(at) = rest.find(token) {
        out.push_str(&rest[..at]);
        let mut n = 0;
        while rest[at + n * token.len()..].starts_with(token) {
            n += 1;
        }
        out.push_str(token);
        if n > 1 {
            out.push_str(&format!("×{n}"));
        }
        rest = &rest[at + n * token.len()..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn image_token_runs_are_counted() {
        assert_eq!(
            super::shorten_runs("a<image><image>b<image>", "<image>"),
            "a<image>×2b<image>"
        );
    }
}
