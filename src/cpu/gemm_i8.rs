//! `C = A · Wᵀ` in 8-bit integers on AVX-512 VNNI (`vpdpbusd`): weights quantized once per
//! output row, activations quantized per row of `A` as they arrive, sums in i32, rescaled to
//! f32 with the bias added in the same pass.
//!
//! One `vpdpbusd` does 64 byte multiply-adds, twice the work of a `vdpbf16ps`, which is what
//! the vision tower's matrices need on CPUs without AMX. Candle has no integer GEMM and no
//! maintained crate offers a VNNI one on stable Rust, so it is written here.
//!
//! Arithmetic: `W[j] ≈ sw[j] · qw[j]` with `qw ∈ [-127, 127]` and `sw[j] = max|W[j]| / 127`;
//! `A[i] ≈ sa[i] · qa[i]` the same way per row. The instruction multiplies *unsigned* bytes by
//! signed ones, so activations are stored as `qa + 128` and `128 · Σₖ qw[j][k]` is subtracted
//! from each sum. `C[i][j] = sa[i] · sw[j] · Σₖ qa[i][k] · qw[j][k] + bias[j]`, exact in i32.
//! A row's scale is set by its largest value, so a row with one large outlier loses
//! resolution elsewhere; callers that need the model's accuracy keep the BF16 or f32 paths.
//!
//! Layout: `W` (`[n, k]`) packed into panels of [`NR`] output columns; within a panel each
//! k-quad holds `NR` 32-bit lanes, lane `j` being `qw[j][4q..4q+4]`. A micro-kernel keeps an
//! [`MR`]×[`NR`] block of sums in 24 registers over the whole of `k` (a panel of the widest
//! vision matrix, 3072 × 48 bytes, stays in L2).

use rayon::prelude::*;

use super::gemm_bf16::SharedMut;
use super::OutputMap;

/// Rows of `C` per micro-kernel call.
const MR: usize = 8;
/// Columns of `C` per micro-kernel call (three 16-lane registers).
const NR: usize = 48;

/// Whether the CPU has the instructions [`PackedI8`] needs.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// A weight matrix `[n, k]` quantized and packed for [`PackedI8::matmul`].
#[derive(Debug, Clone)]
pub struct PackedI8 {
    /// Panels of `quads · NR` lanes of four signed bytes.
    lanes: Vec<u32>,
    /// Per output column (padded to whole panels): the weight row's scale.
    scales: Vec<f32>,
    /// Per output column: `128 · Σₖ qw[j][k]`, what the unsigned activations add.
    offsets: Vec<i32>,
    /// Per output column, zero when the layer has none.
    bias: Vec<f32>,
    n: usize,
    k: usize,
}

impl PackedI8 {
    /// Quantizes and packs row-major `w` (`[n, k]`).
    pub fn from_rows(w: &[f32], n: usize, k: usize) -> Option<Self> {
        if w.len() != n * k {
            return None;
        }
        Self::from_row_fill(n, k, |r, buf| buf.copy_from_slice(&w[r * k..(r + 1) * k]))
    }

    /// Quantizes and packs `[n, k]` whose row `r` `fill(r, buf)` writes into `buf` (`k`
    /// values), in parallel over panels; no dequantized copy of the matrix is kept.
    pub(crate) fn from_row_fill(
        n: usize,
        k: usize,
        fill: impl Fn(usize, &mut [f32]) + Sync,
    ) -> Option<Self> {
        if n == 0 || k == 0 {
            return None;
        }
        let quads = k.div_ceil(4);
        let panels = n.div_ceil(NR);
        let mut lanes = vec![0u32; panels * quads * NR];
        let mut scales = vec![0f32; panels * NR];
        let mut offsets = vec![0i32; panels * NR];
        lanes
            .par_chunks_mut(quads * NR)
            .zip(scales.par_chunks_mut(NR))
            .zip(offsets.par_chunks_mut(NR))
            .enumerate()
            .for_each(|(panel, ((out, scales), offsets))| {
                let mut row = vec![0f32; k];
                let mut q = vec![0i8; 4 * quads];
                for j in 0..NR.min(n - panel * NR) {
                    fill(panel * NR + j, &mut row);
                    scales[j] = quantize(&row, &mut q[..k]);
                    offsets[j] = 128 * q.iter().map(|&v| i32::from(v)).sum::<i32>();
                    for (p, quad) in q.chunks_exact(4).enumerate() {
                        out[p * NR + j] = u32::from_le_bytes([
                            quad[0] as u8,
                            quad[1] as u8,
                            quad[2] as u8,
                            quad[3] as u8,
                        ]);
                    }
                }
            });
        Some(PackedI8 {
            lanes,
            bias: vec![0.0; scales.len()],
            scales,
            offsets,
            n,
            k,
        })
    }

