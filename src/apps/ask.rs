//! `ask` and `describe`: images and a question → a streamed answer, in a fresh conversation.

use std::ops::ControlFlow;

use crate::{CancelToken, Engine, Event, GenerateOptions, Generation, ImageInput, Message, Result};

/// The question `describe` asks.
pub const DESCRIBE_PROMPT: &str = "Can you describe this image?";

/// Asks `question` about `images` (none for a text-only question) in a new conversation.
/// `on_event` sees the answer as it is produced.
pub fn ask(
    engine: &Engine,
    images: Vec<ImageInput>,
    question: &str,
    opts: &GenerateOptions,
    cancel: &CancelToken,
    on_event: &mut dyn FnMut(Event<'_>) -> ControlFlow<()>,
) -> Result<Generation> {
    let mut session = engine.session();
    session.send_streaming(Message::user(images, question), opts, cancel, on_event)
}

/// Describes `images` with [`DESCRIBE_PROMPT`].
pub fn describe(
    engine: &Engine,
    images: Vec<ImageInput>,
    opts: &GenerateOptions,
    cancel: &CancelToken,
    on_event: &mut dyn FnMut(Event<'_>) -> ControlFlow<()>,
) -> Result<Generation> {
    ask(engine, images, DESCRIBE_PROMPT, opts, cancel, on_event)
}
