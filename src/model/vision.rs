//! SigLIP vision tower: pixels `[n, 3, H, W]` → patch features `[n, (H/p)·(W/p), D_v]`.
//!
//! Ref: transformers `SmolVLMVisionTransformer` (modeling_smolvlm.py, 5.24).

use candle_core::{DType, Device, Module, Tensor};

use crate::config::VisionConfig;
use crate::error::{Error, Result};
use crate::model::layers::{activate, LayerNorm, Linear};
use crate::weights::Weights;

mod packed;

pub(crate) use packed::MatrixKernel;

/// Which patches of each image hold real pixels: `[n][rows][cols]`, row-major.
///
/// The standard pipeline only produces full tiles; a partial mask comes from batches padded to
/// a common size.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchMask {
    /// Patch rows per image.
    pub rows: usize,
    /// Patch columns per image.
    pub cols: usize,
    /// `n · rows · cols` flags, true where the patch holds pixels.
    pub valid: Vec<bool>,
}

struct Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    out_proj: Linear,
    heads: usize,
    head_dim: usize,
}

impl Attention {
    fn load(w: &Weights, cfg: &VisionConfig) -> Result<Self> {
        let d = cfg.hidden_size;
        Ok(Attention {
            q_proj: Linear::load(&w.pp("q_proj"), d, d, true)?,
            k_proj: Linear::load(&w.pp("k_proj"), d, d, true)?,
            v_proj: Linear::load(&w.pp("v_proj"), d, d, true)?,
            out_proj: Linear::load(&w.pp("out_proj"), d, d, true)?,
            heads: cfg.num_attention_heads,
            head_dim: cfg.head_dim(),
        })
    }

    /// `xs`: `[n, L, D]`; `mask`: additive `[n, 1, 1, L]` or none.
    fn forward(&self, xs: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let (n, l, d) = xs.dims3()?;
        let split = |t: Tensor| -> Result<Tensor> {
            Ok(t.reshape((n, l, self.heads, self.head_dim))?
                .transpose(1, 2)?
                .contiguous()?)
        };
        let q = split(self.q_proj.forward(xs)?)?;
        let k = split(self.k_proj.forward(xs)?)?;
        let v = split(self.v_proj.forward(xs)?)?;
        let scale = (self.head_dim as f64).powf(-0.5);
        let mut scores = (q.matmul(&k.t()?)? * scale)?;
        if let Some(mask) = mask {
            scores = scores.broadcast_add(mask)?;
        }
        // Ref: eager attention takes the softmax in f32 and casts back.
        let dtype = scores.dtype();
        let probs = crate::cpu::fastmath::softmax_last_dim(&scores.to_dtype(DType::F32)?)?
            .to_dtype(dtype)?;
        let out = probs.matmul(&v)?.transpose(1, 2)?.reshape((n, l, d))?;
        self.out_proj.forward(&out)
    }
}

struct Mlp {
    fc1: Linear,
    fc2: Linear,
    act: crate::config::Activation,
}

struct EncoderLayer {
    layer_norm1: LayerNorm,
    self_attn: Attention,
    layer_norm2: LayerNorm,
    mlp: Mlp,
}

impl EncoderLayer {
    fn load(w: &Weights, cfg: &VisionConfig) -> Result<Self> {
        let d = cfg.hidden_size;
        let f = cfg.intermediate_size;
        Ok(EncoderLayer {
            layer_norm1: LayerNorm::load(&w.pp("layer_norm1"), d, cfg.layer_norm_eps)?,
            self_attn: Attention::load(&w.pp("self_attn"), cfg)?,
            layer_norm2: LayerNorm::load(&w.pp("layer_norm2"), d, cfg.layer_norm_eps)?,
            mlp: Mlp {
                fc1: Linear::load(&w.pp("mlp").pp("fc1"), d, f, true)?,
                fc2: Linear::load(&w.pp("mlp").pp("fc2"), f, d, true)?,
                act: cfg.hidden_act,
            },
        })
    }

    fn forward(&self, xs: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let h = self
            .self_attn
            .forward(&self.layer_norm1.forward(xs)?, mask)?;
        let xs = (xs + h)?;
        let h = self.mlp.fc1.forward(&self.layer_norm2.forward(&xs)?)?;
        let h = self.mlp.fc2.forward(&activate(&h, self.mlp.act)?)?;
        Ok((xs + h)?)
    }
}

/// The vision tower.
pub struct VisionModel {
    /// Patch embedding as a matrix `[D_v, 3·p·p]`: a stride-p convolution with kernel p is a
    /// matmul over non-overlapping patches, so no convolution is needed.
    patch_weight: Tensor,
    patch_bias: Tensor,
    position_embedding: Tensor,
    layers: Vec<EncoderLayer>,
    /// The layers on packed kernels, replacing `layers` (see [`VisionModel::use_packed`]).
    packed_layers: Option<Vec<packed::PackedLayer>>,
    post_layernorm: LayerNorm,
    cfg: VisionConfig,
}

