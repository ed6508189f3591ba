//! Constraint (JSON schema, regex, choice or Lark grammar) → a mask of the tokens allowed at
//! each decode step, computed by llguidance over the model's own vocabulary.
//!
//! The decode loop asks `ConstraintState::mask` before sampling, feeds the sampled token to
//! `ConstraintState::accept`, and stops once `ConstraintState::is_complete` says nothing but
//! an end-of-sequence token could follow.

use std::sync::Arc;

use llguidance::api::TopLevelGrammar;
use llguidance::{Matcher, ParserFactory};
use serde_json::Value;
use tokenizers::DecoderWrapper;
use toktrie::{ApproximateTokEnv, SimpleVob, TokEnv, TokRxInfo, TokTrie, TokenId, TokenizerEnv};

use crate::error::{Error, Result};
use crate::processor::tokenizer::TextTokenizer;

/// What generated text must look like.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Constraint {
    /// A JSON value valid under this JSON schema. Unless the schema's `x-guidance` options
    /// say otherwise, the JSON is written on one line with `", "` and `": "` separators, so a
    /// model cannot pad it with whitespace forever.
    JsonSchema(Value),
    /// Text matching this regular expression (Rust `regex` syntax), whole.
    Regex(String),
    /// Exactly one of these strings.
    Choice(Vec<String>),
    /// A grammar in llguidance's Lark dialect.
    Lark(String),
}

impl Constraint {
    /// A JSON-schema constraint.
    ///
    /// ```
    /// let c = vlm::Constraint::json_schema(serde_json::json!({"type": "string", "maxLength": 8}));
    /// assert!(vlm::generate::constraint::validate(&c, "\"Cursor\"").is_ok());
    /// assert!(vlm::generate::constraint::validate(&c, "42").is_err());
    /// ```
    pub fn json_schema(schema: Value) -> Self {
        Constraint::JsonSchema(schema)
    }

    /// A choice among fixed strings.
    pub fn choice<S: Into<String>>(options: impl IntoIterator<Item = S>) -> Self {
        Constraint::Choice(options.into_iter().map(Into::into).collect())
    }

    /// A regular-expression constraint.
    pub fn regex(pattern: impl Into<String>) -> Self {
        Constraint::Regex(pattern.into())
    }

    fn grammar(&self) -> Result<TopLevelGrammar> {
        Ok(match self {
            Constraint::JsonSchema(schema) => {
                let Value::Object(map) = schema else {
                    return Err(invalid("a JSON schema must be a JSON object"));
                };
                let mut map = map.clone();
                map.entry("x-guidance").or_insert_with(|| {
                    serde_json::json!({
                        "whitespace_flexible": false,
                        "item_separator": ", ",
                        "key_separator": ": ",
                    })
                });
                TopLevelGrammar::from_json_schema(Value::Object(map))
            }
            Constraint::Regex(rx) => TopLevelGrammar::from_regex(rx),
            Constraint::Choice(options) => {
                if options.is_empty() {
                    return Err(invalid("a choice needs at least one option"));
                }
                let alternatives: Vec<String> = options
                    .iter()
                    .map(|o| serde_json::to_string(o).unwrap_or_default())
                    .collect();
                TopLevelGrammar::from_lark(format!("start: {}", alternatives.join(" | ")))
            }
            Constraint::Lark(src) => TopLevelGrammar::from_lark(src.clone()),
        })
    }
}

fn invalid(reason: impl Into<String>) -> Error {
    Error::InvalidOption {
        name: "constraint",
        reason: reason.into(),
    }
}

/// Compiles constraints against one model's vocabulary. Building it walks the whole
/// vocabulary once, so an engine keeps one.
pub(crate) struct ConstraintCompiler {
    factory: ParserFactory,
    eos_ids: Vec<TokenId>,
}

impl ConstraintCompiler {
    /// A compiler for `tokenizer`'s vocabulary, padded to `n_logits` entries (the model's output
    /// size). `eos_ids` end generation and are allowed once the grammar is complete.
    pub(crate) fn new(tokenizer: &TextTokenizer, eos_ids: &[u32], n_logits: usize) -> Result<Self> {
        let env = VocabEnv::new(tokenizer, eos_ids, n_logits)?;
        let eos_ids = env.trie.eos_tokens().to_vec();
        let env: TokEnv = Arc::new(env);
        let mut factory = ParserFactory::new_simple(&env)
            .map_err(|e| Error::Tokenizer(format!("constrained decoding: {e}")))?;
        // The library never prints; grammar warnings surface as errors instead.
        factory.quiet();
        Ok(ConstraintCompiler { factory, eos_ids })
    }

