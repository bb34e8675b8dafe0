//! The token cell: the state machine of one target's access token. It
//! serves a fresh token at once, makes callers inside the refresh-ahead
//! window wait (bounded) for the one refresh, runs at most one refresh at a
//! time for every caller (single flight), remembers failures briefly and backs
//! off. How a token is minted is the caller's business ([`Mint`]).

use super::{AccessToken, TokenError};
use crate::clock::Clock;
use futures::future::{BoxFuture, FutureExt, Shared};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::task::TaskTracker;

/// A refresh in flight, shared by every caller waiting for it.
type Flight = Shared<BoxFuture<'static, Result<Arc<AccessToken>, TokenError>>>;

/// Gets a new token for the cell's epoch. It runs in a task of its own, so
/// it finishes (and persists what it got) even when every caller goes away.
pub type Mint = BoxFuture<'static, Result<AccessToken, TokenError>>;

/// Within this time after a failed refresh, callers get that failure again
/// instead of a new IdP request: at most one attempt per second when down.
pub const FAILURE_REUSE: Duration = Duration::from_secs(1);
/// Bounds of the refresh-ahead backoff after failures.
const BACKOFF_MIN: Duration = Duration::from_secs(2);
const BACKOFF_MAX: Duration = Duration::from_secs(120);

/// What a caller asks for.
pub struct Want<'a> {
    /// The clock to judge expiry by.
    pub clock: &'a Clock,
    /// How long the token must stay valid.
    pub min_valid: Duration,
    /// Whether a new token can be minted without the user (a refresh token is held).
    pub can_mint: bool,
    /// Why not, when it cannot (said to the caller who needs one).
    pub why_not: &'a str,
}

/// One target's access token and the refresh in flight, if any.
#[derive(Default)]
pub struct Cell {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    token: Option<Arc<AccessToken>>,
    /// Set by the layer above on every login and logout: a refresh that
    /// started in an older epoch installs nothing.
    epoch: u64,
    flight: Option<Flight>,
    last_failure: Option<(Instant, TokenError)>,
    failures: u32,
    backoff_until: Option<Instant>,
}

