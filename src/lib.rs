//! vlm: a local runtime for SmolVLM / SmolVLM2 vision-language models, built on Candle.
//!
//! Data flows one way:
//!
//! ```text
//! image file ─► processor (decode, EXIF, resize, tiles, normalize; prompt expansion) ─► tokenizer
//!            ─► model (vision tower ─► connector ─► merge into text embeddings ─► decoder + KV cache)
//!            ─► generate (sampler, stop, streaming) ─► text
//! ```
//!
//! [`Engine`] holds a loaded model (immutable, `Send + Sync`); a [`Session`] is one
//! conversation on it.
//!
//! ```no_run
//! use vlm::{Engine, EngineOptions, GenerateOptions, ImageInput, Message, ModelSource};
//!
//! let engine = Engine::load(ModelSource::dir("SmolVLM2-256M-Video-Instruct"), EngineOptions::default())?;
//! let mut session = engine.session();
//! let message = Message::user([ImageInput::Path("photo.png".into())], "Describe this image.");
//! let answer = session.send(message, &GenerateOptions::default())?;
//! println!("{}", answer.text);
//! # Ok::<(), vlm::Error>(())
//! ```
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::todo,
        clippy::unimplemented,
        clippy::print_stdout,
        clippy::print_stderr
    )
)]
#![warn(missing_docs)]

#[cfg(feature = "accelerate")]
extern crate accelerate_src;
#[cfg(feature = "mkl")]
extern crate intel_mkl_src;

pub mod apps;
pub(crate) mod config;
pub(crate) mod cpu;
pub(crate) mod device;
pub mod embed;
pub mod embedding_cache;
pub mod engine;
pub(crate) mod error;
pub(crate) mod features;
#[cfg(feature = "ffi")]
pub mod ffi;
pub mod generate;
#[cfg(feature = "hub")]
pub mod hub;
pub mod model;
pub(crate) mod paths;
pub mod processor;
pub mod registry;
#[cfg(feature = "server")]
pub mod server;
pub(crate) mod session;
pub mod synthetic;
pub mod threads;
#[cfg(feature = "uniffi")]
pub mod uniffi_api;
pub(crate) mod units;
// `vlm::video` is where video input has always been named from; the code lives in
// `processor::media`.
pub use processor::media::video;
pub mod weights;

// The UniFFI scaffolding (namespace `vlm`) that the exported items of `uniffi_api` plug into.
#[cfg(feature = "uniffi")]
uniffi::setup_scaffolding!("vlm");

pub use cpu::features::{CpuFeatures, TilePermission};
pub use device::DeviceChoice;
pub use embedding_cache::EmbeddingCache;
pub use engine::{
    DecodeCompute, Dtype, Engine, EngineOptions, ModelInfo, ModelSource, Precision, PrefillCompute,
    VisionCompute,
};
pub use error::{Category, Error, Result};
pub use features::{ImageEmbedding, VideoEmbedding};
pub use generate::{
    CancelToken, Constraint, Event, FinishReason, GenerateOptions, Generation, LoadStage, Progress,
    Sampling, Timings, Usage,
};
pub use processor::chat::{Content, Message, Role};
pub use processor::image::{AlphaMode, ImageInput, ImageLimits};
pub use processor::ProcessorOptions;
pub use session::Session;
pub use video::VideoInput;

/// For the crate's own benches and tests only: the CPU kernels they time or check directly.
/// Not a stable API; it changes whenever the kernels do.
#[doc(hidden)]
pub mod bench_api {
    pub use crate::cpu::attention_bf16::{attention, AttentionShape};
    pub use crate::cpu::gemm_bf16::{available as bf16_available, PackedBf16};
    pub use crate::cpu::gemm_i8::{available as i8_available, PackedI8};
    pub use crate::cpu::qmatmul::QMatrix;
}
