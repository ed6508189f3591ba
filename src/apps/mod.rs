//! Tasks built only on the public API (what `vlm::` re-exports), as an app embedding the crate
//! would write them. The command-line tool is a thin front end over these.

pub mod ask;

pub use ask::{ask, describe, DESCRIBE_PROMPT};
