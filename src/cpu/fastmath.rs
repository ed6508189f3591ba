//! Elementwise f32 kernels for the vision tower's hot non-matmul ops: tanh-GELU and the
//! attention softmax.
//!
//! Candle evaluates these with one libm call per element (`tanhf`, `expf`), which the profile of
//! a 512 px tile puts at a fifth of the encoder's time. Here `exp` is a branch-free polynomial
//! (relative error below 2e-7, the order of f32 rounding) that the compiler vectorizes; the
//! AVX2+FMA build is chosen at run time. Other dtypes go through Candle unchanged.

use candle_core::{DType, Tensor, D};
use rayon::prelude::*;

use crate::error::Result;

/// Elements per parallel work item.
const CHUNK: usize = 16 * 1024;

/// `exp(x)` for f32 by range reduction `x = k·ln2 + r`, `|r| ≤ ln2/2`, and a degree-6
/// polynomial for `e^r`; inputs below −87 flush to 0, above 88 saturate.
#[inline(always)]
fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    let k = (x * std::f32::consts::LOG2_E).round();
    let r = x - k * 0.693_145_75 - k * 1.428_606_8e-6;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (0.166_666_67
                    + r * (0.041_666_668 + r * (0.008_333_334 + r * 0.001_388_889)))));
    p * f32::from_bits(((k as i32 + 127) as u32) << 23)
}

/// √(2/π), GELU's tanh-approximation constant.
const GELU_C: f32 = 0.797_884_6;
/// The cubic term's coefficient.
const GELU_CUBIC: f32 = 0.044_715;

/// `0.5·x·(1 + tanh(u))` with `u = √(2/π)·(x + 0.044715·x³)`, computed as the equal
/// `x / (1 + e^{−2u})`: one exponential and one division, and no cancellation in `1 + tanh(u)`
/// for large negative `x`.
#[inline(always)]
fn gelu_tanh_one(x: f32) -> f32 {
    let u = GELU_C * (x + GELU_CUBIC * x * x * x);
    x / (1.0 + exp(-2.0 * u))
}

/// `e^x` for f32 computed in f64 and rounded once: the range reduction and a degree-13
/// polynomial (truncation below 5e-18 relative) leave the f64 result so close to the true value
/// that rounding it to f32 gives the correctly rounded `e^x`. glibc's `expf` (error up to
/// 0.502 ulp) returns the same in all but about one input in two thousand. Unlike a call to
/// `expf`, it vectorizes.
#[inline(always)]
fn exp_correctly_rounded(x: f32) -> f32 {
    // Adding 1.5·2⁵² rounds `x·log₂e` to an integer k held in the low mantissa bits, where
    // integer adds and shifts (which vectorize, unlike f64 → i64 conversion on AVX2) turn it
    // into the exponent of 2^k.
    const SHIFTER: f64 = 6_755_399_441_055_744.0;
    // ln 2 in two parts, the first with trailing zero bits so that `k · LN2_HI` is exact.
    const LN2_HI: f64 = 0.693_147_180_369_123_8;
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    // 1/n! for n = 13 down to 2.
    const INV_FACTORIAL: [f64; 12] = [
        1.605_904_383_682_161_3e-10,
        2.087_675_698_786_81e-9,
        2.505_210_838_544_172e-8,
        2.755_731_922_398_589e-7,
        2.755_731_922_398_589_3e-6,
        2.480_158_730_158_73e-5,
        1.984_126_984_126_984e-4,
        1.388_888_888_888_889e-3,
        8.333_333_333_333_333e-3,
        4.166_666_666_666_666_4e-2,
        0.166_666_666_666_666_66,
        0.5,
    ];
    let x = f64::from(x).clamp(-200.0, 200.0);
    let kd = x.mul_add(std::f64::consts::LOG2_E, SHIFTER);
    let k = kd - SHIFTER;
    let r = (x - k * LN2_HI) - k * LN2_LO;
    let mut p = INV_FACTORIAL[0];
    for c in &INV_FACTORIAL[1..] {
        p = p * r + c;
    }
    let p = (p * r + 1.0) * r + 1.0;
    let scale = f64::from_bits(kd.to_bits().wrapping_add(1023) << 52);
    (p * scale) as f32
}

