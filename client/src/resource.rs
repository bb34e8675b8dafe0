//! Requests to a resource (a registry, an MCP server) with the agent's
//! token: the one refusal path. A 401 or 403 is reported to the agent with
//! every `WWW-Authenticate` value the server sent and which refusal of this
//! request it is; the agent decides — send again with a new token, log in,
//! or give up — and its message is what the user sees. Nothing here decides
//! what a refusal means.

use crate::agent::{AgentClient, ClientError};
use regent_proto::{ChallengeRequest, ErrorCode, Next, TokenRequest};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// Refusals of one request after which the client stops, whatever the agent
/// says (the agent stops well before; this bounds an older or broken one).
const MAX_REFUSALS: u32 = 8;

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Runs a login for a resource when the agent says one is needed
/// (interactive callers: the CLI, `regent mcp proxy`).
pub trait Login: Send + Sync {
    /// Logs in to `resource`; `why` is the agent's reason, and `fresh` says
    /// to log in even where the agent holds a login (the server refused its
    /// tokens). Returns once the login succeeded, or says why it did not.
    fn login<'a>(
        &'a self,
        resource: &'a str,
        why: &'a str,
        fresh: bool,
    ) -> BoxFuture<'a, Result<(), String>>;
}

/// An answer a refusal can be read from.
pub trait Answer {
    /// Its HTTP status.
    fn status(&self) -> u16;
    /// Every `WWW-Authenticate` value, in order.
    fn challenges(&self) -> Vec<String>;
    /// Its `DPoP-Nonce` header (RFC 9449 §9), if any.
    fn dpop_nonce(&self) -> Option<String> {
        None
    }
}

impl Answer for reqwest::Response {
    fn status(&self) -> u16 {
        self.status().as_u16()
    }
    fn challenges(&self) -> Vec<String> {
        challenges(self.headers())
    }
    fn dpop_nonce(&self) -> Option<String> {
        self.headers()
            .get("dpop-nonce")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
}

/// Every `WWW-Authenticate` value of `headers`, in order (a server may send
/// `Basic` first and the `Bearer` challenge that matters second).
pub fn challenges(headers: &reqwest::header::HeaderMap) -> Vec<String> {
    headers
        .get_all(reqwest::header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::to_string)
        .collect()
}

/// Why a request with the agent's token did not get through.
#[derive(Debug, thiserror::Error)]
pub enum AuthError<E> {
    /// The agent could not be asked, or refused (its error, as is).
    #[error("{0}")]
    Agent(#[from] ClientError),
    /// A login is needed and this caller does not run one (or it failed).
    #[error("{message}")]
    LoginNeeded {
        /// The resource.
        resource: String,
        /// The agent's reason and the command that fixes it.
        message: String,
    },
    /// The resource refuses, and no new token or login would help.
    #[error("{message}")]
    Refused {
        /// The resource.
        resource: String,
        /// The last status (401 or 403).
        status: u16,
        /// The agent's reason.
        message: String,
    },
    /// Sending failed (the caller's own error).
    #[error("{0}")]
    Send(E),
}

impl<E> AuthError<E> {
    /// The contract code of this error, where it has one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            AuthError::Agent(e) => e.code(),
            AuthError::LoginNeeded { .. } => Some(ErrorCode::RegistryAuthRequired),
            AuthError::Refused { .. } => Some(ErrorCode::RegistryForbidden),
            AuthError::Send(_) => None,
        }
    }
}

/// What to do when the agent has no login for the resource yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WithoutLogin {
    /// Send without a token: the server's 401 says what it wants (MCP servers).
    SendBare,
    /// Fail with the agent's `registry_auth_required` (registries: nothing is sent).
    Fail,
}

