//! One new position's attention over the cached keys and values (a decode step), in f32.
//!
//! Per query head: scores `q · k · scale` over the cached positions, a softmax (the exp of
//! `fastmath`, as the prompt pass uses), and the probability-weighted sum of the values; the
//! formulas of transformers' eager attention, summed in another order. The loops are written
//! once and compiled a second time with AVX2+FMA, chosen at run time: the default x86-64
//! target vectorizes only to SSE2, which made attention a third of a step at 900 cached
//! positions. Heads run in parallel (on the decode team) only when there is enough work to pay
//! for the fork.
//!
//! input: queries `[heads, head_dim]`, keys and values `[kv_heads, capacity, head_dim]` with
//! `len` valid positions, in f32 or f16 (converted to f32 as they are read, 8 lanes per
//! `vcvtph2ps`) → output `[heads, head_dim]`.

use std::sync::Mutex;

use super::fastmath::softmax_rows;
use super::qmatmul::dot;
use super::team::Team;

/// Multiply-adds (scores and values together) below which the heads run on one thread: a fork
/// and join costs about as much as this many on a 2-core VM.
const PARALLEL_MIN_MACS: usize = 1 << 16;

/// A key or value cache buffer, `[kv_heads, capacity, head_dim]`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum CachedRows<'a> {
    F32(&'a [f32]),
    F16(&'a [half::f16]),
}

impl<'a> CachedRows<'a> {
    fn range(self, r: std::ops::Range<usize>) -> CachedRows<'a> {
        match self {
            CachedRows::F32(x) => CachedRows::F32(&x[r]),
            CachedRows::F16(x) => CachedRows::F16(&x[r]),
        }
    }
}

/// Sizes of one decode attention.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DecodeShape {
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    /// Cached positions, the new one included.
    pub len: usize,
    /// Positions the key/value buffers have room for (their stride per kv head).
    pub capacity: usize,
}

/// `out[h] = softmax(q[h] · K[g]ᵀ · scale) · V[g]` for every query head `h`, where `g` is the
/// kv head serving `h` (grouped-query attention: `heads / kv_heads` queries per kv head).
pub(crate) fn attend(
    q: &[f32],
    keys: CachedRows<'_>,
    values: CachedRows<'_>,
    shape: DecodeShape,
    scale: f32,
    out: &mut [f32],
) {
    let DecodeShape {
        heads,
        kv_heads,
        head_dim: hd,
        len,
        capacity,
    } = shape;
    let group = heads / kv_heads.max(1);
    let one = |head: usize, qh: &[f32], oh: &mut [f32]| {
        let base = (head / group) * capacity * hd;
        let rows = base..base + len * hd;
        match (keys.range(rows.clone()), values.range(rows)) {
            (CachedRows::F32(k), CachedRows::F32(v)) => head_attend(qh, k, v, scale, oh),
            (CachedRows::F16(k), CachedRows::F16(v)) => head_attend_f16(qh, k, v, scale, oh),
            // The cache converts both to one storage dtype.
            _ => oh.fill(f32::NAN),
        }
    };
    if heads * len * hd * 2 < PARALLEL_MIN_MACS {
        for (head, (oh, qh)) in out.chunks_mut(hd).zip(q.chunks(hd)).enumerate() {
            one(head, qh, oh);
        }
    } else {
        let heads_out: Vec<Mutex<&mut [f32]>> = out.chunks_mut(hd).map(Mutex::new).collect();
        Team::global().for_each(heads, &|head| {
            let mut oh = heads_out[head].lock().unwrap_or_else(|e| e.into_inner());
            one(head, &q[head * hd..(head + 1) * hd], &mut oh);
        });
    }
}

/// One query head over `keys.len() / q.len()` positions.
fn head_attend(q: &[f32], keys: &[f32], values: &[f32], scale: f32, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: the CPU supports the features the function is compiled with.
            unsafe { head_attend_avx2(q, keys, values, scale, out) };
            return;
        }
    }
    head_attend_portable(q, keys, values, scale, out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn head_attend_avx2(q: &[f32], keys: &[f32], values: &[f32], scale: f32, out: &mut [f32]) {
    head_attend_portable(q, keys, values, scale, out)
}

/// [`head_attend`] over f16 keys and values.
fn head_attend_f16(
    q: &[f32],
    keys: &[half::f16],
    values: &[half::f16],
    scale: f32,
    out: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c")
        {
            // SAFETY: the CPU supports the features the function is compiled with.
            unsafe { x86::head_attend_f16(q, keys, values, scale, out) };
            return;
        }
    }
    let hd = q.len();
    let mut scores: Vec<f32> = keys
        .chunks_exact(hd)
        .map(|k| q.iter().zip(k).map(|(q, k)| q * k.to_f32()).sum::<f32>() * scale)
        .collect();
    let len = scores.len();
    softmax_rows(&mut scores, len);
    out.fill(0.0);
    for (p, v) in scores.iter().zip(values.chunks_exact(hd)) {
        for (o, v) in out.iter_mut().zip(v) {
            *o += p * v.to_f32();
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::softmax_rows;

    /// Eight f16 at `p` as f32.
    #[inline(always)]
    unsafe fn load8(p: *const half::f16) -> __m256 {
        // SAFETY: the caller guarantees 8 readable values and F16C.
        unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p.cast())) }
    }

    /// `super::head_attend_f16` with F16C conversions, 8 lanes at a time (a scalar tail for
    /// head widths that are not a multiple of 8).
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn head_attend_f16(
        q: &[f32],
        keys: &[half::f16],
        values: &[half::f16],
        scale: f32,
        out: &mut [f32],
    ) {
        let hd = q.len();
        let body = hd / 8 * 8;
        let mut scores: Vec<f32> = keys
            .chunks_exact(hd)
            .map(|k| {
                let mut acc = _mm256_setzero_ps();
                for i in (0..body).step_by(8) {
                    // SAFETY: `i + 8 ≤ body ≤ hd` for both `q` and the key row.
                    unsafe {
                        let kv = load8(k.as_ptr().add(i));
                        acc = _mm256_fmadd_ps(_mm256_loadu_ps(q.as_ptr().add(i)), kv, acc);
                    }
                }
                let tail: f32 = (body..hd).map(|i| q[i] * k[i].to_f32()).sum();
                // SAFETY: AVX is enabled.
                let lanes: [f32; 8] = unsafe { std::mem::transmute(acc) };
                (lanes.iter().sum::<f32>() + tail) * scale
            })
            .collect();
        let len = scores.len();
        softmax_rows(&mut scores, len);
        out.fill(0.0);
        for (p, v) in scores.iter().zip(values.chunks_exact(hd)) {
            let pv = _mm256_set1_ps(*p);
            for i in (0..body).step_by(8) {
                // SAFETY: as above, for `out` and the value row.
                unsafe {
                    let o = out.as_mut_ptr().add(i);
                    let r = _mm256_fmadd_ps(pv, load8(v.as_ptr().add(i)), _mm256_loadu_ps(o));
                    _mm256_storeu_ps(o, r);
                }
            }
            for i in body..hd {
                out[i] += p * v[i].to_f32();
            }
        }
    }
}

