//! The config file, which is the user's too: the agent edits it in place
//! (`toml_edit`), so the comments, order and formatting a person wrote
//! survive; before every write it reads the file again and takes in a change
//! made meanwhile; a file that does not parse is never overwritten. Writes
//! are atomic (temp file, fsync, rename, fsync of the directory), mode 0600.

use super::{parse, Config, ConfigError, Section};
use std::path::{Path, PathBuf};
use toml_edit::{DocumentMut, InlineTable, Item, Table, TableLike, Value};

/// The config file as the agent last read or wrote it.
pub struct ConfigFile {
    path: PathBuf,
    /// The text last read or written (`None`: there was no file).
    seen: Option<String>,
    doc: DocumentMut,
    config: Config,
}

impl ConfigFile {
    /// Reads the file; a missing file is an empty config.
    pub fn open(path: &Path) -> Result<ConfigFile, ConfigError> {
        let seen = read(path)?;
        let (doc, config) = parse_text(path, seen.as_deref().unwrap_or(""))?;
        Ok(ConfigFile {
            path: path.to_path_buf(),
            seen,
            doc,
            config,
        })
    }

    /// The config in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What is wrong where `[network] proxy` carries a password and others
    /// may read the file (regent writes it 0600; a hand-made one may not be).
    pub fn exposed_proxy_password(&self) -> Option<String> {
        use std::os::unix::fs::PermissionsExt;
        let proxy = self.config.network.proxy.as_deref()?;
        url::Url::parse(proxy).ok()?.password()?;
        let mode = std::fs::metadata(&self.path).ok()?.permissions().mode() & 0o777;
        (mode & 0o077 != 0).then(|| {
            format!(
                "{} holds the proxy's password in [network] proxy, and others may read it (mode {mode:o})",
                self.path.display()
            )
        })
    }

    /// Reads the file again. `Ok(true)`: it changed since it was last read
    /// or written, and the new config is in force here; an error leaves
    /// everything as it was. A file that disappeared changes nothing: it is
    /// more likely being replaced than meant to drop every registry.
    pub fn refresh(&mut self) -> Result<bool, ConfigError> {
        let Some(text) = read(&self.path)? else {
            if self.seen.is_some() {
                tracing::warn!(path = %self.path.display(), "the config file is gone; the agent keeps its current config");
            }
            return Ok(false);
        };
        if self.seen.as_deref() == Some(text.as_str()) {
            return Ok(false);
        }
        let (doc, config) = parse_text(&self.path, &text)?;
        self.seen = Some(text);
        self.doc = doc;
        self.config = config;
        Ok(true)
    }

    /// Adds or replaces an entry of a section, editing only what changed.
    pub fn put(
        &mut self,
        section: Section,
        name: &str,
        value: &impl serde::Serialize,
    ) -> Result<(), ConfigError> {
        let new = toml_edit::ser::to_document(value)
            .map_err(|e| self.io("cannot serialize the config for", e))?;
        let mut doc = self.doc.clone();
        let key = section.key();
        let registries = doc
            .entry(key)
            .or_insert_with(|| {
                let mut t = Table::new();
                t.set_implicit(true);
                Item::Table(t)
            })
            .as_table_like_mut()
            .ok_or_else(|| self.invalid(&format!("`{key}` is not a table")))?;
        match registries.get_mut(name) {
            Some(Item::Table(existing)) => merge(existing, new.as_table()),
            Some(Item::Value(Value::InlineTable(existing))) => {
                merge_inline(existing, new.as_table())
            }
            _ => {
                registries.insert(name, Item::Table(as_std_table(new.as_table())));
            }
        }
        self.write(doc)
    }

    /// Sets a top-level key (`None` removes it).
    pub fn set_top(&mut self, key: &str, value: Option<&str>) -> Result<(), ConfigError> {
        let mut doc = self.doc.clone();
        match value {
            Some(v) => {
                doc[key] = toml_edit::value(v);
            }
            None => {
                doc.remove(key);
            }
        }
        self.write(doc)
    }

    /// Removes an entry of a section. Returns whether it was there.
    pub fn remove(&mut self, section: Section, name: &str) -> Result<bool, ConfigError> {
        let mut doc = self.doc.clone();
        let removed = doc
            .get_mut(section.key())
            .and_then(Item::as_table_like_mut)
            .and_then(|t| t.remove(name))
            .is_some();
        if removed {
            self.write(doc)?;
        }
        Ok(removed)
    }

