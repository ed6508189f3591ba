//! `config.json` → typed, fully resolved model configuration, with exactly the defaults
//! transformers applies to missing keys.

use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};

/// Which transformers class family the checkpoint belongs to.
///
/// The two share weights, module names and math; they differ in their processor
/// (SmolVLM adds video) and in the id conventions of their tokenizers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    /// `model_type: "smolvlm"` (SmolVLM2 checkpoints).
    SmolVlm,
    /// `model_type: "idefics3"` (SmolVLM v1 checkpoints).
    Idefics3,
}

/// Activation function of a feed-forward block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Activation {
    /// tanh-approximated GELU (`gelu_pytorch_tanh`, `gelu_new`).
    GeluTanh,
    /// exact (erf) GELU (`gelu`).
    GeluErf,
    /// SiLU / swish.
    Silu,
}

impl Activation {
    fn parse(name: &str, path: &Path) -> Result<Self> {
        match name {
            "gelu_pytorch_tanh" | "gelu_new" | "gelu_fast" => Ok(Activation::GeluTanh),
            "gelu" => Ok(Activation::GeluErf),
            "silu" | "swish" => Ok(Activation::Silu),
            other => Err(Error::InvalidConfig {
                path: path.to_path_buf(),
                problem: format!("unsupported activation `{other}`"),
            }),
        }
    }
}

/// The SigLIP vision tower.
#[derive(Debug, Clone, PartialEq)]
pub struct VisionConfig {
    /// Width of the tower, `D_v`.
    pub(crate) hidden_size: usize,
    /// Width of the MLP.
    pub(crate) intermediate_size: usize,
    /// Number of encoder layers.
    pub(crate) num_hidden_layers: usize,
    /// Number of attention heads.
    pub(crate) num_attention_heads: usize,
    /// Input channels (3).
    pub(crate) num_channels: usize,
    /// Tile side in pixels, `M`.
    pub(crate) image_size: usize,
    /// Patch side in pixels, `p`.
    pub(crate) patch_size: usize,
    /// MLP activation.
    pub(crate) hidden_act: Activation,
    /// LayerNorm epsilon.
    pub(crate) layer_norm_eps: f64,
}

impl VisionConfig {
    /// Patches along one side of a tile, `N = ⌊M / p⌋`.
    pub fn patches_per_side(&self) -> usize {
        self.image_size / self.patch_size
    }

    /// Width of one attention head.
    pub(crate) fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }
}

/// The Llama text decoder.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TextConfig {
    /// Vocabulary size (rows of the embedding matrix).
    pub(crate) vocab_size: usize,
    /// Width of the decoder, `D_t`.
    pub(crate) hidden_size: usize,
    /// Width of the gated MLP.
    pub(crate) intermediate_size: usize,
    /// Number of decoder layers.
    pub(crate) num_hidden_layers: usize,
    /// Number of query heads.
    pub(crate) num_attention_heads: usize,
    /// Number of key/value heads (GQA when smaller than the query heads).
    pub(crate) num_key_value_heads: usize,
    /// Width of one attention head.
    pub(crate) head_dim: usize,
    /// RMSNorm epsilon.
    pub(crate) rms_norm_eps: f64,
    /// RoPE base.
    pub(crate) rope_theta: f64,
    /// Context window.
    pub(crate) max_position_embeddings: usize,
    /// MLP activation.
    pub(crate) hidden_act: Activation,
}

/// Everything `config.json` says, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    /// Class family.
    pub(crate) family: Family,
    /// Token id whose positions receive image features.
    pub image_token_id: u32,
    /// Pixel-shuffle factor `s` of the connector.
    pub(crate) scale_factor: usize,
    /// Whether `lm_head` shares the token embedding matrix.
    pub(crate) tie_word_embeddings: bool,
    /// Vision tower (absent for text-only checkpoints such as a lone text GGUF).
    pub vision: Option<VisionConfig>,
    /// Text decoder.
    pub(crate) text: TextConfig,
}

impl ModelConfig {
    /// Image tokens per tile: `(M/p)² / s²` (0 without a vision tower).
    pub(crate) fn image_seq_len(&self) -> usize {
        self.vision.as_ref().map_or(0, |v| {
            let n = v.patches_per_side();
            (n * n) / (self.scale_factor * self.scale_factor)
        })
    }

