//! The agent: the resources of the config (registries, MCP servers,
//! enterprise IdPs), each with its auth, the grants they share, the logins
//! in progress; and the operations the API exposes. Handlers in `api` only
//! translate HTTP to these calls and back.
//!
//! Every configuration change — through the API, by SIGHUP, or found on disk
//! before a write — goes through one path ([`Agent::apply`]): the resource
//! table is rebuilt, unchanged resources are kept as they are, grants are
//! shared by key, and only what no resource uses any more is dropped.
//! `change.rs` holds the operations that change the config, `setup.rs` what
//! turns a user's request into an auth config (discovery, client
//! registration), `challenge.rs` what a resource server's 401 or 403 leads to.

mod challenge;
mod change;
mod discover;
mod doctor;
mod error;
pub mod forward;
mod setup;

pub use error::AgentError;
pub use forward::{Caller, Forwarding, Peer};

use crate::auth::{Auth, BearerFile, ClientCredentials, Enterprise, Idp, OAuthSource, Workload};
use crate::config::{Config, ConfigFile, IdpConfig};
use crate::ctx::Ctx;
use crate::grant::Grant;
use crate::login::{self, Logins, Subject};
use crate::oauth::{revoke, Target};
use crate::resource::{Kind, Resource};
use crate::store::keys;
use crate::token::TokenError;
use regent_proto::{
    AuthConfig, AuthStatus, Login, LoginFlow, LogoutResponse, OAuthConfig, RegistryStatus,
    Revocation, TokenResponse,
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
    /// The config file's client metadata document URL (the flag, a
    /// setting, wins over it: see [`Agent::client_metadata_url`]).
    configured_metadata_url: RwLock<Option<String>>,
    /// When the agent started.
    started_at: time::OffsetDateTime,
    logins: Logins,
    /// Agent forwarding: which resources, the sessions, the socket.
    forward: Forwarding,
}

