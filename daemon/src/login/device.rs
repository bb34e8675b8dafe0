//! The device flow as a login: ask the IdP for codes, then poll.

use super::{Ended, Flow, LoginError, Prepared};
use crate::oauth::device::{self, DeviceEnd};
use futures::FutureExt;
use regent_proto::{Login, LoginFlow};
use std::time::Duration;
use time::OffsetDateTime;

/// Longest a device login may wait for the user, whatever the IdP says.
const MAX_WAIT: Duration = Duration::from_secs(30 * 60);

/// Longest user code shown (RFC 8628 suggests about 8 characters).
const MAX_USER_CODE: usize = 64;

/// What the user is shown must be what a device login shows: links that are
/// https (http only on loopback) and a short, printable code. An IdP that
/// answers `javascript:` links or escape sequences gets no login.
fn check_shown(uri: &str, complete: Option<&str>, code: &str) -> Result<(), LoginError> {
    use crate::oauth::discovery::check_secure_url;
    check_secure_url("its verification_uri", uri).map_err(LoginError::Unsafe)?;
    if let Some(c) = complete {
        check_secure_url("its verification_uri_complete", c).map_err(LoginError::Unsafe)?;
    }
    let printable = code.chars().all(|c| c.is_ascii_graphic() || c == ' ');
    if code.is_empty() || code.chars().count() > MAX_USER_CODE || !printable {
        return Err(LoginError::Unsafe(format!(
            "its user_code is not a short printable code ({:?})",
            code.chars().take(MAX_USER_CODE).collect::<String>()
        )));
    }
    Ok(())
}

/// Requests the device and user codes.
pub async fn prepare(flow: Flow) -> Result<Prepared, LoginError> {
    let auth = device::start(
        &flow.ctx.idp,
        &flow.client,
        &flow.meta,
        &flow.scopes,
        &flow.target,
        &flow.also,
    )
    .await?;
    let wait = auth.expires_in().min(MAX_WAIT);
    check_shown(
        auth.verification_uri(),
        auth.verification_uri_complete()
            .map(|u| u.secret().as_str()),
        auth.user_code().secret(),
    )?;
    let login = Login {
        verification_uri: Some(auth.verification_uri().to_string()),
        verification_uri_complete: auth
            .verification_uri_complete()
            .map(|u| u.secret().to_string()),
        user_code: Some(auth.user_code().secret().to_string()),
        interval: Some(auth.interval().as_secs()),
        ..Login::new(LoginFlow::Device, OffsetDateTime::now_utc())
    };
    Ok(Prepared {
        login,
        wait,
        run: Box::new(move |_entry| {
            async move {
                device::wait(
                    &flow.ctx.idp,
                    &flow.client,
                    &flow.meta,
                    &flow.target,
                    &auth,
                    wait,
                )
                .await
                .map_err(|e| match e {
                    DeviceEnd::Expired => Ended::Expired,
                    DeviceEnd::Failed(why) => Ended::Failed(why),
                    DeviceEnd::Refused(e) => Ended::Failed(crate::oauth::explain::describe(
                        &e,
                        crate::oauth::explain::Step::DevicePoll,
                        &flow.resource,
                        &flow.client.id,
                    )),
                })
            }
            .boxed()
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_safe_links_and_codes_are_shown() {
        assert!(check_shown("https://idp.example/device", None, "ABCD-EFGH").is_ok());
        assert!(check_shown("http://127.0.0.1:9/device", None, "ABCD").is_ok());
        for (uri, complete, code) in [
            ("javascript:alert(1)", None, "ABCD"),
            ("http://idp.example/device", None, "ABCD"),
            (
                "https://idp.example/device",
                Some("file:///etc/passwd"),
                "ABCD",
            ),
            ("https://idp.example/d\u{1b}[2J", None, "ABCD"),
            ("https://idp.example/device", None, "AB\u{1b}[2JCD"),
            ("https://idp.example/device", None, ""),
        ] {
            let e = check_shown(uri, complete, code).unwrap_err().to_string();
            assert!(!e.contains('\u{1b}'), "{e}");
        }
        assert!(check_shown("https://idp.example/device", None, &"A".repeat(65)).is_err());
    }
}
