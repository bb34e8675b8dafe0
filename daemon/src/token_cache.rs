//! The per-registry token cell: memory hit, refresh-ahead, and single-flight
//! refresh whose result is persisted before any caller sees it.

use crate::agent::Agent;
use crate::error::ApiError;
use crate::oauth::{grant, OAuthError};
use crate::registry::Registry;
use crate::tokens::TokenSet;
use futures::future::{BoxFuture, FutureExt, Shared};
use regent_proto::ErrorCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use time::OffsetDateTime;

type Flight = Shared<BoxFuture<'static, Result<Arc<TokenSet>, ApiError>>>;

/// Within this time after a failed refresh, callers get that failure again
/// instead of a new IdP request: at most one attempt per second when down.
const FAILURE_REUSE: Duration = Duration::from_secs(1);
/// Bounds of the background (refresh-ahead) backoff.
const BACKOFF_MIN: Duration = Duration::from_secs(2);
const BACKOFF_MAX: Duration = Duration::from_secs(120);

/// Tokens of one registry and the refresh in flight, if any.
#[derive(Default)]
pub struct TokenCell {
    inner: Mutex<Inner>,
    /// Held while a token set is written to the store and installed, so
    /// logins, refreshes and logouts of one registry apply in order.
    persist: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct Inner {
    set: Option<Arc<TokenSet>>,
    persisted: bool,
    flight: Option<Flight>,
    /// Bumped by login, logout and removal: a refresh that started in an
    /// older generation must not install its result.
    generation: u64,
    last_failure: Option<(Instant, ApiError)>,
    failures: u32,
    backoff_until: Option<Instant>,
}

/// A snapshot for status answers.
pub struct CellStatus {
    /// The current token set.
    pub set: Option<Arc<TokenSet>>,
    /// Whether it is in a persistent store.
    pub persisted: bool,
}

impl TokenCell {
    /// The current tokens and whether they are persisted.
    pub fn status(&self) -> CellStatus {
        let inner = self.inner.lock().unwrap();
        CellStatus {
            set: inner.set.clone(),
            persisted: inner.persisted,
        }
    }

    /// Installs tokens restored from the store at start.
    pub fn restore(&self, set: TokenSet, persisted: bool) {
        let mut inner = self.inner.lock().unwrap();
        inner.set = Some(Arc::new(set));
        inner.persisted = persisted;
    }

    /// Drops the cached access token if it is `token`, so the next request refreshes.
    pub fn invalidate(&self, token: &str) -> bool {
        use secrecy::ExposeSecret;
        let mut inner = self.inner.lock().unwrap();
        let Some(set) = &inner.set else { return false };
        let matches = set.access_token.as_ref().is_some_and(|t| {
            crate::security::constant_time_eq(t.expose_secret().as_bytes(), token.as_bytes())
        });
        if matches {
            let mut s = (**set).clone();
            s.access_token = None;
            inner.set = Some(Arc::new(s));
        }
        matches
    }

    /// Replaces the tokens after a login, if `still_wanted` (checked in
    /// order with refreshes and logouts): persisted first, then installed.
    /// Returns whether they reached a persistent store, `None` if not wanted.
    pub async fn install_login(
        &self,
        agent: &Agent,
        key: &str,
        set: TokenSet,
        still_wanted: impl FnOnce() -> bool,
    ) -> Option<bool> {
        let _order = self.persist.lock().await;
        if !still_wanted() {
            return None;
        }
        self.bump();
        let persisted = agent.store.save(key, set.to_json()).await;
        let mut inner = self.inner.lock().unwrap();
        inner.set = Some(Arc::new(set));
        inner.persisted = persisted;
        Some(persisted)
    }

    /// Forgets the tokens (logout, removal): deletes them from the store and
    /// returns what was held, for revocation.
    pub async fn clear(&self, agent: &Agent, key: &str) -> (Option<Arc<TokenSet>>, bool) {
        let _order = self.persist.lock().await;
        self.bump();
        let old = self.inner.lock().unwrap().set.take();
        let deleted = agent.store.delete(key).await;
        (old, deleted)
    }