    /// A fresh matcher for one generation under `constraint`.
    pub(crate) fn start(&self, constraint: &Constraint) -> Result<ConstraintState> {
        let parser = self
            .factory
            .create_parser(constraint.grammar()?)
            .map_err(|e| invalid(format!("{e}")))?;
        let matcher = Matcher::new(Ok(parser));
        if let Some(e) = matcher.get_error() {
            return Err(invalid(e));
        }
        Ok(ConstraintState {
            matcher,
            allowed: None,
            eos_ids: self.eos_ids.clone(),
        })
    }
}

/// One generation's position in the grammar.
pub(crate) struct ConstraintState {
    matcher: Matcher,
    /// The mask of the current position, once computed.
    allowed: Option<SimpleVob>,
    eos_ids: Vec<TokenId>,
}

impl ConstraintState {
    fn allowed(&mut self) -> Result<&SimpleVob> {
        if self.allowed.is_none() {
            let mask = self
                .matcher
                .compute_mask_or_eos()
                .map_err(|e| Error::InvalidOption {
                    name: "constraint",
                    reason: format!("grammar failed: {e}"),
                })?;
            if mask.is_zero() {
                return Err(invalid("the grammar allows no token here"));
            }
            self.allowed = Some(mask);
        }
        self.allowed
            .as_ref()
            .ok_or_else(|| invalid("grammar mask missing"))
    }

    /// Sets every logit the grammar forbids at this step to −∞.
    pub(crate) fn mask(&mut self, logits: &mut [f32]) -> Result<()> {
        let allowed = self.allowed()?;
        for (i, l) in logits.iter_mut().enumerate() {
            if i >= allowed.len() || !allowed.is_allowed(i as TokenId) {
                *l = f32::NEG_INFINITY;
            }
        }
        Ok(())
    }

    /// Advances the grammar past a sampled token.
    pub(crate) fn accept(&mut self, id: u32) -> Result<()> {
        self.allowed = None;
        self.matcher
            .consume_token(id)
            .map_err(|e| invalid(format!("token {id} breaks the grammar: {e}")))
    }

    /// Whether the grammar is finished: nothing but an end-of-sequence token may follow.
    pub(crate) fn is_complete(&mut self) -> Result<bool> {
        if self.matcher.is_stopped() {
            return Ok(true);
        }
        let eos = self.eos_ids.clone();
        let allowed = self.allowed()?;
        let eos_allowed = eos
            .iter()
            .filter(|id| (**id as usize) < allowed.len() && allowed.is_allowed(**id))
            .count();
        Ok(eos_allowed > 0 && allowed.num_set() == eos_allowed)
    }
}

/// Checks that `text`, whole, satisfies `constraint` (for JSON schemas: that it is one JSON
/// value valid under the schema, in the layout the schema's `x-guidance` options allow; a
/// schema without them accepts any whitespace).
///
/// ```
/// use vlm::{generate::constraint::validate, Constraint};
/// assert!(validate(&Constraint::regex("[0-9]+ stars"), "4 stars").is_ok());
/// assert!(validate(&Constraint::choice(["free", "paid"]), "cheap").is_err());
/// ```
pub fn validate(constraint: &Constraint, text: &str) -> Result<()> {
    let grammar = match constraint {
        // Validation accepts any JSON layout; generation picks one.
        Constraint::JsonSchema(Value::Object(map)) if !map.contains_key("x-guidance") => {
            TopLevelGrammar::from_json_schema(Value::Object(map.clone()))
        }
        other => other.grammar()?,
    };
    let env = ApproximateTokEnv::single_byte_env();
    let mut factory = ParserFactory::new_simple(&env).map_err(|e| invalid(format!("{e}")))?;
    factory.quiet();
    let parser = factory
        .create_parser(grammar)
        .map_err(|e| invalid(format!("{e}")))?;
    let mut matcher = Matcher::new(Ok(parser));
    for (i, b) in text.bytes().enumerate() {
        if matcher.is_stopped() {
            return Err(invalid(format!("unexpected text after byte {i}")));
        }
        matcher
            .consume_token(TokenId::from(b))
            .map_err(|e| invalid(format!("at byte {i}: {e}")))?;
    }
    if matcher.is_stopped() || matcher.is_accepting().unwrap_or(false) {
        Ok(())
    } else {
        Err(invalid("the text ends before the constraint is satisfied"))
    }
}

