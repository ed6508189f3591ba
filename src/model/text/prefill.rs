//! The decoder over a block of prompt tokens (prefill) on the CPU in f32, outside Candle's
//! op-by-op graph.
//!
//! Through Candle every norm, RoPE, mask, softmax, activation and residual of a layer is its
//! own operation that allocates a tensor and wakes a spinning thread pool; on a 512-token
//! prompt at SmolVLM2-256M size those waits and copies were about a quarter of the time.
//! Here they run over plain row-major buffers, parallel over rows. The matrix products take
//! one of two routes:
//! - Candle's f32 matmul (the reference): transformers' arithmetic up to summation order;
//! - the BF16 dot-product GEMM ([`crate::cpu::gemm_bf16`]), when the model opted in: the
//!   weights are packed for the call (no second copy is kept, so memory stays that of the
//!   weights), activations are rounded to bf16, sums stay f32. The causal attention then runs
//!   on the BF16 attention kernel too ([`crate::cpu::attention_bf16`]), which skips the keys
//!   a block of queries cannot see: through Candle's f32 matmul it was 28 % of a 512-token
//!   prompt pass and 39 % of an 884-token one (a 1920×1080 screenshot's).

use candle_core::{DType, Device, Tensor};
use rayon::prelude::*;

use super::step::{add_assign, rms_norm, rope, step_activation};
use super::TextModel;
use crate::cpu::attention_bf16::{self, AttentionShape};
use crate::cpu::fastmath::softmax_rows;
use crate::error::Result;
use crate::model::kv_cache::KvCache;
use crate::model::layers::Linear;

/// Prompt rows from which packing a layer's weights for the BF16 GEMM pays for itself:
/// packing costs about as much per weight as 64 rows of the product gain over f32.
const BF16_MIN_ROWS: usize = 64;

/// Sizes of one attention call.
#[derive(Clone, Copy)]
struct Heads {
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
}

impl TextModel {
    /// `t` token embeddings `x` (`[t, hidden]`) at positions `cache.len()..` → the last
    /// position's logits `[vocab]`, appending to the cache. `None` (cache untouched) when the
    /// activation has no plain-buffer kernel.
    pub(super) fn prefill(
        &self,
        x: &[f32],
        t: usize,
        cache: &mut KvCache,
    ) -> Result<Option<Vec<f32>>> {
        let Some(first) = self.layers.first() else {
            return Ok(None);
        };
        let Some(act) = step_activation(first.mlp.act) else {
            return Ok(None);
        };
        if t == 0 || !x.len().is_multiple_of(t) {
            return Ok(None);
        }
        let d = x.len() / t;
        let a = &first.self_attn;
        let shape = Heads {
            heads: a.heads,
            kv_heads: a.kv_heads,
            head_dim: a.head_dim,
        };
        let (q_width, kv_width) = (a.heads * a.head_dim, a.kv_heads * a.head_dim);
        let (ffn, _) = first.mlp.gate_proj.dims()?;
        let eps = self.norm.eps() as f32;
        let start = cache.len();
        let bf16 = self.prefill_bf16 && t >= BF16_MIN_ROWS;
        let rotary: Vec<(Vec<f32>, Vec<f32>)> =
            (start..start + t).map(|p| self.rotary.at(p)).collect();

        let mut x = x.to_vec();
        let mut h = vec![0f32; t * d];
        for (i, l) in self.layers.iter().enumerate() {
            let at = &l.self_attn;
            rows_norm(&x, &l.input_layernorm.weight_f32()?, eps, &mut h, d);
            let mut q = project(&at.q_proj, &h, t, bf16)?;
            let mut k = project(&at.k_proj, &h, t, bf16)?;
            let v = project(&at.v_proj, &h, t, bf16)?;
            q.par_chunks_mut(q_width)
                .zip(k.par_chunks_mut(kv_width))
                .zip(&rotary)
                .for_each(|((qr, kr), (cos, sin))| {
                    for head in qr.chunks_mut(a.head_dim).chain(kr.chunks_mut(a.head_dim)) {
                        rope(head, cos, sin, self.rotary.layout);
                    }
                });
            let att = attend(&q, &k, &v, t, shape, cache, i, self.prefill_bf16)?;
            add_assign(&mut x, &project(&at.o_proj, &att, t, bf16)?);

            rows_norm(
                &x,
                &l.post_attention_layernorm.weight_f32()?,
                eps,
                &mut h,
                d,
            );
            let mut gate = project(&l.mlp.gate_proj, &h, t, bf16)?;
            let up = project(&l.mlp.up_proj, &h, t, bf16)?;
            gate.par_chunks_mut(ffn)
                .zip(up.par_chunks(ffn))
                .for_each(|(g, u)| act(g, u));
            add_assign(&mut x, &project(&l.mlp.down_proj, &gate, t, bf16)?);
        }
        let mut last = vec![0f32; d];
        rms_norm(&x[(t - 1) * d..], &self.norm.weight_f32()?, eps, &mut last);
        Ok(Some(project(&self.lm_head, &last, 1, false)?))
    }
}

/// RMSNorm of each `d`-wide row of `x` into `out`.
fn rows_norm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32], d: usize) {
    out.par_chunks_mut(d)
        .zip(x.par_chunks(d))
        .for_each(|(o, x)| rms_norm(x, w, eps, o));
}

