//! Building blocks shared by the vision tower and the decoder: linear, norms, activations.

use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Module, Tensor, D};

use crate::config::Activation;
use crate::cpu::gemm_bf16::PackedBf16;
use crate::cpu::qmatmul::int8_act::{Int8Activation, Isa};
use crate::cpu::qmatmul::QMatrix;
use crate::error::Result;
use crate::weights::{MatrixUse, StoredMatrix, Weights};

/// `y = x Wᵀ + b`, with `W` dense (checkpoint `[out, in]` layout) or in a ggml block format.
#[derive(Debug, Clone)]
pub(crate) enum Linear {
    /// A dense matrix; inputs of another dtype are cast to it and back.
    Dense {
        /// `[out, in]`.
        weight: Tensor,
        /// `[out]`.
        bias: Option<Tensor>,
    },
    /// A matrix in a ggml block format, multiplied with f32 activations.
    Quant {
        /// The matrix.
        matrix: Arc<QMatrix>,
        /// `[out]`.
        bias: Option<Tensor>,
    },
}

impl Linear {
    /// The layer whose matrix `weight` (`[out, in]`) and, if `bias`, vector `bias` are under
    /// `w`'s prefix, kept as the checkpoint and the quantization policy keep them.
    pub(crate) fn load(w: &Weights, in_dim: usize, out_dim: usize, bias: bool) -> Result<Self> {
        let bias = if bias {
            Some(w.get(out_dim, "bias")?)
        } else {
            None
        };
        match w.matrix(out_dim, in_dim, MatrixUse::Product)? {
            StoredMatrix::Dense(weight) => Ok(Linear::dense(weight, bias)),
            StoredMatrix::Blocks(q) => Linear::quantized(q, bias, w.dtype()),
        }
    }

    /// A dense layer.
    fn dense(weight: Tensor, bias: Option<Tensor>) -> Self {
        Linear::Dense { weight, bias }
    }

    /// A layer over a ggml tensor: float types become dense matrices in `dtype`, block types
    /// stay quantized.
    fn quantized(q: QTensor, bias: Option<Tensor>, dtype: DType) -> Result<Self> {
        match q.dtype() {
            GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16 => {
                let weight = q.dequantize(&q.device())?.to_dtype(dtype)?;
                Ok(Linear::Dense { weight, bias })
            }
            _ => Ok(Linear::Quant {
                matrix: Arc::new(QMatrix::new(&q)?),
                bias,
            }),
        }
    }

    /// `xs`: `[..., in]` → `[..., out]`, in the dtype of `xs`.
    pub(crate) fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let dtype = xs.dtype();
        let (ys, bias) = match self {
            Linear::Dense { weight, bias } => {
                let x = xs.to_dtype(weight.dtype())?;
                let lin = candle_nn::Linear::new(weight.clone(), None);
                (lin.forward(&x)?, bias)
            }
            Linear::Quant { matrix, bias } => (matrix.forward(xs)?, bias),
        };
        let ys = ys.to_dtype(dtype)?;
        match bias {
            Some(b) => Ok(ys.broadcast_add(b)?),
            None => Ok(ys),
        }
    }
}

impl Linear {
    /// The weight (`[out, in]`, row-major) and bias as f32 values.
    fn to_f32(&self) -> Result<(Vec<f32>, Option<Vec<f32>>)> {
        let (weight, bias) = match self {
            Linear::Dense { weight, bias } => (
                weight
                    .to_dtype(DType::F32)?
                    .flatten_all()?
                    .to_vec1::<f32>()?,
                bias,
            ),
            Linear::Quant { matrix, bias } => (matrix.dequantize(), bias),
        };
        let bias = match bias {
            Some(b) => Some(b.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?),
            None => None,
        };
        Ok((weight, bias))
    }
}

/// Read access to a [`Linear`]'s weight rows for the CPU step kernels (`text_step`): f32 dense
/// rows, or ggml blocks.
pub(crate) enum RowView<'a> {
    Dense {
        storage: candle_core::StorageRef<'a>,
        start: usize,
        in_dim: usize,
    },
    Quant(&'a QMatrix),
}

impl RowView<'_> {
    /// `out[i] = W[first + i] · x` with `x` rounded to 8-bit blocks; `false` (and `out`
    /// untouched) for dense matrices and block types without an int8 kernel.
    pub(crate) fn int8_rows_into(
        &self,
        isa: Isa,
        x: &Int8Activation,
        first: usize,
        out: &mut [f32],
    ) -> bool {
        match self {
            RowView::Dense { .. } => false,
            RowView::Quant(m) => m.int8_rows_into(isa, x, first, out),
        }
    }

    /// Whether [`RowView::int8_rows_into`] takes this matrix.
    pub(crate) fn has_int8_kernel(&self) -> bool {
        matches!(self, RowView::Quant(m) if m.has_int8_kernel())
    }

    /// Whether [`RowView::rows_into`] needs the 32-element block sums of its input.
    pub(crate) fn needs_block_sums(&self) -> bool {
        match self {
            RowView::Dense { .. } => false,
            RowView::Quant(m) => m.needs_block_sums(),
        }
    }

    /// `out[i] = W[first + i] · x`.
    pub(crate) fn rows_into(&self, x: &[f32], sums: &[f32], first: usize, out: &mut [f32]) {
        match self {
            RowView::Dense {
                storage,
                start,
                in_dim,
            } => {
                let candle_core::Storage::Cpu(candle_core::CpuStorage::F32(w)) = &**storage else {
                    // `Linear::row_view` admits only f32 CPU storage.
                    out.fill(f32::NAN);
                    return;
                };
                for (i, y) in out.iter_mut().enumerate() {
                    let row = start + (first + i) * in_dim;
                    *y = crate::cpu::qmatmul::dot(&w[row..row + in_dim], x);
                }
            }
            RowView::Quant(m) => m.dot_rows_into(x, sums, first, out),
        }
    }
}

