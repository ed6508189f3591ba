//! Generated token ids → text deltas that never split a UTF-8 character.
//!
//! Byte-level BPE tokens can end inside a multi-byte character; decoding them alone gives U+FFFD.
//! The decoder re-decodes a short window of recent tokens and only releases text once it no
//! longer ends in a replacement character.

use crate::error::Result;
use crate::processor::tokenizer::TextTokenizer;

/// Incremental detokenizer for one generation.
pub struct Detokenizer<'a> {
    tok: &'a TextTokenizer,
    ids: Vec<u32>,
    /// Start of the window whose text was already emitted.
    prefix_offset: usize,
    /// End of the window whose text was already emitted.
    read_offset: usize,
    text: String,
}

impl<'a> Detokenizer<'a> {
    /// A detokenizer with no tokens yet.
    pub fn new(tok: &'a TextTokenizer) -> Self {
        Detokenizer {
            tok,
            ids: Vec::new(),
            prefix_offset: 0,
            read_offset: 0,
            text: String::new(),
        }
    }

    /// Adds a token; returns the text that became final, if any.
    pub fn push(&mut self, id: u32) -> Result<Option<String>> {
        self.ids.push(id);
        let prefix = self
            .tok
            .decode(&self.ids[self.prefix_offset..self.read_offset], true)?;
        let full = self.tok.decode(&self.ids[self.prefix_offset..], true)?;
        if full.len() > prefix.len() && !full.ends_with('\u{FFFD}') && full.starts_with(&prefix) {
            let delta = full[prefix.len()..].to_string();
            self.prefix_offset = self.read_offset;
            self.read_offset = self.ids.len();
            self.text.push_str(&delta);
            Ok(Some(delta))
        } else {
            Ok(None)
        }
    }

    /// Text released so far.
    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    /// Releases whatever is still held back (at the end of generation) and returns it.
    pub fn finish(&mut self) -> Result<Option<String>> {
        let prefix = self
            .tok
            .decode(&self.ids[self.prefix_offset..self.read_offset], true)?;
        let full = self.tok.decode(&self.ids[self.prefix_offset..], true)?;
        self.read_offset = self.ids.len();
        self.prefix_offset = self.read_offset;
        match full.strip_prefix(&prefix) {
            Some(rest) if !rest.is_empty() => {
                self.text.push_str(rest);
                Ok(Some(rest.to_string()))
            }
            _ => Ok(None),
        }
    }
}
