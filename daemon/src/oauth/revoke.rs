//! Token revocation (RFC 7009) as a plain form POST: the `oauth2` crate
//! refuses http revocation URLs, which loopback IdPs legitimately use.

use super::http::IdpClient;
use super::ClientAuth;

/// Revokes `token` at `endpoint`, authenticated as `client` (RFC 7009 §2.1).
/// `Ok(())`: the IdP accepted it.
pub async fn revoke(
    http: &IdpClient,
    client: &ClientAuth,
    issuer: &str,
    endpoint: &str,
    token: &str,
    hint: &str,
) -> Result<(), String> {
    let mut form = vec![
        ("token", token.to_string()),
        ("token_type_hint", hint.to_string()),
    ];
    let header = client.apply(&mut form, issuer).map_err(|e| e.to_string())?;
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form.iter().map(|(k, v)| (*k, v.as_str())))
        .finish();
    let mut req = oauth2::http::Request::post(endpoint)
        .header("content-type", "application/x-www-form-urlencoded");
    if let Some(h) = header {
        req = req.header("authorization", h);
    }
    let req = req.body(body.into_bytes()).map_err(|e| e.to_string())?;
    let resp = http
        .send(req)
        .await
        .map_err(|e| format!("the IdP's revocation endpoint: {e}"))?;
    let status = resp.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!(
            "the IdP's revocation endpoint answered HTTP {}",
            status.as_u16()
        ))
    }
}
