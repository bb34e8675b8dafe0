//! The agent's configuration: registries, MCP servers, APIs and enterprise IdPs,
//! with their auth, and no secrets. The types and their validation are
//! here; the file, which people edit too, is [`file::ConfigFile`].

pub mod file;
pub mod values;

pub use file::ConfigFile;

use regent_proto::AuthConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The whole config file.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// regent's client ID metadata document (its URL is its client id where
    /// an AS supports those); `regentd --client-metadata-url` overrides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_metadata_url: Option<String>,
    /// Registries by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub registries: BTreeMap<String, RegistryConfig>,
    /// Remote MCP servers by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub mcp: BTreeMap<String, RegistryConfig>,
    /// Other HTTPS APIs behind an AS (for the credential helpers) by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub apis: BTreeMap<String, RegistryConfig>,
    /// Enterprise IdPs (cross-app access) by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub idps: BTreeMap<String, IdpConfig>,
    /// `[network]`: CAs, proxies, a client certificate (over the environment's).
    #[serde(default, skip_serializing_if = "is_default")]
    pub network: regent_net::NetworkConfig,
}

fn is_default(n: &regent_net::NetworkConfig) -> bool {
    *n == regent_net::NetworkConfig::default()
}

/// The sections of resources, as the file names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// `[registries.NAME]`.
    Registries,
    /// `[mcp.NAME]`.
    Mcp,
    /// `[apis.NAME]`.
    Apis,
    /// `[idps.NAME]`.
    Idps,
}

impl Section {
    /// The table's name in the file.
    pub fn key(self) -> &'static str {
        match self {
            Section::Registries => "registries",
            Section::Mcp => "mcp",
            Section::Apis => "apis",
            Section::Idps => "idps",
        }
    }

    /// The section that holds resources of `kind`.
    pub fn of(kind: regent_proto::ResourceKind) -> Section {
        use regent_proto::ResourceKind as K;
        match kind {
            K::Registry => Section::Registries,
            K::Mcp => Section::Mcp,
            K::Api => Section::Apis,
            K::Idp => Section::Idps,
        }
    }
}

impl Config {
    /// The resources that have a URL of their own (registries, MCP servers,
    /// APIs), with their kind: every place that walks them walks this.
    pub fn servers(
        &self,
    ) -> impl Iterator<Item = (regent_proto::ResourceKind, &String, &RegistryConfig)> {
        use regent_proto::ResourceKind as K;
        [
            (K::Registry, &self.registries),
            (K::Mcp, &self.mcp),
            (K::Api, &self.apis),
        ]
        .into_iter()
        .flat_map(|(k, m)| m.iter().map(move |(n, rc)| (k, n, rc)))
    }

    /// The entries of `section`, where it holds servers (not IdPs).
    pub fn table(&self, section: Section) -> Option<&BTreeMap<String, RegistryConfig>> {
        match section {
            Section::Registries => Some(&self.registries),
            Section::Mcp => Some(&self.mcp),
            Section::Apis => Some(&self.apis),
            Section::Idps => None,
        }
    }

    /// The network settings: `[network]`, and the client certificates of
    /// the resources that have their own (for their server and their IdP).
    pub fn network_settings(&self) -> Result<regent_net::Network, String> {
        let net =
            regent_net::Network::load(&self.network).map_err(|e| format!("[network]: {e}"))?;
        let mut certs = Vec::new();
        for (kind, name, rc) in self.servers() {
            let section = Section::of(kind).key();
            let (cert, key) = match (&rc.client_cert, &rc.client_key) {
                (None, None) => continue,
                (Some(c), Some(k)) => (c, k),
                _ => {
                    return Err(format!(
                        "[{section}.{name}]: client_cert and client_key go together"
                    ))
                }
            };
            let issuer = match &rc.auth {
                Some(AuthConfig::Oauth(o)) => Some(o.issuer.clone()),
                Some(AuthConfig::ClientCredentials(c)) => Some(c.issuer.clone()),
                Some(AuthConfig::Enterprise(e)) => Some(e.issuer.clone()),
                Some(AuthConfig::Workload(w)) => Some(w.issuer.clone()),
                _ => None,
            };
            let urls = std::iter::once(rc.url.clone()).chain(issuer).collect();
            certs.push((urls, cert.clone(), key.clone()));
        }
        net.with_resource_certs(&certs)
            .map_err(|e| format!("a resource's client certificate: {e}"))
    }

    /// The section holding `name`, if any (names are unique across sections).
    pub fn section_of(&self, name: &str) -> Option<Section> {
        if self.registries.contains_key(name) {
            Some(Section::Registries)
        } else if self.mcp.contains_key(name) {
            Some(Section::Mcp)
        } else if self.apis.contains_key(name) {
            Some(Section::Apis)
        } else if self.idps.contains_key(name) {
            Some(Section::Idps)
        } else {
            None
        }
    }
}

