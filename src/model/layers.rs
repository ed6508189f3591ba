//! Building blocks shared by the vision tower and the decoder: linear, norms, activations.

use candle_core::{DType, Module, Tensor, D};

use crate::config::Activation;
use crate::error::Result;
use crate::weights::Weights;

/// `y = x Wᵀ + b`. Weights keep the checkpoint's `[out, in]` layout.
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    /// Loads `weight` (and `bias` when `bias` is true) under `w`.
    pub fn load(w: &Weights, in_dim: usize, out_dim: usize, bias: bool) -> Result<Self> {
        let weight = w.get((out_dim, in_dim), "weight")?;
        let bias = if bias {
            Some(w.get(out_dim, "bias")?)
        } else {
            None
        };
        Ok(Linear { weight, bias })
    }

    /// Wraps an existing `[out, in]` matrix (tied embeddings).
    pub fn from_weight(weight: Tensor) -> Self {
        Linear { weight, bias: None }
    }

    /// `xs`: `[..., in]` → `[..., out]`.
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let lin = candle_nn::Linear::new(self.weight.clone(), self.bias.clone());
        Ok(lin.forward(xs)?)
    }
}

/// LayerNorm with weight and bias (the vision tower's).
#[derive(Debug, Clone)]
pub struct LayerNorm {
    inner: candle_nn::LayerNorm,
}

impl LayerNorm {
    /// Loads `weight` and `bias` of width `dim` under `w`.
    pub fn load(w: &Weights, dim: usize, eps: f64) -> Result<Self> {
        let weight = w.get(dim, "weight")?;
        let bias = w.get(dim, "bias")?;
        Ok(LayerNorm {
            inner: candle_nn::LayerNorm::new(weight, bias, eps),
        })
    }

    /// Normalises over the last dimension.
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        Ok(self.inner.forward(xs)?)
    }
}

/// Llama's RMSNorm: statistics in f32, scale applied in the activation dtype.
#[derive(Debug, Clone)]
pub struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    /// Loads `weight` of width `dim` under `w`.
    pub fn load(w: &Weights, dim: usize, eps: f64) -> Result<Self> {
        Ok(RmsNorm {
            weight: w.get(dim, "weight")?,
            eps,
        })
    }

    /// `weight * (x / sqrt(mean(x²) + eps))` over the last dimension.
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
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
pub fn activate(xs: &Tensor, act: Activation) -> Result<Tensor> {
    Ok(match act {
        Activation::GeluTanh => xs.gelu()?,
        Activation::GeluErf => xs.gelu_erf()?,
        Activation::Silu => candle_nn::ops::silu(xs)?,
    })
}
