//! A preset → its shapes: the `config.json` values of the published architecture, and the
//! widths and token counts that follow from them.

use super::Preset;

impl Preset {
    /// The shapes (smolvlm-spec.md §2.1).
    pub fn layout(self) -> Layout {
        match self {
            Preset::SmolVlm2_256M => Layout {
                text_hidden: 576,
                text_intermediate: 1536,
                text_layers: 30,
                heads: 9,
                kv_heads: 3,
                vocab_size: 49280,
                rope_theta: 100_000.0,
                max_position_embeddings: 8192,
                vision_hidden: 768,
                vision_intermediate: 3072,
                vision_layers: 12,
                vision_heads: 12,
                image_size: 512,
                patch_size: 16,
                scale_factor: 4,
            },
            Preset::SmolVlm2_500M => Layout {
                text_hidden: 960,
                text_intermediate: 2560,
                text_layers: 32,
                heads: 15,
                kv_heads: 5,
                vocab_size: 49280,
                rope_theta: 100_000.0,
                max_position_embeddings: 8192,
                vision_hidden: 768,
                vision_intermediate: 3072,
                vision_layers: 12,
                vision_heads: 12,
                image_size: 512,
                patch_size: 16,
                scale_factor: 4,
            },
            Preset::SmolVlm2_2_2B => Layout {
                text_hidden: 2048,
                text_intermediate: 8192,
                text_layers: 24,
                heads: 32,
                kv_heads: 32,
                vocab_size: 49280,
                rope_theta: 273_768.0,
                max_position_embeddings: 8192,
                vision_hidden: 1152,
                vision_intermediate: 4304,
                vision_layers: 27,
                vision_heads: 16,
                image_size: 384,
                patch_size: 14,
                scale_factor: 3,
            },
            Preset::Tiny => Layout {
                text_hidden: 64,
                text_intermediate: 128,
                text_layers: 2,
                heads: 4,
                kv_heads: 2,
                // The compiled-in tokenizer's 510 tokens, rounded up.
                vocab_size: 512,
                rope_theta: 100_000.0,
                max_position_embeddings: 2048,
                vision_hidden: 32,
                vision_intermediate: 64,
                vision_layers: 2,
                vision_heads: 2,
                image_size: 64,
                patch_size: 16,
                scale_factor: 2,
            },
        }
    }
}

/// The shapes of a SmolVLM2 model (`config.json` values).
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    /// Decoder width.
    pub(crate) text_hidden: usize,
    /// Decoder MLP width.
    pub(crate) text_intermediate: usize,
    /// Decoder layers.
    pub(crate) text_layers: usize,
    /// Query heads.
    pub(crate) heads: usize,
    /// Key/value heads.
    pub(crate) kv_heads: usize,
    /// Rows of the token-embedding and output matrices.
    pub(crate) vocab_size: usize,
    /// RoPE base.
    pub(crate) rope_theta: f64,
    /// Context window.
    pub(crate) max_position_embeddings: usize,
    /// Vision tower width.
    pub(crate) vision_hidden: usize,
    /// Vision MLP width.
    pub(crate) vision_intermediate: usize,
    /// Vision layers.
    pub(crate) vision_layers: usize,
    /// Vision attention heads.
    pub(crate) vision_heads: usize,
    /// Tile side in pixels.
    pub(crate) image_size: usize,
    /// Patch side in pixels.
    pub(crate) patch_size: usize,
    /// Pixel-shuffle factor of the connector.
    pub(crate) scale_factor: usize,
}

impl Layout {
    /// Width of one attention head of the decoder.
    pub(crate) fn head_dim(&self) -> usize {
        self.text_hidden / self.heads.max(1)
    }

    /// Patches per tile side.
    pub(crate) fn patches_per_side(&self) -> usize {
        self.image_size / self.patch_size.max(1)
    }

    /// Image tokens per view: `(image_size / patch_size)² / scale_factor²`.
    pub fn image_seq_len(&self) -> usize {
        let n = self.patches_per_side();
        n * n / (self.scale_factor * self.scale_factor).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_match_the_published_sizes() {
        // Parameter counts of the published f32 checkpoints (smolvlm-spec.md §1: 1.03 GB,
        // 8.99 GB), tokens per tile (§2.2) and the head width of 64 (§2.1).
        let cases = [
            (Preset::SmolVlm2_256M, 256_000_000, 258_000_000, 64),
            (Preset::SmolVlm2_500M, 505_000_000, 510_000_000, 64),
            (Preset::SmolVlm2_2_2B, 2_240_000_000, 2_250_000_000, 81),
        ];
        for (preset, lo, hi, seq) in cases {
            let l = preset.layout();
            let n = l.parameters();
            assert!((lo..hi).contains(&n), "{preset}: {n} parameters");
            assert_eq!(l.image_seq_len(), seq, "{preset}");
            assert_eq!(l.head_dim(), 64, "{preset}");
        }
    }
}
