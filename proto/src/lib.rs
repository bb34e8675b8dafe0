//! regent agent API v1: the wire types, error codes and path rules shared by
//! `regentd` (the agent) and `regent` (the CLI and client library).
//!
//! Pure data and small pure functions: nothing here does I/O beyond reading
//! environment variables to resolve paths.

pub mod api;
pub mod error;
pub mod net;
pub mod paths;
pub mod types;

pub use error::{ErrorBody, ErrorCode, ErrorDetail};
pub use types::*;

/// The agent API version this crate describes.
pub const API_VERSION: u32 = 1;

/// Largest request body the agent accepts, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Longest `wait_secs` a login poll may ask for.
pub const MAX_LOGIN_WAIT_SECS: u64 = 60;

/// Default `min_valid_secs` of a token request.
pub const DEFAULT_MIN_VALID_SECS: u64 = 30;

/// The form of an HTTP date (RFC 9110 §5.6.7, IMF-fixdate), in UTC.
pub const HTTP_DATE: &[time::format_description::BorrowedFormatItem<'static>] = time::macros::format_description!(
    "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
);

/// An HTTP date, as a `Date` header carries it.
pub fn http_date(s: &str) -> Option<time::OffsetDateTime> {
    time::PrimitiveDateTime::parse(s.trim(), HTTP_DATE)
        .ok()
        .map(|t| t.assume_utc())
}
