//! The JSON body extractor: 64 KiB at most, strict, errors in the contract's shape.

use crate::error::ApiError;
use axum::extract::{FromRequest, OptionalFromRequest, Request};
use axum::http::header::CONTENT_LENGTH;
use regent_proto::{ErrorCode, MAX_BODY_BYTES};
use serde::de::DeserializeOwned;

/// A JSON request body of type `T`.
pub struct JsonBody<T>(pub T);

fn too_large() -> ApiError {
    ApiError::new(
        ErrorCode::PayloadTooLarge,
        format!("request body is larger than {} KiB", MAX_BODY_BYTES / 1024),
    )
}

/// Reads the whole body within the limit.
async fn read(req: Request) -> Result<axum::body::Bytes, ApiError> {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(req.into_body(), MAX_BODY_BYTES)
        .await
        .map_err(|e| {
            let length_limit = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            if length_limit {
                too_large()
            } else {
                ApiError::invalid(format!("cannot read the request body: {e}"))
            }
        })
}

fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        // serde quotes string values in type errors; a misplaced token must not be echoed.
        let msg = redact_quoted(&e.to_string());
        ApiError::invalid(format!("invalid JSON body: {msg}"))
    })
}

/// Replaces the contents of `string "..."` in serde messages with `…`.
fn redact_quoted(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    while let Some(i) = rest.find("string \"") {
        out.push_str(&rest[..i + 8]);
        rest = &rest[i + 8..];
        match rest.find('"') {
            Some(j) => {
                out.push_str("…\"");
                rest = &rest[j + 1..];
            }
            None => {
                out.push('…');
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read(req).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::invalid("a JSON request body is required"));
        }
        parse(&bytes).map(JsonBody)
    }
}

/// An empty body reads as `None`, so `POST /v1/token` works without one.
impl<S: Send + Sync, T: DeserializeOwned> OptionalFromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Option<Self>, Self::Rejection> {
        let bytes = read(req).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        parse(&bytes).map(|v| Some(JsonBody(v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_values_are_redacted() {
        assert_eq!(
            redact_quoted("invalid type: string \"eyJsecret\", expected u64 at line 1 column 20"),
            "invalid type: string \"…\", expected u64 at line 1 column 20"
        );
        assert_eq!(redact_quoted("unknown field `x`"), "unknown field `x`");
    }
}
