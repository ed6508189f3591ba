//! The tokenizer built from the real SmolLM2-135M-Instruct GGUF metadata against ids established
//! without it (`reference/smollm2_tokenizer.json`, see `scripts/make_tokenizer_reference.py`).
//!
//! The model file is not committed: `scripts/fetch-test-models.sh` puts it under
//! `target/test-models/`. Without it these tests fail rather than pass vacuously.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use candle_core::quantized::gguf_file::Content;
use serde_json::Value as Json;
use vlm::processor::gguf_tokenizer::{tokenizer_from_gguf, GgufVocab};
use vlm::processor::tokenizer::TextTokenizer;

use crate::common::fixtures;

const MODEL: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

fn model_path() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/test-models")
        .join(MODEL);
    assert!(
        path.is_file(),
        "{} is missing: run scripts/fetch-test-models.sh to fetch the real-weight test models",
        path.display()
    );
    path
}

/// The `tokenizer.ggml.*` metadata, owned.
struct Metadata {
    model: String,
    pre: Option<String>,
    tokens: Vec<String>,
    token_types: Option<Vec<i32>>,
    merges: Vec<String>,
    bos: Option<u32>,
    eos: Option<u32>,
    unk: Option<u32>,
    pad: Option<u32>,
    add_bos: bool,
}

impl Metadata {
    fn read(path: &Path) -> Self {
        let mut file = std::fs::File::open(path).unwrap();
        let content = Content::read(&mut file)
            .unwrap_or_else(|e| panic!("{}: not a readable GGUF file: {e}", path.display()));
        let md = &content.metadata;
        let key = |k: &str| md.get(&format!("tokenizer.ggml.{k}"));
        let string = |k: &str| key(k).map(|v| v.to_string().unwrap().clone());
        let strings = |k: &str| {
            key(k)
                .unwrap_or_else(|| panic!("no tokenizer.ggml.{k}"))
                .to_vec()
                .unwrap()
                .iter()
                .map(|v| v.to_string().unwrap().clone())
                .collect::<Vec<_>>()
        };
        let id = |k: &str| key(k).map(|v| v.to_u32().unwrap());
        Metadata {
            model: string("model").expect("no tokenizer.ggml.model"),
            pre: string("pre"),
            tokens: strings("tokens"),
            token_types: key("token_type").map(|v| {
                v.to_vec()
                    .unwrap()
                    .iter()
                    .map(|t| t.to_i32().unwrap())
                    .collect()
            }),
            merges: strings("merges"),
            bos: id("bos_token_id"),
            eos: id("eos_token_id"),
            unk: id("unknown_token_id"),
            pad: id("padding_token_id"),
            add_bos: key("add_bos_token").is_some_and(|v| v.to_bool().unwrap()),
        }
    }

    fn vocab(&self) -> GgufVocab<'_> {
        GgufVocab {
            model: &self.model,
            pre: self.pre.as_deref(),
            tokens: &self.tokens,
            token_types: self.token_types.as_deref(),
            merges: &self.merges,
            bos: self.bos,
            eos: self.eos,
            unk: self.unk,
            pad: self.pad,
            add_bos: self.add_bos,
        }
    }
}

fn metadata() -> &'static Metadata {
    static MD: OnceLock<Metadata> = OnceLock::new();
    MD.get_or_init(|| Metadata::read(&model_path()))
}

fn tokenizer() -> &'static TextTokenizer {
    static TOK: OnceLock<TextTokenizer> = OnceLock::new();
    TOK.get_or_init(|| {
        let inner =
            tokenizer_from_gguf(&metadata().vocab()).unwrap_or_else(|e| panic!("{MODEL}: {e}"));
        TextTokenizer::from_tokenizer(inner)
    })
}

/// `(text, expected ids)` of the committed reference.
fn reference() -> Vec<(String, Vec<u32>)> {
    let path = fixtures().join("reference/smollm2_tokenizer.json");
    let json: Json = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(
        json["model"],
        MODEL,
        "{}: made for another file",
        path.display()
    );
    let cases = json["cases"].as_array().unwrap();
    assert!(!cases.is_empty(), "{}: no cases", path.display());
    cases
        .iter()
        .map(|c| {
            let ids = c["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i.as_u64().unwrap() as u32)
                .collect();
            (c["text"].as_str().unwrap().to_string(), ids)
        })
        .collect()
}

#[test]
fn metadata_is_the_smollm2_vocabulary() {
    let md = metadata();
    assert_eq!(md.model, "gpt2");
    assert_eq!(md.pre.as_deref(), Some("smollm"));
    assert_eq!(md.tokens.len(), 49152);
    assert_eq!(md.merges.len(), 48900);
    assert!(!md.add_bos);
    let tok = tokenizer();
    assert_eq!(
        tok.vocab_size(),
        49152,
        "added tokens must reuse their GGUF ids"
    );
    let control: HashMap<&str, u32> =
        [("<|endoftext|>", 0), ("<|im_start|>", 1), ("<|im_end|>", 2)]
            .into_iter()
            .collect();
    for (text, id) in control {
        assert_eq!(tok.token_id(text), Some(id), "{text}");
    }
}

#[test]
fn ids_match_the_reference() {
    let tok = tokenizer();
    for (text, expected) in reference() {
        let ids = tok.encode(&text, true).unwrap();
        assert_eq!(ids, expected, "{text:?}");
    }
}

#[test]
fn decoding_gives_back_the_text() {
    let tok = tokenizer();
    for (text, _) in reference() {
        let ids = tok.encode(&text, true).unwrap();
        assert_eq!(tok.decode(&ids, false).unwrap(), text, "{text:?}");
    }
}

#[test]
fn skipping_special_tokens_drops_chat_markup() {
    let tok = tokenizer();
    let ids = tok
        .encode("<|im_start|>user\nHi<|im_end|>\n", true)
        .unwrap();
    assert_eq!(tok.decode(&ids, true).unwrap(), "user\nHi\n");
}
