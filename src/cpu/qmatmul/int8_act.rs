//! Block matrices (Q8_0, Q4_0, Q4_1) times one activation row rounded to 8-bit blocks of 32:
//! llama.cpp's decode arithmetic, behind `DecodeCompute::Int8Dot`.
//!
//! The f32-activation kernels (`avx512.rs`) widen every weight byte to a float, which makes a
//! decode step compute-bound on the conversions: Q4_0 ran no faster than Q8_0. Rounding the
//! activation row once per matrix product (one f32 scale per 32 values, shared by every weight
//! row) turns each block into one integer dot product (`vpdpbusd` with AVX-512 VNNI,
//! `vpmaddubsw` + `vpmaddwd` with AVX2) and one FMA. The price is the rounding: in a block that
//! holds an outlier channel the small values keep few bits, so answers can change, which is why
//! this path is opt-in (`--precision fast`) and the f32-activation kernels stay the default.
//!
//! input: weight rows in ggml block layout, an [`Int8Activation`] → output: one f32 per row.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use super::fused::Kind;

/// The instruction set the kernels run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// AVX-512 VNNI on 256-bit registers (`vpdpbusd`), with AVX2, FMA and F16C.
    Vnni,
    /// AVX2, FMA and F16C (`vpmaddubsw` + `vpmaddwd`).
    Avx2,
}

impl Isa {
    /// The best set this CPU runs; `None` where there is neither (the caller keeps f32).
    pub fn detect() -> Option<Isa> {
        #[cfg(target_arch = "x86_64")]
        {
            let avx2 = is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma")
                && is_x86_feature_detected!("f16c");
            if avx2
                && is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512vl")
                && is_x86_feature_detected!("avx512vnni")
            {
                return Some(Isa::Vnni);
            }
            if avx2 {
                return Some(Isa::Avx2);
            }
        }
        None
    }

    /// The name `vlm bench` prints.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Vnni => "vnni-int8",
            Isa::Avx2 => "avx2-int8",
        }
    }
}

/// Whether the kernels take matrices of this block type.
pub fn supports(kind: Kind) -> bool {
    matches!(kind, Kind::Q8_0 | Kind::Q4_0 | Kind::Q4_1)
}

/// One activation row as 8-bit blocks of 32: `x[i] ≈ q[i] · scale[i / 32]`.
#[derive(Debug, Clone, Default)]
pub struct Int8Activation {
    /// Rounded values, `|q| ≤ 127`.
    q: Vec<i8>,
    /// `|q|`, the unsigned operand of the Q8_0 products (the sign moves onto the weights).
    abs: Vec<u8>,
    /// One scale per block: the block's largest magnitude / 127.
    scale: Vec<f32>,
    /// Per block, eight i32 lanes `−8 · (q[4j] + … + q[4j+3])`: the `−8` offset of Q4_0
    /// values as the starting value of the block's integer dot product. As a per-block f32
    /// correction it was a chain of dependent scalar multiply-adds that bounded the Q4_0 loop.
    minus8: Vec<i32>,
    /// The f32 sum of each block of `x`: the `m · Σx` term of Q4_1.
    sum: Vec<f32>,
}

impl Int8Activation {
    /// Rounds `x` (a multiple of 32 long) like llama.cpp's `quantize_row_q8_0` (round half
    /// away from zero), keeping the scales in f32.
    pub fn quantize(x: &[f32]) -> Int8Activation {
        let mut a = Int8Activation::default();
        a.requantize(x);
        a
    }

    /// [`Int8Activation::quantize`] into the buffers of `self`.
    pub fn requantize(&mut self, x: &[f32]) {
        let blocks = x.len() / 32;
        self.q.resize(x.len(), 0);
        self.abs.resize(x.len(), 0);
        self.scale.clear();
        self.minus8.clear();
        self.sum.clear();
        for (b, xb) in x.chunks_exact(32).enumerate() {
            let amax = xb.iter().fold(0f32, |m, v| m.max(v.abs()));
            let d = amax / 127.0;
            let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
            for (j, v) in xb.iter().enumerate() {
                // |v · inv| ≤ 127 up to rounding of `inv`; the clamp keeps that rounding from
                // reaching 128.
                let q = (v * inv).round().clamp(-127.0, 127.0) as i8;
                self.q[b * 32 + j] = q;
                self.abs[b * 32 + j] = q.unsigned_abs();
            }
            // Lane j of a block's product covers elements 4j..4j+4: `row_q4` unpacks the
            // nibbles in element order.
            for lane in self.q[b * 32..(b + 1) * 32].chunks_exact(4) {
                self.minus8
                    .push(-8 * lane.iter().map(|&v| i32::from(v)).sum::<i32>());
            }
            self.scale.push(d);
            self.sum.push(xb.iter().sum());
        }
        debug_assert_eq!(self.scale.len(), blocks);
    }

