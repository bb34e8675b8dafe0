//! Request and answer bodies of the agent API v1.
//!
//! Requests reject unknown fields (a typo must not be silently ignored);
//! answers accept them, so an older client can read a newer agent.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;
use time::OffsetDateTime;

/// A secret on the wire (a token, a client secret, a private key): sent as
/// the plain string it is, never shown by `Debug`. Read it with
/// [`Secret::expose`] (or as a `&str`) where it is used.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Default)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The secret itself, owned.
    pub fn into_inner(self) -> String {
        self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl std::ops::Deref for Secret {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret(s.to_string())
    }
}

/// The network settings an HTTP client of regent's uses: never a password.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkStatus {
    /// The proxy for `https` URLs (its password shown as `***`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub https_proxy: Option<String>,
    /// The proxy for `http` URLs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_proxy: Option<String>,
    /// Where the proxies come from: `config`, `environment`, or `none`.
    pub proxy_source: String,
    /// Hosts reached directly (curl's `NO_PROXY` rules; loopback always).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_proxy: Option<String>,
    /// The certificate authorities trusted, one source each, in words.
    pub ca_sources: Vec<String>,
    /// The client certificate presented where a server asks for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<PathBuf>,
}

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
    /// How long what the store keeps lasts, in words (e.g. the kernel
    /// keyring's: lost at reboot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub durability: Option<String>,
    /// When the agent started.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub started_at: Option<OffsetDateTime>,
    /// Whether systemd started it (socket activation).
    #[serde(default, skip_serializing_if = "is_false")]
    pub systemd: bool,
    /// Logins waiting for the user.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending_logins: Vec<LoginStatus>,
    /// The forwarding socket (`regent ssh`), while one is served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward_socket: Option<PathBuf>,
    /// Answered over a forwarded socket: this agent runs on another machine,
    /// and lends tokens only.
    #[serde(default, skip_serializing_if = "is_false")]
    pub forwarded: bool,
    /// The network settings in use (proxies, CAs, client certificate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkStatus>,
}

/// `POST /v1/reload`: the config file was read again and applies.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ReloadResponse {
    /// Registries, MCP servers and IdPs configured now.
    pub resources: usize,
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
    /// The arguments it was started with (none is secret), so a restart
    /// starts it the same way (`--store file` stays `--store file`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
}

/// How a resource authenticates.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AuthConfig {
    /// OAuth 2.1 / OIDC: a user's login.
    Oauth(OAuthConfig),
    /// A static Bearer token read from a file.
    Bearer(BearerConfig),
    /// OAuth client credentials: a machine, no user (MCP servers).
    ClientCredentials(ClientCredentialsConfig),
    /// Enterprise-managed authorization: a token exchanged from the login at
    /// an enterprise IdP (MCP servers).
    Enterprise(EnterpriseConfig),
    /// Workload identity federation: a platform-issued workload JWT (read
    /// fresh from a file) exchanged by the RFC 7523 JWT bearer grant (MCP
    /// servers; SEP-1933).
    Workload(WorkloadConfig),
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// How the client id of a discovered resource came to be.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ClientOrigin {
    /// Given by the user (`--client-id`).
    Preregistered,
    /// Registered by regent (RFC 7591 dynamic client registration).
    Registered,
    /// A client ID metadata document URL.
    MetadataDocument,
}

/// The endpoints of an authorization server that publishes no metadata
/// (an MCP 2025-03-26 server's defaults).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoints {
    /// The authorization endpoint.
    pub authorization: String,
    /// The token endpoint.
    pub token: String,
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
    /// Found from the resource itself (RFC 9728): the scopes are asked as
    /// they are (none: no `scope` at all), `offline_access` only where listed.
    #[serde(default, skip_serializing_if = "is_false")]
    pub discovered: bool,
    /// The IdP supports PKCE S256 although its metadata does not say so
    /// (Microsoft Entra ID); S256 is used either way.
    #[serde(default, skip_serializing_if = "is_false")]
    pub assume_pkce_s256: bool,
    /// How the client id came to be (discovered resources).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<ClientOrigin>,
    /// Where the AS metadata is, when not at the issuer's well-known URLs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_url: Option<String>,
    /// The endpoints of an AS without metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<Endpoints>,
    /// A login of its own, shared with no other resource: set by the agent
    /// when the AS refused to mint this resource's token from a shared
    /// login (`invalid_target`, RFC 8707).
    #[serde(default, skip_serializing_if = "is_false")]
    pub own_grant: bool,
    /// Whether its logins bind tokens to a key the agent holds (DPoP, RFC 9449).
    #[serde(default, skip_serializing_if = "DpopMode::is_default")]
    pub dpop: DpopMode,
    /// The resource's metadata names DPoP (the algorithms it takes, or bound
    /// tokens required): set by discovery; where `auto` binds tokens.
    #[serde(default, skip_serializing_if = "is_false")]
    pub resource_dpop: bool,
}

