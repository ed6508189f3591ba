//! The vision tower's encoder layers on packed CPU kernels, over plain buffers: matrices on
//! the BF16 dot-product GEMM or the int8 VNNI GEMM ([`MatrixKernel`]), attention on the BF16
//! kernel.
//!
//! Between its matrix products a SigLIP layer runs two LayerNorms, four bias additions, a
//! GELU and two residual additions over `[1024, 768]`–`[1024, 3072]` activations. As Candle
//! operations each of those is a pass over memory with its own allocation and thread-pool
//! round trip; here biases are the GEMM's starting values, the query/key/value projections
//! are one product, and the rest are single passes over rows the same task just touched.

use rayon::prelude::*;

use crate::config::Activation;
use crate::cpu::attention_bf16::{self, AttentionShape};
use crate::cpu::gemm_bf16::PackedBf16;
use crate::cpu::gemm_i8::PackedI8;
use crate::cpu::OutputMap;
use crate::error::{Error, Result};
use crate::model::layers::{Linear, NormParams};

use super::EncoderLayer;

/// Rows per parallel work item of the row-wise passes.
const ROWS_PER_TASK: usize = 16;

/// Which GEMM a layer's matrices are packed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MatrixKernel {
    /// Activations rounded to bf16, f32 sums (AVX-512 BF16).
    Bf16,
    /// Weights quantized per output row, activations per token, i32 sums (AVX-512 VNNI).
    Int8,
}

impl MatrixKernel {
    /// Whether this CPU runs the kernel (and the BF16 attention every packed layer uses).
    pub(crate) fn available(self) -> bool {
        crate::cpu::gemm_bf16::available()
            && match self {
                MatrixKernel::Bf16 => true,
                MatrixKernel::Int8 => crate::cpu::gemm_i8::available(),
            }
    }
}

/// A weight matrix packed for one of the GEMMs.
enum Matrix {
    Bf16(PackedBf16),
    Int8(PackedI8),
}

impl Matrix {
    /// Packs `[n, k]` given row by row, with `bias` added to every output row.
    fn pack(
        kernel: MatrixKernel,
        n: usize,
        k: usize,
        fill: &(dyn Fn(usize, &mut [f32]) + Sync),
        bias: Option<&[f32]>,
    ) -> Result<Self> {
        let packed = match kernel {
            MatrixKernel::Bf16 => PackedBf16::from_row_fill(n, k, fill)
                .and_then(|p| match bias {
                    Some(b) => p.with_bias(b),
                    None => Some(p),
                })
                .map(Matrix::Bf16),
            MatrixKernel::Int8 => PackedI8::from_row_fill(n, k, fill)
                .and_then(|p| match bias {
                    Some(b) => p.with_bias(b),
                    None => Some(p),
                })
                .map(Matrix::Int8),
        };
        packed.ok_or_else(|| shape_error(n, k))
    }

    fn matmul(&self, a: &[f32], m: usize) -> Option<Vec<f32>> {
        self.matmul_map(a, m, OutputMap::Identity)
    }

    fn matmul_map(&self, a: &[f32], m: usize, map: OutputMap) -> Option<Vec<f32>> {
        match self {
            Matrix::Bf16(p) => p.matmul_map(a, m, map),
            Matrix::Int8(p) => p.matmul_map(a, m, map),
        }
    }
}

/// One encoder layer with packed matrices.
pub(super) struct PackedLayer {
    norm1: NormParams,
    norm2: NormParams,
    /// Query, key and value projections stacked: `[3·D, D]`.
    qkv: Matrix,
    out: Matrix,
    fc1: Matrix,
    fc2: Matrix,
    heads: usize,
    head_dim: usize,
}

fn packed(lin: &Linear, kernel: MatrixKernel) -> Result<Matrix> {
    let (n, k) = lin.dims()?;
    let bias = lin.bias_f32()?;
    lin.with_rows(|fill| Matrix::pack(kernel, n, k, fill, bias.as_deref()))?
}

fn shape_error(n: usize, k: usize) -> Error {
    Error::InvalidOption {
        name: "vision kernels",
        reason: format!("cannot pack a {n}×{k} matrix"),
    }
}

impl PackedLayer {
    /// Whether a layer's activation has a kernel here.
    pub(super) fn supports(layer: &EncoderLayer) -> bool {
        layer.mlp.act == Activation::GeluTanh
    }

