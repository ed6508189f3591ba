//! AVX-512 block-dot kernels: one weight row in a ggml 32-element block format against f32
//! activations, sixteen lanes at a time.
//!
//! The portable kernels in `fused` rely on auto-vectorisation, which widens bytes to floats
//! element by element; here each block is two 16-lane sign/zero extensions and two FMAs, and
//! the block scale is applied once per block. Arithmetic is the same as the portable kernels
//! (block sum in f32, then times the scale), so results agree to summation order.

use std::arch::x86_64::*;

use super::fused::Kind;

/// Whether the CPU runs these kernels.
pub fn available() -> bool {
    is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("f16c")
}

/// `out[i·rows + r] = w_i · x_r`, like `fused::dot_rows`.
///
/// # Safety
/// The CPU must support AVX-512F and F16C ([`available`]); `w` holds `out.len() / rows` rows
/// of `row_bytes` bytes, `x` holds `rows` rows of `n_in` floats, `sums` the 32-element block
/// sums of `x` when the kind has an offset term.
#[target_feature(enable = "avx512f,f16c")]
pub unsafe fn dot_rows(
    kind: Kind,
    w: &[u8],
    row_bytes: usize,
    x: &[f32],
    sums: &[f32],
    n_in: usize,
    out: &mut [f32],
) {
    super::fused::for_each_row(
        kind,
        w,
        row_bytes,
        x,
        sums,
        n_in,
        out,
        |row, xr, sr| match kind {
            Kind::Q8_0 => dot_q8_0(row, xr),
            Kind::Q4_0 => dot_q4(row, xr, sr, 18, false),
            Kind::Q4_1 => dot_q4(row, xr, sr, 20, true),
            Kind::Q5_0 => dot_q5(row, xr, sr, 22, false),
            Kind::Q5_1 => dot_q5(row, xr, sr, 24, true),
        },
    )
}

#[inline]
#[target_feature(enable = "avx512f,f16c")]
fn half_at(p: &[u8], at: usize) -> f32 {
    let bits = u16::from_le_bytes([p[at], p[at + 1]]);
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(bits))))
}

/// Sixteen floats of `x` from `at`.
#[inline]
#[target_feature(enable = "avx512f")]
fn load16(x: &[f32], at: usize) -> __m512 {
    let s = &x[at..at + 16];
    // SAFETY: `s` holds 16 floats; the load is unaligned.
    unsafe { _mm512_loadu_ps(s.as_ptr()) }
}

/// Sixteen bytes of `p` from `at`.
#[inline]
#[target_feature(enable = "avx512f")]
fn bytes16(p: &[u8], at: usize) -> __m128i {
    let s = &p[at..at + 16];
    // SAFETY: `s` holds 16 bytes; the load is unaligned.
    unsafe { _mm_loadu_si128(s.as_ptr().cast()) }
}

/// Q8_0: 2-byte scale, 32 signed bytes; value = q·d.
#[inline]
#[target_feature(enable = "avx512f,f16c")]
fn dot_q8_0(row: &[u8], x: &[f32]) -> f32 {
    // Two accumulators so consecutive blocks' FMAs do not wait on each other.
    let mut acc = [_mm512_setzero_ps(); 2];
    for (n, (b, xb)) in row.chunks_exact(34).zip(x.chunks_exact(32)).enumerate() {
        let q0 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(bytes16(b, 2)));
        let q1 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(bytes16(b, 18)));
        let s = _mm512_fmadd_ps(q1, load16(xb, 16), _mm512_mul_ps(q0, load16(xb, 0)));
        acc[n & 1] = _mm512_fmadd_ps(s, _mm512_set1_ps(half_at(b, 0)), acc[n & 1]);
    }
    _mm512_reduce_add_ps(_mm512_add_ps(acc[0], acc[1]))
}