impl Cell {
    /// A cell holding `token`, in `epoch`.
    pub fn new(token: Option<AccessToken>, epoch: u64) -> Cell {
        Cell {
            inner: Mutex::new(Inner {
                token: token.map(Arc::new),
                epoch,
                ..Inner::default()
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere never leaves Inner half-updated (every update is
        // a few assignments), so a poisoned lock is still sound to use.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current token, if any.
    pub fn token(&self) -> Option<Arc<AccessToken>> {
        self.lock().token.clone()
    }

    /// Starts `epoch` with `token`: the refresh in flight (if any) will not
    /// install its result, and the failure history is forgotten.
    pub fn reset(&self, epoch: u64, token: Option<AccessToken>) {
        let mut inner = self.lock();
        *inner = Inner {
            token: token.map(Arc::new),
            epoch,
            ..Inner::default()
        };
    }

    /// Drops the token if it is `presented` (a resource server refused it),
    /// so the next request mints a new one. Returns whether it was.
    pub fn invalidate(&self, presented: &str) -> bool {
        use secrecy::ExposeSecret;
        let mut inner = self.lock();
        let matches = inner.token.as_ref().is_some_and(|t| {
            crate::security::constant_time_eq(
                t.token.expose_secret().as_bytes(),
                presented.as_bytes(),
            )
        });
        if matches {
            inner.token = None;
        }
        matches
    }

    /// A token for `want`; `mint` is called (at most once) when a new one is needed.
    pub async fn get(
        self: &Arc<Self>,
        want: Want<'_>,
        tasks: &TaskTracker,
        mint: impl FnOnce(u64) -> Mint,
    ) -> Result<Arc<AccessToken>, TokenError> {
        let now = want.clock.now();
        let (flight, fallback) = {
            let mut inner = self.lock();
            match inner.token.clone() {
                Some(t) if t.satisfies(want.min_valid, now) => {
                    let ahead = want.can_mint
                        && t.in_refresh_window(now)
                        && inner.backoff_until.is_none_or(|u| Instant::now() >= u);
                    if !ahead {
                        return Ok(t);
                    }
                    // Some IdPs revoke the old token the moment they rotate: a
                    // caller in the window waits for the new one, bounded.
                    let wait = t.window_wait(want.min_valid, now);
                    tracing::trace!("token in its refresh-ahead window: waiting for the refresh");
                    (self.flight(&mut inner, tasks, mint), Some((t, wait)))
                }
                Some(t) if !want.can_mint => {
                    return if t.usable(now) {
                        Ok(t)
                    } else {
                        Err(TokenError::AuthRequired(
                            "the access token has expired (or was refused) and the IdP issued no refresh token".into(),
                        ))
                    };
                }
                None if !want.can_mint => {
                    return Err(TokenError::AuthRequired(want.why_not.into()));
                }
                current => {
                    if inner.flight.is_none() {
                        if let Some((at, err)) = &inner.last_failure {
                            if at.elapsed() < FAILURE_REUSE {
                                return serve_usable(current, err.clone(), now);
                            }
                        }
                    }
                    tracing::trace!("token request waits for the refresh in flight");
                    (self.flight(&mut inner, tasks, mint), None)
                }
            }
        };
        match fallback {
            Some((old, wait)) => match tokio::time::timeout(wait, flight).await {
                Ok(Ok(new)) => Ok(new),
                // Failed or late: the old token is still good for this caller.
                _ => Ok(old),
            },
            None => match flight.await {
                Ok(t) => Ok(t),
                Err(e) => serve_usable(self.token(), e, want.clock.now()),
            },
        }
    }

    /// The refresh in flight, or a new one.
    fn flight(
        self: &Arc<Self>,
        inner: &mut Inner,
        tasks: &TaskTracker,
        mint: impl FnOnce(u64) -> Mint,
    ) -> Flight {
        if let Some(f) = &inner.flight {
            return f.clone();
        }
        let epoch = inner.epoch;
        let minting = mint(epoch);
        let cell = self.clone();
        let task = tasks.spawn(async move {
            let r = minting.await;
            cell.complete(epoch, r)
        });
        let flight = async move {
            task.await.unwrap_or_else(|e| {
                Err(TokenError::Internal(format!(
                    "the refresh task failed: {e}"
                )))
            })
        }
        .boxed()
        .shared();
        inner.flight = Some(flight.clone());
        flight
    }

    /// Installs a refresh's result, unless a login or logout came first.
    fn complete(
        &self,
        epoch: u64,
        r: Result<AccessToken, TokenError>,
    ) -> Result<Arc<AccessToken>, TokenError> {
        let mut inner = self.lock();
        if inner.epoch == epoch {
            inner.flight = None;
        }
        if inner.epoch != epoch || matches!(r, Err(TokenError::Superseded)) {
            return match r {
                // The refresh itself ended the epoch (the IdP refused the refresh token).
                Err(e) if e != TokenError::Superseded => Err(e),
                // A login or logout came first: its state is the answer.
                _ => inner.token.clone().ok_or_else(|| {
                    TokenError::AuthRequired("logged out during the refresh".into())
                }),
            };
        }
        match r {
            Ok(t) => {
                let t = Arc::new(t);
                inner.token = Some(t.clone());
                inner.last_failure = None;
                inner.failures = 0;
                inner.backoff_until = None;
                Ok(t)
            }
            Err(e) => {
                inner.failures = inner.failures.saturating_add(1);
                let backoff = backoff(inner.failures);
                let at = Instant::now();
                inner.backoff_until = Some(at + backoff);
                inner.last_failure = Some((at, e.clone()));
                tracing::debug!(
                    refresh_ahead_again_in_s = backoff.as_secs(),
                    "refresh failed: {e}"
                );
                Err(e)
            }
        }
    }
}

/// After a failed refresh: the token if it has not expired and the failure
/// may pass (an outage), else the failure.
fn serve_usable(
    token: Option<Arc<AccessToken>>,
    err: TokenError,
    now: time::OffsetDateTime,
) -> Result<Arc<AccessToken>, TokenError> {
    match token {
        Some(t) if err.is_transient() && t.usable(now) => Ok(t),
        _ => Err(err),
    }
}

/// Exponential backoff with jitter for refreshes ahead of expiry.
fn backoff(failures: u32) -> Duration {
    let base = BACKOFF_MIN
        .saturating_mul(1u32 << failures.min(10).saturating_sub(1))
        .min(BACKOFF_MAX);
    base.mul_f64(rand::random::<f64>() * 0.5 + 0.75)
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::{ExposeSecret, SecretString};
    use std::sync::atomic::{AtomicU32, Ordering};
    use time::macros::datetime;

    fn clock() -> Clock {
        Clock::tokio_at(datetime!(2026-01-01 00:00:00 UTC))
    }

    fn token(clock: &Clock, name: &str, life: u64) -> AccessToken {
        let now = clock.now();
        AccessToken {
            token: SecretString::from(name.to_string()),
            expires_at: Some(now + Duration::from_secs(life)),
            obtained_at: now,
            scope: None,
        }
    }

    /// A mint that counts its calls, takes `delay`, and answers `answer`.
    fn minter(
        clock: &Clock,
        calls: &Arc<AtomicU32>,
        delay: Duration,
        answer: Result<&'static str, TokenError>,
    ) -> impl FnOnce(u64) -> Mint {
        let (clock, calls) = (clock.clone(), calls.clone());
        move |_epoch| {
            async move {
                let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
                tokio::time::sleep(delay).await;
                answer.map(|name| token(&clock, &format!("{name}-{n}"), 100))
            }
            .boxed()
        }
    }

    fn want(clock: &Clock, can_mint: bool) -> Want<'_> {
        Want {
            clock,
            min_valid: Duration::from_secs(30),
            can_mint,
            why_not: "not logged in",
        }
    }

    fn name(t: &AccessToken) -> String {
        t.token.expose_secret().to_string()
    }

    #[tokio::test(start_paused = true)]
    async fn a_fresh_token_is_served_without_minting() {
        let clock = clock();
        let cell = Arc::new(Cell::new(Some(token(&clock, "t", 100)), 0));
        let calls = Arc::new(AtomicU32::new(0));
        let tasks = TaskTracker::new();
        let t = cell
            .get(
                want(&clock, true),
                &tasks,
                minter(&clock, &calls, Duration::ZERO, Ok("new")),
            )
            .await
            .unwrap();
        assert_eq!(name(&t), "t");
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn many_callers_on_an_expired_token_share_one_mint() {
        let clock = clock();
        let cell = Arc::new(Cell::new(Some(token(&clock, "t", 10)), 0));
        tokio::time::advance(Duration::from_secs(11)).await;
        let calls = Arc::new(AtomicU32::new(0));
        let tasks = TaskTracker::new();
        let gets = (0..100).map(|_| {
            cell.get(
                want(&clock, true),
                &tasks,
                minter(&clock, &calls, Duration::from_millis(500), Ok("new")),
            )
        });
        let got = futures::future::join_all(gets).await;
        assert!(got.iter().all(|t| name(t.as_ref().unwrap()) == "new-1"));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_caller_in_the_window_waits_for_the_new_token_bounded() {
        let clock = clock();
        // 1000 s lifetime: the window is its last 200 s.
        let cell = Arc::new(Cell::new(Some(token(&clock, "old", 1000)), 0));
        tokio::time::advance(Duration::from_secs(850)).await;
        let calls = Arc::new(AtomicU32::new(0));
        let tasks = TaskTracker::new();
        // A quick refresh: the caller gets the new token, never the old one.
        let t = cell
            .get(
                want(&clock, true),
                &tasks,
                minter(&clock, &calls, Duration::from_millis(300), Ok("new")),
            )
            .await
            .unwrap();
        assert_eq!(name(&t), "new-1");

        // A refresh slower than the 2 s bound: the old token, on time; the
        // refresh still lands.
        let cell = Arc::new(Cell::new(Some(token(&clock, "old", 1000)), 0));
        tokio::time::advance(Duration::from_secs(850)).await;
        let started = Instant::now();
        let t = cell
            .get(
                want(&clock, true),
                &tasks,
                minter(&clock, &calls, Duration::from_secs(5), Ok("slow")),
            )
            .await
            .unwrap();
        assert_eq!(name(&t), "old");
        assert_eq!(started.elapsed(), Duration::from_secs(2));
        tokio::time::advance(Duration::from_secs(4)).await;
        tasks.close();
        tasks.wait().await;
        assert_eq!(name(&cell.token().unwrap()), "slow-2");
    }

    #[tokio::test(start_paused = true)]
    async fn the_wait_never_runs_past_what_the_caller_needs() {
        let clock = clock();
        let cell = Arc::new(Cell::new(Some(token(&clock, "old", 1000)), 0));
        // 31 s left, 30 s needed: one second of waiting at most.
        tokio::time::advance(Duration::from_secs(969)).await;
        let calls = Arc::new(AtomicU32::new(0));
        let tasks = TaskTracker::new();
        let started = Instant::now();
        let t = cell
            .get(
                want(&clock, true),
                &tasks,
                minter(&clock, &calls, Duration::from_secs(5), Ok("new")),
            )
            .await
            .unwrap();
        assert_eq!(name(&t), "old");
        assert_eq!(started.elapsed(), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn failures_are_reused_for_a_second_and_the_window_backs_off() {
        let clock = clock();
        let tasks = TaskTracker::new();
        let calls = Arc::new(AtomicU32::new(0));
        let down = || Err(TokenError::Unavailable("down".into()));
        // Expired token, IdP down: the error, then the same error without a new request.
        let cell = Arc::new(Cell::new(Some(token(&clock, "old", 10)), 0));
        tokio::time::advance(Duration::from_secs(11)).await;
        for _ in 0..3 {
            let e = cell
                .get(
                    want(&clock, true),
                    &tasks,
                    minter(&clock, &calls, Duration::ZERO, down()),
                )
                .await
                .unwrap_err();
            assert_eq!(e, TokenError::Unavailable("down".into()));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        tokio::time::advance(FAILURE_REUSE).await;
        let _ = cell
            .get(
                want(&clock, true),
                &tasks,
                minter(&clock, &calls, Duration::ZERO, down()),
            )
            .await;
        assert_eq!(calls.load(Ordering::SeqCst), 2);

        // In the window with the IdP down: the old token at once, no new attempt until the backoff passes.
        let cell = Arc::new(Cell::new(Some(token(&clock, "old", 1000)), 0));
        tokio::time::advance(Duration::from_secs(850)).await;
        calls.store(0, Ordering::SeqCst);
        for _ in 0..5 {
            let t = cell
                .get(
                    want(&clock, true),
                    &tasks,
                    minter(&clock, &calls, Duration::ZERO, down()),
                )
                .await
                .unwrap();
            assert_eq!(name(&t), "old");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        tokio::time::advance(BACKOFF_MIN.mul_f64(1.3)).await;
        let _ = cell
            .get(
                want(&clock, true),
                &tasks,
                minter(&clock, &calls, Duration::ZERO, down()),
            )
            .await;
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn an_outage_serves_the_still_valid_token_and_a_refusal_does_not() {
        let clock = clock();
        let tasks = TaskTracker::new();
        let calls = Arc::new(AtomicU32::new(0));
        let cell = Arc::new(Cell::new(Some(token(&clock, "old", 100)), 0));
        tokio::time::advance(Duration::from_secs(75)).await;
        // 25 s left, 30 s wanted: a refresh is needed; it fails; the token still works.
        let t = cell
            .get(
                want(&clock, true),
                &tasks,
                minter(
                    &clock,
                    &calls,
                    Duration::ZERO,
                    Err(TokenError::Unavailable("down".into())),
                ),
            )
            .await
            .unwrap();
        assert_eq!(name(&t), "old");
        tokio::time::advance(FAILURE_REUSE).await;
        let e = cell
            .get(
                want(&clock, true),
                &tasks,
                minter(
                    &clock,
                    &calls,
                    Duration::ZERO,
                    Err(TokenError::AuthRequired("refused".into())),
                ),
            )
            .await
            .unwrap_err();
        assert_eq!(e, TokenError::AuthRequired("refused".into()));
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_way_to_mint_the_token_is_served_until_it_expires() {
        let clock = clock();
        let tasks = TaskTracker::new();
        let calls = Arc::new(AtomicU32::new(0));
        let cell = Arc::new(Cell::new(Some(token(&clock, "only", 10)), 0));
        tokio::time::advance(Duration::from_secs(9)).await;
        let t = cell
            .get(
                want(&clock, false),
                &tasks,
                minter(&clock, &calls, Duration::ZERO, Ok("x")),
            )
            .await
            .unwrap();
        assert_eq!(name(&t), "only");
        tokio::time::advance(Duration::from_secs(2)).await;
        let e = cell
            .get(
                want(&clock, false),
                &tasks,
                minter(&clock, &calls, Duration::ZERO, Ok("x")),
            )
            .await
            .unwrap_err();
        assert!(matches!(e, TokenError::AuthRequired(m) if m.contains("no refresh token")));
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_reset_during_a_refresh_keeps_the_refresh_from_installing() {
        let clock = clock();
        let tasks = TaskTracker::new();
        let calls = Arc::new(AtomicU32::new(0));
        let cell = Arc::new(Cell::new(None, 0));
        let waiting = {
            let (cell, clock, calls, tasks) =
                (cell.clone(), clock.clone(), calls.clone(), tasks.clone());
            tokio::spawn(async move {
                cell.get(
                    want(&clock, true),
                    &tasks,
                    minter(&clock, &calls, Duration::from_secs(1), Ok("stale")),
                )
                .await
            })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        // A login lands meanwhile.
        cell.reset(1, Some(token(&clock, "login", 100)));
        let t = waiting.await.unwrap().unwrap();
        assert_eq!(name(&t), "login");
        assert_eq!(name(&cell.token().unwrap()), "login");
    }

    #[test]
    fn backoff_grows_and_is_bounded() {
        assert!(backoff(1) <= Duration::from_secs(3));
        assert!(backoff(3) >= Duration::from_secs(6));
        assert!(backoff(30) <= BACKOFF_MAX.mul_f64(1.25));
    }

    #[test]
    fn invalidate_drops_only_the_token_presented() {
        let clock = Clock::System;
        let cell = Cell::new(Some(token(&clock, "t1", 100)), 0);
        assert!(!cell.invalidate("other"));
        assert!(cell.token().is_some());
        assert!(cell.invalidate("t1"));
        assert!(cell.token().is_none());
    }
}
