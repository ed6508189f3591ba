//! A message (images, prompt, options) on a [`VlmSession`] → a [`VlmAnswer`], with text and
//! progress streamed to the listener and the cancel token checked after every token.

use std::ops::ControlFlow;
use std::sync::{Arc, Mutex, MutexGuard};

#[cfg(doc)]
use super::VlmEngine;
use super::{
    VlmAnswer, VlmCancelToken, VlmError, VlmGenerateOptions, VlmImage, VlmListener, VlmProgress,
};
use crate::apps::DESCRIBE_PROMPT;
use crate::generate::{CancelToken, Event};
use crate::processor::chat::Message;
use crate::processor::ProcessorOptions;
use crate::session::Session;

/// One conversation on a [`VlmEngine`]: each message sees the ones before it. Calls on one
/// session run one at a time; use a session per thread for parallel conversations.
#[derive(uniffi::Object)]
pub struct VlmSession {
    pub(super) session: Mutex<Session>,
    /// The engine's processor settings, which each call's `image_splitting` adjusts.
    pub(super) processor: ProcessorOptions,
}

#[uniffi::export]
impl VlmSession {
    /// Sends `prompt` after `images` and returns the answer. `listener` (optional) is given
    /// the text as it is produced; `cancel` (optional) stops the generation when set from any
    /// thread, and the answer then holds the text so far. On error the conversation is left
    /// as it was.
    pub fn ask(
        &self,
        images: Vec<VlmImage>,
        prompt: String,
        options: VlmGenerateOptions,
        listener: Option<Box<dyn VlmListener>>,
        cancel: Option<Arc<VlmCancelToken>>,
    ) -> Result<VlmAnswer, VlmError> {
        let images = images
            .into_iter()
            .map(VlmImage::into_input)
            .collect::<Result<Vec<_>, _>>()?;
        let message = Message::user(images, prompt);
        let opts = options.to_options();
        let cancel = cancel.map_or_else(CancelToken::new, |c| c.token.clone());
        let mut failure = None;
        let mut on_event = |event: Event<'_>| {
            let Some(listener) = &listener else {
                return ControlFlow::Continue(());
            };
            let told = match event {
                Event::Token(text) => listener.on_token(text.to_string()),
                Event::Progress(p) => match VlmProgress::from_progress(p) {
                    Some(p) => listener.on_progress(p),
                    None => Ok(()),
                },
            };
            match told {
                Ok(()) => ControlFlow::Continue(()),
                Err(e) => {
                    failure = Some(e);
                    ControlFlow::Break(())
                }
            }
        };
        let mut session = self.lock();
        session.set_processor_options(ProcessorOptions {
            image_splitting: options.image_splitting,
            ..self.processor.clone()
        });
        let result = session.send_streaming(message, &opts, &cancel, &mut on_event);
        if let Some(e) = failure {
            return Err(e);
        }
        Ok(result?.into())
    }

    /// Asks the model to describe `image` (the question `vlm describe` asks).
    pub fn describe(
        &self,
        image: VlmImage,
        options: VlmGenerateOptions,
        listener: Option<Box<dyn VlmListener>>,
        cancel: Option<Arc<VlmCancelToken>>,
    ) -> Result<VlmAnswer, VlmError> {
        self.ask(
            vec![image],
            DESCRIBE_PROMPT.to_string(),
            options,
            listener,
            cancel,
        )
    }

    /// Forgets the conversation so far.
    pub fn reset(&self) {
        self.lock().reset();
    }
}

impl VlmSession {
    /// The session. A call that panicked (the foreign caller got an internal error) may have
    /// left the conversation half-updated, so after one the conversation starts over.
    fn lock(&self) -> MutexGuard<'_, Session> {
        match self.session.lock() {
            Ok(session) => session,
            Err(poisoned) => {
                let mut session = poisoned.into_inner();
                session.reset();
                self.session.clear_poison();
                session
            }
        }
    }
}
