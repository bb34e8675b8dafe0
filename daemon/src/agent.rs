//! The agent's state and the operations the API exposes: registries and
//! their config, tokens, logout. Handlers in `api` only translate.

use crate::config::{self, Config, RegistryConfig};
use crate::error::ApiError;
use crate::login::Logins;
use crate::oauth::discovery::{self, DiscoveryError};
use crate::oauth::http::IdpHttp;
use crate::oauth::{revoke, Metadata, OAuthError};
use crate::registry::{self, Registry};
use crate::store::Store;
use crate::token_cache;
use crate::tokens::TokenSet;
use regent_proto::{
    AuthConfig, AuthState, AuthStatus, ErrorCode, LogoutResponse, RegistryStatus, TokenResponse,
};
use secrecy::ExposeSecret;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use time::OffsetDateTime;

/// Largest static token file the agent reads.
const MAX_TOKEN_FILE: u64 = 64 * 1024;

/// Agent-wide settings from the command line.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long a browser login waits for its callback.
    pub login_timeout: Duration,
}

/// The agent.
pub struct Agent {
    /// Settings from the command line.
    pub settings: Settings,
    config_path: PathBuf,
    /// Serializes config changes (read-modify-write of the file).
    config_lock: tokio::sync::Mutex<Config>,
    registries: RwLock<BTreeMap<String, Arc<Registry>>>,
    /// The token store.
    pub store: Arc<Store>,
    /// Plain HTTP client (discovery, revocation).
    pub http: reqwest::Client,
    /// The same client as an `oauth2` HTTP client.
    pub idp: IdpHttp,
    /// Logins in progress and recently ended.
    pub logins: Logins,
    /// Refreshes and login completions: shutdown waits for them, so no
    /// rotated refresh token is lost to a SIGTERM.
    pub tasks: tokio_util::task::TaskTracker,
}

/// Maps an IdP failure to the API error the contract gives it.
pub fn oauth_error(e: OAuthError, registry: &str) -> ApiError {
    let code = match &e {
        OAuthError::Unavailable(_) => ErrorCode::IdpUnavailable,
        OAuthError::InvalidGrant(_) => ErrorCode::RegistryAuthRequired,
        OAuthError::Protocol { .. } => ErrorCode::IdpError,
        OAuthError::Config(_) => ErrorCode::InvalidAuthConfig,
    };
    ApiError::new(code, e.to_string()).registry(registry)
}

impl Agent {
    /// Builds the agent from a loaded config and restores every registry's
    /// tokens from the store.
    pub async fn start(
        settings: Settings,
        config_path: PathBuf,
        config: Config,
        store: Arc<Store>,
    ) -> Arc<Agent> {
        let http = crate::oauth::http::build_client();
        let mut registries = BTreeMap::new();
        for (name, rc) in &config.registries {
            registries.insert(
                name.clone(),
                Arc::new(Registry::new(
                    name.clone(),
                    rc.url.clone(),
                    rc.auth.clone(),
                    None,
                    None,
                )),
            );
        }
        let agent = Arc::new(Agent {
            settings,
            config_path,
            config_lock: tokio::sync::Mutex::new(config),
            registries: RwLock::new(registries),
            store,
            idp: IdpHttp(http.clone()),
            http,
            logins: Logins::default(),
            tasks: tokio_util::task::TaskTracker::new(),
        });
        agent.restore().await;
        agent
    }

    async fn restore(&self) {
        let regs: Vec<_> = self.registries.read().unwrap().values().cloned().collect();
        let mut restored = 0;
        for reg in regs {
            restored += usize::from(self.restore_one(&reg).await);
        }
        tracing::info!(restored, store = self.store.name(), "restored token sets");
    }

    /// Loads a registry's token set from the store into its (empty) cell.
    async fn restore_one(&self, reg: &Registry) -> bool {
        let Some(oauth) = &reg.oauth else {
            return false;
        };
        if oauth.tokens.status().set.is_some() {
            return false;
        }
        let Some(json) = self.store.load(&oauth.key).await else {
            return false;
        };
        match TokenSet::from_json(&json) {
            Ok(set) => {
                oauth.tokens.restore(set, self.store.persisting());
                true
            }
            Err(e) => {
                tracing::warn!(registry = %reg.name, "ignoring stored tokens: {e}");
                false
            }
        }
    }

