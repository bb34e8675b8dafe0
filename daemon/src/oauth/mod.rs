//! Everything the agent says to an IdP: discovery (and the metadata cache),
//! the token grants, the device flow and revocation. One HTTP client
//! ([`http::IdpClient`]), one error classification ([`OAuthError`]).

pub mod challenge;
pub mod client;
pub mod code;
pub mod device;
pub mod discovery;
pub mod dpop;
pub mod exchange;
pub mod explain;
pub mod grant;
pub mod http;
pub mod register;
pub mod resource;
pub mod revoke;

pub use client::ClientAuth;
pub use discovery::{Issuer, Issuers, Metadata, Pkce};
pub use grant::Tokens;

/// How an exchange with the IdP failed, classified by what the agent does next.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OAuthError {
    /// Network failure, 5xx, or an answer that is not OAuth at all: retry later, keep tokens.
    #[error("{0}")]
    Unavailable(String),
    /// `invalid_grant`: the refresh token (or code) is dead; the user must log in again.
    #[error("{0}")]
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

/// What a token is for (RFC 8707 `resource`, and `audience` for IdPs that
/// want one): the parameters of every authorization, token and refresh
/// request for it. Access tokens are kept per target.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Target {
    /// The resource indicator.
    pub resource: Option<String>,
    /// The `audience` parameter.
    pub audience: Option<String>,
}

impl Target {
    /// The extra request parameters.
    pub fn params(&self) -> Vec<(&'static str, String)> {
        let mut v = Vec::new();
        if let Some(r) = &self.resource {
            v.push(("resource", r.clone()));
        }
        if let Some(a) = &self.audience {
            v.push(("audience", a.clone()));
        }
        v
    }

    /// A stable name for the stored form ("" when there are no parameters).
    pub fn key(&self) -> String {
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(self.params())
            .finish()
    }

    /// The target a [`Target::key`] names.
    pub fn from_key(key: &str) -> Target {
        let mut t = Target::default();
        for (k, v) in url::form_urlencoded::parse(key.as_bytes()) {
            match &*k {
                "resource" => t.resource = Some(v.into_owned()),
                "audience" => t.audience = Some(v.into_owned()),
                _ => {}
            }
        }
        t
    }
}

/// How the scopes of a login are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScopeRule {
    /// Configured by hand (version 1): the configured ones (default
    /// `openid`), plus `offline_access` when the IdP lists it or lists no
    /// scopes at all.
    Configured,
    /// Discovered from the resource: as they are (none: no `scope` at all),
    /// plus `offline_access` only when the AS lists it.
    Discovered,
}

/// The scopes to ask for.
pub fn requested_scopes(configured: &[String], meta: &Metadata, rule: ScopeRule) -> Vec<String> {
    let mut scopes = match (rule, configured.is_empty()) {
        (ScopeRule::Configured, true) => vec!["openid".to_string()],
        _ => configured.to_vec(),
    };
    // A discovered resource's scopes are the server's; where its AS is an
    // OpenID Provider that offers `openid`, that is asked too, so the login
    // says who logged in (an ID token). Never where no scope is asked at all.
    let offers_openid = meta
        .scopes_supported
        .as_ref()
        .is_some_and(|l| l.iter().any(|s| s == "openid"));
    if rule == ScopeRule::Discovered
        && offers_openid
        && !scopes.is_empty()
        && !scopes.iter().any(|s| s == "openid")
    {
        scopes.insert(0, "openid".to_string());
    }
    let offers_offline = match (&meta.scopes_supported, rule) {
        (None, ScopeRule::Configured) => true,
        (None, ScopeRule::Discovered) => false,
        (Some(list), _) => list.iter().any(|s| s == "offline_access"),
    };
    if offers_offline && !scopes.iter().any(|s| s == "offline_access") {
        scopes.push("offline_access".to_string());
    }
    scopes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_by_rule() {
        let meta = |supported: Option<&[&str]>| {
            let mut m = Metadata::defaults(
                "https://i",
                &regent_proto::Endpoints {
                    authorization: "https://i/a".into(),
                    token: "https://i/t".into(),
                },
            );
            m.scopes_supported = supported.map(|s| s.iter().map(|x| x.to_string()).collect());
            m
        };
        let none: &[String] = &[];
        assert_eq!(
            requested_scopes(none, &meta(None), ScopeRule::Configured),
            ["openid", "offline_access"]
        );
        assert!(requested_scopes(none, &meta(None), ScopeRule::Discovered).is_empty());
        let basic = vec!["mcp:basic".to_string()];
        assert_eq!(
            requested_scopes(
                &basic,
                &meta(Some(&["mcp:basic", "offline_access"])),
                ScopeRule::Discovered
            ),
            ["mcp:basic", "offline_access"]
        );
        assert_eq!(
            requested_scopes(&basic, &meta(Some(&["mcp:basic"])), ScopeRule::Discovered),
            ["mcp:basic"]
        );
        // An OpenID Provider's openid is asked too, to know who logged in; never alone.
        assert_eq!(
            requested_scopes(
                &basic,
                &meta(Some(&["openid", "mcp:basic"])),
                ScopeRule::Discovered
            ),
            ["openid", "mcp:basic"]
        );
        assert!(requested_scopes(none, &meta(Some(&["openid"])), ScopeRule::Discovered).is_empty());
    }

    #[test]
    fn target_keys_round_trip() {
        let t = Target {
            resource: Some("https://r.example/a?b=c&d".into()),
            audience: Some("api".into()),
        };
        assert_eq!(Target::from_key(&t.key()), t);
        assert_eq!(Target::default().key(), "");
        assert_eq!(Target::from_key(""), Target::default());
    }
}
