//! Everything the agent says to an IdP: discovery, the token grants, the
//! device flow and revocation. One HTTP client, one error classification.

pub mod code;
pub mod device;
pub mod discovery;
pub mod grant;
pub mod http;
pub mod revoke;

pub use discovery::Metadata;

use regent_proto::OAuthConfig;

/// How an exchange with the IdP failed, classified by what the agent does next.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OAuthError {
    /// Network failure, 5xx, or an answer that is not OAuth at all: retry later, keep tokens.
    #[error("{0}")]
    Unavailable(String),
    /// `invalid_grant`: the refresh token is dead; the user must log in again.
    #[error("the IdP refused the refresh token ({0})")]
    InvalidGrant(String),
    /// Another OAuth error answer (`invalid_client`, `invalid_scope`, ...).
    #[error("the IdP answered {code}{}", description.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Protocol {
        /// The OAuth error code.
        code: String,
        /// The IdP's description, if any.
        description: Option<String>,
    },
    /// The IdP cannot do what the config asks (no device endpoint, ...).
    #[error("{0}")]
    Config(String),
}

/// The scopes to ask for: the configured ones (default `openid`), plus
/// `offline_access` when the IdP lists it or lists no scopes at all.
pub fn requested_scopes(config: &OAuthConfig, meta: &Metadata) -> Vec<String> {
    let mut scopes = if config.scopes.is_empty() {
        vec!["openid".to_string()]
    } else {
        config.scopes.clone()
    };
    let offers_offline = match &meta.scopes_supported {
        None => true,
        Some(list) => list.iter().any(|s| s == "offline_access"),
    };
    if offers_offline && !scopes.iter().any(|s| s == "offline_access") {
        scopes.push("offline_access".to_string());
    }
    scopes
}

/// The extra request parameters (`resource`, `audience`) of every grant.
pub fn extra_params(config: &OAuthConfig) -> Vec<(&'static str, String)> {
    let mut v = Vec::new();
    if let Some(r) = &config.resource {
        v.push(("resource", r.clone()));
    }
    if let Some(a) = &config.audience {
        v.push(("audience", a.clone()));
    }
    v
}
