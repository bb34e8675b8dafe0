//! What the layers below the agent are driven by: the store, the IdP
//! client and its metadata cache, the task tracker, the settings and the
//! clock. Nothing in it knows about resources or the API.

use crate::clients::Clients;
use crate::clock::Clock;
use crate::oauth::http::IdpClient;
use crate::oauth::Issuers;
use crate::store::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::task::TaskTracker;

/// Agent-wide settings from the command line.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long a browser login waits for its callback.
    pub login_timeout: Duration,
    /// regent's client ID metadata document, used as its client id where an
    /// AS supports those (`--client-metadata-url`).
    pub client_metadata_url: Option<String>,
    /// Started by systemd (socket activation).
    pub systemd: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            login_timeout: Duration::from_secs(300),
            client_metadata_url: None,
            systemd: false,
        }
    }
}

/// The context of refreshes, logins and logouts.
pub struct Ctx {
    /// Where grants persist.
    pub store: Arc<Store>,
    /// The one HTTP client towards IdPs.
    pub idp: IdpClient,
    /// IdP metadata by issuer.
    pub issuers: Issuers,
    /// Client credentials by issuer and client id.
    pub clients: Clients,
    /// Refreshes and login completions: shutdown waits for them, so no
    /// rotated refresh token is lost to a SIGTERM.
    pub tasks: TaskTracker,
    /// Settings from the command line.
    pub settings: Settings,
    /// The wall clock tokens expire by.
    pub clock: Clock,
    /// The DPoP nonces resource servers gave, per origin.
    pub dpop_nonces: crate::oauth::dpop::Nonces,
}

impl Ctx {
    /// A context with the production IdP client and clock.
    pub fn new(store: Arc<Store>, settings: Settings) -> Arc<Ctx> {
        Self::with(store, settings, IdpClient::new(), Clock::System)
    }

    /// A context with the given IdP client and clock (the in-process tests).
    pub fn with(store: Arc<Store>, settings: Settings, idp: IdpClient, clock: Clock) -> Arc<Ctx> {
        Arc::new(Ctx {
            store,
            idp,
            issuers: Issuers::default(),
            clients: Clients::default(),
            tasks: TaskTracker::new(),
            settings,
            clock,
            dpop_nonces: Default::default(),
        })
    }
}