impl VisionModel {
    /// Loads the tower from `model.vision_model` weights.
    pub fn load(w: &Weights, cfg: &VisionConfig) -> Result<Self> {
        let d = cfg.hidden_size;
        let p = cfg.patch_size;
        let n = cfg.patches_per_side();
        let emb = w.pp("embeddings");
        let patch_weight = emb
            .pp("patch_embedding")
            .get((d, cfg.num_channels, p, p), "weight")?
            .reshape((d, cfg.num_channels * p * p))?;
        let patch_bias = emb.pp("patch_embedding").get(d, "bias")?;
        let position_embedding = emb.pp("position_embedding").get((n * n, d), "weight")?;
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| EncoderLayer::load(&w.pp(format!("encoder.layers.{i}")), cfg))
            .collect::<Result<Vec<_>>>()?;
        let post_layernorm = LayerNorm::load(&w.pp("post_layernorm"), d, cfg.layer_norm_eps)?;
        Ok(VisionModel {
            patch_weight,
            patch_bias,
            position_embedding,
            layers,
            packed_layers: None,
            post_layernorm,
            cfg: cfg.clone(),
        })
    }

    /// Moves the encoder layers onto packed kernels (see `packed`), dropping their f32
    /// weights. Returns false, changing nothing, when the CPU lacks the kernels, a layer has
    /// no kernel for its activation, or the layers are packed already.
    pub(crate) fn use_packed(&mut self, kernel: MatrixKernel) -> Result<bool> {
        if !kernel.available() || self.packed_layers.is_some() {
            return Ok(false);
        }
        if !self.layers.iter().all(packed::PackedLayer::supports) {
            return Ok(false);
        }
        // Layer by layer, each original dropped once packed: the model never holds both
        // copies of its weights at once.
        let mut packed = Vec::with_capacity(self.layers.len());
        for layer in std::mem::take(&mut self.layers) {
            packed.push(packed::PackedLayer::from_layer(&layer, kernel)?);
        }
        self.packed_layers = Some(packed);
        Ok(true)
    }

    /// `pixels`: `[n, 3, H, W]`; pixels past the last whole patch are ignored. `mask`: which patches
    /// are real (none = all). Returns the post-LayerNorm hidden states `[n, (H/p)(W/p), D_v]`.
    pub fn forward(&self, pixels: &Tensor, mask: Option<&PatchMask>) -> Result<Tensor> {
        let (n, c, h, w) = pixels.dims4()?;
        let p = self.cfg.patch_size;
        if h < p || w < p || c != self.cfg.num_channels {
            return Err(Error::InvalidOption {
                name: "pixel_values",
                reason: format!(
                    "shape [{n}, {c}, {h}, {w}] holds no {p}×{p} patch of {} channels",
                    self.cfg.num_channels
                ),
            });
        }
        // A "valid" stride-p convolution ignores the pixels past the last whole patch.
        let (rows, cols) = (h / p, w / p);
        let patches = pixels
            .narrow(2, 0, rows * p)?
            .narrow(3, 0, cols * p)?
            .reshape((n, c, rows, p, cols, p))?
            .permute((0, 2, 4, 1, 3, 5))?
            .reshape((n, rows * cols, c * p * p))?;
        let embeds = patches
            .broadcast_matmul(&self.patch_weight.t()?)?
            .broadcast_add(&self.patch_bias)?;

        let full = mask.is_none_or(|m| m.valid.iter().all(|v| *v));
        let n_side = self.cfg.patches_per_side();
        let (ids, attn_mask) = if full && rows == n_side && cols == n_side {
            // With every patch valid the bucketing below reduces to the identity.
            (None, None)
        } else {
            let mask = match mask {
                Some(m) => m.clone(),
                None => PatchMask {
                    rows,
                    cols,
                    valid: vec![true; n * rows * cols],
                },
            };
            if mask.rows != rows || mask.cols != cols || mask.valid.len() != n * rows * cols {
                return Err(Error::InvalidOption {
                    name: "patch mask",
                    reason: format!(
                        "mask is {}×{} for {} flags, pixels give {n} images of {rows}×{cols} patches",
                        mask.rows,
                        mask.cols,
                        mask.valid.len()
                    ),
                });
            }
            let ids = bucketed_position_ids(&mask, n_side);
            let ids = Tensor::from_vec(ids, (n, rows * cols), pixels.device())?;
            let attn = if full {
                None
            } else {
                Some(additive_mask(&mask, n, embeds.dtype(), pixels.device())?)
            };
            (Some(ids), attn)
        };
        let pos = match ids {
            None => self.position_embedding.unsqueeze(0)?,
            Some(ids) => {
                candle_nn::Embedding::new(self.position_embedding.clone(), self.cfg.hidden_size)
                    .forward(&ids)?
            }
        };
        let mut xs = embeds.broadcast_add(&pos)?;
        match &self.packed_layers {
            Some(layers) => xs = packed_encode(layers, &xs, attn_mask.as_ref())?,
            None => {
                for layer in &self.layers {
                    xs = layer.forward(&xs, attn_mask.as_ref())?;
                }
            }
        }
        self.post_layernorm.forward(&xs)
    }
}

