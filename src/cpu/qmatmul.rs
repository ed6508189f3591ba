//! Matrices in ggml block formats (Q4_0 … Q6_K, Q8_0) multiplied by f32 activations.
//!
//! Candle's `QMatMul` quantizes the activations to 8 bits before its dot products, as
//! llama.cpp does. On SmolLM2, whose hidden states carry large outlier channels, that flips
//! greedy tokens against transformers, which dequantizes the weights and multiplies in f32.
//! This kernel keeps activations in f32 and dequantizes weight rows on the fly: the result is
//! transformers' own arithmetic up to summation order, at the memory cost of the quantized
//! weights.

use candle_core::quantized::k_quants::{
    BlockQ2K, BlockQ3K, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K,
    BlockQ8_0, GgmlType,
};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Tensor};
use rayon::prelude::*;

use crate::error::{Error, Result};

/// Activation rows up to which each weight row is dequantized on the fly (decode); above it the
/// whole matrix is dequantized once and multiplied with the dense f32 kernel (prefill).
const ROW_KERNEL_MAX_ROWS: usize = 8;
/// Output rows per parallel work item.
const CHUNK: usize = 64;

/// An `[out, in]` matrix stored as ggml blocks, row-major.
#[derive(Debug, Clone)]
pub struct QMatrix {
    /// Block bytes, in a u64 buffer so that block structs (f16 fields) are aligned.
    raw: Vec<u64>,
    bytes: usize,
    dtype: GgmlDType,
    out_dim: usize,
    in_dim: usize,
}

impl QMatrix {
    /// Takes the blocks of a 2-D quantized tensor `[out, in]`.
    pub fn new(q: &QTensor) -> Result<Self> {
        let (out_dim, in_dim) = q.shape().dims2()?;
        let dtype = q.dtype();
        if !matches!(
            dtype,
            GgmlDType::Q4_0
                | GgmlDType::Q4_1
                | GgmlDType::Q5_0
                | GgmlDType::Q5_1
                | GgmlDType::Q8_0
                | GgmlDType::Q2K
                | GgmlDType::Q3K
                | GgmlDType::Q4K
                | GgmlDType::Q5K
                | GgmlDType::Q6K
        ) {
            return Err(Error::InvalidOption {
                name: "quantized matrix",
                reason: format!("{dtype:?} matrices are not supported"),
            });
        }
        let data = q.data()?;
        let expected = out_dim * in_dim / dtype.block_size() * dtype.type_size();
        if data.len() != expected || in_dim % dtype.block_size() != 0 {
            return Err(Error::InvalidOption {
                name: "quantized matrix",
                reason: format!(
                    "{} bytes for a {out_dim}×{in_dim} {dtype:?} matrix",
                    data.len()
                ),
            });
        }
        let mut raw = vec![0u64; data.len().div_ceil(8)];
        as_bytes_mut(&mut raw)[..data.len()].copy_from_slice(&data);
        Ok(QMatrix {
            raw,
            bytes: data.len(),
            dtype,
            out_dim,
            in_dim,
        })
    }

    /// The block type.
    pub fn dtype(&self) -> GgmlDType {
        self.dtype
    }

