//! Agent forwarding (`regent ssh`): a second socket, `agent.forward.sock`,
//! that a remote machine reaches through an OpenSSH stream-local forward,
//! and that lends tokens only. It answers `/v1/health`, `/v1/token`,
//! `/v1/token/invalidate`, the listings (forwardable resources only) and a
//! challenge that can only drop a refused token; everything else — adding,
//! removing, logins, logouts — is `forbidden`. It never starts a login.
//!
//! Requests are told apart by session: the peer of a forwarded connection is
//! the local `ssh` process relaying it, whose pid `regent ssh` registered.
//! A resource marked `forward_confirm` is served only in sessions whose user
//! said yes when `regent ssh` asked (a prompt in the middle of the session
//! would fight the remote shell for the terminal).

use crate::agent::Agent;
use crate::error::ApiError;
use crate::resource::Kind;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use regent_proto::{
    ChallengeAnswer, ChallengeRequest, ErrorCode, ForwardInfo, ForwardSession, ForwardUse, Health,
    InvalidateRequest, McpList, Next, RegistryList, TokenRequest, TokenResponse, API_VERSION,
    DEFAULT_MIN_VALID_SECS,
};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// The forwarding socket's file name, beside the agent's socket.
pub const SOCKET_NAME: &str = "agent.forward.sock";

/// The peer of a connection on the forwarding socket.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    /// Its process id (the local `ssh` relaying the remote request).
    pub pid: Option<u32>,
}

/// What forwarding holds: which resources, the sessions, the last uses.
#[derive(Default)]
pub struct Forwarding {
    /// Forwardable resources, and whether each needs a yes per session.
    rules: RwLock<BTreeMap<String, bool>>,
    /// `regent ssh` sessions by the pid of their `ssh`.
    sessions: Mutex<HashMap<u32, ForwardSession>>,
    /// The last forwarded token per resource.
    uses: Mutex<BTreeMap<String, ForwardUse>>,
    /// The socket, once served.
    socket: RwLock<Option<PathBuf>>,
    /// Whether any resource is forwardable (the socket is served from the first one on).
    wanted: tokio::sync::watch::Sender<bool>,
}

impl Forwarding {
    /// Takes the config's forwardable resources (name, confirm).
    pub fn set_rules(&self, rules: BTreeMap<String, bool>) {
        let any = !rules.is_empty();
        self.uses
            .lock()
            .unwrap()
            .retain(|name, _| rules.contains_key(name));
        *self.rules.write().unwrap() = rules;
        self.wanted.send_if_modified(|w| {
            let changed = *w != any;
            *w = any;
            changed
        });
    }

    /// Resolves once a resource is forwardable.
    pub async fn wanted(&self) {
        let mut rx = self.wanted.subscribe();
        let _ = rx.wait_for(|w| *w).await;
    }

    /// Records the socket being served.
    pub fn serving(&self, path: PathBuf) {
        *self.socket.write().unwrap() = Some(path);
    }

    /// The socket, while served.
    pub fn socket(&self) -> Option<PathBuf> {
        self.socket.read().unwrap().clone()
    }

    /// The forwarding status of `name`, if it is forwardable.
    pub fn info(&self, name: &str) -> Option<ForwardInfo> {
        let confirm = *self.rules.read().unwrap().get(name)?;
        Some(ForwardInfo {
            confirm,
            last_use: self.uses.lock().unwrap().get(name).cloned(),
        })
    }

    /// Registers a `regent ssh` session.
    pub fn open(&self, s: ForwardSession) {
        self.sessions.lock().unwrap().insert(s.ssh_pid, s);
    }

    /// Ends one.
    pub fn close(&self, ssh_pid: u32) -> bool {
        self.sessions.lock().unwrap().remove(&ssh_pid).is_some()
    }

    /// The sessions open now.
    pub fn sessions(&self) -> Vec<ForwardSession> {
        let mut v: Vec<_> = self.sessions.lock().unwrap().values().cloned().collect();
        v.sort_by_key(|s| s.ssh_pid);
        v
    }

    /// Why `name` may not be lent to `peer`, if it may not.
    fn refusal(&self, name: &str, peer: Peer) -> Option<String> {
        let confirm = match self.rules.read().unwrap().get(name) {
            None => {
                return Some(format!(
                    "{name} is not forwardable; on the machine where the agent runs: regent forward allow {name}"
                ))
            }
            Some(c) => *c,
        };
        if confirm {
            let approved = peer.pid.is_some_and(|pid| {
                self.sessions
                    .lock()
                    .unwrap()
                    .get(&pid)
                    .is_some_and(|s| s.approved.iter().any(|a| a == name))
            });
            if !approved {
                return Some(format!(
                    "{name} is lent only to sessions you said yes to: connect with regent ssh, which asks"
                ));
            }
        }
        None
    }

    /// Notes a token lent to `peer`.
    fn used(&self, name: &str, peer: Peer, now: time::OffsetDateTime) {
        let via = peer
            .pid
            .and_then(|pid| {
                self.sessions
                    .lock()
                    .unwrap()
                    .get(&pid)
                    .map(|s| s.host.clone())
            })
            .unwrap_or_else(|| "ssh -R".into());
        self.uses
            .lock()
            .unwrap()
            .insert(name.to_string(), ForwardUse { at: now, via });
    }

    fn names(&self) -> Vec<String> {
        self.rules.read().unwrap().keys().cloned().collect()
    }
}

type Shared = State<Arc<Agent>>;