/// A resource's token and refusals, through the agent.
#[derive(Clone)]
pub struct ResourceAuth {
    agent: AgentClient,
    name: String,
    without_login: WithoutLogin,
    login: Option<Arc<dyn Login>>,
    /// Say on stderr what the agent answered to each refusal.
    notes: bool,
    /// The last token the agent gave, with its expiry: a bridge sends many
    /// requests a second, and each need not ask the agent again.
    cached: Arc<std::sync::Mutex<Option<(String, time::OffsetDateTime)>>>,
    /// The agent said the token is DPoP-bound: ask for a proof each time.
    bound: Arc<AtomicBool>,
    /// The proof for the next request, asked for while this one is sent.
    ahead: Arc<std::sync::Mutex<Option<Ahead>>>,
    /// A proof is being asked for ahead.
    filling: Arc<AtomicBool>,
    /// Moves at each refusal: a proof asked for ahead before it is dropped.
    refusals: Arc<AtomicU64>,
    /// The `DPoP-Nonce` the server gave last (RFC 9449 §9).
    nonce: Arc<std::sync::Mutex<Option<String>>>,
}

/// A proof made ahead of the request it is for, so that a bridge's next
/// request does not wait for the agent to sign one. Each proof is for one
/// request (its `jti`), made for the method, URL and server nonce it names,
/// and kept only briefly (its `iat` must stay within the server's window).
struct Ahead {
    htm: String,
    htu: String,
    nonce: Option<String>,
    token: String,
    expires_at: Option<time::OffsetDateTime>,
    proof: String,
    made: std::time::Instant,
}

/// How long a proof made ahead may wait for its request (servers accept
/// proofs whose `iat` is within a minute or so; this stays well inside).
const AHEAD_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(5);

/// What a request carries: the token, and for a DPoP-bound one (RFC 9449)
/// the agent's proof for this request. `Debug` shows neither.
#[derive(Clone)]
pub struct Credential {
    token: String,
    proof: Option<String>,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Credential({})",
            if self.proof.is_some() {
                "DPoP"
            } else {
                "Bearer"
            }
        )
    }
}

impl Credential {
    fn bearer(token: String) -> Credential {
        Credential { token, proof: None }
    }

    /// The `Authorization` value: `Bearer TOKEN`, or `DPoP TOKEN` for a bound one.
    pub fn authorization(&self) -> String {
        match self.proof {
            Some(_) => format!("DPoP {}", self.token),
            None => format!("Bearer {}", self.token),
        }
    }

    /// The `DPoP` header's value (the proof), for a bound token.
    pub fn proof(&self) -> Option<&str> {
        self.proof.as_deref()
    }

    /// Puts `Authorization` (and `DPoP`) on a request.
    pub fn apply(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        let req = req.header(reqwest::header::AUTHORIZATION, self.authorization());
        match &self.proof {
            Some(p) => req.header("dpop", p),
            None => req,
        }
    }
}

/// How long before its expiry a cached token is no longer sent (the agent
/// refreshes ahead of that, once for everyone).
const CACHE_MARGIN: time::Duration = time::Duration::seconds(60);

impl ResourceAuth {
    /// The auth of resource `name`, with no login run here.
    pub fn new(agent: AgentClient, name: impl Into<String>, without_login: WithoutLogin) -> Self {
        ResourceAuth {
            agent,
            name: name.into(),
            without_login,
            login: None,
            notes: false,
            cached: Arc::default(),
            bound: Arc::default(),
            ahead: Arc::default(),
            filling: Arc::default(),
            refusals: Arc::default(),
            nonce: Arc::default(),
        }
    }

    /// Runs `login` where the agent says a login is needed.
    pub fn with_login(mut self, login: Arc<dyn Login>) -> Self {
        self.login = Some(login);
        self
    }

    /// Says on stderr what the agent answered to each refusal (for a
    /// bridge, whose stdout is the protocol).
    pub fn noting(mut self) -> Self {
        self.notes = true;
        self
    }

    /// The resource's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The agent.
    pub fn agent(&self) -> &AgentClient {
        &self.agent
    }

