//! The metadata of the pair: llama.cpp's `llama.*` and `clip.*` hyperparameter keys, and the
//! `tokenizer.ggml.*` vocabulary built from the checkpoint's `tokenizer.json`.

use std::path::Path;

use candle_core::quantized::GgmlDType;
use candle_core::DType;
use serde_json::Value;

use crate::config::CheckpointConfig;
use crate::weights::gguf_writer::{MetaArray, MetaValue};
use crate::weights::{QuantPolicy, QuantType, Target};
use crate::{Error, Result};

/// llama.cpp's `LlamaFileType` (`general.file_type`) of a text model quantized as `ty`.
fn file_type(ty: QuantType) -> u32 {
    match ty {
        QuantType::F16 => 1,
        QuantType::Q4_0 => 2,
        QuantType::Q8_0 => 7,
        QuantType::Q4K => 15,
        QuantType::Bf16 => 32,
    }
}

/// The `general.file_type` matching the type most matrices of a part get.
fn target_file_type(target: Target) -> u32 {
    match target {
        Target::Quant(GgmlDType::Q8_0) => 7,
        Target::Quant(GgmlDType::Q4_0) => 2,
        Target::Quant(GgmlDType::Q4K) => 15,
        Target::Dense(DType::F16) => 1,
        Target::Dense(DType::BF16) => 32,
        _ => 0,
    }
}

fn meta(key: &str, value: impl Into<MetaValue>) -> (String, MetaValue) {
    (key.to_string(), value.into())
}

fn u32_of(n: usize) -> MetaValue {
    MetaValue::U32(u32::try_from(n).unwrap_or(u32::MAX))
}

/// gguf-py's `size_label`: the parameter count in K/M/B/T with at least two digits.
fn size_label(params: usize) -> String {
    let n = params as f64;
    let (scaled, suffix) = if n > 1e12 {
        (n * 1e-12, "T")
    } else if n > 1e9 {
        (n * 1e-9, "B")
    } else if n > 1e6 {
        (n * 1e-6, "M")
    } else {
        (n * 1e-3, "K")
    };
    let digits = format!("{}", scaled.round() as u64)
        .trim_start_matches('0')
        .len();
    let fix = 2usize.saturating_sub(digits);
    format!("{scaled:.fix$}{suffix}")
}

/// `LlamaModel.set_gguf_parameters` keys and the vocabulary.
pub(super) fn text_metadata(
    dir: &Path,
    cfg: &CheckpointConfig,
    model_name: &str,
    ty: QuantType,
    params: usize,
) -> Result<Vec<(String, MetaValue)>> {
    let t = &cfg.model.text;
    let mut m = vec![
        meta("general.architecture", "llama"),
        meta("general.type", "model"),
        meta("general.name", model_name),
        meta("general.size_label", size_label(params)),
        meta("llama.block_count", u32_of(t.num_hidden_layers)),
        meta("llama.context_length", u32_of(t.max_position_embeddings)),
        meta("llama.embedding_length", u32_of(t.hidden_size)),
        meta("llama.feed_forward_length", u32_of(t.intermediate_size)),
        meta("llama.attention.head_count", u32_of(t.num_attention_heads)),
        meta(
            "llama.attention.head_count_kv",
            u32_of(t.num_key_value_heads),
        ),
        meta("llama.rope.freq_base", t.rope_theta as f32),
        meta(
            "llama.attention.layer_norm_rms_epsilon",
            t.rms_norm_eps as f32,
        ),
        meta("llama.attention.key_length", u32_of(t.head_dim)),
        meta("llama.attention.value_length", u32_of(t.head_dim)),
        meta("general.file_type", file_type(ty)),
        meta("llama.vocab_size", u32_of(t.vocab_size)),
        meta("llama.rope.dimension_count", u32_of(t.head_dim)),
        meta("general.quantization_version", 2u32),
    ];
    m.extend(vocab_metadata(dir, cfg)?);
    Ok(m)
}