    /// Elements in the row.
    pub fn len(&self) -> usize {
        self.q.len()
    }
}

/// `out[i] = w_i · x` for the `out.len()` weight rows in `w` (each `row_bytes` long) against
/// the rounded row `x`; `kind` must be one [`supports`] takes.
pub fn dot_rows(
    isa: Isa,
    kind: Kind,
    w: &[u8],
    row_bytes: usize,
    x: &Int8Activation,
    out: &mut [f32],
) {
    let blocks = x.len() / 32;
    assert!(
        w.len() >= out.len() * row_bytes && row_bytes == blocks * kind_block_bytes(kind),
        "int8 block dot: {} weight bytes for {} rows of {} blocks",
        w.len(),
        out.len(),
        blocks
    );
    #[cfg(target_arch = "x86_64")]
    match isa {
        // SAFETY: `Isa::detect` found these features; the assert above bounds every block read.
        Isa::Vnni => unsafe { dot_rows_vnni(kind, w, row_bytes, x, out) },
        // SAFETY: as above.
        Isa::Avx2 => unsafe { dot_rows_avx2(kind, w, row_bytes, x, out) },
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (isa, kind, w, row_bytes, x);
        out.fill(f32::NAN);
    }
}

/// Bytes of one block of `kind`.
fn kind_block_bytes(kind: Kind) -> usize {
    match kind {
        Kind::Q4_0 => 18,
        Kind::Q4_1 => 20,
        Kind::Q5_0 => 22,
        Kind::Q5_1 => 24,
        Kind::Q8_0 => 34,
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512vnni")]
unsafe fn dot_rows_vnni(
    kind: Kind,
    w: &[u8],
    row_bytes: usize,
    x: &Int8Activation,
    out: &mut [f32],
) {
    // SAFETY: forwarded from the caller.
    unsafe { rows::<true>(kind, w, row_bytes, x, out) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_rows_avx2(
    kind: Kind,
    w: &[u8],
    row_bytes: usize,
    x: &Int8Activation,
    out: &mut [f32],
) {
    // SAFETY: forwarded from the caller.
    unsafe { rows::<false>(kind, w, row_bytes, x, out) }
}

/// The row loop, inlined into each target-feature entry above so that the intrinsics compile
/// for that entry's instruction set (written once for both sets).
///
/// # Safety
/// AVX2, FMA and F16C (and AVX-512 VNNI/VL when `VNNI`); `w` holds `out.len()` rows of
/// `row_bytes` = `x.len() / 32` blocks of `kind`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn rows<const VNNI: bool>(
    kind: Kind,
    w: &[u8],
    row_bytes: usize,
    x: &Int8Activation,
    out: &mut [f32],
) {
    for (row, y) in w.chunks_exact(row_bytes).zip(out.iter_mut()) {
        // SAFETY: forwarded; `row` holds the row's blocks.
        *y = unsafe {
            match kind {
                Kind::Q8_0 => row_q8_0::<VNNI>(row, x),
                Kind::Q4_0 => row_q4::<VNNI, false>(row, x),
                Kind::Q4_1 => row_q4::<VNNI, true>(row, x),
                // `supports` admits only the three above.
                Kind::Q5_0 | Kind::Q5_1 => f32::NAN,
            }
        };
    }
}

/// `start` plus, per i32 lane, the sum over its group of four of `a[i] · b[i]` (`a` unsigned,
/// `b` signed bytes).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn dot_u8_i8<const VNNI: bool>(start: __m256i, a: __m256i, b: __m256i) -> __m256i {
    // SAFETY: the caller's entry point enables the features of the branch it takes.
    unsafe {
        if VNNI {
            _mm256_dpbusd_epi32(start, a, b)
        } else {
            // Pairs of u8·i8 products fit i16 here: |a| ≤ 127 (Q8_0) or ≤ 15 (nibbles).
            let sums = _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), _mm256_set1_epi16(1));
            _mm256_add_epi32(start, sums)
        }
    }
}

