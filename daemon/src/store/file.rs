//! The file store: one 0600 JSON object of token sets, rewritten atomically.

use super::{Op, StoreError};
use crate::atomic_file;
use secrecy::{ExposeSecret, SecretString};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// A JSON file mapping store keys to token sets.
#[derive(Clone)]
pub struct FileStore {
    path: Arc<PathBuf>,
    // Serializes read-modify-write cycles of the file.
    lock: Arc<Mutex<()>>,
}

impl FileStore {
    /// Opens (and checks) the file; a missing file is an empty store.
    pub fn open(path: PathBuf) -> anyhow::Result<FileStore> {
        let s = FileStore {
            path: Arc::new(path),
            lock: Arc::new(Mutex::new(())),
        };
        s.read().map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(s)
    }

    fn read(&self) -> Result<BTreeMap<String, serde_json::Value>, StoreError> {
        match std::fs::read(&*self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                StoreError(format!("{} is not a token file: {e}", self.path.display()))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(StoreError(format!(
                "cannot read {}: {e}",
                self.path.display()
            ))),
        }
    }

    pub(crate) fn run(&self, key: &str, op: Op) -> Result<Option<SecretString>, StoreError> {
        let _guard = self.lock.lock().unwrap();
        let mut map = self.read()?;
        match op {
            Op::Load => Ok(map.get(key).map(|v| SecretString::from(v.to_string()))),
            Op::Save(value) => {
                let v: serde_json::Value = serde_json::from_str(value.expose_secret())
                    .map_err(|e| StoreError(format!("token set is not JSON: {e}")))?;
                map.insert(key.to_string(), v);
                self.write(&map)?;
                Ok(None)
            }
            Op::Delete => {
                let old = map.remove(key);
                if old.is_some() {
                    self.write(&map)?;
                }
                Ok(old.map(|_| SecretString::from(String::new())))
            }
        }
    }

    fn write(&self, map: &BTreeMap<String, serde_json::Value>) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec_pretty(map).expect("a JSON map serializes");
        atomic_file::write(&self.path, &bytes).map_err(|e| StoreError(e.to_string()))
    }
}