/// `MmprojModel` and `SmolVLMModel` keys.
pub(super) fn mmproj_metadata(
    cfg: &CheckpointConfig,
    model_name: &str,
    policy: &QuantPolicy,
    params: usize,
) -> Vec<(String, MetaValue)> {
    let mut m = vec![
        meta("general.architecture", "clip"),
        meta("general.type", "mmproj"),
        meta("general.name", model_name),
        meta("general.size_label", size_label(params)),
        meta("general.file_type", target_file_type(policy.vision)),
        meta("clip.has_vision_encoder", true),
        meta(
            "clip.vision.projection_dim",
            u32_of(cfg.model.text.hidden_size),
        ),
    ];
    if let Some(v) = &cfg.model.vision {
        m.extend([
            meta("clip.vision.image_size", u32_of(v.image_size)),
            meta("clip.vision.patch_size", u32_of(v.patch_size)),
            meta("clip.vision.embedding_length", u32_of(v.hidden_size)),
            meta(
                "clip.vision.feed_forward_length",
                u32_of(v.intermediate_size),
            ),
            meta("clip.vision.block_count", u32_of(v.num_hidden_layers)),
            meta(
                "clip.vision.attention.head_count",
                u32_of(v.num_attention_heads),
            ),
        ]);
    }
    let (mean, std) = cfg
        .preprocessor
        .as_ref()
        .map_or(([0.5; 3], [0.5; 3]), |p| (p.image_mean, p.image_std));
    m.extend([
        meta(
            "clip.vision.image_mean",
            MetaValue::Array(MetaArray::F32(mean.to_vec())),
        ),
        meta(
            "clip.vision.image_std",
            MetaValue::Array(MetaArray::F32(std.to_vec())),
        ),
        meta("clip.projector_type", "idefics3"),
    ]);
    if let Some(v) = &cfg.model.vision {
        m.push(meta(
            "clip.vision.attention.layer_norm_epsilon",
            v.layer_norm_eps as f32,
        ));
    }
    m.push(meta(
        "clip.vision.projector.scale_factor",
        u32_of(cfg.model.scale_factor),
    ));
    m.push(meta("clip.use_gelu", true));
    if let Some(p) = &cfg.preprocessor {
        m.push(meta("clip.vision.preproc_image_size", p.longest_edge));
    }
    m.push(meta("general.quantization_version", 2u32));
    m
}

/// llama.cpp's `LLAMA_TOKEN_TYPE_*`.
const NORMAL: i32 = 1;
const CONTROL: i32 = 3;
const USER_DEFINED: i32 = 4;
const UNUSED: i32 = 5;

fn read_json(path: &Path) -> Result<Option<Value>> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| Error::InvalidConfig {
                path: path.to_path_buf(),
                problem: format!("not valid JSON: {e}"),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// The `tokenizer.ggml.pre` name of a byte-level BPE pre-tokenizer, if llama.cpp has one.
fn pre_tokenizer_name(pre: &Value) -> Option<&'static str> {
    let byte_level = |v: &Value| {
        v["type"] == "ByteLevel" && v.get("use_regex").and_then(Value::as_bool).unwrap_or(true)
    };
    let digits = |v: &Value| v["type"] == "Digits" && v["individual_digits"] == true;
    if byte_level(pre) {
        return Some("gpt-2");
    }
    match pre["pretokenizers"].as_array().map(Vec::as_slice) {
        Some([d, b]) if pre["type"] == "Sequence" && digits(d) && byte_level(b) => Some("smollm"),
        Some([b]) if pre["type"] == "Sequence" && byte_level(b) => Some("gpt-2"),
        _ => None,
    }
}

