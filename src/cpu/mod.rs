//! CPU kernels behind the model's hot paths: the BF16 dot-product GEMM and the fused vision
//! attention built on it, a decode step's attention over the key/value cache, ggml block dot
//! products for quantized matrices (f32 or 8-bit activations), and elementwise math
//! (tanh-GELU, softmax).
//!
//! Candle's CPU backend either lacks these paths or computes them in a way that is slower or
//! drifts from transformers' arithmetic; each file says which. The instruction set is picked at
//! run time from CPU detection, never from compile-time target features, so one binary runs
//! everywhere: the BF16 kernels are opted into once when the model loads, the others dispatch
//! on the detection result, which the standard library caches after the first call.
//!
//! The module is `pub(crate)` so the kernels stay out of the public API and can change freely:
//! the model definitions (`model/`) are their only callers. The few items the crate's
//! own benches and tests time or check are `pub` only so that `crate::bench_api` can re-export
//! them.

pub(crate) mod attention_bf16;
pub(crate) mod decode_attention;
pub(crate) mod fastmath;
pub(crate) mod features;
pub(crate) mod gemm_bf16;
pub(crate) mod gemm_i8;
pub(crate) mod qmatmul;
pub(crate) mod team;

/// An elementwise function a GEMM applies to its output block by block, while each block is
/// still in the core's cache: a separate pass would read and write the whole product again
/// (for the vision MLP's `[1024, 3072]` that pass took 8 % of a layer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OutputMap {
    /// The sums as they are.
    Identity,
    /// tanh-approximated GELU.
    GeluTanh,
}

impl OutputMap {
    pub(crate) fn apply(self, xs: &mut [f32]) {
        match self {
            OutputMap::Identity => {}
            OutputMap::GeluTanh => fastmath::gelu_tanh_in_place(xs),
        }
    }
}