    /// Parses `config.json` text. `path` is only used in error messages.
    pub(crate) fn parse(json: &str, path: &Path) -> Result<Self> {
        let invalid = |problem: String| Error::InvalidConfig {
            path: path.to_path_buf(),
            problem,
        };
        let raw: RawConfig =
            serde_json::from_str(json).map_err(|e| invalid(format!("not a valid config: {e}")))?;
        let family = match raw.model_type.as_deref() {
            Some("smolvlm") => Family::SmolVlm,
            Some("idefics3") => Family::Idefics3,
            Some(other) => {
                return Err(Error::UnsupportedModel {
                    path: path.to_path_buf(),
                    found: other.to_string(),
                })
            }
            None => {
                return Err(Error::UnsupportedModel {
                    path: path.to_path_buf(),
                    found: "<none>".to_string(),
                })
            }
        };
        let vision = resolve_vision(raw.vision_config.unwrap_or_default(), path)?;
        // transformers builds a missing text_config as LlamaConfig(rms_norm_eps=1e-5); a present
        // one gets plain Llama defaults for every missing key (rms_norm_eps 1e-6 included).
        let text = match raw.text_config {
            Some(t) => resolve_text(t, 1e-6, path)?,
            None => resolve_text(RawText::default(), 1e-5, path)?,
        };
        let cfg = ModelConfig {
            family,
            // Defaults of SmolVLMConfig / Idefics3Config (they describe no SmolVLM checkpoint,
            // but they are what transformers uses when the key is absent).
            image_token_id: raw.image_token_id.unwrap_or(128_257),
            scale_factor: raw.scale_factor.unwrap_or(2),
            tie_word_embeddings: raw.tie_word_embeddings.unwrap_or(false),
            vision: Some(vision),
            text,
        };
        cfg.check().map_err(invalid)?;
        Ok(cfg)
    }

    /// Checks that the numbers describe a model that can run; the message names the key.
    pub(crate) fn check(&self) -> std::result::Result<(), String> {
        let t = &self.text;
        let positive = [
            ("text_config.hidden_size", t.hidden_size),
            ("text_config.num_attention_heads", t.num_attention_heads),
            ("text_config.num_key_value_heads", t.num_key_value_heads),
            ("text_config.num_hidden_layers", t.num_hidden_layers),
            ("text_config.vocab_size", t.vocab_size),
            ("text_config.head_dim", t.head_dim),
            ("scale_factor", self.scale_factor),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(format!("`{name}` must be positive"));
            }
        }
        if !t.num_attention_heads.is_multiple_of(t.num_key_value_heads) {
            return Err(format!(
                "{} attention heads are not a multiple of {} key/value heads",
                t.num_attention_heads, t.num_key_value_heads
            ));
        }
        if !t.head_dim.is_multiple_of(2) {
            return Err(format!(
                "text head_dim {} must be even for RoPE",
                t.head_dim
            ));
        }
        if let Some(v) = &self.vision {
            self.check_vision(v)?;
            if self.image_token_id as usize >= t.vocab_size {
                return Err(format!(
                    "image_token_id {} is outside the vocabulary of {} tokens",
                    self.image_token_id, t.vocab_size
                ));
            }
        }
        Ok(())
    }

    fn check_vision(&self, v: &VisionConfig) -> std::result::Result<(), String> {
        let positive = [
            ("vision_config.hidden_size", v.hidden_size),
            ("vision_config.num_attention_heads", v.num_attention_heads),
            ("vision_config.num_hidden_layers", v.num_hidden_layers),
            ("vision_config.patch_size", v.patch_size),
            ("vision_config.image_size", v.image_size),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(format!("`{name}` must be positive"));
            }
        }
        if v.num_channels != 3 {
            return Err(format!(
                "vision_config.num_channels is {}, only 3 (RGB) is supported",
                v.num_channels
            ));
        }
        // image_size need not be a multiple of patch_size: the patch convolution is "valid", so
        // so400m towers (384 px, 14 px patches) use 27 patches and drop the last 6 pixels.
        if v.patch_size > v.image_size {
            return Err(format!(
                "vision patch_size {} is larger than image_size {}",
                v.patch_size, v.image_size
            ));
        }
        if !v.hidden_size.is_multiple_of(v.num_attention_heads) {
            return Err(format!(
                "vision hidden_size {} is not divisible by {} heads",
                v.hidden_size, v.num_attention_heads
            ));
        }
        if !v.patches_per_side().is_multiple_of(self.scale_factor) {
            return Err(format!(
                "{} patches per side are not divisible by scale_factor {}",
                v.patches_per_side(),
                self.scale_factor
            ));
        }
        Ok(())
    }
}

