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

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use rayon::prelude::*;
use serde_json::json;

use crate::error::{Error, Result};

/// The seed every synthetic model is built with, so `vlm bench --synthetic 256m` and the
/// checkpoint `vlm synth --preset 256m` writes hold the same weights.
pub const SEED: u64 = 0x5eed_5eed;

/// `<image>`'s id in the compiled-in tokenizer (checked by a test).
const IMAGE_TOKEN_ID: u32 = 508;

const TOKENIZER_JSON: &str = include_str!("../tests/fixtures/models/tiny-smolvlm/tokenizer.json");
const TOKENIZER_CONFIG_JSON: &str =
    include_str!("../tests/fixtures/models/tiny-smolvlm/tokenizer_config.json");
const SPECIAL_TOKENS_MAP_JSON: &str =
    include_str!("../tests/fixtures/models/tiny-smolvlm/special_tokens_map.json");
const CHAT_TEMPLATE_JSON: &str =
    include_str!("../tests/fixtures/models/tiny-smolvlm/chat_template.json");
const GENERATION_CONFIG_JSON: &str =
    include_str!("../tests/fixtures/models/tiny-smolvlm/generation_config.json");

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
    pub const ALL: [Preset; 4] = [
        Preset::Tiny,
        Preset::SmolVlm2_256M,
        Preset::SmolVlm2_500M,
        Preset::SmolVlm2_2_2B,
    ];

    /// The short name (`256m`, `500m`, `2.2b`, `tiny`).
    pub fn name(self) -> &'static str {
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
    pub fn file_stem(self) -> &'static str {
        match self {
            Preset::SmolVlm2_256M => "SmolVLM2-256M-synthetic",
            Preset::SmolVlm2_500M => "SmolVLM2-500M-synthetic",
            Preset::SmolVlm2_2_2B => "SmolVLM2-2.2B-synthetic",
            Preset::Tiny => "SmolVLM2-tiny-synthetic",
        }
    }

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

    /// The checkpoint's files other than the weights, as (file name, contents): `config.json`,
    /// `preprocessor_config.json`, `processor_config.json` and the tokenizer's files.
    pub fn config_files(self) -> Vec<(&'static str, String)> {
        let l = self.layout();
        let config = json!({
            "architectures": ["SmolVLMForConditionalGeneration"],
            "model_type": "smolvlm",
            "image_token_id": IMAGE_TOKEN_ID,
            "pad_token_id": 2,
            "scale_factor": l.scale_factor,
            "tie_word_embeddings": false,
            "torch_dtype": "float32",
            "use_cache": true,
            "text_config": {
                "model_type": "llama",
                "architectures": ["VLlama3ForCausalLM"],
                "hidden_act": "silu",
                "hidden_size": l.text_hidden,
                "intermediate_size": l.text_intermediate,
                "num_hidden_layers": l.text_layers,
                "num_attention_heads": l.heads,
                "num_key_value_heads": l.kv_heads,
                "head_dim": l.head_dim(),
                "rms_norm_eps": 1e-5,
                "rope_theta": l.rope_theta,
                "max_position_embeddings": l.max_position_embeddings,
                "vocab_size": l.vocab_size,
                "attention_bias": false,
                "mlp_bias": false,
                "pad_token_id": 2,
                "tie_word_embeddings": false,
            },
            "vision_config": {
                "model_type": "smolvlm_vision",
                "hidden_act": "gelu_pytorch_tanh",
                "hidden_size": l.vision_hidden,
                "intermediate_size": l.vision_intermediate,
                "num_hidden_layers": l.vision_layers,
                "num_attention_heads": l.vision_heads,
                "num_channels": 3,
                "image_size": l.image_size,
                "patch_size": l.patch_size,
                "layer_norm_eps": 1e-6,
            },
            "vocab_size": l.vocab_size,
        });
        let preprocessor = json!({
            "image_processor_type": "SmolVLMImageProcessor",
            "processor_class": "SmolVLMProcessor",
            "do_convert_rgb": true,
            "do_image_splitting": true,
            "do_normalize": true,
            "do_pad": true,
            "do_rescale": true,
            "do_resize": true,
            "image_mean": [0.5, 0.5, 0.5],
            "image_std": [0.5, 0.5, 0.5],
            "resample": 1,
            "rescale_factor": 1.0 / 255.0,
            "size": {"longest_edge": 4 * l.image_size},
            "max_image_size": {"longest_edge": l.image_size},
            "video_sampling": {
                "fps": 1,
                "max_frames": 64,
                "video_size": {"longest_edge": l.image_size},
            },
        });
        let processor = json!({
            "image_seq_len": l.image_seq_len(),
            "processor_class": "SmolVLMProcessor",
        });
        let pretty = |v: &serde_json::Value| format!("{v:#}\n");
        vec![
            ("config.json", pretty(&config)),
            ("preprocessor_config.json", pretty(&preprocessor)),
            ("processor_config.json", pretty(&processor)),
            ("tokenizer.json", TOKENIZER_JSON.to_string()),
            ("tokenizer_config.json", TOKENIZER_CONFIG_JSON.to_string()),
            (
                "special_tokens_map.json",
                SPECIAL_TOKENS_MAP_JSON.to_string(),
            ),
            ("chat_template.json", CHAT_TEMPLATE_JSON.to_string()),
            ("generation_config.json", GENERATION_CONFIG_JSON.to_string()),
        ]
    }

    /// The compiled-in `tokenizer.json` (also among [`Preset::config_files`]).
    pub fn tokenizer_json(self) -> &'static str {
        TOKENIZER_JSON
    }

    /// Where errors about the preset's (in-memory) files point: `synthetic:<name>/<file>`.
    pub fn origin(self) -> PathBuf {
        PathBuf::from(self.model_id())
    }

    /// The random weights, as Hugging Face-named f32 tensors on the CPU (see
    /// [`Layout::weights`]).
    pub fn weights(self, seed: u64) -> Result<HashMap<String, Tensor>> {
        self.layout().weights(seed)
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

/// How a tensor's values are drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// All ones (norm scales).
    Ones,
    /// Approximately normal with mean 0 and this standard deviation.
    Normal(f32),
}

