//! A configured registry as the agent holds it: its config, its IdP metadata
//! (discovered once), and its token cell.

use crate::error::ApiError;
use crate::oauth::Metadata;
use crate::store::store_key;
use crate::token_cache::TokenCell;
use regent_proto::{AuthConfig, OAuthConfig};
use std::sync::Arc;
use tokio::sync::OnceCell;

/// One registry. Replaced as a whole when its config changes, so a login or a
/// refresh that started under the old config can tell (pointer identity).
pub struct Registry {
    /// Its name.
    pub name: String,
    /// Its base URL.
    pub url: String,
    /// Its auth config as given.
    pub auth: Option<AuthConfig>,
    /// OAuth state, when the auth is OAuth.
    pub oauth: Option<OAuth>,
}

/// The OAuth side of a registry.
pub struct OAuth {
    /// The config.
    pub config: OAuthConfig,
    /// Its store key (contract derivation).
    pub key: String,
    /// IdP metadata, discovered at configure time or on first need.
    pub meta: Arc<OnceCell<Arc<Metadata>>>,
    /// Its tokens; shared with the registry it replaced when the URL and the
    /// OAuth config did not change, so a refresh in flight lands in the same cell.
    pub tokens: Arc<TokenCell>,
}

impl Registry {
    /// A registry; `meta` when discovery already ran. When `previous` has the
    /// same URL and OAuth config, its token cell and metadata carry over.
    pub fn new(
        name: String,
        url: String,
        auth: Option<AuthConfig>,
        meta: Option<Metadata>,
        previous: Option<&Registry>,
    ) -> Self {
        let oauth = match &auth {
            Some(AuthConfig::Oauth(c)) => {
                let same = previous
                    .filter(|p| p.url == url)
                    .and_then(|p| p.oauth.as_ref())
                    .filter(|o| o.config == *c);
                Some(match same {
                    Some(o) => OAuth {
                        key: o.key.clone(),
                        config: c.clone(),
                        meta: o.meta.clone(),
                        tokens: o.tokens.clone(),
                    },
                    None => OAuth {
                        key: store_key(&url, &c.issuer, &c.client_id),
                        config: c.clone(),
                        meta: Arc::new(match meta {
                            Some(m) => OnceCell::new_with(Some(Arc::new(m))),
                            None => OnceCell::new(),
                        }),
                        tokens: Arc::new(TokenCell::default()),
                    },
                })
            }
            _ => None,
        };
        Registry {
            name,
            url,
            auth,
            oauth,
        }
    }

    /// Whether `other` holds the same tokens (same cell).
    pub fn same_tokens(&self, other: &Registry) -> bool {
        match (&self.oauth, &other.oauth) {
            (Some(a), Some(b)) => Arc::ptr_eq(&a.tokens, &b.tokens),
            _ => false,
        }
    }

    /// The OAuth side, or `auth_not_configured` / a bearer-specific error.
    pub fn oauth(&self) -> Result<&OAuth, ApiError> {
        match (&self.oauth, &self.auth) {
            (Some(o), _) => Ok(o),
            (None, Some(AuthConfig::Bearer(_))) => Err(ApiError::invalid(format!(
                "registry {} uses a static token file; there is nothing to log in or out of",
                self.name
            ))
            .registry(&self.name)),
            (None, _) => Err(not_configured(&self.name)),
        }
    }
}

/// `auth_not_configured` for a registry.
pub fn not_configured(name: &str) -> ApiError {
    ApiError::new(
        regent_proto::ErrorCode::AuthNotConfigured,
        format!(
            "registry {name} has no auth configured; set it with: \
             regent config set-registry-auth --registry {name} --issuer URL --client-id ID"
        ),
    )
    .registry(name)
}

/// Checks a registry name: 1 to 64 of `A-Z a-z 0-9 . _ -`, starting with a letter or digit.
pub fn validate_name(name: &str) -> Result<(), String> {
    let ok_len = (1..=64).contains(&name.len());
    let ok_first = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok_len && ok_first && ok_chars {
        Ok(())
    } else {
        Err(format!(
            "invalid registry name {name:?}: use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        ))
    }
}

/// Checks a registry URL: http(s), with a host, no credentials.
pub fn validate_url(url: &str) -> Result<(), String> {
    let u = url::Url::parse(url).map_err(|e| format!("invalid registry URL {url:?}: {e}"))?;
    if !matches!(u.scheme(), "https" | "http") || u.host().is_none() {
        return Err(format!(
            "invalid registry URL {url:?}: it must be an http(s) URL with a host"
        ));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err("a registry URL must not carry credentials; configure auth instead".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_urls() {
        assert!(validate_name("corp-registry.v2_a").is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name("-x").is_err());
        assert!(validate_name("a/b").is_err());
        assert!(validate_name(&"a".repeat(65)).is_err());
        assert!(validate_url("https://r.example/api").is_ok());
        assert!(validate_url("ftp://r.example").is_err());
        assert!(validate_url("https://u:p@r.example").is_err());
        assert!(validate_url("not a url").is_err());
    }
}
