//! `C = A · Wᵀ` with BF16 inputs and f32 accumulation on AVX-512 BF16 (`vdpbf16ps`).
//!
//! Candle's CPU matmul (the `gemm` crate) has no BF16 dot-product path: its bf16 matmul runs
//! at f32 speed. On CPUs with AVX-512 BF16 one instruction does 32 multiply-adds into f32,
//! twice the f32 FMA rate, which is where the vision tower's time goes. No maintained crate
//! offers such a kernel on stable Rust, so it is written here.
//!
//! Layout: the weight matrix `W` (`[n, k]`, a layer's `[out, in]`) is packed once into panels
//! of [`NR`] output columns; within a panel each k-pair holds one 32-bit lane per column, lane
//! `j` being `(W[j][2p], W[j][2p+1])` as two bf16. When `n` is not a multiple of `NR` the last
//! panel is only as wide as it must be (16, 32 or 48 columns): attention's `P·V` has 64
//! columns, which whole panels would pad to 96, half again the work. Activations are rounded to
//! bf16 (nearest even) row by row before the product. A micro-kernel keeps an [`MR`]×[`NR`]
//! block of `C` in 24 registers (fewer for a narrow panel).

use rayon::prelude::*;

use super::OutputMap;

/// Rows of `C` per micro-kernel call.
pub(crate) const MR: usize = 8;
/// Columns of `C` per micro-kernel call (three 16-lane registers).
pub(crate) const NR: usize = 48;
/// k-pairs per cache block: a panel's block (`KC · NR · 4` bytes, 24 KiB) stays in L1.
const KC: usize = 128;
/// Columns per vector register.
const LANES: usize = 16;

/// How `n` output columns split into panels: `full` panels of [`NR`] columns, then one of
/// `tail` columns (0, 16 or 32; a remainder above 32 gets a full panel).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Panels {
    full: usize,
    tail: usize,
}

impl Panels {
    fn of(n: usize) -> Self {
        match n % NR {
            0 => Panels {
                full: n / NR,
                tail: 0,
            },
            rem if rem > NR - LANES => Panels {
                full: n / NR + 1,
                tail: 0,
            },
            rem => Panels {
                full: n / NR,
                tail: rem.div_ceil(LANES) * LANES,
            },
        }
    }

    fn count(self) -> usize {
        self.full + usize::from(self.tail > 0)
    }

    /// Columns of panel `i`.
    fn width(self, i: usize) -> usize {
        if i < self.full {
            NR
        } else {
            self.tail
        }
    }

    /// Columns of all panels together.
    fn padded(self) -> usize {
        self.full * NR + self.tail
    }

    /// Where column `col`'s lane of k-pair `p` lies, for `pairs` k-pairs per row.
    fn lane(self, col: usize, p: usize, pairs: usize) -> usize {
        let panel = (col / NR).min(self.full);
        let width = self.width(panel);
        panel * pairs * NR + p * width + (col - panel * NR)
    }
}

/// Whether the CPU has the instructions [`PackedBf16`] needs.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// A weight matrix `[n, k]` packed for [`PackedBf16::matmul`].
#[derive(Debug, Clone)]
pub struct PackedBf16 {
    /// Panels of `k_pairs · NR` lanes.
    lanes: Vec<u32>,
    /// Added to every output row, padded to whole panels.
    bias: Option<Vec<f32>>,
    n: usize,
    k: usize,
}

impl PackedBf16 {
    /// Packs row-major `w` (`[n, k]`), rounding to bf16.
    pub fn from_rows(w: &[f32], n: usize, k: usize) -> Option<Self> {
        Self::pack(n, k, |row, col| w[row * k + col]).filter(|_| w.len() == n * k)
    }

    /// Packs row-major bf16 `w` (`[n, k]`).
    pub fn from_bf16_rows(w: &[half::bf16], n: usize, k: usize) -> Option<Self> {
        Self::pack(n, k, |row, col| w[row * k + col].to_f32()).filter(|_| w.len() == n * k)
    }