/// `tokenizer.ggml.*` from `tokenizer.json`, `tokenizer_config.json`, `config.json` and
/// `generation_config.json`, as the converter's `get_vocab_base` and gguf-py's `SpecialVocab`
/// build them for a byte-level BPE tokenizer.
fn vocab_metadata(dir: &Path, cfg: &CheckpointConfig) -> Result<Vec<(String, MetaValue)>> {
    let path = dir.join("tokenizer.json");
    let tok = read_json(&path)?.ok_or_else(|| Error::MissingFile { path: path.clone() })?;
    let bad = |problem: String| Error::InvalidConfig {
        path: path.clone(),
        problem,
    };
    if tok["model"]["type"] != "BPE" || tok["model"]["byte_fallback"] == true {
        return Err(bad(
            "only byte-level BPE tokenizers (SmolLM2's kind) can be written to GGUF".into(),
        ));
    }
    let pre = pre_tokenizer_name(&tok["pre_tokenizer"]).ok_or_else(|| {
        bad(format!(
            "pre-tokenizer {} has no llama.cpp equivalent (expected Digits + ByteLevel as in SmolLM2, or ByteLevel)",
            tok["pre_tokenizer"]
        ))
    })?;

    let n_vocab = cfg.model.text.vocab_size;
    let mut tokens: Vec<Option<(String, i32)>> = vec![None; n_vocab];
    let mut place = |id: Option<u64>, token: &str, ty: i32| -> Result<()> {
        let slot = id
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| tokens.get_mut(i))
            .ok_or_else(|| {
                bad(format!(
                    "token {token:?} has id {id:?}, outside the model's vocabulary of {n_vocab}"
                ))
            })?;
        *slot = Some((token.to_string(), ty));
        Ok(())
    };
    let vocab = tok["model"]["vocab"]
        .as_object()
        .ok_or_else(|| bad("`model.vocab` is not an object".into()))?;
    for (token, id) in vocab {
        place(id.as_u64(), token, NORMAL)?;
    }
    let added = tok["added_tokens"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    for a in added {
        let content = a["content"]
            .as_str()
            .ok_or_else(|| bad(format!("added token {a} has no `content` string")))?;
        let looks_special = content.starts_with("<|") && content.ends_with("|>");
        if a["special"] == true || looks_special {
            place(a["id"].as_u64(), content, CONTROL)?;
        } else {
            place(
                a["id"].as_u64(),
                &content.replace('\u{2581}', " "),
                USER_DEFINED,
            )?;
        }
    }
    let (tokens, types): (Vec<String>, Vec<i32>) = tokens
        .into_iter()
        .enumerate()
        .map(|(i, t)| t.unwrap_or_else(|| (format!("[PAD{i}]"), UNUSED)))
        .unzip();

    let merges = tok["model"]["merges"]
        .as_array()
        .map_or(&[][..], Vec::as_slice)
        .iter()
        .map(|m| match m {
            Value::String(s) => Ok(s.clone()),
            // Pairs (tokenizers ≥ 0.20) are joined as gguf-py does, a space inside a part
            // written as U+0120 so the string still splits in two.
            Value::Array(pair) => match pair.as_slice() {
                [Value::String(a), Value::String(b)] => {
                    let enc = |s: &str| s.replace(' ', "\u{120}");
                    Ok(format!("{} {}", enc(a), enc(b)))
                }
                _ => Err(bad(format!("merge {m} is not a pair of strings"))),
            },
            _ => Err(bad(format!("merge {m} is neither a string nor a pair"))),
        })
        .collect::<Result<Vec<_>>>()?;

    let tok_cfg = read_json(&dir.join("tokenizer_config.json"))?.unwrap_or(Value::Null);
    let model_cfg = read_json(&dir.join("config.json"))?.unwrap_or(Value::Null);
    let gen_cfg = read_json(&dir.join("generation_config.json"))?.unwrap_or(Value::Null);

    let mut m = Vec::new();
    if let Some(b) = tok_cfg["add_prefix_space"].as_bool() {
        m.push(meta("tokenizer.ggml.add_space_prefix", b));
    }
    m.extend([
        meta("tokenizer.ggml.model", "gpt2"),
        meta("tokenizer.ggml.pre", pre),
        meta(
            "tokenizer.ggml.tokens",
            MetaValue::Array(MetaArray::String(tokens)),
        ),
        meta(
            "tokenizer.ggml.token_type",
            MetaValue::Array(MetaArray::I32(types)),
        ),
    ]);
    if !merges.is_empty() {
        m.push(meta(
            "tokenizer.ggml.merges",
            MetaValue::Array(MetaArray::String(merges)),
        ));
    }
    for (typ, key) in [
        ("bos", "bos_token_id"),
        ("eos", "eos_token_id"),
        ("unk", "unknown_token_id"),
        ("pad", "padding_token_id"),
    ] {
        let id = special_id(typ, &tok_cfg, added, &model_cfg, &gen_cfg)
            .filter(|id| (*id as usize) < n_vocab);
        if let Some(id) = id {
            m.push(meta(&format!("tokenizer.ggml.{key}"), id));
        }
    }
    for typ in ["bos", "eos"] {
        if let Some(b) = tok_cfg[format!("add_{typ}_token")].as_bool() {
            m.push(meta(&format!("tokenizer.ggml.add_{typ}_token"), b));
        }
    }
    m.push(meta("tokenizer.chat_template", cfg.chat_template.clone()));
    Ok(m)
}

