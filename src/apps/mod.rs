//! Tasks built only on the public API (what `vlm::` re-exports), as an app embedding the crate
//! would write them. The command-line tool is a thin front end over these.

mod ask;
pub mod bench;
pub mod compare;
mod inspect;
mod quantize;
pub mod synth;

pub use ask::{ask, ask_parts, describe, describe_parts, DESCRIBE_PROMPT};
pub use inspect::{inspect, ImageReport, Inspection};
pub use quantize::{quantize, QuantizeOptions, QuantizeProgress, QuantizeReport, QuantizedFile};
pub use synth::{synth, SynthOptions, SynthReport, SynthStep};