/// The forwarding socket's API. `Peer` comes from the accept loop.
pub fn router(agent: Arc<Agent>) -> Router {
    let routes = Router::new()
        .route("/v1/health", get(health))
        .route("/v1/token", post(token))
        .route("/v1/token/invalidate", post(invalidate))
        .route("/v1/registries", get(registries))
        .route("/v1/mcp", get(mcp))
        .route("/v1/challenge", post(challenge))
        .fallback(refused);
    crate::api::protect(routes).with_state(agent)
}

async fn refused() -> ApiError {
    ApiError::new(
        ErrorCode::Forbidden,
        "over a forwarded agent only tokens are lent: logins, logouts and changes happen on the \
         machine where the agent runs (there: regent login NAME, regent registry add ...)",
    )
}

async fn health(State(agent): Shared) -> Json<Health> {
    Json(Health {
        version: env!("CARGO_PKG_VERSION").to_string(),
        api: API_VERSION,
        pid: std::process::id(),
        store: agent.ctx().store.name().to_string(),
        durability: None,
        started_at: None,
        systemd: false,
        pending_logins: Vec::new(),
        forward_socket: None,
        forwarded: true,
    })
}

/// The resource a forwarded request names; with none named, the one forwardable.
fn pick(agent: &Agent, name: Option<&str>) -> Result<String, ApiError> {
    match name {
        Some(n) => Ok(n.to_string()),
        None => {
            let all = agent.forwarding().names();
            match all.as_slice() {
                [one] => Ok(one.clone()),
                [] => Err(ApiError::new(
                    ErrorCode::Forbidden,
                    "nothing is forwardable",
                )),
                many => Err(ApiError::invalid(format!(
                    "several are forwardable ({}); name one",
                    many.join(", ")
                ))),
            }
        }
    }
}

fn check(agent: &Agent, name: &str, peer: Peer) -> Result<(), ApiError> {
    match agent.forwarding().refusal(name, peer) {
        Some(why) => Err(ApiError::new(ErrorCode::Forbidden, why).registry(name)),
        None => Ok(()),
    }
}

async fn token(
    State(agent): Shared,
    Extension(peer): Extension<Peer>,
    body: Option<crate::api::JsonBody<TokenRequest>>,
) -> Result<Json<TokenResponse>, ApiError> {
    let req = body.map(|b| b.0).unwrap_or_default();
    let name = pick(&agent, req.registry.as_deref())?;
    check(&agent, &name, peer)?;
    let min_valid = Duration::from_secs(req.min_valid_secs.unwrap_or(DEFAULT_MIN_VALID_SECS));
    match agent.token(Some(&name), min_valid).await {
        Ok(t) => {
            agent
                .forwarding()
                .used(&name, peer, agent.ctx().clock.now());
            tracing::info!(resource = %name, peer_pid = ?peer.pid, "lent a token over forwarding");
            Ok(Json(t))
        }
        Err(e) => {
            let mut e = ApiError::from(e);
            if e.code == ErrorCode::RegistryAuthRequired {
                // The login is the laptop's to do.
                e.message = format!(
                    "{name} needs a login on the machine where the agent runs: there, run regent login {name}"
                );
            }
            Err(e)
        }
    }
}

async fn invalidate(
    State(agent): Shared,
    Extension(peer): Extension<Peer>,
    crate::api::JsonBody(req): crate::api::JsonBody<InvalidateRequest>,
) -> Result<StatusCode, ApiError> {
    let name = pick(&agent, req.registry.as_deref())?;
    check(&agent, &name, peer)?;
    agent.invalidate(Some(&name), &req.access_token)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn registries(State(agent): Shared) -> Json<RegistryList> {
    Json(RegistryList {
        registries: listed(&agent, Kind::Registry),
    })
}

async fn mcp(State(agent): Shared) -> Json<McpList> {
    Json(McpList {
        servers: listed(&agent, Kind::Mcp),
    })
}

/// The forwardable resources of a kind; the others are not shown.
fn listed(agent: &Agent, kind: Kind) -> Vec<regent_proto::RegistryStatus> {
    let names = agent.forwarding().names();
    agent
        .all(kind)
        .iter()
        .filter(|r| names.contains(&r.name))
        .map(|r| agent.status(r))
        .collect()
}

/// A refusal reported over forwarding: the refused token is dropped, and a
/// new one can be had if a refresh can mint it; anything more (a login, a
/// step-up, a rediscovery) is the laptop's to do.
async fn challenge(
    State(agent): Shared,
    Extension(peer): Extension<Peer>,
    crate::api::JsonBody(req): crate::api::JsonBody<ChallengeRequest>,
) -> Result<Json<ChallengeAnswer>, ApiError> {
    let name = req.registry.clone();
    check(&agent, &name, peer)?;
    if let Some(t) = &req.access_token {
        let _ = agent.invalidate(Some(&name), t);
    }
    let res = agent.resolve(Some(&name))?;
    let st = agent.status(&res);
    let refreshable = st.auth.as_ref().is_some_and(|a| a.has_refresh_token)
        || matches!(
            res.auth,
            crate::auth::Auth::ClientCredentials(_) | crate::auth::Auth::Enterprise(_)
        );
    let answer = if req.status == 401 && refreshable {
        ChallengeAnswer {
            next: Next::Retry,
            message: "the refused token was dropped; a new one can be had".into(),
        }
    } else {
        ChallengeAnswer {
            next: Next::Fail,
            message: format!(
                "{name} refused the token ({}); a new login or more scope is needed, which happens \
                 on the machine where the agent runs: there, run regent login {name}",
                req.status
            ),
        }
    };
    Ok(Json(answer))
}
