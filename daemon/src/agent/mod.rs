//! The agent: the resources of the config, each with its auth, the grants
//! they share, the logins in progress; and the operations the API exposes.
//! Handlers in `api` only translate HTTP to these calls and back.
//!
//! Every configuration change — through the API, by SIGHUP, or found on disk
//! before a write — goes through one path ([`Agent::apply`]): the resource
//! table is rebuilt, unchanged resources are kept as they are, grants are
//! shared by key, and only what no resource uses any more is dropped.

mod error;

pub use error::AgentError;

use crate::auth::{Auth, BearerFile, OAuthSource};
use crate::config::{Config, ConfigFile, RegistryConfig};
use crate::ctx::Ctx;
use crate::grant::Grant;
use crate::login::{self, Logins, Subject};
use crate::oauth::discovery::{self, DiscoveryError};
use crate::oauth::{revoke, Metadata, Target};
use crate::resource::{self, Kind, Resource};
use crate::store::keys;
use regent_proto::{
    AuthConfig, AuthStatus, Login, LoginFlow, LogoutResponse, RegistryStatus, Revocation,
    TokenResponse,
};
use secrecy::ExposeSecret;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// The agent.
pub struct Agent {
    ctx: Arc<Ctx>,
    /// The config file; held across every change, so changes apply one at a time.
    config: tokio::sync::Mutex<ConfigFile>,
    resources: RwLock<BTreeMap<String, Arc<Resource>>>,
    /// The grants the resources use, by store key.
    grants: Mutex<HashMap<String, Arc<Grant>>>,
    logins: Logins,
}

impl Agent {
    /// Builds the agent from the config file and restores every grant from the store.
    pub async fn start(ctx: Arc<Ctx>, config: ConfigFile) -> Arc<Agent> {
        let initial = config.config().clone();
        let agent = Arc::new(Agent {
            ctx,
            config: tokio::sync::Mutex::new(config),
            resources: RwLock::default(),
            grants: Mutex::default(),
            logins: Logins::default(),
        });
        let _changing = agent.config.lock().await;
        agent.apply(&initial).await;
        let logged_in = agent
            .grants
            .lock()
            .unwrap()
            .values()
            .filter(|g| g.logged_in())
            .count();
        tracing::info!(logged_in, store = agent.ctx.store.name(), "restored grants");
        drop(_changing);
        agent
    }

    /// What refreshes and logins run with.
    pub fn ctx(&self) -> &Arc<Ctx> {
        &self.ctx
    }

    /// The logins in progress.
    pub fn logins(&self) -> &Logins {
        &self.logins
    }

    /// Every resource, by name.
    pub fn all(&self) -> Vec<Arc<Resource>> {
        self.resources.read().unwrap().values().cloned().collect()
    }

    /// The resource named `name`, or the only one when `name` is `None`.
    pub fn resolve(&self, name: Option<&str>) -> Result<Arc<Resource>, AgentError> {
        let all = self.resources.read().unwrap();
        match name {
            Some(n) => all
                .get(n)
                .cloned()
                .ok_or_else(|| AgentError::Unknown(n.to_string())),
            None => match all.len() {
                1 => Ok(all.values().next().expect("one").clone()),
                0 => Err(AgentError::NoneConfigured),
                _ => Err(AgentError::Ambiguous(all.keys().cloned().collect())),
            },
        }
    }

    /// Whether `res` is still the resource of its name (its configuration did not change).
    fn is_current(&self, res: &Arc<Resource>) -> bool {
        self.resources
            .read()
            .unwrap()
            .get(&res.name)
            .is_some_and(|r| Arc::ptr_eq(r, res))
    }

    /// The other resources that use `grant`.
    fn sharers(&self, grant: &Arc<Grant>, except: &str) -> Vec<String> {
        self.resources
            .read()
            .unwrap()
            .values()
            .filter(|r| r.name != except)
            .filter(|r| r.auth.oauth().is_some_and(|o| Arc::ptr_eq(&o.grant, grant)))
            .map(|r| r.name.clone())
            .collect()
    }

