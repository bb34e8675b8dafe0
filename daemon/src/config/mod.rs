//! The agent's configuration: registries and their auth, no secrets. The
//! types and their validation are here; the file, which people edit too, is
//! [`file::ConfigFile`].

pub mod file;

pub use file::ConfigFile;

use regent_proto::AuthConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The whole config file.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Registries by name.
    #[serde(default)]
    pub registries: BTreeMap<String, RegistryConfig>,
}

/// One registry.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// Base URL of the registry API.
    pub url: String,
    /// How to authenticate, if at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthConfig>,
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
    for (name, rc) in &config.registries {
        crate::resource::validate_name(name).map_err(|e| format!("registry {name:?}: {e}"))?;
        crate::resource::validate_url(&rc.url).map_err(|e| format!("registry {name:?}: {e}"))?;
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
    fn an_unknown_key_inside_auth_is_an_error_with_its_line() {
        let text = "[registries.corp]\nurl = \"https://r\"\n[registries.corp.auth]\ntype = \"oauth\"\nissuer = \"https://i\"\nclient_id = \"c\"\nclient_secret = \"x\"\n";
        let err = parse(text).unwrap_err();
        assert_eq!(
            err,
            "line 7: unknown field `registries.corp.auth.client_secret`"
        );
    }
}
