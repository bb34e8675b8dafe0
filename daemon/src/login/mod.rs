//! Logins in progress: started by the agent, run in their own tasks, watched
//! by long-polls, cancelled by `DELETE` (once every caller holding it has
//! let go), by a login of another flow for the same grant, or by a change
//! of the resource's configuration. One login is in flight per grant and
//! flow: a second caller (another proxy, the CLI) joins the pending one and
//! sees its outcome, instead of replacing it. The flows themselves are in
//! `device` and `browser`; what a login yields is installed in its grant.

mod browser;
mod device;
mod page;

use crate::ctx::Ctx;
use crate::grant::Grant;
use crate::oauth::{OAuthError, Target, Tokens};
use regent_proto::{Login, LoginFlow, LoginState, LoginStatus};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use tokio::sync::watch;

/// Why a login could not be started or looked up.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Too many logins are pending.
    #[error("{0} logins are already in progress; finish or cancel one first")]
    TooMany(usize),
    /// No login of that id (or it ended long ago).
    #[error("no login with id {0} (ended logins are kept for 10 minutes)")]
    NoSuchLogin(String),
    /// The fixed callback port is taken.
    #[error("the callback port {port} (callback_port of {resource}) is in use by another program; free it, or change callback_port to a port registered at the IdP")]
    PortBusy {
        /// The resource.
        resource: String,
        /// The port.
        port: u16,
    },
    /// The callback listener could not be opened.
    #[error("cannot listen on 127.0.0.1:{port} for the login callback: {reason}")]
    Listen {
        /// The port (0: ephemeral).
        port: u16,
        /// What the OS said.
        reason: String,
    },
    /// The IdP answered something a user must not be shown (a device
    /// login's link that is not https, a code with control characters).
    #[error("refusing the IdP's answer: {0}")]
    Unsafe(String),
    /// The IdP refused or could not be reached.
    #[error("{0}")]
    Idp(#[from] OAuthError),
    /// The IdP refused the login's start, explained (resource, client, fix).
    #[error("{message}")]
    Refused {
        /// What the IdP said.
        error: OAuthError,
        /// It, with the resource, the client id and the likely fix.
        message: String,
    },
}

/// What a login is for.
pub struct Subject {
    /// The resource being logged in to (for messages and cancels).
    pub resource: String,
    /// The grant the login fills.
    pub grant: Arc<Grant>,
    /// The target whose access token the login brings.
    pub target: Target,
    /// The targets of the other resources sharing the grant: named in the
    /// authorization request too (RFC 8707 §2.1), so that the one login can
    /// mint a token for each of them.
    pub also: Vec<Target>,
    /// A fixed loopback port for the browser flow.
    pub callback_port: Option<u16>,
    /// Asked, in order with refreshes and logouts, before the tokens are
    /// installed: false when the resource's configuration changed meanwhile.
    pub still_wanted: Arc<dyn Fn() -> bool + Send + Sync>,
}

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
    /// Per grant: held while a login starts, so two callers never both start one.
    starts: Mutex<HashMap<String, std::sync::Weak<tokio::sync::Mutex<()>>>>,
}

/// One login.
pub struct Entry {
    resource: String,
    /// The grant it fills (its store key) and its flow: what a second caller joins.
    grant: String,
    flow: LoginFlow,
    /// The answer its first caller got, for those who join.
    login: Mutex<Option<Login>>,
    /// Callers holding it; a `DELETE` lets go of one, and the last cancels it.
    holders: Mutex<usize>,
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
            tracing::info!(resource = %self.resource, "login cancelled: {why}");
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
    pub async fn get(&self, id: &str, wait: Duration) -> Result<LoginStatus, LoginError> {
        let entry = self.entry(id)?;
        let mut rx = entry.status.subscribe();
        if !wait.is_zero() {
            let _ = tokio::time::timeout(wait, rx.wait_for(|s| s.status.is_final())).await;
        }
        let status = rx.borrow().clone();
        Ok(status)
    }

    /// Lets go of login `id`: cancelled when no other caller holds it.
    pub fn cancel(&self, id: &str) -> Result<(), LoginError> {
        let entry = self.entry(id)?;
        let last = {
            let mut holders = entry.holders.lock().unwrap();
            *holders = holders.saturating_sub(1);
            *holders == 0
        };
        if last {
            entry.cancel("by request");
        }
        Ok(())
    }

    /// The pending login of `grant` by `flow`, joined: its answer, marked so.
    fn join(&self, grant: &str, flow: LoginFlow) -> Option<Login> {
        let table = self.table.lock().unwrap();
        let entry = table
            .values()
            .find(|e| e.grant == grant && e.flow == flow && !e.is_final())?;
        let mut login = entry.login.lock().unwrap().clone()?;
        *entry.holders.lock().unwrap() += 1;
        login.joined = true;
        Some(login)
    }

