//! regent's network settings, for every HTTP client it makes (the agent's
//! towards IdPs and servers, the CLI's towards registries and MCP servers):
//! the certificate authorities it trusts, the proxies it goes through, the
//! client certificate it presents, and what a failure among them means, in
//! words that name the host and the setting that fixes it.
//!
//! The settings come from the config file's `[network]` table, which wins,
//! and from the environment (`HTTPS_PROXY`, `NO_PROXY`, `SSL_CERT_FILE`…):
//! an agent started by systemd has the same settings as one started from a
//! login shell, because they are in the file.

mod config;
mod explain;
mod identity;
mod probe;
mod proxy;
mod trust;

pub use config::NetworkConfig;
pub use explain::{chain_text, Failure, Kind};
pub use probe::{Reached, Unreached};
pub use proxy::{redacted, NoProxy, Proxies, NO_PROXY_ENV, PROXY_ENV};

use regent_proto::NetworkStatus;
use std::path::{Path, PathBuf};

/// Why the network settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// A file the settings name cannot be read or holds no certificate.
    #[error("{0}")]
    File(String),
    /// A proxy URL that is not one.
    #[error("{0}")]
    Proxy(String),
    /// The client certificate or key is unusable (or the key readable by others).
    #[error("{0}")]
    Identity(String),
    /// The config file's `[network]` table does not parse.
    #[error("{0}")]
    Config(String),
}

/// The settings, resolved: what every client is built with.
#[derive(Clone)]
pub struct Network {
    trust: trust::Trust,
    proxies: Proxies,
    identity: Option<identity::Identity>,
    /// Client certificates of resources that have their own, by origin
    /// (their server's and their IdP's).
    per_origin: std::sync::Arc<Vec<(url::Origin, identity::Identity)>>,
}

/// A resource's own client certificate: the URLs it is for (its server,
/// its IdP), the certificate and the key.
pub type ResourceCert = (Vec<String>, PathBuf, PathBuf);

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The status form: never a password.
        write!(f, "Network({:?})", self.status())
    }
}

impl Network {
    /// The settings of `config` over those of the process's environment.
    pub fn load(config: &NetworkConfig) -> Result<Network, NetError> {
        Network::load_with(config, &|k| std::env::var(k).ok())
    }

    /// As [`Network::load`], with the environment read through `env`.
    pub fn load_with(
        config: &NetworkConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Network, NetError> {
        Ok(Network {
            trust: trust::Trust::load(config.ca_file.as_deref(), env)?,
            proxies: Proxies::resolve(config, env)?,
            identity: match (&config.client_cert, &config.client_key) {
                (Some(c), Some(k)) => Some(identity::Identity::load(c, k)?),
                (None, None) => None,
                _ => {
                    return Err(NetError::Identity(
                        "[network] needs both client_cert and client_key, or neither".into(),
                    ))
                }
            },
            per_origin: Default::default(),
        })
    }

    /// These settings, with resources' own client certificates for the
    /// origins of their URLs.
    pub fn with_resource_certs(&self, certs: &[ResourceCert]) -> Result<Network, NetError> {
        let mut per_origin = Vec::new();
        for (urls, cert, key) in certs {
            let id = identity::Identity::load(cert, key)?;
            for u in urls {
                if let Ok(u) = url::Url::parse(u) {
                    per_origin.push((u.origin(), id.clone()));
                }
            }
        }
        Ok(Network {
            per_origin: std::sync::Arc::new(per_origin),
            ..self.clone()
        })
    }

    /// The origins that have a client certificate of their own.
    pub fn own_cert_origins(&self) -> Vec<url::Origin> {
        self.per_origin.iter().map(|(o, _)| o.clone()).collect()
    }

    fn identity_for(&self, url: &url::Url) -> Option<&identity::Identity> {
        let o = url.origin();
        self.per_origin
            .iter()
            .find(|(p, _)| *p == o)
            .map(|(_, i)| i)
            .or(self.identity.as_ref())
    }

    /// The settings of the config file at `path` (its `[network]` table,
    /// and resources' own client certificates; a missing file or table
    /// means none) over the environment's.
    pub fn from_config_file(path: &Path) -> Result<Network, NetError> {
        Network::load(&NetworkConfig::read(path)?)?
            .with_resource_certs(&config::resource_certs(path)?)
    }

    /// Puts the settings on a client builder: the CAs (the bundled Mozilla
    /// roots, the system's store, `ca_file`), the proxies (one decision,
    /// [`Network::proxy_for`]), the client certificate.
    pub fn apply(&self, b: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
        self.build(b, self.identity.as_ref())
    }

    /// As [`Network::apply`], for a client that talks to the origin of
    /// `url` alone: with that resource's own client certificate, if any.
    pub fn apply_for(&self, url: &url::Url, b: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
        self.build(b, self.identity_for(url))
    }

    pub(crate) fn build(
        &self,
        mut b: reqwest::ClientBuilder,
        identity: Option<&identity::Identity>,
    ) -> reqwest::ClientBuilder {
        b = self.trust.apply(b);
        let proxies = self.proxies.clone();
        b = b
            .no_proxy()
            .proxy(reqwest::Proxy::custom(move |url| proxies.proxy_for(url)));
        if let Some(id) = identity {
            b = b.identity(id.reqwest());
        }
        b
    }

    /// The proxy a request to `url` goes through, if any.
    pub fn proxy_for(&self, url: &url::Url) -> Option<url::Url> {
        self.proxies.proxy_for(url)
    }

    /// The proxies.
    pub fn proxies(&self) -> &Proxies {
        &self.proxies
    }

    /// The client certificate's file, if one is presented.
    pub fn client_cert(&self) -> Option<&PathBuf> {
        self.identity.as_ref().map(|i| &i.cert_file)
    }

    /// The client certificate's file presented to the origin of `url`.
    pub fn client_cert_for(&self, url: &url::Url) -> Option<&PathBuf> {
        self.identity_for(url).map(|i| &i.cert_file)
    }

    /// What is in use, for `regent status` and `regent doctor`.
    pub fn status(&self) -> NetworkStatus {
        let (https, http, source) = self.proxies.shown();
        let source = match self.proxies.skipped() {
            [] => source.to_string(),
            s => format!("{source} ({} left out: {})", s.len(), s.join("; ")),
        };
        NetworkStatus {
            https_proxy: https,
            http_proxy: http,
            proxy_source: source,
            no_proxy: self.proxies.no_proxy_shown(),
            ca_sources: self.trust.sources().to_vec(),
            client_cert: self.client_cert().cloned(),
        }
    }

    /// A `407` from `proxy` for a request to `url` (a plain `http` request
    /// goes through the proxy as is, so its refusal is an answer).
    pub fn proxy_auth_refused(&self, url: &url::Url, proxy: &url::Url) -> Failure {
        explain::proxy_auth(url, proxy, self)
    }

    /// What a failed request to `url` means: the host, what was wrong, and
    /// the setting that fixes it; `None` where it was none of regent's
    /// network settings' business (the caller says it as it was).
    pub fn explain(
        &self,
        err: &(dyn std::error::Error + 'static),
        url: &url::Url,
    ) -> Option<Failure> {
        explain::explain(err, url, self.proxy_for(url).as_ref(), self)
    }
}