/// The vocabulary as llguidance sees it: each token's bytes, special tokens marked.
///
/// `toktrie_hf_tokenizers` would build this, but it pins `tokenizers` 0.21 with default
/// features whose regex and suffix-array back ends are C builds, which lean builds of this crate
/// must not pull in. The mapping is small enough to own: byte-level BPE tokens spell bytes
/// through GPT-2's byte↔unicode table, SentencePiece-style ones use `▁` for space and
/// `<0xNN>` for raw bytes, and special tokens get toktrie's 0xFF marker so that no grammar can
/// produce them as text.
struct VocabEnv {
    trie: TokTrie,
    tokenizer: TextTokenizer,
}

#[derive(Clone, Copy, PartialEq)]
enum Spelling {
    ByteLevel,
    ByteFallback { space: char },
}

impl VocabEnv {
    fn new(tokenizer: &TextTokenizer, eos_ids: &[u32], n_logits: usize) -> Result<Self> {
        let hf = tokenizer.inner();
        let spelling = spelling(hf.get_decoder()).ok_or_else(|| {
            Error::Tokenizer(
                "constrained decoding needs a byte-level or byte-fallback tokenizer".into(),
            )
        })?;
        let n = n_logits.max(hf.get_vocab_size(true));
        let added = hf.get_added_tokens_decoder();
        let byte_of = gpt2_unicode_to_byte();
        let mut words: Vec<Vec<u8>> = Vec::with_capacity(n);
        for id in 0..n as u32 {
            let placeholder = || {
                let mut w = format!(".<[{id}]>").into_bytes();
                w[0] = TokTrie::SPECIAL_TOKEN_MARKER;
                w
            };
            let word = match (added.get(&id), hf.id_to_token(id)) {
                (Some(tok), _) if tok.special || is_bracketed(&tok.content) => {
                    let mut w = vec![TokTrie::SPECIAL_TOKEN_MARKER];
                    w.extend_from_slice(tok.content.as_bytes());
                    w
                }
                (Some(tok), _) => tok.content.clone().into_bytes(),
                (None, Some(name)) => match spelling {
                    Spelling::ByteLevel => name
                        .chars()
                        .map(&byte_of)
                        .collect::<Option<Vec<u8>>>()
                        .unwrap_or_else(placeholder),
                    Spelling::ByteFallback { space } => {
                        byte_token(&name).unwrap_or_else(|| name.replace(space, " ").into_bytes())
                    }
                },
                (None, None) => placeholder(),
            };
            words.push(word);
        }
        dedupe(&mut words);
        let eos: Vec<u32> = eos_ids
            .iter()
            .copied()
            .filter(|i| (*i as usize) < n)
            .collect();
        let Some(first_eos) = eos.first().copied() else {
            return Err(Error::Tokenizer(
                "constrained decoding needs an end-of-sequence token in the vocabulary".into(),
            ));
        };
        let info = TokRxInfo::new(n as u32, first_eos);
        let trie = std::panic::catch_unwind(|| TokTrie::from(&info, &words).with_eos_tokens(&eos))
            .map_err(|_| Error::Tokenizer("cannot index the vocabulary for constraints".into()))?;
        Ok(VocabEnv {
            trie,
            tokenizer: tokenizer.clone(),
        })
    }
}

impl TokenizerEnv for VocabEnv {
    fn tok_trie(&self) -> &TokTrie {
        &self.trie
    }

    fn tokenize_bytes(&self, s: &[u8]) -> Vec<TokenId> {
        self.trie.tokenize_with_greedy_fallback(s, |text| {
            self.tokenizer
                .encode(text, false)
                .unwrap_or_else(|_| self.trie.greedy_tokenize(text.as_bytes()))
        })
    }
}

