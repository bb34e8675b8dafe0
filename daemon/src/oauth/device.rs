//! The device authorization grant (RFC 8628): start, then poll honouring
//! `interval` and `slow_down` (the `oauth2` crate's loop does both).

use super::grant::{classify, client, Tokens};
use super::http::IdpClient;
use super::{ClientAuth, Metadata, OAuthError, Target};
use oauth2::{
    DeviceCodeErrorResponseType, RequestTokenError, Scope, StandardDeviceAuthorizationResponse,
};
use std::time::Duration;

/// What the user must do, as the IdP said it.
pub type DeviceAuthorization = StandardDeviceAuthorizationResponse;

/// Asks the IdP for a device code and a user code.
pub async fn start(
    http: &IdpClient,
    auth: &ClientAuth,
    meta: &Metadata,
    scopes: &[String],
    target: &Target,
    also: &[Target],
) -> Result<DeviceAuthorization, OAuthError> {
    let client = client(auth, meta)?;
    let mut req = client.exchange_device_code().map_err(|_| {
        OAuthError::Config(format!(
            "the IdP {} offers no device authorization endpoint; use the browser login",
            meta.issuer
        ))
    })?;
    for s in scopes {
        req = req.add_scope(Scope::new(s.clone()));
    }
    for (k, v) in target.params() {
        req = req.add_extra_param(k, v);
    }
    // The other resources of the grant, as in the browser flow (RFC 8707 §2.1):
    // the one login covers each of them.
    let mut named: Vec<&str> = target.resource.as_deref().into_iter().collect();
    for r in also.iter().filter_map(|t| t.resource.as_deref()) {
        if !named.contains(&r) {
            named.push(r);
            req = req.add_extra_param("resource", r.to_string());
        }
    }
    req.request_async(http).await.map_err(classify)
}

/// How a device login ended without tokens.
#[derive(Debug)]
pub enum DeviceEnd {
    /// The user said no, or the IdP could not be used (reason given).
    Failed(String),
    /// The IdP refused with an OAuth error (the caller explains it).
    Refused(super::OAuthError),
    /// The device code expired before the user approved it.
    Expired,
}

/// Polls the token endpoint until the user approves, refuses, or `timeout` passes.
pub async fn wait(
    http: &IdpClient,
    auth: &ClientAuth,
    meta: &Metadata,
    target: &Target,
    device: &DeviceAuthorization,
    timeout: Duration,
) -> Result<Tokens, DeviceEnd> {
    let client = client(auth, meta).map_err(|e| DeviceEnd::Failed(e.to_string()))?;
    let mut req = client
        .exchange_device_access_token(device)
        .set_max_backoff_interval(Duration::from_secs(60));
    for (k, v) in target.params() {
        req = req.add_extra_param(k, v);
    }
    match req
        .request_async(http, tokio::time::sleep, Some(timeout))
        .await
    {
        Ok(answer) => Ok(answer.into()),
        Err(RequestTokenError::ServerResponse(r)) => match r.error() {
            DeviceCodeErrorResponseType::ExpiredToken => Err(DeviceEnd::Expired),
            DeviceCodeErrorResponseType::AccessDenied => Err(DeviceEnd::Failed(format!(
                "access_denied: {}",
                r.error_description()
                    .map(|d| super::grant::shorten(d))
                    .unwrap_or_else(|| "the login was refused at the IdP".into())
            ))),
            _ => Err(DeviceEnd::Refused(classify(
                RequestTokenError::ServerResponse(r),
            ))),
        },
        Err(e) => Err(DeviceEnd::Failed(classify(e).to_string())),
    }
}
