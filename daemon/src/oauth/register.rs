//! Dynamic client registration (RFC 7591) as a native public client with
//! loopback redirects, refresh tokens asked for, and the device grant where
//! the AS offers it (a login from an SSH session then needs no admin).

use super::grant::shorten;
use super::http::IdpClient;
use super::{Metadata, OAuthError};
use regent_proto::TokenAuthMethod;
use secrecy::SecretString;
use serde::Deserialize;

/// What the AS registered.
pub struct Registered {
    /// The client id it issued.
    pub client_id: String,
    /// A secret, if it issued one.
    pub client_secret: Option<SecretString>,
    /// How the client must authenticate at the token endpoint.
    pub method: TokenAuthMethod,
}

#[derive(Deserialize)]
struct Answer {
    client_id: String,
    #[serde(default)]
    client_secret: Option<String>,
    #[serde(default)]
    token_endpoint_auth_method: Option<String>,
}

/// Registers regent at the AS. `redirect` is the loopback redirect URI (a
/// fixed port where one is configured; RFC 8252 lets the port vary otherwise).
pub async fn register(
    http: &IdpClient,
    meta: &Metadata,
    redirect: &str,
) -> Result<Registered, OAuthError> {
    let endpoint = meta.registration_endpoint.as_deref().ok_or_else(|| {
        OAuthError::Config(format!(
            "the authorization server {} offers no dynamic client registration; \
             register a client there and pass --client-id",
            meta.issuer
        ))
    })?;
    // A public client where the AS allows it, else what it offers.
    let methods = meta
        .token_endpoint_auth_methods_supported
        .clone()
        .unwrap_or_else(|| vec!["client_secret_basic".into()]);
    let asked = ["none", "client_secret_basic", "client_secret_post"]
        .into_iter()
        .find(|m| methods.iter().any(|s| s == m))
        .unwrap_or("none");
    let mut grants = vec!["authorization_code", "refresh_token"];
    if offers_device(meta) {
        grants.push(DEVICE_GRANT);
    }
    match send(http, endpoint, redirect, asked, &grants).await {
        // An AS that lists the device grant may still not give it to registered
        // clients: the browser login must not be lost for it.
        Err(OAuthError::Protocol { code, .. })
            if grants.contains(&DEVICE_GRANT) && code == "invalid_client_metadata" =>
        {
            tracing::info!(
                issuer = %meta.issuer,
                "the authorization server refused to register the device grant; registering without it"
            );
            grants.pop();
            send(http, endpoint, redirect, asked, &grants).await
        }
        other => other,
    }
}

/// The device authorization grant's type (RFC 8628).
const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// Whether the AS offers the device grant: an endpoint for it, and the grant
/// among those it lists (where it lists any).
fn offers_device(meta: &Metadata) -> bool {
    meta.device_authorization_endpoint.is_some()
        && meta
            .grant_types_supported
            .as_ref()
            .is_none_or(|g| g.iter().any(|t| t == DEVICE_GRANT))
}

/// One registration request, for `grants`.
async fn send(
    http: &IdpClient,
    endpoint: &str,
    redirect: &str,
    asked: &str,
    grants: &[&str],
) -> Result<Registered, OAuthError> {
    let body = serde_json::json!({
        "client_name": "regent",
        "application_type": "native",
        "redirect_uris": [redirect],
        "grant_types": grants,
        "response_types": ["code"],
        "token_endpoint_auth_method": asked,
        "software_id": "regent",
        "software_version": env!("CARGO_PKG_VERSION"),
    });
    let req = oauth2::http::Request::post(endpoint)
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .body(body.to_string().into_bytes())
        .map_err(|e| OAuthError::Config(e.to_string()))?;
    let resp = http
        .send(req)
        .await
        .map_err(|e| OAuthError::Unavailable(format!("cannot reach the IdP to register: {e}")))?;
    let status = resp.status();
    if status.is_server_error() {
        return Err(OAuthError::Unavailable(format!(
            "the registration endpoint answered HTTP {}",
            status.as_u16()
        )));
    }
    if !status.is_success() {
        let v: serde_json::Value = serde_json::from_slice(resp.body()).unwrap_or_default();
        return Err(OAuthError::Protocol {
            code: v["error"]
                .as_str()
                .map(shorten)
                .unwrap_or_else(|| format!("HTTP {}", status.as_u16())),
            description: Some(format!(
                "client registration at {endpoint} was refused{}",
                v["error_description"]
                    .as_str()
                    .map(|d| format!(": {}", shorten(d)))
                    .unwrap_or_default()
            )),
        });
    }
    let a: Answer = serde_json::from_slice(resp.body()).map_err(|e| {
        OAuthError::Unavailable(format!("the registration answer is not JSON ({e})"))
    })?;
    let method = match a.token_endpoint_auth_method.as_deref() {
        Some("client_secret_basic") => TokenAuthMethod::ClientSecretBasic,
        Some("client_secret_post") => TokenAuthMethod::ClientSecretPost,
        Some("none") => TokenAuthMethod::None,
        Some(other) => {
            return Err(OAuthError::Config(format!(
                "the authorization server registered regent for {other}, which it cannot do"
            )))
        }
        // Not said: the one asked for if a secret came with it, else a public client.
        None if a.client_secret.is_some() && asked != "none" => match asked {
            "client_secret_post" => TokenAuthMethod::ClientSecretPost,
            _ => TokenAuthMethod::ClientSecretBasic,
        },
        None => TokenAuthMethod::None,
    };
    Ok(Registered {
        client_id: a.client_id,
        client_secret: a.client_secret.map(SecretString::from),
        method,
    })
}
