//! Grants: what one login at one authorization server yields for one
//! client (a refresh token, the granted scopes, the account) and the access
//! tokens minted from it per target. Resources with the same issuer, client
//! id and scopes share one grant, so one login serves them all.
//!
//! Every use of a grant's refresh token — a refresh, a login's install, a
//! logout — holds the grant's `order` lock from reading the refresh token to
//! storing the result: they apply one after the other, a refresh never uses a
//! refresh token a login has just replaced, and a rotated refresh token is in
//! the store before anyone is answered. An epoch, bumped by logins and
//! logouts, keeps a refresh that lost the race from installing its result.

pub mod stored;

use crate::ctx::Ctx;
use crate::oauth::dpop::DpopKey;
use crate::oauth::http::with_dpop;
use crate::oauth::{self, ClientAuth, Issuer, OAuthError, ScopeRule, Target, Tokens};
use crate::store::keys;
use crate::token::{AccessToken, Cell, TokenError, Want};
use futures::FutureExt;
use secrecy::{ExposeSecret, SecretString};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use stored::{Owner, Saved};

/// What identifies a grant: the issuer, the client and the configured
/// scopes; and how to reach the issuer and choose the login's scopes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// The issuer, and where its metadata is.
    pub issuer: Issuer,
    /// The client id at the issuer.
    pub client_id: String,
    /// The configured scopes (empty: the defaults of `rule`).
    pub scopes: Vec<String>,
    /// How the login's scopes are chosen.
    pub rule: ScopeRule,
    /// The one resource of a grant that is not shared (the AS refused to
    /// mint its token from a shared one).
    pub own: Option<String>,
    /// Whether a login may bind the grant's tokens to a key (DPoP): part of
    /// the key, since a bound login is not a Bearer one.
    pub dpop: regent_proto::DpopMode,
}

impl Spec {
    /// The store key (contract).
    pub fn key(&self) -> String {
        let key = match &self.own {
            Some(r) => keys::own_grant(&self.issuer.issuer, &self.client_id, &self.scopes, r),
            None => keys::grant(&self.issuer.issuer, &self.client_id, &self.scopes),
        };
        // A login that may bind its tokens to a key is another login than a
        // Bearer one (its refresh token is worthless without the key).
        match self.dpop {
            regent_proto::DpopMode::Never => key,
            _ => keys::dpop_grant(&key),
        }
    }

    /// The client as it authenticates at the issuer.
    pub async fn client(&self, ctx: &Ctx) -> ClientAuth {
        ctx.clients
            .auth(&ctx.store, &self.issuer.issuer, &self.client_id)
            .await
    }
}

/// One grant.
pub struct Grant {
    key: String,
    spec: Spec,
    order: tokio::sync::Mutex<()>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    epoch: u64,
    refresh_token: Option<SecretString>,
    scope: Option<String>,
    account: Option<String>,
    id_token: Option<SecretString>,
    /// A login happened and was not ended (tells `expired` from `auth_required`).
    logged_in: bool,
    /// Whether the last write reached a persistent store.
    persisted: bool,
    /// The targets the login's authorization named (`None`: not recorded).
    covered: Option<std::collections::BTreeSet<Target>>,
    /// Why the login ended, when the IdP ended it (a refused refresh), said
    /// to every later caller instead of a bare "not logged in".
    ended: Option<String>,
    /// The key the login bound its tokens to (DPoP), which every refresh proves.
    dpop_key: Option<Arc<DpopKey>>,
    cells: BTreeMap<Target, Arc<Cell>>,
}

impl State {
    /// Whether a refresh may mint `target`'s token: the login named it (a
    /// target without a resource indicator is the login's own audience).
    fn covers(&self, target: &Target) -> bool {
        target.resource.is_none() || self.covered.as_ref().is_none_or(|c| c.contains(target))
    }
}

