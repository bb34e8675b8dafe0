//! The agent's API error: a contract code, a message a person can act on, and
//! the registry involved. The one place errors become HTTP answers.

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
    /// The registry involved, if any.
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

    /// Names the registry involved.
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

    /// `registry_auth_required`, naming the command that fixes it.
    pub fn auth_required(registry: &str, why: &str) -> Self {
        Self::new(
            ErrorCode::RegistryAuthRequired,
            format!("{why}; log in with: regent login {registry}"),
        )
        .registry(registry)
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
            tracing::error!(registry = ?self.registry, "internal error: {}", self.message);
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