/// `gate ← silu(gate) · up` with Candle's (and PyTorch's) `silu(x) = x / (1 + e^(−x))`, the
/// same operations in the same order and `e^x` correctly rounded: the results equal the
/// libm-based formula's.
#[inline(always)]
fn silu_mul_slice(gate: &mut [f32], up: &[f32]) {
    for (g, u) in gate.iter_mut().zip(up) {
        *g = *g / (1.0 + exp_correctly_rounded(-*g)) * u;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn silu_mul_slice_avx2(gate: &mut [f32], up: &[f32]) {
    silu_mul_slice(gate, up)
}

/// A gated MLP's activation in place: `gate[i] = silu(gate[i]) · up[i]`. Through a function
/// pointer per element and libm's `expf` this was about 5 % of a 256M decode step.
pub(crate) fn silu_mul_in_place(gate: &mut [f32], up: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if has_avx2() {
            // SAFETY: the CPU supports the features the function is compiled with.
            unsafe { silu_mul_slice_avx2(gate, up) };
            return;
        }
    }
    silu_mul_slice(gate, up);
}

#[inline(always)]
fn gelu_slice(xs: &mut [f32]) {
    for x in xs {
        *x = gelu_tanh_one(*x);
    }
}

/// Lanes of the max and sum reductions: independent partial results let the compiler
/// vectorize them (one running f32 sum would fix the order and keep the loop scalar).
const LANES: usize = 16;

#[inline(always)]
fn softmax_row(row: &mut [f32]) {
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let chunks = row.chunks_exact(LANES);
    let mut max = chunks
        .remainder()
        .iter()
        .copied()
        .fold(f32::NEG_INFINITY, f32::max);
    for c in chunks {
        for (m, v) in lanes.iter_mut().zip(c) {
            *m = if *v > *m { *v } else { *m };
        }
    }
    max = lanes.iter().copied().fold(max, f32::max);
    let mut sums = [0f32; LANES];
    let mut chunks = row.chunks_exact_mut(LANES);
    for c in &mut chunks {
        for (s, v) in sums.iter_mut().zip(c.iter_mut()) {
            *v = exp(*v - max);
            *s += *v;
        }
    }
    let mut sum = 0f32;
    for v in chunks.into_remainder() {
        *v = exp(*v - max);
        sum += *v;
    }
    sum += sums.iter().sum::<f32>();
    let inv = 1.0 / sum;
    for v in row.iter_mut() {
        *v *= inv;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn gelu_slice_avx2(xs: &mut [f32]) {
    gelu_slice(xs)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn softmax_rows_avx2(rows: &mut [f32], width: usize) {
    for row in rows.chunks_exact_mut(width) {
        softmax_row(row);
    }
}

/// tanh-approximated GELU in place.
pub(crate) fn gelu_tanh_in_place(xs: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512 F.
            unsafe { x86::gelu_tanh(xs) };
            return;
        }
        if has_avx2() {
            // SAFETY: the CPU supports the features the function is compiled with.
            unsafe { gelu_slice_avx2(xs) };
            return;
        }
    }
    gelu_slice(xs);
}

/// Softmax of each `width`-long row of `rows`, in place.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
pub(crate) fn softmax_rows(rows: &mut [f32], width: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        if has_avx2() {
            // SAFETY: the CPU supports the features the function is compiled with.
            unsafe { softmax_rows_avx2(rows, width) };
            return;
        }
    }
    for row in rows.chunks_exact_mut(width) {
        softmax_row(row);
    }
}

fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// tanh-approximated GELU (`gelu_pytorch_tanh`).
pub(crate) fn gelu_tanh(xs: &Tensor) -> Result<Tensor> {
    if xs.dtype() != DType::F32 || !xs.device().is_cpu() {
        return Ok(xs.gelu()?);
    }
    let shape = xs.shape().clone();
    let mut data = xs.flatten_all()?.to_vec1::<f32>()?;
    data.par_chunks_mut(CHUNK).for_each(gelu_tanh_in_place);
    Ok(Tensor::from_vec(data, shape, xs.device())?)
}

/// Softmax over the last dimension.
pub(crate) fn softmax_last_dim(xs: &Tensor) -> Result<Tensor> {
    if xs.dtype() != DType::F32 || !xs.device().is_cpu() {
        return Ok(candle_nn::ops::softmax_last_dim(xs)?);
    }
    let shape = xs.shape().clone();
    let width = xs.dim(D::Minus1)?;
    let mut data = xs.flatten_all()?.to_vec1::<f32>()?;
    let avx2 = has_avx2();
    let rows_per_chunk = (CHUNK / width.max(1)).max(1);
    data.par_chunks_mut(rows_per_chunk * width).for_each(|c| {
        #[cfg(target_arch = "x86_64")]
        if avx2 {
            // SAFETY: as above.
            unsafe { softmax_rows_avx2(c, width) };
            return;
        }
        let _ = avx2;
        for row in c.chunks_exact_mut(width) {
            softmax_row(row);
        }
    });
    Ok(Tensor::from_vec(data, shape, xs.device())?)
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod x86 {
    use std::arch::x86_64::*;

    /// `e^x` for sixteen lanes: `x = k·ln2 + r`, the scalar [`super::exp`]'s polynomial for
    /// `e^r`, and `vscalefps` for the `2^k`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(crate) fn exp16(x: __m512) -> __m512 {
        let x = _mm512_min_ps(
            _mm512_max_ps(x, _mm512_set1_ps(-87.0)),
            _mm512_set1_ps(88.0),
        );
        let k = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E)),
        );
        let r = _mm512_fnmadd_ps(k, _mm512_set1_ps(0.693_145_75), x);
        let r = _mm512_fnmadd_ps(k, _mm512_set1_ps(1.428_606_8e-6), r);
        let mut p = _mm512_set1_ps(0.001_388_889);
        for c in [0.008_333_334, 0.041_666_668, 0.166_666_67, 0.5, 1.0, 1.0] {
            p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
        }
        _mm512_scalef_ps(p, k)
    }

    /// [`super::gelu_tanh_one`] on sixteen lanes. The division is a reciprocal estimate
    /// (14 bits) refined by one Newton step (to about f32 rounding): `vdivps` on 512 bits
    /// would cost more than the rest of the function.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn gelu16(x: __m512) -> __m512 {
        let x2 = _mm512_mul_ps(x, x);
        let u = _mm512_mul_ps(
            x,
            _mm512_fmadd_ps(
                x2,
                _mm512_set1_ps(super::GELU_C * super::GELU_CUBIC),
                _mm512_set1_ps(super::GELU_C),
            ),
        );
        let d = _mm512_add_ps(
            _mm512_set1_ps(1.0),
            exp16(_mm512_mul_ps(u, _mm512_set1_ps(-2.0))),
        );
        let r = _mm512_rcp14_ps(d);
        let r = _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(2.0)));
        _mm512_mul_ps(x, r)
    }

    /// [`super::gelu_tanh_in_place`], sixteen values per step.
    #[target_feature(enable = "avx512f")]
    pub(crate) unsafe fn gelu_tanh(xs: &mut [f32]) {
        let mut chunks = xs.chunks_exact_mut(16);
        for c in &mut chunks {
            // SAFETY: `c` holds 16 floats.
            unsafe { _mm512_storeu_ps(c.as_mut_ptr(), gelu16(_mm512_loadu_ps(c.as_ptr()))) };
        }
        let rest = chunks.into_remainder();
        if !rest.is_empty() {
            let mask: __mmask16 = (1u16 << rest.len()) - 1;
            // SAFETY: the mask touches only the `rest.len() < 16` floats of `rest`.
            unsafe {
                let v = _mm512_maskz_loadu_ps(mask, rest.as_ptr());
                _mm512_mask_storeu_ps(rest.as_mut_ptr(), mask, gelu16(v));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn the_f64_exp_is_correctly_rounded() {
        let (mut inputs, mut wrong) = (0, 0);
        let mut x = -103.0f32;
        while x < 88.0 {
            // The f64 `exp` is within an ulp of f64; rounded to f32 it is the correctly
            // rounded value except within ~1e-9 of a midpoint.
            if exp_correctly_rounded(x) != f64::from(x).exp() as f32 {
                wrong += 1;
            }
            inputs += 1;
            x += 0.000_97;
        }
        assert!(inputs > 190_000);
        assert!(wrong <= 1, "{wrong} of {inputs} inputs misrounded");
        assert_eq!(exp_correctly_rounded(-1000.0), 0.0);
        assert_eq!(exp_correctly_rounded(1000.0), f32::INFINITY);
        assert!(exp_correctly_rounded(f32::NAN).is_nan());
    }

    #[test]
    fn exp_is_accurate_to_f32_rounding() {
        let mut worst = 0f64;
        let mut x = -80.0f32;
        while x < 80.0 {
            let rel = ((exp(x) as f64 - (x as f64).exp()) / (x as f64).exp()).abs();
            worst = worst.max(rel);
            x += 0.0137;
        }
        assert!(worst < 4e-7, "relative error {worst}");
        assert!(exp(-1000.0) < 1e-37);
    }

    #[test]
    fn kernels_match_candle() {
        let dev = Device::Cpu;
        let x = (Tensor::randn(0f32, 3.0, (7, 300), &dev).unwrap())
            .contiguous()
            .unwrap();
        let diff = |a: Tensor, b: Tensor| {
            (a - b)
                .unwrap()
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
        };
        // Gated SiLU against Candle's `silu` times the up projection.
        let up = (Tensor::randn(0f32, 1.0, (7, 300), &dev).unwrap())
            .contiguous()
            .unwrap();
        let mut gated = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        silu_mul_in_place(
            &mut gated,
            &up.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        );
        let gated = Tensor::from_vec(gated, (7, 300), &dev).unwrap();
        let want = (candle_nn::ops::silu(&x).unwrap() * &up).unwrap();
        // The same formula with a correctly rounded exp: equal up to libm's rare misroundings.
        assert!(diff(gated, want) < 1e-6);
        // Candle's reference uses libm tanh/exp; both are within a few ulps of the exact values.
        assert!(diff(gelu_tanh(&x).unwrap(), x.gelu().unwrap()) < 2e-6);
        // Every instruction-set path (AVX-512 with a reciprocal estimate, AVX2, scalar), on a
        // length with a partial vector at the end.
        let values = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let mut scalar = values.clone();
        gelu_slice(&mut scalar);
        let mut dispatched = values.clone();
        gelu_tanh_in_place(&mut dispatched[..2099]);
        for (i, (a, b)) in dispatched[..2099].iter().zip(&scalar).enumerate() {
            // Relative: the Newton-refined reciprocal is within a few ulps of a division.
            assert!((a - b).abs() <= 1e-6 * (1.0 + b.abs()), "{i}: {a} vs {b}");
        }
        let s = softmax_last_dim(&x).unwrap();
        // Probabilities are at most 1 and our exp is within 4e-7 relative of the exact value.
        assert!(diff(s, candle_nn::ops::softmax_last_dim(&x).unwrap()) < 1e-6);
    }
}
