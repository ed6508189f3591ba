//! The single integration-test binary: one link of Candle for every suite.

mod common;

// Model numerics against transformers on the committed tiny checkpoints.
mod parity;
// Prompts, token ids and pixel values against transformers' processor.
mod processor;
// Transparency and pixel modes: `load_image`'s `convert("RGB")` and the pixels after it.
mod alpha;
// Generation through the public API.
mod generate;
// The command-line tool: outputs, exit codes, bad input.
mod cli;
// GGUF pairs against safetensors and transformers.
mod gguf;
// GGUF tokenizer metadata against the real SmolLM2 file.
mod gguf_tokenizer;
// Quantize-on-load of safetensors checkpoints.
mod quant_load;
// The real SmolLM2-135M-Instruct Q4_1 weights.
mod real_weights;
// `vlm quantize`: checkpoint directories → GGUF pairs.
mod quantize;
// Models from a Hub served on loopback: download, cache, offline, corruption, resolution.
#[cfg(feature = "hub")]
mod hub;
// `vlm compare`: screenshots → comparison cards, with a scripted model and the tiny one.
mod compare;
mod compare_model;
// The library's boundaries, read off the source.
mod architecture;
// Synthetic models: in memory, written by `vlm synth`, and benchmarked.
mod synthetic;
// The lean library build: no CLI, network, async or C regex crates in `cargo tree`.
mod lean_build;
// The C interface: generated header, C programs against the static library.
mod ffi;
// `vlm serve`: the OpenAI-compatible API and background jobs over real HTTP.
#[cfg(feature = "server")]
mod serve;
// Loading: progress steps, devices not compiled in.
mod engine_load;
// The UniFFI bindings: Python against the tiny model, committed Swift/Kotlin sources current.
mod bindings;
// The examples' logic (streaming and cancellation, multi-turn chat, raw camera frames).
mod examples;
// Video: frame sampling and prompts, frame directories and animations against transformers.
mod video;