    /// The same matrix with `bias` (`[n]`) added to every output row; `None` if its length
    /// is not `n`.
    pub(crate) fn with_bias(mut self, bias: &[f32]) -> Option<Self> {
        if bias.len() != self.n {
            return None;
        }
        self.bias[..self.n].copy_from_slice(bias);
        Some(self)
    }

    /// `a` (`[m, k]` row-major f32) times `Wᵀ` → `[m, n]` row-major f32, on the thread
    /// pool. `None` without [`available`] or when `a` is not `m × k`.
    pub fn matmul(&self, a: &[f32], m: usize) -> Option<Vec<f32>> {
        self.matmul_map(a, m, OutputMap::Identity)
    }

    /// [`PackedI8::matmul`] with `map` applied to every output element, block by block while
    /// the block is still in cache.
    pub(crate) fn matmul_map(&self, a: &[f32], m: usize, map: OutputMap) -> Option<Vec<f32>> {
        if a.len() != m * self.k || !available() || m == 0 {
            return None;
        }
        let quads = self.k.div_ceil(4);
        let m_pad = m.div_ceil(MR) * MR;
        // Padding rows and columns are 128 (zero once the offset is taken off) with scale 0.
        let mut qa = vec![128u8; m_pad * 4 * quads];
        let mut sa = vec![0f32; m_pad];
        qa.par_chunks_mut(4 * quads)
            .zip(sa.par_iter_mut())
            .zip(a.par_chunks(self.k))
            .for_each(|((dst, scale), src)| *scale = quantize_unsigned(src, &mut dst[..self.k]));
        let panels = self.n.div_ceil(NR);
        let n_pad = panels * NR;
        let mut c = vec![0f32; m_pad * n_pad];
        let c_ptr = SharedMut(c.as_mut_ptr());
        (0..panels).into_par_iter().for_each(|panel| {
            let b = &self.lanes[panel * quads * NR..(panel + 1) * quads * NR];
            let cols = panel * NR..(panel + 1) * NR;
            let epilogue = Epilogue {
                scales: &self.scales[cols.clone()],
                offsets: &self.offsets[cols.clone()],
                bias: &self.bias[cols],
            };
            for m0 in (0..m_pad).step_by(MR) {
                // SAFETY: `qa` holds `m_pad` rows of `quads` lanes, `b` `quads · NR` lanes;
                // the MR×NR block at (m0, panel·NR) of the `m_pad × n_pad` matrix `c` is
                // written by this task only.
                let block = unsafe { c_ptr.get().add(m0 * n_pad + panel * NR) };
                // SAFETY: as above.
                unsafe {
                    kernel(
                        qa[m0 * 4 * quads..].as_ptr(),
                        quads,
                        b.as_ptr(),
                        &sa[m0..m0 + MR],
                        &epilogue,
                        block,
                        n_pad,
                    )
                };
                if map != OutputMap::Identity {
                    for r in 0..MR {
                        // SAFETY: row `r` of this task's MR×NR block.
                        map.apply(unsafe {
                            std::slice::from_raw_parts_mut(block.add(r * n_pad), NR)
                        });
                    }
                }
            }
        });
        c.truncate(m * n_pad);
        if n_pad != self.n {
            c = c
                .chunks_exact(n_pad)
                .flat_map(|row| row[..self.n].iter().copied())
                .collect();
        }
        Some(c)
    }
}

/// One panel's per-column rescaling: `C = sa · scale · (sum − offset) + bias`.
struct Epilogue<'a> {
    scales: &'a [f32],
    offsets: &'a [i32],
    bias: &'a [f32],
}

