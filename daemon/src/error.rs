//! The agent's API error: a contract code, a message a person can act on, and
//! the resource involved. The one place errors become codes and HTTP answers.

use crate::agent::AgentError;
use crate::config::ConfigError;
use crate::login::LoginError;
use crate::oauth::OAuthError;
use crate::token::TokenError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use regent_proto::{ErrorBody, ErrorCode, ErrorDetail};

/// An error answer of the agent API.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The contract code (decides the status).
    pub code: ErrorCode,
    /// What went wrong and what to do; never a secret.
    pub message: String,
    /// The resource involved, if any.
    pub registry: Option<String>,
}

impl ApiError {
    /// An error with a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            registry: None,
        }
    }

    /// Names the resource involved.
    pub fn registry(mut self, name: &str) -> Self {
        self.registry = Some(name.to_string());
        self
    }

    /// `invalid_request`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, message)
    }

    /// `internal`.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, message)
    }
}

/// The code of an IdP failure.
fn oauth_code(e: &OAuthError) -> ErrorCode {
    match e {
        OAuthError::Unavailable(_) => ErrorCode::IdpUnavailable,
        OAuthError::InvalidGrant(_) => ErrorCode::RegistryAuthRequired,
        OAuthError::Protocol { .. } => ErrorCode::IdpError,
        OAuthError::Config(_) => ErrorCode::InvalidAuthConfig,
    }
}

impl From<TokenError> for ErrorCode {
    fn from(e: TokenError) -> ErrorCode {
        match e {
            TokenError::AuthRequired(_) | TokenError::Superseded => ErrorCode::RegistryAuthRequired,
            TokenError::Unavailable(_) => ErrorCode::IdpUnavailable,
            TokenError::Idp { .. } => ErrorCode::IdpError,
            TokenError::Config(_) => ErrorCode::InvalidAuthConfig,
            TokenError::Internal(_) => ErrorCode::Internal,
        }
    }
}

impl From<LoginError> for ApiError {
    fn from(e: LoginError) -> Self {
        let code = match &e {
            LoginError::TooMany(_) | LoginError::NoSuchLogin(_) => ErrorCode::InvalidRequest,
            LoginError::PortBusy { .. } | LoginError::Unsafe(_) => ErrorCode::LoginFailed,
            LoginError::Listen { .. } => ErrorCode::Internal,
            LoginError::Idp(o) | LoginError::Refused { error: o, .. } => oauth_code(o),
        };
        ApiError::new(code, e.to_string())
    }
}

impl From<AgentError> for ApiError {
    fn from(e: AgentError) -> Self {
        let resource = e.resource().map(str::to_string);
        let (code, message) = match e {
            AgentError::Unknown(_)
            | AgentError::NoneCovers(_)
            | AgentError::NoneConfigured(_)
            | AgentError::WrongKind { .. } => (ErrorCode::UnknownRegistry, e.to_string()),
            AgentError::Ambiguous(_)
            | AgentError::Invalid(_)
            | AgentError::StaticToken(..)
            | AgentError::NoUser(..)
            | AgentError::ThroughIdp { .. }
            | AgentError::Taken { .. }
            | AgentError::Shared { .. } => (ErrorCode::InvalidRequest, e.to_string()),
            AgentError::NotConfigured(..) => (ErrorCode::AuthNotConfigured, e.to_string()),
            AgentError::NotLent(_) => (ErrorCode::Forbidden, e.to_string()),
            AgentError::ConsentNeeded { .. } => (ErrorCode::ConsentRequired, e.to_string()),
            AgentError::LoginElsewhere(_) => (ErrorCode::RegistryAuthRequired, e.to_string()),
            AgentError::InvalidAuth { .. } => (ErrorCode::InvalidAuthConfig, e.to_string()),
            AgentError::Token {
                ref resource,
                ref err,
            } => {
                let code = ErrorCode::from(err.clone());
                let message = match code {
                    // The message names the command that fixes it.
                    ErrorCode::RegistryAuthRequired => {
                        format!("{resource}: {err}; log in with: regent login {resource}")
                    }
                    _ => format!("{resource}: {err}"),
                };
                (code, message)
            }
            AgentError::Login { err, .. } => {
                let api = ApiError::from(err);
                (api.code, api.message)
            }
            AgentError::ConfigRefused(ConfigError::Parse { .. })
            | AgentError::Config(ConfigError::Parse { .. }) => {
                (ErrorCode::InvalidConfig, e.to_string())
            }
            AgentError::ConfigRefused(_) | AgentError::Config(_) => {
                (ErrorCode::Internal, e.to_string())
            }
        };
        ApiError {
            code,
            message,
            registry: resource,
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if self.code == ErrorCode::Internal {
            tracing::error!(resource = ?self.registry, "internal error: {}", self.message);
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
                registry: self.registry,
            },
        };
        (status, axum::Json(body)).into_response()
    }
}
