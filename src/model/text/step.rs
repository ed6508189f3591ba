//! The decoder's one-token step on the CPU in f32, outside Candle's op-by-op graph.
//!
//! A decode step is ~30 layers of ~25 small operations. Through Candle each operation
//! allocates a tensor and each matrix-vector product wakes the thread pool on its own; at
//! SmolVLM2-256M size that overhead was over half of the step. Here a layer is five parallel
//! sections (q/k/v, attention, o, gate/up, down) over buffers reused across layers. The
//! arithmetic is the Candle path's (f32 throughout, same formulas as transformers' Llama);
//! only the summation order differs.

use std::sync::Mutex;

use super::{RopeLayout, TextModel};
use crate::config::Activation;
use crate::cpu::decode_attention::{attend, DecodeShape};
use crate::cpu::qmatmul::int8_act::{Int8Activation, Isa};
use crate::cpu::team::Team;
use crate::error::Result;
use crate::model::kv_cache::KvCache;
use crate::model::layers::RowView;

/// Output rows per parallel work item of a matrix-vector product: small enough to balance
/// two to sixteen threads on a 576-row matrix, large enough to amortise the dispatch.
const ROWS_PER_JOB: usize = 32;

struct LayerViews<'a> {
    input_norm: Vec<f32>,
    post_norm: Vec<f32>,
    q: RowView<'a>,
    k: RowView<'a>,
    v: RowView<'a>,
    o: RowView<'a>,
    gate: RowView<'a>,
    up: RowView<'a>,
    down: RowView<'a>,
}

impl TextModel {
    /// One token's embedding `x` (`[hidden]`) at position `cache.len()` → logits `[vocab]`,
    /// appending to the cache. `None` (and the cache untouched) when the weights are not all
    /// f32 or block matrices on the CPU, or the activation has no step kernel.
    ///
    /// Its parallel sections run on the decode team (`cpu::team`), whose threads spin between
    /// sections instead of parking.
    pub(super) fn step(&self, x: &[f32], cache: &mut KvCache) -> Result<Option<Vec<f32>>> {
        let Some(first) = self.layers.first() else {
            return Ok(None);
        };
        let Some(act) = step_activation(first.mlp.act) else {
            return Ok(None);
        };
        let mut layers = Vec::with_capacity(self.layers.len());
        for l in &self.layers {
            let a = &l.self_attn;
            let m = &l.mlp;
            let views = (
                a.q_proj.row_view(),
                a.k_proj.row_view(),
                a.v_proj.row_view(),
                a.o_proj.row_view(),
                m.gate_proj.row_view(),
                m.up_proj.row_view(),
                m.down_proj.row_view(),
            );
            let (Some(q), Some(k), Some(v), Some(o), Some(gate), Some(up), Some(down)) = views
            else {
                return Ok(None);
            };
            layers.push(LayerViews {
                input_norm: l.input_layernorm.weight_f32()?,
                post_norm: l.post_attention_layernorm.weight_f32()?,
                q,
                k,
                v,
                o,
                gate,
                up,
                down,
            });
        }
        let Some(lm_head) = self.lm_head.row_view() else {
            return Ok(None);
        };
        let (vocab, _) = self.lm_head.dims()?;
        let final_norm = self.norm.weight_f32()?;

        let attn = &first.self_attn;
        let (heads, kv_heads, hd) = (attn.heads, attn.kv_heads, attn.head_dim);
        let (ffn, _) = first.mlp.gate_proj.dims()?;
        let eps = self.norm.eps() as f32;
        let pos = cache.len();
        let (cos, sin) = self.rotary.at(pos);
        let scale = (hd as f64).powf(-0.5) as f32;

        let mut x = x.to_vec();
        let mut h = vec![0f32; x.len()];
        let mut q = vec![0f32; heads * hd];
        let mut k = vec![0f32; kv_heads * hd];
        let mut v = vec![0f32; kv_heads * hd];
        let mut att = vec![0f32; heads * hd];
        let mut proj = vec![0f32; x.len()];
        let mut gate = vec![0f32; ffn];
        let mut up = vec![0f32; ffn];
        let mut mv = Matvec {
            int8: self.decode_int8,
            rounded: Int8Activation::default(),
        };
        for (i, l) in layers.iter().enumerate() {
            rms_norm(&x, &l.input_norm, eps, &mut h);
            mv.run(&h, &mut [(&l.q, &mut q), (&l.k, &mut k), (&l.v, &mut v)]);
            for head in q.chunks_mut(hd).chain(k.chunks_mut(hd)) {
                rope(head, &cos, &sin, self.rotary.layout);
            }
            let done = cache.append_step(i, kv_heads, &k, &v, |kc, vc, capacity| {
                let shape = DecodeShape {
                    heads,
                    kv_heads,
                    head_dim: hd,
                    len: pos + 1,
                    capacity,
                };
                attend(&q, kc, vc, shape, scale, &mut att);
            })?;
            if done.is_none() {
                return Err(candle_core::Error::Msg(
                    "the key/value cache is neither f32 nor f16 on the CPU".into(),
                )
                .into());
            }
            mv.run(&att, &mut [(&l.o, &mut proj)]);
            add_assign(&mut x, &proj);
            rms_norm(&x, &l.post_norm, eps, &mut h);
            mv.run(&h, &mut [(&l.gate, &mut gate), (&l.up, &mut up)]);
            act(&mut gate, &up);
            mv.run(&gate, &mut [(&l.down, &mut proj)]);
            add_assign(&mut x, &proj);
        }
        rms_norm(&x, &final_norm, eps, &mut h);
        let mut logits = vec![0f32; vocab];
        mv.run(&h, &mut [(&lm_head, &mut logits)]);
        Ok(Some(logits))
    }
}

