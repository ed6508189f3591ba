//! GGUF tokenizer metadata (`tokenizer.ggml.*`) → a `tokenizers::Tokenizer` that splits text
//! the way llama.cpp does for the same file.
//!
//! Only byte-level BPE (`tokenizer.ggml.model == "gpt2"`, what SmolLM2 and SmolVLM GGUFs use) is
//! supported. The pre-tokenizer is chosen from `tokenizer.ggml.pre` with llama.cpp's table
//! (`src/llama-vocab.cpp`, `llm_tokenizer_bpe`): its regexes are applied one after the other, each
//! splitting the pieces the previous one produced and keeping both matches and the text between
//! them, which is what a sequence of `Split(Isolated)` pre-tokenizers does. An absent `pre` gets
//! llama.cpp's `default` set, as llama.cpp does; an unknown name is refused rather than guessed,
//! because a wrong split yields valid-looking but different ids.
//!
//! The tokenizer is assembled through the `tokenizers` types, not by writing a `tokenizer.json`
//! and parsing it back: the compiler then checks every field we set, merges are handed over as
//! explicit pairs instead of space-joined strings the loader would re-split, and the 49k-entry
//! vocabulary is not serialised only to be parsed again.

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::processors::template::{SpecialToken, TemplateProcessing};
use tokenizers::{AddedToken, SplitDelimiterBehavior, Tokenizer};

use crate::error::{Error, Result};

/// llama.cpp's `LLAMA_TOKEN_TYPE_UNKNOWN`: matched as a whole, like a control token.
const TOKEN_TYPE_UNKNOWN: i32 = 2;
/// `LLAMA_TOKEN_TYPE_CONTROL`: `<|im_start|>`, `<end_of_utterance>`, …
const TOKEN_TYPE_CONTROL: i32 = 3;
/// `LLAMA_TOKEN_TYPE_USER_DEFINED`: tokens added to the vocabulary after training.
const TOKEN_TYPE_USER_DEFINED: i32 = 4;

/// The tokenizer part of a GGUF file's metadata, already parsed.
#[derive(Debug, Clone, Copy)]
pub struct GgufVocab<'a> {
    /// `tokenizer.ggml.model`.
    pub model: &'a str,
    /// `tokenizer.ggml.pre`, if present.
    pub pre: Option<&'a str>,
    /// `tokenizer.ggml.tokens`, indexed by id.
    pub tokens: &'a [String],
    /// `tokenizer.ggml.token_type`, one per token, if present.
    pub token_types: Option<&'a [i32]>,
    /// `tokenizer.ggml.merges`, `"left right"` by rank.
    pub merges: &'a [String],
    /// `tokenizer.ggml.bos_token_id`.
    pub bos: Option<u32>,
    /// `tokenizer.ggml.eos_token_id`.
    pub eos: Option<u32>,
    /// `tokenizer.ggml.unknown_token_id`.
    pub unk: Option<u32>,
    /// `tokenizer.ggml.padding_token_id`.
    pub pad: Option<u32>,
    /// `tokenizer.ggml.add_bos_token`. When the key is absent llama.cpp's default depends on the
    /// pre-tokenizer (true for the `llama3` family, false for `gpt2` and `smollm`); the caller
    /// resolves it.
    pub add_bos: bool,
}

/// The GPT-2 split, shared by most families.
const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";
/// Llama 3 split, in llama.cpp's spelling (case-insensitive contractions written out).
const LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Qwen 2 split: Llama 3's with single digits.
const QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// How one pre-tokenizer family splits text before BPE.
struct PreSplit {
    /// Regexes applied in order, each to the pieces the previous one left.
    regexes: &'static [&'static str],
    /// Whether a piece that is itself a vocabulary entry becomes that token without merging.
    ignore_merges: bool,
}

