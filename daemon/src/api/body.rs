//! The JSON body extractor: 64 KiB at most, strict, errors in the contract's shape.

use crate::error::ApiError;
use axum::extract::{FromRequest, OptionalFromRequest, Request};
use axum::http::header::CONTENT_LENGTH;
use regent_proto::{ErrorCode, MAX_BODY_BYTES};
use serde::de::DeserializeOwned;
use serde::Serialize;

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

/// A request body. Most reject unknown fields by type, in the one parse; those
/// holding an `AuthConfig` (shared with answers, so lenient by type) get the
/// deeper check of what the decode ignored. `/v1/token` pays for one parse only.
pub trait RequestBody: DeserializeOwned + Serialize {
    /// Whether decoding may silently ignore fields somewhere inside.
    const LENIENT_INSIDE: bool = false;
}

impl RequestBody for regent_proto::TokenRequest {}
impl RequestBody for regent_proto::InvalidateRequest {}
impl RequestBody for regent_proto::LoginRequest {}
impl RequestBody for regent_proto::LogoutRequest {}
impl RequestBody for regent_proto::PutRegistry {
    const LENIENT_INSIDE: bool = true;
}
impl RequestBody for regent_proto::AuthConfig {
    const LENIENT_INSIDE: bool = true;
}
impl RequestBody for regent_proto::PutMcp {}
impl RequestBody for regent_proto::PutIdp {}
impl RequestBody for regent_proto::IdTokenRequest {}
impl RequestBody for regent_proto::ChallengeRequest {}
impl RequestBody for regent_proto::PutForward {}
impl RequestBody for regent_proto::ForwardSession {}
impl RequestBody for regent_proto::DoctorRequest {}

/// Decodes a request body as the extractor does: JSON, strict (no unknown
/// field, at any depth), errors in the contract's shape with quoted values redacted.
pub fn decode<T: RequestBody>(bytes: &[u8]) -> Result<T, ApiError> {
    parse(bytes)
}

fn parse<T: RequestBody>(bytes: &[u8]) -> Result<T, ApiError> {
    // serde quotes string values in type errors; a misplaced token must not be echoed.
    let invalid = |e: serde_json::Error| {
        ApiError::invalid(format!("invalid JSON body: {}", redact(&e.to_string())))
    };
    let decoded: T = serde_json::from_slice(bytes).map_err(invalid)?;
    if !T::LENIENT_INSIDE {
        return Ok(decoded);
    }
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(invalid)?;
    match crate::strict::ignored_keys(&value, &decoded).first() {
        None => Ok(decoded),
        Some(path) => Err(ApiError::invalid(format!(
            "invalid JSON body: unknown field `{}`",
            redact_long_name(path)
        ))),
    }
}

/// A path as the client sent it, unless it is longer than any the API has.
fn redact_long_name(path: &str) -> String {
    if path.chars().count() > 60 {
        "…".to_string()
    } else {
        path.to_string()
    }
}

/// Removes what a client sent from serde's messages: string values quoted
/// as `string "..."`, and long unknown field names (a token pasted as a key).
fn redact(msg: &str) -> String {
    redact_long_backticked(&redact_quoted(msg))
}

/// Replaces an unknown field or variant name longer than any name of the
/// API. The name may itself contain backticks, so it runs to the last
/// "`, expected" (or "`, there are no"), which serde writes after it and
/// before the names it expected (ours: none has that in it).
fn redact_long_backticked(msg: &str) -> String {
    const LONGEST_NAME: usize = 40;
    for open in ["unknown field `", "unknown variant `"] {
        let Some(i) = msg.find(open) else { continue };
        let start = i + open.len();
        let end = ["`, expected", "`, there are no"]
            .iter()
            .filter_map(|sep| msg[start..].rfind(sep))
            .max()
            .or_else(|| msg[start..].rfind("`, "))
            .map(|j| start + j)
            .unwrap_or(msg.len());
        if msg[start..end].chars().count() > LONGEST_NAME {
            return format!("{}…{}", &msg[..start], &msg[end..]);
        }
    }
    msg.to_string()
}

/// Replaces the contents of `string "..."` in serde messages with `…`. The
/// value may itself contain quotes, so it runs to the last `", expected`
/// (serde puts what it expected last), or to the end of the message.
fn redact_quoted(msg: &str) -> String {
    const OPEN: &str = "string \"";
    let Some(i) = msg.find(OPEN) else {
        return msg.to_string();
    };
    let start = i + OPEN.len();
    match msg[start..].rfind("\", expected") {
        Some(j) => format!("{}…{}", &msg[..start], &msg[start + j..]),
        None => format!("{}…\"", &msg[..start]),
    }
}

impl<S: Send + Sync, T: RequestBody> FromRequest<S> for JsonBody<T> {
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
impl<S: Send + Sync, T: RequestBody> OptionalFromRequest<S> for JsonBody<T> {
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
        let key = "k".repeat(60);
        let m = redact(&format!("unknown field `{key}`, expected `registry`"));
        assert_eq!(m, "unknown field `…`, expected `registry`");
    }

    /// Found by the `api_request` fuzz target: a quote inside the value.
    #[test]
    fn fuzz_regression_quote_in_value() {
        let input = format!("\"\\\"{}\"", "'".repeat(50));
        let e = decode::<regent_proto::InvalidateRequest>(input.as_bytes()).unwrap_err();
        assert!(!e.message.contains("''''"), "{}", e.message);
        assert!(
            e.message.contains("expected struct InvalidateRequest"),
            "{}",
            e.message
        );
    }

    /// Found by the `api_request` fuzz target: quotes and escapes inside a key.
    #[test]
    fn fuzz_regression_quoted_key() {
        let input = br#"{"string "'"gstristring"""u"#;
        let e = decode::<regent_proto::InvalidateRequest>(input).unwrap_err();
        assert_eq!(e.code, regent_proto::ErrorCode::InvalidRequest);
        let e = decode::<regent_proto::InvalidateRequest>(
            format!(r#"{{"`e{}y": 1}}"#, "x".repeat(45)).as_bytes(),
        )
        .unwrap_err();
        assert!(!e.message.contains("xxxxx"), "{}", e.message);
        let long = format!(r#"{{"{}": 1}}"#, "eyJ".repeat(20));
        let e = decode::<regent_proto::TokenRequest>(long.as_bytes()).unwrap_err();
        assert!(!e.message.contains(&"eyJ".repeat(20)), "{}", e.message);
        // A short unknown name is shown, whatever serde lists after it; a
        // long one that spells serde's separator is still hidden.
        let e = decode::<regent_proto::TokenRequest>(br#"{"scope": 1}"#).unwrap_err();
        assert!(e.message.contains("unknown field `scope`"), "{}", e.message);
        let sneaky = format!(r#"{{"{}`, expected x": 1}}"#, "eyJ".repeat(20));
        let e = decode::<regent_proto::TokenRequest>(sneaky.as_bytes()).unwrap_err();
        assert!(!e.message.contains(&"eyJ".repeat(20)), "{}", e.message);
    }
}