/// When a login binds its tokens to a key (DPoP, RFC 9449).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DpopMode {
    /// Where both sides say they take it: the authorization server offers
    /// ES256 proofs and the resource's metadata names DPoP (a token bound
    /// for a server that cannot check the binding would be refused there).
    #[default]
    Auto,
    /// Always: proofs are sent whatever the metadata says.
    Always,
    /// Never.
    Never,
}

impl DpopMode {
    /// Whether it is the default (left out of the config).
    pub fn is_default(&self) -> bool {
        *self == DpopMode::default()
    }
}

/// How a client authenticates at the token endpoint.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TokenAuthMethod {
    /// A public client: the client id only.
    None,
    /// The secret in an HTTP Basic header.
    ClientSecretBasic,
    /// The secret in the form body.
    ClientSecretPost,
    /// A JWT signed with the client's private key (RFC 7523).
    PrivateKeyJwt,
}

/// OAuth client credentials (no user). The secret or key is in the store.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ClientCredentialsConfig {
    /// The authorization server's issuer.
    pub issuer: String,
    /// The client id.
    pub client_id: String,
    /// How it authenticates.
    pub method: TokenAuthMethod,
    /// Scopes to ask for (none: no `scope`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// RFC 8707 resource indicator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Where the AS metadata is, when not at the issuer's well-known URLs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_url: Option<String>,
    /// As [`OAuthConfig::dpop`].
    #[serde(default, skip_serializing_if = "DpopMode::is_default")]
    pub dpop: DpopMode,
    /// As [`OAuthConfig::resource_dpop`].
    #[serde(default, skip_serializing_if = "is_false")]
    pub resource_dpop: bool,
}

/// Workload identity federation: no user and no client secret; the
/// machine's platform identity (a Kubernetes projected service-account
/// token, a CI provider's OIDC token) is the assertion of each grant.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct WorkloadConfig {
    /// The server's authorization server.
    pub issuer: String,
    /// The client id there, where the AS wants one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The file the workload JWT is read from, fresh for every grant.
    pub token_file: PathBuf,
    /// Scopes to ask for (none: no `scope`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// The server's resource identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Where the AS metadata is, when not at the issuer's well-known URLs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_url: Option<String>,
    /// As [`OAuthConfig::dpop`].
    #[serde(default, skip_serializing_if = "DpopMode::is_default")]
    pub dpop: DpopMode,
    /// As [`OAuthConfig::resource_dpop`].
    #[serde(default, skip_serializing_if = "is_false")]
    pub resource_dpop: bool,
}

/// Enterprise-managed authorization (MCP "cross-app access"): the login at
/// enterprise IdP `idp` is exchanged (RFC 8693, an ID-JAG) for this server's
/// token at its AS (RFC 7523 jwt-bearer). The client secret is in the store.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct EnterpriseConfig {
    /// The enterprise IdP (an `idp` resource).
    pub idp: String,
    /// The server's authorization server.
    pub issuer: String,
    /// The client id at that AS.
    pub client_id: String,
    /// How it authenticates at that AS.
    pub method: TokenAuthMethod,
    /// Scopes to ask for (none: no `scope`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// The server's resource identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Where the AS metadata is, when not at the issuer's well-known URLs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_url: Option<String>,
    /// As [`OAuthConfig::dpop`].
    #[serde(default, skip_serializing_if = "DpopMode::is_default")]
    pub dpop: DpopMode,
    /// As [`OAuthConfig::resource_dpop`].
    #[serde(default, skip_serializing_if = "is_false")]
    pub resource_dpop: bool,
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
    /// Its tokens are bound to a key only the agent holds (DPoP): each
    /// request needs a proof from the agent.
    #[serde(default, skip_serializing_if = "is_false")]
    pub dpop_bound: bool,
}