/// One registry or MCP server.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// Base URL of the registry API, or the MCP server's endpoint.
    pub url: String,
    /// How to authenticate, if at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthConfig>,
    /// Its tokens are lent over agent forwarding (`regent ssh`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub forwardable: bool,
    /// ... only in sessions the user said yes to (`regent ssh` asks).
    #[serde(default, skip_serializing_if = "is_false")]
    pub forward_confirm: bool,
    /// A client certificate (PEM) for this resource's server and its IdP
    /// (mutual TLS), instead of `[network]`'s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<PathBuf>,
    /// Its key (PEM, yours alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key: Option<PathBuf>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// An enterprise IdP: one login there reaches every MCP server that trusts it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IdpConfig {
    /// Its issuer.
    pub issuer: String,
    /// regent's client id there.
    pub client_id: String,
    /// Scopes of the login (default `openid`, plus `offline_access` where offered).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// A fixed loopback port for the browser login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_port: Option<u16>,
}

/// Why the config could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file exists but is not valid (the message names the line).
    #[error("{path} is not a valid regent config: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, and where.
        message: String,
    },
    /// An I/O failure.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
}

/// Parses config text; the error names the line and column.
pub fn parse(text: &str) -> Result<Config, String> {
    let config: Config = toml::from_str(text).map_err(|e| {
        let place = e.span().map(|span| {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("line {line}: ")
        });
        // toml's own message repeats the offending source line; keep its first line only.
        let msg = e
            .message()
            .lines()
            .next()
            .unwrap_or("invalid TOML")
            .to_string();
        format!("{}{msg}", place.unwrap_or_default())
    })?;
    // The files `[network]` (and a resource's client certificate) name are
    // read now: a CA file that is not one, a key others can read, refuse the
    // file as a typo does.
    config.network_settings()?;
    let mut seen = std::collections::BTreeSet::new();
    let urls = config
        .servers()
        .map(|(k, n, rc)| (k.noun(), n, rc.url.as_str()))
        .chain(
            config
                .idps
                .iter()
                .map(|(n, i)| ("IdP", n, i.issuer.as_str())),
        );
    for (kind, name, url) in urls {
        values::validate_name(name).map_err(|e| format!("{kind} {name:?}: {e}"))?;
        values::validate_url(url).map_err(|e| format!("{kind} {name:?}: {e}"))?;
        if !seen.insert(name.clone()) {
            return Err(format!(
                "{kind} {name:?}: the name is used twice; names are unique across registries, MCP servers, APIs and IdPs"
            ));
        }
    }
    // Unknown keys inside `auth` (shared with answers, so lenient by type).
    let raw: toml::Value = toml::from_str(text).map_err(|e| e.message().to_string())?;
    let raw = serde_json::to_value(raw).map_err(|e| e.to_string())?;
    if let Some(path) = crate::strict::ignored_keys(&raw, &config).first() {
        let key = path.rsplit('.').next().unwrap_or(path);
        let line = text
            .lines()
            .position(|l| l.trim_start().starts_with(key))
            .map(|n| format!("line {}: ", n + 1))
            .unwrap_or_default();
        return Err(format!("{line}unknown field `{path}`"));
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_file_names_its_line() {
        let text = "[registries.corp]\nurl = \"https://r\"\nauth = { type = \"oauth\", issuer = \"https://i\" }\n";
        let err = parse(text).unwrap_err();
        assert!(err.starts_with("line 3:"), "{err}");
        assert!(err.contains("client_id"), "{err}");
        let err = parse("[registries.corp]\nurl = https://r\n").unwrap_err();
        assert!(err.starts_with("line 2:"), "{err}");
    }

    #[test]
    fn an_explicit_false_is_accepted_where_the_field_exists() {
        let text = "[mcp.a]\nurl = \"https://m\"\nforwardable = false\nforward_confirm = false\n\
                    [mcp.a.auth]\ntype = \"oauth\"\nissuer = \"https://i\"\nclient_id = \"c\"\n\
                    discovered = false\nown_grant = false\n";
        let config = parse(text).unwrap();
        assert!(!config.mcp["a"].forwardable);
        let typo = text.replace("own_grant", "own_grnat");
        assert_eq!(
            parse(&typo).unwrap_err(),
            "line 10: unknown field `mcp.a.auth.own_grnat`"
        );
    }

    #[test]
    fn an_unknown_key_inside_auth_is_an_error_with_its_line() {
        let text = "[registries.corp]\nurl = \"https://r\"\n[registries.corp.auth]\ntype = \"oauth\"\nissuer = \"https://i\"\nclient_id = \"c\"\nclient_secret = \"x\"\n";
        let err = parse(text).unwrap_err();
        assert_eq!(
            err,
            "line 7: unknown field `registries.corp.auth.client_secret`"
        );
    }
}
