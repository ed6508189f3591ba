//! A [`crate::Error`] → a [`VlmError`] of the same category with its message; an error a
//! foreign listener raised → [`VlmError::Listener`].

use crate::error::Category;

/// Why a call failed. Every variant carries a one-line message naming the input (a file, an
/// image, an option) and the problem.
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum VlmError {
    /// The model files are missing, corrupt or of an unsupported kind.
    #[error("{message}")]
    Load {
        /// What is wrong.
        message: String,
    },
    /// The input (an image, the prompt, an option) cannot be used.
    #[error("{message}")]
    Input {
        /// What is wrong.
        message: String,
    },
    /// Something failed while running the model.
    #[error("{message}")]
    Runtime {
        /// What is wrong.
        message: String,
    },
    /// The listener raised an error. The generation was stopped there; the conversation
    /// keeps the message and the partial answer.
    #[error("{message}")]
    Listener {
        /// The error the listener raised, as text.
        message: String,
    },
}

impl From<crate::Error> for VlmError {
    fn from(e: crate::Error) -> Self {
        let message = e.to_string();
        match e.category() {
            Category::Load => VlmError::Load { message },
            Category::Input => VlmError::Input { message },
            Category::Runtime => VlmError::Runtime { message },
        }
    }
}

// A foreign listener that raises something other than a `VlmError` arrives here, so that its
// failure is reported to the caller instead of becoming a panic.
impl From<uniffi::UnexpectedUniFFICallbackError> for VlmError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        VlmError::Listener { message: e.reason }
    }
}
