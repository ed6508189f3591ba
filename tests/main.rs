//! The single integration-test binary: one link of Candle for every suite.

mod common;

// Model numerics against transformers on the committed tiny checkpoints.
mod parity;
