//! From what the user asked for to an auth config: an explicit one checked
//! against its IdP, or one discovered from the resource (RFC 9728) with a
//! client chosen in the MCP order — the user's pre-registered one, else a
//! client ID metadata document, else dynamic registration (RFC 7591), else a
//! clear error. Secrets go to the store, never into the config.

use super::discover::{self, Found, Probe};
use super::{Agent, AgentError};
use crate::clients::Credential;
use crate::oauth::challenge::Challenge;
use crate::oauth::discovery::{self, Issuer, Metadata, Pkce};
use crate::oauth::{client::SigningKey, register};
use crate::resource::Kind;
use regent_proto::{
    AuthConfig, BearerConfig, ClientCredentialsConfig, ClientOrigin, EnterpriseConfig, McpAuth,
    OAuthConfig, Secret, TokenAuthMethod, WorkloadConfig,
};
use secrecy::SecretString;

/// What the user asked of a user-login auth.
#[derive(Default)]
pub struct Ask {
    /// A pre-registered client.
    pub client_id: Option<String>,
    /// Its secret.
    pub client_secret: Option<String>,
    /// Scopes instead of the discovered ones.
    pub scopes: Vec<String>,
    /// A fixed loopback port for the browser login.
    pub callback_port: Option<u16>,
    /// The AS supports S256 although its metadata does not say so.
    pub assume_pkce_s256: bool,
    /// The DPoP mode chosen (a rediscovery keeps the user's).
    pub dpop: regent_proto::DpopMode,
}

