//! The stored form of a grant (contract: Persistence), and the version 1
//! token set it replaces.

use crate::oauth::dpop::DpopKey;
use crate::oauth::Target;
use crate::token::AccessToken;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use time::OffsetDateTime;

/// What one login at one authorization server yields for one client.
#[derive(Debug, Default)]
pub struct Saved {
    /// The refresh token, if the IdP issued one.
    pub refresh_token: Option<SecretString>,
    /// The scopes granted, space separated.
    pub scope: Option<String>,
    /// Who logged in, for display.
    pub account: Option<String>,
    /// The ID token (an enterprise IdP's login).
    pub id_token: Option<SecretString>,
    /// The access tokens minted from it, per target.
    pub tokens: BTreeMap<Target, AccessToken>,
    /// The targets the login's authorization named (RFC 8707 §2.1): the
    /// only ones a refresh may mint for. `None`: not recorded (older
    /// entries), any target may be tried.
    pub covered: Option<BTreeSet<Target>>,
    /// The key the login bound its tokens to (DPoP): kept exactly as the
    /// refresh token is, since the refresh token is worthless without it.
    pub dpop_key: Option<Arc<DpopKey>>,
}

#[derive(Serialize, Deserialize)]
struct V2 {
    v: u32,
    issuer: String,
    client_id: String,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
    #[serde(default)]
    tokens: BTreeMap<String, Stored>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    covered: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dpop_key: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    access_token: String,
    #[serde(default, with = "time::serde::rfc3339::option")]
    expires_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    obtained_at: OffsetDateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
}

/// Version 1: one registry's token set.
#[derive(Deserialize)]
struct V1 {
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    expires_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    obtained_at: OffsetDateTime,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    #[allow(dead_code)]
    issuer: String,
    #[serde(default)]
    account: Option<String>,
}

/// Who the grant belongs to, written beside it (for people reading the store).
pub struct Owner<'a> {
    /// The issuer.
    pub issuer: &'a str,
    /// The client id.
    pub client_id: &'a str,
    /// The configured scopes.
    pub scopes: &'a [String],
}

/// The JSON kept in the store.
pub fn to_json(owner: &Owner<'_>, saved: &Saved) -> SecretString {
    let v = V2 {
        v: 2,
        issuer: owner.issuer.to_string(),
        client_id: owner.client_id.to_string(),
        scopes: owner.scopes.to_vec(),
        refresh_token: saved
            .refresh_token
            .as_ref()
            .map(|t| t.expose_secret().to_string()),
        scope: saved.scope.clone(),
        account: saved.account.clone(),
        id_token: saved
            .id_token
            .as_ref()
            .map(|t| t.expose_secret().to_string()),
        tokens: saved
            .tokens
            .iter()
            .map(|(target, t)| {
                (
                    target.key(),
                    Stored {
                        access_token: t.token.expose_secret().to_string(),
                        expires_at: t.expires_at,
                        obtained_at: t.obtained_at,
                        scope: t.scope.clone(),
                    },
                )
            })
            .collect(),
        covered: saved
            .covered
            .as_ref()
            .map(|c| c.iter().map(Target::key).collect()),
        dpop_key: saved.dpop_key.as_ref().map(|k| k.to_stored()),
    };
    SecretString::from(serde_json::to_string(&v).expect("a grant serializes"))
}

fn malformed(e: serde_json::Error) -> String {
    // The position only: serde's messages can quote the value, a secret.
    format!("malformed (line {}, column {})", e.line(), e.column())
}

