//! Workload identity federation (MCP SEP-1933): a machine with a platform
//! identity (a Kubernetes projected service-account token, a CI provider's
//! OIDC token) gets a server's token by the RFC 7523 JWT bearer grant, the
//! workload JWT as the assertion. The file is read fresh for every grant:
//! platforms rotate it under the agent. No user, no secret, no refresh token;
//! a refusal is said as the AS said it, never retried with another grant.

use super::machine_key::MachineKey;
use super::Standing;
use crate::ctx::Ctx;
use crate::grant::from_oauth;
use crate::oauth::dpop::DpopKey;
use crate::oauth::{exchange, ClientAuth, Issuer, OAuthError};
use crate::token::{AccessToken, Cell, TokenError, Want};
use futures::FutureExt;
use regent_proto::{AuthState, WorkloadConfig};
use secrecy::SecretString;
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

/// Largest workload token file read.
const MAX_TOKEN_FILE: u64 = 64 * 1024;

/// The token source of a workload-identity resource.
pub struct Workload {
    /// The configuration.
    pub config: WorkloadConfig,
    cell: Arc<Cell>,
    /// The key its tokens are bound to (DPoP), once the AS bound one.
    key: Arc<MachineKey>,
}

impl Workload {
    /// A source with nothing minted yet.
    pub fn new(config: WorkloadConfig) -> Workload {
        Workload {
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
    pub fn issuer(config: &WorkloadConfig) -> Issuer {
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

    /// Authenticated while the workload token can be read.
    pub fn state(&self) -> Standing {
        let token = self.cell.token();
        Standing {
            status: match read_token(&self.config) {
                Ok(_) => AuthState::Authenticated,
                Err(_) => AuthState::AuthRequired,
            },
            expires_at: token.and_then(|t| t.expires_at),
            has_refresh_token: false,
            persisted: true,
            account: self.config.client_id.clone(),
        }
    }
}

/// The workload JWT, read now: bounded, trimmed, three dot-separated parts.
pub fn read_token(config: &WorkloadConfig) -> Result<SecretString, String> {
    let path = &config.token_file;
    let cannot = |e: std::io::Error| {
        format!(
            "cannot read the workload token file {}: {e}",
            path.display()
        )
    };
    let f = std::fs::File::open(path).map_err(cannot)?;
    let mut s = String::new();
    f.take(MAX_TOKEN_FILE + 1)
        .read_to_string(&mut s)
        .map_err(cannot)?;
    if s.len() as u64 > MAX_TOKEN_FILE {
        return Err(format!(
            "the workload token file {} is larger than 64 KiB",
            path.display()
        ));
    }
    let t = s.trim();
    if t.split('.').count() != 3 || t.chars().any(char::is_whitespace) {
        return Err(format!(
            "the workload token file {} does not hold a JWT (three dot-separated parts)",
            path.display()
        ));
    }
    Ok(SecretString::from(t.to_string()))
}

async fn mint(
    ctx: Arc<Ctx>,
    config: WorkloadConfig,
    key: Arc<MachineKey>,
) -> Result<AccessToken, TokenError> {
    // A file that cannot be read, or an AS that refuses the assertion, is
    // not something a login fixes: the platform's identity is the credential.
    let assertion = read_token(&config).map_err(TokenError::Config)?;
    let meta = ctx
        .issuers
        .get(&ctx.idp, &Workload::issuer(&config))
        .await
        .map_err(from_oauth)?;
    let client = match &config.client_id {
        Some(id) => ctx.clients.auth(&ctx.store, &config.issuer, id).await,
        // RFC 7523 §3.1: client authentication is optional for this grant.
        None => ClientAuth::anonymous(),
    };
    let grant = exchange::jwt_bearer_for(
        &ctx.idp,
        &meta,
        &client,
        &assertion,
        &config.scopes,
        config.resource.as_deref(),
    );
    let grant = async {
        grant.await.map_err(|e| match e {
            OAuthError::InvalidGrant(m) => TokenError::Idp {
                code: "invalid_grant".into(),
                description: Some(m),
            },
            e => from_oauth(e),
        })
    };
    let tokens = key
        .mint(config.dpop, config.resource_dpop, &meta, grant)
        .await?;
    let now = ctx.clock.now();
    tracing::info!(issuer = %config.issuer, "workload identity: new access token");
    Ok(AccessToken {
        token: tokens.access_token,
        expires_at: tokens.expires_in.map(|d| now + d),
        obtained_at: now,
        scope: tokens.scope,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn config(file: &std::path::Path) -> WorkloadConfig {
        WorkloadConfig {
            issuer: "https://as.example".into(),
            client_id: None,
            token_file: file.to_path_buf(),
            scopes: vec![],
            resource: None,
            metadata_url: None,
            dpop: Default::default(),
            resource_dpop: false,
        }
    }

    #[test]
    fn the_file_is_trimmed_bounded_and_must_hold_a_jwt() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("jwt");
        std::fs::write(&file, "  a.b.c\n").unwrap();
        assert_eq!(read_token(&config(&file)).unwrap().expose_secret(), "a.b.c");
        std::fs::write(&file, "a.b\n").unwrap();
        assert!(read_token(&config(&file))
            .unwrap_err()
            .contains("does not hold a JWT"));
        std::fs::write(&file, "a.b c.d").unwrap();
        assert!(read_token(&config(&file))
            .unwrap_err()
            .contains("does not hold a JWT"));
        std::fs::write(&file, format!("a.{}.c", "x".repeat(70 * 1024))).unwrap();
        assert!(read_token(&config(&file))
            .unwrap_err()
            .contains("larger than 64 KiB"));
    }
}