    /// What to send with a `htm` request to `htu`: `None` for a resource
    /// without auth (or, with [`WithoutLogin::SendBare`], without a login
    /// yet). A Bearer token is kept while it has more than a minute to live;
    /// a DPoP-bound one needs a fresh proof from the agent for each request,
    /// asked for ahead, while the request before it is sent.
    pub async fn credential(
        &self,
        htm: &str,
        htu: &str,
    ) -> Result<Option<Credential>, ClientError> {
        let now = time::OffsetDateTime::now_utc();
        if let Some((t, _)) = self
            .cached
            .lock()
            .unwrap()
            .as_ref()
            .filter(|(_, exp)| now + CACHE_MARGIN < *exp)
        {
            return Ok(Some(Credential::bearer(t.clone())));
        }
        if self.bound.load(Ordering::Relaxed) {
            if let Some(c) = self.take_ahead(htm, htu, now) {
                self.fill_ahead(htm, htu);
                return Ok(Some(c));
            }
        }
        let mut req = TokenRequest {
            url: None,
            registry: Some(self.name.clone()),
            min_valid_secs: None,
            // Asked for only once a token was DPoP (an older agent refuses the field).
            dpop: self
                .bound
                .load(Ordering::Relaxed)
                .then(|| self.dpop_request(htm, htu)),
        };
        let mut answer = self.agent.token(&req).await;
        if let Ok(t) = &answer {
            if t.token_type.eq_ignore_ascii_case("dpop") && req.dpop.is_none() {
                self.bound.store(true, Ordering::Relaxed);
                req.dpop = Some(self.dpop_request(htm, htu));
                answer = self.agent.token(&req).await;
            }
        }
        match answer {
            Ok(t) => {
                let token = t.access_token.into_inner();
                if let Some(proof) = t.dpop_proof {
                    self.bound.store(true, Ordering::Relaxed);
                    self.fill_ahead(htm, htu);
                    return Ok(Some(Credential {
                        token,
                        proof: Some(proof.into_inner()),
                    }));
                }
                self.bound.store(false, Ordering::Relaxed);
                // Only a token whose expiry is known is kept (a static token
                // file may change at any time: the agent reads it).
                *self.cached.lock().unwrap() = t
                    .expires_at
                    .filter(|exp| now + CACHE_MARGIN < *exp)
                    .map(|exp| (token.clone(), exp));
                Ok(Some(Credential::bearer(token)))
            }
            Err(e) if e.code() == Some(ErrorCode::AuthNotConfigured) => Ok(None),
            Err(e)
                if e.code() == Some(ErrorCode::RegistryAuthRequired)
                    && self.without_login == WithoutLogin::SendBare =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    fn dpop_request(&self, htm: &str, htu: &str) -> regent_proto::DpopRequest {
        regent_proto::DpopRequest {
            htm: htm.to_string(),
            htu: htu.to_string(),
            nonce: self.nonce.lock().unwrap().clone(),
        }
    }

    /// The proof made ahead, if it is for this request and still fresh.
    fn take_ahead(&self, htm: &str, htu: &str, now: time::OffsetDateTime) -> Option<Credential> {
        let a = self.ahead.lock().unwrap().take()?;
        let nonce = self.nonce.lock().unwrap().clone();
        let fits = a.htm == htm
            && a.htu == htu
            && a.nonce == nonce
            && a.made.elapsed() < AHEAD_MAX_AGE
            && a.expires_at.is_none_or(|exp| now + CACHE_MARGIN < exp);
        fits.then_some(Credential {
            token: a.token,
            proof: Some(a.proof),
        })
    }

    /// Asks the agent, in the background, for the proof of the next request
    /// like this one (one at a time; nothing when there is no runtime).
    fn fill_ahead(&self, htm: &str, htu: &str) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.filling.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = self.clone();
        let dpop = self.dpop_request(htm, htu);
        let refusals = self.refusals.load(Ordering::Acquire);
        rt.spawn(async move {
            let req = TokenRequest {
                url: None,
                registry: Some(this.name.clone()),
                min_valid_secs: None,
                dpop: Some(dpop.clone()),
            };
            if let Ok(t) = this.agent.token(&req).await {
                let mut ahead = this.ahead.lock().unwrap();
                // A refusal since: its token may be the refused one.
                let current = this.refusals.load(Ordering::Acquire) == refusals;
                if let Some(proof) = t.dpop_proof.filter(|_| current) {
                    *ahead = Some(Ahead {
                        htm: dpop.htm,
                        htu: dpop.htu,
                        nonce: dpop.nonce,
                        token: t.access_token.into_inner(),
                        expires_at: t.expires_at,
                        proof: proof.into_inner(),
                        made: std::time::Instant::now(),
                    });
                }
            }
            this.filling.store(false, Ordering::Release);
        });
    }

    /// Keeps the server's new `DPoP-Nonce`, if it gave one.
    fn note_nonce(&self, answer: &impl Answer) {
        if let Some(n) = answer.dpop_nonce() {
            let mut kept = self.nonce.lock().unwrap();
            if kept.as_deref() != Some(n.as_str()) {
                *kept = Some(n);
            }
        }
    }

    /// Sends a `htm` request to `htu` built by `send` (given what to
    /// carry) and follows the agent's answer to each refusal, until an
    /// answer that is not a refusal comes back.
    pub async fn send<R, E, F, Fut>(
        &self,
        htm: &str,
        htu: &str,
        mut send: F,
    ) -> Result<R, AuthError<E>>
    where
        R: Answer,
        F: FnMut(Option<Credential>) -> Fut,
        Fut: Future<Output = Result<R, E>>,
    {
        let mut attempt = 0;
        loop {
            let credential = self.credential(htm, htu).await?;
            let token = credential.as_ref().map(|c| c.token.clone());
            let answer = send(credential).await.map_err(AuthError::Send)?;
            self.note_nonce(&answer);
            let status = answer.status();
            if status != 401 && status != 403 {
                return Ok(answer);
            }
            attempt += 1;
            // A refused token is not sent again (the agent decides what comes
            // next), nor a proof made for it ahead.
            self.cached.lock().unwrap().take();
            {
                let mut ahead = self.ahead.lock().unwrap();
                self.refusals.fetch_add(1, Ordering::AcqRel);
                ahead.take();
            }
            if attempt > MAX_REFUSALS {
                return Err(AuthError::Refused {
                    resource: self.name.clone(),
                    status,
                    message: format!(
                        "{} refused the request {MAX_REFUSALS} times ({status}); giving up",
                        self.name
                    ),
                });
            }
            let decision = self
                .agent
                .challenge(&ChallengeRequest {
                    registry: self.name.clone(),
                    status,
                    www_authenticate: answer.challenges(),
                    access_token: token.map(Into::into),
                    dpop_nonce: answer.dpop_nonce(),
                    attempt,
                })
                .await?;
            if self.notes {
                // A login this caller runs itself is announced as such, not as
                // a command for the user to type.
                let acting = decision.next == Next::Login && self.login.is_some();
                let said = match (acting, decision.reason.is_empty()) {
                    (true, false) => format!("{}; logging in", decision.reason),
                    _ => decision.message.clone(),
                };
                eprintln!("regent: {} answered {status}: {said}", self.name);
            }
            match decision.next {
                Next::Retry => {}
                Next::Login => match &self.login {
                    Some(l) => l
                        .login(&self.name, &decision.message, decision.fresh_login)
                        .await
                        .map_err(|m| AuthError::LoginNeeded {
                            resource: self.name.clone(),
                            message: m,
                        })?,
                    None => {
                        return Err(AuthError::LoginNeeded {
                            resource: self.name.clone(),
                            message: decision.message,
                        })
                    }
                },
                Next::Fail | Next::Unknown => {
                    return Err(AuthError::Refused {
                        resource: self.name.clone(),
                        status,
                        message: decision.message,
                    })
                }
            }
        }
    }
}
