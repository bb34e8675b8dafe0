//! A registry's token set, and the rules that decide when it is fresh enough.

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use time::OffsetDateTime;

/// The tokens of one registry. `Debug` shows no secret (secrecy types).
#[derive(Debug, Clone)]
pub struct TokenSet {
    /// The access token; `None` once dropped by an invalidation.
    pub access_token: Option<SecretString>,
    /// When the access token expires; `None` when the IdP did not say.
    pub expires_at: Option<OffsetDateTime>,
    /// When the access token was obtained (to know its lifetime).
    pub obtained_at: OffsetDateTime,
    /// The refresh token, if the IdP issued one.
    pub refresh_token: Option<SecretString>,
    /// The granted scopes, space separated.
    pub scope: Option<String>,
    /// The issuer that minted these tokens.
    pub issuer: String,
    /// Who is logged in, for display.
    pub account: Option<String>,
}

/// The persisted form (contract: JSON with the access token, its expiry, the
/// refresh token, the scopes and the issuer).
#[derive(Serialize, Deserialize)]
struct Stored {
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
    issuer: String,
    #[serde(default)]
    account: Option<String>,
}

/// Clamp of the refresh-ahead window (contract: 20% of the lifetime, 10 s..5 min).
const AHEAD_MIN: Duration = Duration::from_secs(10);
const AHEAD_MAX: Duration = Duration::from_secs(300);

impl TokenSet {
    /// The JSON kept in the store.
    pub fn to_json(&self) -> SecretString {
        let stored = Stored {
            access_token: self
                .access_token
                .as_ref()
                .map(|t| t.expose_secret().to_string()),
            expires_at: self.expires_at,
            obtained_at: self.obtained_at,
            refresh_token: self
                .refresh_token
                .as_ref()
                .map(|t| t.expose_secret().to_string()),
            scope: self.scope.clone(),
            issuer: self.issuer.clone(),
            account: self.account.clone(),
        };
        SecretString::from(serde_json::to_string(&stored).expect("a token set serializes"))
    }

    /// Reads the JSON kept in the store. The error names no secret.
    pub fn from_json(json: &SecretString) -> Result<TokenSet, String> {
        let s: Stored = serde_json::from_str(json.expose_secret()).map_err(|e| {
            format!(
                "stored token set is malformed (line {}, column {})",
                e.line(),
                e.column()
            )
        })?;
        Ok(TokenSet {
            access_token: s.access_token.map(SecretString::from),
            expires_at: s.expires_at,
            obtained_at: s.obtained_at,
            refresh_token: s.refresh_token.map(SecretString::from),
            scope: s.scope,
            issuer: s.issuer,
            account: s.account,
        })
    }

    fn lifetime(&self) -> Option<Duration> {
        let exp = self.expires_at?;
        Some(
            (exp - self.obtained_at)
                .try_into()
                .unwrap_or(Duration::ZERO),
        )
    }

    fn remaining(&self, now: OffsetDateTime) -> Option<Duration> {
        let exp = self.expires_at?;
        Some((exp - now).try_into().unwrap_or(Duration::ZERO))
    }

    /// Whether the access token can be served to a caller that needs it valid
    /// for `min_valid`. When the IdP's tokens live shorter than that, no
    /// refresh could satisfy the caller: a token in the first half of its
    /// life is served, instead of a refresh on every request.
    pub fn satisfies(&self, min_valid: Duration, now: OffsetDateTime) -> bool {
        if self.access_token.is_none() {
            return false;
        }
        match (self.remaining(now), self.lifetime()) {
            (Some(rem), Some(life)) => {
                let needed = if life >= min_valid {
                    min_valid
                } else {
                    life / 2
                };
                rem > Duration::ZERO && rem >= needed
            }
            _ => true, // the IdP gave no expiry: valid until a resource server says otherwise
        }
    }

    /// Whether the access token has not expired yet (served when the IdP is down).
    pub fn usable(&self, now: OffsetDateTime) -> bool {
        self.access_token.is_some() && self.remaining(now).is_none_or(|r| r > Duration::ZERO)
    }

    /// Whether the token is in its refresh-ahead window: the last 20% of its
    /// lifetime, clamped to 10 s..5 min, and never more than half of it.
    pub fn wants_refresh_ahead(&self, now: OffsetDateTime) -> bool {
        let (Some(rem), Some(life)) = (self.remaining(now), self.lifetime()) else {
            return false;
        };
        let window = (life / 5).clamp(AHEAD_MIN, AHEAD_MAX).min(life / 2);
        self.refresh_token.is_some() && rem <= window
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn set(life_secs: i64, rt: bool) -> TokenSet {
        let t0 = datetime!(2026-01-01 00:00:00 UTC);
        TokenSet {
            access_token: Some(SecretString::from("at")),
            expires_at: Some(t0 + time::Duration::seconds(life_secs)),
            obtained_at: t0,
            refresh_token: rt.then(|| SecretString::from("rt")),
            scope: None,
            issuer: "https://i".into(),
            account: None,
        }
    }

    #[test]
    fn freshness_rules() {
        let s = set(3600, true);
        let t0 = s.obtained_at;
        let secs = |n| t0 + time::Duration::seconds(n);
        let min = Duration::from_secs(30);
        assert!(s.satisfies(min, secs(0)));
        assert!(s.satisfies(min, secs(3570)));
        assert!(!s.satisfies(min, secs(3571)));
        assert!(!s.satisfies(min, secs(4000)));
        // A caller needing 45 min of a 1 h token gets a refresh at 33 min left.
        assert!(!s.satisfies(Duration::from_secs(2700), secs(1601)));
        assert!(s.satisfies(Duration::from_secs(2700), secs(900)));
        // Refresh ahead: 20% of 3600 s is 720 s, clamped to 300 s.
        assert!(!s.wants_refresh_ahead(secs(3299)));
        assert!(s.wants_refresh_ahead(secs(3300)));
        // A token shorter than min_valid is served in the first half of its life.
        let short = set(10, true);
        assert!(short.satisfies(min, short.obtained_at));
        assert!(short.satisfies(min, short.obtained_at + time::Duration::seconds(5)));
        assert!(!short.satisfies(min, short.obtained_at + time::Duration::seconds(6)));
        // Its refresh-ahead window is half its life, not the 10 s minimum.
        assert!(!short.wants_refresh_ahead(short.obtained_at + time::Duration::seconds(4)));
        assert!(short.wants_refresh_ahead(short.obtained_at + time::Duration::seconds(5)));
        // No refresh token: nothing to refresh ahead with.
        assert!(!set(10, false).wants_refresh_ahead(short.obtained_at + time::Duration::seconds(9)));
    }

    #[test]
    fn json_round_trip_keeps_secrets_and_debug_hides_them() {
        let s = set(60, true);
        let back = TokenSet::from_json(&s.to_json()).unwrap();
        assert_eq!(back.refresh_token.unwrap().expose_secret(), "rt");
        assert_eq!(back.expires_at, s.expires_at);
        let dbg = format!("{s:?}");
        assert!(!dbg.contains("\"at\"") && !dbg.contains("\"rt\""), "{dbg}");
        let err = TokenSet::from_json(&SecretString::from("{\"refresh_token\": \"rt-secret\""))
            .unwrap_err();
        assert!(!err.contains("rt-secret"));
    }
}