/// A special token's id: the token `tokenizer_config.json` names, found among the added tokens;
/// else `config.json`'s `<typ>_token_id` (top level or `text_config`); else
/// `generation_config.json`'s (the first of a list).
fn special_id(
    typ: &str,
    tok_cfg: &Value,
    added: &[Value],
    model_cfg: &Value,
    gen_cfg: &Value,
) -> Option<u32> {
    let entry = &tok_cfg[format!("{typ}_token")];
    let content = entry.as_str().or_else(|| entry["content"].as_str());
    let from_tokenizer = content.and_then(|c| {
        added
            .iter()
            .find(|a| a["content"].as_str() == Some(c))
            .and_then(|a| a["id"].as_u64())
    });
    let key = format!("{typ}_token_id");
    let id_of = |v: &Value| match v {
        Value::Array(a) => a.first().and_then(Value::as_u64),
        v => v.as_u64(),
    };
    from_tokenizer
        .or_else(|| model_cfg[&key].as_u64())
        .or_else(|| model_cfg["text_config"][&key].as_u64())
        .or_else(|| id_of(&gen_cfg[&key]))
        .and_then(|id| u32::try_from(id).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn size_labels_follow_gguf_py() {
        assert_eq!(size_label(107_712), "108K");
        assert_eq!(size_label(59_352), "59K");
        assert_eq!(size_label(256_484_928), "256M");
        assert_eq!(size_label(2_246_272_880), "2.2B");
        assert_eq!(size_label(5_000), "5.0K");
    }

    #[test]
    fn vocabularies_are_padded_to_the_model_and_typed() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models/tiny-smolvlm");
        let mut cfg = CheckpointConfig::from_dir(&dir).unwrap();
        cfg.model.text.vocab_size = 512;
        let m: BTreeMap<_, _> = vocab_metadata(&dir, &cfg).unwrap().into_iter().collect();
        let Some(MetaValue::Array(MetaArray::String(tokens))) = m.get("tokenizer.ggml.tokens")
        else {
            panic!("no token list")
        };
        let Some(MetaValue::Array(MetaArray::I32(types))) = m.get("tokenizer.ggml.token_type")
        else {
            panic!("no token types")
        };
        assert_eq!(tokens.len(), 512);
        assert_eq!(tokens[510], "[PAD510]");
        assert_eq!(
            (types[0], types[3], types[508], types[511]),
            (CONTROL, NORMAL, CONTROL, UNUSED)
        );
        assert_eq!(tokens[508], "<image>");
        assert_eq!(m["tokenizer.ggml.pre"], MetaValue::from("smollm"));
        assert_eq!(m["tokenizer.ggml.bos_token_id"], MetaValue::U32(1));
        assert_eq!(m["tokenizer.ggml.eos_token_id"], MetaValue::U32(509));
        assert_eq!(m["tokenizer.ggml.unknown_token_id"], MetaValue::U32(0));
        assert_eq!(m["tokenizer.ggml.padding_token_id"], MetaValue::U32(2));
        assert!(!m.contains_key("tokenizer.ggml.add_bos_token"));

        cfg.model.text.vocab_size = 500;
        let err = vocab_metadata(&dir, &cfg).unwrap_err().to_string();
        assert!(err.contains("outside the model's vocabulary"), "{err}");
    }

    #[test]
    fn pre_tokenizers_map_to_llama_cpp_names() {
        let smol: Value = serde_json::from_str(
            r#"{"type":"Sequence","pretokenizers":[{"type":"Digits","individual_digits":true},
                {"type":"ByteLevel","add_prefix_space":false,"use_regex":true}]}"#,
        )
        .unwrap();
        assert_eq!(pre_tokenizer_name(&smol), Some("smollm"));
        let gpt2: Value = serde_json::from_str(r#"{"type":"ByteLevel"}"#).unwrap();
        assert_eq!(pre_tokenizer_name(&gpt2), Some("gpt-2"));
        let other: Value = serde_json::from_str(r#"{"type":"Metaspace"}"#).unwrap();
        assert_eq!(pre_tokenizer_name(&other), None);
    }
}
