//! The operations that change the config: adding, replacing and removing
//! registries, MCP servers and enterprise IdPs, and SIGHUP's reload. Each
//! runs under the config lock: a change made on disk meanwhile is taken in
//! first, the file is edited in place, and the result applies.

use super::setup::Ask;
use super::{Agent, AgentError};
use crate::config::{values, ConfigError, ConfigFile, IdpConfig, RegistryConfig, Section};
use crate::resource::{Kind, Resource};
use crate::token::TokenError;
use regent_proto::{AuthConfig, PutIdp, PutMcp, RegistryStatus};
use secrecy::SecretString;
use std::sync::Arc;

impl Agent {
    /// Re-reads the config file (SIGHUP). A file that does not parse, or is
    /// missing, changes nothing. Returns the number of resources.
    pub async fn reload(&self) -> Result<usize, AgentError> {
        let mut file = self.config.lock().await;
        if !file.path().exists() {
            return Err(AgentError::Config(ConfigError::Io {
                what: "cannot reload: there is no file at",
                path: file.path().to_path_buf(),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            }));
        }
        file.refresh().map_err(AgentError::Config)?;
        let config = file.config().clone();
        // The files [network] names may have changed without the config file
        // (a key made readable to others): checked again, and refused whole.
        config.network_settings().map_err(|e| {
            AgentError::Invalid(format!("{e} (the running config stays until it is fixed)"))
        })?;
        self.apply(&config).await;
        let n = config.servers().count() + config.idps.len();
        tracing::info!(resources = n, "config reloaded");
        Ok(n)
    }