impl Agent {
    /// The auth of an MCP server as the user asked for it; `None` where the
    /// server wants none (it answered without a 401).
    pub(super) async fn mcp_auth(
        &self,
        name: &str,
        url: &str,
        ask: Option<McpAuth>,
    ) -> Result<Option<AuthConfig>, AgentError> {
        match ask {
            Some(McpAuth::None) => Ok(None),
            Some(McpAuth::Bearer { token_file }) => {
                let auth = AuthConfig::Bearer(BearerConfig { token_file });
                self.check_auth(name, Some(&auth)).await?;
                Ok(Some(auth))
            }
            Some(McpAuth::Workload {
                token_file,
                client_id,
                scopes,
            }) => {
                let found = self
                    .find_always(name, Kind::Mcp, url, Pkce::NotNeeded)
                    .await?;
                let auth = AuthConfig::Workload(WorkloadConfig {
                    issuer: found.issuer.issuer.clone(),
                    client_id: client_id.filter(|c| !c.trim().is_empty()),
                    token_file,
                    scopes: if scopes.is_empty() {
                        found.scopes
                    } else {
                        scopes
                    },
                    resource: Some(found.resource),
                    metadata_url: found.issuer.metadata_url,
                    dpop: Default::default(),
                    resource_dpop: found.resource_dpop,
                });
                self.check_auth(name, Some(&auth)).await?;
                Ok(Some(auth))
            }
            None => {
                self.discovered(name, Kind::Mcp, url, Ask::default(), None)
                    .await
            }
            Some(McpAuth::Oauth {
                client_id,
                client_secret,
                scopes,
                callback_port,
                assume_pkce_s256,
            }) => {
                let ask = Ask {
                    client_id,
                    client_secret: client_secret.map(Secret::into_inner),
                    scopes,
                    callback_port,
                    assume_pkce_s256,
                    // Set after, from what the user gave (set_dpop).
                    dpop: Default::default(),
                };
                self.discovered(name, Kind::Mcp, url, ask, None).await
            }
            Some(McpAuth::ClientCredentials {
                client_id,
                client_secret,
                private_key_pem,
                key_alg,
                scopes,
            }) => {
                let found = self
                    .find_always(name, Kind::Mcp, url, Pkce::NotNeeded)
                    .await?;
                let mut key_alg = key_alg;
                let method = match (&client_secret, &private_key_pem) {
                    (_, Some(pem)) => {
                        let key = SigningKey::from_pem(pem)
                            .and_then(|k| match &key_alg {
                                Some(a) => k.with_alg(a),
                                None => Ok(k),
                            })
                            .map_err(|e| invalid(name, format!("the private key: {e}")))?;
                        // The AS may take assertions in some algorithms only.
                        let accepted =
                            found.meta.token_endpoint_auth_signing_alg_values_supported.as_deref();
                        match key.alg_for(accepted) {
                            Some(a) if a == key.alg() => {}
                            Some(a) if key_alg.is_none() => key_alg = Some(a.to_string()),
                            _ => {
                                return Err(invalid(
                                    name,
                                    format!(
                                        "the authorization server takes client assertions signed with {} \
                                         only, and this key signs {}{}",
                                        accepted.unwrap_or_default().join(", "),
                                        key.alg(),
                                        if key_alg.is_some() {
                                            " (as --client-key-alg says)"
                                        } else {
                                            ": give a key it takes, or --client-key-alg"
                                        }
                                    ),
                                ))
                            }
                        }
                        TokenAuthMethod::PrivateKeyJwt
                    }
                    (Some(_), None) => secret_method(&found.meta),
                    (None, None) => {
                        return Err(invalid(
                            name,
                            "client credentials need a client secret (--client-secret-file) or a private key (--client-key-file)".into(),
                        ))
                    }
                };
                self.keep_credential(
                    name,
                    &found.issuer.issuer,
                    &client_id,
                    method,
                    client_secret.map(Secret::into_inner),
                    private_key_pem.map(|k| (k.into_inner(), key_alg)),
                )
                .await?;
                Ok(Some(AuthConfig::ClientCredentials(
                    ClientCredentialsConfig {
                        issuer: found.issuer.issuer.clone(),
                        client_id,
                        method,
                        scopes: if scopes.is_empty() {
                            found.scopes
                        } else {
                            scopes
                        },
                        resource: Some(found.resource),
                        metadata_url: found.issuer.metadata_url,
                        dpop: Default::default(),
                        resource_dpop: found.resource_dpop,
                    },
                )))
            }
            Some(McpAuth::Enterprise {
                idp,
                client_id,
                client_secret,
                scopes,
            }) => {
                if self.resolve_kind(&idp, Kind::Idp).is_err() {
                    return Err(invalid(
                        name,
                        format!("no enterprise IdP named {idp}; add it first with: regent idp add {idp} --issuer URL --client-id ID"),
                    ));
                }
                let found = self
                    .find_always(name, Kind::Mcp, url, Pkce::NotNeeded)
                    .await?;
                let method = if client_secret.is_some() {
                    secret_method(&found.meta)
                } else {
                    TokenAuthMethod::None
                };
                self.keep_credential(
                    name,
                    &found.issuer.issuer,
                    &client_id,
                    method,
                    client_secret.map(Secret::into_inner),
                    None,
                )
                .await?;
                Ok(Some(AuthConfig::Enterprise(EnterpriseConfig {
                    idp,
                    issuer: found.issuer.issuer.clone(),
                    client_id,
                    method,
                    scopes: if scopes.is_empty() {
                        found.scopes
                    } else {
                        scopes
                    },
                    resource: Some(found.resource),
                    metadata_url: found.issuer.metadata_url,
                    dpop: Default::default(),
                    resource_dpop: found.resource_dpop,
                })))
            }
        }
    }

    /// A user-login auth discovered from the resource at `url` (a 401's
    /// `challenge` where one is at hand, else a probe); `None` where it
    /// answered without asking for a token.
    pub(super) async fn discovered(
        &self,
        name: &str,
        kind: Kind,
        url: &str,
        ask: Ask,
        challenge: Option<Challenge>,
    ) -> Result<Option<AuthConfig>, AgentError> {
        let challenge = match challenge {
            Some(c) => c,
            None => match discover::probe(&self.ctx, kind, url)
                .await
                .map_err(|m| invalid(name, m))?
            {
                Probe::Open => {
                    tracing::info!(
                        resource = name,
                        "it answered without asking for a token: added without auth"
                    );
                    return Ok(None);
                }
                Probe::Challenged(c) => c,
            },
        };
        let pkce = if ask.assume_pkce_s256 {
            Pkce::Assumed
        } else {
            Pkce::Required
        };
        let found = discover::find(&self.ctx, url, &challenge, pkce)
            .await
            .map_err(|m| invalid(name, m))?;
        let (client_id, origin) = self.client_for(name, &found, &ask).await?;
        let scopes = if ask.scopes.is_empty() {
            found.scopes
        } else {
            ask.scopes
        };
        tracing::info!(
            resource = name,
            issuer = %found.issuer.issuer,
            client = ?origin,
            "discovered how to authorize"
        );
        self.ctx.issuers.put(found.meta);
        Ok(Some(AuthConfig::Oauth(OAuthConfig {
            issuer: found.issuer.issuer,
            client_id,
            scopes,
            audience: None,
            resource: Some(found.resource),
            callback_port: ask.callback_port,
            discovered: true,
            assume_pkce_s256: ask.assume_pkce_s256,
            client: Some(origin),
            metadata_url: found.issuer.metadata_url,
            endpoints: found.issuer.endpoints,
            own_grant: false,
            dpop: ask.dpop,
            resource_dpop: found.resource_dpop,
        })))
    }

