//! Which type each matrix gets when a checkpoint is quantized (at load, or by `vlm quantize`).
//!
//! The policy keeps the parts that are most sensitive and least costly at 8 bits: the vision
//! tower and connector run once per tile on hundreds of tokens, so 4-bit weights there cost
//! accuracy without speeding decode, which only reads the text weights.

use candle_core::quantized::GgmlDType;
use candle_core::DType;

use crate::error::{Error, Result};

/// A user-facing quantization choice (`--quant`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuantType {
    /// 8-bit blocks of 32 (llama.cpp Q8_0).
    Q8_0,
    /// 4-bit k-quant (Q4_K) for text matrices whose rows are multiples of 256.
    Q4K,
    /// 4-bit blocks of 32 with a scale (Q4_0).
    Q4_0,
    /// Half precision.
    F16,
    /// bfloat16.
    Bf16,
}

impl std::str::FromStr for QuantType {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "q8_0" => QuantType::Q8_0,
            "q4_k" | "q4_k_m" => QuantType::Q4K,
            "q4_0" => QuantType::Q4_0,
            "f16" => QuantType::F16,
            "bf16" => QuantType::Bf16,
            other => {
                return Err(Error::InvalidOption {
                    name: "quant",
                    reason: format!("`{other}` is not one of q8_0, q4_k, q4_0, f16, bf16"),
                })
            }
        })
    }
}

/// What one matrix becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// A ggml block type.
    Quant(GgmlDType),
    /// A dense matrix in this dtype.
    Dense(DType),
}

/// Per-part types of a quantization choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuantPolicy {
    /// Decoder matrices (attention and MLP).
    text: Target,
    /// Vision tower and connector matrices.
    pub(crate) vision: Target,
    /// Token embeddings (and a tied `lm_head`).
    embeddings: Target,
}

impl QuantPolicy {
    /// The documented policy of each choice.
    pub(crate) fn new(t: QuantType) -> Self {
        let q8 = Target::Quant(GgmlDType::Q8_0);
        match t {
            QuantType::Q8_0 => QuantPolicy {
                text: q8,
                vision: q8,
                embeddings: q8,
            },
            QuantType::Q4K => QuantPolicy {
                text: Target::Quant(GgmlDType::Q4K),
                vision: q8,
                embeddings: q8,
            },
            QuantType::Q4_0 => QuantPolicy {
                text: Target::Quant(GgmlDType::Q4_0),
                vision: q8,
                embeddings: q8,
            },
            QuantType::F16 => {
                let d = Target::Dense(DType::F16);
                QuantPolicy {
                    text: d,
                    vision: d,
                    embeddings: d,
                }
            }
            QuantType::Bf16 => {
                let d = Target::Dense(DType::BF16);
                QuantPolicy {
                    text: d,
                    vision: d,
                    embeddings: d,
                }
            }
        }
    }

    /// The type of the matrix with Hugging Face name `name` and rows of `row_len` elements.
    pub(crate) fn matrix(&self, name: &str, row_len: usize) -> Target {
        let target =
            if name.starts_with("model.vision_model.") || name.starts_with("model.connector.") {
                self.vision
            } else {
                self.text
            };
        fit_rows(target, row_len)
    }

    /// The type of an embedding matrix with rows of `row_len` elements.
    pub(crate) fn embedding(&self, row_len: usize) -> Target {
        fit_rows(self.embeddings, row_len)
    }
}

/// llama.cpp's fallback when rows do not divide into blocks: k-quants (256-element blocks) drop
/// to the nearest 32-element type, and rows that are not multiples of 32 stay F16.
fn fit_rows(target: Target, row_len: usize) -> Target {
    let Target::Quant(ty) = target else {
        return target;
    };
    let ty = if row_len.is_multiple_of(ty.block_size()) {
        ty
    } else {
        match ty {
            GgmlDType::Q2K | GgmlDType::Q3K => GgmlDType::Q4_0,
            GgmlDType::Q4K => GgmlDType::Q5_0,
            GgmlDType::Q5K => GgmlDType::Q5_1,
            GgmlDType::Q6K | GgmlDType::Q8K => GgmlDType::Q8_0,
            other => other,
        }
    };
    if row_len.is_multiple_of(ty.block_size()) {
        Target::Quant(ty)
    } else {
        Target::Dense(DType::F16)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_fallbacks_follow_llama_cpp() {
        let q4k = Target::Quant(GgmlDType::Q4K);
        assert_eq!(fit_rows(q4k, 1536), q4k);
        assert_eq!(fit_rows(q4k, 576), Target::Quant(GgmlDType::Q5_0));
        assert_eq!(
            fit_rows(Target::Quant(GgmlDType::Q8_0), 4304),
            Target::Dense(DType::F16)
        );
        assert_eq!(
            fit_rows(Target::Quant(GgmlDType::Q6K), 960),
            Target::Quant(GgmlDType::Q8_0)
        );
    }

    #[test]
    fn vision_stays_at_eight_bits_under_four_bit_text() {
        let p = QuantPolicy::new("q4_k".parse().unwrap());
        assert_eq!(
            p.matrix("model.vision_model.encoder.layers.0.mlp.fc1.weight", 768),
            Target::Quant(GgmlDType::Q8_0)
        );
        assert_eq!(
            p.matrix("model.text_model.layers.0.mlp.down_proj.weight", 1536),
            Target::Quant(GgmlDType::Q4K)
        );
        assert!("q3".parse::<QuantType>().is_err());
    }
}