/// The kinds of resources.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum ResourceKind {
    /// An MCP server registry.
    Registry,
    /// A remote MCP server (streamable HTTP).
    Mcp,
    /// Any other HTTPS API behind an authorization server (git, a package
    /// registry, a cluster), for the credential helpers.
    Api,
    /// An enterprise IdP (cross-app access); its URL is its issuer.
    Idp,
}

impl ResourceKind {
    /// What a person calls it.
    pub fn noun(self) -> &'static str {
        match self {
            ResourceKind::Registry => "registry",
            ResourceKind::Mcp => "MCP server",
            ResourceKind::Api => "API",
            ResourceKind::Idp => "IdP",
        }
    }

    /// "a" or "an", for [`ResourceKind::noun`].
    pub fn article(self) -> &'static str {
        match self {
            ResourceKind::Registry => "a",
            ResourceKind::Mcp | ResourceKind::Api | ResourceKind::Idp => "an",
        }
    }

    /// Its name in URLs and query strings (`registry`, `mcp`, `idp`).
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Registry => "registry",
            ResourceKind::Mcp => "mcp",
            ResourceKind::Api => "api",
            ResourceKind::Idp => "idp",
        }
    }
}

impl std::str::FromStr for ResourceKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "registry" => Ok(ResourceKind::Registry),
            "mcp" => Ok(ResourceKind::Mcp),
            "api" => Ok(ResourceKind::Api),
            "idp" => Ok(ResourceKind::Idp),
            other => Err(format!(
                "{other:?} is not a kind of resource (registry, mcp, api, idp)"
            )),
        }
    }
}

/// A registry and its auth status.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct RegistryStatus {
    /// The registry's name.
    pub name: String,
    /// What kind of resource it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<ResourceKind>,
    /// The registry's base URL.
    pub url: String,
    /// Auth config and status, or null when the registry is public.
    pub auth: Option<AuthStatus>,
    /// Its tokens may be borrowed over agent forwarding (`regent ssh`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward: Option<ForwardInfo>,
}

/// How a resource is served over agent forwarding.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ForwardInfo {
    /// A forwarded token needs a yes on this machine for each session (`regent ssh` asks).
    #[serde(default, skip_serializing_if = "is_false")]
    pub confirm: bool,
    /// The last token served over forwarding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_use: Option<ForwardUse>,
}

/// A token served over forwarding.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ForwardUse {
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Through which session: the host `regent ssh` went to, or `ssh -R` for a
    /// forward made by hand.
    pub via: String,
}

/// `PUT /v1/forward/{name}`: whether a resource is forwardable.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct PutForward {
    /// Served over the forwarding socket.
    pub forwardable: bool,
    /// Only in sessions where the user said yes (`regent ssh` asks).
    #[serde(default, skip_serializing_if = "is_false")]
    pub confirm: bool,
}

/// `POST /v1/forward/sessions`: a `regent ssh` session, so forwarded requests
/// are told apart (by the peer pid of the local `ssh` that relays them).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ForwardSession {
    /// The pid of the `ssh` process `regent ssh` started.
    pub ssh_pid: u32,
    /// Where it went, for status.
    pub host: String,
    /// Resources needing confirmation that the user said yes to for it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approved: Vec<String>,
}

/// `GET /v1/forward`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ForwardList {
    /// The forwarding socket, while one is served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket: Option<PathBuf>,
    /// The forwardable resources.
    pub resources: Vec<RegistryStatus>,
    /// The `regent ssh` sessions open now.
    pub sessions: Vec<ForwardSession>,
}

/// `GET /v1/registries`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct RegistryList {
    /// Every configured registry, sorted by name.
    pub registries: Vec<RegistryStatus>,
}

/// `PUT /v1/registries/{name}`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct PutRegistry {
    /// The registry's base URL.
    pub url: String,
    /// Its auth, or null for none.
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    /// With no `auth`: find out from the registry itself whether it wants
    /// auth, and which (RFC 9728), instead of adding it as public.
    #[serde(default, skip_serializing_if = "is_false")]
    pub discover: bool,
    /// The OAuth client's secret, where the IdP gave it one (Google's
    /// "installed app" clients): kept in the token store, never the config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<Secret>,
    /// Where its login would be one that resources on other origins use:
    /// `true` shares it, `false` gives it a login of its own. Left out, such
    /// a change is refused with `consent_required`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_login: Option<bool>,
    /// When its logins bind tokens to the agent's key (DPoP); left out: `auto`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop: Option<DpopMode>,
}

