//! A static Bearer token kept in a file (CI, service accounts), read on
//! every use so a rotated file is picked up.

use super::Standing;
use crate::ctx::Ctx;
use crate::token::{AccessToken, TokenError};
use regent_proto::{AuthState, BearerConfig};
use secrecy::SecretString;
use std::io::Read;

/// Largest static token file the agent reads.
const MAX_TOKEN_FILE: u64 = 64 * 1024;

/// The token source of a token file.
pub struct BearerFile {
    /// The configuration.
    pub config: BearerConfig,
}

impl BearerFile {
    /// The file's token, bounded, trimmed, non-empty.
    pub fn token(&self, ctx: &Ctx) -> Result<AccessToken, TokenError> {
        let token = read(&self.config.token_file).map_err(TokenError::AuthRequired)?;
        Ok(AccessToken {
            token: SecretString::from(token),
            expires_at: None,
            obtained_at: ctx.clock.now(),
            scope: None,
        })
    }

    /// Whether the file now holds another token than `refused` (it was
    /// rotated since): then sending again may help.
    pub fn rotated_since(&self, refused: Option<&str>) -> bool {
        match (read(&self.config.token_file), refused) {
            (Ok(now), Some(r)) => now != r,
            _ => false,
        }
    }

    /// Authenticated while the file can be read.
    pub fn state(&self) -> Standing {
        Standing {
            status: match read(&self.config.token_file) {
                Ok(_) => AuthState::Authenticated,
                Err(_) => AuthState::AuthRequired,
            },
            expires_at: None,
            has_refresh_token: false,
            persisted: true,
            account: None,
        }
    }
}

fn read(path: &std::path::Path) -> Result<String, String> {
    let cannot = |e: std::io::Error| format!("cannot read the token file {}: {e}", path.display());
    let f = std::fs::File::open(path).map_err(cannot)?;
    let mut s = String::new();
    f.take(MAX_TOKEN_FILE + 1)
        .read_to_string(&mut s)
        .map_err(cannot)?;
    if s.len() as u64 > MAX_TOKEN_FILE {
        return Err(format!(
            "the token file {} is larger than 64 KiB",
            path.display()
        ));
    }
    let t = s.trim();
    if t.is_empty() {
        return Err(format!("the token file {} is empty", path.display()));
    }
    Ok(t.to_string())
}
