//! Where grants persist: the OS keyring, a 0600 file, or memory only.
//!
//! Every backend is reached through [`Store`], which owns the one rule that
//! matters at run time: a backend that fails degrades to memory with one
//! warning, and from then on reports `persisted: false`, never silently.

mod file;
mod keyring;
pub mod keys;

use secrecy::SecretString;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use file::FileStore;
pub use keyring::{ensure_session_keyring, KeyringStore};

/// The store chosen with `--store`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreChoice {
    /// Secret Service when a session bus answers, else kernel keyutils.
    Auto,
    /// The kernel keyutils keyring.
    Keyutils,
    /// The Secret Service (gnome-keyring, KWallet) over D-Bus.
    SecretService,
    /// A 0600 JSON file under `$XDG_STATE_HOME/regent/`.
    File,
    /// Nothing persisted.
    Memory,
}

/// A backend failure; the message never contains a secret.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(pub String);

/// How long one store call may take before it counts as failed (a locked
/// Secret Service collection can wait on an unlock prompt forever).
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

enum Backend {
    Keyring(KeyringStore),
    File(FileStore),
    Memory,
}

/// The token store, with its degrade-to-memory rule.
pub struct Store {
    name: &'static str,
    backend: Backend,
    degraded: AtomicBool,
    /// Token sets that could not be persisted (or all of them, for `memory`).
    memory: Mutex<HashMap<String, SecretString>>,
    order: Arc<Mutex<()>>,
}

impl Store {
    /// Opens the chosen store. Fails only when an explicitly chosen backend
    /// cannot be opened at all; `auto` falls back and says so.
    pub fn open(choice: StoreChoice, state_dir: PathBuf) -> anyhow::Result<Arc<Store>> {
        let (name, backend) = match choice {
            StoreChoice::Memory => ("memory", Backend::Memory),
            StoreChoice::File => {
                let path = state_dir.join("tokens.json");
                tracing::warn!(
                    path = %path.display(),
                    "token store is a plain file: refresh tokens are protected only by its 0600 mode; \
                     prefer the OS keyring (--store auto) where one is available"
                );
                ("file", Backend::File(FileStore::open(path)?))
            }
            StoreChoice::Keyutils => ("keyutils", Backend::Keyring(KeyringStore::keyutils()?)),
            StoreChoice::SecretService => (
                "secret-service",
                Backend::Keyring(KeyringStore::secret_service()?),
            ),
            StoreChoice::Auto => {
                match KeyringStore::secret_service() {
                    Ok(s) => ("secret-service", Backend::Keyring(s)),
                    Err(e) => {
                        tracing::info!("Secret Service not available ({e:#}); using the kernel keyutils keyring");
                        ("keyutils", Backend::Keyring(KeyringStore::keyutils()?))
                    }
                }
            }
        };
        Ok(Arc::new(Store {
            name,
            backend,
            degraded: AtomicBool::new(false),
            memory: Mutex::new(HashMap::new()),
            order: Arc::new(Mutex::new(())),
        }))
    }