/// The f16 at `p`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn half_at(p: *const u8) -> f32 {
    // SAFETY: the caller guarantees two readable bytes and F16C.
    unsafe {
        let bits = u16::from_le_bytes([*p, *p.add(1)]);
        _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(bits))))
    }
}

/// `Σ_b block(b, ·)` over `blocks` blocks as two interleaved chains of accumulation, each in
/// a register: one chain waits on each multiply-add's latency, and an accumulator indexed
/// by `b & 1` lives in memory, where each update waits on store forwarding.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn two_chains(blocks: usize, block: impl Fn(usize, __m256) -> __m256) -> f32 {
    // SAFETY: AVX is implied by the caller's AVX2.
    unsafe {
        let (mut even, mut odd) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let mut b = 0;
        while b + 1 < blocks {
            even = block(b, even);
            odd = block(b + 1, odd);
            b += 2;
        }
        if b < blocks {
            even = block(b, even);
        }
        hsum(_mm256_add_ps(even, odd))
    }
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn hsum(v: __m256) -> f32 {
    // SAFETY: AVX is implied by the caller's AVX2.
    unsafe {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }
}

/// Q8_0 (2-byte scale, 32 signed bytes): Σ_b d_w · d_x · Σ w·q, with the sign of `q` moved
/// onto `w` so that the unsigned operand is `|q|`.
//
// One row at a time, its sum in one register. Four rows sharing each activation block (four
// independent sums) ran the kernel bench 1.4× faster with the matrix in cache, but the decode
// step, whose weights stream from memory, 1.7× slower on Q8_0: four interleaved row streams
// defeat the hardware prefetcher that one sequential row keeps busy.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn row_q8_0<const VNNI: bool>(row: &[u8], x: &Int8Activation) -> f32 {
    // SAFETY: `row` holds `x.scale.len()` blocks of 34 bytes; `x.q`/`x.abs` 32 bytes per block.
    unsafe {
        let block = |b: usize, acc: __m256| {
            let blk = row.as_ptr().add(b * 34);
            let wq = _mm256_loadu_si256(blk.add(2).cast());
            let q = _mm256_loadu_si256(x.q.as_ptr().add(b * 32).cast());
            let a = _mm256_loadu_si256(x.abs.as_ptr().add(b * 32).cast());
            let p = dot_u8_i8::<VNNI>(_mm256_setzero_si256(), a, _mm256_sign_epi8(wq, q));
            let d = _mm256_set1_ps(half_at(blk) * *x.scale.get_unchecked(b));
            _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), d, acc)
        };
        two_chains(x.scale.len(), block)
    }
}