/// One tensor of a synthetic checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorPlan {
    /// Hugging Face name (`model.text_model.layers.0.mlp.up_proj.weight`).
    pub name: String,
    /// Shape, PyTorch order (`[out, in]` for matrices).
    pub shape: Vec<usize>,
    /// How its values are drawn.
    pub init: Init,
}

/// The shapes of a SmolVLM2 model (`config.json` values).
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    /// Decoder width.
    pub text_hidden: usize,
    /// Decoder MLP width.
    pub text_intermediate: usize,
    /// Decoder layers.
    pub text_layers: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads.
    pub kv_heads: usize,
    /// Rows of the token-embedding and output matrices.
    pub vocab_size: usize,
    /// RoPE base.
    pub rope_theta: f64,
    /// Context window.
    pub max_position_embeddings: usize,
    /// Vision tower width.
    pub vision_hidden: usize,
    /// Vision MLP width.
    pub vision_intermediate: usize,
    /// Vision layers.
    pub vision_layers: usize,
    /// Vision attention heads.
    pub vision_heads: usize,
    /// Tile side in pixels.
    pub image_size: usize,
    /// Patch side in pixels.
    pub patch_size: usize,
    /// Pixel-shuffle factor of the connector.
    pub scale_factor: usize,
}

/// Standard deviation of random matrices, embeddings and biases. Small enough that activations
/// stay finite through every layer of the 2.2B layout; large enough that attention and MLP
/// outputs are not negligible next to the residual stream.
const WEIGHT_STD: f32 = 0.02;

impl Layout {
    /// Width of one attention head of the decoder.
    pub fn head_dim(&self) -> usize {
        self.text_hidden / self.heads.max(1)
    }

    /// Patches per tile side.
    pub fn patches_per_side(&self) -> usize {
        self.image_size / self.patch_size.max(1)
    }

    /// Image tokens per view: `(image_size / patch_size)² / scale_factor²`.
    pub fn image_seq_len(&self) -> usize {
        let n = self.patches_per_side();
        n * n / (self.scale_factor * self.scale_factor).max(1)
    }