/// Reads a version 2 entry. The error names no secret.
pub fn from_json(json: &SecretString) -> Result<Saved, String> {
    let v: V2 = serde_json::from_str(json.expose_secret()).map_err(malformed)?;
    if v.v != 2 {
        return Err(format!("unknown version {}", v.v));
    }
    // A bound grant whose key is unreadable is a lost login: its refresh
    // token (and its tokens) are worthless without the key.
    let dpop_key = match v.dpop_key.as_deref().map(DpopKey::from_stored) {
        None => None,
        Some(Ok(k)) => Some(Arc::new(k)),
        Some(Err(e)) => return Err(e.to_string()),
    };
    Ok(Saved {
        dpop_key,
        refresh_token: v.refresh_token.map(SecretString::from),
        scope: v.scope,
        account: v.account,
        id_token: v.id_token.map(SecretString::from),
        tokens: v
            .tokens
            .into_iter()
            .map(|(k, s)| {
                (
                    Target::from_key(&k),
                    AccessToken {
                        token: SecretString::from(s.access_token),
                        expires_at: s.expires_at,
                        obtained_at: s.obtained_at,
                        scope: s.scope,
                    },
                )
            })
            .collect(),
        covered: v
            .covered
            .map(|c| c.iter().map(|k| Target::from_key(k)).collect()),
    })
}

/// Reads a version 1 token set as a grant whose access token is for `target`.
pub fn from_v1_json(json: &SecretString, target: &Target) -> Result<Saved, String> {
    let v: V1 = serde_json::from_str(json.expose_secret()).map_err(malformed)?;
    let mut tokens = BTreeMap::new();
    if let Some(at) = v.access_token {
        tokens.insert(
            target.clone(),
            AccessToken {
                token: SecretString::from(at),
                expires_at: v.expires_at,
                obtained_at: v.obtained_at,
                scope: v.scope.clone(),
            },
        );
    }
    Ok(Saved {
        refresh_token: v.refresh_token.map(SecretString::from),
        scope: v.scope,
        account: v.account,
        id_token: None,
        tokens,
        covered: None,
        dpop_key: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_every_token_and_errors_name_no_secret() {
        let target = Target {
            resource: Some("https://r.example".into()),
            audience: None,
        };
        let mut saved = Saved {
            refresh_token: Some(SecretString::from("rt")),
            scope: Some("openid".into()),
            account: Some("alice".into()),
            id_token: None,
            tokens: BTreeMap::new(),
            covered: Some([target.clone()].into_iter().collect()),
            dpop_key: Some(Arc::new(DpopKey::generate().unwrap())),
        };
        saved.tokens.insert(
            target.clone(),
            AccessToken {
                token: SecretString::from("at"),
                expires_at: None,
                obtained_at: OffsetDateTime::UNIX_EPOCH,
                scope: None,
            },
        );
        let owner = Owner {
            issuer: "https://i",
            client_id: "c",
            scopes: &[],
        };
        let back = from_json(&to_json(&owner, &saved)).unwrap();
        assert_eq!(back.refresh_token.unwrap().expose_secret(), "rt");
        assert_eq!(back.tokens[&target].token.expose_secret(), "at");
        assert_eq!(back.account.as_deref(), Some("alice"));
        assert_eq!(back.covered, saved.covered, "what the login named is kept");
        assert_eq!(
            back.dpop_key.unwrap().thumbprint(),
            saved.dpop_key.as_ref().unwrap().thumbprint(),
            "the DPoP key is kept with its grant"
        );
        // A bound grant whose key is unreadable is refused, not used without it.
        let json = to_json(&owner, &saved).expose_secret().to_string();
        let stored = saved.dpop_key.as_ref().unwrap().to_stored();
        let broken = SecretString::from(json.replace(&stored, "broken"));
        assert!(from_json(&broken).unwrap_err().contains("DPoP key"));
        let e = from_json(&SecretString::from("{\"refresh_token\": \"rt-secret\"")).unwrap_err();
        assert!(!e.contains("rt-secret"), "{e}");
    }

    #[test]
    fn a_v1_token_set_reads_as_a_grant() {
        let v1 = r#"{"access_token":"at","expires_at":"2026-01-01T00:01:00Z","obtained_at":"2026-01-01T00:00:00Z","refresh_token":"rt","scope":"openid","issuer":"https://i","account":"bob"}"#;
        let saved = from_v1_json(&SecretString::from(v1), &Target::default()).unwrap();
        assert_eq!(saved.refresh_token.unwrap().expose_secret(), "rt");
        assert_eq!(saved.tokens[&Target::default()].token.expose_secret(), "at");
        assert_eq!(saved.account.as_deref(), Some("bob"));
    }
}
