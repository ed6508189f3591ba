//! Llama decoder: embeddings `[1, T, D_t]` + KV cache → last-position logits `[vocab]`.
//!
//! Ref: transformers `LlamaModel` / `LlamaForCausalLM` (modeling_llama.py, 5.24).

use candle_core::{DType, Device, Tensor};

use crate::config::{Activation, TextConfig};
use crate::cpu::qmatmul::int8_act::Isa;
use crate::error::Result;
use crate::model::kv_cache::KvCache;
use crate::model::layers::{activate, Embedding, Linear, RmsNorm};
use crate::weights::Weights;

mod prefill;
mod step;

/// How a checkpoint lays out the two halves rotated by RoPE in its Q/K rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RopeLayout {
    /// Hugging Face `rotate_half`: dimension `i` pairs with `i + head_dim/2`.
    SplitHalf,
    /// Adjacent pairs `(2i, 2i+1)`, as in GGUF files whose Q/K rows were permuted.
    Interleaved,
}

/// Precomputed cos/sin tables for RoPE.
struct Rotary {
    inv_freq: Vec<f32>,
    layout: RopeLayout,
}

impl Rotary {
    fn new(cfg: &TextConfig, layout: RopeLayout) -> Self {
        let hd = cfg.head_dim;
        // Ref: `_compute_default_rope_parameters`: base ** (arange(0, dim, 2) / dim), in f32.
        let base = cfg.rope_theta as f32;
        let inv_freq = (0..hd)
            .step_by(2)
            .map(|i| 1.0 / base.powf(i as f32 / hd as f32))
            .collect();
        Rotary { inv_freq, layout }
    }

    /// cos and sin `[t, head_dim/2]` for positions `start..start+t`, in f32 then `dtype`.
    fn tables(
        &self,
        start: usize,
        t: usize,
        dtype: DType,
        device: &Device,
    ) -> Result<(Tensor, Tensor)> {
        let half = self.inv_freq.len();
        let mut freqs = Vec::with_capacity(t * half);
        for pos in start..start + t {
            freqs.extend(self.inv_freq.iter().map(|f| pos as f32 * f));
        }
        let freqs = Tensor::from_vec(freqs, (t, half), device)?;
        Ok((freqs.cos()?.to_dtype(dtype)?, freqs.sin()?.to_dtype(dtype)?))
    }

    /// cos and sin `[head_dim/2]` at one position, computed as [`Rotary::tables`] does.
    fn at(&self, pos: usize) -> (Vec<f32>, Vec<f32>) {
        let freqs = self.inv_freq.iter().map(|f| pos as f32 * f);
        (
            freqs.clone().map(f32::cos).collect(),
            freqs.map(f32::sin).collect(),
        )
    }

    fn apply(&self, x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
        Ok(match self.layout {
            RopeLayout::SplitHalf => candle_nn::rotary_emb::rope(x, cos, sin)?,
            RopeLayout::Interleaved => candle_nn::rotary_emb::rope_i(x, cos, sin)?,
        })
    }
}

struct Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
}

impl Attention {
    fn load(w: &Weights, cfg: &TextConfig) -> Result<Self> {
        let d = cfg.hidden_size;
        let hd = cfg.head_dim;
        Ok(Attention {
            q_proj: Linear::load(&w.pp("q_proj"), d, cfg.num_attention_heads * hd, false)?,
            k_proj: Linear::load(&w.pp("k_proj"), d, cfg.num_key_value_heads * hd, false)?,
            v_proj: Linear::load(&w.pp("v_proj"), d, cfg.num_key_value_heads * hd, false)?,
            o_proj: Linear::load(&w.pp("o_proj"), cfg.num_attention_heads * hd, d, false)?,
            heads: cfg.num_attention_heads,
            kv_heads: cfg.num_key_value_heads,
            head_dim: hd,
        })
    }