impl Agent {
    /// Builds the agent from the config file and restores every grant from the store.
    pub async fn start(ctx: Arc<Ctx>, config: ConfigFile) -> Arc<Agent> {
        if let Some(why) = config.exposed_proxy_password() {
            tracing::warn!("{why}: chmod 600 it");
        }
        let initial = config.config().clone();
        let started_at = ctx.clock.now();
        let agent = Arc::new(Agent {
            ctx,
            config: tokio::sync::Mutex::new(config),
            resources: RwLock::default(),
            grants: Mutex::default(),
            configured_metadata_url: RwLock::default(),
            started_at,
            logins: Logins::default(),
            forward: Forwarding::default(),
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

    /// regent's client ID metadata document URL in force: the flag's, else the config's.
    pub fn client_metadata_url(&self) -> Option<String> {
        self.ctx
            .settings
            .client_metadata_url
            .clone()
            .or_else(|| self.configured_metadata_url.read().unwrap().clone())
    }

    /// When the agent started.
    pub fn started_at(&self) -> time::OffsetDateTime {
        self.started_at
    }

    /// What refreshes and logins run with.
    pub fn ctx(&self) -> &Arc<Ctx> {
        &self.ctx
    }

    /// Agent forwarding.
    pub fn forwarding(&self) -> &Forwarding {
        &self.forward
    }

    /// The logins in progress.
    pub fn logins(&self) -> &Logins {
        &self.logins
    }

    /// Every resource of `kind`, by name.
    pub fn all(&self, kind: Kind) -> Vec<Arc<Resource>> {
        self.resources
            .read()
            .unwrap()
            .values()
            .filter(|r| r.kind == kind)
            .cloned()
            .collect()
    }

    /// The resource named `name`, or the only one when `name` is `None`.
    pub fn resolve(&self, name: Option<&str>) -> Result<Arc<Resource>, AgentError> {
        self.resolve_of(name, None)
    }

    /// THE answer to "which resource does this name mean": `name`, which
    /// must then be of `kind` where one is given; else the only resource of
    /// `kind` (or, with no kind, the only one that tokens are taken for: IdPs
    /// are only logged in to).
    pub fn resolve_of(
        &self,
        name: Option<&str>,
        kind: Option<Kind>,
    ) -> Result<Arc<Resource>, AgentError> {
        let all = self.resources.read().unwrap();
        let res = match name {
            Some(n) => all
                .get(n)
                .cloned()
                .ok_or_else(|| AgentError::Unknown(n.to_string()))?,
            None => {
                let usable: Vec<_> = all
                    .values()
                    .filter(|r| match kind {
                        Some(k) => r.kind == k,
                        None => r.kind != Kind::Idp,
                    })
                    .collect();
                match usable.as_slice() {
                    [one] => (*one).clone(),
                    [] => return Err(AgentError::NoneConfigured(kind)),
                    many => {
                        return Err(AgentError::Ambiguous(
                            many.iter().map(|r| r.name.clone()).collect(),
                        ))
                    }
                }
            }
        };
        match kind {
            Some(wanted) if res.kind != wanted => Err(AgentError::WrongKind {
                name: res.name.clone(),
                is: res.kind,
                wanted,
            }),
            _ => Ok(res),
        }
    }

    /// The resource `caller` may use by `name` (or the only one): a
    /// forwarded caller reaches forwardable resources only, and those
    /// marked `forward_confirm` only from a session the user said yes to.
    fn resolve_as(&self, caller: Caller, name: Option<&str>) -> Result<Arc<Resource>, AgentError> {
        let Caller::Forwarded(peer) = caller else {
            return self.resolve(name);
        };
        let name = match name {
            Some(n) => n.to_string(),
            None => match self.forward.names().as_slice() {
                [one] => one.clone(),
                [] => return Err(AgentError::NotLent("nothing is forwardable".into())),
                many => return Err(AgentError::Ambiguous(many.to_vec())),
            },
        };
        if let Some(why) = self.forward.refusal(&name, peer) {
            return Err(AgentError::NotLent(why));
        }
        self.resolve(Some(&name))
    }

    /// The resource whose URL covers `url` (its origin, and the longest
    /// path prefix at a segment boundary), among those `caller` may use;
    /// with `whole_origin`, the one resource at `url`'s origin, whatever its
    /// path (several there: ambiguous).
    pub fn covering(
        &self,
        caller: Caller,
        url: &str,
        whole_origin: bool,
    ) -> Result<RegistryStatus, AgentError> {
        let target = url::Url::parse(url)
            .map_err(|e| AgentError::Invalid(format!("{url:?} is not a URL: {e}")))?;
        let lent = match caller {
            Caller::Local => None,
            Caller::Forwarded(_) => Some(self.forward.names()),
        };
        let all = self.resources.read().unwrap();
        let mut best: Vec<(usize, Arc<Resource>)> = all
            .values()
            .filter(|r| r.kind != Kind::Idp)
            .filter(|r| lent.as_ref().is_none_or(|l| l.contains(&r.name)))
            .filter_map(|r| {
                let cover = if whole_origin {
                    crate::resource::at_origin(&r.url, &target).then_some(0)
                } else {
                    crate::resource::covers(&r.url, &target)
                };
                cover.map(|n| (n, r.clone()))
            })
            .collect();
        drop(all);
        best.sort_by_key(|b| std::cmp::Reverse(b.0));
        let shown = target.origin().ascii_serialization() + target.path();
        match best.as_slice() {
            [] => Err(AgentError::NoneCovers(shown)),
            [(n, _), (m, _), ..] if n == m => Err(AgentError::Ambiguous(
                best.iter()
                    .filter(|(k, _)| k == n)
                    .map(|(_, r)| r.name.clone())
                    .collect(),
            )),
            [(_, r), ..] => {
                let res = match caller {
                    Caller::Local => r.clone(),
                    Caller::Forwarded(_) => self.resolve_as(caller, Some(&r.name))?,
                };
                Ok(self.shown_to(caller, &res))
            }
        }
    }

    /// `GET /v1/resource`: the resource `name` means (or the only one), as
    /// `caller` may see it.
    pub fn lookup(
        &self,
        caller: Caller,
        name: Option<&str>,
        kind: Option<Kind>,
    ) -> Result<RegistryStatus, AgentError> {
        let res = match caller {
            Caller::Local => self.resolve_of(name, kind)?,
            Caller::Forwarded(_) => {
                let res = self.resolve_as(caller, name)?;
                match kind {
                    Some(wanted) if res.kind != wanted => {
                        return Err(AgentError::WrongKind {
                            name: res.name.clone(),
                            is: res.kind,
                            wanted,
                        })
                    }
                    _ => res,
                }
            }
        };
        Ok(self.shown_to(caller, &res))
    }

    /// A resource's status as `caller` may see it: a forwarded caller sees
    /// no name of a resource that is not lent to it.
    fn shown_to(&self, caller: Caller, res: &Arc<Resource>) -> RegistryStatus {
        let mut st = self.status(res);
        if let Caller::Forwarded(_) = caller {
            let lent = self.forward.names();
            if let Some(a) = st.auth.as_mut() {
                a.shared_with.retain(|n| lent.contains(n));
            }
        }
        st
    }

    /// The status of every resource of `kind` that `caller` may see: a
    /// forwarded caller sees the forwardable ones, and no other name.
    pub fn statuses(&self, caller: Caller, kind: Kind) -> Vec<RegistryStatus> {
        let lent = self.forward.names();
        self.all(kind)
            .iter()
            .filter(|r| caller == Caller::Local || lent.contains(&r.name))
            .map(|r| self.shown_to(caller, r))
            .collect()
    }

    /// The resource named `name`, which must be of `kind`.
    fn resolve_kind(&self, name: &str, kind: Kind) -> Result<Arc<Resource>, AgentError> {
        self.resolve_of(Some(name), Some(kind))
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
    fn sharers(&self, grant: &Arc<Grant>, except: &str) -> Vec<Arc<Resource>> {
        self.resources
            .read()
            .unwrap()
            .values()
            .filter(|r| r.name != except)
            .filter(|r| r.auth.oauth().is_some_and(|o| Arc::ptr_eq(&o.grant, grant)))
            .cloned()
            .collect()
    }

    /// Notes `url`'s host as one the user gave (it may be at any address).
    fn typed(&self, url: &str) {
        if let Some(h) = url::Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
        {
            self.ctx.idp.typed().add(&h);
        }
    }

    /// Makes `config` the one in force. Called with the config lock held.
    async fn apply(&self, config: &Config) {
        // The hosts the user gave: resources' URLs, issuers given by hand
        // (a discovered issuer came from a server's answer).
        let given = config
            .servers()
            .flat_map(|(_, _, rc)| {
                let issuer = match &rc.auth {
                    Some(AuthConfig::Oauth(o)) if !o.discovered => Some(o.issuer.clone()),
                    _ => None,
                };
                std::iter::once(rc.url.clone()).chain(issuer)
            })
            .chain(config.idps.values().map(|i| i.issuer.clone()))
            .filter_map(|u| url::Url::parse(&u).ok()?.host_str().map(str::to_string));
        self.ctx.idp.typed().set(given);
        // Checked when the file was read: a failure here is a file that
        // changed since (the settings before it stay).
        match config.network_settings() {
            Ok(n) => self.ctx.idp.set_network(n),
            Err(e) => tracing::warn!(error = %e, "network settings unusable; the ones before stay"),
        }
        *self.configured_metadata_url.write().unwrap() = config.client_metadata_url.clone();
        self.forward.set_rules(
            config
                .servers()
                .filter(|(_, _, rc)| rc.forwardable)
                .map(|(_, n, rc)| (n.clone(), rc.forward_confirm))
                .collect(),
        );
        let old = self.resources.read().unwrap().clone();
        let mut next = BTreeMap::new();
        let mut fresh = Vec::new();
        let entries = config
            .idps
            .iter()
            .map(|(n, i)| (n, Kind::Idp, i.issuer.clone(), Some(idp_auth(i))))
            .chain(
                config
                    .servers()
                    .map(|(k, n, rc)| (n, k, rc.url.clone(), rc.auth.clone())),
            );
        // IdPs come first: an enterprise-managed server needs its IdP's grant.
        for (name, kind, url, auth) in entries {
            let idp = self.idp_for(auth.as_ref(), &next);
            let unchanged = old.get(name).filter(|r| {
                r.kind == kind
                    && r.url == url
                    && r.auth.config() == auth
                    && same_idp(&r.auth, idp.as_ref())
            });
            let res = match unchanged {
                Some(r) => r.clone(),
                None => Arc::new(self.build(name, kind, url, auth, idp, &mut fresh)),
            };
            next.insert(name.clone(), res);
        }
        // New grants are loaded before any request can reach them.
        for g in &fresh {
            g.restore(&self.ctx).await;
        }
        for res in next.values() {
            if let (Some(o), Kind::Registry) = (res.auth.oauth(), res.kind) {
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
        // Client credentials no resource names any more go too.
        let clients = |m: &BTreeMap<String, Arc<Resource>>| -> BTreeSet<(String, String)> {
            m.values().filter_map(|r| client_of(&r.auth)).collect()
        };
        let still = clients(&next);
        for (issuer, client_id) in clients(&old).difference(&still) {
            self.ctx
                .clients
                .delete(&self.ctx.store, issuer, client_id)
                .await;
        }
    }

    /// The IdP an enterprise-managed auth names, from the resources built so far.
    fn idp_for(
        &self,
        auth: Option<&AuthConfig>,
        built: &BTreeMap<String, Arc<Resource>>,
    ) -> Option<Idp> {
        let Some(AuthConfig::Enterprise(e)) = auth else {
            return None;
        };
        let res = built.get(&e.idp).filter(|r| r.kind == Kind::Idp)?;
        res.auth.oauth().map(|o| Idp {
            name: res.name.clone(),
            grant: o.grant.clone(),
        })
    }

    /// A resource for a config entry; a grant it names that is not in use yet is added to `fresh`.
    fn build(
        &self,
        name: &str,
        kind: Kind,
        url: String,
        auth: Option<AuthConfig>,
        idp: Option<Idp>,
        fresh: &mut Vec<Arc<Grant>>,
    ) -> Resource {
        let auth = match auth {
            None => Auth::None,
            Some(AuthConfig::Bearer(b)) => Auth::Bearer(BearerFile { config: b }),
            Some(AuthConfig::ClientCredentials(c)) => {
                Auth::ClientCredentials(ClientCredentials::new(c))
            }
            Some(AuthConfig::Enterprise(e)) => Auth::Enterprise(Enterprise::new(e, idp)),
            Some(AuthConfig::Workload(w)) => Auth::Workload(Workload::new(w)),
            Some(AuthConfig::Oauth(c)) => {
                let spec = OAuthSource::spec(&c, name);
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
                    target: OAuthSource::target(&c),
                    config: c,
                    grant,
                })
            }
        };
        Resource {
            name: name.to_string(),
            kind,
            url,
            auth,
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
                dpop_bound: res.auth.dpop_key().is_some(),
                shared_with: res
                    .auth
                    .oauth()
                    .map(|o| {
                        self.sharers(&o.grant, &res.name)
                            .iter()
                            .map(|r| r.name.clone())
                            .collect()
                    })
                    .unwrap_or_default(),
            }
        });
        RegistryStatus {
            name: res.name.clone(),
            kind: Some(res.kind),
            url: res.url.clone(),
            auth,
            forward: self.forward.info(&res.name),
        }
    }

    /// `POST /v1/token`.
    pub async fn token(
        &self,
        caller: Caller,
        name: Option<&str>,
        min_valid: Duration,
        dpop: Option<&regent_proto::DpopRequest>,
    ) -> Result<TokenResponse, AgentError> {
        let res = self.resolve_as(caller, name)?;
        let lent = self
            .mint(&res, min_valid)
            .await
            .and_then(|t| self.prove(&res, t, dpop));
        match (caller, lent) {
            (Caller::Forwarded(peer), Ok(t)) => {
                self.forward.used(&res.name, peer, self.ctx.clock.now());
                tracing::info!(resource = %res.name, peer_pid = ?peer.pid, "lent a token over forwarding");
                Ok(t)
            }
            // The login is the user's to do, on the machine where the agent runs.
            (Caller::Forwarded(_), Err(AgentError::Token { resource, err }))
                if err.needs_login() =>
            {
                Err(AgentError::LoginElsewhere(resource))
            }
            (_, r) => r,
        }
    }

    /// A bound token's type, and its proof for the request `dpop` names (the
    /// resource server's last nonce in it): every caller, a forwarded one
    /// too, gets proofs and never the key.
    fn prove(
        &self,
        res: &Resource,
        mut t: TokenResponse,
        dpop: Option<&regent_proto::DpopRequest>,
    ) -> Result<TokenResponse, AgentError> {
        let Some(key) = res.auth.dpop_key() else {
            return Ok(t);
        };
        t.token_type = "DPoP".into();
        if let Some(d) = dpop {
            if let Some(n) = &d.nonce {
                self.ctx.dpop_nonces.put(&d.htu, n);
            }
            let nonce = self.ctx.dpop_nonces.get(&d.htu);
            let proof = key
                .proof(
                    &d.htm,
                    &d.htu,
                    Some(t.access_token.expose()),
                    nonce.as_deref(),
                )
                .map_err(|e| AgentError::Token {
                    resource: res.name.clone(),
                    err: TokenError::Internal(e.to_string()),
                })?;
            t.dpop_proof = Some(proof.into());
        }
        Ok(t)
    }

    /// A token for `res`, valid for `min_valid`.
    async fn mint(
        &self,
        res: &Arc<Resource>,
        min_valid: Duration,
    ) -> Result<TokenResponse, AgentError> {
        let token = match res.auth.token(&self.ctx, min_valid).await {
            None => return Err(AgentError::NotConfigured(res.name.clone(), res.kind)),
            Some(Ok(t)) => t,
            Some(Err(TokenError::Idp { code, description })) if code == "invalid_target" => {
                // RFC 8707: this AS will not mint this resource's token from the
                // shared login; a login of its own is the way out (if it shares one).
                let others = match res.auth.oauth() {
                    Some(o) if !o.config.own_grant && o.target.resource.is_some() => self
                        .sharers(&o.grant, &res.name)
                        .iter()
                        .map(|r| r.name.clone())
                        .collect(),
                    _ => Vec::new(),
                };
                let err = TokenError::Idp { code, description };
                if others.is_empty() {
                    return Err(AgentError::Token {
                        resource: res.name.clone(),
                        err,
                    });
                }
                return Err(self.own_grant(res, &others).await);
            }
            Some(Err(TokenError::Idp { code, description })) => {
                // The likely fix, where the IdP's code tells it.
                let fix = res.auth.oauth().and_then(|o| {
                    crate::oauth::explain::fix(
                        &code,
                        description.as_deref(),
                        crate::oauth::explain::Step::Refresh,
                        &o.config.client_id,
                    )
                });
                let description = match (description, fix) {
                    (Some(d), Some(f)) => Some(format!("{d}; {f}")),
                    (d, f) => d.or(f),
                };
                return Err(AgentError::Token {
                    resource: res.name.clone(),
                    err: TokenError::Idp { code, description },
                });
            }
            Some(Err(err)) => {
                return Err(AgentError::Token {
                    resource: res.name.clone(),
                    err,
                })
            }
        };
        Ok(TokenResponse {
            dpop_proof: None,
            access_token: token.token.expose_secret().to_string().into(),
            token_type: "Bearer".into(),
            expires_at: token.expires_at,
            scope: token.scope.clone(),
        })
    }

    /// `POST /v1/token/invalidate`.
    pub fn invalidate(
        &self,
        caller: Caller,
        name: Option<&str>,
        token: &str,
    ) -> Result<bool, AgentError> {
        Ok(self.resolve_as(caller, name)?.auth.invalidate(token))
    }

    /// The OAuth side of a resource, or why it has none.
    fn oauth<'r>(&self, res: &'r Resource) -> Result<&'r OAuthSource, AgentError> {
        match &res.auth {
            Auth::OAuth(o) => Ok(o),
            Auth::Bearer(_) => Err(AgentError::StaticToken(res.name.clone(), res.kind)),
            Auth::ClientCredentials(_) => {
                Err(AgentError::NoUser(res.name.clone(), "client credentials"))
            }
            Auth::Workload(_) => Err(AgentError::NoUser(res.name.clone(), "workload identity")),
            Auth::Enterprise(e) => Err(AgentError::ThroughIdp {
                name: res.name.clone(),
                idp: e.config.idp.clone(),
            }),
            Auth::None => Err(AgentError::NotConfigured(res.name.clone(), res.kind)),
        }
    }

