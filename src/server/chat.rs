//! A chat-completion request → the conversation and generation options the runtime takes,
//! checked field by field (each error names its field), then the generation itself with the
//! shared image-embedding cache in front of the vision tower.

use std::ops::ControlFlow;

use serde_json::Value;

use super::errors::ApiError;
use super::images::ImagePolicy;
use super::openai::{ChatRequest, ResponseFormat, Stop};
use crate::embedding_cache::EmbeddingCache;
use crate::{
    CancelToken, Constraint, Content, Engine, Event, GenerateOptions, Generation, ImageInput,
    Message, Role, Sampling,
};

/// Per-request limits set on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Most tokens one request may generate; also the default when a request names none.
    pub(crate) max_tokens_cap: usize,
    /// Most images in one request.
    pub(crate) max_images: usize,
}

/// A message whose images are still URLs.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PlannedMessage {
    role: Role,
    parts: Vec<PlannedPart>,
}

#[derive(Debug, Clone, PartialEq)]
enum PlannedPart {
    Text(String),
    Image { url: String, param: String },
}

/// What a valid request asks for.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ChatPlan {
    /// The conversation, images unresolved.
    pub(crate) messages: Vec<PlannedMessage>,
    /// Generation options.
    pub(crate) opts: GenerateOptions,
    /// Server-sent events wanted.
    pub(crate) stream: bool,
    /// A usage chunk at the end of the stream wanted.
    pub(crate) include_usage: bool,
}

/// Checks `req` against the served model and the limits.
pub(crate) fn plan(
    req: &ChatRequest,
    model_id: &str,
    limits: &Limits,
) -> Result<ChatPlan, ApiError> {
    if req.model != model_id {
        return Err(ApiError::not_found(
            "model_not_found",
            format!(
                "the model `{}` does not exist; this server runs `{model_id}`",
                req.model
            ),
        ));
    }
    if req.messages.is_empty() {
        return Err(ApiError::bad_param(
            "messages",
            "at least one message is required",
        ));
    }
    if req.n.is_some_and(|n| n != 1) {
        return Err(ApiError::bad_param("n", "only n = 1 is supported"));
    }
    let mut messages = Vec::with_capacity(req.messages.len());
    let mut images = 0usize;
    for (i, m) in req.messages.iter().enumerate() {
        let role = match m.role.as_str() {
            "system" | "developer" => Role::System,
            "user" => Role::User,
            "assistant" => Role::Assistant,
            other => {
                return Err(ApiError::bad_param(
                    &format!("messages[{i}].role"),
                    format!("unsupported role `{other}`; use system, developer, user or assistant"),
                ))
            }
        };
        let parts = parts(&m.content, i)?;
        images += parts
            .iter()
            .filter(|p| matches!(p, PlannedPart::Image { .. }))
            .count();
        messages.push(PlannedMessage { role, parts });
    }
    if images > limits.max_images {
        return Err(ApiError::bad_param(
            "messages",
            format!(
                "{images} images in one request; this server takes at most {} (--max-images)",
                limits.max_images
            ),
        ));
    }
    Ok(ChatPlan {
        messages,
        opts: options(req, limits)?,
        stream: req.stream,
        include_usage: req.stream_options.as_ref().is_some_and(|o| o.include_usage),
    })
}

/// The parts of `messages[i].content`: a string, a list of text and image_url parts, or null.
fn parts(content: &Value, i: usize) -> Result<Vec<PlannedPart>, ApiError> {
    let param = format!("messages[{i}].content");
    match content {
        Value::Null => Ok(Vec::new()),
        Value::String(s) => Ok(vec![PlannedPart::Text(s.clone())]),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(j, part)| {
                let param = format!("{param}[{j}]");
                let kind = part.get("type").and_then(Value::as_str);
                match kind {
                    Some("text") => part
                        .get("text")
                        .and_then(Value::as_str)
                        .map(|t| PlannedPart::Text(t.to_string()))
                        .ok_or_else(|| {
                            ApiError::bad_param(&param, "a text part needs a string `text`")
                        }),
                    Some("image_url") => {
                        let url = part.get("image_url").and_then(|u| match u {
                            Value::String(s) => Some(s.as_str()),
                            other => other.get("url").and_then(Value::as_str),
                        });
                        url.map(|u| PlannedPart::Image {
                            url: u.to_string(),
                            param: format!("{param}.image_url.url"),
                        })
                        .ok_or_else(|| {
                            ApiError::bad_param(&param, "an image_url part needs `image_url.url`")
                        })
                    }
                    Some(other) => Err(ApiError::bad_param(
                        &param,
                        format!("unsupported content part type `{other}`; use text or image_url"),
                    )),
                    None => Err(ApiError::bad_param(&param, "a content part needs a `type`")),
                }
            })
            .collect(),
        _ => Err(ApiError::bad_param(
            &param,
            "content must be a string, a list of parts or null",
        )),
    }
}