#[derive(Deserialize, Default)]
struct RawConfig {
    model_type: Option<String>,
    image_token_id: Option<u32>,
    scale_factor: Option<usize>,
    tie_word_embeddings: Option<bool>,
    vision_config: Option<RawVision>,
    text_config: Option<RawText>,
}

#[derive(Deserialize, Default)]
struct RawVision {
    hidden_size: Option<usize>,
    intermediate_size: Option<usize>,
    num_hidden_layers: Option<usize>,
    num_attention_heads: Option<usize>,
    num_channels: Option<usize>,
    image_size: Option<usize>,
    patch_size: Option<usize>,
    hidden_act: Option<String>,
    layer_norm_eps: Option<f64>,
}

#[derive(Deserialize, Default)]
struct RawText {
    model_type: Option<String>,
    vocab_size: Option<usize>,
    hidden_size: Option<usize>,
    intermediate_size: Option<usize>,
    num_hidden_layers: Option<usize>,
    num_attention_heads: Option<usize>,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    rms_norm_eps: Option<f64>,
    rope_theta: Option<f64>,
    rope_parameters: Option<RawRope>,
    rope_scaling: Option<RawRope>,
    max_position_embeddings: Option<usize>,
    hidden_act: Option<String>,
    attention_bias: Option<bool>,
    mlp_bias: Option<bool>,
}

#[derive(Deserialize, Default)]
struct RawRope {
    rope_type: Option<String>,
    #[serde(rename = "type")]
    legacy_type: Option<String>,
    rope_theta: Option<f64>,
}

/// `SmolVLMVisionConfig` / `Idefics3VisionConfig` defaults (transformers 5.24).
fn resolve_vision(raw: RawVision, path: &Path) -> Result<VisionConfig> {
    Ok(VisionConfig {
        hidden_size: raw.hidden_size.unwrap_or(1152),
        intermediate_size: raw.intermediate_size.unwrap_or(3072),
        num_hidden_layers: raw.num_hidden_layers.unwrap_or(12),
        num_attention_heads: raw.num_attention_heads.unwrap_or(16),
        num_channels: raw.num_channels.unwrap_or(3),
        image_size: raw.image_size.unwrap_or(224),
        patch_size: raw.patch_size.unwrap_or(32),
        hidden_act: Activation::parse(
            raw.hidden_act.as_deref().unwrap_or("gelu_pytorch_tanh"),
            path,
        )?,
        layer_norm_eps: raw.layer_norm_eps.unwrap_or(1e-6),
    })
}

