//! The foreign side's hold on a running call: a [`VlmListener`] it implements → text and
//! progress as they come; a [`VlmCancelToken`] it sets from any thread → the generation stops.

use std::sync::Arc;

#[cfg(doc)]
use super::VlmFinishReason;
use super::{VlmError, VlmProgress};
use crate::generate::CancelToken;

/// Receives a generation's text as it is produced, and progress reports. Implemented in the
/// foreign language; called on the thread that made the call. An error raised here stops the
/// generation and is returned as [`VlmError::Listener`].
#[uniffi::export(callback_interface)]
pub trait VlmListener: Send + Sync {
    /// The next piece of text (whole UTF-8 characters).
    fn on_token(&self, text: String) -> Result<(), VlmError>;
    /// A stage advanced.
    fn on_progress(&self, progress: VlmProgress) -> Result<(), VlmError>;
}

/// A cancellation flag: set it from any thread and a running generation that was given it
/// ends after the current token with [`VlmFinishReason::Cancelled`] and the text so far.
#[derive(Debug, Default, uniffi::Object)]
pub struct VlmCancelToken {
    pub(super) token: CancelToken,
}

#[uniffi::export]
impl VlmCancelToken {
    /// A flag that is not set.
    #[uniffi::constructor]
    pub fn new() -> Arc<Self> {
        Arc::new(VlmCancelToken::default())
    }

    /// Sets the flag.
    pub fn cancel(&self) {
        self.token.cancel();
    }

    /// Whether the flag is set.
    pub fn is_cancelled(&self) -> bool {
        self.token.is_cancelled()
    }
}