    /// Packs the `[n, k]` matrix whose element (row, col) is `at(row, col)`. An odd `k` is
    /// padded with a zero column.
    pub(crate) fn pack(
        n: usize,
        k: usize,
        at: impl Fn(usize, usize) -> f32 + Sync,
    ) -> Option<Self> {
        if k == 0 || n == 0 {
            return None;
        }
        let at = |row: usize, col: usize| if col < k { at(row, col) } else { 0.0 };
        let mut packed = Self::zeroed(n, k)?;
        let pairs = packed.pairs();
        packed.panels_mut().for_each(|(panel, width, out)| {
            for p in 0..pairs {
                for j in 0..width.min(n - panel * NR) {
                    let row = panel * NR + j;
                    out[p * width + j] =
                        bf16_bits(at(row, 2 * p)) | (bf16_bits(at(row, 2 * p + 1)) << 16);
                }
            }
        });
        Some(packed)
    }

    /// Each panel's lanes with its index and width, in parallel.
    fn panels_mut(&mut self) -> impl ParallelIterator<Item = (usize, usize, &mut [u32])> {
        let (panels, pairs) = (self.panels(), self.pairs());
        let (body, tail) = self.lanes.split_at_mut(panels.full * pairs * NR);
        body.par_chunks_mut(pairs * NR)
            .enumerate()
            .map(|(i, lanes)| (i, NR, lanes))
            .chain(rayon::iter::once((panels.full, panels.tail, tail)))
            .filter(|(_, width, _)| *width > 0)
    }

    /// Packs `[n, k]` whose row `r` `fill(r, buf)` writes into `buf` (`k` values), in
    /// parallel over panels: each row is produced once, next to where it is packed, so a
    /// dequantized or converted copy of the whole matrix never exists.
    pub(crate) fn from_row_fill(
        n: usize,
        k: usize,
        fill: impl Fn(usize, &mut [f32]) + Sync,
    ) -> Option<Self> {
        let mut packed = Self::zeroed(n, k)?;
        let pairs = packed.pairs();
        packed.panels_mut().for_each(|(panel, width, out)| {
            let mut row = vec![0f32; 2 * pairs];
            for j in 0..width.min(n - panel * NR) {
                fill(panel * NR + j, &mut row[..k]);
                for (p, pair) in row.chunks_exact(2).enumerate() {
                    out[p * width + j] = bf16_bits(pair[0]) | (bf16_bits(pair[1]) << 16);
                }
            }
        });
        Some(packed)
    }