    fn forward(
        &self,
        xs: &Tensor,
        rope: (&Rotary, &Tensor, &Tensor),
        cache: &mut KvCache,
        layer: usize,
        past: usize,
    ) -> Result<Tensor> {
        let (b, t, _) = xs.dims3()?;
        let (rotary, cos, sin) = rope;
        let heads = |x: Tensor, n: usize| -> Result<Tensor> {
            Ok(x.reshape((b, t, n, self.head_dim))?
                .transpose(1, 2)?
                .contiguous()?)
        };
        let q = heads(self.q_proj.forward(xs)?, self.heads)?;
        let k = heads(self.k_proj.forward(xs)?, self.kv_heads)?;
        let v = heads(self.v_proj.forward(xs)?, self.kv_heads)?;
        let q = rotary.apply(&q, cos, sin)?;
        let k = rotary.apply(&k, cos, sin)?;
        let (k, v) = cache.append(layer, &k, &v)?;

        // GQA: each group of `heads / kv_heads` query heads shares one key/value head. Folding
        // the group into the query rows avoids materialising repeated keys and values.
        let group = self.heads / self.kv_heads;
        let q = q.reshape((b, self.kv_heads, group * t, self.head_dim))?;
        let scale = (self.head_dim as f64).powf(-0.5);
        let mut scores = (q.matmul(&k.t()?)? * scale)?;
        if t > 1 {
            let mask = causal_mask(t, past, group, scores.dtype(), scores.device())?;
            scores = scores.broadcast_add(&mask)?;
        }
        let dtype = scores.dtype();
        let probs =
            candle_nn::ops::softmax_last_dim(&scores.to_dtype(DType::F32)?)?.to_dtype(dtype)?;
        let out = probs.matmul(&v.contiguous()?)?; // [b, kv, group*t, hd]
        let out = out
            .reshape((b, self.heads, t, self.head_dim))?
            .transpose(1, 2)?
            .reshape((b, t, self.heads * self.head_dim))?;
        self.o_proj.forward(&out)
    }
}

/// Additive causal mask `[group·t, past + t]` for queries at positions `past..past+t`,
/// repeated for each query head of a GQA group (rows are head-major).
fn causal_mask(
    t: usize,
    past: usize,
    group: usize,
    dtype: DType,
    device: &Device,
) -> Result<Tensor> {
    let total = past + t;
    let mut values = Vec::with_capacity(group * t * total);
    for _ in 0..group {
        for i in 0..t {
            values.extend((0..total).map(|j| {
                if j <= past + i {
                    0.0f32
                } else {
                    f32::NEG_INFINITY
                }
            }));
        }
    }
    Ok(Tensor::from_vec(values, (group * t, total), device)?.to_dtype(dtype)?)
}

struct Mlp {
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
    act: Activation,
}

impl Mlp {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let gate = activate(&self.gate_proj.forward(xs)?, self.act)?;
        let up = self.up_proj.forward(xs)?;
        self.down_proj.forward(&(gate * up)?)
    }
}

struct DecoderLayer {
    input_layernorm: RmsNorm,
    self_attn: Attention,
    post_attention_layernorm: RmsNorm,
    mlp: Mlp,
}

/// The decoder with its `lm_head`.
pub(crate) struct TextModel {
    embed_tokens: Embedding,
    layers: Vec<DecoderLayer>,
    norm: RmsNorm,
    lm_head: Linear,
    rotary: Rotary,
    /// Whether prompt blocks multiply on the BF16 dot-product GEMM (see `prefill.rs`).
    prefill_bf16: bool,
    /// The int8 block-dot kernels decode steps run block matrices on, if chosen (see
    /// `step.rs`).
    decode_int8: Option<Isa>,
}