    /// `POST /v1/login`. Where a token can be had without the user, and
    /// `force` is not given, nothing starts: the answer is a login that has
    /// `already` succeeded. A login pending for the same grant and flow is
    /// joined rather than replaced.
    pub async fn login(
        self: &Arc<Self>,
        name: Option<&str>,
        flow: LoginFlow,
        force: bool,
    ) -> Result<Login, AgentError> {
        let res = self.resolve(name)?;
        let o = self.oauth(&res)?;
        let sharers = self.sharers(&o.grant, &res.name);
        let also_names: Vec<String> = sharers.iter().map(|r| r.name.clone()).collect();
        let standing = o.state(&self.ctx);
        if !force && standing.status == regent_proto::AuthState::Authenticated {
            let id = self
                .logins
                .done(&res.name, o.grant.key(), flow, standing.account.clone());
            return Ok(Login {
                id,
                registry: res.name.clone(),
                already: true,
                account: standing.account,
                also: also_names,
                ..Login::new(flow, self.ctx.clock.now())
            });
        }
        let still_wanted = {
            let (agent, res) = (Arc::downgrade(self), res.clone());
            Arc::new(move || agent.upgrade().is_some_and(|a| a.is_current(&res)))
        };
        let subject = Subject {
            resource: res.name.clone(),
            grant: o.grant.clone(),
            target: o.target.clone(),
            also: sharers
                .iter()
                .filter_map(|r| r.auth.oauth().map(|o| o.target.clone()))
                .collect(),
            callback_port: o.config.callback_port,
            still_wanted,
        };
        let login = login::start(&self.ctx, &self.logins, subject, flow)
            .await
            .map_err(|err| AgentError::Login {
                resource: res.name.clone(),
                err,
            })?;
        Ok(Login {
            also: also_names,
            ..login
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
        let others: Vec<String> = self
            .sharers(&o.grant, &res.name)
            .iter()
            .map(|r| r.name.clone())
            .collect();
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
        let client = spec.client(&self.ctx).await;
        for (token, hint) in tokens {
            if let Err(e) = revoke::revoke(
                &self.ctx.idp,
                &client,
                &meta.issuer,
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

/// An IdP's config as the OAuth config of its resource.
fn idp_auth(i: &IdpConfig) -> AuthConfig {
    AuthConfig::Oauth(OAuthConfig {
        issuer: i.issuer.clone(),
        client_id: i.client_id.clone(),
        scopes: i.scopes.clone(),
        audience: None,
        resource: None,
        callback_port: i.callback_port,
        discovered: false,
        assume_pkce_s256: false,
        client: None,
        metadata_url: None,
        endpoints: None,
        own_grant: false,
        dpop: Default::default(),
        resource_dpop: false,
    })
}

/// Whether an enterprise-managed auth still points at the same IdP grant.
fn same_idp(auth: &Auth, idp: Option<&Idp>) -> bool {
    match auth {
        Auth::Enterprise(e) => match (&e.idp, idp) {
            (Some(a), Some(b)) => Arc::ptr_eq(&a.grant, &b.grant),
            (None, None) => true,
            _ => false,
        },
        _ => true,
    }
}

/// The (issuer, client id) whose credential an auth uses.
fn client_of(auth: &Auth) -> Option<(String, String)> {
    match auth {
        Auth::OAuth(o) => Some((o.config.issuer.clone(), o.config.client_id.clone())),
        Auth::ClientCredentials(c) => Some((c.config.issuer.clone(), c.config.client_id.clone())),
        Auth::Enterprise(e) => Some((e.config.issuer.clone(), e.config.client_id.clone())),
        Auth::Workload(w) => w
            .config
            .client_id
            .as_ref()
            .map(|id| (w.config.issuer.clone(), id.clone())),
        Auth::None | Auth::Bearer(_) => None,
    }
}
