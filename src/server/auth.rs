//! `Authorization: Bearer <key>` → pass or 401, compared in constant time so that response
//! timing says nothing about how much of a guessed key was right.

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::errors::ApiError;

/// The server's key, kept as its SHA-256 so that keys of any length compare in the same time.
#[derive(Clone)]
pub(crate) struct ApiKey {
    digest: [u8; 32],
}

impl ApiKey {
    /// The key clients must send.
    pub(crate) fn new(key: &str) -> Self {
        ApiKey {
            digest: Sha256::digest(key.as_bytes()).into(),
        }
    }

    /// Whether `candidate` is the key. Every byte of both digests is looked at whatever the
    /// input.
    fn matches(&self, candidate: &str) -> bool {
        let other: [u8; 32] = Sha256::digest(candidate.as_bytes()).into();
        let diff = self
            .digest
            .iter()
            .zip(other.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        // black_box keeps the optimiser from turning the fold into an early exit.
        std::hint::black_box(diff) == 0
    }
}

/// The key a request carries: `Authorization: Bearer <key>` (what the OpenAI clients send).
fn presented(req: &Request) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, key) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| key.trim())
}

/// Middleware: refuses requests without the key, when the server has one.
pub(crate) async fn require_key(
    State(key): State<Option<ApiKey>>,
    req: Request,
    next: Next,
) -> Response {
    match &key {
        None => next.run(req).await,
        Some(k) if presented(&req).is_some_and(|p| k.matches(p)) => next.run(req).await,
        Some(_) => ApiError::unauthorized().into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_key_matches() {
        let k = ApiKey::new("sk-local-123");
        assert!(k.matches("sk-local-123"));
        assert!(!k.matches("sk-local-12"));
        assert!(!k.matches("sk-local-1234"));
        assert!(!k.matches(""));
    }

    #[test]
    fn bearer_scheme_is_read_case_insensitively() {
        let req = Request::builder()
            .header(header::AUTHORIZATION, "bearer abc")
            .body(axum::body::Body::empty())
            .unwrap();
        assert_eq!(presented(&req), Some("abc"));
        let req = Request::builder()
            .header(header::AUTHORIZATION, "Basic abc")
            .body(axum::body::Body::empty())
            .unwrap();
        assert_eq!(presented(&req), None);
    }
}
