//! How a resource authenticates: a sum type of the kinds regent knows,
//! each owning its token source. A new kind (client credentials, an
//! enterprise IdP) is a new variant and a module of its own here.

mod bearer;
mod client_credentials;
mod enterprise;
mod machine_key;
mod oauth;
pub mod workload;

pub use bearer::BearerFile;
pub use client_credentials::ClientCredentials;
pub use enterprise::{Enterprise, Idp};
pub use oauth::OAuthSource;
pub use workload::Workload;

use crate::ctx::Ctx;
use crate::token::{AccessToken, TokenError};
use regent_proto::{AuthConfig, AuthState};
use std::sync::Arc;
use std::time::Duration;

/// A resource's auth and its token source.
pub enum Auth {
    /// A public resource.
    None,
    /// A static Bearer token read from a file.
    Bearer(BearerFile),
    /// OAuth: a user's login, shared through a grant.
    OAuth(OAuthSource),
    /// OAuth client credentials: a machine's token.
    ClientCredentials(ClientCredentials),
    /// A token exchanged from the login at an enterprise IdP.
    Enterprise(Enterprise),
    /// A token for the machine's workload identity (a JWT bearer grant).
    Workload(Workload),
}

/// Where a resource's auth stands, for status answers.
pub struct Standing {
    /// Whether a token can be served now.
    pub status: AuthState,
    /// Expiry of the cached access token.
    pub expires_at: Option<time::OffsetDateTime>,
    /// Whether a refresh token is held.
    pub has_refresh_token: bool,
    /// Whether the tokens are in a persistent store.
    pub persisted: bool,
    /// Who is logged in.
    pub account: Option<String>,
}

impl Auth {
    /// Whether a new access token can be had without the user: a refresh
    /// token is held, or a machine's credentials mint one.
    pub fn mints_without_user(&self) -> bool {
        match self {
            Auth::OAuth(o) => o.grant.status(&o.target).has_refresh_token,
            Auth::ClientCredentials(_) | Auth::Enterprise(_) | Auth::Workload(_) => true,
            Auth::None | Auth::Bearer(_) => false,
        }
    }

    /// The configuration as given.
    pub fn config(&self) -> Option<AuthConfig> {
        match self {
            Auth::None => None,
            Auth::Bearer(b) => Some(AuthConfig::Bearer(b.config.clone())),
            Auth::OAuth(o) => Some(AuthConfig::Oauth(o.config.clone())),
            Auth::ClientCredentials(c) => Some(AuthConfig::ClientCredentials(c.config.clone())),
            Auth::Enterprise(e) => Some(AuthConfig::Enterprise(e.config.clone())),
            Auth::Workload(w) => Some(AuthConfig::Workload(w.config.clone())),
        }
    }

    /// The key the resource's tokens are bound to (DPoP), if they are.
    pub fn dpop_key(&self) -> Option<Arc<crate::oauth::dpop::DpopKey>> {
        match self {
            Auth::OAuth(o) => o.grant.dpop_key(),
            Auth::ClientCredentials(c) => c.dpop_key(),
            Auth::Workload(w) => w.dpop_key(),
            Auth::Enterprise(e) => e.dpop_key(),
            _ => None,
        }
    }

    /// The authorization server its tokens come from, if any.
    pub fn issuer(&self) -> Option<crate::oauth::Issuer> {
        match self {
            Auth::OAuth(o) => Some(o.grant.spec().issuer.clone()),
            Auth::ClientCredentials(c) => Some(ClientCredentials::issuer(&c.config)),
            Auth::Enterprise(e) => Some(Enterprise::issuer(&e.config)),
            Auth::Workload(w) => Some(Workload::issuer(&w.config)),
            Auth::None | Auth::Bearer(_) => None,
        }
    }

    /// The OAuth source, if the auth is OAuth.
    pub fn oauth(&self) -> Option<&OAuthSource> {
        match self {
            Auth::OAuth(o) => Some(o),
            _ => None,
        }
    }

    /// A token valid for `min_valid`; `None` for a public resource.
    pub async fn token(
        &self,
        ctx: &Arc<Ctx>,
        min_valid: Duration,
    ) -> Option<Result<Arc<AccessToken>, TokenError>> {
        Some(match self {
            Auth::None => return None,
            Auth::Bearer(b) => b.token(ctx).map(Arc::new),
            Auth::OAuth(o) => o.token(ctx, min_valid).await,
            Auth::ClientCredentials(c) => c.token(ctx, min_valid).await,
            Auth::Enterprise(e) => e.token(ctx, min_valid).await,
            Auth::Workload(w) => w.token(ctx, min_valid).await,
        })
    }

    /// Drops the cached token if it is `presented`.
    pub fn invalidate(&self, presented: &str) -> bool {
        match self {
            Auth::OAuth(o) => o.invalidate(presented),
            Auth::ClientCredentials(c) => c.invalidate(presented),
            Auth::Enterprise(e) => e.invalidate(presented),
            Auth::Workload(w) => w.invalidate(presented),
            Auth::None | Auth::Bearer(_) => false,
        }
    }

    /// Where the auth stands; `None` for a public resource.
    pub fn state(&self, ctx: &Ctx) -> Option<Standing> {
        match self {
            Auth::None => None,
            Auth::Bearer(b) => Some(b.state()),
            Auth::OAuth(o) => Some(o.state(ctx)),
            Auth::ClientCredentials(c) => Some(c.state()),
            Auth::Enterprise(e) => Some(e.state(ctx)),
            Auth::Workload(w) => Some(w.state()),
        }
    }
}
