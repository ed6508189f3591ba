//! Bidirectional multi-head attention for the vision tower on the BF16 dot-product kernels,
//! one block of query rows at a time.
//!
//! Through Candle a 1024-patch tile materialises twelve 1024×1024 f32 score matrices per
//! layer (48 MiB), writes and rereads them for the softmax and again for the product with
//! the values: the softmax alone was a fifth of the encoder's time, waiting on memory. Here
//! each task takes one head and [`BLOCK`] query rows, so its scores (256 KiB) stay in the
//! core's L2 from the `Q·Kᵀ` product through the softmax to the `P·V` product.

use rayon::prelude::*;

use crate::cpu::gemm_bf16::{self, PackedBf16, MR};

/// Query rows per task (a multiple of the micro-kernel's rows).
const BLOCK: usize = 64;

/// The sizes of one image's attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttentionShape {
    /// Tokens (patches).
    pub tokens: usize,
    /// Heads.
    pub heads: usize,
    /// Width of one head.
    pub head_dim: usize,
}

/// `qkv`: token-major `[l, 3 · heads · head_dim]` f32, each row the query, key and value
/// projections of one token side by side → `softmax(q·kᵀ·scale + key_bias)·v`, token-major
/// `[l, heads · head_dim]`. `key_bias` (`[l]`, 0 or a large negative value) masks padding
/// keys. `None` without the BF16 kernels.
pub fn attention(
    qkv: &[f32],
    shape: AttentionShape,
    scale: f32,
    key_bias: Option<&[f32]>,
) -> Option<Vec<f32>> {
    let AttentionShape {
        tokens: l,
        heads,
        head_dim,
    } = shape;
    let width = heads * head_dim;
    let stride = 3 * width;
    if !gemm_bf16::available() || qkv.len() != l * stride || key_bias.is_some_and(|b| b.len() != l)
    {
        return None;
    }
    let packed = (0..heads)
        .into_par_iter()
        .map(|h| {
            let (k0, v0) = (width + h * head_dim, 2 * width + h * head_dim);
            pack_head(
                l,
                head_dim,
                |t| &qkv[t * stride + k0..][..head_dim],
                |t| &qkv[t * stride + v0..][..head_dim],
            )
        })
        .collect::<Option<Vec<_>>>()?;
    let queries = Queries {
        tokens: l,
        heads,
        head_dim,
        row: &|t, h| &qkv[t * stride + h * head_dim..][..head_dim],
    };
    attend(queries, &packed, scale, key_bias, &|_| l)
}

/// Causal attention of `t` new queries (`q`: token-major `[t, heads · head_dim]`) over
/// `keys` and `values` (`[kv_heads, seen, head_dim]`, the cached positions followed by the
/// new ones, so query `i` sits at position `seen − t + i` and sees keys `0..=seen − t + i`).
/// Query heads share key/value heads in groups of `heads / kv_heads`. Returns token-major
/// `[t, heads · head_dim]`; `None` without the BF16 kernels or on mismatched lengths.
pub(crate) fn causal_attention(
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    shape: AttentionShape,
    kv_heads: usize,
    scale: f32,
) -> Option<Vec<f32>> {
    let AttentionShape {
        tokens: t,
        heads,
        head_dim,
    } = shape;
    let width = heads * head_dim;
    if kv_heads == 0 || !heads.is_multiple_of(kv_heads) || q.len() != t * width || t == 0 {
        return None;
    }
    let seen = keys.len() / (kv_heads * head_dim);
    if !gemm_bf16::available()
        || keys.len() != kv_heads * seen * head_dim
        || values.len() != keys.len()
        || seen < t
    {
        return None;
    }
    let packed = (0..kv_heads)
        .into_par_iter()
        .map(|g| {
            let base = g * seen * head_dim;
            pack_head(
                seen,
                head_dim,
                |p| &keys[base + p * head_dim..][..head_dim],
                |p| &values[base + p * head_dim..][..head_dim],
            )
        })
        .collect::<Option<Vec<_>>>()?;
    let queries = Queries {
        tokens: t,
        heads,
        head_dim,
        row: &|i, h| &q[i * width + h * head_dim..][..head_dim],
    };
    let past = seen - t;
    attend(queries, &packed, scale, None, &|i| past + i + 1)
}