/// `row` → signed bytes in `q` (same length) and the scale: `row ≈ scale · q`. Rounds half to
/// even, as the vector instructions do.
fn quantize(row: &[f32], q: &mut [i8]) -> f32 {
    let amax = row.iter().fold(0f32, |m, v| m.max(v.abs()));
    if amax == 0.0 || !amax.is_finite() {
        q.fill(0);
        return 0.0;
    }
    let inv = 127.0 / amax;
    for (d, v) in q.iter_mut().zip(row) {
        *d = (v * inv).round_ties_even().clamp(-127.0, 127.0) as i8;
    }
    amax / 127.0
}

/// `row` → `q + 128` as unsigned bytes in `dst` (same length) and the scale.
fn quantize_unsigned(row: &[f32], dst: &mut [u8]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if available() {
            // SAFETY: the CPU has AVX-512 F.
            return unsafe { x86::quantize_unsigned(row, dst) };
        }
    }
    quantize_unsigned_scalar(row, dst)
}

fn quantize_unsigned_scalar(row: &[f32], dst: &mut [u8]) -> f32 {
    let mut q = vec![0i8; row.len()];
    let scale = quantize(row, &mut q);
    for (d, v) in dst.iter_mut().zip(q) {
        *d = (i16::from(v) + 128) as u8;
    }
    scale
}