    /// Every tensor of the checkpoint, in a fixed order: decoder, then vision tower, then
    /// connector. Norm scales are ones; everything else is drawn with standard deviation 0.02.
    pub fn tensors(&self) -> Vec<TensorPlan> {
        let mut out = Vec::new();
        let mut put = |name: String, shape: &[usize], init: Init| {
            out.push(TensorPlan {
                name,
                shape: shape.to_vec(),
                init,
            })
        };
        let w = Init::Normal(WEIGHT_STD);
        let (d, f, hd) = (self.text_hidden, self.text_intermediate, self.head_dim());
        let (q_rows, kv_rows) = (self.heads * hd, self.kv_heads * hd);
        let t = "model.text_model";
        put(format!("{t}.embed_tokens.weight"), &[self.vocab_size, d], w);
        for i in 0..self.text_layers {
            let p = format!("{t}.layers.{i}");
            put(format!("{p}.input_layernorm.weight"), &[d], Init::Ones);
            put(format!("{p}.self_attn.q_proj.weight"), &[q_rows, d], w);
            put(format!("{p}.self_attn.k_proj.weight"), &[kv_rows, d], w);
            put(format!("{p}.self_attn.v_proj.weight"), &[kv_rows, d], w);
            put(format!("{p}.self_attn.o_proj.weight"), &[d, q_rows], w);
            put(
                format!("{p}.post_attention_layernorm.weight"),
                &[d],
                Init::Ones,
            );
            put(format!("{p}.mlp.gate_proj.weight"), &[f, d], w);
            put(format!("{p}.mlp.up_proj.weight"), &[f, d], w);
            put(format!("{p}.mlp.down_proj.weight"), &[d, f], w);
        }
        put(format!("{t}.norm.weight"), &[d], Init::Ones);
        put("lm_head.weight".into(), &[self.vocab_size, d], w);

        let (dv, fv, p) = (
            self.vision_hidden,
            self.vision_intermediate,
            self.patch_size,
        );
        let n = self.patches_per_side();
        let v = "model.vision_model";
        put(
            format!("{v}.embeddings.patch_embedding.weight"),
            &[dv, 3, p, p],
            w,
        );
        put(format!("{v}.embeddings.patch_embedding.bias"), &[dv], w);
        put(
            format!("{v}.embeddings.position_embedding.weight"),
            &[n * n, dv],
            w,
        );
        for i in 0..self.vision_layers {
            let l = format!("{v}.encoder.layers.{i}");
            for ln in ["layer_norm1", "layer_norm2"] {
                put(format!("{l}.{ln}.weight"), &[dv], Init::Ones);
                put(format!("{l}.{ln}.bias"), &[dv], w);
            }
            for proj in ["q_proj", "k_proj", "v_proj", "out_proj"] {
                put(format!("{l}.self_attn.{proj}.weight"), &[dv, dv], w);
                put(format!("{l}.self_attn.{proj}.bias"), &[dv], w);
            }
            put(format!("{l}.mlp.fc1.weight"), &[fv, dv], w);
            put(format!("{l}.mlp.fc1.bias"), &[fv], w);
            put(format!("{l}.mlp.fc2.weight"), &[dv, fv], w);
            put(format!("{l}.mlp.fc2.bias"), &[dv], w);
        }
        put(format!("{v}.post_layernorm.weight"), &[dv], Init::Ones);
        put(format!("{v}.post_layernorm.bias"), &[dv], w);
        let s = self.scale_factor;
        put(
            "model.connector.modality_projection.proj.weight".into(),
            &[d, dv * s * s],
            w,
        );
        out
    }

    /// Number of weights.
    pub fn parameters(&self) -> usize {
        self.tensors()
            .iter()
            .map(|t| t.shape.iter().product::<usize>())
            .sum()
    }

    /// Bytes of the weights in f32 (what building them in memory takes).
    pub fn f32_bytes(&self) -> usize {
        self.parameters() * 4
    }

    /// Draws every tensor of [`Layout::tensors`]. Deterministic: the values depend only on
    /// `seed` and each tensor's name (not on the thread count), so the same seed gives the same
    /// checkpoint on every machine. Normal values are Irwin–Hall sums of four uniforms (within
    /// ±3.5 standard deviations), which keeps drawing cheaper than memory bandwidth.
    pub fn weights(&self, seed: u64) -> Result<HashMap<String, Tensor>> {
        self.tensors()
            .into_iter()
            .map(|t| {
                let data = draw(&t, seed);
                let tensor = Tensor::from_vec(data, t.shape.as_slice(), &Device::Cpu)?;
                Ok((t.name, tensor))
            })
            .collect()
    }
}