/// What the user asks for when adding an MCP server; everything else is
/// discovered from the server (RFC 9728) and its authorization server.
/// Secrets go to the store, never to the config.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum McpAuth {
    /// No auth at all.
    None,
    /// A user's login. Without a client id, regent registers one (a client ID
    /// metadata document where configured and supported, else RFC 7591).
    Oauth {
        /// A pre-registered client.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
        /// Its secret, where the AS wants one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_secret: Option<Secret>,
        /// Scopes instead of the discovered ones.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        scopes: Vec<String>,
        /// A fixed loopback port for the browser login.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        callback_port: Option<u16>,
        /// The AS supports S256 although its metadata does not say so.
        #[serde(default, skip_serializing_if = "is_false")]
        assume_pkce_s256: bool,
    },
    /// Client credentials: a secret, or a private key (`private_key_jwt`).
    ClientCredentials {
        /// The client id.
        client_id: String,
        /// The client secret.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_secret: Option<Secret>,
        /// The private key, PEM (PKCS#8; P-256, P-384 or RSA).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        private_key_pem: Option<Secret>,
        /// The JWS algorithm to sign with, where not the one the key implies
        /// (ES256 for P-256, ES384 for P-384, RS256 for RSA): PS256 and the
        /// like for an RSA key.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key_alg: Option<String>,
        /// Scopes instead of the discovered ones.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        scopes: Vec<String>,
    },
    /// Enterprise-managed authorization through IdP `idp`.
    Enterprise {
        /// The enterprise IdP (added with `regent idp add`).
        idp: String,
        /// The client id at the server's AS.
        client_id: String,
        /// Its secret.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_secret: Option<Secret>,
        /// Scopes instead of the discovered ones.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        scopes: Vec<String>,
    },
    /// A static Bearer token read from a file.
    Bearer {
        /// Path of the file holding the token.
        token_file: PathBuf,
    },
    /// Workload identity federation: the JWT in `token_file` (read fresh
    /// for each grant) is the assertion of a JWT bearer grant.
    Workload {
        /// The file the workload JWT is in.
        token_file: PathBuf,
        /// The client id at the server's AS, where it wants one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
        /// Scopes instead of the discovered ones.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        scopes: Vec<String>,
    },
}

/// `PUT /v1/mcp/{name}`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PutMcp {
    /// The server's streamable HTTP endpoint.
    pub url: String,
    /// How to authenticate; absent: discovered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<McpAuth>,
    /// As [`PutRegistry::share_login`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_login: Option<bool>,
    /// As [`PutRegistry::dpop`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop: Option<DpopMode>,
}

/// `GET /v1/mcp`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct McpList {
    /// Every MCP server, sorted by name (each as a [`RegistryStatus`]).
    pub servers: Vec<RegistryStatus>,
}

/// `GET /v1/apis`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ApiList {
    /// Every API, sorted by name (each as a [`RegistryStatus`]).
    pub apis: Vec<RegistryStatus>,
}

/// `PUT /v1/idps/{name}`: an enterprise IdP (cross-app access).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PutIdp {
    /// Its issuer.
    pub issuer: String,
    /// regent's client id there.
    pub client_id: String,
    /// Its secret, where the IdP wants one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<Secret>,
    /// Scopes for the login (default `openid`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// A fixed loopback port for the browser login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_port: Option<u16>,
}

/// `GET /v1/idps`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct IdpList {
    /// Every enterprise IdP (each as a [`RegistryStatus`]; `url` is its issuer).
    pub idps: Vec<RegistryStatus>,
}

/// `POST /v1/idps/{name}/id-token`: an ID token the user already has (from
/// the company's SSO tool), used instead of a login at the IdP.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct IdTokenRequest {
    /// The ID token (a JWT).
    pub id_token: Secret,
}

