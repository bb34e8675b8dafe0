//! OAuth through a user's login: the resource's target at a (shared) grant.

use super::Standing;
use crate::ctx::Ctx;
use crate::grant::{Grant, Spec};
use crate::oauth::{Issuer, Pkce, ScopeRule, Target};
use crate::token::{AccessToken, TokenError};
use regent_proto::DpopMode;
use regent_proto::{AuthState, OAuthConfig};
use std::sync::Arc;
use std::time::Duration;

/// The token source of an OAuth resource.
pub struct OAuthSource {
    /// The configuration as given.
    pub config: OAuthConfig,
    /// The grant it shares with every resource of the same issuer, client and scopes.
    pub grant: Arc<Grant>,
    /// What its access tokens are for.
    pub target: Target,
}

impl OAuthSource {
    /// The grant a configuration names.
    pub fn spec(config: &OAuthConfig, resource: &str) -> Spec {
        Spec {
            issuer: Issuer {
                issuer: config.issuer.clone(),
                metadata_url: config.metadata_url.clone(),
                endpoints: config.endpoints.clone(),
                pkce: if config.assume_pkce_s256 {
                    Pkce::Assumed
                } else {
                    Pkce::Required
                },
            },
            client_id: config.client_id.clone(),
            scopes: config.scopes.clone(),
            rule: if config.discovered {
                ScopeRule::Discovered
            } else {
                ScopeRule::Configured
            },
            // A login of its own: named by its resource indicator, or by its name.
            own: config.own_grant.then(|| {
                config
                    .resource
                    .clone()
                    .unwrap_or_else(|| resource.to_string())
            }),
            // What a login may do: `auto` binds only for a resource whose
            // metadata names DPoP (and then only where the AS offers it).
            dpop: match config.dpop {
                DpopMode::Auto if !config.resource_dpop => DpopMode::Never,
                m => m,
            },
        }
    }

    /// The target a configuration names.
    pub fn target(config: &OAuthConfig) -> Target {
        Target {
            resource: config.resource.clone(),
            audience: config.audience.clone(),
        }
    }

    /// A token valid for `min_valid`.
    pub async fn token(
        &self,
        ctx: &Arc<Ctx>,
        min_valid: Duration,
    ) -> Result<Arc<AccessToken>, TokenError> {
        self.grant.token(ctx, &self.target, min_valid).await
    }

    /// Drops the cached access token if it is `presented`.
    pub fn invalidate(&self, presented: &str) -> bool {
        self.grant.invalidate(&self.target, presented)
    }

    /// Where the login stands. `authenticated`: a token can be served without
    /// the user; `expired`: there was a login, but its access token expired and
    /// no refresh token is left; `auth_required`: no login.
    pub fn state(&self, ctx: &Ctx) -> Standing {
        let s = self.grant.status(&self.target);
        let now = ctx.clock.now();
        let usable = s.token.as_ref().is_some_and(|t| t.usable(now));
        // Not named by the login: nothing can be minted for it without one.
        let can_refresh = s.has_refresh_token && s.covered;
        let status = if can_refresh || usable {
            AuthState::Authenticated
        } else if s.logged_in {
            AuthState::Expired
        } else {
            AuthState::AuthRequired
        };
        Standing {
            status,
            expires_at: s.token.as_ref().and_then(|t| t.expires_at),
            has_refresh_token: can_refresh,
            persisted: s.logged_in && s.persisted && ctx.store.persisting(),
            account: s.account,
        }
    }
}
