//! A failed request → an HTTP status and an OpenAI-shaped body:
//! `{"error": {"message", "type", "param", "code"}}`, which the official clients turn into
//! their typed exceptions (`BadRequestError`, `AuthenticationError`, …).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An error answer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ApiError {
    /// The HTTP status.
    pub(crate) status: StatusCode,
    /// What went wrong, for a person.
    pub(crate) message: String,
    /// OpenAI's error `type`: `invalid_request_error`, `authentication_error`, `server_error`…
    pub(crate) kind: &'static str,
    /// The request field at fault, when there is one.
    pub(crate) param: Option<String>,
    /// A stable machine-readable code (`model_not_found`, `server_overloaded`, …).
    pub(crate) code: Option<&'static str>,
    /// Seconds a client should wait before retrying (sent as `Retry-After`).
    pub(crate) retry_after: Option<u64>,
}

/// The body's shape.
#[derive(Serialize)]
struct Body<'a> {
    error: Detail<'a>,
}

#[derive(Serialize)]
struct Detail<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            kind,
            param: None,
            code: None,
            retry_after: None,
        }
    }

    /// 400: the request cannot be served as written.
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }

    /// 400 naming the field at fault.
    pub(crate) fn bad_param(param: &str, message: impl Into<String>) -> Self {
        ApiError {
            param: Some(param.to_string()),
            ..ApiError::bad_request(message)
        }
    }

    /// 401: missing or wrong API key.
    pub(crate) fn unauthorized() -> Self {
        ApiError {
            code: Some("invalid_api_key"),
            ..ApiError::new(
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                "missing or incorrect API key; send it as `Authorization: Bearer <key>`",
            )
        }
    }

    /// 404 with a code (`model_not_found`, `job_not_found`, `unknown_route`).
    pub(crate) fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code: Some(code),
            ..ApiError::new(StatusCode::NOT_FOUND, "invalid_request_error", message)
        }
    }

    /// 405 for a known path with another method.
    pub(crate) fn method_not_allowed() -> Self {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request_error",
            "this method is not allowed on this path",
        )
    }

    /// 409: the request conflicts with the resource's state.
    pub(crate) fn conflict(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::CONFLICT, "invalid_request_error", message)
    }

    /// 413: the body is larger than `--body-limit`.
    pub(crate) fn too_large(limit: usize) -> Self {
        ApiError {
            code: Some("request_too_large"),
            ..ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                format!("the request body is larger than the server's limit of {limit} bytes (--body-limit)"),
            )
        }
    }

    /// 503: the queue is full or the server is stopping.
    pub(crate) fn overloaded(message: impl Into<String>, retry_after: u64) -> Self {
        ApiError {
            code: Some("server_overloaded"),
            retry_after: Some(retry_after),
            ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "server_error", message)
        }
    }

    /// 500: the server failed.
    pub(crate) fn internal(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", message)
    }

    /// The JSON body alone (for an error event inside a stream, or a failed job).
    pub(crate) fn body(&self) -> serde_json::Value {
        serde_json::to_value(Body {
            error: Detail {
                message: &self.message,
                kind: self.kind,
                param: self.param.as_deref(),
                code: self.code,
            },
        })
        .unwrap_or(serde_json::Value::Null)
    }
}

impl From<crate::Error> for ApiError {
    /// The caller's input at fault → 400; the model or the runtime → 500.
    fn from(e: crate::Error) -> Self {
        match e.category() {
            crate::Category::Input => ApiError::bad_request(e.to_string()),
            _ => ApiError::internal(e.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body())).into_response();
        if let Some(secs) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_the_openai_shape() {
        let e = ApiError::bad_param("messages", "empty");
        assert_eq!(
            e.body(),
            serde_json::json!({"error": {"message": "empty", "type": "invalid_request_error",
                "param": "messages", "code": null}})
        );
    }

    #[test]
    fn overload_sets_retry_after() {
        let r = ApiError::overloaded("busy", 2).into_response();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[header::RETRY_AFTER], "2");
    }

    #[test]
    fn input_errors_are_400_and_runtime_errors_500() {
        let input = crate::Error::InvalidOption {
            name: "x",
            reason: "y".into(),
        };
        assert_eq!(ApiError::from(input).status, StatusCode::BAD_REQUEST);
        let runtime = crate::Error::io("f", std::io::Error::other("disk"));
        assert_eq!(
            ApiError::from(runtime).status,
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
