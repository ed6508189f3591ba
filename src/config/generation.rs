//! `generation_config.json` → end-of-sequence ids and the checkpoint's default sampling.

use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};

/// What the checkpoint says about generation. Every field is optional in the file.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct GenerationConfig {
    /// Token ids that end generation.
    pub(crate) eos_token_ids: Vec<u32>,
    /// Padding id.
    pub(crate) pad_token_id: Option<u32>,
    /// Whether the checkpoint samples by default (greedy otherwise).
    pub(crate) do_sample: bool,
    /// Default temperature.
    pub(crate) temperature: Option<f32>,
    /// Default top-k.
    pub(crate) top_k: Option<usize>,
    /// Default top-p.
    pub(crate) top_p: Option<f32>,
    /// Default repetition penalty.
    pub(crate) repetition_penalty: Option<f32>,
    /// Default number of new tokens.
    pub(crate) max_new_tokens: Option<usize>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(u32),
    Many(Vec<u32>),
}

#[derive(Deserialize)]
struct RawGeneration {
    eos_token_id: Option<OneOrMany>,
    pad_token_id: Option<u32>,
    do_sample: Option<bool>,
    temperature: Option<f32>,
    top_k: Option<usize>,
    top_p: Option<f32>,
    repetition_penalty: Option<f32>,
    max_new_tokens: Option<usize>,
}

impl GenerationConfig {
    /// Parses `generation_config.json` text. `path` is only used in error messages.
    pub(crate) fn parse(json: &str, path: &Path) -> Result<Self> {
        let raw: RawGeneration = serde_json::from_str(json).map_err(|e| Error::InvalidConfig {
            path: path.to_path_buf(),
            problem: format!("not a valid generation config: {e}"),
        })?;
        Ok(GenerationConfig {
            eos_token_ids: match raw.eos_token_id {
                None => Vec::new(),
                Some(OneOrMany::One(id)) => vec![id],
                Some(OneOrMany::Many(ids)) => ids,
            },
            pad_token_id: raw.pad_token_id,
            do_sample: raw.do_sample.unwrap_or(false),
            temperature: raw.temperature,
            top_k: raw.top_k,
            top_p: raw.top_p,
            repetition_penalty: raw.repetition_penalty,
            max_new_tokens: raw.max_new_tokens,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eos_may_be_a_list() {
        let g =
            GenerationConfig::parse(r#"{"eos_token_id":[2,7],"bos_token_id":0}"#, Path::new("g"))
                .unwrap();
        assert_eq!(g.eos_token_ids, vec![2, 7]);
        let g =
            GenerationConfig::parse(r#"{"eos_token_id":49279,"pad_token_id":2}"#, Path::new("g"))
                .unwrap();
        assert_eq!(g.eos_token_ids, vec![49279]);
        assert!(!g.do_sample);
    }
}