    /// Checks the edited document as a fresh read would, then replaces the file.
    fn write(&mut self, doc: DocumentMut) -> Result<(), ConfigError> {
        let text = doc.to_string();
        let (doc, config) = parse_text(&self.path, &text)?;
        crate::atomic_file::write(&self.path, text.as_bytes()).map_err(|source| {
            ConfigError::Io {
                what: "cannot save",
                path: self.path.clone(),
                source,
            }
        })?;
        self.seen = Some(text);
        self.doc = doc;
        self.config = config;
        Ok(())
    }

    fn io(&self, what: &'static str, e: impl std::fmt::Display) -> ConfigError {
        ConfigError::Io {
            what,
            path: self.path.clone(),
            source: std::io::Error::other(e.to_string()),
        }
    }

    fn invalid(&self, message: &str) -> ConfigError {
        ConfigError::Parse {
            path: self.path.clone(),
            message: message.to_string(),
        }
    }
}

fn read(path: &Path) -> Result<Option<String>, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ConfigError::Io {
            what: "cannot read",
            path: path.into(),
            source,
        }),
    }
}

fn parse_text(path: &Path, text: &str) -> Result<(DocumentMut, Config), ConfigError> {
    let bad = |message: String| ConfigError::Parse {
        path: path.into(),
        message,
    };
    let config = parse(text).map_err(bad)?;
    let doc = text
        .parse::<DocumentMut>()
        .map_err(|e| bad(e.to_string()))?;
    Ok((doc, config))
}

/// Makes the standard table `dst` hold what `src` holds, keeping the keys,
/// comments and formatting of whatever did not change.
fn merge(dst: &mut Table, src: &dyn TableLike) {
    let stale: Vec<String> = dst
        .iter()
        .map(|(k, _)| k.to_string())
        .filter(|k| src.get(k).is_none())
        .collect();
    for k in stale {
        dst.remove(&k);
    }
    for (k, s) in src.iter() {
        match (dst.get_mut(k), s.as_table_like()) {
            (Some(Item::Table(d)), Some(st)) => merge(d, st),
            (Some(Item::Value(Value::InlineTable(d))), Some(st)) => merge_inline(d, st),
            (Some(Item::Value(d)), None) if s.is_value() => {
                set_value(d, s.as_value().expect("checked"))
            }
            (Some(d), _) => *d = std_item(s),
            (None, _) => {
                dst.insert(k, std_item(s));
            }
        }
    }
}

/// [`merge`] for an inline table: everything in it is a value.
fn merge_inline(dst: &mut InlineTable, src: &dyn TableLike) {
    let stale: Vec<String> = dst
        .iter()
        .map(|(k, _)| k.to_string())
        .filter(|k| src.get(k).is_none())
        .collect();
    for k in stale {
        dst.remove(&k);
    }
    for (k, s) in src.iter() {
        let value = match s.clone().into_value() {
            Ok(v) => v,
            Err(_) => continue,
        };
        match (dst.get_mut(k), s.as_table_like()) {
            (Some(Value::InlineTable(d)), Some(st)) => merge_inline(d, st),
            (Some(d), _) => set_value(d, &value),
            (None, _) => {
                dst.insert(k, value);
            }
        }
    }
}

/// Replaces `dst` by `src` unless they mean the same; the comments around `dst` stay.
fn set_value(dst: &mut Value, src: &Value) {
    if !same(dst, src) {
        let decor = dst.decor().clone();
        *dst = src.clone();
        *dst.decor_mut() = decor;
    }
}

/// An item for a standard table: sub-tables as `[header]` tables.
fn std_item(item: &Item) -> Item {
    match item.as_table_like() {
        Some(t) => Item::Table(as_std_table(t)),
        None => item.clone(),
    }
}

/// A table-like as a standard table whose sub-tables are standard tables too.
fn as_std_table(t: &dyn TableLike) -> Table {
    let mut out = Table::new();
    for (k, item) in t.iter() {
        out.insert(k, std_item(item));
    }
    out
}

