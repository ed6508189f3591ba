//! Synthetic checkpoints: a preset (the architecture of a published SmolVLM2 model) → its
//! configuration files and seeded random weights, built in memory.
//!
//! A synthetic model has the shapes, tensor names and configuration of the real one, so every
//! kernel does the same work on it, but its weights are random: its answers are noise. It exists
//! to benchmark hardware and compare runtimes without downloading anything.
//!
//! The tokenizer, chat template and generation settings are those of the committed tiny test
//! checkpoint (`tests/fixtures/models/tiny-smolvlm`, compiled in, about 36 kB): its token ids
//! are all below 510, so they index the real-size embedding tables, and the special tokens
//! (`<image>`, `<fake_token_around_image>`, `<row_r_col_c>`, `<end_of_utterance>`) exist under
//! their usual names. Prompts therefore tokenize into more (shorter) tokens than with the real
//! tokenizer; the benchmarks that matter count tokens, not words.
//!
//! A preset's shapes (layout.rs), its tensors and their seeded values (weights.rs) and its
//! configuration and tokenizer files (files.rs) each have their own file.
//!
//! ```
//! use vlm::synthetic::Preset;
//!
//! let preset: Preset = "256m".parse()?;
//! assert_eq!(preset.model_id(), "synthetic:256m");
//! let layout = preset.layout();
//! assert_eq!(layout.image_seq_len(), 64);
//! assert!((250_000_000..260_000_000).contains(&layout.parameters()));
//! # Ok::<(), vlm::Error>(())
//! ```

mod files;
mod layout;
mod weights;

use crate::error::{Error, Result};
use layout::Layout;

/// The seed every synthetic model is built with, so `vlm bench --synthetic 256m` and the
/// checkpoint `vlm synth --preset 256m` writes hold the same weights.
pub(crate) const SEED: u64 = 0x5eed_5eed;

/// A published architecture to build with random weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Preset {
    /// SmolVLM2-256M: SmolLM2-135M-like decoder (576 wide, 30 layers), SigLIP-B/16 at 512 px.
    SmolVlm2_256M,
    /// SmolVLM2-500M: SmolLM2-360M-like decoder (960 wide, 32 layers), SigLIP-B/16 at 512 px.
    SmolVlm2_500M,
    /// SmolVLM2-2.2B: SmolLM2-1.7B-like decoder (2048 wide, 24 layers), SigLIP so400m/14 at
    /// 384 px.
    SmolVlm2_2_2B,
    /// A few-megabyte model of the same family (64-wide decoder, 64 px tiles) for tests and
    /// smoke runs; not a published architecture.
    Tiny,
}

impl Preset {
    /// Every preset, largest last.
    const ALL: [Preset; 4] = [
        Preset::Tiny,
        Preset::SmolVlm2_256M,
        Preset::SmolVlm2_500M,
        Preset::SmolVlm2_2_2B,
    ];

    /// The short name (`256m`, `500m`, `2.2b`, `tiny`).
    fn name(self) -> &'static str {
        match self {
            Preset::SmolVlm2_256M => "256m",
            Preset::SmolVlm2_500M => "500m",
            Preset::SmolVlm2_2_2B => "2.2b",
            Preset::Tiny => "tiny",
        }
    }

    /// The id reports and benchmarks show for it: `synthetic:<name>`.
    pub fn model_id(self) -> String {
        format!("synthetic:{}", self.name())
    }

    /// A directory-style model name (`SmolVLM2-256M-synthetic`), used for GGUF file names.
    pub(crate) fn file_stem(self) -> &'static str {
        match self {
            Preset::SmolVlm2_256M => "SmolVLM2-256M-synthetic",
            Preset::SmolVlm2_500M => "SmolVLM2-500M-synthetic",
            Preset::SmolVlm2_2_2B => "SmolVLM2-2.2B-synthetic",
            Preset::Tiny => "SmolVLM2-tiny-synthetic",
        }
    }
}

impl std::fmt::Display for Preset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Preset {
    type Err = Error;

    /// `256m`, `500m`, `2.2b` or `tiny` (case-insensitive; a `smolvlm2-` prefix is allowed).
    fn from_str(s: &str) -> Result<Self> {
        let lower = s.trim().to_ascii_lowercase();
        let short = lower.strip_prefix("smolvlm2-").unwrap_or(&lower);
        Preset::ALL
            .into_iter()
            .find(|p| p.name() == short)
            .ok_or_else(|| Error::InvalidOption {
                name: "synthetic",
                reason: format!("`{s}` is not a preset (256m, 500m, 2.2b or tiny)"),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_parse_and_print() {
        for p in Preset::ALL {
            assert_eq!(p.name().parse::<Preset>().unwrap(), p);
            assert_eq!(p.to_string(), p.name());
        }
        assert_eq!(
            "SmolVLM2-2.2B".parse::<Preset>().unwrap(),
            Preset::SmolVlm2_2_2B
        );
        let err = "1b".parse::<Preset>().unwrap_err().to_string();
        assert!(err.contains("`1b`") && err.contains("256m"), "{err}");
    }
}