/// `POST /v1/challenge`: a resource server refused a request; the agent
/// decides what happens next (refresh, rediscover, step up, log in).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ChallengeRequest {
    /// The resource.
    pub registry: String,
    /// The status it answered (401 or 403).
    pub status: u16,
    /// Its `WWW-Authenticate` values, in order: a string for one, a list for
    /// several (a server may send `Basic` first and `Bearer` second).
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "one_or_many")]
    pub www_authenticate: Vec<String>,
    /// The token it refused, if one was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<Secret>,
    /// Its `DPoP-Nonce` header, if it sent one (RFC 9449 §9).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_nonce: Option<String>,
    /// Which refusal of the same request this is: 1 for the first, 2 after
    /// the agent's first answer was followed, ... (absent or 0: the first).
    /// The agent decides what a repeated refusal means.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub attempt: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A list that is written as a plain string when it has one element (what
/// older agents and clients read and write), and read from either form.
mod one_or_many {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(v: &[String], s: S) -> Result<S::Ok, S::Error> {
        match v {
            [one] => one.serialize(s),
            many => many.serialize(s),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            One(String),
            Many(Vec<String>),
        }
        Ok(match Option::<Either>::deserialize(d)? {
            None => Vec::new(),
            Some(Either::One(s)) => vec![s],
            Some(Either::Many(v)) => v,
        })
    }
}

/// What to do after a challenge.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Next {
    /// Ask for a token again and retry: one can be had without the user.
    Retry,
    /// A login is needed (a first one, or one with more scopes).
    Login,
    /// Nothing regent can do would help; `message` says why.
    Fail,
    /// A value this version does not know (a newer agent).
    #[serde(other)]
    Unknown,
}

/// The answer of `POST /v1/challenge`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ChallengeAnswer {
    /// What to do.
    pub next: Next,
    /// What the agent did or found, for people (with what to run, where a
    /// person must act).
    pub message: String,
    /// What the refusal means, without what to run: shown by a caller that
    /// acts on `next` by itself (a proxy that logs in on `login`). Empty from
    /// agents older than this field: use `message` then.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// With `login`: log in even though a token can be had without the user
    /// (`force` on the login): the server refused one freshly minted.
    #[serde(default, skip_serializing_if = "is_false")]
    pub fresh_login: bool,
}

/// `POST /v1/token`.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// The registry; may be left out when exactly one is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    /// Instead of `registry`: the resource whose URL covers this one (as
    /// `GET /v1/resource?url=`), so a credential helper asks once. An older
    /// agent refuses the field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// How long the token must stay valid (default 30 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_valid_secs: Option<u64>,
    /// The request the token is for, where it is bound to the agent's key
    /// (DPoP): the answer then carries a proof for it. Ask only after an
    /// answer said `token_type` DPoP (an older agent refuses the field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop: Option<DpopRequest>,
}

/// The request a DPoP proof is made for (RFC 9449 §4.2).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DpopRequest {
    /// Its HTTP method (`htm`).
    pub htm: String,
    /// Its URL (`htu`; the agent drops the query and fragment).
    pub htu: String,
    /// The `DPoP-Nonce` the resource server gave last, where the caller saw
    /// one on an answer that was not a refusal (RFC 9449 §9: a server may
    /// move its nonce on any answer); the agent keeps it for the origin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
}

/// The answer of `POST /v1/token`. Its `Debug` never shows the token.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct TokenResponse {
    /// The token.
    pub access_token: Secret,
    /// `Bearer`, or `DPoP` for a token bound to the agent's key: it is sent
    /// as `Authorization: DPoP TOKEN` with a `DPoP: PROOF` header.
    pub token_type: String,
    /// The proof for the request `dpop` named, for a bound token (a fresh
    /// one each time; the agent holds the key and never gives it out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_proof: Option<Secret>,
    /// When the token expires; null when unknown (static tokens, IdPs that do not say).
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// The granted scopes, space separated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// `POST /v1/token/invalidate`. Its `Debug` never shows the token.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InvalidateRequest {
    /// The registry; may be left out when exactly one is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    /// The token a resource server refused.
    pub access_token: Secret,
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
    /// Log in again even when a token can be had without the user (another
    /// account, more consent). Without it, such a login is `already`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub force: bool,
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
    /// Already logged in: nothing for the user to do (its status is
    /// `succeeded`). Asked without `force` only.
    #[serde(default, skip_serializing_if = "is_false")]
    pub already: bool,
    /// Another caller started this login, and it waits for the user: join
    /// it (do not open a browser again); its outcome is everyone's.
    #[serde(default, skip_serializing_if = "is_false")]
    pub joined: bool,
    /// Who is logged in, for an `already` login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// The other resources this login logs in too (they share its grant).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<String>,
    /// The authorization server the login is at (shown beside a device
    /// code, so a page on another host stands out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
}