/// Q4_0 (scale, 16 bytes of nibbles, value (n − 8)·d; `OFFSET` false) and Q4_1 (scale,
/// minimum, nibbles, value n·d + m; `OFFSET` true). Low nibbles are elements 0..16, high
/// nibbles 16..32; the nibbles are the unsigned operand, so no sign trick is needed.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn row_q4<const VNNI: bool, const OFFSET: bool>(row: &[u8], x: &Int8Activation) -> f32 {
    let (size, qs_at) = if OFFSET { (20, 4) } else { (18, 2) };
    // SAFETY: `row` holds `x.scale.len()` blocks of `size` bytes; `x.q` 32 bytes and
    // `x.minus8` 8 lanes per block.
    unsafe {
        let low = _mm_set1_epi8(15);
        let block = |b: usize, acc: __m256| {
            let blk = row.as_ptr().add(b * size);
            let v = _mm_loadu_si128(blk.add(qs_at).cast());
            let lo = _mm_and_si128(v, low);
            let hi = _mm_and_si128(_mm_srli_epi16::<4>(v), low);
            let q = _mm256_loadu_si256(x.q.as_ptr().add(b * 32).cast());
            let start = if OFFSET {
                _mm256_setzero_si256()
            } else {
                _mm256_loadu_si256(x.minus8.as_ptr().add(b * 8).cast())
            };
            let p = dot_u8_i8::<VNNI>(start, _mm256_set_m128i(hi, lo), q);
            let d = _mm256_set1_ps(half_at(blk) * *x.scale.get_unchecked(b));
            _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), d, acc)
        };
        let minimum = if OFFSET {
            (0..x.scale.len())
                .map(|b| half_at(row.as_ptr().add(b * size + 2)) * *x.sum.get_unchecked(b))
                .sum()
        } else {
            0.0
        };
        two_chains(x.scale.len(), block) + minimum
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::{GgmlDType, QTensor};
    use candle_core::{Device, Tensor};

    /// The scalar reference: the same rounded activations, dequantized weights, f64 sums.
    fn reference(w: &QTensor, x: &Int8Activation) -> Vec<f64> {
        let wf = w
            .dequantize(&Device::Cpu)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        wf.iter()
            .map(|row| {
                row.iter()
                    .enumerate()
                    .map(|(i, &v)| f64::from(v) * f64::from(x.q[i]) * f64::from(x.scale[i / 32]))
                    .sum()
            })
            .collect()
    }

    #[test]
    fn rounding_keeps_each_block_within_half_a_step() {
        let x: Vec<f32> = (0..96)
            .map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.3)
            .collect();
        let a = Int8Activation::quantize(&x);
        for (i, v) in x.iter().enumerate() {
            let d = a.scale[i / 32];
            assert!(
                (f32::from(a.q[i]) * d - v).abs() <= 0.5 * d + 1e-6,
                "element {i}"
            );
            assert_eq!(a.abs[i], a.q[i].unsigned_abs());
        }
        // An all-zero block has a zero scale and zero values, not NaN.
        let z = Int8Activation::quantize(&[0.0; 32]);
        assert_eq!((z.scale[0], z.q[0]), (0.0, 0));
    }

    #[test]
    fn kernels_match_a_scalar_reference_on_odd_shapes() {
        let Some(best) = Isa::detect() else {
            eprintln!("note: no AVX2 on this CPU; the int8 block-dot kernels are not tested here");
            return;
        };
        let isas: Vec<Isa> = [Isa::Vnni, Isa::Avx2]
            .into_iter()
            .filter(|i| best == Isa::Vnni || *i == Isa::Avx2)
            .collect();
        if best != Isa::Vnni {
            eprintln!("note: no AVX-512 VNNI on this CPU; only the AVX2 int8 kernels are tested");
        }
        let dev = Device::Cpu;
        // 37 rows and 7 blocks: neither a multiple of the kernels' unrolling.
        let (rows, n_in) = (37usize, 224usize);
        let w = Tensor::randn(0f32, 1.0, (rows, n_in), &dev).unwrap();
        let mut x: Vec<f32> = Tensor::randn(0f32, 1.0, n_in, &dev)
            .unwrap()
            .to_vec1()
            .unwrap();
        // An outlier channel, as SmolLM2's hidden states have.
        x[40] = 60.0;
        let a = Int8Activation::quantize(&x);
        for (ty, kind) in [
            (GgmlDType::Q8_0, Kind::Q8_0),
            (GgmlDType::Q4_0, Kind::Q4_0),
            (GgmlDType::Q4_1, Kind::Q4_1),
        ] {
            let q = QTensor::quantize(&w, ty).unwrap();
            let data = q.data().unwrap();
            let row_bytes = data.len() / rows;
            let mut expect = reference(&q, &a);
            if kind == Kind::Q4_1 {
                // The kernel applies Q4_1's minimum to the exact block sums of x, not of q.
                for (r, e) in expect.iter_mut().enumerate() {
                    let row = &data[r * row_bytes..(r + 1) * row_bytes];
                    for (b, blk) in row.chunks_exact(20).enumerate() {
                        let m = half::f16::from_le_bytes([blk[2], blk[3]]).to_f32();
                        let qsum: f64 = (0..32)
                            .map(|j| f64::from(a.q[b * 32 + j]) * f64::from(a.scale[b]))
                            .sum();
                        *e += f64::from(m) * (f64::from(a.sum[b]) - qsum);
                    }
                }
            }
            for isa in &isas {
                let mut out = vec![0f32; rows];
                dot_rows(*isa, kind, &data, row_bytes, &a, &mut out);
                for (r, (o, e)) in out.iter().zip(&expect).enumerate() {
                    // f32 sums of 224 products of magnitude up to ~60 in another order.
                    assert!(
                        (f64::from(*o) - e).abs() < 1e-3 * (1.0 + e.abs()),
                        "{isa:?} {ty:?} row {r}: {o} vs {e}"
                    );
                }
            }
        }
    }
}