/// A grant's state for status answers.
pub struct Status {
    /// The target's access token.
    pub token: Option<Arc<AccessToken>>,
    /// Whether a refresh token is held.
    pub has_refresh_token: bool,
    /// Whether a login happened and was not ended.
    pub logged_in: bool,
    /// Whether the grant is in a persistent store.
    pub persisted: bool,
    /// Who is logged in.
    pub account: Option<String>,
    /// Whether the login named this target (else it needs a login that does).
    pub covered: bool,
}

/// What a logout took away, for revocation.
pub struct Ended {
    /// The refresh token, or else the access tokens, with their type hint.
    pub revocable: Vec<(SecretString, &'static str)>,
    /// Whether a stored entry was deleted.
    pub deleted: bool,
}

impl Grant {
    /// A grant with nothing in it yet.
    pub fn new(spec: Spec) -> Arc<Grant> {
        Arc::new(Grant {
            key: spec.key(),
            spec,
            order: tokio::sync::Mutex::new(()),
            state: Mutex::new(State::default()),
        })
    }

    /// The store key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The key its tokens are bound to (DPoP), if they are.
    pub fn dpop_key(&self) -> Option<Arc<DpopKey>> {
        self.state().dpop_key.clone()
    }

    /// What identifies it.
    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every update of State is a few assignments: a poisoned lock is still consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn owner(&self) -> Owner<'_> {
        Owner {
            issuer: &self.spec.issuer.issuer,
            client_id: &self.spec.client_id,
            scopes: &self.spec.scopes,
        }
    }

    /// The cell of `target`'s access token.
    pub fn cell(&self, target: &Target) -> Arc<Cell> {
        let mut st = self.state();
        let epoch = st.epoch;
        st.cells
            .entry(target.clone())
            .or_insert_with(|| Arc::new(Cell::new(None, epoch)))
            .clone()
    }

    /// Whether a login happened and was not ended.
    pub fn logged_in(&self) -> bool {
        self.state().logged_in
    }

    /// Loads the grant from the store (at start, or when a resource first
    /// names it). Returns whether something was there.
    pub async fn restore(&self, ctx: &Ctx) -> bool {
        let _order = self.order.lock().await;
        let Some(json) = ctx.store.load(&self.key).await else {
            return false;
        };
        match stored::from_json(&json) {
            Ok(saved) => {
                self.install(saved, ctx.store.persisting());
                true
            }
            Err(e) => {
                tracing::warn!(grant = %self.key, "ignoring the stored grant: {e}");
                false
            }
        }
    }