/// How the decoder turns token strings into bytes, if it is a kind llguidance can follow.
fn spelling(decoder: Option<&DecoderWrapper>) -> Option<Spelling> {
    fn walk(d: &DecoderWrapper, level: &mut bool, fallback: &mut bool, space: &mut char) {
        match d {
            DecoderWrapper::ByteLevel(_) => *level = true,
            DecoderWrapper::ByteFallback(_) => *fallback = true,
            DecoderWrapper::Metaspace(m) => *space = m.get_replacement(),
            DecoderWrapper::Replace(r) => {
                // The pattern is private; its serialised form carries it.
                let v = serde_json::to_value(r).unwrap_or_default();
                let content = v["content"].as_str();
                if let (Some(" "), Some(p)) = (content, v["pattern"]["String"].as_str()) {
                    let mut chars = p.chars();
                    if let (Some(c), None) = (chars.next(), chars.next()) {
                        *space = c;
                    }
                }
            }
            DecoderWrapper::Sequence(seq) => {
                for d in seq.get_decoders() {
                    walk(d, level, fallback, space);
                }
            }
            _ => {}
        }
    }
    let (mut level, mut fallback, mut space) = (false, false, '▁');
    walk(decoder?, &mut level, &mut fallback, &mut space);
    if level {
        Some(Spelling::ByteLevel)
    } else if fallback {
        Some(Spelling::ByteFallback { space })
    } else {
        None
    }
}

fn is_bracketed(s: &str) -> bool {
    s.len() > 2 && s.starts_with('<') && s.ends_with('>')
}

/// `<0xNN>` → the byte NN.
fn byte_token(name: &str) -> Option<Vec<u8>> {
    let hex = name.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok().map(|b| vec![b])
}

/// GPT-2's byte-level alphabet, inverted: printable Latin-1 bytes stand for themselves, the
/// other 68 bytes are shifted to U+0100 and up, in byte order.
/// Ref: openai/gpt-2 `encoder.py` `bytes_to_unicode`.
fn gpt2_unicode_to_byte() -> impl Fn(char) -> Option<u8> {
    let mut table = std::collections::HashMap::with_capacity(256);
    let mut next = 0x100u32;
    for b in 0..=255u8 {
        let c = b as char;
        let printable = matches!(c, '!'..='~' | '\u{A1}'..='\u{AC}' | '\u{AE}'..='\u{FF}');
        if printable {
            table.insert(c, b);
        } else if let Some(shifted) = char::from_u32(next) {
            table.insert(shifted, b);
            next += 1;
        }
    }
    move |c| table.get(&c).copied()
}

/// Two ids spelling the same bytes would make the trie ambiguous; later ones become
/// unreachable placeholders (the tokenizer itself never produces them for text).
fn dedupe(words: &mut [Vec<u8>]) {
    let mut seen = std::collections::HashSet::with_capacity(words.len());
    for (id, w) in words.iter_mut().enumerate() {
        if !w.is_empty() && !seen.insert(w.clone()) {
            let mut p = format!(".<[{id}]>").into_bytes();
            p[0] = TokTrie::SPECIAL_TOKEN_MARKER;
            *w = p;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpt2_alphabet_round_trips() {
        let byte_of = gpt2_unicode_to_byte();
        assert_eq!(byte_of('A'), Some(b'A'));
        assert_eq!(byte_of('Ġ'), Some(b' '));
        assert_eq!(byte_of('Ċ'), Some(b'\n'));
        assert_eq!(byte_of('\u{100}'), Some(0));
        assert_eq!(byte_of('€'), None);
    }

    #[test]
    fn validation_follows_each_kind() {
        let schema = Constraint::json_schema(serde_json::json!({
            "type": "object",
            "properties": {"a": {"type": ["string", "null"], "maxLength": 3}},
            "required": ["a"],
            "additionalProperties": false
        }));
        assert!(validate(&schema, r#"{"a": "abc"}"#).is_ok());
        assert!(validate(&schema, r#"{ "a" : null }"#).is_ok());
        assert!(validate(&schema, r#"{"a": "abcd"}"#).is_err());
        assert!(validate(&schema, r#"{"a": 1}"#).is_err());
        assert!(validate(&Constraint::regex("[a-c]{2}"), "ab").is_ok());
        assert!(validate(&Constraint::regex("[a-c]{2}"), "abc").is_err());
        assert!(validate(&Constraint::choice(["free trial", "paid"]), "free trial").is_ok());
        assert!(validate(&Constraint::choice(Vec::<String>::new()), "x").is_err());
        assert!(validate(&Constraint::json_schema(serde_json::json!([1])), "1").is_err());
    }

    #[test]
    fn byte_tokens_parse() {
        assert_eq!(byte_token("<0x0A>"), Some(vec![10]));
        assert_eq!(byte_token("<0xZZ>"), None);
        assert_eq!(byte_token("hello"), None);
    }
}
