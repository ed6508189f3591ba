//! `tokenizer.json` → token ids and back, plus the special tokens the processor needs, looked up
//! by name.

use std::path::Path;

use crate::config::SpecialTokenNames;
use crate::error::{Error, Result};

/// A Hugging Face fast tokenizer.
#[derive(Clone)]
pub struct TextTokenizer {
    inner: tokenizers::Tokenizer,
}

impl TextTokenizer {
    /// Loads `tokenizer.json`.
    pub(crate) fn from_file(path: &Path) -> Result<Self> {
        if !path.is_file() {
            return Err(Error::MissingFile {
                path: path.to_path_buf(),
            });
        }
        let inner = tokenizers::Tokenizer::from_file(path)
            .map_err(|e| Error::Tokenizer(format!("{}: {e}", path.display())))?;
        Ok(TextTokenizer { inner })
    }

    /// Wraps a tokenizer built in memory (e.g. from GGUF metadata).
    pub fn from_tokenizer(inner: tokenizers::Tokenizer) -> Self {
        TextTokenizer { inner }
    }

    /// Text → ids. `add_special_tokens` applies the tokenizer's post-processor (as
    /// transformers' processor call does).
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, add_special_tokens)
            .map_err(|e| Error::Tokenizer(format!("cannot encode: {e}")))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Ids → text.
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String> {
        self.inner
            .decode(ids, skip_special_tokens)
            .map_err(|e| Error::Tokenizer(format!("cannot decode: {e}")))
    }

    /// The id of a token given by its exact string, if the vocabulary has it.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The string of token `id`, if it exists.
    pub(crate) fn token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// The underlying `tokenizers` tokenizer (vocabulary, added tokens, decoder).
    pub(crate) fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    /// Size of the vocabulary, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }
}

/// Ids of the special tokens, resolved by name.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SpecialTokens {
    /// Token names used in prompts.
    pub(crate) names: SpecialTokenNames,
    /// `<image>` (text-only vocabularies lack it).
    pub(crate) image: Option<u32>,
    /// `<fake_token_around_image>` (text-only vocabularies lack it).
    pub(crate) fake_image: Option<u32>,
    /// `<end_of_utterance>`, if the vocabulary has it.
    pub(crate) end_of_utterance: Option<u32>,
}

impl SpecialTokens {
    /// Looks the processor's tokens up in `tok`. `<global-img>` and `<row_r_col_c>` may be
    /// plain text (SmolVLM v1); whether `<image>` must exist is the caller's concern (only a
    /// model with vision needs it).
    pub(crate) fn lookup(tok: &TextTokenizer, names: &SpecialTokenNames) -> Result<Self> {
        Ok(SpecialTokens {
            image: tok.token_id(&names.image),
            fake_image: tok.token_id(&names.fake_image),
            end_of_utterance: tok.token_id(&names.end_of_utterance),
            names: names.clone(),
        })
    }
}
