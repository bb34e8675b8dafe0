//! The error codes of the agent API and the one mapping from code to HTTP status.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Every error code the agent API can answer with (contract: API v1).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// No usable token, and none can be had without the user.
    RegistryAuthRequired,
    /// No registry of that name.
    UnknownRegistry,
    /// The registry has no auth configured.
    AuthNotConfigured,
    /// Malformed JSON, unknown field, bad value, ambiguous registry.
    InvalidRequest,
    /// Issuer discovery failed or the IdP cannot do what is configured.
    InvalidAuthConfig,
    /// A login was denied, expired, or its state did not match.
    LoginFailed,
    /// The IdP answered with an OAuth error other than `invalid_grant`.
    IdpError,
    /// The IdP could not be reached and no valid token is cached.
    IdpUnavailable,
    /// Request body over 64 KiB.
    PayloadTooLarge,
    /// The registry refused the token.
    RegistryForbidden,
    /// The peer is another user.
    Forbidden,
    /// A bug; the message says what failed.
    Internal,
    /// `regent serve` only: no agent answers on the socket.
    AgentUnavailable,
    /// `regent serve` and the registry client: the registry could not be
    /// reached or answered something unusable.
    RegistryUnavailable,
    /// The config file does not parse (changed by hand meanwhile): the change
    /// asked for was refused; the message names the line.
    InvalidConfig,
    /// The resource would share a login with resources on other origins: the
    /// user decides (`share_login` true or false), the agent never does.
    ConsentRequired,
    /// A code this version does not know (a newer agent); kept for forward compatibility.
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The HTTP status the contract assigns to this code.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::RegistryAuthRequired => 503,
            ErrorCode::UnknownRegistry => 404,
            ErrorCode::AuthNotConfigured => 409,
            ErrorCode::InvalidRequest => 400,
            ErrorCode::InvalidAuthConfig => 422,
            ErrorCode::LoginFailed => 400,
            ErrorCode::IdpError => 502,
            ErrorCode::IdpUnavailable => 503,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::RegistryForbidden => 403,
            ErrorCode::Forbidden => 403,
            ErrorCode::AgentUnavailable => 503,
            ErrorCode::RegistryUnavailable => 502,
            ErrorCode::InvalidConfig => 409,
            ErrorCode::ConsentRequired => 409,
            ErrorCode::Internal | ErrorCode::Unknown => 500,
        }
    }

    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::RegistryAuthRequired => "registry_auth_required",
            ErrorCode::UnknownRegistry => "unknown_registry",
            ErrorCode::AuthNotConfigured => "auth_not_configured",
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidAuthConfig => "invalid_auth_config",
            ErrorCode::LoginFailed => "login_failed",
            ErrorCode::IdpError => "idp_error",
            ErrorCode::IdpUnavailable => "idp_unavailable",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::RegistryForbidden => "registry_forbidden",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::Internal => "internal",
            ErrorCode::AgentUnavailable => "agent_unavailable",
            ErrorCode::RegistryUnavailable => "registry_unavailable",
            ErrorCode::InvalidConfig => "invalid_config",
            ErrorCode::ConsentRequired => "consent_required",
            ErrorCode::Unknown => "unknown",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The body of every error answer: `{"error": {...}}`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ErrorBody {
    /// The error itself.
    pub error: ErrorDetail,
}

/// One error: its code, a message a person can act on, and the registry involved.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ErrorDetail {
    /// Machine-readable code.
    pub code: ErrorCode,
    /// Human-readable message; never contains a secret.
    pub message: String,
    /// The registry the error is about, where one is involved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_with_their_contract_names() {
        for code in [
            ErrorCode::RegistryAuthRequired,
            ErrorCode::UnknownRegistry,
            ErrorCode::AuthNotConfigured,
            ErrorCode::InvalidRequest,
            ErrorCode::InvalidAuthConfig,
            ErrorCode::LoginFailed,
            ErrorCode::IdpError,
            ErrorCode::IdpUnavailable,
            ErrorCode::PayloadTooLarge,
            ErrorCode::RegistryForbidden,
            ErrorCode::Forbidden,
            ErrorCode::Internal,
            ErrorCode::AgentUnavailable,
            ErrorCode::RegistryUnavailable,
            ErrorCode::InvalidConfig,
        ] {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap(), code);
        }
        assert_eq!(ErrorCode::RegistryAuthRequired.http_status(), 503);
        assert_eq!(ErrorCode::PayloadTooLarge.http_status(), 413);
    }

    #[test]
    fn an_unknown_code_from_a_newer_agent_still_parses() {
        let e: ErrorCode = serde_json::from_str("\"quota_exceeded\"").unwrap();
        assert_eq!(e, ErrorCode::Unknown);
    }
}