    /// `xs`: `[..., in]` (any float dtype) → `[..., out]` in the dtype of `xs`.
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let dtype = xs.dtype();
        let mut out_shape = xs.dims().to_vec();
        let last = out_shape.len() - 1;
        if out_shape[last] != self.in_dim {
            return Err(candle_core::Error::ShapeMismatchBinaryOp {
                lhs: xs.shape().clone(),
                rhs: (self.out_dim, self.in_dim).into(),
                op: "qmatmul",
            }
            .into());
        }
        out_shape[last] = self.out_dim;
        let rows = xs.elem_count() / self.in_dim;
        let x = xs.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        let y = if rows <= ROW_KERNEL_MAX_ROWS {
            self.rows_kernel(&x, rows)
        } else {
            let w = Tensor::from_vec(self.dequantize(), (self.out_dim, self.in_dim), xs.device())?;
            let x = Tensor::from_vec(x, (rows, self.in_dim), xs.device())?;
            x.matmul(&w.t()?)?.flatten_all()?.to_vec1::<f32>()?
        };
        Ok(Tensor::from_vec(y, out_shape, xs.device())?.to_dtype(dtype)?)
    }

    /// `y = W · x` for one activation row rounded to 8-bit blocks first (the decode step's
    /// `DecodeCompute::Int8Dot` arithmetic), rows in parallel; `None` when the CPU has no int8
    /// kernels or this block type has none. For the benches, which time it against
    /// [`QMatrix::forward`].
    pub fn matvec_int8(&self, x: &[f32]) -> Option<Vec<f32>> {
        let isa = int8_act::Isa::detect()?;
        if !self.has_int8_kernel() || x.len() != self.in_dim {
            return None;
        }
        let act = int8_act::Int8Activation::quantize(x);
        let mut y = vec![0f32; self.out_dim];
        y.par_chunks_mut(CHUNK).enumerate().for_each(|(c, out)| {
            self.int8_rows_into(isa, &act, c * CHUNK, out);
        });
        Some(y)
    }

    /// The whole matrix as f32, row-major `[out, in]`.
    pub(crate) fn dequantize(&self) -> Vec<f32> {
        let mut w = vec![0f32; self.out_dim * self.in_dim];
        let in_dim = self.in_dim;
        w.par_chunks_mut(in_dim * CHUNK)
            .enumerate()
            .for_each(|(c, chunk)| {
                for (i, row) in chunk.chunks_mut(in_dim).enumerate() {
                    self.row(c * CHUNK + i, row);
                }
            });
        w
    }

    /// Dequantizes weight row `o` into `buf` (`in_dim` floats).
    pub(crate) fn row(&self, o: usize, buf: &mut [f32]) {
        fn dequant<T: GgmlType>(raw: &[u8], o: usize, in_dim: usize, buf: &mut [f32]) {
            let per_row = in_dim / T::BLCK_SIZE;
            let size = std::mem::size_of::<T>();
            let bytes = &raw[o * per_row * size..(o + 1) * per_row * size];
            // SAFETY: `raw` comes from a u64 buffer (8-byte aligned) and every row starts at a
            // multiple of the block size; block types are `repr(C)` plain data with alignment
            // of at most 4, and the length was checked against the shape at construction.
            let blocks = unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<T>(), per_row) };
            T::to_float(blocks, buf);
        }
        let raw = &as_bytes(&self.raw)[..self.bytes];
        let n = self.in_dim;
        match self.dtype {
            GgmlDType::Q4_0 => dequant::<BlockQ4_0>(raw, o, n, buf),
            GgmlDType::Q4_1 => dequant::<BlockQ4_1>(raw, o, n, buf),
            GgmlDType::Q5_0 => dequant::<BlockQ5_0>(raw, o, n, buf),
            GgmlDType::Q5_1 => dequant::<BlockQ5_1>(raw, o, n, buf),
            GgmlDType::Q8_0 => dequant::<BlockQ8_0>(raw, o, n, buf),
            GgmlDType::Q2K => dequant::<BlockQ2K>(raw, o, n, buf),
            GgmlDType::Q3K => dequant::<BlockQ3K>(raw, o, n, buf),
            GgmlDType::Q4K => dequant::<BlockQ4K>(raw, o, n, buf),
            GgmlDType::Q5K => dequant::<BlockQ5K>(raw, o, n, buf),
            GgmlDType::Q6K => dequant::<BlockQ6K>(raw, o, n, buf),
            // `new` admits only the types above.
            _ => buf.fill(0.0),
        }
    }

    /// Whether [`QMatrix::dot_rows_into`] needs the 32-element block sums of its input.
    pub(crate) fn needs_block_sums(&self) -> bool {
        fused::Kind::of(self.dtype).is_some_and(|k| k.has_offset())
    }

    /// Weight rows `first..first + out.len()` dotted with one activation row `x`; `sums` holds
    /// the 32-element block sums of `x` when [`QMatrix::needs_block_sums`] (else it is ignored).
    pub(crate) fn dot_rows_into(&self, x: &[f32], sums: &[f32], first: usize, out: &mut [f32]) {
        let raw = &as_bytes(&self.raw)[..self.bytes];
        let row_bytes = self.in_dim / self.dtype.block_size() * self.dtype.type_size();
        match fused::Kind::of(self.dtype) {
            Some(k) => {
                let w = &raw[first * row_bytes..(first + out.len()) * row_bytes];
                let sums = if k.has_offset() { sums } else { &[] };
                fused::dot_rows(k, w, row_bytes, x, sums, self.in_dim, out);
            }
            None => {
                let mut buf = vec![0f32; self.in_dim];
                for (i, y) in out.iter_mut().enumerate() {
                    self.row(first + i, &mut buf);
                    *y = dot(&buf, x);
                }
            }
        }
    }

    /// Like [`QMatrix::dot_rows_into`] against an activation row rounded to 8 bits; `false`
    /// (and `out` untouched) when this block type has no int8 kernel.
    pub(crate) fn int8_rows_into(
        &self,
        isa: int8_act::Isa,
        x: &int8_act::Int8Activation,
        first: usize,
        out: &mut [f32],
    ) -> bool {
        let Some(kind) = fused::Kind::of(self.dtype).filter(|k| int8_act::supports(*k)) else {
            return false;
        };
        let raw = &as_bytes(&self.raw)[..self.bytes];
        let row_bytes = self.in_dim / self.dtype.block_size() * self.dtype.type_size();
        let w = &raw[first * row_bytes..(first + out.len()) * row_bytes];
        int8_act::dot_rows(isa, kind, w, row_bytes, x, out);
        true
    }

    /// Whether [`QMatrix::int8_rows_into`] takes this block type.
    pub(crate) fn has_int8_kernel(&self) -> bool {
        fused::Kind::of(self.dtype).is_some_and(int8_act::supports)
    }

    /// `[out, in]`.
    pub(crate) fn dims(&self) -> (usize, usize) {
        (self.out_dim, self.in_dim)
    }

    /// Few activation rows (decode): for the legacy block types a fused kernel dots the blocks
    /// with f32 activations without materialising the weights; k-quants dequantize each weight
    /// row once and dot it with every activation row.
    fn rows_kernel(&self, x: &[f32], rows: usize) -> Vec<f32> {
        let (n_out, n_in) = (self.out_dim, self.in_dim);
        let raw = &as_bytes(&self.raw)[..self.bytes];
        let row_bytes = n_in / self.dtype.block_size() * self.dtype.type_size();
        let kind = fused::Kind::of(self.dtype);
        // Per-block sums of the activations: the offset term `m · Σx` of Q4_1/Q5_1 blocks.
        let sums: Vec<f32> = match kind {
            Some(k) if k.has_offset() => x.chunks(32).map(|b| b.iter().sum()).collect(),
            _ => Vec::new(),
        };
        // Computed as [out, rows] so that parallel chunks own disjoint output.
        let mut yt = vec![0f32; n_out * rows];
        yt.par_chunks_mut(rows * CHUNK)
            .enumerate()
            .for_each(|(c, chunk)| {
                let first = c * CHUNK;
                match kind {
                    Some(k) => {
                        let n = chunk.len() / rows;
                        let w = &raw[first * row_bytes..(first + n) * row_bytes];
                        fused::dot_rows(k, w, row_bytes, x, &sums, n_in, chunk);
                    }
                    None => {
                        let mut buf = vec![0f32; n_in];
                        for (i, out) in chunk.chunks_mut(rows).enumerate() {
                            self.row(first + i, &mut buf);
                            for (r, y) in out.iter_mut().enumerate() {
                                *y = dot(&buf, &x[r * n_in..(r + 1) * n_in]);
                            }
                        }
                    }
                }
            });
        let mut y = vec![0f32; rows * n_out];
        for o in 0..n_out {
            for r in 0..rows {
                y[r * n_out + o] = yt[o * rows + r];
            }
        }
        y
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512;

/// The name of the block-dot kernels this CPU runs: `avx512`, `avx2` or `portable`.
pub(crate) fn family_name() -> &'static str {
    match fused::family() {
        fused::Family::Avx512 => "avx512",
        fused::Family::Avx2 => "avx2",
        fused::Family::Portable => "portable",
    }
}