impl Login {
    /// A login of `flow` until `expires_at`, with nothing else filled in.
    pub fn new(flow: LoginFlow, expires_at: OffsetDateTime) -> Login {
        Login {
            id: String::new(),
            registry: String::new(),
            flow,
            expires_at,
            authorize_url: None,
            verification_uri: None,
            verification_uri_complete: None,
            user_code: None,
            interval: None,
            already: false,
            joined: false,
            account: None,
            also: Vec::new(),
            issuer: None,
        }
    }
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
            kind: Some(ResourceKind::Registry),
            url: "https://r.example".into(),
            auth: Some(AuthStatus {
                config: AuthConfig::Oauth(OAuthConfig {
                    issuer: "https://idp.example".into(),
                    client_id: "c".into(),
                    scopes: vec![],
                    audience: None,
                    resource: None,
                    callback_port: None,
                    discovered: false,
                    assume_pkce_s256: false,
                    client: None,
                    metadata_url: None,
                    endpoints: None,
                    own_grant: false,
                    dpop: Default::default(),
                    resource_dpop: false,
                }),
                status: AuthState::Authenticated,
                expires_at: Some(time::macros::datetime!(2026-01-02 03:04:05 UTC)),
                has_refresh_token: true,
                persisted: true,
                account: Some("alice".into()),
                shared_with: vec![],
                dpop_bound: false,
            }),
            forward: None,
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
    fn challenge_headers_are_one_string_or_a_list() {
        let one: ChallengeRequest =
            serde_json::from_str(r#"{"registry":"r","status":401,"www_authenticate":"Bearer"}"#)
                .unwrap();
        assert_eq!(one.www_authenticate, ["Bearer"]);
        assert_eq!(one.attempt, 0);
        assert_eq!(
            serde_json::to_value(&one).unwrap()["www_authenticate"],
            "Bearer",
            "one value is written as older agents read it"
        );
        let many: ChallengeRequest = serde_json::from_str(
            r#"{"registry":"r","status":403,"www_authenticate":["Basic","Bearer x=1"],"attempt":2}"#,
        )
        .unwrap();
        assert_eq!(many.www_authenticate, ["Basic", "Bearer x=1"]);
        assert_eq!(many.attempt, 2);
        let back: ChallengeRequest =
            serde_json::from_value(serde_json::to_value(&many).unwrap()).unwrap();
        assert_eq!(back, many);
        let none: ChallengeRequest =
            serde_json::from_str(r#"{"registry":"r","status":401}"#).unwrap();
        assert!(none.www_authenticate.is_empty());
    }

    #[test]
    fn token_debug_hides_the_token() {
        let t = TokenResponse {
            access_token: "sekrit-value".into(),
            token_type: "Bearer".into(),
            dpop_proof: Some("proof-value".into()),
            expires_at: None,
            scope: None,
        };
        assert!(!format!("{t:?}").contains("sekrit"));
        assert!(!format!("{t:?}").contains("proof-value"));
        let i = InvalidateRequest {
            registry: None,
            access_token: "sekrit-value".into(),
        };
        assert!(!format!("{i:?}").contains("sekrit"));
    }
}

/// `POST /v1/doctor`: the agent checks what a resource needs, from where it
/// runs (its network settings, its environment).
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DoctorRequest {
    /// The resource; every one when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// How a check came out.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    /// Fine.
    Ok,
    /// Works, but something is off.
    Warn,
    /// Does not work.
    Fail,
    /// Not checked (it does not apply, or an earlier step failed).
    Skip,
}

/// One step of `regent doctor`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// The resource it is for; none for the agent's own checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// The step: `agent`, `version`, `store`, `service`, `config`, `dns`, `proxy`,
    /// `tcp`, `tls`, `discovery`, `clock`, `login`.
    pub step: String,
    /// How it came out.
    pub status: CheckStatus,
    /// What was found.
    pub detail: String,
    /// What fixes it, where something is wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// The answer of `POST /v1/doctor`.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
pub struct DoctorReport {
    /// The checks, in order.
    pub checks: Vec<Check>,
}