    fn bump(&self) {
        let mut inner = self.inner.lock().unwrap();
        inner.generation += 1;
        inner.flight = None;
        inner.last_failure = None;
        inner.failures = 0;
        inner.backoff_until = None;
    }
}

/// A token for `reg` valid for `min_valid`, refreshing (once, for everyone) if needed.
pub async fn get(
    agent: &Arc<Agent>,
    reg: &Arc<Registry>,
    min_valid: Duration,
) -> Result<Arc<TokenSet>, ApiError> {
    let oauth = reg.oauth()?;
    let flight = {
        let mut inner = oauth.tokens.inner.lock().unwrap();
        let now = OffsetDateTime::now_utc();
        match inner.set.clone() {
            Some(set) if set.satisfies(min_valid, now) => {
                if set.wants_refresh_ahead(now)
                    && inner.flight.is_none()
                    && inner.backoff_until.is_none_or(|t| Instant::now() >= t)
                {
                    tracing::debug!(registry = %reg.name, "refreshing ahead of expiry");
                    // The task runs on its own; this caller is served the current token now.
                    let _background = start_flight(agent, reg, &mut inner);
                }
                return Ok(set);
            }
            Some(set) if set.refresh_token.is_some() => {}
            // Nothing to refresh with: the token is served until it expires.
            Some(set) if set.usable(now) => return Ok(set),
            Some(_) => return Err(ApiError::auth_required(
                &reg.name,
                "the access token has expired (or was refused) and the IdP issued no refresh token",
            )),
            None => {
                return Err(ApiError::auth_required(
                    &reg.name,
                    &format!("not logged in to registry {}", reg.name),
                ))
            }
        }
        match (&inner.flight, &inner.last_failure) {
            (Some(f), _) => f.clone(),
            (None, Some((at, err))) if at.elapsed() < FAILURE_REUSE => {
                let err = err.clone();
                return serve_usable(&inner, err);
            }
            (None, _) => start_flight(agent, reg, &mut inner),
        }
    };
    match flight.await {
        Ok(set) => Ok(set),
        Err(e) => serve_usable(&oauth.tokens.inner.lock().unwrap(), e),
    }
}

/// After a failed refresh: the access token if it has not expired yet, else the error.
fn serve_usable(inner: &Inner, err: ApiError) -> Result<Arc<TokenSet>, ApiError> {
    let retryable = matches!(err.code, ErrorCode::IdpUnavailable | ErrorCode::IdpError);
    match &inner.set {
        Some(set) if retryable && set.usable(OffsetDateTime::now_utc()) => Ok(set.clone()),
        _ => Err(err),
    }
}

/// Starts the one refresh of this generation in its own task, so it finishes
/// (and persists) even if every caller goes away.
fn start_flight(agent: &Arc<Agent>, reg: &Arc<Registry>, inner: &mut Inner) -> Flight {
    let generation = inner.generation;
    let task = agent
        .tasks
        .spawn(refresh(agent.clone(), reg.clone(), generation));
    let flight = async move {
        task.await
            .unwrap_or_else(|e| Err(ApiError::internal(format!("refresh task failed: {e}"))))
    }
    .boxed()
    .shared();
    inner.flight = Some(flight.clone());
    flight
}

/// The refresh itself. It holds the cell's `persist` lock from before it reads
/// the refresh token until the result is stored, so a login, logout or removal
/// waits for a refresh already at the IdP (and revokes what it produced), and
/// a refresh never uses a refresh token that a login has just replaced.
async fn refresh(
    agent: Arc<Agent>,
    reg: Arc<Registry>,
    generation: u64,
) -> Result<Arc<TokenSet>, ApiError> {
    let oauth = reg.oauth()?;
    let cell = &oauth.tokens;
    let _order = cell.persist.lock().await;
    let previous = {
        let inner = cell.inner.lock().unwrap();
        if inner.generation != generation {
            // A login or logout came first: its state is the answer.
            let now = OffsetDateTime::now_utc();
            return match &inner.set {
                Some(set) if set.usable(now) => Ok(set.clone()),
                _ => Err(ApiError::auth_required(
                    &reg.name,
                    &format!("not logged in to registry {}", reg.name),
                )),
            };
        }
        inner.set.clone()
    };
    let Some(previous) = previous else {
        return Err(ApiError::auth_required(&reg.name, "not logged in"));
    };
    let started = Instant::now();
    let outcome = match agent.metadata(&reg).await {
        Ok(meta) => grant::refresh(&agent.idp, &oauth.config, &meta, &previous).await,
        Err(e) => Err(e),
    };
    match outcome {
        Ok(set) => {
            // Persist before anyone is answered: a rotated refresh token must never be lost.
            let persisted = agent.store.save(&oauth.key, set.to_json()).await;
            let set = Arc::new(set);
            let mut inner = cell.inner.lock().unwrap();
            inner.set = Some(set.clone());
            inner.persisted = persisted;
            inner.flight = None;
            inner.last_failure = None;
            inner.failures = 0;
            inner.backoff_until = None;
            tracing::info!(
                registry = %reg.name,
                elapsed_ms = started.elapsed().as_millis() as u64,
                persisted,
                "refreshed access token"
            );
            Ok(set)
        }
        Err(OAuthError::InvalidGrant(why)) => {
            tracing::warn!(registry = %reg.name, "refresh token refused ({why}); deleting stored tokens");
            agent.store.delete(&oauth.key).await;
            let mut inner = cell.inner.lock().unwrap();
            inner.set = None;
            inner.flight = None;
            Err(ApiError::auth_required(
                &reg.name,
                &format!("the IdP refused the refresh token ({why})"),
            ))
        }
        Err(e) => {
            let err = crate::agent::oauth_error(e, &reg.name);
            let mut inner = cell.inner.lock().unwrap();
            inner.failures = inner.failures.saturating_add(1);
            let backoff = backoff(inner.failures);
            tracing::warn!(
                registry = %reg.name,
                retry_ahead_in_s = backoff.as_secs(),
                "refresh failed: {}",
                err.message
            );
            inner.backoff_until = Some(Instant::now() + backoff);
            inner.last_failure = Some((Instant::now(), err.clone()));
            inner.flight = None;
            Err(err)
        }
    }
}

/// Exponential backoff with jitter for background refreshes.
fn backoff(failures: u32) -> Duration {
    let base = BACKOFF_MIN
        .saturating_mul(1u32 << failures.min(10).saturating_sub(1))
        .min(BACKOFF_MAX);
    let jitter = rand::random::<f64>() * 0.5 + 0.75;
    base.mul_f64(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_bounded() {
        assert!(backoff(1) <= Duration::from_secs(3));
        assert!(backoff(3) >= Duration::from_secs(6));
        assert!(backoff(30) <= BACKOFF_MAX.mul_f64(1.25));
    }
}