    /// Discovery for auth kinds that need an AS whether or not the probe
    /// was challenged (client credentials, enterprise-managed).
    async fn find_always(
        &self,
        name: &str,
        kind: Kind,
        url: &str,
        pkce: Pkce,
    ) -> Result<Found, AgentError> {
        let challenge = match discover::probe(&self.ctx, kind, url)
            .await
            .map_err(|m| invalid(name, m))?
        {
            Probe::Challenged(c) => c,
            Probe::Open => Challenge::default(),
        };
        let found = discover::find(&self.ctx, url, &challenge, pkce)
            .await
            .map_err(|m| invalid(name, m))?;
        self.ctx.issuers.put(found.meta.clone());
        Ok(found)
    }

    /// The client for a user login at the discovered AS.
    async fn client_for(
        &self,
        name: &str,
        found: &Found,
        ask: &Ask,
    ) -> Result<(String, ClientOrigin), AgentError> {
        let issuer = &found.issuer.issuer;
        if let Some(id) = &ask.client_id {
            let method = match &ask.client_secret {
                Some(_) => secret_method(&found.meta),
                None => TokenAuthMethod::None,
            };
            self.keep_credential(name, issuer, id, method, ask.client_secret.clone(), None)
                .await?;
            return Ok((id.clone(), ClientOrigin::Preregistered));
        }
        let cimd = self.client_metadata_url();
        if let (true, Some(url)) = (found.meta.client_id_metadata_document_supported, cimd) {
            return Ok((url, ClientOrigin::MetadataDocument));
        }
        if found.meta.registration_endpoint.is_some() {
            // One registration per AS: reuse the one another resource made there.
            if let Some(id) = self.registered_at(issuer) {
                return Ok((id, ClientOrigin::Registered));
            }
            let redirect = match ask.callback_port {
                Some(p) => format!("http://127.0.0.1:{p}/callback"),
                None => "http://127.0.0.1/callback".to_string(),
            };
            let r = register::register(&self.ctx.idp, &found.meta, &redirect)
                .await
                .map_err(|e| {
                    invalid(
                        name,
                        format!("dynamic client registration at {issuer}: {e}"),
                    )
                })?;
            tracing::info!(resource = name, issuer = %issuer, method = ?r.method, "registered regent as a client");
            let secret = r
                .client_secret
                .map(|s| secrecy::ExposeSecret::expose_secret(&s).to_string());
            self.keep_credential(name, issuer, &r.client_id, r.method, secret, None)
                .await?;
            return Ok((r.client_id, ClientOrigin::Registered));
        }
        Err(invalid(
            name,
            format!(
                "the authorization server {issuer} offers no dynamic client registration{}; \
                 register a client there and pass --client-id (and --client-secret-file if it has a secret)",
                if found.meta.client_id_metadata_document_supported {
                    " (it accepts client ID metadata documents: configure one with regentd --client-metadata-url)"
                } else {
                    ""
                }
            ),
        ))
    }

    /// The client id regent registered at `issuer` for another resource, if any.
    fn registered_at(&self, issuer: &str) -> Option<String> {
        self.resources
            .read()
            .unwrap()
            .values()
            .find_map(|r| match r.auth.config() {
                Some(AuthConfig::Oauth(c))
                    if c.issuer == issuer && c.client == Some(ClientOrigin::Registered) =>
                {
                    Some(c.client_id)
                }
                _ => None,
            })
    }