mod fused;
pub(crate) mod int8_act;

/// f32 dot product with eight independent accumulators, so the compiler can vectorize it.
/// Always inlined, so that it vectorizes for the instruction set of its caller (the AVX2
/// build of decode attention).
#[inline(always)]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        sum += x * y;
    }
    sum
}

fn as_bytes(v: &[u64]) -> &[u8] {
    // SAFETY: u8 has no alignment or validity requirements; the length covers the same memory.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), v.len() * 8) }
}

fn as_bytes_mut(v: &mut [u64]) -> &mut [u8] {
    // SAFETY: as above, with unique access.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u8>(), v.len() * 8) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// The kernel against a plain reference: dequantize with Candle, multiply in f32.
    #[test]
    fn matches_dequantize_then_matmul() {
        let dev = Device::Cpu;
        for ty in [
            GgmlDType::Q4_0,
            GgmlDType::Q4_1,
            GgmlDType::Q5_0,
            GgmlDType::Q5_1,
            GgmlDType::Q8_0,
            GgmlDType::Q4K,
            GgmlDType::Q6K,
            GgmlDType::Q2K,
            GgmlDType::Q3K,
            GgmlDType::Q5K,
        ] {
            let w = Tensor::randn(0f32, 1.0, (70, 512), &dev).unwrap();
            let q = QTensor::quantize(&w, ty).unwrap();
            let reference_w = q.dequantize(&dev).unwrap();
            let m = QMatrix::new(&q).unwrap();
            for rows in [1usize, 3, 20] {
                let x = Tensor::randn(0f32, 1.0, (1, rows, 512), &dev).unwrap();
                let ours = m.forward(&x).unwrap();
                let reference = x.broadcast_matmul(&reference_w.t().unwrap()).unwrap();
                let diff = (ours - &reference)
                    .unwrap()
                    .abs()
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .max(0)
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap();
                // f32 sums of 512 products of magnitude ~1 in another order: ~1e-5.
                assert!(diff < 1e-3, "{ty:?} rows {rows}: {diff}");
            }
        }
    }

    #[test]
    fn dot_handles_remainders() {
        let a: Vec<f32> = (0..13).map(|v| v as f32).collect();
        assert_eq!(dot(&a, &a), (0..13).map(|v| (v * v) as f32).sum::<f32>());
    }
}
