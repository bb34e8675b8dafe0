//! Token requests the `oauth2` crate has no builder for, all through one
//! function ([`request`]): client credentials (RFC 6749 §4.4) with any
//! client authentication, token exchange for an ID-JAG (RFC 8693, MCP
//! enterprise-managed authorization), and the JWT bearer grant (RFC 7523).

use super::client::ClientAuth;
use super::grant::shorten;
use super::http::{refused_without_error, HttpError, IdpClient};
use super::{Metadata, OAuthError, Target, Tokens};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// RFC 8693 token type of an OIDC ID token.
const ID_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:id_token";
/// The Identity Assertion JWT Authorization Grant's token type.
const ID_JAG_TYPE: &str = "urn:ietf:params:oauth:token-type:id-jag";

#[derive(Deserialize)]
struct Answer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    id_token: Option<String>,
    #[serde(default)]
    token_type: String,
}

#[derive(Deserialize)]
struct ErrorAnswer {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// POSTs a token request to `endpoint`, authenticated as `client`
/// (`audience`: the AS issuer, for client assertions).
pub async fn request(
    http: &IdpClient,
    endpoint: &str,
    client: &ClientAuth,
    audience: &str,
    mut form: Vec<(&'static str, String)>,
) -> Result<Tokens, OAuthError> {
    let header = client.apply(&mut form, audience)?;
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form.iter().map(|(k, v)| (*k, v.as_str())))
        .finish();
    let mut req = oauth2::http::Request::post(endpoint)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "application/json");
    if let Some(h) = header {
        req = req.header("authorization", h);
    }
    let req = req
        .body(body.into_bytes())
        .map_err(|e| OAuthError::Unavailable(HttpError::Build(e.to_string()).to_string()))?;
    let resp = http
        .send(req)
        .await
        .map_err(|e| OAuthError::Unavailable(format!("cannot reach the IdP: {e}")))?;
    let status = resp.status();
    if status.is_server_error() || matches!(status.as_u16(), 408 | 429) {
        return Err(OAuthError::Unavailable(format!(
            "the IdP answered HTTP {}",
            status.as_u16()
        )));
    }
    if status.is_success() {
        let a: Answer = serde_json::from_slice(resp.body()).map_err(|e| {
            OAuthError::Unavailable(format!(
                "the IdP's answer is not a valid token response ({})",
                shorten(&e.to_string())
            ))
        })?;
        return Ok(Tokens {
            access_token: SecretString::from(a.access_token),
            expires_in: a.expires_in.map(std::time::Duration::from_secs),
            refresh_token: a.refresh_token.map(SecretString::from),
            scope: a.scope,
            account: None,
            id_token: a.id_token.map(SecretString::from),
            dpop_key: None,
            bound: a.token_type.eq_ignore_ascii_case("dpop"),
        });
    }
    match serde_json::from_slice::<ErrorAnswer>(resp.body()) {
        Ok(e) if e.error == "invalid_grant" => Err(OAuthError::InvalidGrant(
            e.error_description.map(|d| shorten(&d)).unwrap_or(e.error),
        )),
        Ok(e) => Err(OAuthError::Protocol {
            code: shorten(&e.error),
            description: e.error_description.map(|d| shorten(&d)),
        }),
        Err(_) if refused_without_error(status.as_u16(), resp.body()) => {
            Err(OAuthError::InvalidGrant(format!(
                "the IdP refused the request with HTTP {} and no OAuth error",
                status.as_u16()
            )))
        }
        Err(_) => Err(OAuthError::Unavailable(format!(
            "the IdP answered HTTP {} without an OAuth error",
            status.as_u16()
        ))),
    }
}

fn scope_param(form: &mut Vec<(&'static str, String)>, scopes: &[String]) {
    if !scopes.is_empty() {
        form.push(("scope", scopes.join(" ")));
    }
}

/// The client credentials grant.
pub async fn client_credentials(
    http: &IdpClient,
    meta: &Metadata,
    client: &ClientAuth,
    scopes: &[String],
    target: &Target,
) -> Result<Tokens, OAuthError> {
    let mut form = vec![("grant_type", "client_credentials".to_string())];
    scope_param(&mut form, scopes);
    form.extend(target.params());
    request(http, &meta.token_endpoint, client, &meta.issuer, form).await
}

/// Token exchange at the enterprise IdP: the user's ID token for an ID-JAG
/// naming `audience` (the server's AS issuer) and `resource` (the server).
pub async fn id_jag(
    http: &IdpClient,
    idp: &Metadata,
    client: &ClientAuth,
    id_token: &SecretString,
    audience: &str,
    resource: Option<&str>,
    scopes: &[String],
) -> Result<SecretString, OAuthError> {
    let mut form = vec![
        (
            "grant_type",
            "urn:ietf:params:oauth:grant-type:token-exchange".to_string(),
        ),
        ("requested_token_type", ID_JAG_TYPE.to_string()),
        ("subject_token", id_token.expose_secret().to_string()),
        ("subject_token_type", ID_TOKEN_TYPE.to_string()),
        ("audience", audience.to_string()),
    ];
    if let Some(r) = resource {
        form.push(("resource", r.to_string()));
    }
    scope_param(&mut form, scopes);
    let t = request(http, &idp.token_endpoint, client, &idp.issuer, form).await?;
    Ok(t.access_token)
}

/// The JWT bearer grant at the server's AS, with an ID-JAG as the assertion.
pub async fn jwt_bearer(
    http: &IdpClient,
    meta: &Metadata,
    client: &ClientAuth,
    assertion: &SecretString,
    scopes: &[String],
) -> Result<Tokens, OAuthError> {
    let mut form = vec![
        (
            "grant_type",
            "urn:ietf:params:oauth:grant-type:jwt-bearer".to_string(),
        ),
        ("assertion", assertion.expose_secret().to_string()),
    ];
    scope_param(&mut form, scopes);
    request(http, &meta.token_endpoint, client, &meta.issuer, form).await
}

/// The JWT bearer grant for a resource (RFC 7523 §2.1, RFC 8707): a workload
/// JWT as the assertion.
pub async fn jwt_bearer_for(
    http: &IdpClient,
    meta: &Metadata,
    client: &ClientAuth,
    assertion: &SecretString,
    scopes: &[String],
    resource: Option<&str>,
) -> Result<Tokens, OAuthError> {
    let mut form = vec![
        (
            "grant_type",
            "urn:ietf:params:oauth:grant-type:jwt-bearer".to_string(),
        ),
        ("assertion", assertion.expose_secret().to_string()),
    ];
    scope_param(&mut form, scopes);
    if let Some(r) = resource {
        form.push(("resource", r.to_string()));
    }
    request(http, &meta.token_endpoint, client, &meta.issuer, form).await
}