impl Linear {
    /// The weights as rows for the CPU step kernels: dense f32 contiguous CPU matrices and
    /// block matrices without bias; `None` for anything else (the caller takes the Candle path).
    pub(crate) fn row_view(&self) -> Option<RowView<'_>> {
        match self {
            Linear::Dense { weight, bias: None } => {
                if weight.dtype() != DType::F32 || !weight.device().is_cpu() {
                    return None;
                }
                let (_, in_dim) = weight.dims2().ok()?;
                let (storage, layout) = weight.storage_and_layout();
                let (start, _) = layout.contiguous_offsets()?;
                if !matches!(
                    &*storage,
                    candle_core::Storage::Cpu(candle_core::CpuStorage::F32(_))
                ) {
                    return None;
                }
                Some(RowView::Dense {
                    storage,
                    start,
                    in_dim,
                })
            }
            Linear::Quant { matrix, bias: None } => Some(RowView::Quant(matrix)),
            _ => None,
        }
    }

    /// Whether decode steps can run this matrix on the int8 block-dot kernels.
    pub(crate) fn has_int8_kernel(&self) -> bool {
        matches!(self, Linear::Quant { matrix, bias: None } if matrix.has_int8_kernel())
    }

    /// Calls `f` with a function that writes weight row `r` (`in` values, f32) into a
    /// buffer: straight from f32 storage or ggml blocks, so packers never need an f32 copy of
    /// the whole matrix (other dtypes are converted once).
    pub(crate) fn with_rows<R>(
        &self,
        f: impl FnOnce(&(dyn Fn(usize, &mut [f32]) + Sync)) -> R,
    ) -> Result<R> {
        let (_, k) = self.dims()?;
        match self {
            Linear::Quant { matrix, .. } => Ok(f(&|r, buf| matrix.row(r, buf))),
            Linear::Dense { weight, .. } => {
                let (storage, layout) = weight.storage_and_layout();
                if let (
                    candle_core::Storage::Cpu(candle_core::CpuStorage::F32(w)),
                    Some((start, end)),
                ) = (&*storage, layout.contiguous_offsets())
                {
                    let w = &w[start..end];
                    return Ok(f(&|r, buf| buf.copy_from_slice(&w[r * k..(r + 1) * k])));
                }
                drop(storage);
                let (w, _) = self.to_f32()?;
                Ok(f(&|r, buf| buf.copy_from_slice(&w[r * k..(r + 1) * k])))
            }
        }
    }

    /// The bias as f32 values, if any.
    pub(crate) fn bias_f32(&self) -> Result<Option<Vec<f32>>> {
        let (Linear::Dense { bias, .. } | Linear::Quant { bias, .. }) = self;
        Ok(match bias {
            Some(b) => Some(b.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?),
            None => None,
        })
    }

    /// The weight and bias packed for the BF16 dot-product GEMM; `None` when the CPU lacks
    /// the instructions.
    pub(crate) fn pack_bf16(&self) -> Result<Option<PackedBf16>> {
        if !crate::cpu::gemm_bf16::available() {
            return Ok(None);
        }
        let (n, k) = self.dims()?;
        let packed = self.with_rows(|fill| PackedBf16::from_row_fill(n, k, fill))?;
        Ok(match self.bias_f32()? {
            Some(b) => packed.and_then(|p| p.with_bias(&b)),
            None => packed,
        })
    }

    /// `(out, in)` of the weight matrix.
    pub(crate) fn dims(&self) -> Result<(usize, usize)> {
        Ok(match self {
            Linear::Dense { weight, .. } => weight.dims2()?,
            Linear::Quant { matrix, .. } => matrix.dims(),
        })
    }
}

/// Token embeddings: dense, or quantized rows dequantized on lookup.
#[derive(Debug, Clone)]
pub(crate) enum Embedding {
    /// `[vocab, dim]`; rows come out in `dtype` (the table may be stored narrower).
    Dense {
        /// The matrix.
        table: Tensor,
        /// Output dtype.
        dtype: DType,
    },
    /// `[vocab, dim]` in a ggml block format; rows come out in `dtype`.
    Quant {
        /// The matrix.
        table: Arc<QTensor>,
        /// Output dtype.
        dtype: DType,
    },
}