    /// Cancels the pending logins of `grant` by another flow than `flow`.
    fn replace_other_flows(&self, grant: &str, flow: LoginFlow) {
        let others: Vec<_> = self
            .table
            .lock()
            .unwrap()
            .values()
            .filter(|e| e.grant == grant && e.flow != flow)
            .cloned()
            .collect();
        for e in others {
            e.cancel(&format!("replaced by a {flow} login"));
        }
    }

    /// A login that needs nothing of the user (already logged in): it has
    /// succeeded, and can be read like any other.
    pub fn done(
        &self,
        resource: &str,
        grant: &str,
        flow: LoginFlow,
        account: Option<String>,
    ) -> String {
        let id = random_id();
        let entry = Arc::new(Entry {
            resource: resource.to_string(),
            grant: grant.to_string(),
            flow,
            login: Mutex::new(None),
            holders: Mutex::new(1),
            status: watch::channel(LoginStatus {
                id: id.clone(),
                status: LoginState::Succeeded,
                error: None,
                registry: resource.to_string(),
                account,
            })
            .0,
            task: Mutex::new(None),
            ended_at: Mutex::new(Some(Instant::now())),
            claimed: Mutex::new(true),
        });
        let mut table = self.table.lock().unwrap();
        Self::prune(&mut table);
        table.insert(id.clone(), entry);
        id
    }

    /// Forgets ended logins past their time (and early, when there are many).
    fn prune(table: &mut HashMap<String, Arc<Entry>>) {
        table.retain(|_, e| {
            e.ended_at
                .lock()
                .unwrap()
                .is_none_or(|t| t.elapsed() < KEEP_ENDED)
        });
        if table.len() >= MAX_KEPT {
            table.retain(|_, e| !e.is_final());
        }
    }

    /// Cancels every pending login of a resource.
    pub fn cancel_resource(&self, resource: &str, why: &str) {
        let entries: Vec<_> = self
            .table
            .lock()
            .unwrap()
            .values()
            .filter(|e| e.resource == resource)
            .cloned()
            .collect();
        for e in entries {
            e.cancel(why);
        }
    }

    /// The logins waiting for the user, oldest first.
    pub fn pending(&self) -> Vec<LoginStatus> {
        let mut v: Vec<LoginStatus> = self
            .table
            .lock()
            .unwrap()
            .values()
            .filter(|e| !e.is_final())
            .map(|e| e.status.borrow().clone())
            .collect();
        v.sort_by(|a, b| a.registry.cmp(&b.registry));
        v
    }

    /// The lock held while a login of `grant` starts.
    fn starting(&self, grant: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut starts = self.starts.lock().unwrap();
        starts.retain(|_, w| w.strong_count() > 0);
        if let Some(l) = starts.get(grant).and_then(std::sync::Weak::upgrade) {
            return l;
        }
        let l = Arc::new(tokio::sync::Mutex::new(()));
        starts.insert(grant.to_string(), Arc::downgrade(&l));
        l
    }

    /// Refuses a new login when too many are pending (before any IdP request).
    fn check_capacity(&self) -> Result<(), LoginError> {
        let table = self.table.lock().unwrap();
        let pending = table.values().filter(|e| !e.is_final()).count();
        if pending >= MAX_PENDING {
            return Err(LoginError::TooMany(pending));
        }
        Ok(())
    }

    fn entry(&self, id: &str) -> Result<Arc<Entry>, LoginError> {
        self.table
            .lock()
            .unwrap()
            .get(id)
            .cloned()
            .ok_or_else(|| LoginError::NoSuchLogin(id.to_string()))
    }

    /// Registers a new login.
    fn insert(
        &self,
        id: &str,
        resource: &str,
        grant: &str,
        flow: LoginFlow,
    ) -> Result<Arc<Entry>, LoginError> {
        let mut table = self.table.lock().unwrap();
        Self::prune(&mut table);
        let pending = table
            .values()
            .filter(|e| !e.status.borrow().status.is_final())
            .count();
        if pending >= MAX_PENDING {
            return Err(LoginError::TooMany(pending));
        }
        let (tx, _) = watch::channel(LoginStatus {
            id: id.to_string(),
            status: LoginState::Pending,
            error: None,
            registry: resource.to_string(),
            account: None,
        });
        let entry = Arc::new(Entry {
            resource: resource.to_string(),
            grant: grant.to_string(),
            flow,
            login: Mutex::new(None),
            holders: Mutex::new(1),
            status: tx,
            task: Mutex::new(None),
            ended_at: Mutex::new(None),
            claimed: Mutex::new(false),
        });
        table.insert(id.to_string(), entry.clone());
        Ok(entry)
    }
}