    /// Re-reads the config file (SIGHUP). A file that does not parse changes
    /// nothing. Registries whose URL and auth are unchanged keep their tokens;
    /// changed and removed ones are retired as through the API; new ones get
    /// their stored tokens. Returns the number of registries.
    pub async fn reload(&self) -> Result<usize, config::ConfigError> {
        // Under the lock: an API change saving meanwhile is read, not undone.
        let mut config = self.config_lock.lock().await;
        if !self.config_path.exists() {
            // At start a missing file is an empty config; on a reload it is
            // more likely a file being replaced: never drop every registry for it.
            return Err(config::ConfigError::Io {
                what: "cannot reload: there is no file at",
                path: self.config_path.clone(),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            });
        }
        let new = config::load(&self.config_path)?;
        let old = self.registries.read().unwrap().clone();
        let mut next = BTreeMap::new();
        for (name, rc) in &new.registries {
            let reg = Registry::new(
                name.clone(),
                rc.url.clone(),
                rc.auth.clone(),
                None,
                old.get(name).map(|r| r.as_ref()),
            );
            next.insert(name.clone(), Arc::new(reg));
        }
        *self.registries.write().unwrap() = next.clone();
        *config = new;
        drop(config);
        for (name, reg) in old {
            self.retire(Some(reg), next.get(&name)).await;
        }
        for reg in next.values() {
            self.restore_one(reg).await;
        }
        tracing::info!(registries = next.len(), "config reloaded");
        Ok(next.len())
    }

    /// All registries, by name.
    pub fn all(&self) -> Vec<Arc<Registry>> {
        self.registries.read().unwrap().values().cloned().collect()
    }

    /// The registry named `name`, or the only one when `name` is `None`.
    pub fn resolve(&self, name: Option<&str>) -> Result<Arc<Registry>, ApiError> {
        let regs = self.registries.read().unwrap();
        match name {
            Some(n) => regs.get(n).cloned().ok_or_else(|| unknown(n)),
            None => match regs.len() {
                1 => Ok(regs.values().next().unwrap().clone()),
                0 => Err(ApiError::new(
                    ErrorCode::UnknownRegistry,
                    "no registry is configured; add one with: regent registry add NAME URL",
                )),
                _ => Err(ApiError::invalid(format!(
                    "several registries are configured ({}); name one",
                    regs.keys().cloned().collect::<Vec<_>>().join(", ")
                ))),
            },
        }
    }

    /// Whether `reg`'s tokens are still those of the registry of its name.
    pub fn is_current(&self, reg: &Registry) -> bool {
        self.registries
            .read()
            .unwrap()
            .get(&reg.name)
            .is_some_and(|r| r.same_tokens(reg))
    }

    /// The registry's IdP metadata, discovered once.
    pub async fn metadata(&self, reg: &Registry) -> Result<Arc<Metadata>, OAuthError> {
        let oauth = reg
            .oauth
            .as_ref()
            .ok_or_else(|| OAuthError::Config("no OAuth configured".into()))?;
        oauth
            .meta
            .get_or_try_init(|| async {
                discovery::discover(&self.http, &oauth.config.issuer)
                    .await
                    .map(Arc::new)
                    // The config was validated when it was set: a document that
                    // is now missing or broken is an outage, not a logout.
                    .map_err(|e| match e {
                        DiscoveryError::Unreachable(m) | DiscoveryError::Invalid(m) => {
                            OAuthError::Unavailable(format!("IdP metadata: {m}"))
                        }
                    })
            })
            .await
            .cloned()
    }

    /// Adds or replaces a registry (`auth` validated against the IdP first).
    /// `url: None` keeps the registry's URL (set/unset-registry-auth).
    pub async fn put_registry(
        &self,
        name: &str,
        url: Option<String>,
        auth: Option<AuthConfig>,
    ) -> Result<RegistryStatus, ApiError> {
        registry::validate_name(name).map_err(ApiError::invalid)?;
        if let Some(u) = &url {
            registry::validate_url(u).map_err(|m| ApiError::invalid(m).registry(name))?;
        }
        let meta = self.check_auth(name, auth.as_ref()).await?;
        let mut config = self.config_lock.lock().await;
        let url = match url {
            Some(u) => u,
            None => match config.registries.get(name) {
                Some(rc) => rc.url.clone(),
                None => return Err(unknown(name)),
            },
        };
        let mut next = config.clone();
        next.registries.insert(
            name.to_string(),
            RegistryConfig {
                url: url.clone(),
                auth: auth.clone(),
            },
        );
        self.save_config(&next)?;
        *config = next;
        let old = self.registries.read().unwrap().get(name).cloned();
        let new = Arc::new(Registry::new(
            name.to_string(),
            url,
            auth,
            meta,
            old.as_deref(),
        ));
        self.registries
            .write()
            .unwrap()
            .insert(name.to_string(), new.clone());
        self.retire(old, Some(&new)).await;
        Ok(self.status(&new))
    }