impl Embedding {
    /// The table `weight` (`[vocab, dim]`) under `w`'s prefix, kept quantized when the file
    /// (or the policy) quantizes it.
    pub(crate) fn load(w: &Weights, vocab: usize, dim: usize) -> Result<Self> {
        match w.matrix(vocab, dim, MatrixUse::Lookup)? {
            StoredMatrix::Dense(table) => Ok(Embedding::dense(table, w.dtype())),
            StoredMatrix::Blocks(q) => Embedding::quantized(Arc::new(q), w.dtype()),
        }
    }

    /// Dense embeddings whose rows come out in `dtype`.
    fn dense(table: Tensor, dtype: DType) -> Self {
        Embedding::Dense { table, dtype }
    }

    /// Embeddings over a ggml tensor (float types are made dense in `dtype`).
    fn quantized(table: Arc<QTensor>, dtype: DType) -> Result<Self> {
        match table.dtype() {
            GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16 => Ok(Embedding::dense(
                table.dequantize(&table.device())?.to_dtype(dtype)?,
                dtype,
            )),
            _ => Ok(Embedding::Quant { table, dtype }),
        }
    }

    /// Ids `[...]` → rows `[..., dim]`.
    pub(crate) fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        match self {
            Embedding::Dense { table, dtype } => {
                let dim = table.dim(1)?;
                let rows = candle_nn::Embedding::new(table.clone(), dim).forward(ids)?;
                Ok(rows.to_dtype(*dtype)?)
            }
            Embedding::Quant { table, dtype } => Ok(table.embedding(ids)?.to_dtype(*dtype)?),
        }
    }

    /// The same matrix as an output projection (tied `lm_head`).
    pub(crate) fn as_linear(&self) -> Result<Linear> {
        Ok(match self {
            Embedding::Dense { table, .. } => Linear::dense(table.clone(), None),
            Embedding::Quant { table, .. } => Linear::Quant {
                matrix: Arc::new(QMatrix::new(table)?),
                bias: None,
            },
        })
    }
}

/// A LayerNorm's parameters as plain values.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NormParams {
    /// Added to the variance.
    pub(crate) eps: f32,
    /// Scale, `[dim]`.
    pub(crate) weight: Vec<f32>,
    /// Shift, `[dim]`.
    pub(crate) bias: Vec<f32>,
}

/// LayerNorm with weight and bias (the vision tower's).
#[derive(Debug, Clone)]
pub(crate) struct LayerNorm {
    inner: candle_nn::LayerNorm,
    eps: f64,
}

impl LayerNorm {
    /// Loads `weight` and `bias` of width `dim` under `w`.
    pub(crate) fn load(w: &Weights, dim: usize, eps: f64) -> Result<Self> {
        let weight = w.get(dim, "weight")?;
        let bias = w.get(dim, "bias")?;
        Ok(LayerNorm {
            inner: candle_nn::LayerNorm::new(weight, bias, eps),
            eps,
        })
    }

    /// The epsilon, weight and bias as f32 values.
    pub(crate) fn params(&self) -> Result<NormParams> {
        let values = |t: &Tensor| -> Result<Vec<f32>> {
            Ok(t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?)
        };
        let weight = values(self.inner.weight())?;
        let bias = match self.inner.bias() {
            Some(b) => values(b)?,
            None => vec![0.0; weight.len()],
        };
        Ok(NormParams {
            eps: self.eps as f32,
            weight,
            bias,
        })
    }

    /// Normalises over the last dimension.
    pub(crate) fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        Ok(self.inner.forward(xs)?)
    }
}

/// Llama's RMSNorm: statistics in f32, scale applied in the activation dtype.
#[derive(Debug, Clone)]
pub(crate) struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    /// Loads `weight` of width `dim` under `w`.
    pub(crate) fn load(w: &Weights, dim: usize, eps: f64) -> Result<Self> {
        Ok(RmsNorm {
            weight: w.get(dim, "weight")?,
            eps,
        })
    }

    /// The scale as f32 values (for the CPU step kernels).
    pub(crate) fn weight_f32(&self) -> Result<Vec<f32>> {
        Ok(self.weight.to_dtype(DType::F32)?.to_vec1::<f32>()?)
    }

    /// The epsilon added to the mean square.
    pub(crate) fn eps(&self) -> f64 {
        self.eps
    }

    /// `weight * (x / sqrt(mean(x²) + eps))` over the last dimension.
    pub(crate) fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let dtype = xs.dtype();
        // Ref: LlamaRMSNorm upcasts to f32 for the statistics and casts back before the scale.
        let x = xs.to_dtype(DType::F32)?;
        let var = x.sqr()?.mean_keepdim(D::Minus1)?;
        let normed = x
            .broadcast_div(&(var + self.eps)?.sqrt()?)?
            .to_dtype(dtype)?;
        Ok(normed.broadcast_mul(&self.weight)?)
    }
}

/// Applies an activation.
pub(crate) fn activate(xs: &Tensor, act: Activation) -> Result<Tensor> {
    Ok(match act {
        Activation::GeluTanh => crate::cpu::fastmath::gelu_tanh(xs)?,
        Activation::GeluErf => xs.gelu_erf()?,
        Activation::Silu => candle_nn::ops::silu(xs)?,
    })
}