/// Starts a login for `subject`.
pub async fn start(
    ctx: &Arc<Ctx>,
    logins: &Logins,
    subject: Subject,
    flow: LoginFlow,
) -> Result<Login, LoginError> {
    let spec = subject.grant.spec().clone();
    let grant = subject.grant.key().to_string();
    // One start at a time per grant: a second caller then finds the first's login.
    let starting = logins.starting(&grant);
    let _one = starting.lock().await;
    if let Some(joined) = logins.join(&grant, flow) {
        tracing::info!(resource = %subject.resource, login = %joined.id, "joined a pending login");
        return Ok(joined);
    }
    let meta = ctx.issuers.get(&ctx.idp, &spec.issuer).await?;
    logins.check_capacity()?;
    let id = random_id();
    // A login of another flow for the grant gives way; cancelled first so a fixed callback port is free.
    logins.replace_other_flows(&grant, flow);
    let scopes = crate::oauth::requested_scopes(&spec.scopes, &meta, spec.rule);
    // DPoP: a key made for this login binds what it gets (RFC 9449); kept
    // with the grant, and proved by every refresh.
    // The grant's mode already holds what the resource's metadata said
    // (`auto` became `never` where it named no DPoP).
    let key = if crate::oauth::dpop::binds(spec.dpop, true, &meta) {
        Some(Arc::new(crate::oauth::dpop::DpopKey::generate().map_err(
            |e| LoginError::Idp(crate::oauth::OAuthError::Config(e.to_string())),
        )?))
    } else {
        None
    };
    let how = Flow {
        ctx: ctx.clone(),
        resource: subject.resource.clone(),
        client: spec.client(ctx).await,
        meta,
        scopes,
        target: subject.target.clone(),
        also: subject.also.clone(),
        dpop_key: key.clone(),
    };
    let client_id = how.client.id.clone();
    let started = match flow {
        LoginFlow::Device => device::prepare(how).await.map_err(|e| match e {
            LoginError::Idp(error) => LoginError::Refused {
                message: crate::oauth::explain::describe(
                    &error,
                    crate::oauth::explain::Step::DeviceStart,
                    &subject.resource,
                    &client_id,
                ),
                error,
            },
            other => other,
        })?,
        LoginFlow::Browser => {
            browser::prepare(how, &subject.resource, subject.callback_port).await?
        }
    };
    let entry = logins.insert(&id, &subject.resource, &grant, flow)?;
    let login = Login {
        id: id.clone(),
        registry: subject.resource.clone(),
        flow,
        expires_at: OffsetDateTime::now_utc() + started.wait,
        issuer: Some(spec.issuer.issuer.clone()),
        ..started.login
    };
    *entry.login.lock().unwrap() = Some(login.clone());
    tracing::info!(resource = %subject.resource, login = %id, %flow, "login started");
    let task = {
        let (ctx, entry) = (ctx.clone(), entry.clone());
        let run = started.run;
        let wait = started.wait;
        tokio::spawn(async move {
            let proved = crate::oauth::http::with_dpop(key.clone(), run(entry.clone()));
            let outcome = tokio::time::timeout(wait, proved).await;
            match outcome {
                Ok(Ok(mut tokens)) => {
                    // Kept only where the AS bound the tokens to it.
                    tokens.dpop_key = key.filter(|_| tokens.bound);
                    // Installing runs in its own task: a cancel aborts this one.
                    if entry.claim() {
                        let tasks = ctx.tasks.clone();
                        tasks.spawn(async move { complete(&ctx, &subject, &entry, tokens).await });
                    }
                }
                Ok(Err(Ended::Failed(why))) => {
                    tracing::info!(resource = %subject.resource, "login failed: {why}");
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

/// What a flow needs to talk to the IdP.
pub struct Flow {
    ctx: Arc<Ctx>,
    /// The resource being logged in to (for messages).
    resource: String,
    client: crate::oauth::ClientAuth,
    meta: Arc<crate::oauth::Metadata>,
    scopes: Vec<String>,
    target: Target,
    also: Vec<Target>,
    /// The key the login binds its tokens to (DPoP), if it does.
    dpop_key: Option<Arc<crate::oauth::dpop::DpopKey>>,
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
    dyn FnOnce(Arc<Entry>) -> futures::future::BoxFuture<'static, Result<Tokens, Ended>> + Send,
>;

/// A flow, prepared: what to show the user, how long to wait, what to run.
pub struct Prepared {
    /// The flow-specific fields of the answer (id, resource, flow and expiry are filled in here).
    pub login: Login,
    /// The login's deadline from now.
    pub wait: Duration,
    /// The task body.
    pub run: Run,
}

/// Installs a login's tokens, unless the login was cancelled or the
/// resource's configuration changed meanwhile.
async fn complete(ctx: &Ctx, subject: &Subject, entry: &Entry, tokens: Tokens) {
    let account = tokens.account.clone();
    let has_rt = tokens.refresh_token.is_some();
    let still_wanted = subject.still_wanted.clone();
    // What the authorization named: both flows name every sharer (RFC 8707 §2.1).
    let named: &[Target] = &subject.also;
    let installed = subject
        .grant
        .install_login(ctx, &subject.target, named, tokens, move || still_wanted())
        .await;
    match installed {
        Some(persisted) => {
            tracing::info!(resource = %subject.resource, persisted, refresh_token = has_rt, "login succeeded");
            entry.finish(LoginState::Succeeded, None, account);
        }
        None => {
            entry.finish(
                LoginState::Failed,
                Some("the resource's configuration changed during the login".into()),
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
