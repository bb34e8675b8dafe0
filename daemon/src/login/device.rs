//! The device flow as a login: ask the IdP for codes, then poll.

use super::{Ended, Flow, LoginError, Prepared};
use crate::oauth::device::{self, DeviceEnd};
use futures::FutureExt;
use regent_proto::{Login, LoginFlow};
use std::time::Duration;
use time::OffsetDateTime;

/// Longest a device login may wait for the user, whatever the IdP says.
const MAX_WAIT: Duration = Duration::from_secs(30 * 60);

/// Requests the device and user codes.
pub async fn prepare(flow: Flow) -> Result<Prepared, LoginError> {
    let auth = device::start(
        &flow.ctx.idp,
        &flow.client,
        &flow.meta,
        &flow.scopes,
        &flow.target,
    )
    .await?;
    let wait = auth.expires_in().min(MAX_WAIT);
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