/// One key/value head's keys as a `[positions, head_dim]` matrix and its values transposed
/// as `[head_dim, positions]`, so that both products are "activations times packed matrix".
fn pack_head<'a>(
    positions: usize,
    head_dim: usize,
    key: impl Fn(usize) -> &'a [f32],
    value: impl Fn(usize) -> &'a [f32],
) -> Option<(PackedBf16, PackedBf16)> {
    let keys = PackedBf16::from_row_fn(positions, head_dim, key)?;
    // Vᵀ column p is position p's value row.
    let values_t = PackedBf16::from_column_fn(head_dim, positions, value)?;
    Some((keys, values_t))
}

/// Where the queries are: `row(t, h)` is head `h`'s `head_dim` values for token `t`.
#[derive(Clone, Copy)]
struct Queries<'a> {
    tokens: usize,
    heads: usize,
    head_dim: usize,
    row: &'a (dyn Fn(usize, usize) -> &'a [f32] + Sync),
}

/// The shared body: for every query head and block of [`BLOCK`] query rows, the scores
/// against the keys of its key/value head (`packed[h / group]`), softmax over the first
/// `visible(t)` keys of row `t` (plus `key_bias`), and the product with the values.
fn attend(
    queries: Queries<'_>,
    packed: &[(PackedBf16, PackedBf16)],
    scale: f32,
    key_bias: Option<&[f32]>,
    visible: &(dyn Fn(usize) -> usize + Sync),
) -> Option<Vec<f32>> {
    let Queries {
        tokens: l,
        heads,
        head_dim,
        row: query,
    } = queries;
    let width = heads * head_dim;
    let group = heads / packed.len();
    let blocks = l.div_ceil(BLOCK);
    let mut out = vec![0f32; l * width];
    let out_ptr = SharedOut(out.as_mut_ptr());
    (0..heads * blocks)
        .into_par_iter()
        .try_for_each(|task| -> Option<()> {
            let (h, b) = (task / blocks, task % blocks);
            let (keys, values_t) = &packed[h / group];
            let m0 = b * BLOCK;
            let rows = BLOCK.min(l - m0);
            let m_pad = rows.div_ceil(MR) * MR;
            // Keys past the block's last row's view are masked for every row of the block:
            // neither multiplied nor read.
            let seen = visible(m0 + rows - 1);

            // Q rows of this head, as bf16 pairs.
            let q_pairs = keys.pairs();
            let mut q16 = vec![0u32; m_pad * q_pairs];
            for r in 0..rows {
                gemm_bf16::round_row(query(m0 + r, h), &mut q16[r * q_pairs..(r + 1) * q_pairs]);
            }
            let l_pad = keys.n_padded();
            let mut scores = vec![0f32; m_pad * l_pad];
            keys.matmul_bf16_serial(&q16, m_pad, &mut scores, seen, head_dim)?;

            // Softmax over each row's visible keys, then the probabilities as bf16 (zero
            // past them).
            let p_pairs = values_t.pairs();
            let mut p16 = vec![0u32; m_pad * p_pairs];
            for r in 0..rows {
                let n = visible(m0 + r);
                softmax_to_bf16(
                    &mut scores[r * l_pad..r * l_pad + n],
                    scale,
                    key_bias.map(|b| &b[..n]),
                    &mut p16[r * p_pairs..r * p_pairs + n.div_ceil(2)],
                );
            }
            let d_pad = values_t.n_padded();
            let mut ctx = vec![0f32; m_pad * d_pad];
            values_t.matmul_bf16_serial(&p16, m_pad, &mut ctx, head_dim, seen)?;
            for r in 0..rows {
                let at = (m0 + r) * width + h * head_dim;
                // SAFETY: this task alone writes columns `h·head_dim..(h+1)·head_dim` of rows
                // `m0..m0+rows`, which lie inside `out` (`l × width`).
                let dst =
                    unsafe { std::slice::from_raw_parts_mut(out_ptr.get().add(at), head_dim) };
                dst.copy_from_slice(&ctx[r * d_pad..r * d_pad + head_dim]);
            }
            Some(())
        })?;
    Some(out)
}