/// Q4_0 (`offset` false: scale, 16 bytes of nibbles, value = (q − 8)·d) and Q4_1 (`offset`
/// true: scale, minimum, nibbles, value = q·d + m). Low nibbles are elements 0..16, high
/// nibbles 16..32.
#[inline]
#[target_feature(enable = "avx512f,f16c")]
fn dot_q4(row: &[u8], x: &[f32], sums: &[f32], size: usize, offset: bool) -> f32 {
    let qs_at = if offset { 4 } else { 2 };
    let bias = _mm512_set1_epi32(if offset { 0 } else { 8 });
    let nibble = _mm512_set1_epi32(15);
    let mut acc = [_mm512_setzero_ps(); 2];
    let mut min_term = 0f32;
    for (n, (b, xb)) in row.chunks_exact(size).zip(x.chunks_exact(32)).enumerate() {
        let v = _mm512_cvtepu8_epi32(bytes16(b, qs_at));
        let lo = _mm512_sub_epi32(_mm512_and_si512(v, nibble), bias);
        let hi = _mm512_sub_epi32(_mm512_srli_epi32::<4>(v), bias);
        let s = _mm512_fmadd_ps(
            _mm512_cvtepi32_ps(hi),
            load16(xb, 16),
            _mm512_mul_ps(_mm512_cvtepi32_ps(lo), load16(xb, 0)),
        );
        acc[n & 1] = _mm512_fmadd_ps(s, _mm512_set1_ps(half_at(b, 0)), acc[n & 1]);
        if offset {
            min_term += half_at(b, 2) * sums[n];
        }
    }
    _mm512_reduce_add_ps(_mm512_add_ps(acc[0], acc[1])) + min_term
}

/// Q5_0 (scale, 4 bytes of fifth bits, nibbles; value = (q − 16)·d) and Q5_1 (scale,
/// minimum, fifth bits, nibbles; value = q·d + m). Bit j of the fifth bits belongs to element
/// j, bit 16 + j to element 16 + j.
#[inline]
#[target_feature(enable = "avx512f,f16c")]
fn dot_q5(row: &[u8], x: &[f32], sums: &[f32], size: usize, offset: bool) -> f32 {
    let (qh_at, qs_at) = if offset { (4, 8) } else { (2, 6) };
    let bias = _mm512_set1_epi32(if offset { 0 } else { 16 });
    let nibble = _mm512_set1_epi32(15);
    let sixteen = _mm512_set1_epi32(16);
    let mut acc = [_mm512_setzero_ps(); 2];
    let mut min_term = 0f32;
    for (n, (b, xb)) in row.chunks_exact(size).zip(x.chunks_exact(32)).enumerate() {
        let qh = u32::from_le_bytes([b[qh_at], b[qh_at + 1], b[qh_at + 2], b[qh_at + 3]]);
        let v = _mm512_cvtepu8_epi32(bytes16(b, qs_at));
        let lo = _mm512_mask_add_epi32(
            _mm512_and_si512(v, nibble),
            qh as u16,
            _mm512_and_si512(v, nibble),
            sixteen,
        );
        let hi = _mm512_mask_add_epi32(
            _mm512_srli_epi32::<4>(v),
            (qh >> 16) as u16,
            _mm512_srli_epi32::<4>(v),
            sixteen,
        );
        let lo = _mm512_sub_epi32(lo, bias);
        let hi = _mm512_sub_epi32(hi, bias);
        let s = _mm512_fmadd_ps(
            _mm512_cvtepi32_ps(hi),
            load16(xb, 16),
            _mm512_mul_ps(_mm512_cvtepi32_ps(lo), load16(xb, 0)),
        );
        acc[n & 1] = _mm512_fmadd_ps(s, _mm512_set1_ps(half_at(b, 0)), acc[n & 1]);
        if offset {
            min_term += half_at(b, 2) * sums[n];
        }
    }
    _mm512_reduce_add_ps(_mm512_add_ps(acc[0], acc[1])) + min_term
}
