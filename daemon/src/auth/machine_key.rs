//! The DPoP key of a token source without a user's refresh token (client
//! credentials, workload identity, enterprise-managed authorization): made
//! for its first bound token and kept in memory. Nothing outlives the agent
//! that a key would have to prove, so after a restart a new token is minted
//! with a new key.

use crate::oauth::dpop::{self, DpopKey};
use crate::oauth::grant::Tokens;
use crate::oauth::http::with_dpop;
use crate::oauth::Metadata;
use crate::token::TokenError;
use regent_proto::DpopMode;
use std::future::Future;
use std::sync::{Arc, Mutex};

/// A source's key, once an AS bound a token to it.
#[derive(Default)]
pub struct MachineKey(Mutex<Option<Arc<DpopKey>>>);

impl MachineKey {
    /// The key its tokens are bound to, if they are.
    pub fn get(&self) -> Option<Arc<DpopKey>> {
        self.0.lock().unwrap().clone()
    }

    /// Runs the token request `grant` with a proof of the key where `mode`
    /// (and the resource's metadata, for `auto`) and the AS's `meta` say to
    /// bind, and keeps the key if the AS bound the token.
    pub async fn mint<F>(
        &self,
        mode: DpopMode,
        resource_names_dpop: bool,
        meta: &Metadata,
        grant: F,
    ) -> Result<Tokens, TokenError>
    where
        F: Future<Output = Result<Tokens, TokenError>>,
    {
        let key = match (dpop::binds(mode, resource_names_dpop, meta), self.get()) {
            (false, _) => None,
            (true, Some(k)) => Some(k),
            (true, None) => Some(Arc::new(
                DpopKey::generate().map_err(|e| TokenError::Internal(e.to_string()))?,
            )),
        };
        let answer = with_dpop(key.clone(), grant).await?;
        *self.0.lock().unwrap() = key.filter(|_| answer.bound);
        Ok(answer)
    }
}
