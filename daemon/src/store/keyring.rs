//! The OS keyring through keyring-core and its store crates.
//!
//! The store object is passed explicitly to every entry: no global default
//! store is set, so nothing can fall back to a mock without us noticing.

use super::{Op, StoreError};
use keyring_core::{CredentialStore, Entry, Error};
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;

/// The keyring service name under which every token set is filed; the user
/// part is the store key (`regent:0123456789abcdef`).
pub const SERVICE: &str = "regent";

/// The entry written and deleted at start to check the backend.
const PROBE_KEY: &str = "regent:probe";

/// A keyring backend (kernel keyutils or Secret Service).
#[derive(Clone)]
pub struct KeyringStore {
    store: Arc<CredentialStore>,
}

impl KeyringStore {
    /// The kernel keyutils keyring (session keyring, linked into the
    /// per-user persistent keyring so a restarted agent finds its keys).
    pub fn keyutils() -> anyhow::Result<KeyringStore> {
        let store: Arc<CredentialStore> = linux_keyutils_keyring_store::Store::new()
            .map_err(|e| anyhow::anyhow!("cannot open the keyutils keyring: {e}"))?;
        let s = KeyringStore { store };
        s.probe()?;
        Ok(s)
    }

    /// The Secret Service on the session bus.
    pub fn secret_service() -> anyhow::Result<KeyringStore> {
        let store: Arc<CredentialStore> = dbus_secret_service_keyring_store::Store::new()
            .map_err(|e| anyhow::anyhow!("cannot reach the Secret Service: {e}"))?;
        let s = KeyringStore { store };
        s.probe()?;
        Ok(s)
    }

    /// Writes and deletes a probe entry: proves the backend takes writes
    /// (keyutils without a session keyring reads fine but refuses writes; a
    /// locked Secret Service collection would wait on an unlock prompt).
    fn probe(&self) -> anyhow::Result<()> {
        let this = self.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let r = this
                .run(PROBE_KEY, Op::Save(SecretString::from("probe")))
                .and_then(|_| this.run(PROBE_KEY, Op::Delete));
            let _ = tx.send(r);
        });
        match rx.recv_timeout(super::CALL_TIMEOUT) {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(anyhow::anyhow!("{e}")),
            Err(_) => Err(anyhow::anyhow!(
                "no answer within {}s (is the keyring locked?)",
                super::CALL_TIMEOUT.as_secs()
            )),
        }
    }

    pub(crate) fn run(&self, key: &str, op: Op) -> Result<Option<SecretString>, StoreError> {
        // A fresh entry per call: keyutils entries cache keyring ids that can go stale.
        let entry = Entry::new_in_store(&self.store, SERVICE, key).map_err(describe)?;
        match op {
            Op::Load => match entry.get_password() {
                Ok(v) => Ok(Some(SecretString::from(v))),
                Err(Error::NoEntry) => Ok(None),
                Err(e) => Err(describe(e)),
            },
            Op::Save(value) => {
                entry
                    .set_password(value.expose_secret())
                    .map_err(describe)?;
                Ok(None)
            }
            Op::Delete => match entry.delete_credential() {
                Ok(()) => Ok(Some(SecretString::from(String::new()))),
                Err(Error::NoEntry) => Ok(None),
                Err(e) => Err(describe(e)),
            },
        }
    }
}

/// Gives the process a session keyring of its own when it has none.
///
/// Without one, the kernel falls back to the user-session keyring, which
/// reads fine but refuses writes (`AccessDenied`), as under some service
/// managers. Keys are linked into the per-user persistent keyring as well,
/// so an agent restarted in another session still finds them. Credentials
/// are per thread on Linux: call this before any thread is started.
pub fn ensure_session_keyring() {
    const KEYCTL_GET_KEYRING_ID: libc::c_long = 0;
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    const KEY_SPEC_SESSION_KEYRING: libc::c_long = -3;
    const KEY_SPEC_USER_SESSION_KEYRING: libc::c_long = -5;
    // SAFETY: keyctl with integer arguments and a null name.
    unsafe {
        let id = |spec: libc::c_long| {
            libc::syscall(
                libc::SYS_keyctl,
                KEYCTL_GET_KEYRING_ID,
                spec,
                0 as libc::c_long,
            )
        };
        let session = id(KEY_SPEC_SESSION_KEYRING);
        let user_session = id(KEY_SPEC_USER_SESSION_KEYRING);
        if session >= 0 && session != user_session {
            return; // a real session keyring
        }
        let r = libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_JOIN_SESSION_KEYRING,
            std::ptr::null::<libc::c_char>(),
        );
        if r < 0 {
            eprintln!(
                "regentd: cannot join a session keyring: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

/// Describes a keyring error without its payload (BadEncoding carries the secret's bytes).
fn describe(e: Error) -> StoreError {
    StoreError(match e {
        Error::NoStorageAccess(inner) => format!("keyring is locked or refused access: {inner}"),
        Error::PlatformFailure(inner) => format!("keyring failure: {inner}"),
        Error::BadEncoding(_) => "stored value is not UTF-8".into(),
        Error::BadDataFormat(_, inner) => format!("stored value is malformed: {inner}"),
        Error::TooLong(what, max) => format!("{what} is longer than the keyring allows ({max})"),
        other => format!("keyring error: {}", kind_only(&other)),
    })
}

fn kind_only(e: &Error) -> &'static str {
    match e {
        Error::NoEntry => "no entry",
        Error::Ambiguous(_) => "several entries match",
        Error::Invalid(_, _) => "invalid attribute",
        Error::NoDefaultStore => "no store",
        Error::NotSupportedByStore(_) => "not supported by this store",
        _ => "unexpected",
    }
}
