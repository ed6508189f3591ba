//! `inspect`: images and a prompt → what the model would be given (resize sizes, tile grids,
//! image-token counts, the expanded prompt), computed by the processor alone: no weights, no
//! forward pass.

use serde::Serialize;

use crate::processor::prompt::Grid;
use crate::processor::{Processor, ProcessorOptions};
use crate::{ImageInput, Message, Result};

/// The preprocessing of one image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageReport {
    /// Where the image came from.
    pub origin: String,
    /// The decoded size, `[width, height]`.
    pub size: [u32; 2],
    /// After the longest-edge resize.
    pub resized: [u32; 2],
    /// After stretching both sides to tile multiples (`None` when the image is not split).
    pub stretched: Option<[u32; 2]>,
    /// Tile rows (0 when not split).
    pub rows: usize,
    /// Tile columns (0 when not split).
    pub cols: usize,
    /// Views given to the vision encoder: the tiles and the global view, or one view.
    pub views: usize,
    /// Image tokens this image takes in the prompt.
    pub image_tokens: usize,
}

/// What a prompt with images turns into.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Inspection {
    /// Side of every view in pixels.
    pub tile_size: u32,
    /// Image tokens per view.
    pub image_seq_len: usize,
    /// One report per image, in order.
    pub images: Vec<ImageReport>,
    /// Image tokens in the prompt.
    pub image_tokens: usize,
    /// Prompt length in tokens, image tokens included.
    pub prompt_tokens: usize,
    /// The chat template's output, one `<image>` marker per image.
    prompt: String,
    /// The prompt after every marker is expanded into tile markers and image tokens.
    pub expanded: String,
}

/// Inspects one user turn of `images` and `prompt` (with the generation prompt appended), as
/// [`crate::Session::send`] would prepare it with `opts`.
pub fn inspect(
    processor: &Processor,
    images: Vec<ImageInput>,
    prompt: &str,
    opts: &ProcessorOptions,
) -> Result<Inspection> {
    let plans = images
        .iter()
        .map(|image| processor.tile_plan(image, opts))
        .collect::<Result<Vec<_>>>()?;
    let origins: Vec<String> = images.iter().map(origin).collect();
    let grids: Vec<Grid> = plans
        .iter()
        .map(|p| Grid {
            rows: p.rows,
            cols: p.cols,
        })
        .collect();
    let message = Message::user(images, prompt);
    let (rendered, expanded, ids) = processor.tokenize_conversation(&[message], &grids, true)?;
    let image_seq_len = processor.image_seq_len();
    let image_tokens = match processor.special_tokens().image {
        Some(id) => ids.iter().filter(|t| **t == id).count(),
        None => 0,
    };
    let reports = plans
        .iter()
        .zip(origins)
        .map(|(plan, origin)| ImageReport {
            origin,
            size: [plan.source.0, plan.source.1],
            resized: [plan.resized.0, plan.resized.1],
            stretched: plan.stretched.map(|(w, h)| [w, h]),
            rows: plan.rows,
            cols: plan.cols,
            views: plan.n_views(),
            image_tokens: plan.n_views() * image_seq_len,
        })
        .collect();
    Ok(Inspection {
        tile_size: plans.first().map_or(0, |p| p.tile_size),
        image_seq_len,
        images: reports,
        image_tokens,
        prompt_tokens: ids.len(),
        prompt: rendered,
        expanded,
    })
}

fn origin(image: &ImageInput) -> String {
    match image {
        ImageInput::Path(p) => p.display().to_string(),
        ImageInput::Encoded(bytes) => format!("{} encoded bytes", bytes.len()),
        ImageInput::Rgb8 { width, height, .. } => format!("{width}x{height} RGB pixels"),
    }
}
