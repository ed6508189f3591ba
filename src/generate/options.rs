//! [`GenerateOptions`]: how one answer is generated (sampling, stop strings, constraint, token
//! limits), checked before any work starts.

use super::{Constraint, Sampling};
use crate::error::{Error, Result};

/// Options of one generation.
///
/// ```
/// use vlm::{GenerateOptions, Sampling};
///
/// let opts = GenerateOptions {
///     max_new_tokens: 64,
///     sampling: Sampling::Random { temperature: 0.7, top_k: Some(40), top_p: Some(0.9), min_p: None },
///     stop: vec!["\n\n".into()],
///     ..GenerateOptions::default()
/// };
/// opts.validate()?;
/// # Ok::<(), vlm::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateOptions {
    /// Upper bound on generated tokens (at least 1).
    pub max_new_tokens: usize,
    /// Greedy or sampled decoding.
    pub sampling: Sampling,
    /// Repetition penalty (1 = off).
    pub repetition_penalty: f32,
    /// Seed of the sampler.
    pub seed: u64,
    /// Keep generating past end-of-sequence tokens (for benchmarks and parity checks).
    pub ignore_eos: bool,
    /// Extra strings that end generation; the text is cut before them.
    pub stop: Vec<String>,
    /// Only generate text this constraint allows; generation ends when it is complete.
    pub constraint: Option<Constraint>,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            max_new_tokens: 256,
            sampling: Sampling::Greedy,
            repetition_penalty: 1.0,
            seed: 0,
            ignore_eos: false,
            stop: Vec::new(),
            constraint: None,
        }
    }
}

impl GenerateOptions {
    /// Checks every option is in its domain ([`crate::Session::send`] does too).
    ///
    /// ```
    /// let none = vlm::GenerateOptions { max_new_tokens: 0, ..Default::default() };
    /// assert!(matches!(none.validate(), Err(vlm::Error::InvalidOption { name: "max-tokens", .. })));
    /// ```
    pub fn validate(&self) -> Result<()> {
        if self.max_new_tokens == 0 {
            return Err(Error::InvalidOption {
                name: "max-tokens",
                reason: "0 would generate nothing; use at least 1".into(),
            });
        }
        self.sampling.validate()
    }
}