/// `a` (`[m, in]`) times the layer's `Wᵀ` (plus bias) → `[m, out]`.
fn project(lin: &Linear, a: &[f32], m: usize, bf16: bool) -> Result<Vec<f32>> {
    let (_, k) = lin.dims()?;
    if bf16 {
        if let Some(y) = lin.pack_bf16()?.and_then(|w| w.matmul(a, m)) {
            return Ok(y);
        }
    }
    let x = Tensor::from_slice(a, (m, k), &Device::Cpu)?;
    Ok(lin.forward(&x)?.flatten_all()?.to_vec1::<f32>()?)
}

/// Query rows per attention block: the block's scores (`heads × rows × keys` f32) stay tens
/// of MB even at a 16k-token context, and each block reads only the keys it can see.
const ATTENTION_ROWS: usize = 256;

/// Causal attention of `t` new rows (`q`: `[t, heads·hd]`, `k`, `v`: `[t, kv_heads·hd]`,
/// already rotated) over the cached positions and themselves, appending `k`, `v` to layer
/// `layer` of the cache. Returns `[t, heads·hd]`. With `bf16` the products run on the BF16
/// attention kernel (as the vision tower's; `--precision fast`), else on Candle's f32 matmul.
#[allow(clippy::too_many_arguments)]
fn attend(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    t: usize,
    shape: Heads,
    cache: &mut KvCache,
    layer: usize,
    bf16: bool,
) -> Result<Vec<f32>> {
    let Heads {
        heads,
        kv_heads,
        head_dim: hd,
    } = shape;
    let device = Device::Cpu;
    let kt = Tensor::from_vec(to_heads(k, t, kv_heads, hd), (1, kv_heads, t, hd), &device)?;
    let vt = Tensor::from_vec(to_heads(v, t, kv_heads, hd), (1, kv_heads, t, hd), &device)?;
    let (keys, values) = cache.append(layer, &kt, &vt)?;
    // Positions before the new rows.
    let start = keys.dim(2)? - t;
    let scale = (hd as f64).powf(-0.5) as f32;
    if bf16 {
        let flat = |x: &Tensor| -> Result<Vec<f32>> {
            Ok(x.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?)
        };
        let shape = AttentionShape {
            tokens: t,
            heads,
            head_dim: hd,
        };
        let out = attention_bf16::causal_attention(
            q,
            &flat(&keys)?,
            &flat(&values)?,
            shape,
            kv_heads,
            scale,
        );
        if let Some(out) = out {
            return Ok(out);
        }
    }
    // GQA: the query heads of a group are stacked as rows over their shared key/value head,
    // as in the Candle path: no repeated keys or values.
    let group = heads / kv_heads;
    let width = heads * hd;
    let mut out = vec![0f32; t * width];
    for r0 in (0..t).step_by(ATTENTION_ROWS) {
        let rows = ATTENTION_ROWS.min(t - r0);
        // Keys past the block's last query are masked for every row of it: not read at all.
        let seen = start + r0 + rows;
        let block = &q[r0 * width..(r0 + rows) * width];
        let qt = Tensor::from_vec(
            to_heads(block, rows, heads, hd),
            (1, kv_heads, group * rows, hd),
            &device,
        )?;
        let k_seen = keys.narrow(2, 0, seen)?;
        let mut scores = qt.matmul(&k_seen.t()?)?.flatten_all()?.to_vec1::<f32>()?;
        scores
            .par_chunks_mut(seen)
            .enumerate()
            .for_each(|(row, s)| {
                // Query `row % rows` of the block sits at position `start + r0 + row % rows`
                // and sees keys up to it.
                let visible = start + r0 + row % rows + 1;
                let (seen, masked) = s.split_at_mut(visible);
                for v in seen.iter_mut() {
                    *v *= scale;
                }
                softmax_rows(seen, visible);
                masked.fill(0.0);
            });
        let probs = Tensor::from_vec(scores, (1, kv_heads, group * rows, seen), &device)?;
        let ctx = probs.matmul(&values.narrow(2, 0, seen)?.contiguous()?)?;
        let ctx = from_heads(&ctx.flatten_all()?.to_vec1::<f32>()?, rows, heads, hd);
        out[r0 * width..(r0 + rows) * width].copy_from_slice(&ctx);
    }
    Ok(out)
}

/// `[t, n·hd]` → `[n, t, hd]`.
fn to_heads(x: &[f32], t: usize, n: usize, hd: usize) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    for (r, row) in x.chunks_exact(n * hd).enumerate() {
        for (h, head) in row.chunks_exact(hd).enumerate() {
            out[(h * t + r) * hd..][..hd].copy_from_slice(head);
        }
    }
    out
}

/// `[n, t, hd]` → `[t, n·hd]`.
fn from_heads(x: &[f32], t: usize, n: usize, hd: usize) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    for (h, head) in x.chunks_exact(t * hd).enumerate() {
        for (r, row) in head.chunks_exact(hd).enumerate() {
            out[(r * n + h) * hd..][..hd].copy_from_slice(row);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_layouts_round_trip() {
        let (t, n, hd) = (3, 2, 4);
        let x: Vec<f32> = (0..t * n * hd).map(|v| v as f32).collect();
        let heads = to_heads(&x, t, n, hd);
        // Head 1 of row 2 starts at element (2·n + 1)·hd of the row-major input.
        assert_eq!(heads[(t + 2) * hd], ((2 * n + 1) * hd) as f32);
        assert_eq!(from_heads(&heads, t, n, hd), x);
    }
}
