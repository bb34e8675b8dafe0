//! Logins in progress: started by the API, run in their own tasks, watched
//! by long-polls, cancelled by `DELETE` or by a newer login for the registry.
//! The flows themselves are in `device` and `browser`.

mod browser;
mod device;
mod page;

use crate::agent::{oauth_error, Agent};
use crate::error::ApiError;
use crate::registry::Registry;
use crate::tokens::TokenSet;
use regent_proto::{Login, LoginFlow, LoginState, LoginStatus};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use tokio::sync::watch;

/// Most logins pending at once (all registries).
const MAX_PENDING: usize = 16;
/// Most logins kept in the table (pending and ended).
const MAX_KEPT: usize = 256;
/// How long an ended login can still be read.
const KEEP_ENDED: Duration = Duration::from_secs(600);

/// The login table.
#[derive(Default)]
pub struct Logins {
    table: Mutex<HashMap<String, Arc<Entry>>>,
}

/// One login.
pub struct Entry {
    registry: String,
    status: watch::Sender<LoginStatus>,
    task: Mutex<Option<tokio::task::AbortHandle>>,
    ended_at: Mutex<Option<Instant>>,
    /// Set once the flow got tokens: from then on the login completes and a
    /// cancel is too late (installing is never interrupted halfway).
    claimed: Mutex<bool>,
}

impl Entry {
    /// Whether the login has ended.
    pub fn is_final(&self) -> bool {
        self.status.borrow().status.is_final()
    }

    fn finish(&self, state: LoginState, error: Option<String>, account: Option<String>) -> bool {
        let changed = self.status.send_if_modified(|s| {
            if s.status.is_final() {
                return false;
            }
            s.status = state;
            s.error = error;
            s.account = account;
            true
        });
        if changed {
            *self.ended_at.lock().unwrap() = Some(Instant::now());
        }
        changed
    }

    fn cancel(&self, why: &str) {
        let claimed = self.claimed.lock().unwrap();
        if *claimed {
            return;
        }
        if self.finish(LoginState::Failed, Some(format!("cancelled: {why}")), None) {
            if let Some(t) = self.task.lock().unwrap().take() {
                t.abort();
            }
        }
    }

    /// Claims a pending login for completion; false if it already ended.
    fn claim(&self) -> bool {
        let mut claimed = self.claimed.lock().unwrap();
        if *claimed || self.is_final() {
            return false;
        }
        *claimed = true;
        true
    }
}

impl Logins {
    /// The status of login `id`, waiting up to `wait` for it to change from pending.
    pub async fn get(&self, id: &str, wait: Duration) -> Result<LoginStatus, ApiError> {
        let entry = self.entry(id)?;
        let mut rx = entry.status.subscribe();
        if !wait.is_zero() {
            let _ = tokio::time::timeout(wait, rx.wait_for(|s| s.status.is_final())).await;
        }
        let status = rx.borrow().clone();
        Ok(status)
    }

    /// Cancels login `id`.
    pub fn cancel(&self, id: &str) -> Result<(), ApiError> {
        self.entry(id)?.cancel("by request");
        Ok(())
    }

    /// Cancels every pending login of a registry.
    pub fn cancel_registry(&self, registry: &str, why: &str) {
        let entries: Vec<_> = self
            .table
            .lock()
            .unwrap()
            .values()
            .filter(|e| e.registry == registry)
            .cloned()
            .collect();
        for e in entries {
            e.cancel(why);
        }
    }

    /// Refuses a new login when too many are pending (before any IdP request).
    fn check_capacity(&self) -> Result<(), ApiError> {
        let table = self.table.lock().unwrap();
        let pending = table.values().filter(|e| !e.is_final()).count();
        if pending >= MAX_PENDING {
            return Err(ApiError::invalid(format!(
                "{pending} logins are already in progress; finish or cancel one first"
            )));
        }
        Ok(())
    }

    fn entry(&self, id: &str) -> Result<Arc<Entry>, ApiError> {
        self.table.lock().unwrap().get(id).cloned().ok_or_else(|| {
            ApiError::invalid(format!(
                "no login with id {id} (ended logins are kept for {} minutes)",
                KEEP_ENDED.as_secs() / 60
            ))
        })
    }