    /// Sets or clears the auth of an existing registry.
    pub async fn set_auth(
        &self,
        name: &str,
        auth: Option<AuthConfig>,
    ) -> Result<RegistryStatus, ApiError> {
        self.put_registry(name, None, auth).await
    }

    /// Removes a registry and deletes its stored tokens.
    pub async fn remove_registry(&self, name: &str) -> Result<(), ApiError> {
        let mut config = self.config_lock.lock().await;
        if !config.registries.contains_key(name) {
            return Err(unknown(name));
        }
        let mut next = config.clone();
        next.registries.remove(name);
        self.save_config(&next)?;
        *config = next;
        let old = self.registries.write().unwrap().remove(name);
        self.retire(old, None).await;
        Ok(())
    }

    /// Ends what belonged to a replaced or removed registry: its logins and
    /// stored tokens, unless the replacement kept the same token cell.
    async fn retire(&self, old: Option<Arc<Registry>>, new: Option<&Arc<Registry>>) {
        let Some(old) = old else { return };
        if new.is_some_and(|n| n.same_tokens(&old)) {
            return;
        }
        self.logins
            .cancel_registry(&old.name, "the registry's configuration changed");
        if let Some(o) = &old.oauth {
            o.tokens.clear(self, &o.key).await;
        }
    }

    async fn check_auth(
        &self,
        name: &str,
        auth: Option<&AuthConfig>,
    ) -> Result<Option<Metadata>, ApiError> {
        let invalid = |m: String| ApiError::new(ErrorCode::InvalidAuthConfig, m).registry(name);
        match auth {
            None => Ok(None),
            Some(AuthConfig::Bearer(b)) => {
                if !b.token_file.is_absolute() {
                    return Err(invalid(format!(
                        "token_file {} must be an absolute path",
                        b.token_file.display()
                    )));
                }
                Ok(None)
            }
            Some(AuthConfig::Oauth(c)) => {
                if c.client_id.trim().is_empty() {
                    return Err(invalid("client_id must not be empty".into()));
                }
                if c.callback_port == Some(0) {
                    return Err(invalid("callback_port must be 1-65535".into()));
                }
                let meta = discovery::discover(&self.http, &c.issuer)
                    .await
                    .map_err(|e| invalid(format!("cannot use issuer {}: {e}", c.issuer)))?;
                Ok(Some(meta))
            }
        }
    }

    fn save_config(&self, next: &Config) -> Result<(), ApiError> {
        // fsync can take a while: keep the runtime's other work flowing meanwhile.
        tokio::task::block_in_place(|| config::save(&self.config_path, next))
            .map_err(|e| ApiError::internal(format!("the config was not changed: {e}")))
    }

    /// The registry's status answer.
    pub fn status(&self, reg: &Registry) -> RegistryStatus {
        let auth = reg.auth.as_ref().map(|config| match (&reg.oauth, config) {
            (Some(oauth), _) => {
                let cell = oauth.tokens.status();
                let now = OffsetDateTime::now_utc();
                let (status, set) = match &cell.set {
                    None => (AuthState::AuthRequired, None),
                    Some(s) if s.refresh_token.is_some() || s.usable(now) => {
                        (AuthState::Authenticated, Some(s))
                    }
                    Some(s) => (AuthState::Expired, Some(s)),
                };
                AuthStatus {
                    config: config.clone(),
                    status,
                    expires_at: set.and_then(|s| s.expires_at),
                    has_refresh_token: set.is_some_and(|s| s.refresh_token.is_some()),
                    persisted: cell.persisted && cell.set.is_some() && self.store.persisting(),
                    account: set.and_then(|s| s.account.clone()),
                }
            }
            (None, AuthConfig::Bearer(b)) => AuthStatus {
                config: config.clone(),
                status: match read_token_file(&b.token_file) {
                    Ok(_) => AuthState::Authenticated,
                    Err(_) => AuthState::AuthRequired,
                },
                expires_at: None,
                has_refresh_token: false,
                persisted: true,
                account: None,
            },
            (None, _) => unreachable!("OAuth registries always have OAuth state"),
        });
        RegistryStatus {
            name: reg.name.clone(),
            url: reg.url.clone(),
            auth,
        }
    }

