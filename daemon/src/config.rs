//! The agent's configuration file: registries and their auth, no secrets.
//!
//! Only the agent writes it, atomically (temp file, fsync, rename, fsync of the
//! directory). A file that does not parse stops the agent and is never rewritten.

use regent_proto::AuthConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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
    #[error("{path} is not a valid regent config: {message}\n(the agent will not start, and will not touch the file, until it is fixed)")]
    Parse { path: PathBuf, message: String },
    /// An I/O failure.
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Reads the config; a missing file is an empty config.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Config::default()),
        Err(source) => {
            return Err(ConfigError::Io {
                what: "cannot read",
                path: path.into(),
                source,
            })
        }
    };
    parse(&text).map_err(|message| ConfigError::Parse {
        path: path.into(),
        message,
    })
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
        crate::registry::validate_name(name).map_err(|e| format!("registry {name:?}: {e}"))?;
        crate::registry::validate_url(&rc.url).map_err(|e| format!("registry {name:?}: {e}"))?;
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

/// Writes the config atomically with mode 0600 in a 0700 directory.
pub fn save(path: &Path, config: &Config) -> Result<(), ConfigError> {
    let text = toml::to_string_pretty(config).map_err(|e| ConfigError::Io {
        what: "cannot serialize config for",
        path: path.into(),
        source: std::io::Error::other(e),
    })?;
    crate::atomic_file::write(path, text.as_bytes()).map_err(|source| ConfigError::Io {
        what: "cannot save",
        path: path.into(),
        source,
    })
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

    #[test]
    fn round_trips_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/config.toml");
        let mut c = Config::default();
        c.registries.insert(
            "corp".into(),
            RegistryConfig {
                url: "https://r.example".into(),
                auth: Some(AuthConfig::Bearer(regent_proto::BearerConfig {
                    token_file: "/t".into(),
                })),
            },
        );
        save(&path, &c).unwrap();
        assert_eq!(load(&path).unwrap(), c);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