    /// Makes `config` the one in force. Called with the config lock held.
    async fn apply(&self, config: &Config) {
        let old = self.resources.read().unwrap().clone();
        let mut next = BTreeMap::new();
        let mut fresh = Vec::new();
        for (name, rc) in &config.registries {
            let unchanged = old
                .get(name)
                .filter(|r| r.url == rc.url && r.auth.config() == rc.auth);
            let res = match unchanged {
                Some(r) => r.clone(),
                None => Arc::new(self.build(name, rc, &mut fresh)),
            };
            next.insert(name.clone(), res);
        }
        // New grants are loaded before any request can reach them.
        for g in &fresh {
            g.restore(&self.ctx).await;
        }
        for res in next.values() {
            if let Some(o) = res.auth.oauth() {
                if fresh.iter().any(|g| Arc::ptr_eq(g, &o.grant)) {
                    let v1 = keys::v1(&res.url, &o.config.issuer, &o.config.client_id);
                    o.grant
                        .migrate_v1(&self.ctx, &v1, &o.target, &res.name)
                        .await;
                }
            }
        }
        *self.resources.write().unwrap() = next.clone();

        for (name, was) in &old {
            if !next.get(name).is_some_and(|now| Arc::ptr_eq(now, was)) {
                self.logins
                    .cancel_resource(name, "the resource's configuration changed");
            }
        }
        // What each grant is still used for.
        let mut used: HashMap<String, BTreeSet<Target>> = HashMap::new();
        for res in next.values() {
            if let Some(o) = res.auth.oauth() {
                used.entry(o.grant.key().to_string())
                    .or_default()
                    .insert(o.target.clone());
            }
        }
        let mut unused_targets = Vec::new();
        for res in old.values() {
            if let Some(o) = res.auth.oauth() {
                if used
                    .get(o.grant.key())
                    .is_some_and(|t| !t.contains(&o.target))
                {
                    unused_targets.push((o.grant.clone(), o.target.clone()));
                }
            }
        }
        let dropped: Vec<Arc<Grant>> = {
            let mut grants = self.grants.lock().unwrap();
            let dead: Vec<String> = grants
                .keys()
                .filter(|k| !used.contains_key(*k))
                .cloned()
                .collect();
            dead.iter().filter_map(|k| grants.remove(k)).collect()
        };
        for g in dropped {
            // No resource names this grant any more: its stored tokens go.
            let ended = g.clear(&self.ctx).await;
            if ended.deleted {
                tracing::info!(grant = %g.key(), "deleted a grant no resource uses any more");
            }
        }
        for (g, t) in unused_targets {
            g.forget_target(&self.ctx, &t).await;
        }
    }

    /// A resource for a config entry; a grant it names that is not in use yet is added to `fresh`.
    fn build(&self, name: &str, rc: &RegistryConfig, fresh: &mut Vec<Arc<Grant>>) -> Resource {
        let auth = match &rc.auth {
            None => Auth::None,
            Some(AuthConfig::Bearer(b)) => Auth::Bearer(BearerFile { config: b.clone() }),
            Some(AuthConfig::Oauth(c)) => {
                let spec = OAuthSource::spec(c);
                let grant = self
                    .grants
                    .lock()
                    .unwrap()
                    .entry(spec.key())
                    .or_insert_with(|| {
                        let g = Grant::new(spec);
                        fresh.push(g.clone());
                        g
                    })
                    .clone();
                Auth::OAuth(OAuthSource {
                    config: c.clone(),
                    grant,
                    target: OAuthSource::target(c),
                })
            }
        };
        Resource {
            name: name.to_string(),
            kind: Kind::Registry,
            url: rc.url.clone(),
            auth,
        }
    }

    /// Re-reads the config file (SIGHUP). A file that does not parse, or is
    /// missing, changes nothing. Returns the number of registries.
    pub async fn reload(&self) -> Result<usize, AgentError> {
        let mut file = self.config.lock().await;
        if !file.path().exists() {
            return Err(AgentError::Config(crate::config::ConfigError::Io {
                what: "cannot reload: there is no file at",
                path: file.path().to_path_buf(),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            }));
        }
        file.refresh().map_err(AgentError::Config)?;
        let config = file.config().clone();
        self.apply(&config).await;
        tracing::info!(registries = config.registries.len(), "config reloaded");
        Ok(config.registries.len())
    }