    /// Packs a layer that [`PackedLayer::supports`] for `kernel`.
    pub(super) fn from_layer(layer: &EncoderLayer, kernel: MatrixKernel) -> Result<Self> {
        if !Self::supports(layer) {
            return Err(Error::InvalidOption {
                name: "vision kernels",
                reason: format!("no packed kernel for the {:?} activation", layer.mlp.act),
            });
        }
        let a = &layer.self_attn;
        let (d, _) = a.q_proj.dims()?;
        // q, k and v stacked into one [3·D, D] matrix: one product, one pass over the rows.
        let bias = [&a.q_proj, &a.k_proj, &a.v_proj]
            .iter()
            .map(|l| Ok(l.bias_f32()?.unwrap_or_else(|| vec![0.0; d])))
            .collect::<Result<Vec<_>>>()?
            .concat();
        let qkv = a.q_proj.with_rows(|q| {
            a.k_proj.with_rows(|k| {
                a.v_proj.with_rows(|v| {
                    let fill = |r: usize, buf: &mut [f32]| match r / d {
                        0 => q(r, buf),
                        1 => k(r - d, buf),
                        _ => v(r - 2 * d, buf),
                    };
                    Matrix::pack(kernel, 3 * d, d, &fill, Some(&bias))
                })
            })
        })????;
        Ok(PackedLayer {
            norm1: layer.layer_norm1.params()?,
            norm2: layer.layer_norm2.params()?,
            qkv,
            out: packed(&a.out_proj, kernel)?,
            fc1: packed(&layer.mlp.fc1, kernel)?,
            fc2: packed(&layer.mlp.fc2, kernel)?,
            heads: a.heads,
            head_dim: a.head_dim,
        })
    }

    /// `x` (`[l, D]`, one image) through the layer, in place.
    pub(super) fn forward(&self, x: &mut [f32], l: usize, key_bias: Option<&[f32]>) -> Result<()> {
        let d = self.heads * self.head_dim;
        let unavailable =
            || candle_core::Error::Msg("the packed vision kernels are not available".into());
        let h = layer_norm(x, d, &self.norm1);
        let qkv = self.qkv.matmul(&h, l).ok_or_else(unavailable)?;
        let shape = AttentionShape {
            tokens: l,
            heads: self.heads,
            head_dim: self.head_dim,
        };
        let scale = (self.head_dim as f64).powf(-0.5) as f32;
        let ctx =
            attention_bf16::attention(&qkv, shape, scale, key_bias).ok_or_else(unavailable)?;
        let o = self.out.matmul(&ctx, l).ok_or_else(unavailable)?;
        add_assign(x, &o);
        let h = layer_norm(x, d, &self.norm2);
        let f = self
            .fc1
            .matmul_map(&h, l, OutputMap::GeluTanh)
            .ok_or_else(unavailable)?;
        let o = self.fc2.matmul(&f, l).ok_or_else(unavailable)?;
        add_assign(x, &o);
        Ok(())
    }
}

/// LayerNorm of each `d`-wide row: `(x − mean) / sqrt(var + eps) · w + b`, statistics in f32
/// as Candle's (and PyTorch's) LayerNorm.
fn layer_norm(x: &[f32], d: usize, norm: &NormParams) -> Vec<f32> {
    let (w, b, eps) = (&norm.weight, &norm.bias, norm.eps);
    let mut out = vec![0f32; x.len()];
    out.par_chunks_mut(ROWS_PER_TASK * d)
        .zip(x.par_chunks(ROWS_PER_TASK * d))
        .for_each(|(dst, src)| {
            for (o, r) in dst.chunks_exact_mut(d).zip(src.chunks_exact(d)) {
                let mean = lane_sum(r.iter().copied()) / d as f32;
                let var = lane_sum(r.iter().map(|v| (v - mean) * (v - mean))) / d as f32;
                let inv = 1.0 / (var + eps).sqrt();
                for (((o, v), w), b) in o.iter_mut().zip(r).zip(w).zip(b) {
                    *o = (v - mean) * inv * w + b;
                }
            }
        });
    out
}

/// A sum in sixteen independent lanes, so that it vectorizes.
fn lane_sum(values: impl Iterator<Item = f32>) -> f32 {
    let mut lanes = [0f32; 16];
    for (i, v) in values.enumerate() {
        lanes[i % 16] += v;
    }
    lanes.iter().sum()
}

fn add_assign(x: &mut [f32], y: &[f32]) {
    x.par_chunks_mut(64 * 1024)
        .zip(y.par_chunks(64 * 1024))
        .for_each(|(a, b)| a.iter_mut().zip(b).for_each(|(a, b)| *a += b));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_norm_matches_the_formula() {
        let x = [1.0f32, 2.0, 3.0, 4.0, -1.0, 0.0, 1.0, 2.0];
        let params = NormParams {
            eps: 1e-6,
            weight: vec![1.0, 2.0, 1.0, 1.0],
            bias: vec![0.0, 0.0, 0.5, 0.0],
        };
        let out = layer_norm(&x, 4, &params);
        let (mean, var) = (2.5f32, 1.25f32);
        let inv = 1.0 / (var + 1e-6).sqrt();
        let want = [
            (1.0 - mean) * inv,
            (2.0 - mean) * inv * 2.0,
            (3.0 - mean) * inv + 0.5,
            (4.0 - mean) * inv,
        ];
        for (o, w) in out[..4].iter().zip(want) {
            assert!((o - w).abs() < 1e-5, "{o} vs {w}");
        }
        // The second row is the first shifted by −2: the same normalised values.
        for (a, b) in out[4..].iter().zip(&out[..4]) {
            assert!((a - b).abs() < 1e-5);
        }
    }
}