    /// Runs a change of the config file: a change made on disk meanwhile is
    /// taken in first, then `change` edits the file, then the result applies.
    pub(super) async fn change<T>(
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

    /// Refuses a name another kind of resource already has.
    fn check_name(&self, name: &str, kind: Kind) -> Result<(), AgentError> {
        values::validate_name(name).map_err(AgentError::Invalid)?;
        match self.resolve(Some(name)) {
            Ok(r) if r.kind != kind => Err(AgentError::Taken {
                name: name.to_string(),
                by: r.kind,
            }),
            _ => Ok(()),
        }
    }

    /// What the user's decision makes of `auth` for resource `name` at
    /// `url`. A login is shared without asking only with resources on the
    /// same origin; where the login `auth` names is one that resources on
    /// other origins use, `share` decides (`true`: share it; `false`: a
    /// login of its own), and without it the change is refused, naming both.
    /// (RFC 8707 alone is no consent: many ASes mint any audience asked for.)
    fn consent(
        &self,
        name: &str,
        url: &str,
        auth: Option<AuthConfig>,
        share: Option<bool>,
    ) -> Result<Option<AuthConfig>, AgentError> {
        let Some(AuthConfig::Oauth(mut config)) = auth else {
            return Ok(auth);
        };
        if share == Some(false) {
            config.own_grant = true;
        }
        if config.own_grant || share == Some(true) {
            return Ok(Some(AuthConfig::Oauth(config)));
        }
        let key = crate::auth::OAuthSource::spec(&config, name).key();
        let origin = |u: &str| url::Url::parse(u).ok().map(|u| u.origin());
        let mine = origin(url);
        let users: Vec<Arc<Resource>> = self
            .resources
            .read()
            .unwrap()
            .values()
            .filter(|r| r.name != name)
            .filter(|r| r.auth.oauth().is_some_and(|o| o.grant.key() == key))
            .cloned()
            .collect();
        if users.is_empty() || users.iter().any(|r| origin(&r.url) == mine) {
            return Ok(Some(AuthConfig::Oauth(config)));
        }
        let who: Vec<String> = users
            .iter()
            .map(|r| format!("{} ({})", r.name, r.url))
            .collect();
        Err(AgentError::ConsentNeeded {
            resource: name.to_string(),
            message: format!(
                "{name} ({url}) would use the login at {} that {} already use{}: tokens for {name} \
                 would be minted from it without a login. Share that login with --share-login \
                 (\"share_login\": true), or give {name} a login of its own with --own-login \
                 (\"share_login\": false)",
                config.issuer,
                who.join(", "),
                if who.len() == 1 { "s" } else { "" }
            ),
        })
    }

    /// Adds or replaces a registry or an API, `kind` (`auth` validated
    /// against the IdP first; with `discover` and no `auth`, found out from
    /// the resource itself). `url: None` keeps its URL (set/unset-registry-auth).
    // One parameter per field of `PUT /v1/registries/{name}`.
    #[allow(clippy::too_many_arguments)]
    pub async fn put_registry(
        &self,
        kind: Kind,
        name: &str,
        url: Option<String>,
        auth: Option<AuthConfig>,
        discover: bool,
        client_secret: Option<String>,
        share_login: Option<bool>,
        dpop: Option<regent_proto::DpopMode>,
    ) -> Result<RegistryStatus, AgentError> {
        self.check_name(name, kind)?;
        if let Some(u) = &url {
            values::validate_url(u).map_err(AgentError::Invalid)?;
        }
        let url = match url {
            Some(u) => u,
            None => self.resolve_kind(name, kind)?.url.clone(),
        };
        self.typed(&url);
        if let Some(AuthConfig::Oauth(o)) = &auth {
            self.typed(&o.issuer);
        }
        let mut auth = match (auth, discover) {
            (None, true) => {
                self.discovered(name, kind, &url, Ask::default(), None)
                    .await?
            }
            (auth, _) => {
                if let Some(m) = self.check_auth(name, auth.as_ref()).await? {
                    if let (Some(AuthConfig::Oauth(o)), Some(secret)) = (&auth, client_secret) {
                        let method = super::setup::secret_method(&m);
                        self.keep_credential(
                            name,
                            &o.issuer,
                            &o.client_id,
                            method,
                            Some(secret),
                            None,
                        )
                        .await?;
                    }
                    self.ctx.issuers.put(m);
                }
                auth
            }
        };
        set_dpop(name, &mut auth, dpop)?;
        values::check_cleartext(name, &url, auth.is_some()).map_err(AgentError::Invalid)?;
        // Decided under the config lock, on the config as it is now: two adds
        // at once cannot both find nobody to share with.
        self.change(|file| {
            let auth = self.consent(name, &url, auth, share_login)?;
            let section = Section::of(kind);
            let entry = entry(file, section, name, url, auth);
            file.put(section, name, &entry).map_err(AgentError::Config)
        })
        .await?;
        Ok(self.status(&self.resolve(Some(name))?))
    }

    /// Adds or replaces an MCP server, its auth discovered from the server
    /// where not given.
    pub async fn put_mcp(&self, name: &str, req: PutMcp) -> Result<RegistryStatus, AgentError> {
        self.check_name(name, Kind::Mcp)?;
        values::validate_url(&req.url).map_err(AgentError::Invalid)?;
        self.typed(&req.url);
        let mut auth = self.mcp_auth(name, &req.url, req.auth).await?;
        set_dpop(name, &mut auth, req.dpop)?;
        values::check_cleartext(name, &req.url, auth.is_some()).map_err(AgentError::Invalid)?;
        let (url, share) = (req.url, req.share_login);
        self.change(|file| {
            let auth = self.consent(name, &url, auth, share)?;
            let entry = entry(file, Section::Mcp, name, url, auth);
            file.put(Section::Mcp, name, &entry)
                .map_err(AgentError::Config)
        })
        .await?;
        Ok(self.status(&self.resolve(Some(name))?))
    }

    /// Sets the auth of an existing registry or MCP server (a rediscovery, a
    /// step-up, a grant of its own).
    pub(super) async fn set_auth(
        &self,
        name: &str,
        kind: Kind,
        auth: Option<AuthConfig>,
    ) -> Result<(), AgentError> {
        let section = match kind {
            Kind::Idp => return Err(AgentError::Invalid(format!("{name} is an IdP"))),
            other => Section::of(other),
        };
        let url = self.resolve_kind(name, kind)?.url.clone();
        self.change(|file| {
            // A server's answer (a rediscovery, a step-up) never lends it another
            // resource's login: where it would, it gets a login of its own.
            let auth = match self.consent(name, &url, auth.clone(), None) {
                Ok(a) => a,
                Err(AgentError::ConsentNeeded { .. }) => {
                    tracing::info!(
                        resource = name,
                        "a login of its own: it would share another origin's login"
                    );
                    self.consent(name, &url, auth, Some(false))?
                }
                Err(e) => return Err(e),
            };
            let entry = entry(file, section, name, url, auth);
            file.put(section, name, &entry).map_err(AgentError::Config)
        })
        .await
    }

    /// Makes a registry or MCP server forwardable over `regent ssh`, or not.
    pub async fn set_forward(
        &self,
        name: &str,
        req: regent_proto::PutForward,
    ) -> Result<RegistryStatus, AgentError> {
        let res = self.resolve(Some(name))?;
        let section = match res.kind {
            Kind::Idp => {
                return Err(AgentError::Invalid(format!(
                    "{name} is an IdP: forward the MCP servers that use it instead"
                )))
            }
            other => Section::of(other),
        };
        self.change(|file| {
            let mut entry = file
                .config()
                .table(section)
                .and_then(|t| t.get(name))
                .cloned()
                .ok_or_else(|| AgentError::Unknown(name.to_string()))?;
            entry.forwardable = req.forwardable;
            entry.forward_confirm = req.forwardable && req.confirm;
            file.put(section, name, &entry).map_err(AgentError::Config)
        })
        .await?;
        Ok(self.status(&self.resolve(Some(name))?))
    }

    /// Gives `res` a login of its own: the AS refused to mint its token from
    /// the login it shares (`invalid_target`). Returns the error to answer.
    pub(super) async fn own_grant(&self, res: &Resource, others: &[String]) -> AgentError {
        let name = res.name.clone();
        let Some(AuthConfig::Oauth(mut config)) = res.auth.config() else {
            return AgentError::Invalid(format!("{name} has no OAuth login to give it its own"));
        };
        config.own_grant = true;
        if let Err(e) = self
            .set_auth(&name, res.kind, Some(AuthConfig::Oauth(config)))
            .await
        {
            return e;
        }
        tracing::warn!(
            resource = %name,
            "the authorization server refused a token for it from the login it shares (invalid_target); it gets a login of its own"
        );
        AgentError::Token {
            err: TokenError::AuthRequired(format!(
                "the authorization server will not issue a token for {name} from the login it shares with {} \
                 (invalid_target), so {name} now has a login of its own; log in with: regent login {name}",
                others.join(", ")
            )),
            resource: name,
        }
    }

    /// Adds or replaces an enterprise IdP.
    pub async fn put_idp(&self, name: &str, req: PutIdp) -> Result<RegistryStatus, AgentError> {
        self.check_name(name, Kind::Idp)?;
        values::validate_url(&req.issuer).map_err(AgentError::Invalid)?;
        self.typed(&req.issuer);
        let meta = self.check_idp(name, &req.issuer).await?;
        let secret = req.client_secret.clone();
        if let Some(secret) = secret {
            let method = super::setup::secret_method(&meta);
            self.ctx
                .clients
                .save(
                    &self.ctx.store,
                    &req.issuer,
                    &req.client_id,
                    crate::clients::Credential {
                        method,
                        secret: Some(SecretString::from(secret.into_inner())),
                        private_key_pem: None,
                        key_alg: None,
                    },
                )
                .await
                .map_err(|e| AgentError::InvalidAuth {
                    resource: name.to_string(),
                    message: e.to_string(),
                })?;
        }
        self.ctx.issuers.put(meta);
        let config = IdpConfig {
            issuer: req.issuer,
            client_id: req.client_id,
            scopes: req.scopes,
            callback_port: req.callback_port,
        };
        self.change(|file| {
            file.put(Section::Idps, name, &config)
                .map_err(AgentError::Config)
        })
        .await?;
        Ok(self.status(&self.resolve(Some(name))?))
    }

    /// Takes an ID token the user already has (their company's SSO tool) as
    /// the login at enterprise IdP `name`.
    pub async fn hand_over_id_token(&self, name: &str, id_token: String) -> Result<(), AgentError> {
        let res = self.resolve_kind(name, Kind::Idp)?;
        let o = self.oauth(&res)?;
        if id_token.split('.').count() != 3 {
            return Err(AgentError::Invalid(
                "that is not an ID token (a JWT: three dot-separated parts)".into(),
            ));
        }
        self.logins
            .cancel_resource(name, "an ID token was handed over");
        let persisted = o
            .grant
            .install_id_token(&self.ctx, SecretString::from(id_token))
            .await;
        tracing::info!(
            resource = name,
            persisted,
            "took an ID token as the login at the IdP"
        );
        Ok(())
    }

    /// Removes a resource of `kind`; its grant's stored tokens go unless
    /// another resource uses it.
    pub async fn remove(&self, name: &str, kind: Kind) -> Result<(), AgentError> {
        self.resolve_kind(name, kind)?;
        let section = Section::of(kind);
        self.change(|file| match file.remove(section, name) {
            Ok(true) => Ok(()),
            Ok(false) => Err(AgentError::Unknown(name.to_string())),
            Err(e) => Err(AgentError::Config(e)),
        })
        .await
    }
}

/// The entry `name` gets: `url` and `auth`, and the forwarding choices and
/// client certificate it had (a re-add, a step-up or a rediscovery keeps them).
fn entry(
    file: &ConfigFile,
    section: Section,
    name: &str,
    url: String,
    auth: Option<AuthConfig>,
) -> RegistryConfig {
    let old = file.config().table(section).and_then(|t| t.get(name));
    RegistryConfig {
        url,
        auth,
        forwardable: old.is_some_and(|o| o.forwardable),
        forward_confirm: old.is_some_and(|o| o.forward_confirm),
        client_cert: old.and_then(|o| o.client_cert.clone()),
        client_key: old.and_then(|o| o.client_key.clone()),
    }
}

/// The DPoP mode the user gave, on any auth that gets tokens from an AS
/// (a static token cannot be bound).
fn set_dpop(
    name: &str,
    auth: &mut Option<AuthConfig>,
    mode: Option<regent_proto::DpopMode>,
) -> Result<(), AgentError> {
    match (auth, mode) {
        (_, None) => Ok(()),
        (Some(AuthConfig::Oauth(o)), Some(m)) => {
            o.dpop = m;
            Ok(())
        }
        (Some(AuthConfig::ClientCredentials(c)), Some(m)) => {
            c.dpop = m;
            Ok(())
        }
        (Some(AuthConfig::Workload(w)), Some(m)) => {
            w.dpop = m;
            Ok(())
        }
        (Some(AuthConfig::Enterprise(e)), Some(m)) => {
            e.dpop = m;
            Ok(())
        }
        (_, Some(regent_proto::DpopMode::Never | regent_proto::DpopMode::Auto)) => Ok(()),
        (_, Some(regent_proto::DpopMode::Always)) => Err(AgentError::Invalid(format!(
            "{name}: DPoP binds tokens an authorization server issues; this resource has none"
        ))),
    }
}