    /// Runs a change of the config file: a change made on disk meanwhile is
    /// taken in first, then `change` edits the file, then the result applies.
    async fn change<T>(
        &self,
        change: impl FnOnce(&mut ConfigFile) -> Result<T, AgentError>,
    ) -> Result<T, AgentError> {
        let mut file = self.config.lock().await;
        match file.refresh() {
            Ok(true) => {
                tracing::info!("the config file was changed on disk; taking the change in first");
                let config = file.config().clone();
                self.apply(&config).await;
            }
            Ok(false) => {}
            Err(e) => return Err(AgentError::ConfigRefused(e)),
        }
        let out = change(&mut file)?;
        let config = file.config().clone();
        self.apply(&config).await;
        Ok(out)
    }

    /// Adds or replaces a registry (`auth` validated against the IdP first).
    /// `url: None` keeps the registry's URL (set/unset-registry-auth).
    pub async fn put_registry(
        &self,
        name: &str,
        url: Option<String>,
        auth: Option<AuthConfig>,
    ) -> Result<RegistryStatus, AgentError> {
        resource::validate_name(name).map_err(AgentError::Invalid)?;
        if let Some(u) = &url {
            resource::validate_url(u).map_err(AgentError::Invalid)?;
        }
        let meta = self.check_auth(name, auth.as_ref()).await?;
        self.change(|file| {
            let url = match url {
                Some(u) => u,
                None => file
                    .config()
                    .registries
                    .get(name)
                    .map(|rc| rc.url.clone())
                    .ok_or_else(|| AgentError::Unknown(name.to_string()))?,
            };
            file.put_registry(name, &RegistryConfig { url, auth })
                .map_err(AgentError::Config)
        })
        .await?;
        if let Some(m) = meta {
            self.ctx.issuers.put(m);
        }
        let res = self.resolve(Some(name))?;
        Ok(self.status(&res))
    }

    /// Removes a registry; its grant's stored tokens go unless another resource uses it.
    pub async fn remove_registry(&self, name: &str) -> Result<(), AgentError> {
        self.change(|file| match file.remove_registry(name) {
            Ok(true) => Ok(()),
            Ok(false) => Err(AgentError::Unknown(name.to_string())),
            Err(e) => Err(AgentError::Config(e)),
        })
        .await
    }

