//! Swift, Kotlin and Python bindings (feature `uniffi`): the runtime API as UniFFI objects
//! ([`VlmEngine`] → [`VlmSession`]), records and enums, with text and progress streamed to a
//! [`VlmListener`] implemented in the foreign language and a [`VlmCancelToken`] that any thread
//! may set. `bindings/` holds the generated Swift and Kotlin sources; see its README.
//!
//! The error type (error.rs), the records and enums that cross the boundary (types.rs), the
//! listener and cancel token (listener.rs), and the two objects, [`VlmEngine`] (engine.rs) and
//! [`VlmSession`] (session.rs), each have their own file.
//!
//! ```python
//! import threading, vlm
//!
//! class Printer(vlm.VlmListener):
//!     def on_token(self, text): print(text, end="", flush=True)
//!     def on_progress(self, progress): pass
//!
//! engine = vlm.VlmEngine.load("model.gguf", "mmproj.gguf")
//! cancel = vlm.VlmCancelToken()
//! answer = engine.session().describe(vlm.VlmImage.PATH("photo.png"), vlm.VlmGenerateOptions(), Printer(), cancel)
//! print(answer.finish)
//! ```

mod engine;
mod error;
mod listener;
mod session;
mod types;

pub use engine::VlmEngine;
pub use error::VlmError;
pub use listener::{VlmCancelToken, VlmListener};
pub use session::VlmSession;
pub use types::{
    VlmAnswer, VlmEngineOptions, VlmFinishReason, VlmGenerateOptions, VlmImage, VlmLoadStage,
    VlmProgress,
};

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
