//! The OpenAI wire format: chat-completion requests as clients send them, and the
//! `chat.completion`, `chat.completion.chunk` and `model` objects sent back. Only the fields
//! this server acts on are read; unknown fields are ignored, as OpenAI's own server does for
//! optional ones.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `POST /v1/chat/completions`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ChatRequest {
    /// The model to use; must be the one this server runs.
    pub(crate) model: String,
    /// The conversation.
    pub(crate) messages: Vec<ChatMessage>,
    /// Send server-sent events as tokens are produced.
    #[serde(default)]
    pub(crate) stream: bool,
    /// Streaming options (`include_usage`).
    #[serde(default)]
    pub(crate) stream_options: Option<StreamOptions>,
    /// Most tokens to generate (older name).
    #[serde(default)]
    pub(crate) max_tokens: Option<u64>,
    /// Most tokens to generate.
    #[serde(default)]
    pub(crate) max_completion_tokens: Option<u64>,
    /// Sampling temperature, 0 to 2; absent or 0 decodes greedily.
    #[serde(default)]
    pub(crate) temperature: Option<f32>,
    /// Nucleus sampling mass.
    #[serde(default)]
    pub(crate) top_p: Option<f32>,
    /// Seed of the sampler.
    #[serde(default)]
    pub(crate) seed: Option<i64>,
    /// One stop string or up to four.
    #[serde(default)]
    pub(crate) stop: Option<Stop>,
    /// `text`, `json_object` or `json_schema`.
    #[serde(default)]
    pub(crate) response_format: Option<ResponseFormat>,
    /// Number of choices; only 1 is served.
    #[serde(default)]
    pub(crate) n: Option<u32>,
}

/// `stream_options`.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct StreamOptions {
    /// Send a last chunk carrying `usage`.
    #[serde(default)]
    pub(crate) include_usage: bool,
}

/// One message; `content` is a string, a list of parts, or null.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ChatMessage {
    /// `system`, `developer`, `user` or `assistant`.
    pub(crate) role: String,
    /// Checked part by part in [`super::chat`], so errors can name the offending part.
    #[serde(default)]
    pub(crate) content: Value,
}

/// `stop`: one string or several.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum Stop {
    /// One stop string.
    One(String),
    /// Several.
    Many(Vec<String>),
}

/// `response_format`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum ResponseFormat {
    /// Free text.
    Text,
    /// Any JSON object.
    JsonObject,
    /// JSON valid under a schema.
    JsonSchema {
        /// The schema and its name.
        json_schema: JsonSchemaFormat,
    },
}

/// `response_format.json_schema`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct JsonSchemaFormat {
    /// The schema's name (informational: checked to be a string, then not used).
    #[serde(default)]
    #[allow(dead_code)]
    name: Option<String>,
    /// The JSON schema.
    #[serde(default)]
    pub(crate) schema: Option<Value>,
}

/// Token counts.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Usage {
    /// Prompt tokens, image tokens included.
    prompt_tokens: usize,
    /// Generated tokens.
    completion_tokens: usize,
    /// The sum.
    total_tokens: usize,
}

impl From<crate::Usage> for Usage {
    fn from(u: crate::Usage) -> Self {
        Usage {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            total_tokens: u.prompt_tokens + u.completion_tokens,
        }
    }
}

/// A `chat.completion` object.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ChatCompletion {
    /// `chatcmpl-…`.
    pub(crate) id: String,
    /// Always `chat.completion`.
    pub(crate) object: &'static str,
    /// Unix seconds.
    pub(crate) created: u64,
    /// The model id.
    pub(crate) model: String,
    /// The one answer.
    pub(crate) choices: Vec<Choice>,
    /// Token counts.
    pub(crate) usage: Usage,
}

/// One answer of a completion.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Choice {
    /// Always 0.
    pub(crate) index: u32,
    /// The answer.
    pub(crate) message: AssistantMessage,
    /// `stop` or `length`.
    pub(crate) finish_reason: &'static str,
    /// Not computed: always null.
    pub(crate) logprobs: Option<Value>,
}

/// The model's message.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct AssistantMessage {
    /// Always `assistant`.
    pub(crate) role: &'static str,
    /// The text.
    pub(crate) content: String,
}

/// A `chat.completion.chunk` object (one server-sent event).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ChatChunk {
    /// The same id on every chunk of a stream.
    pub(crate) id: String,
    /// Always `chat.completion.chunk`.
    pub(crate) object: &'static str,
    /// Unix seconds.
    pub(crate) created: u64,
    /// The model id.
    pub(crate) model: String,
    /// One delta, or none on the usage chunk.
    pub(crate) choices: Vec<ChunkChoice>,
    /// Only on the last chunk, when `stream_options.include_usage` asked for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) usage: Option<Usage>,
}

/// The delta of one chunk.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ChunkChoice {
    /// Always 0.
    pub(crate) index: u32,
    /// New text (and the role, on the first chunk).
    pub(crate) delta: Delta,
    /// Set on the last content chunk.
    pub(crate) finish_reason: Option<&'static str>,
    /// Not computed: always null.
    pub(crate) logprobs: Option<Value>,
}

/// New text of a chunk.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Delta {
    /// `assistant` on the first chunk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) role: Option<&'static str>,
    /// Text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) content: Option<String>,
}

/// A `model` object of `/v1/models`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ModelObject {
    /// The id clients put in `model`.
    pub(crate) id: String,
    /// Always `model`.
    pub(crate) object: &'static str,
    /// Unix seconds the server loaded it.
    pub(crate) created: u64,
    /// Always `vlm`.
    pub(crate) owned_by: &'static str,
}

/// OpenAI's `finish_reason` for how a generation ended.
pub(crate) fn finish_reason(f: crate::FinishReason) -> &'static str {
    match f {
        crate::FinishReason::MaxTokens | crate::FinishReason::ContextFull => "length",
        crate::FinishReason::Eos | crate::FinishReason::Stop | crate::FinishReason::Cancelled => {
            "stop"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_request_parses() {
        let req: ChatRequest = serde_json::from_value(serde_json::json!({
            "model": "m", "messages": [{"role": "user", "content": "hi"}],
            "stop": "END", "response_format": {"type": "json_schema",
            "json_schema": {"name": "x", "schema": {"type": "object"}, "strict": true}},
            "stream": true, "stream_options": {"include_usage": true}, "frequency_penalty": 0
        }))
        .unwrap();
        assert!(req.stream);
        assert!(matches!(req.stop, Some(Stop::One(ref s)) if s == "END"));
        assert!(matches!(
            req.response_format,
            Some(ResponseFormat::JsonSchema { .. })
        ));
    }
}
