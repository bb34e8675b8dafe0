//! Enterprise-managed authorization (MCP extension "cross-app access"):
//! the one login at the enterprise IdP is exchanged (RFC 8693) for an
//! Identity Assertion JWT naming this server's AS and resource, which the
//! AS trades for an access token (RFC 7523 jwt-bearer). No browser per server.

use super::machine_key::MachineKey;
use super::Standing;
use crate::ctx::Ctx;
use crate::grant::{from_oauth, Grant};
use crate::oauth::dpop::DpopKey;
use crate::oauth::{exchange, Issuer};
use crate::token::{AccessToken, Cell, TokenError, Want};
use futures::FutureExt;
use regent_proto::{AuthState, EnterpriseConfig};
use std::sync::Arc;
use std::time::Duration;

/// The enterprise IdP as this source uses it.
#[derive(Clone)]
pub struct Idp {
    /// The IdP's resource name.
    pub name: String,
    /// Its grant: the login whose ID token is exchanged.
    pub grant: Arc<Grant>,
}

/// The token source of an enterprise-managed resource.
pub struct Enterprise {
    /// The configuration.
    pub config: EnterpriseConfig,
    /// The IdP, when it is configured.
    pub idp: Option<Idp>,
    cell: Arc<Cell>,
    /// The key its tokens are bound to (DPoP), once the AS bound one.
    key: Arc<MachineKey>,
}

/// ID tokens are exchanged only while they have this long to live.
const ID_TOKEN_MIN_VALID: Duration = Duration::from_secs(30);

impl Enterprise {
    /// A source with nothing minted yet.
    pub fn new(config: EnterpriseConfig, idp: Option<Idp>) -> Enterprise {
        Enterprise {
            config,
            idp,
            cell: Arc::new(Cell::default()),
            key: Arc::default(),
        }
    }

    /// The key its tokens are bound to (DPoP), if they are.
    pub fn dpop_key(&self) -> Option<Arc<DpopKey>> {
        self.key.get()
    }

    /// The server's AS (no authorization code flow runs there).
    pub fn issuer(config: &EnterpriseConfig) -> Issuer {
        Issuer::without_code_flow(&config.issuer, config.metadata_url.as_deref())
    }

    /// A token valid for `min_valid`.
    pub async fn token(
        &self,
        ctx: &Arc<Ctx>,
        min_valid: Duration,
    ) -> Result<Arc<AccessToken>, TokenError> {
        let Some(idp) = self.idp.clone() else {
            return Err(TokenError::Config(format!(
                "no enterprise IdP named {}; add it with: regent idp add {} --issuer URL --client-id ID",
                self.config.idp, self.config.idp
            )));
        };
        let want = Want {
            clock: &ctx.clock,
            min_valid,
            can_mint: idp.grant.logged_in(),
            why_not: "not logged in at the enterprise IdP",
        };
        let (ctx2, config, key) = (ctx.clone(), self.config.clone(), self.key.clone());
        self.cell
            .get(want, &ctx.tasks, move |_epoch| {
                mint(ctx2, config, idp, key).boxed()
            })
            .await
    }

    /// Drops the cached token if it is `presented`.
    pub fn invalidate(&self, presented: &str) -> bool {
        self.cell.invalidate(presented)
    }

    /// Authenticated while the IdP's login is.
    pub fn state(&self, ctx: &Ctx) -> Standing {
        let token = self.cell.token();
        let logged_in = self.idp.as_ref().is_some_and(|i| i.grant.logged_in());
        Standing {
            status: if logged_in {
                AuthState::Authenticated
            } else {
                AuthState::AuthRequired
            },
            expires_at: token.as_ref().and_then(|t| t.expires_at),
            has_refresh_token: false,
            persisted: logged_in && ctx.store.persisting(),
            account: self
                .idp
                .as_ref()
                .and_then(|i| i.grant.status(&Default::default()).account),
        }
    }
}

async fn mint(
    ctx: Arc<Ctx>,
    config: EnterpriseConfig,
    idp: Idp,
    key: Arc<MachineKey>,
) -> Result<AccessToken, TokenError> {
    let id_token = idp
        .grant
        .id_token(&ctx, ID_TOKEN_MIN_VALID)
        .await
        .map_err(|e| match e {
            TokenError::AuthRequired(why) => TokenError::AuthRequired(format!(
                "{why}; log in at the enterprise IdP with: regent login {}",
                idp.name
            )),
            other => other,
        })?;
    let idp_spec = idp.grant.spec().clone();
    let idp_meta = ctx
        .issuers
        .get(&ctx.idp, &idp_spec.issuer)
        .await
        .map_err(from_oauth)?;
    let idp_client = idp_spec.client(&ctx).await;
    let meta = ctx
        .issuers
        .get(&ctx.idp, &Enterprise::issuer(&config))
        .await
        .map_err(from_oauth)?;
    let client = ctx
        .clients
        .auth(&ctx.store, &config.issuer, &config.client_id)
        .await;
    // Both steps prove the key, where tokens are bound: an IdP that takes
    // DPoP binds the ID-JAG to it, and the AS then wants the same key.
    let steps = async {
        let jag = exchange::id_jag(
            &ctx.idp,
            &idp_meta,
            &idp_client,
            &id_token,
            &meta.issuer,
            config.resource.as_deref(),
            &config.scopes,
        )
        .await?;
        exchange::jwt_bearer(&ctx.idp, &meta, &client, &jag, &config.scopes).await
    };
    let tokens = key
        .mint(config.dpop, config.resource_dpop, &meta, async {
            steps.await.map_err(from_oauth)
        })
        .await?;
    let now = ctx.clock.now();
    tracing::info!(idp = %idp.name, "enterprise-managed authorization: new access token");
    Ok(AccessToken {
        token: tokens.access_token,
        expires_at: tokens.expires_in.map(|d| now + d),
        obtained_at: now,
        scope: tokens.scope,
    })
}