/// Sampling, limits, stop strings and the response format.
fn options(req: &ChatRequest, limits: &Limits) -> Result<GenerateOptions, ApiError> {
    let asked = req.max_completion_tokens.or(req.max_tokens);
    let max_new_tokens = match asked {
        Some(0) => {
            return Err(ApiError::bad_param(
                "max_tokens",
                "0 would generate nothing; use at least 1",
            ))
        }
        Some(n) => (n.min(limits.max_tokens_cap as u64)) as usize,
        None => limits.max_tokens_cap,
    };
    let temperature = req.temperature.unwrap_or(0.0);
    if !(0.0..=2.0).contains(&temperature) {
        return Err(ApiError::bad_param(
            "temperature",
            format!("{temperature} is outside [0, 2]"),
        ));
    }
    if let Some(p) = req.top_p {
        if !(p > 0.0 && p <= 1.0) {
            return Err(ApiError::bad_param(
                "top_p",
                format!("{p} is outside (0, 1]"),
            ));
        }
    }
    // Temperature 0 (or none) is greedy decoding: answers repeat exactly, which is what a
    // local model's callers usually want.
    let sampling = if temperature == 0.0 {
        Sampling::Greedy
    } else {
        Sampling::Random {
            temperature,
            top_k: None,
            top_p: req.top_p,
            min_p: None,
        }
    };
    let stop = match &req.stop {
        None => Vec::new(),
        Some(Stop::One(s)) => vec![s.clone()],
        Some(Stop::Many(v)) if v.len() <= 4 => v.clone(),
        Some(Stop::Many(v)) => {
            return Err(ApiError::bad_param(
                "stop",
                format!("{} stop strings; at most 4", v.len()),
            ))
        }
    };
    let constraint = match &req.response_format {
        None | Some(ResponseFormat::Text) => None,
        Some(ResponseFormat::JsonObject) => Some(Constraint::json_schema(
            serde_json::json!({"type": "object"}),
        )),
        Some(ResponseFormat::JsonSchema { json_schema }) => match &json_schema.schema {
            Some(schema @ Value::Object(_)) => Some(Constraint::json_schema(schema.clone())),
            Some(_) => {
                return Err(ApiError::bad_param(
                    "response_format.json_schema.schema",
                    "the schema must be a JSON object",
                ))
            }
            None => Some(Constraint::json_schema(serde_json::json!({}))),
        },
    };
    Ok(GenerateOptions {
        max_new_tokens,
        sampling,
        seed: req.seed.map_or(0, |s| s as u64),
        stop,
        constraint,
        ..GenerateOptions::default()
    })
}

/// Fetches or reads every image. Blocking.
pub(crate) fn resolve(
    messages: Vec<PlannedMessage>,
    policy: &ImagePolicy,
) -> Result<Vec<Message>, ApiError> {
    messages
        .into_iter()
        .map(|m| {
            let content = m
                .parts
                .into_iter()
                .map(|p| match p {
                    PlannedPart::Text(t) => Ok(Content::Text(t)),
                    PlannedPart::Image { url, param } => Ok(Content::Image(ImageInput::Encoded(
                        policy.resolve(&url, &param)?,
                    ))),
                })
                .collect::<Result<Vec<_>, ApiError>>()?;
            Ok(Message::new(m.role, content))
        })
        .collect()
}

