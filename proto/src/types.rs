//! Request and answer bodies of the agent API v1.
//!
//! Requests reject unknown fields (a typo must not be silently ignored);
//! answers accept them, so an older client can read a newer agent.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;
use time::OffsetDateTime;

/// `GET /v1/health`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Health {
    /// The agent's version.
    pub version: String,
    /// The API version it serves (1).
    pub api: u32,
    /// The agent's process id.
    pub pid: u32,
    /// The token store in use (`keyutils`, `secret-service`, `file`, `memory`).
    pub store: String,
}

/// What a running agent writes into its lock file
/// ([`crate::paths::agent_lock`]), so a client that cannot find its socket
/// the usual way (cron, `sudo -u`, ssh without `XDG_RUNTIME_DIR`) finds it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct AgentRecord {
    /// The agent's process id.
    pub pid: u32,
    /// The socket it serves on.
    pub socket: PathBuf,
    /// Whether systemd runs it (socket activation): the socket stays
    /// reachable (systemd listens) after the agent exits.
    #[serde(default)]
    pub systemd: bool,
}

/// How a registry authenticates: OAuth/OIDC, or a static token from a file.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum AuthConfig {
    /// OAuth 2.1 / OIDC public client.
    Oauth(OAuthConfig),
    /// A static Bearer token read from a file.
    Bearer(BearerConfig),
}

/// OAuth configuration of a registry (public client: no secret).
///
/// It appears in requests and, flattened, in answers; so it accepts unknown
/// fields here (an older client reads a newer agent), and the agent rejects
/// them when it decodes a request or its config (a typo is never ignored).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct OAuthConfig {
    /// The issuer identifier; discovery must return exactly this.
    pub issuer: String,
    /// The public client's id.
    pub client_id: String,
    /// Scopes to ask for; empty means `openid` (plus `offline_access` where offered).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// `audience` parameter for IdPs that want one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// RFC 8707 resource indicator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Fixed loopback port for the browser login's redirect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_port: Option<u16>,
}

/// A static Bearer token kept in a file, read on every request. Unknown
/// fields: as for [`OAuthConfig`].
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct BearerConfig {
    /// Path of the file holding the token.
    pub token_file: PathBuf,
}

/// Whether a token can be served for a registry.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AuthState {
    /// A token can be served now without the user.
    Authenticated,
    /// There was a login, but its access token expired and no refresh token is left.
    Expired,
    /// No login yet, logged out, or the IdP refused the refresh.
    AuthRequired,
}

/// The auth part of a [`RegistryStatus`]: the config as given plus its state.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct AuthStatus {
    /// The configuration as given.
    #[serde(flatten)]
    pub config: AuthConfig,
    /// Whether a token can be served now.
    pub status: AuthState,
    /// Expiry of the cached access token.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub expires_at: Option<OffsetDateTime>,
    /// Whether a refresh token is held.
    pub has_refresh_token: bool,
    /// Whether the token set is in a persistent store (false: memory only).
    pub persisted: bool,
    /// Who is logged in, as the IdP's ID token names them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// The other resources that share this login (same issuer, client id and
    /// scopes): a login or logout of one is a login or logout of all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shared_with: Vec<String>,
}

/// A registry and its auth status.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct RegistryStatus {
    /// The registry's name.
    pub name: String,
    /// The registry's base URL.
    pub url: String,
    /// Auth config and status, or null when the registry is public.
    pub auth: Option<AuthStatus>,
}

/// `GET /v1/registries`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct RegistryList {
    /// Every configured registry, sorted by name.
    pub registries: Vec<RegistryStatus>,
}

/// `PUT /v1/registries/{name}`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PutRegistry {
    /// The registry's base URL.
    pub url: String,
    /// Its auth, or null for none.
    #[serde(default)]
    pub auth: Option<AuthConfig>,
}

/// `POST /v1/token`.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// The registry; may be left out when exactly one is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    /// How long the token must stay valid (default 30 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_valid_secs: Option<u64>,
}

/// The answer of `POST /v1/token`. Its `Debug` never shows the token.
#[derive(Serialize, Deserialize, Clone, PartialEq)]
pub struct TokenResponse {
    /// The Bearer token.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// When the token expires; null when unknown (static tokens, IdPs that do not say).
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// The granted scopes, space separated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &"[redacted]")
            .field("token_type", &self.token_type)
            .field("expires_at", &self.expires_at)
            .field("scope", &self.scope)
            .finish()
    }
}

/// `POST /v1/token/invalidate`. Its `Debug` never shows the token.
#[derive(Serialize, Deserialize, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InvalidateRequest {
    /// The registry; may be left out when exactly one is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    /// The token a resource server refused.
    pub access_token: String,
}

impl fmt::Debug for InvalidateRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InvalidateRequest")
            .field("registry", &self.registry)
            .field("access_token", &"[redacted]")
            .finish()
    }
}

/// The two ways to log in.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LoginFlow {
    /// Authorization code with PKCE, through a browser.
    Browser,
    /// RFC 8628 device authorization grant.
    Device,
}

impl fmt::Display for LoginFlow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LoginFlow::Browser => "browser",
            LoginFlow::Device => "device",
        })
    }
}

