//! Fused block-dot kernels for the 32-element block types, written so that the compiler
//! vectorizes them; compiled a second time with AVX2+FMA and chosen at run time.

use candle_core::quantized::GgmlDType;
use half::f16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
}

impl Kind {
    pub fn of(dtype: GgmlDType) -> Option<Kind> {
        Some(match dtype {
            GgmlDType::Q4_0 => Kind::Q4_0,
            GgmlDType::Q4_1 => Kind::Q4_1,
            GgmlDType::Q5_0 => Kind::Q5_0,
            GgmlDType::Q5_1 => Kind::Q5_1,
            GgmlDType::Q8_0 => Kind::Q8_0,
            _ => return None,
        })
    }

    pub fn has_offset(self) -> bool {
        matches!(self, Kind::Q4_1 | Kind::Q5_1)
    }
}

/// `out[i·rows + r] = w_i · x_r` for the `out.len() / rows` weight rows in `w`.
pub fn dot_rows(
    kind: Kind,
    w: &[u8],
    row_bytes: usize,
    x: &[f32],
    sums: &[f32],
    n_in: usize,
    out: &mut [f32],
) {
    match family() {
        #[cfg(target_arch = "x86_64")]
        Family::Avx512 => {
            // SAFETY: the CPU supports the kernels' features; the slices are as documented.
            unsafe { super::avx512::dot_rows(kind, w, row_bytes, x, sums, n_in, out) };
        }
        #[cfg(target_arch = "x86_64")]
        Family::Avx2 => {
            // SAFETY: the CPU supports the features the function is compiled with.
            unsafe { dot_rows_avx2(kind, w, row_bytes, x, sums, n_in, out) };
        }
        _ => dot_rows_portable(kind, w, row_bytes, x, sums, n_in, out),
    }
}

/// The kernels `dot_rows` can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// AVX-512 F with F16C.
    Avx512,
    /// AVX2 with FMA and F16C.
    Avx2,
    /// Plain Rust.
    Portable,
}

/// The kernels `dot_rows` runs on this CPU (the one choice, also reported by `vlm bench`).
pub fn family() -> Family {
    #[cfg(target_arch = "x86_64")]
    {
        if super::avx512::available() {
            return Family::Avx512;
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            return Family::Avx2;
        }
    }
    Family::Portable
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_rows_avx2(
    kind: Kind,
    w: &[u8],
    row_bytes: usize,
    x: &[f32],
    sums: &[f32],
    n_in: usize,
    out: &mut [f32],
) {
    dot_rows_portable(kind, w, row_bytes, x, sums, n_in, out)
}

#[inline(always)]
fn dot_rows_portable(
    kind: Kind,
    w: &[u8],
    row_bytes: usize,
    x: &[f32],
    sums: &[f32],
    n_in: usize,
    out: &mut [f32],
) {
    for_each_row(
        kind,
        w,
        row_bytes,
        x,
        sums,
        n_in,
        out,
        |row, xr, sr| match kind {
            Kind::Q4_0 => dot_q4_0(row, xr),
            Kind::Q4_1 => dot_q4_1(row, xr, sr),
            Kind::Q5_0 => dot_q5_0(row, xr),
            Kind::Q5_1 => dot_q5_1(row, xr, sr),
            Kind::Q8_0 => dot_q8_0(row, xr),
        },
    )
}

/// `out[i·rows + r] = dot(w_i, x_r, block sums of x_r)` for the weight rows in `w`: the
/// loop every kernel set shares; `dot` is one set's block-dot for one row pair.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub fn for_each_row(
    kind: Kind,
    w: &[u8],
    row_bytes: usize,
    x: &[f32],
    sums: &[f32],
    n_in: usize,
    out: &mut [f32],
    dot: impl Fn(&[u8], &[f32], &[f32]) -> f32,
) {
    let rows = x.len() / n_in;
    let blocks = n_in / 32;
    for (i, row) in w.chunks_exact(row_bytes).enumerate() {
        for r in 0..rows {
            let xr = &x[r * n_in..(r + 1) * n_in];
            let sr = if kind.has_offset() {
                &sums[r * blocks..(r + 1) * blocks]
            } else {
                &[][..]
            };
            out[i * rows + r] = dot(row, xr, sr);
        }
    }
}

