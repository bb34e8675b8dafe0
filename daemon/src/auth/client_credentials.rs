//! Client credentials: a machine's token, no user and no refresh token.
//! The client's secret or private key is in the store; tokens are minted
//! again when they run out (the same cell rules: single flight, refresh
//! ahead, backoff).

use super::machine_key::MachineKey;
use super::Standing;
use crate::ctx::Ctx;
use crate::grant::from_oauth;
use crate::oauth::dpop::DpopKey;
use crate::oauth::{exchange, Issuer, Target};
use crate::token::{AccessToken, Cell, TokenError, Want};
use futures::FutureExt;
use regent_proto::{AuthState, ClientCredentialsConfig};
use std::sync::Arc;
use std::time::Duration;

/// The token source of a client-credentials resource.
pub struct ClientCredentials {
    /// The configuration.
    pub config: ClientCredentialsConfig,
    cell: Arc<Cell>,
    /// The key its tokens are bound to (DPoP), once the AS bound one.
    key: Arc<MachineKey>,
}

impl ClientCredentials {
    /// A source with nothing minted yet.
    pub fn new(config: ClientCredentialsConfig) -> ClientCredentials {
        ClientCredentials {
            config,
            cell: Arc::new(Cell::default()),
            key: Arc::default(),
        }
    }

    /// The key its tokens are bound to (DPoP), if they are.
    pub fn dpop_key(&self) -> Option<Arc<DpopKey>> {
        self.key.get()
    }

    /// Where the AS is (no authorization code flow runs there).
    pub fn issuer(config: &ClientCredentialsConfig) -> Issuer {
        Issuer::without_code_flow(&config.issuer, config.metadata_url.as_deref())
    }

    /// A token valid for `min_valid`.
    pub async fn token(
        &self,
        ctx: &Arc<Ctx>,
        min_valid: Duration,
    ) -> Result<Arc<AccessToken>, TokenError> {
        let want = Want {
            clock: &ctx.clock,
            min_valid,
            can_mint: true,
            why_not: "",
        };
        let (ctx2, config, key) = (ctx.clone(), self.config.clone(), self.key.clone());
        self.cell
            .get(want, &ctx.tasks, move |_epoch| {
                mint(ctx2, config, key).boxed()
            })
            .await
    }

    /// Drops the cached token if it is `presented`.
    pub fn invalidate(&self, presented: &str) -> bool {
        self.cell.invalidate(presented)
    }

    /// Authenticated: a token can always be had without the user.
    pub fn state(&self) -> Standing {
        let token = self.cell.token();
        Standing {
            status: AuthState::Authenticated,
            expires_at: token.and_then(|t| t.expires_at),
            has_refresh_token: false,
            persisted: true,
            account: Some(self.config.client_id.clone()),
        }
    }
}

async fn mint(
    ctx: Arc<Ctx>,
    config: ClientCredentialsConfig,
    key: Arc<MachineKey>,
) -> Result<AccessToken, TokenError> {
    let meta = ctx
        .issuers
        .get(&ctx.idp, &ClientCredentials::issuer(&config))
        .await
        .map_err(from_oauth)?;
    let client = ctx
        .clients
        .auth(&ctx.store, &config.issuer, &config.client_id)
        .await;
    let target = Target {
        resource: config.resource.clone(),
        audience: None,
    };
    let grant = exchange::client_credentials(&ctx.idp, &meta, &client, &config.scopes, &target);
    let tokens = key
        .mint(config.dpop, config.resource_dpop, &meta, async {
            grant.await.map_err(from_oauth)
        })
        .await?;
    let now = ctx.clock.now();
    tracing::info!(client = %config.client_id, "client credentials: new access token");
    Ok(AccessToken {
        token: tokens.access_token,
        expires_at: tokens.expires_in.map(|d| now + d),
        obtained_at: now,
        scope: tokens.scope,
    })
}
