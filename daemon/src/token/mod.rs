//! The leaf of the token machinery: an access token and its freshness
//! rules (`access`), and the per-target state machine that serves, waits for
//! and starts refreshes (`cell`). Nothing here knows about IdPs, stores or
//! the agent; the layer above supplies how a new token is minted.

pub mod access;
pub mod cell;

pub use access::AccessToken;
pub use cell::{Cell, Want};

/// Why no token could be served, classified by what the caller can do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Nothing usable, and nothing to get one with: the user must log in.
    #[error("{0}")]
    AuthRequired(String),
    /// The IdP is down or answered garbage; tokens are kept, retry later.
    #[error("{0}")]
    Unavailable(String),
    /// The IdP answered an OAuth error other than `invalid_grant`.
    #[error("the IdP answered {code}{}", description.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Idp {
        /// The OAuth error code.
        code: String,
        /// Its description, shortened.
        description: Option<String>,
    },
    /// The IdP cannot do what the configuration asks.
    #[error("{0}")]
    Config(String),
    /// The login state changed while a refresh was running (a login, a
    /// logout): the refresh's result was not installed.
    #[error("the login changed during the refresh")]
    Superseded,
    /// A bug.
    #[error("{0}")]
    Internal(String),
}

impl TokenError {
    /// Whether only a login (the user's) can help.
    pub fn needs_login(&self) -> bool {
        matches!(self, TokenError::AuthRequired(_) | TokenError::Superseded)
    }
}

impl TokenError {
    /// Whether a still-valid token may be served instead of this error.
    pub fn is_transient(&self) -> bool {
        matches!(self, TokenError::Unavailable(_) | TokenError::Idp { .. })
    }
}