/// `softmax(row · scale + bias)` rounded to bf16 pairs in `dst`; `row` is scratch.
fn softmax_to_bf16(row: &mut [f32], scale: f32, bias: Option<&[f32]>, dst: &mut [u32]) {
    #[cfg(target_arch = "x86_64")]
    {
        // `attention` checked `gemm_bf16::available()` (AVX-512 F and BF16).
        // SAFETY: the CPU has the features; `bias` (if any) is as long as `row`.
        unsafe { x86::softmax_to_bf16(row, scale, bias, dst) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        match bias {
            Some(bias) => row
                .iter_mut()
                .zip(bias)
                .for_each(|(s, b)| *s = *s * scale + b),
            None => row.iter_mut().for_each(|s| *s *= scale),
        }
        let width = row.len();
        crate::cpu::fastmath::softmax_rows(row, width);
        gemm_bf16::round_row(row, dst);
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use crate::cpu::fastmath::x86::exp16;

    /// See `super::softmax_to_bf16`.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub unsafe fn softmax_to_bf16(
        row: &mut [f32],
        scale: f32,
        bias: Option<&[f32]>,
        dst: &mut [u32],
    ) {
        let n = row.len();
        let whole = n / 16 * 16;
        let vscale = _mm512_set1_ps(scale);
        let mut vmax = _mm512_set1_ps(f32::NEG_INFINITY);
        let mut i = 0;
        // SAFETY (all loads and stores below): indices stay below `whole ≤ n` for `row` and
        // `bias`, and below `n.div_ceil(2)` lanes for `dst`.
        while i < whole {
            unsafe {
                let p = row.as_mut_ptr().add(i);
                let mut s = _mm512_mul_ps(_mm512_loadu_ps(p), vscale);
                if let Some(b) = bias {
                    s = _mm512_add_ps(s, _mm512_loadu_ps(b.as_ptr().add(i)));
                }
                _mm512_storeu_ps(p, s);
                vmax = _mm512_max_ps(vmax, s);
            }
            i += 16;
        }
        let mut max = _mm512_reduce_max_ps(vmax);
        for j in whole..n {
            row[j] = row[j] * scale + bias.map_or(0.0, |b| b[j]);
            max = max.max(row[j]);
        }
        let vmax = _mm512_set1_ps(max);
        let mut vsum = _mm512_setzero_ps();
        i = 0;
        while i < whole {
            unsafe {
                let p = row.as_mut_ptr().add(i);
                let e = exp16(_mm512_sub_ps(_mm512_loadu_ps(p), vmax));
                _mm512_storeu_ps(p, e);
                vsum = _mm512_add_ps(vsum, e);
            }
            i += 16;
        }
        let mut sum = _mm512_reduce_add_ps(vsum);
        for v in &mut row[whole..] {
            *v = (*v - max).exp();
            sum += *v;
        }
        let inv = 1.0 / sum;
        let vinv = _mm512_set1_ps(inv);
        let pairs32 = n / 32 * 32;
        i = 0;
        while i < pairs32 {
            unsafe {
                let p = row.as_ptr().add(i);
                let lo = _mm512_mul_ps(_mm512_loadu_ps(p), vinv);
                let hi = _mm512_mul_ps(_mm512_loadu_ps(p.add(16)), vinv);
                let packed: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(hi, lo));
                _mm512_storeu_si512(dst.as_mut_ptr().add(i / 2).cast(), packed);
            }
            i += 32;
        }
        for v in &mut row[pairs32..] {
            *v *= inv;
        }
        crate::cpu::gemm_bf16::round_row(&row[pairs32..], &mut dst[pairs32 / 2..]);
    }
}

/// The output buffer, written by tasks in disjoint (head, row block) pieces.
struct SharedOut(*mut f32);
// SAFETY: tasks write disjoint elements; nothing reads `out` until all tasks are done.
unsafe impl Sync for SharedOut {}

impl SharedOut {
    /// Through a method, so that closures capture the whole (`Sync`) wrapper.
    fn get(&self) -> *mut f32 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bf16(v: f32) -> f64 {
        f64::from(half::bf16::from_f32(v).to_f32())
    }

    /// Against a plain f64 evaluation of the same bf16-rounded inputs.
    fn skip() -> bool {
        if gemm_bf16::available() {
            return false;
        }
        eprintln!("note: this CPU lacks AVX-512 BF16; the BF16 attention is not checked here");
        true
    }