/// `POST /v1/login`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// The registry; may be left out when exactly one is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    /// Which flow to run.
    pub flow: LoginFlow,
}

/// A login just started: what the user must do to finish it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Login {
    /// The login's id, for `GET`/`DELETE /v1/login/{id}`.
    pub id: String,
    /// The registry being logged in to.
    #[serde(default)]
    pub registry: String,
    /// The flow.
    pub flow: LoginFlow,
    /// When the login gives up.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// Browser flow: the URL to open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorize_url: Option<String>,
    /// Device flow: where to enter the code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification_uri: Option<String>,
    /// Device flow: the same URL with the code filled in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification_uri_complete: Option<String>,
    /// Device flow: the code to enter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_code: Option<String>,
    /// Device flow: seconds between the agent's polls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<u64>,
}

/// Where a login stands.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LoginState {
    /// Waiting for the user.
    Pending,
    /// Tokens obtained and stored.
    Succeeded,
    /// Denied, cancelled, or refused by the IdP (`error` says why).
    Failed,
    /// The deadline passed.
    Expired,
}

impl LoginState {
    /// Whether the login has ended.
    pub fn is_final(self) -> bool {
        self != LoginState::Pending
    }
}

/// `GET /v1/login/{id}`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct LoginStatus {
    /// The login's id.
    pub id: String,
    /// Where it stands.
    pub status: LoginState,
    /// Why it failed or expired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The registry being logged in to.
    #[serde(default)]
    pub registry: String,
    /// Who logged in, once the login succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
}

/// `POST /v1/logout`.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LogoutRequest {
    /// The registry; may be left out when exactly one is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    /// Also log out the resources that share the login. Without it, a
    /// shared login is refused with `invalid_request` naming them.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all: bool,
}

/// What happened to the login at the IdP on logout.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Revocation {
    /// The IdP accepted the revocation (RFC 7009).
    Revoked,
    /// The IdP offers no revocation endpoint: the refresh token stays valid
    /// there until it expires.
    NotOffered,
    /// The revocation failed (the agent's log says why).
    Failed,
    /// Nothing was held, so nothing was revoked.
    NotNeeded,
    /// A value this version does not know (a newer agent).
    #[serde(other)]
    Unknown,
}

/// The answer of `POST /v1/logout`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct LogoutResponse {
    /// Whether the IdP accepted the revocation of the refresh token.
    pub revoked: bool,
    /// Whether a stored token set was deleted.
    pub deleted: bool,
    /// What happened at the IdP.
    #[serde(default = "unknown_revocation")]
    pub revocation: Revocation,
    /// Every resource that was logged out (the one named and those sharing its login).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logged_out: Vec<String>,
}

fn unknown_revocation() -> Revocation {
    Revocation::Unknown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_config_is_tagged() {
        let a: AuthConfig = serde_json::from_str(
            r#"{"type":"oauth","issuer":"https://idp.example","client_id":"c","scopes":["openid"]}"#,
        )
        .unwrap();
        assert!(matches!(a, AuthConfig::Oauth(ref o) if o.client_id == "c"));
        let b: AuthConfig = serde_json::from_str(r#"{"type":"bearer","token_file":"/t"}"#).unwrap();
        assert_eq!(
            b,
            AuthConfig::Bearer(BearerConfig {
                token_file: "/t".into()
            })
        );
    }

    #[test]
    fn registry_status_flattens_the_config_and_reads_back() {
        let s = RegistryStatus {
            name: "corp".into(),
            url: "https://r.example".into(),
            auth: Some(AuthStatus {
                config: AuthConfig::Oauth(OAuthConfig {
                    issuer: "https://idp.example".into(),
                    client_id: "c".into(),
                    scopes: vec![],
                    audience: None,
                    resource: None,
                    callback_port: None,
                }),
                status: AuthState::Authenticated,
                expires_at: Some(time::macros::datetime!(2026-01-02 03:04:05 UTC)),
                has_refresh_token: true,
                persisted: true,
                account: Some("alice".into()),
                shared_with: vec![],
            }),
        };
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["auth"]["type"], "oauth");
        assert_eq!(v["auth"]["status"], "authenticated");
        assert_eq!(v["auth"]["expires_at"], "2026-01-02T03:04:05Z");
        let back: RegistryStatus = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(back, s);
        // A newer agent's extra field inside `auth` does not break this client.
        let mut newer = v;
        newer["auth"]["pkce_method"] = "S256".into();
        newer["auth"]["refresh_at"] = "2026-01-02T03:00:00Z".into();
        assert_eq!(serde_json::from_value::<RegistryStatus>(newer).unwrap(), s);
    }

    #[test]
    fn token_debug_hides_the_token() {
        let t = TokenResponse {
            access_token: "sekrit-value".into(),
            token_type: "Bearer".into(),
            expires_at: None,
            scope: None,
        };
        assert!(!format!("{t:?}").contains("sekrit"));
        let i = InvalidateRequest {
            registry: None,
            access_token: "sekrit-value".into(),
        };
        assert!(!format!("{i:?}").contains("sekrit"));
    }
}
