//! The client certificate regent presents where a server asks for one
//! (mutual TLS, common for internal IdPs): two PEM files, the key readable
//! by its owner alone. Its content is never logged; `Debug` names the file.

use crate::NetError;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A certificate and its key, read and checked.
#[derive(Clone)]
pub struct Identity {
    inner: reqwest::Identity,
    /// The certificate's file.
    pub cert_file: PathBuf,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Identity({})", self.cert_file.display())
    }
}

impl Identity {
    /// Reads `cert` and `key`; a key others can read is refused.
    pub fn load(cert: &Path, key: &Path) -> Result<Identity, NetError> {
        let meta = std::fs::metadata(key).map_err(|e| {
            NetError::Identity(format!("cannot read client_key {}: {e}", key.display()))
        })?;
        if meta.mode() & 0o077 != 0 {
            return Err(NetError::Identity(format!(
                "client_key {} can be read by others (mode {:o}); make it yours alone: chmod 600 {}",
                key.display(),
                meta.mode() & 0o777,
                key.display()
            )));
        }
        let read = |what: &str, p: &Path| {
            std::fs::read(p)
                .map_err(|e| NetError::Identity(format!("cannot read {what} {}: {e}", p.display())))
        };
        let mut pem = read("client_cert", cert)?;
        pem.push(b'\n');
        pem.extend(read("client_key", key)?);
        let inner = reqwest::Identity::from_pem(&pem).map_err(|e| {
            NetError::Identity(format!(
                "client_cert {} and client_key {} are not a PEM certificate and its key: {e}",
                cert.display(),
                key.display()
            ))
        })?;
        Ok(Identity {
            inner,
            cert_file: cert.to_path_buf(),
        })
    }

    /// For a client builder.
    pub fn reqwest(&self) -> reqwest::Identity {
        self.inner.clone()
    }
}