    /// Takes over a version 1 token set for `target` (stored under
    /// `old_key`): written under the grant's key, then deleted. A failed
    /// write keeps the old entry as it was, and the grant stays empty.
    pub async fn migrate_v1(&self, ctx: &Ctx, old_key: &str, target: &Target, resource: &str) {
        let _order = self.order.lock().await;
        let Some(json) = ctx.store.load(old_key).await else {
            return;
        };
        if self.state().logged_in {
            // Already migrated (or logged in) through another resource: the old entry is superseded.
            ctx.store.delete(old_key).await;
            tracing::info!(
                resource,
                "deleted a version 1 login superseded by the current one"
            );
            return;
        }
        let saved = match stored::from_v1_json(&json, target) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(
                    resource,
                    "cannot migrate the version 1 login ({e}); it is kept as it was"
                );
                return;
            }
        };
        if !ctx
            .store
            .save(&self.key, stored::to_json(&self.owner(), &saved))
            .await
        {
            // Never two live copies of one refresh token: drop the memory copy, keep the old entry.
            ctx.store.delete(&self.key).await;
            tracing::warn!(
                resource,
                "cannot migrate the version 1 login: the store refused the write; it is kept as it was, \
                 and the migration is tried again at the next start"
            );
            return;
        }
        ctx.store.delete(old_key).await;
        self.install(saved, true);
        tracing::info!(
            resource,
            "migrated the stored login to the version 2 format"
        );
    }

    fn install(&self, saved: Saved, persisted: bool) {
        let mut st = self.state();
        st.epoch += 1;
        let epoch = st.epoch;
        st.refresh_token = saved.refresh_token;
        st.scope = saved.scope;
        st.account = saved.account;
        st.id_token = saved.id_token;
        st.logged_in = true;
        st.persisted = persisted;
        st.covered = saved.covered;
        st.ended = None;
        st.dpop_key = saved.dpop_key;
        for cell in st.cells.values() {
            cell.reset(epoch, None);
        }
        for (target, token) in saved.tokens {
            match st.cells.get(&target) {
                Some(c) => c.reset(epoch, Some(token)),
                None => {
                    st.cells
                        .insert(target, Arc::new(Cell::new(Some(token), epoch)));
                }
            }
        }
    }

    /// Ends the epoch: every cell empty, no refresh token.
    fn end(st: &mut State) {
        st.epoch += 1;
        st.refresh_token = None;
        st.scope = None;
        st.account = None;
        st.id_token = None;
        st.logged_in = false;
        st.covered = None;
        st.ended = None;
        st.dpop_key = None;
        for cell in st.cells.values() {
            cell.reset(st.epoch, None);
        }
    }

    /// What is persisted now, with `target` holding `fresh`.
    fn saved(&self, st: &State, fresh: Option<(&Target, &AccessToken)>) -> Saved {
        let mut tokens: BTreeMap<Target, AccessToken> = st
            .cells
            .iter()
            .filter_map(|(t, c)| c.token().map(|tok| (t.clone(), (*tok).clone())))
            .collect();
        if let Some((t, tok)) = fresh {
            tokens.insert(t.clone(), tok.clone());
        }
        Saved {
            refresh_token: st.refresh_token.clone(),
            scope: st.scope.clone(),
            account: st.account.clone(),
            id_token: st.id_token.clone(),
            tokens,
            covered: st.covered.clone(),
            dpop_key: st.dpop_key.clone(),
        }
    }

    /// A token for `target` valid for `min_valid`, refreshed (once, for everyone) if needed.
    pub async fn token(
        self: &Arc<Self>,
        ctx: &Arc<Ctx>,
        target: &Target,
        min_valid: Duration,
    ) -> Result<Arc<AccessToken>, TokenError> {
        let cell = self.cell(target);
        let (can_mint, logged_in, covered, ended) = {
            let st = self.state();
            (
                st.refresh_token.is_some(),
                st.logged_in,
                st.covers(target),
                st.ended.clone(),
            )
        };
        // A resource the login did not name is never refreshed for: an AS may
        // consume the refresh token before refusing the resource, and every
        // resource sharing the login would be logged out (RFC 8707 §2.2).
        let want = Want {
            clock: &ctx.clock,
            min_valid,
            can_mint: can_mint && covered,
            why_not: if !covered && logged_in {
                "it joined this login after the login was made, so the authorization server has \
                 not granted it yet; a login that names it is needed (the others stay logged in)"
            } else if logged_in {
                "the access token was refused (or expired) and the IdP issued no refresh token"
            } else {
                ended.as_deref().unwrap_or("not logged in")
            },
        };
        let (grant, ctx2, target2) = (self.clone(), ctx.clone(), target.clone());
        cell.get(want, &ctx.tasks, move |epoch| {
            grant.refresh(ctx2, target2, epoch).boxed()
        })
        .await
    }

    /// The refresh grant for `target`, in `epoch`.
    async fn refresh(
        self: Arc<Self>,
        ctx: Arc<Ctx>,
        target: Target,
        epoch: u64,
    ) -> Result<AccessToken, TokenError> {
        let _order = self.order.lock().await;
        let (rt, key) = {
            let st = self.state();
            if st.epoch != epoch {
                return Err(TokenError::Superseded);
            }
            let rt = st
                .refresh_token
                .clone()
                .ok_or_else(|| TokenError::AuthRequired("not logged in".into()))?;
            (rt, st.dpop_key.clone())
        };
        let meta = ctx
            .issuers
            .get(&ctx.idp, &self.spec.issuer)
            .await
            .map_err(from_oauth)?;
        let client = self.spec.client(&ctx).await;
        let started = Instant::now();
        // A bound grant's refresh proves its key (RFC 9449 §5: a public
        // client's refresh token is bound too).
        let refreshed = with_dpop(
            key,
            oauth::grant::refresh(&ctx.idp, &client, &meta, &rt, &target),
        );
        match refreshed.await {
            Ok(tokens) => {
                // The instant the IdP's rotation reached us; "stored" below is the other
                // end of the one window a kill -9 can lose a rotated refresh token in.
                tracing::debug!(grant = %self.key, "the IdP answered the refresh");
                let token = access_token(&ctx, &tokens);
                let json = {
                    let mut st = self.state();
                    if let Some(rt) = tokens.refresh_token {
                        st.refresh_token = Some(rt);
                    }
                    if tokens.scope.is_some() {
                        st.scope = tokens.scope;
                    }
                    if tokens.account.is_some() {
                        st.account = tokens.account;
                    }
                    if tokens.id_token.is_some() {
                        st.id_token = tokens.id_token;
                    }
                    stored::to_json(&self.owner(), &self.saved(&st, Some((&target, &token))))
                };
                let persisted = ctx.store.save(&self.key, json).await;
                self.state().persisted = persisted;
                tracing::info!(
                    grant = %self.key,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    persisted,
                    "refreshed access token (stored)"
                );
                Ok(token)
            }
            Err(OAuthError::InvalidGrant(why)) => {
                tracing::warn!(grant = %self.key, "refresh token refused ({why}); deleting the stored grant");
                ctx.store.delete(&self.key).await;
                let why = format!("the IdP refused the refresh token ({why})");
                let mut st = self.state();
                Self::end(&mut st);
                st.ended = Some(why.clone());
                Err(TokenError::AuthRequired(why))
            }
            Err(e) => Err(from_oauth(e)),
        }
    }

    /// Installs a login's tokens (with the access token for `target`), if
    /// `still_wanted` (checked in order with refreshes and logouts): stored
    /// first, then installed. Returns whether they reached a persistent
    /// store; `None` when no longer wanted.
    pub async fn install_login(
        &self,
        ctx: &Ctx,
        target: &Target,
        also: &[Target],
        tokens: Tokens,
        still_wanted: impl FnOnce() -> bool,
    ) -> Option<bool> {
        let _order = self.order.lock().await;
        if !still_wanted() {
            return None;
        }
        let token = access_token(ctx, &tokens);
        let mut saved = Saved {
            refresh_token: tokens.refresh_token,
            scope: tokens.scope,
            account: tokens.account,
            id_token: tokens.id_token,
            tokens: BTreeMap::new(),
            covered: Some(std::iter::once(target).chain(also).cloned().collect()),
            dpop_key: tokens.dpop_key,
        };
        saved.tokens.insert(target.clone(), token);
        let persisted = ctx
            .store
            .save(&self.key, stored::to_json(&self.owner(), &saved))
            .await;
        self.install(saved, persisted);
        Some(persisted)
    }

    /// Forgets the grant (logout, or no resource uses it any more): deleted
    /// from the store; what was held is returned for revocation.
    pub async fn clear(&self, ctx: &Ctx) -> Ended {
        let _order = self.order.lock().await;
        let revocable = {
            let mut st = self.state();
            let revocable = match &st.refresh_token {
                Some(rt) => vec![(rt.clone(), "refresh_token")],
                None => st
                    .cells
                    .values()
                    .filter_map(|c| c.token())
                    .map(|t| (t.token.clone(), "access_token"))
                    .collect(),
            };
            Self::end(&mut st);
            revocable
        };
        let deleted = ctx.store.delete(&self.key).await;
        Ended { revocable, deleted }
    }

    /// Drops `target`'s access token: no resource asks for it any more.
    pub async fn forget_target(&self, ctx: &Ctx, target: &Target) {
        let _order = self.order.lock().await;
        let json = {
            let mut st = self.state();
            if st.cells.remove(target).is_none() || !st.logged_in {
                return;
            }
            stored::to_json(&self.owner(), &self.saved(&st, None))
        };
        let persisted = ctx.store.save(&self.key, json).await;
        self.state().persisted = persisted;
    }

    /// The state of `target`'s token, for status answers.
    pub fn status(&self, target: &Target) -> Status {
        let token = self.cell(target).token();
        let st = self.state();
        Status {
            token,
            has_refresh_token: st.refresh_token.is_some(),
            logged_in: st.logged_in,
            persisted: st.persisted,
            account: st.account.clone(),
            covered: st.covers(target),
        }
    }

    /// The scopes the current login was granted (or asked for, where the IdP
    /// did not say), space separated.
    pub fn granted_scope(&self) -> Option<String> {
        self.state().scope.clone()
    }

    /// An ID token valid for `min_valid` (an enterprise IdP's login, to be
    /// exchanged): the one held, else one from a refresh.
    pub async fn id_token(
        self: &Arc<Self>,
        ctx: &Arc<Ctx>,
        min_valid: Duration,
    ) -> Result<SecretString, TokenError> {
        let fresh = |t: &SecretString| {
            crate::oauth::grant::jwt_expiry(t.expose_secret())
                .is_none_or(|exp| exp > ctx.clock.now() + min_valid)
        };
        let (held, can_refresh) = {
            let st = self.state();
            (st.id_token.clone(), st.refresh_token.is_some())
        };
        match held {
            Some(t) if fresh(&t) => return Ok(t),
            _ if !can_refresh => {
                return Err(TokenError::AuthRequired(
                    "no valid ID token is held (log in at the IdP, or hand one over with --id-token-file)".into(),
                ))
            }
            _ => {}
        }
        // A refresh of the IdP grant brings a new ID token (OIDC Core §12.2).
        let cell = self.cell(&Target::default());
        let epoch = self.state().epoch;
        cell.reset(epoch, None);
        self.token(ctx, &Target::default(), Duration::ZERO).await?;
        match self.state().id_token.clone() {
            Some(t) if fresh(&t) => Ok(t),
            _ => Err(TokenError::AuthRequired(
                "the IdP's refresh brought no new ID token; log in at the IdP again".into(),
            )),
        }
    }

    /// Takes an ID token the user already has as this grant's login.
    pub async fn install_id_token(&self, ctx: &Ctx, id_token: SecretString) -> bool {
        let _order = self.order.lock().await;
        let saved = Saved {
            account: crate::oauth::grant::account_from_id_token(id_token.expose_secret()),
            id_token: Some(id_token),
            ..Saved::default()
        };
        let persisted = ctx
            .store
            .save(&self.key, stored::to_json(&self.owner(), &saved))
            .await;
        self.install(saved, persisted);
        persisted
    }

    /// Drops `target`'s access token if it is `presented`.
    pub fn invalidate(&self, target: &Target, presented: &str) -> bool {
        self.cell(target).invalidate(presented)
    }
}

/// The access token of a token answer, timed by the agent's clock.
fn access_token(ctx: &Ctx, tokens: &Tokens) -> AccessToken {
    let now = ctx.clock.now();
    AccessToken {
        token: tokens.access_token.clone(),
        expires_at: tokens.expires_in.map(|d| now + d),
        obtained_at: now,
        scope: tokens.scope.clone(),
    }
}

/// An IdP failure as a token failure.
pub fn from_oauth(e: OAuthError) -> TokenError {
    match e {
        OAuthError::Unavailable(m) => TokenError::Unavailable(m),
        OAuthError::InvalidGrant(m) => TokenError::AuthRequired(m),
        OAuthError::Protocol { code, description } => TokenError::Idp { code, description },
        OAuthError::Config(m) => TokenError::Config(m),
    }
}