    /// Keeps a client's credential in the store (nothing for a public client).
    pub(super) async fn keep_credential(
        &self,
        name: &str,
        issuer: &str,
        client_id: &str,
        method: TokenAuthMethod,
        secret: Option<String>,
        key: Option<(String, Option<String>)>,
    ) -> Result<(), AgentError> {
        if method == TokenAuthMethod::None && secret.is_none() && key.is_none() {
            self.ctx
                .clients
                .delete(&self.ctx.store, issuer, client_id)
                .await;
            return Ok(());
        }
        let credential = Credential {
            method,
            secret: secret.map(SecretString::from),
            key_alg: key.as_ref().and_then(|(_, alg)| alg.clone()),
            private_key_pem: key.map(|(pem, _)| SecretString::from(pem)),
        };
        self.ctx
            .clients
            .save(&self.ctx.store, issuer, client_id, credential)
            .await
            .map_err(|e| invalid(name, e.to_string()))
    }

    /// Checks an explicit auth config: a token file's path, an issuer's metadata.
    pub(super) async fn check_auth(
        &self,
        name: &str,
        auth: Option<&AuthConfig>,
    ) -> Result<Option<Metadata>, AgentError> {
        match auth {
            None | Some(AuthConfig::ClientCredentials(_)) | Some(AuthConfig::Enterprise(_)) => {
                Ok(None)
            }
            Some(AuthConfig::Workload(w)) => {
                if !w.token_file.is_absolute() {
                    return Err(invalid(
                        name,
                        format!(
                            "token_file {} must be an absolute path",
                            w.token_file.display()
                        ),
                    ));
                }
                // Read now so a wrong path or a file that is not a JWT is
                // said at add, not at the first call.
                crate::auth::workload::read_token(w).map_err(|e| invalid(name, e))?;
                Ok(None)
            }
            Some(AuthConfig::Bearer(b)) => {
                if !b.token_file.is_absolute() {
                    return Err(invalid(
                        name,
                        format!(
                            "token_file {} must be an absolute path",
                            b.token_file.display()
                        ),
                    ));
                }
                Ok(None)
            }
            Some(AuthConfig::Oauth(c)) => {
                if c.client_id.trim().is_empty() {
                    return Err(invalid(name, "client_id must not be empty".into()));
                }
                if c.callback_port == Some(0) {
                    return Err(invalid(name, "callback_port must be 1-65535".into()));
                }
                let issuer = crate::auth::OAuthSource::spec(c, name).issuer;
                let meta = discovery::discover(&self.ctx.idp, &issuer)
                    .await
                    .map_err(|e| invalid(name, format!("cannot use issuer {}: {e}", c.issuer)))?;
                Ok(Some(meta))
            }
        }
    }

    /// Checks an enterprise IdP's issuer (no PKCE needed: it may be used only
    /// for token exchange; a browser login there checks S256 when it starts).
    pub(super) async fn check_idp(&self, name: &str, issuer: &str) -> Result<Metadata, AgentError> {
        let issuer = Issuer::without_code_flow(issuer, None);
        discovery::discover(&self.ctx.idp, &issuer)
            .await
            .map_err(|e| invalid(name, format!("cannot use issuer {}: {e}", issuer.issuer)))
    }
}

/// How a client with a secret authenticates at this AS: Basic where offered
/// (RFC 8414's default when nothing is listed), else in the body.
pub(super) fn secret_method(meta: &Metadata) -> TokenAuthMethod {
    match &meta.token_endpoint_auth_methods_supported {
        Some(m)
            if !m.iter().any(|x| x == "client_secret_basic")
                && m.iter().any(|x| x == "client_secret_post") =>
        {
            TokenAuthMethod::ClientSecretPost
        }
        _ => TokenAuthMethod::ClientSecretBasic,
    }
}

fn invalid(name: &str, message: String) -> AgentError {
    AgentError::InvalidAuth {
        resource: name.to_string(),
        message,
    }
}
