//! The certificate authorities regent trusts: the Mozilla roots built in,
//! the operating system's store (where administrators put a company CA;
//! `SSL_CERT_FILE` and `SSL_CERT_DIR` move it), and `ca_file`.
//!
//! The store is read with `rustls-native-certs` rather than through the
//! platform verifier: on Linux both read the same files, the loader says
//! what it read (counted in `regent status`), and it works the same in the
//! statically linked CLI, which has no system TLS library to ask.

use crate::NetError;
use std::path::Path;
use std::sync::{Arc, OnceLock};

/// The CAs a client trusts besides the built-in roots, and their sources.
#[derive(Clone)]
pub struct Trust {
    extra: Arc<Vec<reqwest::Certificate>>,
    sources: Vec<String>,
}

/// The system's store, read once per process.
fn system() -> &'static (Vec<reqwest::Certificate>, Option<String>) {
    static STORE: OnceLock<(Vec<reqwest::Certificate>, Option<String>)> = OnceLock::new();
    STORE.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        let certs: Vec<reqwest::Certificate> = found
            .certs
            .iter()
            .filter_map(|c| reqwest::Certificate::from_der(c.as_ref()).ok())
            .collect();
        let problem = found.errors.first().map(|e| e.to_string());
        (certs, problem)
    })
}

impl Trust {
    /// The system's store and `ca_file`.
    pub fn load(
        ca_file: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Trust, NetError> {
        let mut extra = Vec::new();
        let mut sources = vec!["the Mozilla roots built into regent".to_string()];
        let (store, problem) = system();
        let moved: Vec<String> = ["SSL_CERT_FILE", "SSL_CERT_DIR"]
            .iter()
            .filter_map(|k| env(k).filter(|v| !v.is_empty()).map(|v| format!("{k}={v}")))
            .collect();
        let from = if moved.is_empty() {
            String::new()
        } else {
            format!(", from {}", moved.join(" "))
        };
        sources.push(match problem {
            Some(p) if store.is_empty() => format!("the system's store: unreadable{from} ({p})"),
            _ => format!("the system's store: {} certificates{from}", store.len()),
        });
        extra.extend(store.iter().cloned());
        if let Some(file) = ca_file {
            let certs = read_pem(file)?;
            sources.push(format!(
                "ca_file {}: {} certificate{}",
                file.display(),
                certs.len(),
                if certs.len() == 1 { "" } else { "s" }
            ));
            extra.extend(certs);
        }
        Ok(Trust {
            extra: Arc::new(extra),
            sources,
        })
    }

    /// Where the CAs come from, in words.
    pub fn sources(&self) -> &[String] {
        &self.sources
    }

    /// Puts the CAs on a client builder.
    pub fn apply(&self, mut b: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
        b = b.tls_built_in_root_certs(true);
        for c in self.extra.iter() {
            b = b.add_root_certificate(c.clone());
        }
        b
    }
}

/// The certificates of a PEM file: at least one, or an error naming it.
fn read_pem(file: &Path) -> Result<Vec<reqwest::Certificate>, NetError> {
    let bytes = std::fs::read(file)
        .map_err(|e| NetError::File(format!("cannot read ca_file {}: {e}", file.display())))?;
    let certs = reqwest::Certificate::from_pem_bundle(&bytes).map_err(|e| {
        NetError::File(format!(
            "ca_file {} is not PEM certificates: {e}",
            file.display()
        ))
    })?;
    if certs.is_empty() {
        return Err(NetError::File(format!(
            "ca_file {} holds no certificate (-----BEGIN CERTIFICATE-----)",
            file.display()
        )));
    }
    Ok(certs)
}