    /// `POST /v1/token`.
    pub async fn token(
        self: &Arc<Self>,
        name: Option<&str>,
        min_valid: Duration,
    ) -> Result<TokenResponse, ApiError> {
        let reg = self.resolve(name)?;
        if let Some(AuthConfig::Bearer(b)) = &reg.auth {
            let token = read_token_file(&b.token_file).map_err(|m| {
                ApiError::new(ErrorCode::RegistryAuthRequired, m).registry(&reg.name)
            })?;
            return Ok(TokenResponse {
                access_token: token,
                token_type: "Bearer".into(),
                expires_at: None,
                scope: None,
            });
        }
        let set = token_cache::get(self, &reg, min_valid).await?;
        let token = set
            .access_token
            .as_ref()
            .ok_or_else(|| ApiError::internal("a served token set has no access token"))?;
        Ok(TokenResponse {
            access_token: token.expose_secret().to_string(),
            token_type: "Bearer".into(),
            expires_at: set.expires_at,
            scope: set.scope.clone(),
        })
    }

    /// `POST /v1/token/invalidate`.
    pub fn invalidate(&self, name: Option<&str>, token: &str) -> Result<bool, ApiError> {
        let reg = self.resolve(name)?;
        match &reg.oauth {
            Some(o) => Ok(o.tokens.invalidate(token)),
            None => Ok(false),
        }
    }

    /// `POST /v1/logout`: forget the tokens, then revoke the refresh token.
    pub async fn logout(&self, name: Option<&str>) -> Result<LogoutResponse, ApiError> {
        let reg = self.resolve(name)?;
        let oauth = reg.oauth()?;
        self.logins.cancel_registry(&reg.name, "logged out");
        let (old, deleted) = oauth.tokens.clear(self, &oauth.key).await;
        let mut revoked = false;
        if let Some(set) = old {
            let (token, hint) = match (&set.refresh_token, &set.access_token) {
                (Some(rt), _) => (rt.expose_secret().to_string(), "refresh_token"),
                (None, Some(at)) => (at.expose_secret().to_string(), "access_token"),
                (None, None) => return Ok(LogoutResponse { revoked, deleted }),
            };
            match self.metadata(&reg).await {
                Ok(meta) => match &meta.revocation_endpoint {
                    Some(ep) => match revoke::revoke(&self.http, &oauth.config, ep, &token, hint)
                        .await
                    {
                        Ok(ok) => revoked = ok,
                        Err(e) => tracing::warn!(registry = %reg.name, "revocation failed: {e}"),
                    },
                    None => {
                        tracing::info!(registry = %reg.name, "the IdP offers no revocation endpoint")
                    }
                },
                Err(e) => tracing::warn!(registry = %reg.name, "cannot revoke: {e}"),
            }
        }
        tracing::info!(registry = %reg.name, revoked, deleted, "logged out");
        Ok(LogoutResponse { revoked, deleted })
    }
}

fn unknown(name: &str) -> ApiError {
    ApiError::new(
        ErrorCode::UnknownRegistry,
        format!("no registry named {name}; see: regent registry list"),
    )
    .registry(name)
}

/// Reads a static token file: bounded, trimmed, non-empty.
fn read_token_file(path: &std::path::Path) -> Result<String, String> {
    use std::io::Read;
    let f = std::fs::File::open(path)
        .map_err(|e| format!("cannot read the token file {}: {e}", path.display()))?;
    let mut s = String::new();
    f.take(MAX_TOKEN_FILE + 1)
        .read_to_string(&mut s)
        .map_err(|e| format!("cannot read the token file {}: {e}", path.display()))?;
    if s.len() as u64 > MAX_TOKEN_FILE {
        return Err(format!(
            "the token file {} is larger than 64 KiB",
            path.display()
        ));
    }
    let t = s.trim();
    if t.is_empty() {
        return Err(format!("the token file {} is empty", path.display()));
    }
    Ok(t.to_string())
}