    async fn check_auth(
        &self,
        name: &str,
        auth: Option<&AuthConfig>,
    ) -> Result<Option<Metadata>, AgentError> {
        let invalid = |message: String| AgentError::InvalidAuth {
            resource: name.to_string(),
            message,
        };
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
                let meta = discovery::discover(&self.ctx.idp, &c.issuer)
                    .await
                    .map_err(|e: DiscoveryError| {
                        invalid(format!("cannot use issuer {}: {e}", c.issuer))
                    })?;
                Ok(Some(meta))
            }
        }
    }

    /// The resource's status answer.
    pub fn status(&self, res: &Arc<Resource>) -> RegistryStatus {
        let auth = res.auth.config().map(|config| {
            let st = res
                .auth
                .state(&self.ctx)
                .expect("configured auth has a state");
            AuthStatus {
                config,
                status: st.status,
                expires_at: st.expires_at,
                has_refresh_token: st.has_refresh_token,
                persisted: st.persisted,
                account: st.account,
                shared_with: res
                    .auth
                    .oauth()
                    .map(|o| self.sharers(&o.grant, &res.name))
                    .unwrap_or_default(),
            }
        });
        RegistryStatus {
            name: res.name.clone(),
            url: res.url.clone(),
            auth,
        }
    }

    /// `POST /v1/token`.
    pub async fn token(
        &self,
        name: Option<&str>,
        min_valid: Duration,
    ) -> Result<TokenResponse, AgentError> {
        let res = self.resolve(name)?;
        let token = match res.auth.token(&self.ctx, min_valid).await {
            None => return Err(AgentError::NotConfigured(res.name.clone())),
            Some(r) => r.map_err(|err| AgentError::Token {
                resource: res.name.clone(),
                err,
            })?,
        };
        Ok(TokenResponse {
            access_token: token.token.expose_secret().to_string(),
            token_type: "Bearer".into(),
            expires_at: token.expires_at,
            scope: token.scope.clone(),
        })
    }

    /// `POST /v1/token/invalidate`.
    pub fn invalidate(&self, name: Option<&str>, token: &str) -> Result<bool, AgentError> {
        Ok(self.resolve(name)?.auth.invalidate(token))
    }

    /// The OAuth side of a resource, or why it has none.
    fn oauth<'r>(&self, res: &'r Resource) -> Result<&'r OAuthSource, AgentError> {
        match &res.auth {
            Auth::OAuth(o) => Ok(o),
            Auth::Bearer(_) => Err(AgentError::StaticToken(res.name.clone())),
            Auth::None => Err(AgentError::NotConfigured(res.name.clone())),
        }
    }

    /// `POST /v1/login`.
    pub async fn login(
        self: &Arc<Self>,
        name: Option<&str>,
        flow: LoginFlow,
    ) -> Result<Login, AgentError> {
        let res = self.resolve(name)?;
        let o = self.oauth(&res)?;
        let still_wanted = {
            let (agent, res) = (Arc::downgrade(self), res.clone());
            Arc::new(move || agent.upgrade().is_some_and(|a| a.is_current(&res)))
        };
        let subject = Subject {
            resource: res.name.clone(),
            grant: o.grant.clone(),
            target: o.target.clone(),
            callback_port: o.config.callback_port,
            still_wanted,
        };
        login::start(&self.ctx, &self.logins, subject, flow)
            .await
            .map_err(|err| AgentError::Login {
                resource: res.name.clone(),
                err,
            })
    }

    /// `POST /v1/logout`: forget the grant, then revoke its refresh token.
    /// A grant shared with other resources is logged out only with `all`.
    pub async fn logout(
        &self,
        name: Option<&str>,
        all: bool,
    ) -> Result<LogoutResponse, AgentError> {
        let res = self.resolve(name)?;
        let o = self.oauth(&res)?;
        let others = self.sharers(&o.grant, &res.name);
        if !others.is_empty() && !all {
            return Err(AgentError::Shared {
                resource: res.name.clone(),
                others,
            });
        }
        let mut logged_out = vec![res.name.clone()];
        logged_out.extend(others);
        for n in &logged_out {
            self.logins.cancel_resource(n, "logged out");
        }
        let ended = o.grant.clear(&self.ctx).await;
        let revocation = if ended.revocable.is_empty() {
            Revocation::NotNeeded
        } else {
            self.revoke(&res.name, &o.grant, &ended.revocable).await
        };
        tracing::info!(resource = %res.name, ?revocation, deleted = ended.deleted, "logged out");
        Ok(LogoutResponse {
            revoked: revocation == Revocation::Revoked,
            deleted: ended.deleted,
            revocation,
            logged_out,
        })
    }

    async fn revoke(
        &self,
        name: &str,
        grant: &Grant,
        tokens: &[(secrecy::SecretString, &'static str)],
    ) -> Revocation {
        let spec = grant.spec();
        let meta = match self.ctx.issuers.get(&self.ctx.idp, &spec.issuer).await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(resource = name, "cannot revoke: {e}");
                return Revocation::Failed;
            }
        };
        let Some(endpoint) = &meta.revocation_endpoint else {
            return Revocation::NotOffered;
        };
        for (token, hint) in tokens {
            if let Err(e) = revoke::revoke(
                &self.ctx.idp,
                &spec.client_id,
                endpoint,
                token.expose_secret(),
                hint,
            )
            .await
            {
                tracing::warn!(resource = name, "revocation failed: {e}");
                return Revocation::Failed;
            }
        }
        Revocation::Revoked
    }
}
