//! The config file's `[network]` table.

use crate::NetError;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// `[network]`: what wins over the environment.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    /// CA certificates to trust besides the system's (a PEM file: the
    /// company's CA, a TLS-inspecting proxy's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// The proxy for every request (`http://[user:password@]host:port`);
    /// `""` for none, whatever the environment says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<String>,
    /// Hosts reached directly, as curl reads `NO_PROXY`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_proxy: Option<String>,
    /// A client certificate (PEM) for servers that ask for one (mutual TLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<PathBuf>,
    /// Its private key (PEM, a file only you can read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key: Option<PathBuf>,
}

impl NetworkConfig {
    /// The `[network]` table of the config file at `path` (none where the
    /// file or the table is missing). Only this table is read: the rest of
    /// the file is the agent's to check.
    pub fn read(path: &Path) -> Result<NetworkConfig, NetError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => {
                return Err(NetError::Config(format!(
                    "cannot read {}: {e}",
                    path.display()
                )))
            }
        };
        #[derive(Deserialize)]
        struct File {
            #[serde(default)]
            network: Option<toml::Value>,
        }
        let file: File = toml::from_str(&text)
            .map_err(|e| NetError::Config(format!("{}: {e}", path.display())))?;
        match file.network {
            None => Ok(Self::default()),
            Some(v) => v
                .try_into()
                .map_err(|e| NetError::Config(format!("{} [network]: {e}", path.display()))),
        }
    }
}

/// The client certificates resources of the config file at `path` have of
/// their own (`client_cert` / `client_key` in a `[registries.NAME]` or
/// `[mcp.NAME]` table), with the URLs they are for: the resource's, and its
/// authorization server's.
pub fn resource_certs(path: &Path) -> Result<Vec<crate::ResourceCert>, NetError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(_) => return Ok(Vec::new()),
    };
    let doc: toml::Value =
        toml::from_str(&text).map_err(|e| NetError::Config(format!("{}: {e}", path.display())))?;
    let mut out = Vec::new();
    for section in ["registries", "mcp"] {
        let Some(table) = doc.get(section).and_then(|t| t.as_table()) else {
            continue;
        };
        for rc in table.values() {
            let s = |k: &str| rc.get(k).and_then(|v| v.as_str()).map(str::to_string);
            let (Some(cert), Some(key)) = (s("client_cert"), s("client_key")) else {
                continue;
            };
            let mut urls: Vec<String> = s("url").into_iter().collect();
            if let Some(i) = rc
                .get("auth")
                .and_then(|a| a.get("issuer"))
                .and_then(|v| v.as_str())
            {
                urls.push(i.to_string());
            }
            out.push((urls, PathBuf::from(cert), PathBuf::from(key)));
        }
    }
    Ok(out)
}