/// Runs the conversation: every message but the last is history, the last is sent. Images
/// whose embeddings the cache holds skip the vision tower; new ones are stored for the next
/// request.
pub(crate) fn generate(
    engine: &Engine,
    cache: Option<&EmbeddingCache>,
    mut messages: Vec<Message>,
    opts: &GenerateOptions,
    cancel: &CancelToken,
    on_event: &mut dyn FnMut(Event<'_>) -> ControlFlow<()>,
) -> crate::Result<Generation> {
    let mut session = engine.session();
    session.set_embedding_cache(cache.cloned());
    let last = messages.pop().ok_or_else(|| crate::Error::InvalidOption {
        name: "messages",
        reason: "at least one message is required".into(),
    })?;
    for m in messages {
        session.push(m);
    }
    session.send_streaming(last, opts, cancel, on_event)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_tokens_cap: 100,
        max_images: 2,
    };

    fn request(extra: Value) -> ChatRequest {
        let mut base =
            serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
        if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                b.insert(k.clone(), v.clone());
            }
        }
        serde_json::from_value(base).unwrap()
    }

    #[test]
    fn defaults_are_greedy_and_capped() {
        let p = plan(&request(serde_json::json!({})), "m", &LIMITS).unwrap();
        assert_eq!(p.opts.sampling, Sampling::Greedy);
        assert_eq!(p.opts.max_new_tokens, 100);
        let p = plan(
            &request(serde_json::json!({"max_tokens": 5000})),
            "m",
            &LIMITS,
        )
        .unwrap();
        assert_eq!(p.opts.max_new_tokens, 100);
        let p = plan(
            &request(serde_json::json!({"max_tokens": 50, "max_completion_tokens": 7})),
            "m",
            &LIMITS,
        )
        .unwrap();
        assert_eq!(p.opts.max_new_tokens, 7);
    }

    #[test]
    fn bad_fields_are_named() {
        let cases = [
            (serde_json::json!({"model": "other"}), None),
            (serde_json::json!({"temperature": 3.0}), Some("temperature")),
            (serde_json::json!({"top_p": 0.0}), Some("top_p")),
            (serde_json::json!({"max_tokens": 0}), Some("max_tokens")),
            (serde_json::json!({"n": 2}), Some("n")),
            (
                serde_json::json!({"stop": ["a", "b", "c", "d", "e"]}),
                Some("stop"),
            ),
            (serde_json::json!({"messages": []}), Some("messages")),
            (
                serde_json::json!({"messages": [{"role": "tool", "content": "x"}]}),
                Some("messages[0].role"),
            ),
            (
                serde_json::json!({"messages": [{"role": "user", "content": [{"type": "audio"}]}]}),
                Some("messages[0].content[0]"),
            ),
            (
                serde_json::json!({"messages": [{"role": "user", "content": 5}]}),
                Some("messages[0].content"),
            ),
        ];
        for (extra, param) in cases {
            let e = plan(&request(extra.clone()), "m", &LIMITS).unwrap_err();
            assert_eq!(e.param.as_deref(), param, "{extra}: {}", e.message);
        }
    }

    #[test]
    fn images_are_counted_and_capped() {
        let img = serde_json::json!({"type": "image_url", "image_url": {"url": "data:x"}});
        let msgs = serde_json::json!({"messages": [{"role": "user",
            "content": [img.clone(), img.clone(), {"type": "text", "text": "?"}]}]});
        let p = plan(&request(msgs), "m", &LIMITS).unwrap();
        assert_eq!(p.messages[0].parts.len(), 3);
        let msgs = serde_json::json!({"messages": [{"role": "user", "content": [img.clone(), img.clone(), img]}]});
        let e = plan(&request(msgs), "m", &LIMITS).unwrap_err();
        assert!(e.message.contains("at most 2"), "{}", e.message);
    }

    #[test]
    fn response_formats_become_constraints() {
        let p = plan(
            &request(serde_json::json!({"response_format": {"type": "json_object"}})),
            "m",
            &LIMITS,
        )
        .unwrap();
        assert!(matches!(p.opts.constraint, Some(Constraint::JsonSchema(_))));
        let e = plan(
            &request(
                serde_json::json!({"response_format": {"type": "json_schema",
                "json_schema": {"name": "x", "schema": 3}}}),
            ),
            "m",
            &LIMITS,
        )
        .unwrap_err();
        assert_eq!(
            e.param.as_deref(),
            Some("response_format.json_schema.schema")
        );
    }
}
