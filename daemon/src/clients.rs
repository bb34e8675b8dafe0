//! Client registrations and the secrets of confidential clients: kept in
//! the store (never in the config), one entry per (AS issuer, client id),
//! cached after the first read. A resource whose AS changes gets a new
//! registration; the old one is never sent to another AS.

use crate::oauth::client::SigningKey;
use crate::oauth::ClientAuth;
use crate::store::{keys, Store};
use regent_proto::TokenAuthMethod;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A client the agent knows the credential of.
#[derive(Clone)]
pub struct Credential {
    /// How it authenticates.
    pub method: TokenAuthMethod,
    /// Its secret.
    pub secret: Option<SecretString>,
    /// Its private key, PEM.
    pub private_key_pem: Option<SecretString>,
    /// The algorithm the key signs with, where not the one it implies.
    pub key_alg: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    v: u32,
    issuer: String,
    client_id: String,
    method: TokenAuthMethod,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    private_key_pem: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key_alg: Option<String>,
}

/// Why a credential could not be kept or used.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// The private key does not parse.
    #[error("{0}")]
    Key(String),
    /// The store did not take it (it would be lost at the next restart).
    #[error("the token store did not take the client credential; it is kept in memory only")]
    NotPersisted,
}

/// A credential with its key parsed once.
type Entry = Arc<(Credential, Option<Arc<SigningKey>>)>;

/// The clients' credentials, by (issuer, client id).
#[derive(Default)]
pub struct Clients {
    /// By store key; `None`: looked up, and none is stored.
    known: Mutex<HashMap<String, Option<Entry>>>,
}

impl Clients {
    /// How `client_id` authenticates at `issuer`: a public client unless a
    /// credential is stored for it.
    pub async fn auth(&self, store: &Store, issuer: &str, client_id: &str) -> ClientAuth {
        let key = keys::client(issuer, client_id);
        let cached = self
            .known
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .cloned();
        let entry = match cached {
            Some(e) => e,
            None => {
                let loaded = match store.load(&key).await {
                    Some(json) => match serde_json::from_str::<Stored>(json.expose_secret()) {
                        Ok(s) => Some(Arc::new(materialize(Credential {
                            method: s.method,
                            secret: s.client_secret.map(SecretString::from),
                            private_key_pem: s.private_key_pem.map(SecretString::from),
                            key_alg: s.key_alg,
                        }))),
                        Err(_) => {
                            tracing::warn!(
                                issuer,
                                client_id,
                                "ignoring a malformed stored client credential"
                            );
                            None
                        }
                    },
                    None => None,
                };
                self.known
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(key, loaded.clone());
                loaded
            }
        };
        match entry.as_deref() {
            Some((c, k)) => ClientAuth {
                id: client_id.to_string(),
                method: c.method,
                secret: c.secret.clone(),
                key: k.clone(),
            },
            None => ClientAuth::public(client_id),
        }
    }

    /// Keeps a credential for `client_id` at `issuer`.
    pub async fn save(
        &self,
        store: &Store,
        issuer: &str,
        client_id: &str,
        credential: Credential,
    ) -> Result<(), CredentialError> {
        let entry = materialize_checked(credential.clone())?;
        let stored = Stored {
            v: 1,
            issuer: issuer.to_string(),
            client_id: client_id.to_string(),
            method: credential.method,
            client_secret: credential
                .secret
                .as_ref()
                .map(|s| s.expose_secret().to_string()),
            private_key_pem: credential
                .private_key_pem
                .as_ref()
                .map(|s| s.expose_secret().to_string()),
            key_alg: credential.key_alg.clone(),
        };
        let key = keys::client(issuer, client_id);
        let json =
            SecretString::from(serde_json::to_string(&stored).expect("a credential serializes"));
        let persisted = store.save(&key, json).await;
        self.known
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, Some(Arc::new(entry)));
        if persisted || store.name() == "memory" {
            Ok(())
        } else {
            Err(CredentialError::NotPersisted)
        }
    }

    /// Forgets the credential of `client_id` at `issuer`.
    pub async fn delete(&self, store: &Store, issuer: &str, client_id: &str) {
        let key = keys::client(issuer, client_id);
        self.known
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key);
        store.delete(&key).await;
    }
}

fn materialize_checked(
    c: Credential,
) -> Result<(Credential, Option<Arc<SigningKey>>), CredentialError> {
    let key = match &c.private_key_pem {
        Some(pem) => Some(Arc::new(
            signing_key(pem, c.key_alg.as_deref()).map_err(CredentialError::Key)?,
        )),
        None => None,
    };
    Ok((c, key))
}

fn materialize(c: Credential) -> (Credential, Option<Arc<SigningKey>>) {
    let key = c
        .private_key_pem
        .as_ref()
        .and_then(|p| signing_key(p, c.key_alg.as_deref()).ok().map(Arc::new));
    (c, key)
}

/// The key in `pem`, signing with `alg` where one was chosen.
fn signing_key(pem: &SecretString, alg: Option<&str>) -> Result<SigningKey, String> {
    let key = SigningKey::from_pem(pem.expose_secret())?;
    match alg {
        Some(a) => key.with_alg(a),
        None => Ok(key),
    }
}