    #[test]
    fn matches_a_plain_evaluation() {
        if skip() {
            return;
        }
        // Lengths off the block sizes; an odd head width; a masked key.
        let (l, heads, hd) = (70, 2, 5);
        let width = heads * hd;
        let gen = |seed: usize| -> Vec<f32> {
            (0..l * width)
                .map(|i| (((i * seed) % 97) as f32 - 48.0) / 40.0)
                .collect()
        };
        let (q, k, v) = (gen(31), gen(17), gen(43));
        let qkv: Vec<f32> = (0..l)
            .flat_map(|t| {
                let row = t * width..(t + 1) * width;
                [&q[row.clone()], &k[row.clone()], &v[row]].concat()
            })
            .collect();
        let mut bias = vec![0f32; l];
        bias[3] = f32::MIN;
        let scale = 0.4;
        let out = attention(
            &qkv,
            AttentionShape {
                tokens: l,
                heads,
                head_dim: hd,
            },
            scale,
            Some(&bias),
        )
        .unwrap();
        for h in 0..heads {
            for i in 0..l {
                let s: Vec<f64> = (0..l)
                    .map(|j| {
                        let dot: f64 = (0..hd)
                            .map(|d| {
                                bf16(q[i * width + h * hd + d]) * bf16(k[j * width + h * hd + d])
                            })
                            .sum();
                        dot * f64::from(scale) + f64::from(bias[j])
                    })
                    .collect();
                let max = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = s.iter().map(|x| (x - max).exp()).collect();
                let total: f64 = e.iter().sum();
                for d in 0..hd {
                    let want: f64 = (0..l)
                        .map(|j| e[j] / total * f64::from(v[j * width + h * hd + d]))
                        .sum();
                    let got = f64::from(out[i * width + h * hd + d]);
                    // Probabilities and values rounded to bf16 (relative 2⁻⁹ each): a weighted
                    // mean of values ≤ 1.2 in magnitude is off by at most ~5e-3.
                    assert!(
                        (got - want).abs() < 1e-2,
                        "head {h} row {i} dim {d}: {got} vs {want}"
                    );
                }
            }
        }
    }

    /// Causal attention with cached positions, shared key/value heads and query blocks that
    /// see different numbers of keys, against an f64 evaluation on the same bf16-rounded
    /// inputs.
    #[test]
    fn causal_attention_matches_a_plain_evaluation() {
        if skip() {
            return;
        }
        // 70 new rows (two query blocks) after 31 cached positions; 4 query heads over 2
        // key/value heads; an odd head width.
        let (t, past, heads, kv_heads, hd) = (70, 31, 4, 2, 5);
        let seen = past + t;
        let gen = |n: usize, seed: usize| -> Vec<f32> {
            (0..n)
                .map(|i| (((i * seed) % 97) as f32 - 48.0) / 40.0)
                .collect()
        };
        let q = gen(t * heads * hd, 31);
        // `[kv_heads, seen, hd]`.
        let keys = gen(kv_heads * seen * hd, 17);
        let values = gen(kv_heads * seen * hd, 43);
        let scale = 0.4;
        let shape = AttentionShape {
            tokens: t,
            heads,
            head_dim: hd,
        };
        let out = causal_attention(&q, &keys, &values, shape, kv_heads, scale).unwrap();
        let group = heads / kv_heads;
        for h in 0..heads {
            let g = h / group;
            let kv = |x: &[f32], p: usize, d: usize| x[(g * seen + p) * hd + d];
            for i in 0..t {
                let visible = past + i + 1;
                let s: Vec<f64> = (0..visible)
                    .map(|p| {
                        let dot: f64 = (0..hd)
                            .map(|d| bf16(q[(i * heads + h) * hd + d]) * bf16(kv(&keys, p, d)))
                            .sum();
                        dot * f64::from(scale)
                    })
                    .collect();
                let max = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = s.iter().map(|x| (x - max).exp()).collect();
                let total: f64 = e.iter().sum();
                for d in 0..hd {
                    let want: f64 = (0..visible)
                        .map(|p| e[p] / total * f64::from(kv(&values, p, d)))
                        .sum();
                    let got = f64::from(out[(i * heads + h) * hd + d]);
                    // As in `matches_a_plain_evaluation`: bf16 probabilities and values.
                    assert!(
                        (got - want).abs() < 1e-2,
                        "head {h} row {i} dim {d}: {got} vs {want}"
                    );
                }
            }
        }
        // Mismatched lengths are refused, not read out of bounds.
        assert!(causal_attention(&q[1..], &keys, &values, shape, kv_heads, scale).is_none());
        assert!(causal_attention(&q, &keys, &values[1..], shape, kv_heads, scale).is_none());
        assert!(causal_attention(&q, &keys, &values, shape, 3, scale).is_none());
    }
}
