//! An access token and the rules that decide when it is fresh enough.

use secrecy::SecretString;
use std::time::Duration;
use time::OffsetDateTime;

/// Clamp of the refresh-ahead window (contract: 20% of the lifetime, 10 s..5 min, at most half).
const AHEAD_MIN: Duration = Duration::from_secs(10);
const AHEAD_MAX: Duration = Duration::from_secs(300);
/// Longest a caller inside the refresh-ahead window waits for the refresh.
pub const AHEAD_WAIT: Duration = Duration::from_secs(2);

/// One access token. `Debug` shows no secret (secrecy types).
#[derive(Debug, Clone)]
pub struct AccessToken {
    /// The token.
    pub token: SecretString,
    /// When it expires; `None` when the IdP did not say.
    pub expires_at: Option<OffsetDateTime>,
    /// When it was obtained (to know its lifetime).
    pub obtained_at: OffsetDateTime,
    /// The scopes it was granted, space separated.
    pub scope: Option<String>,
}

impl AccessToken {
    fn lifetime(&self) -> Option<Duration> {
        let exp = self.expires_at?;
        Some(
            (exp - self.obtained_at)
                .try_into()
                .unwrap_or(Duration::ZERO),
        )
    }

    /// Time left before expiry; `None` when the expiry is unknown.
    pub fn remaining(&self, now: OffsetDateTime) -> Option<Duration> {
        let exp = self.expires_at?;
        Some((exp - now).try_into().unwrap_or(Duration::ZERO))
    }

    /// How long a caller asking for `min_valid` needs the token to stay valid.
    /// When the IdP's tokens live shorter than that, no refresh could satisfy
    /// the caller: half the lifetime is asked instead of a refresh per request.
    fn needed(&self, min_valid: Duration) -> Duration {
        match self.lifetime() {
            Some(life) if life < min_valid => life / 2,
            _ => min_valid,
        }
    }

    /// Whether the token can be served to a caller that needs it valid for `min_valid`.
    pub fn satisfies(&self, min_valid: Duration, now: OffsetDateTime) -> bool {
        match self.remaining(now) {
            Some(rem) => rem > Duration::ZERO && rem >= self.needed(min_valid),
            None => true, // no expiry given: valid until a resource server says otherwise
        }
    }

    /// Whether the token has not expired yet (served when the IdP is down).
    pub fn usable(&self, now: OffsetDateTime) -> bool {
        self.remaining(now).is_none_or(|r| r > Duration::ZERO)
    }

    /// Whether the token is in its refresh-ahead window: the last 20% of its
    /// lifetime, clamped to 10 s..5 min, and never more than half of it.
    pub fn in_refresh_window(&self, now: OffsetDateTime) -> bool {
        let (Some(rem), Some(life)) = (self.remaining(now), self.lifetime()) else {
            return false;
        };
        let window = (life / 5).clamp(AHEAD_MIN, AHEAD_MAX).min(life / 2);
        rem <= window
    }

    /// How long a caller inside the window may wait for the refresh: at most
    /// [`AHEAD_WAIT`], and never past the point where this token would fall
    /// under what the caller needs.
    pub fn window_wait(&self, min_valid: Duration, now: OffsetDateTime) -> Duration {
        let rem = self.remaining(now).unwrap_or(Duration::ZERO);
        rem.saturating_sub(self.needed(min_valid)).min(AHEAD_WAIT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn token(life_secs: i64) -> AccessToken {
        let t0 = datetime!(2026-01-01 00:00:00 UTC);
        AccessToken {
            token: SecretString::from("tok-3f9a1c"),
            expires_at: Some(t0 + time::Duration::seconds(life_secs)),
            obtained_at: t0,
            scope: None,
        }
    }

    #[test]
    fn freshness_rules() {
        let s = token(3600);
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
        assert!(!s.in_refresh_window(secs(3299)));
        assert!(s.in_refresh_window(secs(3300)));
        // Waiting in the window: 2 s at most, and never below min_valid.
        assert_eq!(s.window_wait(min, secs(3300)), AHEAD_WAIT);
        assert_eq!(s.window_wait(min, secs(3569)), Duration::from_secs(1));
        // A token shorter than min_valid is served in the first half of its life.
        let short = token(10);
        let at = |n| short.obtained_at + time::Duration::seconds(n);
        assert!(short.satisfies(min, at(0)));
        assert!(short.satisfies(min, at(5)));
        assert!(!short.satisfies(min, at(6)));
        // Its refresh-ahead window is half its life, not the 10 s minimum.
        assert!(!short.in_refresh_window(at(4)));
        assert!(short.in_refresh_window(at(5)));
    }

    #[test]
    fn debug_hides_the_token() {
        let s = token(60);
        assert!(!format!("{s:?}").contains("tok-3f9a1c"));
    }
}
