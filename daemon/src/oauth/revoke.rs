//! Token revocation (RFC 7009) as a plain form POST: the `oauth2` crate
//! refuses http revocation URLs, which loopback IdPs legitimately use.

use super::http::IdpClient;

/// Revokes `token` at `endpoint`. `Ok(())`: the IdP accepted it.
pub async fn revoke(
    http: &IdpClient,
    client_id: &str,
    endpoint: &str,
    token: &str,
    hint: &str,
) -> Result<(), String> {
    let form = [
        ("token", token),
        ("token_type_hint", hint),
        ("client_id", client_id),
    ];
    let resp = http
        .post_form(endpoint, &form)
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
