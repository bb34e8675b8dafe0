//! The agent's wall clock. Token expiry is wall-clock time (a laptop that
//! slept for a night must see its tokens expired), so production reads the
//! system clock; the in-process tests read tokio's paused clock instead, so
//! expiry and backoff can be driven without waiting.

use time::OffsetDateTime;

/// Where "now" comes from.
#[derive(Debug, Clone)]
pub enum Clock {
    /// The system's real-time clock.
    System,
    /// Tokio's clock (paused in tests), anchored at a wall-clock instant.
    Tokio {
        /// The wall-clock time at `mono`.
        wall: OffsetDateTime,
        /// The tokio instant that corresponds to `wall`.
        mono: tokio::time::Instant,
    },
}

impl Clock {
    /// A clock that follows tokio's time, starting at `wall`.
    pub fn tokio_at(wall: OffsetDateTime) -> Clock {
        Clock::Tokio {
            wall,
            mono: tokio::time::Instant::now(),
        }
    }

    /// The current time.
    pub fn now(&self) -> OffsetDateTime {
        match self {
            Clock::System => OffsetDateTime::now_utc(),
            Clock::Tokio { wall, mono } => *wall + mono.elapsed(),
        }
    }
}