#[inline(always)]
fn half(b: &[u8]) -> f32 {
    f16::from_le_bytes([b[0], b[1]]).to_f32()
}

#[inline(always)]
fn hsum<const N: usize>(acc: [f32; N]) -> f32 {
    acc.iter().sum()
}

/// Q4_0: 2-byte scale, 16 bytes of nibbles; value = (q − 8)·d.
#[inline(always)]
fn dot_q4_0(row: &[u8], x: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    for (b, xb) in row.chunks_exact(18).zip(x.chunks_exact(32)) {
        let d = half(b);
        let qs = &b[2..18];
        for j in 0..16 {
            let lo = (qs[j] & 15) as f32 - 8.0;
            let hi = (qs[j] >> 4) as f32 - 8.0;
            acc[j] += d * (lo * xb[j] + hi * xb[j + 16]);
        }
    }
    hsum(acc)
}

/// Q4_1: scale and offset, 16 bytes of nibbles; value = q·d + m.
#[inline(always)]
fn dot_q4_1(row: &[u8], x: &[f32], sums: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let mut offset = 0f32;
    for ((b, xb), s) in row.chunks_exact(20).zip(x.chunks_exact(32)).zip(sums) {
        let d = half(b);
        offset += half(&b[2..]) * s;
        let qs = &b[4..20];
        for j in 0..16 {
            let lo = (qs[j] & 15) as f32;
            let hi = (qs[j] >> 4) as f32;
            acc[j] += d * (lo * xb[j] + hi * xb[j + 16]);
        }
    }
    hsum(acc) + offset
}

#[inline(always)]
fn high_bits(qh: u32, j: usize) -> (f32, f32) {
    (
        ((qh >> j) & 1) as f32 * 16.0,
        ((qh >> (j + 16)) & 1) as f32 * 16.0,
    )
}

/// Q5_0: scale, 4 bytes of fifth bits, 16 bytes of nibbles; value = (q − 16)·d.
#[inline(always)]
fn dot_q5_0(row: &[u8], x: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    for (b, xb) in row.chunks_exact(22).zip(x.chunks_exact(32)) {
        let d = half(b);
        let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
        let qs = &b[6..22];
        for j in 0..16 {
            let (h0, h1) = high_bits(qh, j);
            let lo = (qs[j] & 15) as f32 + h0 - 16.0;
            let hi = (qs[j] >> 4) as f32 + h1 - 16.0;
            acc[j] += d * (lo * xb[j] + hi * xb[j + 16]);
        }
    }
    hsum(acc)
}

/// Q5_1: scale, offset, fifth bits, nibbles; value = q·d + m.
#[inline(always)]
fn dot_q5_1(row: &[u8], x: &[f32], sums: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let mut offset = 0f32;
    for ((b, xb), s) in row.chunks_exact(24).zip(x.chunks_exact(32)).zip(sums) {
        let d = half(b);
        offset += half(&b[2..]) * s;
        let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
        let qs = &b[8..24];
        for j in 0..16 {
            let (h0, h1) = high_bits(qh, j);
            let lo = (qs[j] & 15) as f32 + h0;
            let hi = (qs[j] >> 4) as f32 + h1;
            acc[j] += d * (lo * xb[j] + hi * xb[j + 16]);
        }
    }
    hsum(acc) + offset
}

/// Q8_0: scale and 32 signed bytes; value = q·d.
#[inline(always)]
fn dot_q8_0(row: &[u8], x: &[f32]) -> f32 {
    let mut acc = [0f32; 32];
    for (b, xb) in row.chunks_exact(34).zip(x.chunks_exact(32)) {
        let d = half(b);
        let qs = &b[2..34];
        for j in 0..32 {
            acc[j] += d * (qs[j] as i8 as f32 * xb[j]);
        }
    }
    hsum(acc)
}