#[inline(always)]
fn head_attend_portable(q: &[f32], keys: &[f32], values: &[f32], scale: f32, out: &mut [f32]) {
    let hd = q.len();
    let mut scores: Vec<f32> = keys.chunks_exact(hd).map(|k| dot(q, k) * scale).collect();
    let len = scores.len();
    softmax_rows(&mut scores, len);
    out.fill(0.0);
    for (p, v) in scores.iter().zip(values.chunks_exact(hd)) {
        for (o, v) in out.iter_mut().zip(v) {
            *o += p * v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plain softmax attention in f64.
    fn reference(q: &[f32], keys: &[f32], values: &[f32], s: DecodeShape, scale: f32) -> Vec<f64> {
        let hd = s.head_dim;
        let group = s.heads / s.kv_heads;
        let mut out = vec![0f64; s.heads * hd];
        for h in 0..s.heads {
            let base = (h / group) * s.capacity * hd;
            let scores: Vec<f64> = (0..s.len)
                .map(|p| {
                    (0..hd)
                        .map(|i| f64::from(q[h * hd + i]) * f64::from(keys[base + p * hd + i]))
                        .sum::<f64>()
                        * f64::from(scale)
                })
                .collect();
            let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = scores.iter().map(|v| (v - max).exp()).collect();
            let total: f64 = e.iter().sum();
            for p in 0..s.len {
                for i in 0..hd {
                    out[h * hd + i] += e[p] / total * f64::from(values[base + p * hd + i]);
                }
            }
        }
        out
    }

    #[test]
    fn matches_a_plain_softmax_on_odd_shapes_serial_and_parallel() {
        // 6 query heads on 2 kv heads (groups of 3), head_dim 13, buffers with spare room.
        for len in [1usize, 7, 700] {
            let s = DecodeShape {
                heads: 6,
                kv_heads: 2,
                head_dim: 13,
                len,
                capacity: len + 5,
            };
            let val = |i: usize, m: usize| ((i * m % 97) as f32 - 48.0) / 40.0;
            let q: Vec<f32> = (0..s.heads * s.head_dim).map(|i| val(i, 31)).collect();
            let n = s.kv_heads * s.capacity * s.head_dim;
            let keys: Vec<f32> = (0..n).map(|i| val(i, 17)).collect();
            let values: Vec<f32> = (0..n).map(|i| val(i, 53)).collect();
            let mut out = vec![0f32; q.len()];
            let rows = CachedRows::F32;
            attend(&q, rows(&keys), rows(&values), s, 0.3, &mut out);
            let expect = reference(&q, &keys, &values, s, 0.3);
            for (i, (o, e)) in out.iter().zip(&expect).enumerate() {
                // f32 sums over up to 700 positions of values below 1.2 in magnitude.
                assert!(
                    (f64::from(*o) - e).abs() < 1e-5,
                    "len {len} [{i}]: {o} vs {e}"
                );
            }
            // The same from an f16 cache, against the reference on the f16-rounded values
            // (head_dim 13: one 8-lane step and a scalar tail).
            let to16 = |x: &[f32]| {
                x.iter()
                    .map(|v| half::f16::from_f32(*v))
                    .collect::<Vec<_>>()
            };
            let (k16, v16) = (to16(&keys), to16(&values));
            let back = |x: &[half::f16]| x.iter().map(|v| v.to_f32()).collect::<Vec<_>>();
            attend(
                &q,
                CachedRows::F16(&k16),
                CachedRows::F16(&v16),
                s,
                0.3,
                &mut out,
            );
            let expect = reference(&q, &back(&k16), &back(&v16), s, 0.3);
            for (i, (o, e)) in out.iter().zip(&expect).enumerate() {
                assert!(
                    (f64::from(*o) - e).abs() < 1e-5,
                    "f16, len {len} [{i}]: {o} vs {e}"
                );
            }
        }
    }
}