    /// The backend's name, as `/v1/health` reports it.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// How long what it keeps lasts, in words, for `regent status`.
    pub fn durability(&self) -> &'static str {
        if self.degraded.load(Ordering::Relaxed) {
            return "the store failed, so tokens are in memory only: a restart of the agent means a new login";
        }
        match (&self.backend, self.name) {
            (Backend::Memory, _) => "memory only: a restart of the agent means a new login",
            (_, "keyutils") => {
                "the kernel keyring: kept across agent restarts, lost at reboot and after 3 days unused; \
                 to keep logins across reboots use --store secret-service (an unlocked keyring) or --store file"
            }
            (_, "secret-service") => "the Secret Service: kept on disk in your login keyring",
            (_, "file") => "a 0600 file: kept on disk, protected by file permissions only",
            _ => "persistent",
        }
    }

    /// Whether writes currently reach a persistent backend.
    pub fn persisting(&self) -> bool {
        !matches!(self.backend, Backend::Memory) && !self.degraded.load(Ordering::Relaxed)
    }

    /// Reads a token set; `None` when nothing is stored under `key`. What was
    /// kept in memory while the backend failed is newer than the backend's copy.
    pub async fn load(&self, key: &str) -> Option<SecretString> {
        if let Some(v) = self.memory.lock().unwrap().get(key).cloned() {
            return Some(v);
        }
        match self.call(key, Op::Load).await {
            Ok(v) => v,
            Err(e) => {
                self.degrade("read", &e);
                None
            }
        }
    }

    /// Writes a token set; returns whether it reached a persistent backend.
    /// The backend is tried on every write, so a store that recovers (a
    /// keyring unlocked again) is used again.
    pub async fn save(&self, key: &str, value: SecretString) -> bool {
        if matches!(self.backend, Backend::Memory) {
            self.memory.lock().unwrap().insert(key.to_string(), value);
            return false;
        }
        match self.call(key, Op::Save(value.clone())).await {
            Ok(_) => {
                self.memory.lock().unwrap().remove(key);
                if self.degraded.swap(false, Ordering::Relaxed) {
                    tracing::info!(
                        store = self.name,
                        "the token store works again; tokens are persisted"
                    );
                }
                true
            }
            Err(e) => {
                self.degrade("write", &e);
                self.memory.lock().unwrap().insert(key.to_string(), value);
                // The backend's copy is older; a restart must not replay its
                // (possibly rotated away) refresh token. Best effort.
                let _ = self.call(key, Op::Delete).await;
                false
            }
        }
    }

    /// Deletes a token set; returns whether one was there.
    pub async fn delete(&self, key: &str) -> bool {
        let in_memory = self.memory.lock().unwrap().remove(key).is_some();
        match self.call(key, Op::Delete).await {
            Ok(Some(_)) => true,
            Ok(None) => in_memory,
            Err(e) => {
                self.degrade("delete from", &e);
                in_memory
            }
        }
    }

    fn degrade(&self, what: &str, e: &StoreError) {
        if !self.degraded.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                store = self.name,
                "cannot {what} the token store ({e}); keeping tokens in memory only until it works \
                 again (status shows \"persisted\": false)"
            );
        }
    }

    /// Runs one blocking backend call off the async threads, bounded in time.
    async fn call(&self, key: &str, op: Op) -> Result<Option<SecretString>, StoreError> {
        let key = key.to_string();
        // One backend call at a time, in order, even when an earlier one timed
        // out and still runs: a late write can never land after a later delete.
        let order = self.order.clone();
        let task = match &self.backend {
            Backend::Keyring(k) => {
                let k = k.clone();
                tokio::task::spawn_blocking(move || {
                    let _one = order.lock().unwrap_or_else(|p| p.into_inner());
                    k.run(&key, op)
                })
            }
            Backend::File(f) => {
                let f = f.clone();
                tokio::task::spawn_blocking(move || {
                    let _one = order.lock().unwrap_or_else(|p| p.into_inner());
                    f.run(&key, op)
                })
            }
            Backend::Memory => return Ok(None),
        };
        match tokio::time::timeout(CALL_TIMEOUT, task).await {
            Ok(Ok(r)) => r,
            Ok(Err(join)) => Err(StoreError(format!("store call panicked: {join}"))),
            Err(_) => Err(StoreError(format!(
                "no answer within {}s (is the keyring locked?)",
                CALL_TIMEOUT.as_secs()
            ))),
        }
    }
}

/// One backend operation. `Delete` answers `Some` when something was deleted.
pub(crate) enum Op {
    Load,
    Save(SecretString),
    Delete,
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[tokio::test]
    async fn memory_store_round_trips_and_says_it_does_not_persist() {
        let s = Store::open(StoreChoice::Memory, PathBuf::from("/nonexistent")).unwrap();
        assert!(!s.save("k", SecretString::from("v")).await);
        assert_eq!(s.load("k").await.unwrap().expose_secret(), "v");
        assert!(s.delete("k").await);
        assert!(s.load("k").await.is_none());
        assert!(!s.persisting());
    }

    #[tokio::test]
    async fn a_failing_backend_degrades_to_memory() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(StoreChoice::File, dir.path().to_path_buf()).unwrap();
        assert!(s.save("k", SecretString::from(r#"{"v":1}"#)).await);
        assert!(s.persisting());
        // Replace the file with a directory: every later file access fails (even as root).
        let file = dir.path().join("tokens.json");
        std::fs::remove_file(&file).unwrap();
        std::fs::create_dir(&file).unwrap();
        assert!(!s.save("k", SecretString::from(r#"{"v":2}"#)).await);
        assert!(!s.persisting());
        assert_eq!(s.load("k").await.unwrap().expose_secret(), r#"{"v":2}"#);
        // The backend works again: the next write persists, and says so.
        std::fs::remove_dir(&file).unwrap();
        assert!(s.save("k", SecretString::from(r#"{"v":3}"#)).await);
        assert!(s.persisting());
        let on_disk = std::fs::read_to_string(&file).unwrap();
        assert!(on_disk.contains("\"v\": 3"), "{on_disk}");
    }
}