#[cfg(target_arch = "x86_64")]
unsafe fn kernel(
    a: *const u8,
    quads: usize,
    b: *const u32,
    sa: &[f32],
    e: &Epilogue<'_>,
    c: *mut f32,
    ldc: usize,
) {
    // SAFETY: forwarded from the caller.
    unsafe { x86::kernel_8x48(a, quads, b, sa, e, c, ldc) }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn kernel(
    _a: *const u8,
    _quads: usize,
    _b: *const u32,
    _sa: &[f32],
    _e: &Epilogue<'_>,
    _c: *mut f32,
    _ldc: usize,
) {
    // `matmul` checks `available()`, which is false off x86-64.
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{Epilogue, MR, NR};

    /// [`super::quantize_unsigned`], 16 values per instruction.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn quantize_unsigned(row: &[f32], dst: &mut [u8]) -> f32 {
        let n = row.len();
        let body = n - n % 16;
        let mut vmax = _mm512_setzero_ps();
        for i in (0..body).step_by(16) {
            // SAFETY: 16 floats from `i < body ≤ n`.
            let v = unsafe { _mm512_loadu_ps(row.as_ptr().add(i)) };
            vmax = _mm512_max_ps(vmax, _mm512_abs_ps(v));
        }
        let amax = row[body..]
            .iter()
            .fold(_mm512_reduce_max_ps(vmax), |m, v| m.max(v.abs()));
        if amax == 0.0 || !amax.is_finite() {
            dst.fill(128);
            return 0.0;
        }
        let inv = 127.0 / amax;
        let vinv = _mm512_set1_ps(inv);
        let (lo, hi, bias) = (
            _mm512_set1_epi32(-127),
            _mm512_set1_epi32(127),
            _mm512_set1_epi32(128),
        );
        for i in (0..body).step_by(16) {
            // SAFETY: 16 floats and 16 bytes from `i < body ≤ n = dst.len()`.
            unsafe {
                let v = _mm512_mul_ps(_mm512_loadu_ps(row.as_ptr().add(i)), vinv);
                // Round half to even (the MXCSR default), clamp, shift to unsigned.
                let q = _mm512_min_epi32(_mm512_max_epi32(_mm512_cvtps_epi32(v), lo), hi);
                let bytes = _mm512_cvtepi32_epi8(_mm512_add_epi32(q, bias));
                _mm_storeu_si128(dst.as_mut_ptr().add(i).cast(), bytes);
            }
        }
        for (d, v) in dst[body..].iter_mut().zip(&row[body..]) {
            *d = ((v * inv).round_ties_even().clamp(-127.0, 127.0) as i16 + 128) as u8;
        }
        amax / 127.0
    }

    /// `C[0..MR, 0..NR] = sa · scale · (A · Bᵀ − offset) + bias` over all `quads` k-quads.
    ///
    /// # Safety
    /// `a` holds MR rows of `4 · quads` bytes, `b` `quads · NR` lanes, `sa` MR scales, the
    /// epilogue NR columns, and `c` an MR×NR block with row stride `ldc`.
    #[target_feature(enable = "avx512f,avx512vnni")]
    pub unsafe fn kernel_8x48(
        a: *const u8,
        quads: usize,
        b: *const u32,
        sa: &[f32],
        e: &Epilogue<'_>,
        c: *mut f32,
        ldc: usize,
    ) {
        let mut acc = [[_mm512_setzero_si512(); 3]; MR];
        let lda = 4 * quads;
        for p in 0..quads {
            // SAFETY: the caller guarantees `quads · NR` lanes at `b` and MR rows at `a`.
            unsafe {
                let bp = b.add(p * NR);
                let b0 = _mm512_loadu_si512(bp.cast());
                let b1 = _mm512_loadu_si512(bp.add(16).cast());
                let b2 = _mm512_loadu_si512(bp.add(32).cast());
                for (r, row) in acc.iter_mut().enumerate() {
                    let quad = a.add(r * lda + 4 * p).cast::<i32>().read_unaligned();
                    let av = _mm512_set1_epi32(quad);
                    row[0] = _mm512_dpbusd_epi32(row[0], av, b0);
                    row[1] = _mm512_dpbusd_epi32(row[1], av, b1);
                    row[2] = _mm512_dpbusd_epi32(row[2], av, b2);
                }
            }
        }
        for (j, _) in acc[0].iter().enumerate() {
            // SAFETY: the epilogue slices hold NR = 3 · 16 columns.
            let (scale, offset, bias) = unsafe {
                (
                    _mm512_loadu_ps(e.scales.as_ptr().add(16 * j)),
                    _mm512_loadu_si512(e.offsets.as_ptr().add(16 * j).cast()),
                    _mm512_loadu_ps(e.bias.as_ptr().add(16 * j)),
                )
            };
            for (r, row) in acc.iter().enumerate() {
                let sums = _mm512_cvtepi32_ps(_mm512_sub_epi32(row[j], offset));
                let v = _mm512_fmadd_ps(sums, _mm512_mul_ps(scale, _mm512_set1_ps(sa[r])), bias);
                // SAFETY: the MR×NR block of `c` is the caller's.
                unsafe { _mm512_storeu_ps(c.add(r * ldc + 16 * j), v) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skip() -> bool {
        if available() {
            return false;
        }
        eprintln!("note: this CPU lacks AVX-512 VNNI; the int8 GEMM is not checked here");
        true
    }

    /// The kernel computes exactly `sa · sw · Σ qa·qw + bias` (i32 sums are exact); the
    /// reference does the same quantization in scalar code and sums in f64, so the only
    /// difference is the final f32 rounding.
    #[test]
    fn matches_a_scalar_quantized_product() {
        if skip() {
            return;
        }
        // Odd sizes: m not a multiple of MR, n not of NR, k not of 4 (or 16).
        let (m, n, k) = (13, 101, 263);
        let a: Vec<f32> = (0..m * k)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0)
            .collect();
        let w: Vec<f32> = (0..n * k)
            .map(|i| ((i * 53 % 89) as f32 - 44.0) / 30.0)
            .collect();
        let bias: Vec<f32> = (0..n).map(|j| j as f32 * 0.25 - 3.0).collect();
        let packed = PackedI8::from_rows(&w, n, k)
            .unwrap()
            .with_bias(&bias)
            .unwrap();
        let c = packed.matmul(&a, m).unwrap();
        assert_eq!(c.len(), m * n);
        let quantized = |rows: &[f32], count: usize| -> (Vec<Vec<i8>>, Vec<f32>) {
            (0..count)
                .map(|r| {
                    let mut q = vec![0i8; k];
                    let s = quantize(&rows[r * k..(r + 1) * k], &mut q);
                    (q, s)
                })
                .unzip()
        };
        let (qa, sa) = quantized(&a, m);
        let (qw, sw) = quantized(&w, n);
        for i in 0..m {
            for j in 0..n {
                let dot: i64 = (0..k)
                    .map(|t| i64::from(qa[i][t]) * i64::from(qw[j][t]))
                    .sum();
                let want = f64::from(sa[i]) * f64::from(sw[j]) * dot as f64 + f64::from(bias[j]);
                let got = f64::from(c[i * n + j]);
                // f32 rounding of the sum and of the two scales' product: a few ulps.
                assert!(
                    (got - want).abs() <= 1e-5 * (1.0 + want.abs()),
                    "({i},{j}): {got} vs {want}"
                );
            }
        }
    }

    /// Against the float product, with the error rounding to 8 bits predicts: each factor's
    /// rounding error is uniform over ± half a step (variance step²/12), so a k-term sum is
    /// off by about `sqrt(k · (sa²/12 · mean w² + sw²/12 · mean a²))`. Four times that bounds
    /// every output here.
    #[test]
    fn approximates_the_float_product() {
        if skip() {
            return;
        }
        let (m, n, k) = (9, 50, 768);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.731).sin()).collect();
        let w: Vec<f32> = (0..n * k)
            .map(|i| (i as f32 * 0.377).cos() * 0.05)
            .collect();
        let c = PackedI8::from_rows(&w, n, k)
            .unwrap()
            .matmul(&a, m)
            .unwrap();
        let row = |x: &[f32], r: usize| -> (f64, f64) {
            let r = &x[r * k..(r + 1) * k];
            let step = f64::from(r.iter().fold(0f32, |m, v| m.max(v.abs()))) / 127.0;
            let mean_sq = r.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / k as f64;
            (step, mean_sq)
        };
        for i in 0..m {
            for j in 0..n {
                let exact: f64 = (0..k)
                    .map(|t| f64::from(a[i * k + t]) * f64::from(w[j * k + t]))
                    .sum();
                let ((sa, a2), (sw, w2)) = (row(&a, i), row(&w, j));
                let predicted = (k as f64 * (sa * sa / 12.0 * w2 + sw * sw / 12.0 * a2)).sqrt();
                let err = (f64::from(c[i * n + j]) - exact).abs();
                assert!(
                    err <= 4.0 * predicted,
                    "({i},{j}): off by {err}, predicted {predicted}"
                );
            }
        }
    }

    #[test]
    fn vector_and_scalar_activation_quantization_agree() {
        if skip() {
            return;
        }
        for len in [1, 15, 16, 17, 100] {
            let row: Vec<f32> = (0..len).map(|i| (i as f32 * 1.3).sin() * 7.0).collect();
            let (mut v, mut s) = (vec![0u8; len], vec![0u8; len]);
            let sv = quantize_unsigned(&row, &mut v);
            let ss = quantize_unsigned_scalar(&row, &mut s);
            assert_eq!((sv, &v), (ss, &s), "length {len}");
        }
        let mut zeros = vec![0u8; 20];
        assert_eq!(quantize_unsigned(&[0.0; 20], &mut zeros), 0.0);
        assert!(zeros.iter().all(|&b| b == 128));
    }

    /// The mapped product is the product with the map applied afterwards, bit for bit.
    #[test]
    fn the_output_map_applies_to_the_finished_sums() {
        if skip() {
            return;
        }
        let (m, n, k) = (11, 70, 301);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.71).sin()).collect();
        let w: Vec<f32> = (0..n * k).map(|i| (i as f32 * 0.13).cos() * 0.1).collect();
        let packed = PackedI8::from_rows(&w, n, k).unwrap();
        let mut want = packed.matmul(&a, m).unwrap();
        OutputMap::GeluTanh.apply(&mut want);
        assert_eq!(packed.matmul_map(&a, m, OutputMap::GeluTanh).unwrap(), want);
    }

    #[test]
    fn bad_shapes_are_refused() {
        assert!(PackedI8::from_rows(&[1.0; 6], 2, 4).is_none());
        assert!(PackedI8::from_rows(&[], 0, 4).is_none());
        let p = PackedI8::from_rows(&[1.0; 8], 2, 4).unwrap();
        assert!(p.clone().with_bias(&[1.0]).is_none());
        assert!(p.matmul(&[1.0; 3], 1).is_none());
    }
}
