//! `ask` and `describe`: images or videos and a question → a streamed answer, in a fresh
//! conversation.

use std::ops::ControlFlow;

use crate::{
    CancelToken, Content, Engine, Event, GenerateOptions, Generation, ImageInput, Message, Result,
    Role,
};

/// The question `describe` asks.
pub const DESCRIBE_PROMPT: &str = "Can you describe this image?";

/// The question `describe` asks when a video is among the inputs (the wording of the
/// SmolVLM2 model card's video example).
const DESCRIBE_VIDEO_PROMPT: &str = "Describe this video in detail";

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

/// Asks `question` about `parts` (images and videos, in order; none for a text-only
/// question) in a new conversation.
pub fn ask_parts(
    engine: &Engine,
    mut parts: Vec<Content>,
    question: &str,
    opts: &GenerateOptions,
    cancel: &CancelToken,
    on_event: &mut dyn FnMut(Event<'_>) -> ControlFlow<()>,
) -> Result<Generation> {
    if !question.is_empty() || parts.is_empty() {
        parts.push(Content::Text(question.to_string()));
    }
    let mut session = engine.session();
    session.send_streaming(Message::new(Role::User, parts), opts, cancel, on_event)
}

/// Describes `parts` with [`DESCRIBE_PROMPT`], or `DESCRIBE_VIDEO_PROMPT` when one of
/// them is a video.
pub fn describe_parts(
    engine: &Engine,
    parts: Vec<Content>,
    opts: &GenerateOptions,
    cancel: &CancelToken,
    on_event: &mut dyn FnMut(Event<'_>) -> ControlFlow<()>,
) -> Result<Generation> {
    let prompt = if parts.iter().any(|p| matches!(p, Content::Video(_))) {
        DESCRIBE_VIDEO_PROMPT
    } else {
        DESCRIBE_PROMPT
    };
    ask_parts(engine, parts, prompt, opts, cancel, on_event)
}