/// Whether two TOML values mean the same (formatting aside).
fn same(a: &Value, b: &Value) -> bool {
    let norm = |v: &Value| {
        let mut v = v.clone();
        v.decor_mut().clear();
        format!("x = {v}").parse::<toml::Table>().ok()
    };
    norm(a).is_some() && norm(a) == norm(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RegistryConfig;
    use regent_proto::{AuthConfig, BearerConfig, OAuthConfig};

    fn oauth(scopes: &[&str]) -> RegistryConfig {
        RegistryConfig {
            forwardable: false,
            forward_confirm: false,
            client_cert: None,
            client_key: None,
            url: "https://r.example".into(),
            auth: Some(AuthConfig::Oauth(OAuthConfig {
                issuer: "https://idp.example".into(),
                client_id: "cli".into(),
                scopes: scopes.iter().map(|s| s.to_string()).collect(),
                audience: None,
                resource: None,
                callback_port: None,
                discovered: false,
                assume_pkce_s256: false,
                client: None,
                metadata_url: None,
                endpoints: None,
                own_grant: false,
                dpop: Default::default(),
                resource_dpop: false,
            })),
        }
    }

    #[test]
    fn a_new_file_is_written_private_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/config.toml");
        let mut f = ConfigFile::open(&path).unwrap();
        f.put(Section::Registries, "corp", &oauth(&["openid"]))
            .unwrap();
        let bearer = RegistryConfig {
            forwardable: false,
            forward_confirm: false,
            client_cert: None,
            client_key: None,
            url: "https://ci.example".into(),
            auth: Some(AuthConfig::Bearer(BearerConfig {
                token_file: "/t".into(),
            })),
        };
        f.put(Section::Registries, "ci", &bearer).unwrap();
        let again = ConfigFile::open(&path).unwrap();
        assert_eq!(again.config(), f.config());
        assert_eq!(again.config().registries["ci"], bearer);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("[registries.corp]"), "{text}");
        assert!(text.contains("[registries.corp.auth]"), "{text}");
    }

    #[test]
    fn comments_order_and_hand_edits_survive_the_agents_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        let hand = "# my registries\n\n[registries.zeta] # the last one\nurl = \"https://z.example\" # keep me\n\n[registries.alpha]\nurl = \"https://a.example\"\nauth = { type = \"oauth\", issuer = \"https://idp.example\", client_id = \"cli\", scopes = [\"openid\"] } # inline\n";
        std::fs::write(&path, hand).unwrap();
        let mut f = ConfigFile::open(&path).unwrap();
        // A change to alpha keeps zeta's comments, the order, and alpha's inline form.
        f.put(Section::Registries, "alpha", &oauth(&["openid", "profile"]))
            .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# my registries\n"), "{text}");
        assert!(text.contains("[registries.zeta] # the last one"), "{text}");
        assert!(
            text.contains("url = \"https://z.example\" # keep me"),
            "{text}"
        );
        assert!(
            text.find("zeta").unwrap() < text.find("alpha").unwrap(),
            "{text}"
        );
        assert!(text.contains("auth = { type = \"oauth\""), "{text}");
        assert!(text.contains("# inline"), "{text}");
        assert_eq!(
            f.config().registries["alpha"],
            oauth(&["openid", "profile"])
        );
        // Someone adds a registry by hand; the agent's next write keeps it.
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("\n# added by hand\n[registries.hand]\nurl = \"https://h.example\"\n");
        std::fs::write(&path, &text).unwrap();
        assert!(f.refresh().unwrap());
        assert!(f.config().registries.contains_key("hand"));
        assert!(!f.refresh().unwrap(), "nothing changed since");
        f.remove(Section::Registries, "zeta").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("# added by hand"), "{text}");
        assert!(text.contains("[registries.hand]"), "{text}");
        assert!(!text.contains("zeta"), "{text}");
    }

    #[test]
    fn a_broken_file_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        let mut f = ConfigFile::open(&path).unwrap();
        f.put(Section::Registries, "corp", &oauth(&[])).unwrap();
        let broken = "[registries.corp]\nurl = https://r\n";
        std::fs::write(&path, broken).unwrap();
        let e = f.refresh().unwrap_err().to_string();
        assert!(e.contains("line 2"), "{e}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), broken);
        // The config in force is the last good one.
        assert!(f.config().registries.contains_key("corp"));
    }
}