/// `LlamaConfig` defaults (transformers 5.24), with RoPE resolved as
/// `RotaryEmbeddingConfigMixin` does: `rope_parameters` (or legacy `rope_scaling`) first, then a
/// top-level `rope_theta`, then 10000.
fn resolve_text(raw: RawText, default_rms_eps: f64, path: &Path) -> Result<TextConfig> {
    let invalid = |problem: String| Error::InvalidConfig {
        path: path.to_path_buf(),
        problem,
    };
    if let Some(mt) = raw.model_type.as_deref() {
        if mt != "llama" {
            return Err(invalid(format!(
                "text_config.model_type is `{mt}`; only `llama` decoders are supported"
            )));
        }
    }
    if raw.attention_bias == Some(true) || raw.mlp_bias == Some(true) {
        return Err(invalid(
            "text decoders with attention or MLP biases are not supported".to_string(),
        ));
    }
    let rope = raw.rope_parameters.or(raw.rope_scaling).unwrap_or_default();
    let rope_type = rope
        .rope_type
        .or(rope.legacy_type)
        .unwrap_or_else(|| "default".to_string());
    if rope_type != "default" {
        return Err(invalid(format!(
            "RoPE type `{rope_type}` is not supported (only `default`)"
        )));
    }
    let rope_theta = rope.rope_theta.or(raw.rope_theta).unwrap_or(10_000.0);
    let hidden_size = raw.hidden_size.unwrap_or(4096);
    let num_attention_heads = raw.num_attention_heads.unwrap_or(32);
    if num_attention_heads == 0 {
        return Err(invalid(
            "text_config.num_attention_heads must be positive".into(),
        ));
    }
    Ok(TextConfig {
        vocab_size: raw.vocab_size.unwrap_or(32_000),
        hidden_size,
        intermediate_size: raw.intermediate_size.unwrap_or(11_008),
        num_hidden_layers: raw.num_hidden_layers.unwrap_or(32),
        num_attention_heads,
        num_key_value_heads: raw.num_key_value_heads.unwrap_or(num_attention_heads),
        head_dim: raw.head_dim.unwrap_or(hidden_size / num_attention_heads),
        rms_norm_eps: raw.rms_norm_eps.unwrap_or(default_rms_eps),
        rope_theta,
        max_position_embeddings: raw.max_position_embeddings.unwrap_or(2048),
        hidden_act: Activation::parse(raw.hidden_act.as_deref().unwrap_or("silu"), path)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<ModelConfig> {
        ModelConfig::parse(json, Path::new("config.json"))
    }

    #[test]
    fn missing_text_keys_take_llama_defaults() {
        // The SmolVLM2-2.2B text_config omits num_attention_heads (→ 32, and kv heads → 32).
        let cfg = parse(
            r#"{"model_type":"smolvlm","image_token_id":49190,"scale_factor":3,
                "text_config":{"hidden_size":2048,"vocab_size":49280,"rope_theta":273768.0},
                "vision_config":{"hidden_size":1152,"image_size":384,"patch_size":14,"num_hidden_layers":27}}"#,
        )
        .unwrap();
        assert_eq!(cfg.text.num_attention_heads, 32);
        assert_eq!(cfg.text.num_key_value_heads, 32);
        assert_eq!(cfg.text.head_dim, 64);
        assert_eq!(cfg.text.rms_norm_eps, 1e-6);
        assert_eq!(cfg.text.rope_theta, 273768.0);
        assert_eq!(cfg.text.max_position_embeddings, 2048);
        assert_eq!(cfg.vision.as_ref().unwrap().num_attention_heads, 16);
        assert_eq!(cfg.vision.as_ref().unwrap().intermediate_size, 3072);
        assert_eq!(cfg.image_seq_len(), 81);
        assert!(!cfg.tie_word_embeddings);
    }

    #[test]
    fn absent_text_config_uses_the_family_eps() {
        let cfg = parse(
            r#"{"model_type":"idefics3","image_token_id":5,"vision_config":{"image_size":256}}"#,
        )
        .unwrap();
        assert_eq!(cfg.text.rms_norm_eps, 1e-5);
        assert_eq!(cfg.scale_factor, 2);
        assert_eq!(cfg.family, Family::Idefics3);
        assert_eq!(cfg.image_seq_len(), 16);
    }

    #[test]
    fn rope_parameters_take_priority() {
        let cfg = parse(
            r#"{"model_type":"smolvlm","scale_factor":2,"image_token_id":3,
                "vision_config":{"image_size":32,"patch_size":8},
                "text_config":{"rope_theta":5.0,"rope_parameters":{"rope_type":"default","rope_theta":7.0}}}"#,
        )
        .unwrap();
        assert_eq!(cfg.text.rope_theta, 7.0);
    }

    #[test]
    fn rejects_other_models_and_bad_geometry() {
        let err = parse(r#"{"model_type":"llava"}"#).unwrap_err();
        assert!(
            err.to_string().contains("unsupported model type `llava`"),
            "{err}"
        );
        let err = parse(r#"{"model_type":"smolvlm","scale_factor":3,"vision_config":{"image_size":32,"patch_size":8}}"#)
            .unwrap_err();
        assert!(
            err.to_string().contains("not divisible by scale_factor 3"),
            "{err}"
        );
        let err = parse(
            r#"{"model_type":"smolvlm","text_config":{"rope_scaling":{"rope_type":"llama3"}}}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("llama3"), "{err}");
        assert!(parse("{not json").is_err());
    }
}