    /// Registers a new login, replacing a pending one of the same registry.
    fn insert(&self, id: &str, registry: &str) -> Result<Arc<Entry>, ApiError> {
        let mut table = self.table.lock().unwrap();
        table.retain(|_, e| {
            e.ended_at
                .lock()
                .unwrap()
                .is_none_or(|t| t.elapsed() < KEEP_ENDED)
        });
        if table.len() >= MAX_KEPT {
            // Many logins in little time: forget the ended ones early.
            table.retain(|_, e| !e.is_final());
        }
        for e in table.values().filter(|e| e.registry == registry) {
            e.cancel("replaced by a newer login");
        }
        let pending = table
            .values()
            .filter(|e| !e.status.borrow().status.is_final())
            .count();
        if pending >= MAX_PENDING {
            return Err(ApiError::invalid(format!(
                "{pending} logins are already in progress; finish or cancel one first"
            )));
        }
        let (tx, _) = watch::channel(LoginStatus {
            id: id.to_string(),
            status: LoginState::Pending,
            error: None,
            registry: registry.to_string(),
            account: None,
        });
        let entry = Arc::new(Entry {
            registry: registry.to_string(),
            status: tx,
            task: Mutex::new(None),
            ended_at: Mutex::new(None),
            claimed: Mutex::new(false),
        });
        table.insert(id.to_string(), entry.clone());
        Ok(entry)
    }
}

/// `POST /v1/login`.
pub async fn start(
    agent: &Arc<Agent>,
    name: Option<&str>,
    flow: LoginFlow,
) -> Result<Login, ApiError> {
    let reg = agent.resolve(name)?;
    let oauth = reg.oauth()?;
    let meta = agent
        .metadata(&reg)
        .await
        .map_err(|e| oauth_error(e, &reg.name))?;
    agent.logins.check_capacity()?;
    let id = random_id();
    // A newer login replaces a pending one; cancel it first so a fixed callback port is free.
    agent
        .logins
        .cancel_registry(&reg.name, "replaced by a newer login");
    let started = match flow {
        LoginFlow::Device => device::prepare(agent, &reg, &oauth.config, meta).await?,
        LoginFlow::Browser => browser::prepare(agent, &reg, &oauth.config, meta).await?,
    };
    let entry = agent.logins.insert(&id, &reg.name)?;
    let login = Login {
        id: id.clone(),
        registry: reg.name.clone(),
        flow,
        expires_at: OffsetDateTime::now_utc() + started.wait,
        ..started.login
    };
    tracing::info!(registry = %reg.name, login = %id, %flow, "login started");
    let task = {
        let (agent, reg, entry) = (agent.clone(), reg.clone(), entry.clone());
        let run = started.run;
        let wait = started.wait;
        tokio::spawn(async move {
            let outcome =
                tokio::time::timeout(wait, run(agent.clone(), reg.clone(), entry.clone())).await;
            match outcome {
                Ok(Ok(set)) => {
                    // Installing runs in its own task: a cancel aborts this one.
                    if entry.claim() {
                        let done = agent.clone();
                        done.tasks
                            .spawn(async move { complete(&agent, &reg, &entry, set).await });
                    }
                }
                Ok(Err(Ended::Failed(why))) => {
                    tracing::info!(registry = %reg.name, "login failed: {why}");
                    entry.finish(LoginState::Failed, Some(why), None);
                }
                Ok(Err(Ended::Expired)) | Err(_) => {
                    entry.finish(
                        LoginState::Expired,
                        Some("the login was not completed in time".into()),
                        None,
                    );
                }
            }
        })
    };
    *entry.task.lock().unwrap() = Some(task.abort_handle());
    // A cancel may have raced with the spawn.
    if entry.is_final() {
        task.abort();
    }
    Ok(login)
}

/// How a login flow ended without tokens.
#[derive(Debug)]
pub enum Ended {
    /// Denied, refused, or broken (the reason is shown to the user).
    Failed(String),
    /// The IdP said the code expired.
    Expired,
}

/// The flow's part of a login run: gets the tokens, or says why not.
type Run = Box<
    dyn FnOnce(
            Arc<Agent>,
            Arc<Registry>,
            Arc<Entry>,
        ) -> futures::future::BoxFuture<'static, Result<TokenSet, Ended>>
        + Send,
>;

/// A flow, prepared: what to show the user, how long to wait, what to run.
pub struct Prepared {
    /// The flow-specific fields of the answer (id, registry, flow and expiry are filled in here).
    pub login: Login,
    /// The login's deadline from now.
    pub wait: Duration,
    /// The task body.
    pub run: Run,
}

/// Installs a login's tokens, unless the login was cancelled or the
/// registry's config changed meanwhile.
async fn complete(agent: &Arc<Agent>, reg: &Arc<Registry>, entry: &Entry, set: TokenSet) {
    let oauth = reg.oauth.as_ref().expect("login registries are OAuth");
    let account = set.account.clone();
    let has_rt = set.refresh_token.is_some();
    let installed = oauth
        .tokens
        .install_login(agent, &oauth.key, set, || agent.is_current(reg))
        .await;
    match installed {
        Some(persisted) => {
            tracing::info!(registry = %reg.name, persisted, refresh_token = has_rt, "login succeeded");
            entry.finish(LoginState::Succeeded, None, account);
        }
        None => {
            entry.finish(
                LoginState::Failed,
                Some("the registry's configuration changed during the login".into()),
                None,
            );
        }
    }
}

/// 128 random bits, hex: login ids are unguessable.
fn random_id() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