/// `gate ← act(gate) · up` over a whole row.
pub(super) type GatedActivation = fn(&mut [f32], &[f32]);

/// The gated MLP's activation, where the step has a kernel for `act`.
pub(super) fn step_activation(act: Activation) -> Option<GatedActivation> {
    match act {
        // Candle's `silu`: x / (1 + e^(-x)).
        Activation::Silu => Some(crate::cpu::fastmath::silu_mul_in_place),
        Activation::GeluTanh | Activation::GeluErf => None,
    }
}

/// The step's matrix-vector products: f32 activations, or with `int8` set the activation
/// rounded once per call to 8-bit blocks (`DecodeCompute::Int8Dot`) for the block matrices
/// that have int8 kernels; the rest stay on f32.
struct Matvec {
    int8: Option<Isa>,
    /// The rounded activation, its buffers reused across calls.
    rounded: Int8Activation,
}

impl Matvec {
    /// Every `(matrix, out)` pair: `out = matrix · x`, as one parallel section.
    fn run(&mut self, x: &[f32], targets: &mut [(&RowView<'_>, &mut [f32])]) {
        let int8 = self.int8.filter(|_| x.len().is_multiple_of(32));
        if int8.is_some() {
            self.rounded.requantize(x);
        }
        let rounded = &self.rounded;
        // Block sums feed the f32-activation kernels of Q4_1/Q5_1; under int8 the rounded row
        // carries its own, so only matrices that stay on f32 need them.
        let f32_needs_sums =
            |m: &RowView<'_>| m.needs_block_sums() && !(int8.is_some() && m.has_int8_kernel());
        let sums: Vec<f32> = if targets.iter().any(|(m, _)| f32_needs_sums(m)) {
            x.chunks(32).map(|b| b.iter().sum()).collect()
        } else {
            Vec::new()
        };
        let mut jobs = Vec::new();
        for (matrix, out) in targets.iter_mut() {
            for (c, chunk) in out.chunks_mut(ROWS_PER_JOB).enumerate() {
                jobs.push(Mutex::new((&**matrix, c * ROWS_PER_JOB, chunk)));
            }
        }
        Team::global().for_each(jobs.len(), &|j| {
            // Each job is taken by one member only; the lock just hands over its `&mut`.
            let mut job = jobs[j].lock().unwrap_or_else(|e| e.into_inner());
            let (matrix, first, out) = &mut *job;
            let done = int8.is_some_and(|isa| matrix.int8_rows_into(isa, rounded, *first, out));
            if !done {
                matrix.rows_into(x, &sums, *first, out);
            }
        });
    }
}

/// Llama's RMSNorm in f32: `w · x / sqrt(mean(x²) + eps)`.
pub(super) fn rms_norm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let mean = x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32;
    let denom = (mean + eps).sqrt();
    for ((o, v), w) in out.iter_mut().zip(x).zip(w) {
        *o = (v / denom) * w;
    }
}

pub(super) fn add_assign(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

/// Rotates one head in place; `cos`, `sin` are `[head_dim / 2]`.
pub(super) fn rope(x: &mut [f32], cos: &[f32], sin: &[f32], layout: RopeLayout) {
    let half = x.len() / 2;
    for i in 0..half {
        let (a, b) = match layout {
            RopeLayout::SplitHalf => (i, i + half),
            RopeLayout::Interleaved => (2 * i, 2 * i + 1),
        };
        let (xa, xb) = (x[a], x[b]);
        x[a] = xa * cos[i] - xb * sin[i];
        x[b] = xa * sin[i] + xb * cos[i];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rope_layouts_pair_the_right_dimensions() {
        let (cos, sin) = ([0.0f32, 1.0], [1.0f32, 0.0]);
        let mut split = [1.0f32, 2.0, 3.0, 4.0];
        rope(&mut split, &cos, &sin, RopeLayout::SplitHalf);
        // Pair (0, 2) turns by 90°, pair (1, 3) stays.
        assert_eq!(split, [-3.0, 2.0, 1.0, 4.0]);
        let mut inter = [1.0f32, 2.0, 3.0, 4.0];
        rope(&mut inter, &cos, &sin, RopeLayout::Interleaved);
        // Pair (0, 1) turns by 90°, pair (2, 3) stays.
        assert_eq!(inter, [-2.0, 1.0, 3.0, 4.0]);
    }
}