impl TextModel {
    /// Loads `model.text_model` from `w` and the head from `lm_head` (or ties it to the
    /// embeddings when `tie_word_embeddings`).
    pub(crate) fn load(
        w: &Weights,
        lm_head: &Weights,
        cfg: &TextConfig,
        tie_word_embeddings: bool,
        layout: RopeLayout,
    ) -> Result<Self> {
        let d = cfg.hidden_size;
        let f = cfg.intermediate_size;
        let embed_tokens = Embedding::load(&w.pp("embed_tokens"), cfg.vocab_size, d)?;
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| {
                let l = w.pp(format!("layers.{i}"));
                let mlp = l.pp("mlp");
                Ok(DecoderLayer {
                    input_layernorm: RmsNorm::load(&l.pp("input_layernorm"), d, cfg.rms_norm_eps)?,
                    self_attn: Attention::load(&l.pp("self_attn"), cfg)?,
                    post_attention_layernorm: RmsNorm::load(
                        &l.pp("post_attention_layernorm"),
                        d,
                        cfg.rms_norm_eps,
                    )?,
                    mlp: Mlp {
                        gate_proj: Linear::load(&mlp.pp("gate_proj"), d, f, false)?,
                        up_proj: Linear::load(&mlp.pp("up_proj"), d, f, false)?,
                        down_proj: Linear::load(&mlp.pp("down_proj"), f, d, false)?,
                        act: cfg.hidden_act,
                    },
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let norm = RmsNorm::load(&w.pp("norm"), d, cfg.rms_norm_eps)?;
        let lm_head = if tie_word_embeddings {
            embed_tokens.as_linear()?
        } else {
            Linear::load(lm_head, d, cfg.vocab_size, false)?
        };
        Ok(TextModel {
            embed_tokens,
            layers,
            norm,
            lm_head,
            rotary: Rotary::new(cfg, layout),
            prefill_bf16: false,
            decode_int8: None,
        })
    }

    /// Token ids `[1, T]` → embeddings `[1, T, D_t]`.
    pub(crate) fn embed(&self, ids: &Tensor) -> Result<Tensor> {
        self.embed_tokens.forward(ids)
    }

    /// Runs embeddings `[1, T, D_t]` at positions `cache.len()..` through the decoder, appending
    /// to the cache, and returns the logits of the last position as f32 `[vocab]`.
    pub(crate) fn forward(&self, embeds: &Tensor, cache: &mut KvCache) -> Result<Tensor> {
        let (_, t, _) = embeds.dims3()?;
        if embeds.dtype() == DType::F32 && embeds.device().is_cpu() {
            let x = embeds.flatten_all()?.to_vec1::<f32>()?;
            let logits = if t == 1 {
                self.step(&x, cache)?
            } else {
                self.prefill(&x, t, cache)?
            };
            if let Some(logits) = logits {
                let n = logits.len();
                return Ok(Tensor::from_vec(logits, n, embeds.device())?);
            }
        }
        let start = cache.len();
        let (cos, sin) = self
            .rotary
            .tables(start, t, embeds.dtype(), embeds.device())?;
        let mut xs = embeds.clone();
        for (i, layer) in self.layers.iter().enumerate() {
            let h = layer.input_layernorm.forward(&xs)?;
            let h = layer
                .self_attn
                .forward(&h, (&self.rotary, &cos, &sin), cache, i, start)?;
            xs = (xs + h)?;
            let h = layer
                .mlp
                .forward(&layer.post_attention_layernorm.forward(&xs)?)?;
            xs = (xs + h)?;
        }
        let last = xs.narrow(1, t - 1, 1)?;
        let logits = self.lm_head.forward(&self.norm.forward(&last)?)?;
        Ok(logits.flatten_all()?.to_dtype(DType::F32)?)
    }

    /// Multiplies prompt blocks on the BF16 dot-product GEMM (activations rounded to bf16,
    /// f32 sums). Returns false, changing nothing, when the CPU lacks the instructions.
    pub(crate) fn use_bf16_prefill(&mut self) -> bool {
        self.prefill_bf16 = crate::cpu::gemm_bf16::available();
        self.prefill_bf16
    }

    /// Runs decode steps' block matrices on 8-bit activations. Returns false, changing
    /// nothing, when the CPU has no int8 block-dot kernels or no matrix has a block type
    /// they take.
    pub(crate) fn use_int8_decode(&mut self) -> bool {
        let any = self.layers.iter().any(|l| {
            let (a, m) = (&l.self_attn, &l.mlp);
            [
                &a.q_proj,
                &a.k_proj,
                &a.v_proj,
                &a.o_proj,
                &m.gate_proj,
                &m.up_proj,
                &m.down_proj,
            ]
            .into_iter()
            .any(Linear::has_int8_kernel)
        }) || self.lm_head.has_int8_kernel();
        self.decode_int8 = Isa::detect().filter(|_| any);
        self.decode_int8.is_some()
    }

    /// Whether decode steps run on 8-bit activations.
    pub(crate) fn decodes_int8(&self) -> bool {
        self.decode_int8.is_some()
    }

    /// Number of decoder layers (the cache needs one entry per layer).
    pub(crate) fn num_layers(&self) -> usize {
        self.layers.len()
    }
}