    /// Packs `[n, k]` given row by row (`row(r)`: the `k` values of row `r`), on the calling
    /// thread.
    pub(crate) fn from_row_fn<'a>(
        n: usize,
        k: usize,
        row: impl Fn(usize) -> &'a [f32],
    ) -> Option<Self> {
        let mut packed = Self::zeroed(n, k)?;
        let (panels, pairs) = (packed.panels(), packed.pairs());
        for r in 0..n {
            let values = row(r);
            if values.len() != k {
                return None;
            }
            for (p, pair) in values.chunks(2).enumerate() {
                let hi = pair.get(1).copied().unwrap_or(0.0);
                packed.lanes[panels.lane(r, p, pairs)] = bf16_bits(pair[0]) | (bf16_bits(hi) << 16);
            }
        }
        Some(packed)
    }

    /// Packs `[n, k]` given column by column (`col(c)`: the `n` values of column `c`), on the
    /// calling thread.
    pub(crate) fn from_column_fn<'a>(
        n: usize,
        k: usize,
        col: impl Fn(usize) -> &'a [f32],
    ) -> Option<Self> {
        let mut packed = Self::zeroed(n, k)?;
        let (panels, pairs) = (packed.panels(), packed.pairs());
        let zeros = vec![0f32; n];
        for p in 0..pairs {
            let lo = col(2 * p);
            let hi = if 2 * p + 1 < k {
                col(2 * p + 1)
            } else {
                &zeros
            };
            if lo.len() != n || hi.len() != n {
                return None;
            }
            for (panel, (lo, hi)) in lo.chunks(NR).zip(hi.chunks(NR)).enumerate() {
                let dst = &mut packed.lanes[panels.lane(panel * NR, p, pairs)..][..lo.len()];
                for ((d, a), b) in dst.iter_mut().zip(lo).zip(hi) {
                    *d = bf16_bits(*a) | (bf16_bits(*b) << 16);
                }
            }
        }
        Some(packed)
    }

    fn zeroed(n: usize, k: usize) -> Option<Self> {
        if k == 0 || n == 0 {
            return None;
        }
        Some(PackedBf16 {
            lanes: vec![0u32; Panels::of(n).padded() * k.div_ceil(2)],
            bias: None,
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
        let mut padded = bias.to_vec();
        padded.resize(self.n_padded(), 0.0);
        self.bias = Some(padded);
        Some(self)
    }

    /// k-pairs per row of the bf16 activations this matrix takes.
    pub(crate) fn pairs(&self) -> usize {
        self.k.div_ceil(2)
    }

    /// Columns of the padded output (`n` rounded up to whole panels).
    pub(crate) fn n_padded(&self) -> usize {
        self.panels().padded()
    }

    fn panels(&self) -> Panels {
        Panels::of(self.n)
    }

    /// `a` (`[m, k]` row-major f32) times `Wᵀ` → `[m, n]` row-major f32, on the thread
    /// pool. `None` without [`available`] or when `a` is not `m × k`.
    pub fn matmul(&self, a: &[f32], m: usize) -> Option<Vec<f32>> {
        self.matmul_map(a, m, OutputMap::Identity)
    }

    /// [`PackedBf16::matmul`] with `map` applied to every output element, block by block
    /// while the block is still in cache.
    pub(crate) fn matmul_map(&self, a: &[f32], m: usize, map: OutputMap) -> Option<Vec<f32>> {
        if a.len() != m * self.k || !available() {
            return None;
        }
        let a16 = to_bf16_rows(a, m, self.k);
        let n_pad = self.n_padded();
        // Padded to whole micro-kernel blocks: extra rows of A are zero, extra rows and
        // columns of C are cut off below.
        let m_pad = m.div_ceil(MR) * MR;
        let mut c = vec![0f32; m_pad * n_pad];
        let c_ptr = SharedMut(c.as_mut_ptr());
        (0..self.panels().count())
            .into_par_iter()
            .for_each(|panel| {
                // SAFETY: `c` is `m_pad × n_pad`; each task writes its own panel's columns.
                unsafe { self.panel(panel, &a16, m_pad, c_ptr.get(), n_pad, map, self.pairs()) };
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

    /// `a16` (`m_pad` rows of [`PackedBf16::pairs`] bf16 pairs, `m_pad` a multiple of
    /// [`MR`]) times `Wᵀ` into `c` (`m_pad × n_padded`), on the calling thread. `None`
    /// without [`available`] or on mismatched lengths.
    ///
    /// Only the panels that hold the first `cols` output columns are computed (the rest of
    /// `c` is left as it is), over the first `k_used` inputs (the activations are known to be
    /// zero past them): causal attention skips the keys a block of queries cannot see.
    pub(crate) fn matmul_bf16_serial(
        &self,
        a16: &[u32],
        m_pad: usize,
        c: &mut [f32],
        cols: usize,
        k_used: usize,
    ) -> Option<()> {
        let n_pad = self.n_padded();
        if !available()
            || !m_pad.is_multiple_of(MR)
            || a16.len() != m_pad * self.pairs()
            || c.len() != m_pad * n_pad
            || cols > self.n
            || k_used > self.k
        {
            return None;
        }
        let panels = self.panels().count().min(cols.div_ceil(NR));
        for panel in 0..panels {
            // SAFETY: lengths checked above; `k_used.div_ceil(2) ≤ pairs`.
            unsafe {
                self.panel(
                    panel,
                    a16,
                    m_pad,
                    c.as_mut_ptr(),
                    n_pad,
                    OutputMap::Identity,
                    k_used.div_ceil(2),
                )
            };
        }
        Some(())
    }

    /// One panel's output columns for all `m_pad` rows over the first `used` k-pairs, `map`
    /// applied to each block of `C` once its sums are complete.
    ///
    /// # Safety
    /// [`available`]; `a16` holds `m_pad · pairs` lanes, `m_pad` a multiple of MR, `used ≤
    /// pairs`; `c` points at an `m_pad × ldc` matrix with `ldc ≥` the panel's last column.
    #[allow(clippy::too_many_arguments)]
    unsafe fn panel(
        &self,
        panel: usize,
        a16: &[u32],
        m_pad: usize,
        c: *mut f32,
        ldc: usize,
        map: OutputMap,
        used: usize,
    ) {
        let pairs = self.pairs();
        let width = self.panels().width(panel);
        let b = &self.lanes[panel * pairs * NR..][..pairs * width];
        for k0 in (0..used).step_by(KC) {
            let kc = KC.min(used - k0);
            for m0 in (0..m_pad).step_by(MR) {
                let a_block = &a16[m0 * pairs + k0..];
                let b_block = &b[k0 * width..(k0 + kc) * width];
                let start = match (&self.bias, k0) {
                    (_, k0) if k0 > 0 => Start::Accumulate,
                    (Some(bias), _) => Start::Bias(bias[panel * NR..].as_ptr()),
                    (None, _) => Start::Zero,
                };
                // SAFETY: the block at (m0, panel·NR) lies inside `c`.
                let block = unsafe { c.add(m0 * ldc + panel * NR) };
                // SAFETY: `a_block` has MR rows of stride `pairs` from `k0`, `b_block` has
                // `kc · width` lanes, and the MR×width block lies inside `c`.
                unsafe {
                    kernel(
                        a_block.as_ptr(),
                        pairs,
                        b_block.as_ptr(),
                        kc,
                        width,
                        block,
                        ldc,
                        start,
                    )
                };
                if k0 + kc == used && map != OutputMap::Identity {
                    for r in 0..MR {
                        // SAFETY: row `r` of the block, `width` columns, lies inside `c` and
                        // belongs to this call.
                        map.apply(unsafe {
                            std::slice::from_raw_parts_mut(block.add(r * ldc), width)
                        });
                    }
                }
            }
        }
    }
}

/// What a micro-kernel call starts its sums from.
#[derive(Clone, Copy)]
// Read by the x86-64 kernel only.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
enum Start {
    /// Zero.
    Zero,
    /// The values already in C (a later k-block).
    Accumulate,
    /// `NR` bias values, the same for every row.
    Bias(*const f32),
}

/// A pointer the panel tasks write disjoint blocks through (here and in `gemm_i8`).
pub(crate) struct SharedMut(pub(crate) *mut f32);
// SAFETY: each task writes only the columns of its own panel.
unsafe impl Sync for SharedMut {}

impl SharedMut {
    /// Through a method, so that closures capture the whole (`Sync`) wrapper.
    pub(crate) fn get(&self) -> *mut f32 {
        self.0
    }
}

/// Rows of `a` (`[m, k]`) rounded to bf16, as k-pairs (an odd `k` padded with zero), padded
/// with zero rows to whole `MR` blocks.
pub(crate) fn to_bf16_rows(a: &[f32], m: usize, k: usize) -> Vec<u32> {
    let pairs = k.div_ceil(2);
    let m_pad = m.div_ceil(MR) * MR;
    let mut out = vec![0u32; m_pad * pairs];
    out.par_chunks_mut(pairs)
        .zip(a.par_chunks(k))
        .for_each(|(dst, src)| round_row(src, dst));
    out
}

/// `src` rounded to bf16 pairs in `dst` (`src.len().div_ceil(2)` lanes; an odd tail is
/// paired with zero).
pub(crate) fn round_row(src: &[f32], dst: &mut [u32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if available() {
            // SAFETY: the CPU has AVX-512 F and BF16.
            unsafe { x86::round_row(src, dst) };
            return;
        }
    }
    round_pairs(src, dst);
}

/// The scalar rounding of [`round_row`].
/// `v` rounded to bf16 (nearest even; NaN stays NaN), as the low 16 bits.
#[inline(always)]
fn bf16_bits(v: f32) -> u32 {
    let bits = v.to_bits();
    if v.is_nan() {
        return (bits >> 16) | 0x40;
    }
    (bits + 0x7fff + ((bits >> 16) & 1)) >> 16
}

fn round_pairs(src: &[f32], dst: &mut [u32]) {
    for (d, s) in dst.iter_mut().zip(src.chunks(2)) {
        *d = bf16_bits(s[0]) | (bf16_bits(s.get(1).copied().unwrap_or(0.0)) << 16);
    }
}

/// The micro-kernel for a panel `width` columns wide (16, 32 or 48).
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
unsafe fn kernel(
    a: *const u32,
    lda: usize,
    b: *const u32,
    kc: usize,
    width: usize,
    c: *mut f32,
    ldc: usize,
    start: Start,
) {
    // SAFETY: forwarded from the caller.
    unsafe {
        match width {
            16 => x86::kernel_8xw::<1>(a, lda, b, kc, c, ldc, start),
            32 => x86::kernel_8xw::<2>(a, lda, b, kc, c, ldc, start),
            _ => x86::kernel_8xw::<3>(a, lda, b, kc, c, ldc, start),
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
#[allow(clippy::too_many_arguments)]
unsafe fn kernel(
    _a: *const u32,
    _lda: usize,
    _b: *const u32,
    _kc: usize,
    _width: usize,
    _c: *mut f32,
    _ldc: usize,
    _start: Start,
) {
    // `matmul` checks `available()`, which is false off x86-64.
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{Start, LANES, MR};

    /// Rounds pairs of `src` to bf16 (nearest even), 32 values per instruction.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub unsafe fn round_row(src: &[f32], dst: &mut [u32]) {
        let mut i = 0;
        while i + 32 <= src.len() {
            // SAFETY: 32 floats from `i` and 16 lanes from `i / 2` are in bounds.
            unsafe {
                let lo = _mm512_loadu_ps(src.as_ptr().add(i));
                let hi = _mm512_loadu_ps(src.as_ptr().add(i + 16));
                let packed: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(hi, lo));
                _mm512_storeu_si512(dst.as_mut_ptr().add(i / 2).cast(), packed);
            }
            i += 32;
        }
        super::round_pairs(&src[i..], &mut dst[i / 2..]);
    }

    /// `C[0..MR, 0..16·W] = start + A[0..MR, pairs] · B[pairs, 0..16·W]` over `kc` k-pairs.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub unsafe fn kernel_8xw<const W: usize>(
        a: *const u32,
        lda: usize,
        b: *const u32,
        kc: usize,
        c: *mut f32,
        ldc: usize,
        start: Start,
    ) {
        let mut acc = [[_mm512_setzero_ps(); W]; MR];
        for (r, row) in acc.iter_mut().enumerate() {
            for (j, v) in row.iter_mut().enumerate() {
                // SAFETY: the caller guarantees an MR×16·W block of `c` with stride `ldc`, and
                // 16·W bias values.
                unsafe {
                    *v = match start {
                        Start::Zero => _mm512_setzero_ps(),
                        Start::Accumulate => _mm512_loadu_ps(c.add(r * ldc + j * LANES)),
                        Start::Bias(bias) => _mm512_loadu_ps(bias.add(j * LANES)),
                    };
                }
            }
        }
        for p in 0..kc {
            // SAFETY: the caller guarantees `kc · 16·W` lanes at `b` and MR rows at `a`.
            unsafe {
                let bp = b.add(p * W * LANES);
                let bv: [__m512bh; W] = std::array::from_fn(|j| {
                    std::mem::transmute(_mm512_loadu_si512(bp.add(j * LANES).cast()))
                });
                for (r, row) in acc.iter_mut().enumerate() {
                    let av: __m512bh =
                        std::mem::transmute(_mm512_set1_epi32(*a.add(r * lda + p) as i32));
                    for (v, bj) in row.iter_mut().zip(&bv) {
                        *v = _mm512_dpbf16_ps(*v, av, *bj);
                    }
                }
            }
        }
        for (r, row) in acc.iter().enumerate() {
            for (j, v) in row.iter().enumerate() {
                // SAFETY: as above.
                unsafe { _mm512_storeu_ps(c.add(r * ldc + j * LANES), *v) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bf16_round(v: f32) -> f32 {
        half::bf16::from_f32(v).to_f32()
    }

    fn skip() -> bool {
        if available() {
            return false;
        }
        eprintln!("note: this CPU lacks AVX-512 BF16; the BF16 GEMM is not checked here");
        true
    }

    /// Against a plain triple loop over the same bf16-rounded inputs, accumulated in f64.
    #[test]
    fn matches_a_plain_product() {
        if skip() {
            return;
        }
        // Sizes off every block multiple: m not a multiple of MR, n not of NR (every width
        // of the last panel: 16, 32 and 48 columns, and whole panels), k over KC.
        let (m, k) = (13, 2 * KC + 6);
        for n in [100, 64, 80, 96, 7, 47] {
            let a: Vec<f32> = (0..m * k)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0)
                .collect();
            let w: Vec<f32> = (0..n * k)
                .map(|i| ((i * 53 % 89) as f32 - 44.0) / 30.0)
                .collect();
            let packed = PackedBf16::from_rows(&w, n, k).unwrap();
            let c = packed.matmul(&a, m).unwrap();
            assert_eq!(c.len(), m * n);
            for i in 0..m {
                for j in 0..n {
                    let want: f64 = (0..k)
                        .map(|t| {
                            f64::from(bf16_round(a[i * k + t]))
                                * f64::from(bf16_round(w[j * k + t]))
                        })
                        .sum();
                    // f32 accumulation of 262 products of magnitude ≤ 3: ~1e-5 relative.
                    let got = f64::from(c[i * n + j]);
                    assert!(
                        (got - want).abs() <= 1e-4 * (1.0 + want.abs()),
                        "n = {n}, ({i},{j}): {got} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn panels_are_only_as_wide_as_the_columns_need() {
        let widths = |n: usize| {
            let p = Panels::of(n);
            (0..p.count()).map(|i| p.width(i)).collect::<Vec<_>>()
        };
        assert_eq!(widths(64), [48, 16]);
        assert_eq!(widths(80), [48, 32]);
        assert_eq!(widths(96), [48, 48]);
        assert_eq!(widths(90), [48, 48]);
        assert_eq!(widths(7), [16]);
        assert_eq!(Panels::of(1024).padded(), 1024);
    }

    /// The mapped product is the product with the map applied afterwards, bit for bit: the
    /// map runs on the finished sums.
    #[test]
    fn the_output_map_applies_to_the_finished_sums() {
        if skip() {
            return;
        }
        let (m, n, k) = (11, 70, 2 * KC + 3);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.71).sin()).collect();
        let w: Vec<f32> = (0..n * k).map(|i| (i as f32 * 0.13).cos() * 0.1).collect();
        let bias: Vec<f32> = (0..n).map(|j| j as f32 * 0.01 - 0.3).collect();
        let packed = PackedBf16::from_rows(&w, n, k)
            .unwrap()
            .with_bias(&bias)
            .unwrap();
        let mut want = packed.matmul(&a, m).unwrap();
        OutputMap::GeluTanh.apply(&mut want);
        let got = packed.matmul_map(&a, m, OutputMap::GeluTanh).unwrap();
        assert_eq!(got, want);
    }

    #[test]
    fn bias_is_added_once_per_row() {
        if skip() {
            return;
        }
        // k over two cache blocks: the bias must not be added again by the second block.
        let (n, k) = (50, 2 * KC * 2 + 2);
        let w = vec![0.5f32; n * k];
        let bias: Vec<f32> = (0..n).map(|j| j as f32).collect();
        let packed = PackedBf16::from_rows(&w, n, k)
            .unwrap()
            .with_bias(&bias)
            .unwrap();
        let c = packed.matmul(&vec![1.0f32; 3 * k], 3).unwrap();
        for (i, v) in c.iter().enumerate() {
            assert_eq!(*v, 0.5 * k as f32 + (i % n) as f32);
        }
    }

    #[test]
    fn row_and_column_packing_agree_with_the_element_packing() {
        // 53 columns: one full panel and one of 16.
        let (n, k) = (53, 9);
        let w: Vec<f32> = (0..n * k).map(|i| (i as f32 * 0.37).sin() * 3.0).collect();
        let cols: Vec<Vec<f32>> = (0..k)
            .map(|c| (0..n).map(|r| w[r * k + c]).collect())
            .collect();
        let by_element = PackedBf16::from_rows(&w, n, k).unwrap();
        let by_row = PackedBf16::from_row_fn(n, k, |r| &w[r * k..(r + 1) * k]).unwrap();
        let by_column = PackedBf16::from_column_fn(n, k, |c| &cols[c]).unwrap();
        let by_fill =
            PackedBf16::from_row_fill(n, k, |r, buf| buf.copy_from_slice(&w[r * k..(r + 1) * k]))
                .unwrap();
        assert_eq!(by_row.lanes, by_element.lanes);
        assert_eq!(by_fill.lanes, by_element.lanes);
        assert_eq!(by_column.lanes, by_element.lanes);
        for v in [1.0f32, -2.5e-3, 3.3e38, f32::INFINITY, 1.0 + 1.0 / 256.0] {
            assert_eq!(
                bf16_bits(v) as u16,
                half::bf16::from_f32(v).to_bits(),
                "{v}"
            );
        }
    }

    #[test]
    fn odd_inner_dimension_is_padded() {
        if skip() {
            return;
        }
        let w = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
        let packed = PackedBf16::from_rows(&w, 2, 3).unwrap();
        let c = packed.matmul(&[1.0, 1.0, 1.0], 1).unwrap();
        assert_eq!(c, [6.0, 15.0]);
    }
}