/// llama.cpp's `tokenizer.ggml.pre` name → split. Names missing here are refused.
fn pre_split(pre: Option<&str>) -> Result<PreSplit> {
    let split = |regexes, ignore_merges| PreSplit {
        regexes,
        ignore_merges,
    };
    Ok(match pre {
        None | Some("default") => split(
            &[r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", r"[0-9][0-9][0-9]"],
            false,
        ),
        Some(
            "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone" | "minerva-7b"
            | "mellum2",
        ) => split(&[r"\p{N}", GPT2], false),
        Some(
            "gpt-2" | "phi-2" | "jina-es" | "jina-de" | "gigachat" | "jina-v2-es" | "jina-v2-de"
            | "a.x-4.0" | "mellum" | "modern-bert" | "mpt" | "olmo" | "jais" | "exaone4"
            | "trillion" | "granite-docling",
        ) => split(&[GPT2], false),
        Some(
            "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral" | "midm-2.0"
            | "lfm2" | "jina-v5-nano",
        ) => split(&[LLAMA3], true),
        Some("dbrx" | "smaug-bpe") => split(&[LLAMA3], false),
        Some(
            "qwen2" | "deepseek-r1-qwen" | "kormo" | "f2llmv2" | "megrez" | "stablelm2" | "hunyuan"
            | "solar-open",
        ) => split(&[QWEN2], false),
        Some(other) => {
            return Err(Error::Tokenizer(format!(
                "unsupported GGUF pre-tokenizer `{other}` (tokenizer.ggml.pre); supported: \
                 default, smollm, gpt-2, llama3, qwen2 and their aliases"
            )))
        }
    })
}

/// Builds the tokenizer described by `v`: byte-level BPE, control and user-defined tokens
/// matched whole, a byte-level decoder, and a BOS prefix only when `v.add_bos`.
pub fn tokenizer_from_gguf(v: &GgufVocab<'_>) -> Result<Tokenizer> {
    if v.model != "gpt2" {
        return Err(Error::Tokenizer(format!(
            "unsupported GGUF tokenizer model `{}` (tokenizer.ggml.model); only `gpt2` \
             (byte-level BPE) is supported",
            v.model
        )));
    }
    let split = pre_split(v.pre)?;
    check_ids(v)?;

    let mut vocab = Vocab::with_capacity(v.tokens.len());
    for (id, token) in v.tokens.iter().enumerate() {
        if let Some(first) = vocab.insert(token.clone(), id as u32) {
            return Err(Error::Tokenizer(format!(
                "token {token:?} appears twice in tokenizer.ggml.tokens (ids {first} and {id})"
            )));
        }
    }
    let merges = v
        .merges
        .iter()
        .enumerate()
        .map(|(rank, merge)| split_merge(merge, rank))
        .collect::<Result<Vec<_>>>()?;
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .ignore_merges(split.ignore_merges)
        .build()
        .map_err(|e| Error::Tokenizer(format!("GGUF vocabulary: {e}")))?;

    let mut tokenizer = Tokenizer::new(bpe);
    tokenizer.with_pre_tokenizer(Some(pre_tokenizer(&split)?));
    tokenizer.with_decoder(Some(ByteLevelDecoder::default()));
    if v.add_bos {
        tokenizer.with_post_processor(Some(bos_prefix(v)?));
    }
    tokenizer
        .add_special_tokens(added_tokens(v, true))
        .map_err(|e| Error::Tokenizer(format!("cannot add special tokens: {e}")))?;
    tokenizer
        .add_tokens(added_tokens(v, false))
        .map_err(|e| Error::Tokenizer(format!("cannot add tokens: {e}")))?;
    Ok(tokenizer)
}

/// Rejects metadata whose arrays disagree in length or whose special ids point past the vocabulary.
fn check_ids(v: &GgufVocab<'_>) -> Result<()> {
    if v.tokens.is_empty() {
        return Err(Error::Tokenizer(
            "tokenizer.ggml.tokens is empty".to_string(),
        ));
    }
    if let Some(types) = v.token_types {
        if types.len() != v.tokens.len() {
            return Err(Error::Tokenizer(format!(
                "tokenizer.ggml.token_type has {} entries but tokenizer.ggml.tokens has {}",
                types.len(),
                v.tokens.len()
            )));
        }
    }
    let named = [
        ("bos_token_id", v.bos),
        ("eos_token_id", v.eos),
        ("unknown_token_id", v.unk),
        ("padding_token_id", v.pad),
    ];
    for (key, id) in named {
        if let Some(id) = id {
            if id as usize >= v.tokens.len() {
                return Err(Error::Tokenizer(format!(
                    "tokenizer.ggml.{key} is {id} but the vocabulary has {} tokens",
                    v.tokens.len()
                )));
            }
        }
    }
    if v.add_bos && v.bos.is_none() {
        return Err(Error::Tokenizer(
            "tokenizer.ggml.add_bos_token is set but there is no tokenizer.ggml.bos_token_id"
                .to_string(),
        ));
    }
    Ok(())
}

/// `"left right"` → `(left, right)`, cut at the first space after the first byte as llama.cpp
/// does, so a left part that is itself a space stays intact.
fn split_merge(merge: &str, rank: usize) -> Result<(String, String)> {
    let cut = merge
        .char_indices()
        .skip(1)
        .find(|&(_, c)| c == ' ')
        .map(|(i, _)| i);
    match cut {
        Some(i) => Ok((merge[..i].to_string(), merge[i + 1..].to_string())),
        None => Err(Error::Tokenizer(format!(
            "tokenizer.ggml.merges[{rank}] = {merge:?} is not two tokens separated by a space"
        ))),
    }
}

/// The regex splits of `split`, then the byte-to-unicode mapping of GPT-2.
fn pre_tokenizer(split: &PreSplit) -> Result<PreTokenizerWrapper> {
    let mut steps = split
        .regexes
        .iter()
        .map(|re| {
            Split::new(
                SplitPattern::Regex((*re).to_string()),
                SplitDelimiterBehavior::Isolated,
                false,
            )
            .map(PreTokenizerWrapper::from)
            .map_err(|e| Error::Tokenizer(format!("pre-tokenizer regex {re:?}: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    steps.push(ByteLevel::new(false, false, false).into());
    Ok(Sequence::new(steps).into())
}

/// A post-processor that puts BOS before each sequence.
fn bos_prefix(v: &GgufVocab<'_>) -> Result<TemplateProcessing> {
    let bos = v
        .bos
        .and_then(|id| Some((id, v.tokens.get(id as usize)?.clone())));
    let Some((id, text)) = bos else {
        return Err(Error::Tokenizer(
            "a BOS token is required but tokenizer.ggml.bos_token_id is missing".to_string(),
        ));
    };
    // The template refers to the token by this key, not by its text, which may contain the
    // template syntax's `:` or spaces.
    let bos = SpecialToken::new("bos".to_string(), vec![id], vec![text])
        .map_err(|e| Error::Tokenizer(format!("BOS post-processor: {e}")))?;
    let template_err = |e: String| Error::Tokenizer(format!("BOS post-processor: {e}"));
    TemplateProcessing::builder()
        .try_single(vec!["bos", "$A"])
        .map_err(template_err)?
        .try_pair(vec!["bos", "$A", "bos:1", "$B:1"])
        .map_err(template_err)?
        .special_tokens(vec![bos])
        .build()
        .map_err(|e| Error::Tokenizer(format!("BOS post-processor: {e}")))
}

/// Control (and unknown-type) tokens when `special`, user-defined tokens otherwise: both are
/// matched as whole strings before pre-tokenization, as llama.cpp's special-token partition does.
fn added_tokens(v: &GgufVocab<'_>, special: bool) -> Vec<AddedToken> {
    let Some(types) = v.token_types else {
        return Vec::new();
    };
    v.tokens
        .iter()
        .zip(types)
        .filter(|(token, &ty)| {
            !token.is_empty()
                && if special {
                    ty == TOKEN_TYPE_CONTROL || ty == TOKEN_TYPE_UNKNOWN
                } else {
                    ty == TOKEN_TYPE_USER_DEFINED
                }
        })
        .map(|(token, _)| AddedToken::from(token.clone(), special).normalized(false))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A byte-level vocabulary small enough to reason about by hand.
    struct Tiny {
        tokens: Vec<String>,
        types: Vec<i32>,
        merges: Vec<String>,
    }

    const CONTROL: &[&str] = &["<|endoftext|>", "<|im_start|>", "<|im_end|>"];
    const USER: &[&str] = &["<image>", "<row_1_col_1>"];
    const NORMAL: &[&str] = &[
        "a", "b", "c", "ab", "abc", "Ġ", "Ġab", "1", "2", "12", "Ċ", "ĊĊ", "?", "<", ">", "i", "m",
        "g", "e", "Ã", "©", "Ã©", "ĠĠ",
    ];

    fn tiny() -> Tiny {
        let mut tokens = Vec::new();
        let mut types = Vec::new();
        for (list, ty) in [(CONTROL, 3), (USER, 4), (NORMAL, 1)] {
            for t in list {
                tokens.push(t.to_string());
                types.push(ty);
            }
        }
        let merges = ["a b", "Ġ ab", "1 2", "Ċ Ċ", "Ã ©", "Ġ Ġ"]
            .iter()
            .map(|m| m.to_string())
            .collect();
        Tiny {
            tokens,
            types,
            merges,
        }
    }

    impl Tiny {
        fn vocab(&self, pre: Option<&'static str>) -> GgufVocab<'_> {
            GgufVocab {
                model: "gpt2",
                pre,
                tokens: &self.tokens,
                token_types: Some(&self.types),
                merges: &self.merges,
                bos: Some(1),
                eos: Some(2),
                unk: Some(0),
                pad: None,
                add_bos: false,
            }
        }

        fn id(&self, token: &str) -> u32 {
            self.tokens.iter().position(|t| t == token).unwrap() as u32
        }

        fn ids(&self, tokens: &[&str]) -> Vec<u32> {
            tokens.iter().map(|t| self.id(t)).collect()
        }
    }

    fn encode(tok: &Tokenizer, text: &str) -> Vec<u32> {
        tok.encode(text, true).unwrap().get_ids().to_vec()
    }

    #[test]
    fn merges_follow_rank_and_spaces_attach_to_words() {
        let t = tiny();
        let tok = tokenizer_from_gguf(&t.vocab(Some("smollm"))).unwrap();
        assert_eq!(encode(&tok, "ab ab"), t.ids(&["ab", "Ġab"]));
        assert_eq!(encode(&tok, "abc"), t.ids(&["ab", "c"]));
        // GPT-2's `\s+(?!\S)` leaves the last whitespace before a word on its own.
        assert_eq!(encode(&tok, "a\n\n"), t.ids(&["a", "ĊĊ"]));
        assert_eq!(encode(&tok, "a\n\nb"), t.ids(&["a", "Ċ", "Ċ", "b"]));
    }

    #[test]
    fn smollm_splits_every_digit_but_gpt2_does_not() {
        let t = tiny();
        let smollm = tokenizer_from_gguf(&t.vocab(Some("smollm"))).unwrap();
        assert_eq!(encode(&smollm, "12"), t.ids(&["1", "2"]));
        let gpt2 = tokenizer_from_gguf(&t.vocab(Some("gpt-2"))).unwrap();
        assert_eq!(encode(&gpt2, "12"), t.ids(&["12"]));
    }

    #[test]
    fn llama3_takes_whole_vocabulary_words_without_merging() {
        let t = tiny();
        let tok = tokenizer_from_gguf(&t.vocab(Some("llama3"))).unwrap();
        assert_eq!(encode(&tok, "abc"), t.ids(&["abc"]));
    }

    #[test]
    fn control_and_user_defined_tokens_match_whole() {
        let t = tiny();
        let tok = tokenizer_from_gguf(&t.vocab(Some("smollm"))).unwrap();
        assert_eq!(
            encode(&tok, "<|im_start|>ab<image><row_1_col_1>?<|im_end|>"),
            t.ids(&[
                "<|im_start|>",
                "ab",
                "<image>",
                "<row_1_col_1>",
                "?",
                "<|im_end|>"
            ])
        );
        // A partial marker is ordinary text.
        assert_eq!(
            encode(&tok, "<im"),
            t.ids(&["<", "i", "m"]),
            "an incomplete marker must not match"
        );
    }

    #[test]
    fn bos_only_when_asked() {
        let t = tiny();
        let mut v = t.vocab(Some("smollm"));
        let without = tokenizer_from_gguf(&v).unwrap();
        assert_eq!(encode(&without, "ab"), t.ids(&["ab"]));
        v.add_bos = true;
        let with = tokenizer_from_gguf(&v).unwrap();
        assert_eq!(encode(&with, "ab"), t.ids(&["<|im_start|>", "ab"]));
        assert_eq!(
            with.encode("ab", false).unwrap().get_ids(),
            t.ids(&["ab"]).as_slice()
        );
    }

    #[test]
    fn decoding_inverts_byte_level_encoding() {
        let t = tiny();
        let tok = tokenizer_from_gguf(&t.vocab(Some("smollm"))).unwrap();
        for text in ["ab ab", "é", "a\n\nb  ab", "<|im_start|>ab<image>12"] {
            let ids = encode(&tok, text);
            assert_eq!(tok.decode(&ids, false).unwrap(), text);
        }
        let ids = encode(&tok, "<|im_start|>ab<image>");
        assert_eq!(tok.decode(&ids, true).unwrap(), "ab<image>");
    }

    #[test]
    fn every_supported_family_builds() {
        let t = tiny();
        for pre in [
            None,
            Some("default"),
            Some("gpt-2"),
            Some("qwen2"),
            Some("dbrx"),
        ] {
            let tok = tokenizer_from_gguf(&t.vocab(pre)).unwrap();
            assert_eq!(encode(&tok, "ab ab"), t.ids(&["ab", "Ġab"]), "{pre:?}");
        }
    }

    fn error(v: &GgufVocab<'_>) -> String {
        match tokenizer_from_gguf(v) {
            Ok(_) => panic!("expected an error"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn unsupported_model_and_pre_are_refused() {
        let t = tiny();
        let mut v = t.vocab(Some("smollm"));
        v.model = "llama";
        assert!(error(&v).contains("`llama`"));
        let v = t.vocab(Some("tekken"));
        assert!(error(&v).contains("`tekken`"));
    }

    #[test]
    fn inconsistent_metadata_is_refused() {
        let t = tiny();
        let mut v = t.vocab(Some("smollm"));
        let short = &t.types[..3];
        v.token_types = Some(short);
        assert!(error(&v).contains("token_type"));

        let mut v = t.vocab(Some("smollm"));
        v.eos = Some(10_000);
        assert!(error(&v).contains("eos_token_id"));

        let mut v = t.vocab(Some("smollm"));
        v.bos = None;
        v.add_bos = true;
        assert!(error(&v).contains("bos_token_id"));

        let mut dup = tiny();
        dup.tokens.push("ab".to_string());
        dup.types.push(1);
        assert!(error(&dup.vocab(None)).contains("twice"));

        let mut bad = tiny();
        bad.merges.push("abc".to_string());
        assert!(error(&bad.vocab(None)).contains("merges[6]"));

        let mut missing = tiny();
        missing.merges.push("b c".to_string());
        assert!(error(&missing.vocab(None)).contains("bc"));
    }

    #[test]
    fn merge_with_a_leading_space_token_splits_after_it() {
        assert_eq!(
            split_merge("  x", 0).unwrap(),
            (" ".to_string(), "x".to_string())
        );
        assert_eq!(
            split_merge("Ġ Ġ", 0).unwrap(),
            ("Ġ".to_string(), "Ġ".to_string())
        );
    }
}
