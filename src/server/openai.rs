//! The OpenAI wire format: chat-completion requests as clients send them, and the
//! `chat.completion`, `chat.completion.chunk` and `model` objects sent back. Only the fields
//! this server acts on are read; unknown fields are ignored, as OpenAI's own server does for
//! optional ones.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `POST /v1/chat/completions`.
#[derive(Debug, Clone, Deserialize)]
pub struct ChatRequest {
    /// The model to use; must be the one this server runs.
    pub model: String,
    /// The conversation.
    pub messages: Vec<ChatMessage>,
    /// Send server-sent events as tokens are produced.
    #[serde(default)]
    pub stream: bool,
    /// Streaming options (`include_usage`).
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    /// Most tokens to generate (older name).
    #[serde(default)]
    pub max_tokens: Option<u64>,
    /// Most tokens to generate.
    #[serde(default)]
    pub max_completion_tokens: Option<u64>,
    /// Sampling temperature, 0 to 2; absent or 0 decodes greedily.
    #[serde(default)]
    pub temperature: Option<f32>,
    /// Nucleus sampling mass.
    #[serde(default)]
    pub top_p: Option<f32>,
    /// Seed of the sampler.
    #[serde(default)]
    pub seed: Option<i64>,
    /// One stop string or up to four.
    #[serde(default)]
    pub stop: Option<Stop>,
    /// `text`, `json_object` or `json_schema`.
    #[serde(default)]
    pub response_format: Option<ResponseFormat>,
    /// Number of choices; only 1 is served.
    #[serde(default)]
    pub n: Option<u32>,
}

/// `stream_options`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct StreamOptions {
    /// Send a last chunk carrying `usage`.
    #[serde(default)]
    pub include_usage: bool,
}

/// One message; `content` is a string, a list of parts, or null.
#[derive(Debug, Clone, Deserialize)]
pub struct ChatMessage {
    /// `system`, `developer`, `user` or `assistant`.
    pub role: String,
    /// Checked part by part in [`super::chat`], so errors can name the offending part.
    #[serde(default)]
    pub content: Value,
}

/// `stop`: one string or several.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    /// One stop string.
    One(String),
    /// Several.
    Many(Vec<String>),
}

/// `response_format`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
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
pub struct JsonSchemaFormat {
    /// The schema's name (informational).
    #[serde(default)]
    pub name: Option<String>,
    /// The JSON schema.
    #[serde(default)]
    pub schema: Option<Value>,
}

/// Token counts.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Usage {
    /// Prompt tokens, image tokens included.
    pub prompt_tokens: usize,
    /// Generated tokens.
    pub completion_tokens: usize,
    /// The sum.
    pub total_tokens: usize,
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
pub struct ChatCompletion {
    /// `chatcmpl-…`.
    pub id: String,
    /// Always `chat.completion`.
    pub object: &'static str,
    /// Unix seconds.
    pub created: u64,
    /// The model id.
    pub model: String,
    /// The one answer.
    pub choices: Vec<Choice>,
    /// Token counts.
    pub usage: Usage,
}

/// One answer of a completion.
#[derive(Debug, Clone, Serialize)]
pub struct Choice {
    /// Always 0.
    pub index: u32,
    /// The answer.
    pub message: AssistantMessage,
    /// `stop` or `length`.
    pub finish_reason: &'static str,
    /// Not computed: always null.
    pub logprobs: Option<Value>,
}

/// The model's message.
#[derive(Debug, Clone, Serialize)]
pub struct AssistantMessage {
    /// Always `assistant`.
    pub role: &'static str,
    /// The text.
    pub content: String,
}

/// A `chat.completion.chunk` object (one server-sent event).
#[derive(Debug, Clone, Serialize)]
pub struct ChatChunk {
    /// The same id on every chunk of a stream.
    pub id: String,
    /// Always `chat.completion.chunk`.
    pub object: &'static str,
    /// Unix seconds.
    pub created: u64,
    /// The model id.
    pub model: String,
    /// One delta, or none on the usage chunk.
    pub choices: Vec<ChunkChoice>,
    /// Only on the last chunk, when `stream_options.include_usage` asked for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

/// The delta of one chunk.
#[derive(Debug, Clone, Serialize)]
pub struct ChunkChoice {
    /// Always 0.
    pub index: u32,
    /// New text (and the role, on the first chunk).
    pub delta: Delta,
    /// Set on the last content chunk.
    pub finish_reason: Option<&'static str>,
    /// Not computed: always null.
    pub logprobs: Option<Value>,
}

/// New text of a chunk.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Delta {
    /// `assistant` on the first chunk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    /// Text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}

/// A `model` object of `/v1/models`.
#[derive(Debug, Clone, Serialize)]
pub struct ModelObject {
    /// The id clients put in `model`.
    pub id: String,
    /// Always `model`.
    pub object: &'static str,
    /// Unix seconds the server loaded it.
    pub created: u64,
    /// Always `vlm`.
    pub owned_by: &'static str,
}

/// OpenAI's `finish_reason` for how a generation ended.
pub fn finish_reason(f: crate::FinishReason) -> &'static str {
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