/// Additive attention mask `[n, 1, 1, L]`: 0 for valid keys, the dtype's minimum for padding.
/// `xs` (`[n, l, D]`) through the packed layers, one image at a time; `mask` is the additive
/// key mask `[n, 1, 1, l]`.
fn packed_encode(
    layers: &[packed::PackedLayer],
    xs: &Tensor,
    mask: Option<&Tensor>,
) -> Result<Tensor> {
    let (n, l, d) = xs.dims3()?;
    let flat = |t: &Tensor| -> Result<Vec<f32>> {
        Ok(t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?)
    };
    let mut x = flat(xs)?;
    let bias = mask.map(flat).transpose()?;
    for (i, image) in x.chunks_exact_mut(l * d).enumerate() {
        let key_bias = bias.as_ref().map(|b| &b[i * l..(i + 1) * l]);
        for layer in layers {
            layer.forward(image, l, key_bias)?;
        }
    }
    Ok(Tensor::from_vec(x, (n, l, d), xs.device())?.to_dtype(xs.dtype())?)
}

fn additive_mask(mask: &PatchMask, n: usize, dtype: DType, device: &Device) -> Result<Tensor> {
    let min = match dtype {
        DType::F16 => f32::from(half::f16::MIN),
        DType::BF16 => f32::from(half::bf16::MIN),
        _ => f32::MIN,
    };
    let values: Vec<f32> = mask
        .valid
        .iter()
        .map(|v| if *v { 0.0 } else { min })
        .collect();
    let l = mask.rows * mask.cols;
    Ok(Tensor::from_vec(values, (n, 1, 1, l), device)?.to_dtype(dtype)?)
}

/// Position ids of NaViT-style bucketing, exactly as transformers 5.24 computes them: for an
/// image whose valid region spans `nb_h × nb_w` patches, patch `(i, j)` takes the bucket of the
/// fractional coordinates `i · f32(1/nb_h)` and `j · f32(1/nb_w)` (f32 products clamped to
/// `1 − 1e-6`) among the `N − 1` boundaries `k/N`; padding patches get id 0.
pub fn bucketed_position_ids(mask: &PatchMask, n_side: usize) -> Vec<u32> {
    let per_image = mask.rows * mask.cols;
    let boundaries = arange_f32(1.0 / n_side as f64, 1.0, 1.0 / n_side as f64);
    let bucket = |x: f32| boundaries.iter().filter(|b| **b <= x).count() as u32;
    let clamp = |x: f32| x.min((1.0f64 - 1e-6) as f32);
    let mut ids = vec![0u32; mask.valid.len()];
    for (img, chunk) in mask.valid.chunks(per_image.max(1)).enumerate() {
        let nb_h = (0..mask.rows).filter(|r| chunk[r * mask.cols]).count();
        let nb_w = (0..mask.cols).filter(|c| chunk[*c]).count();
        // 1.0 / 0 is inf in torch too; the products are then nan or inf and clamp to 1 − 1e-6.
        let step_h = 1.0f32 / nb_h as f32;
        let step_w = 1.0f32 / nb_w as f32;
        for r in 0..mask.rows {
            let bh = bucket(clamp(r as f32 * step_h));
            for c in 0..mask.cols {
                let k = r * mask.cols + c;
                if chunk[k] {
                    let bw = bucket(clamp(c as f32 * step_w));
                    ids[img * per_image + k] = bh * n_side as u32 + bw;
                }
            }
        }
    }
    ids
}

/// `torch.arange(start, end, step)` in float32: length `ceil((end − start) / step)` and values
/// `start + i·step`, both computed in f64 and the values then rounded to f32.
fn arange_f32(start: f64, end: f64, step: f64) -> Vec<f32> {
    let len = ((end - start) / step).ceil().max(0.0) as usize;
    (0..len).map(|i| (start + i as f64 * step) as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_mask_buckets_to_identity() {
        for n in [4usize, 6, 27, 32] {
            let mask = PatchMask {
                rows: n,
                cols: n,
                valid: vec![true; n * n],
            };
            let ids = bucketed_position_ids(&mask, n);
            let expected: Vec<u32> = (0..(n * n) as u32).collect();
            assert_eq!(ids, expected, "N = {n}");
        }
    }

    #[test]
    fn partial_mask_spreads_over_the_full_grid() {
        // 2×2 valid patches in a 4×4 grid of a tower with N = 4: coordinates 0 and 0.5 land in
        // buckets 0 and 2.
        let mut valid = vec![false; 16];
        for (r, c) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
            valid[r * 4 + c] = true;
        }
        let ids = bucketed_position_ids(
            &PatchMask {
                rows: 4,
                cols: 4,
                valid,
            },
            4,
        );
        assert_eq!(&ids[0..2], &[0, 2]);
        assert_eq!(&ids[4..6], &[8, 10]);
        assert_eq!(ids[2], 0);
    }
}
