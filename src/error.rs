//! The one error type of the library: every failure names its input and what is wrong with it.

use std::path::PathBuf;

/// Errors returned by every fallible function of `vlm`.
///
/// ```
/// use vlm::{Category, Engine, Error, ModelSource};
///
/// match Engine::load(ModelSource::dir("no/such/model"), Default::default()) {
///     Err(e @ Error::MissingFile { .. }) => {
///         assert_eq!(e.category(), Category::Load);
///         assert_eq!(e.to_string(), "no/such/model: not found");
///     }
///     Err(e) => panic!("unexpected error: {e}"),
///     Ok(_) => panic!("loaded a model that does not exist"),
/// }
/// ```
///
/// Variants are grouped by who can fix the problem (see [`Error::category`]):
/// the model files, the caller's input, or the runtime. Messages are lowercase,
/// name the offending file, tensor or option, and carry the values involved.
/// The enum is `#[non_exhaustive]` so new variants can be added without a
/// breaking release.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // ---- load: the model files are wrong or missing ----
    /// A file the model needs is not there.
    #[error("{}: not found", .path.display())]
    MissingFile {
        /// The file that was looked for.
        path: PathBuf,
    },
    /// A configuration file exists but cannot be used.
    #[error("{}: {problem}", .path.display())]
    InvalidConfig {
        /// The configuration file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// The checkpoint is of a model family this runtime does not run.
    #[error("{}: unsupported model type `{found}` (expected `smolvlm` or `idefics3`)", .path.display())]
    UnsupportedModel {
        /// The config file that names the model type.
        path: PathBuf,
        /// The `model_type` found there.
        found: String,
    },
    /// A weight file is unreadable, truncated or not in the expected format.
    #[error("{}: {problem}", .path.display())]
    WeightFile {
        /// The weight file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// A tensor is missing or has the wrong shape or type.
    #[error("weight `{name}`: {problem}")]
    Weight {
        /// The checkpoint name of the tensor.
        name: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The tokenizer could not be loaded or used.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// The chat template could not be parsed or rendered.
    #[error("chat template: {0}")]
    Template(String),
    /// A file could not be fetched from the Hugging Face Hub, or its cached copy is corrupt.
    #[error("{repo}{}: {problem}", file_suffix(.file))]
    Hub {
        /// The repository, `owner/name`.
        repo: String,
        /// The file inside it (empty for repository-level failures).
        file: String,
        /// What went wrong.
        problem: String,
    },
    /// Offline, and files the model needs are not in the Hugging Face cache.
    #[error("offline, and the Hugging Face cache {} lacks {}", .cache.display(), .missing.join(", "))]
    NotCached {
        /// The cache directory that was searched.
        cache: PathBuf,
        /// `repo/file` of every missing file, with its size when known.
        missing: Vec<String>,
    },
    /// The chosen device's backend is not in this build (see [`crate::DeviceChoice`]).
    #[error("device `{device}` is not compiled in; rebuild vlm with `--features {feature}`")]
    DeviceNotCompiled {
        /// The device, e.g. `cuda:0`.
        device: String,
        /// The cargo feature that adds its backend.
        feature: &'static str,
    },
    /// The chosen device's backend is built in but the device cannot be opened (no such GPU,
    /// no driver).
    #[error("device `{device}`: {problem}")]
    Device {
        /// The device, e.g. `cuda:1`.
        device: String,
        /// What the backend reported.
        problem: String,
    },

    // ---- input: the caller passed something unusable ----
    /// An image could not be read or decoded, or is too large.
    #[error("image {origin}: {problem}")]
    Image {
        /// Where the image came from (a path, or a description such as "bytes #2").
        origin: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A video could not be read or decoded, or is of a kind that is not supported.
    #[error("video {origin}: {problem}")]
    Video {
        /// Where the video came from (a path, or a description of frames in memory).
        origin: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The number of image markers in the prompt does not match the number of images.
    #[error("prompt has {markers} <image> markers but {images} images were given")]
    ImageCount {
        /// `<image>` markers found in the rendered prompt.
        markers: usize,
        /// Images supplied.
        images: usize,
    },
    /// The prompt (with its image tokens) does not fit the context window.
    #[error("the prompt is {tokens} tokens ({image_tokens} of them image tokens) but the context window is {limit} tokens; shorten the conversation, use fewer images or turn image splitting off")]
    ContextOverflow {
        /// Prompt length in tokens, image tokens included.
        tokens: usize,
        /// How many of those are image tokens.
        image_tokens: usize,
        /// The model's context window.
        limit: usize,
    },
    /// A model name is not a local path, a registry alias or a Hub repository id.
    #[error("no model `{spec}`: {}{}", .tried.join("; "), .suggestion.as_ref().map(|s| format!("; did you mean `{s}`?")).unwrap_or_default())]
    UnknownModel {
        /// The name as given.
        spec: String,
        /// What was tried, in order, and why it did not match.
        tried: Vec<String>,
        /// The nearest registry alias, when one is close.
        suggestion: Option<String>,
    },
    /// An option has a value outside its domain.
    #[error("invalid option `{name}`: {reason}")]
    InvalidOption {
        /// The option's name.
        name: &'static str,
        /// Why the value is rejected.
        reason: String,
    },

    // ---- runtime ----
    /// A tensor operation failed.
    #[error("tensor operation: {0}")]
    Tensor(#[from] candle_core::Error),
    /// Reading a file failed.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file being read.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

fn file_suffix(file: &str) -> String {
    if file.is_empty() {
        String::new()
    } else {
        format!(": {file}")
    }
}

/// Who can fix an [`Error`]: a command-line tool may exit with 1 for `Load` and `Runtime`
/// and 2 for `Input`; a server may answer 503, 500 and 400.
///
/// ```
/// use vlm::{Category, ImageInput};
///
/// let short = ImageInput::rgb8(2, 2, vec![0; 5]).unwrap_err();
/// assert_eq!(short.category(), Category::Input);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    /// The model files are missing, corrupt or of an unsupported kind.
    Load,
    /// The caller's input (image, prompt, option) is unusable.
    Input,
    /// Something failed while running.
    Runtime,
}

impl Error {
    /// Which party can fix this error.
    ///
    /// ```
    /// # use vlm::{Category, Error};
    /// let e = Error::InvalidOption { name: "max-tokens", reason: "0 would generate nothing".into() };
    /// assert_eq!(e.category(), Category::Input);
    /// ```
    pub fn category(&self) -> Category {
        match self {
            Error::MissingFile { .. }
            | Error::InvalidConfig { .. }
            | Error::UnsupportedModel { .. }
            | Error::WeightFile { .. }
            | Error::Weight { .. }
            | Error::Tokenizer(_)
            | Error::Template(_)
            | Error::Hub { .. }
            | Error::NotCached { .. }
            | Error::DeviceNotCompiled { .. }
            | Error::Device { .. } => Category::Load,
            Error::Image { .. }
            | Error::Video { .. }
            | Error::UnknownModel { .. }
            | Error::ImageCount { .. }
            | Error::ContextOverflow { .. }
            | Error::InvalidOption { .. } => Category::Input,
            Error::Tensor(_) | Error::Io { .. } => Category::Runtime,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// Reads a text file; a missing one is [`Error::MissingFile`], any other failure
/// [`Error::Io`], both naming the path.
pub(crate) fn read_text(path: &std::path::Path) -> Result<String> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(s),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::MissingFile {
            path: path.to_path_buf(),
        }),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