/// Elements drawn per parallel work item (each from its own seeded stream).
const CHUNK: usize = 1 << 16;

fn draw(t: &TensorPlan, seed: u64) -> Vec<f32> {
    let n = t.shape.iter().product::<usize>();
    let std = match t.init {
        Init::Ones => return vec![1.0; n],
        Init::Normal(std) => std,
    };
    let stream = mix(seed ^ fnv1a(t.name.as_bytes()));
    // Four 16-bit uniforms sum to mean 2·65535 and standard deviation 65536/√3.
    let mean = 2.0 * 65535.0;
    let scale = std * 3f32.sqrt() / 65536.0;
    let mut out = vec![0f32; n];
    out.par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(c, chunk)| {
            let mut state = mix(stream ^ (c as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
            for x in chunk {
                state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
                let r = mix(state);
                let sum = (r & 0xffff) + ((r >> 16) & 0xffff) + ((r >> 32) & 0xffff) + (r >> 48);
                *x = (sum as f32 - mean) * scale;
            }
        });
    out
}

/// SplitMix64's output function.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Writes `preset`'s configuration files into `dir` (which must exist) and returns their paths.
pub fn write_config_files(preset: Preset, dir: &Path) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for (name, contents) in preset.config_files() {
        let path = dir.join(name);
        std::fs::write(&path, contents).map_err(|e| Error::io(&path, e))?;
        written.push(path);
    }
    Ok(written)
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

    #[test]
    fn config_files_parse_into_a_consistent_checkpoint() {
        for preset in Preset::ALL {
            let files = preset.config_files();
            let cfg = crate::config::CheckpointConfig::from_memory(
                &preset.origin(),
                &files
                    .iter()
                    .map(|(n, c)| (*n, c.as_str()))
                    .collect::<Vec<_>>(),
            )
            .unwrap_or_else(|e| panic!("{preset}: {e}"));
            let l = preset.layout();
            assert_eq!(cfg.image_seq_len, l.image_seq_len());
            assert_eq!(cfg.model.text.hidden_size, l.text_hidden);
            assert_eq!(cfg.model.text.vocab_size, l.vocab_size);
            assert!(!cfg.model.tie_word_embeddings);
        }
    }

    #[test]
    fn the_tokenizer_fits_the_vocabulary() {
        let tok = tokenizers::Tokenizer::from_bytes(TOKENIZER_JSON).unwrap();
        assert_eq!(tok.token_to_id("<image>"), Some(IMAGE_TOKEN_ID));
        let size = tok.get_vocab_size(true);
        assert!(Preset::ALL.iter().all(|p| p.layout().vocab_size >= size));
    }

    #[test]
    fn weights_are_seeded_scaled_and_complete() {
        let l = Preset::Tiny.layout();
        let a = l.weights(SEED).unwrap();
        let b = l.weights(SEED).unwrap();
        let c = l.weights(SEED + 1).unwrap();
        assert_eq!(a.len(), l.tensors().len());
        let name = "model.text_model.layers.0.mlp.up_proj.weight";
        let values =
            |w: &HashMap<String, Tensor>| w[name].flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(values(&a), values(&b));
        assert_ne!(values(&a), values(&c));
        let v = values(&a);
        let mean = v.iter().sum::<f32>() / v.len() as f32;
        let std = (v.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / v.len() as f32).sqrt();
        assert!(mean.abs() < 1e-3, "mean {mean}");
        assert!((std - WEIGHT_STD).abs() < 1e-3, "std {std}");
        assert!(v.iter().all(|x| x.abs() <= 3.5 * WEIGHT_STD));
        let norm = a["model.text_model.norm.weight"].to_vec1::<f32>().unwrap();
        assert!(norm.iter().all(|x| *x == 1.0));
    }

    #[test]
    fn draws_do_not_depend_on_chunking_across_threads() {
        // A tensor larger than one chunk: chunk c's values come from its own stream.
        let t = TensorPlan {
            name: "x".into(),
            shape: vec![3 * CHUNK + 5],
            init: Init::Normal(1.0),
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let one = pool.install(|| draw(&t, 7));
        assert_eq!(one, draw(&t, 7));
    }
}
