//! `tokenizer_config.json`, `chat_template.json` and `chat_template.jinja` → the chat template
//! and the names of the processor's special tokens.

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, Result};

/// Names of the special tokens the processor writes into prompts. They are looked up in the
/// tokenizer by name, never by number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SpecialTokenNames {
    /// Marks image-feature slots (`<image>`).
    pub(crate) image: String,
    /// Wraps each image (`<fake_token_around_image>`).
    pub(crate) fake_image: String,
    /// Precedes the global view (`<global-img>`).
    pub(crate) global_image: String,
    /// Ends a turn (`<end_of_utterance>`).
    pub(crate) end_of_utterance: String,
}

impl Default for SpecialTokenNames {
    /// The defaults transformers' SmolVLM processor falls back to.
    fn default() -> Self {
        SpecialTokenNames {
            image: "<image>".into(),
            fake_image: "<fake_token_around_image>".into(),
            global_image: "<global-img>".into(),
            end_of_utterance: "<end_of_utterance>".into(),
        }
    }
}

/// What `tokenizer_config.json` contributes.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct TokenizerConfig {
    /// A chat template stored in the tokenizer config, if any.
    pub(crate) chat_template: Option<String>,
    /// Processor token names (from `extra_special_tokens`, else the defaults).
    pub(crate) special: SpecialTokenNames,
    /// The declared end-of-sequence token, if any.
    pub(crate) eos_token: Option<String>,
    /// The declared beginning-of-sequence token, if any.
    pub(crate) bos_token: Option<String>,
}

impl TokenizerConfig {
    /// Parses `tokenizer_config.json` text. `path` is only used in error messages.
    pub(crate) fn parse(json: &str, path: &Path) -> Result<Self> {
        let invalid = |problem: String| Error::InvalidConfig {
            path: path.to_path_buf(),
            problem,
        };
        let raw: Value =
            serde_json::from_str(json).map_err(|e| invalid(format!("not valid JSON: {e}")))?;
        let chat_template = match raw.get("chat_template") {
            None | Some(Value::Null) => None,
            Some(v) => Some(template_from_value(v).map_err(invalid)?),
        };
        let mut special = SpecialTokenNames::default();
        if let Some(Value::Object(extra)) = raw.get("extra_special_tokens") {
            let get = |key: &str| extra.get(key).and_then(token_content);
            if let Some(t) = get("image_token") {
                special.image = t;
            }
            if let Some(t) = get("fake_image_token") {
                special.fake_image = t;
            }
            if let Some(t) = get("global_image_token") {
                special.global_image = t;
            }
            if let Some(t) = get("end_of_utterance_token") {
                special.end_of_utterance = t;
            }
        }
        Ok(TokenizerConfig {
            chat_template,
            special,
            eos_token: raw.get("eos_token").and_then(token_content),
            bos_token: raw.get("bos_token").and_then(token_content),
        })
    }
}

/// A token entry is either a plain string or an `AddedToken`-style object with `content`.
fn token_content(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("content").and_then(Value::as_str).map(str::to_string),
        _ => None,
    }
}

/// A template is a string, or a list of `{name, template}` entries of which `default` is used.
fn template_from_value(v: &Value) -> std::result::Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Array(entries) => {
            let named = |name: &str| {
                entries.iter().find_map(|e| {
                    (e.get("name").and_then(Value::as_str) == Some(name))
                        .then(|| e.get("template").and_then(Value::as_str))
                        .flatten()
                })
            };
            named("default")
                .map(str::to_string)
                .ok_or_else(|| "`chat_template` list has no `default` entry".to_string())
        }
        _ => Err("`chat_template` must be a string or a list of named templates".into()),
    }
}

/// Parses `chat_template.json` (`{"chat_template": "..."}`).
pub(crate) fn parse_chat_template_json(json: &str, path: &Path) -> Result<String> {
    #[derive(Deserialize)]
    struct Raw {
        chat_template: Value,
    }
    let invalid = |problem: String| Error::InvalidConfig {
        path: path.to_path_buf(),
        problem,
    };
    let raw: Raw = serde_json::from_str(json).map_err(|e| invalid(format!("{e}")))?;
    template_from_value(&raw.chat_template).map_err(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_templates_and_token_names() {
        let cfg = TokenizerConfig::parse(
            r#"{"chat_template":[{"name":"tool_use","template":"x"},{"name":"default","template":"y"}],
                "eos_token":{"content":"<end_of_utterance>","special":true},
                "extra_special_tokens":{"image_token":"<img>"}}"#,
            Path::new("t.json"),
        )
        .unwrap();
        assert_eq!(cfg.chat_template.as_deref(), Some("y"));
        assert_eq!(cfg.special.image, "<img>");
        assert_eq!(cfg.special.fake_image, "<fake_token_around_image>");
        assert_eq!(cfg.eos_token.as_deref(), Some("<end_of_utterance>"));
        let t =
            parse_chat_template_json(r#"{"chat_template":"abc"}"#, Path::new("c.json")).unwrap();
        assert_eq!(t, "abc");
    }
}
