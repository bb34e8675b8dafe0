//! Token revocation (RFC 7009) as a plain form POST: the `oauth2` crate
//! refuses http revocation URLs, which loopback IdPs legitimately use.

use super::http::error_chain;
use regent_proto::OAuthConfig;

/// Revokes `token` at `endpoint`. `Ok(true)`: the IdP accepted it.
pub async fn revoke(
    http: &reqwest::Client,
    config: &OAuthConfig,
    endpoint: &str,
    token: &str,
    hint: &str,
) -> Result<bool, String> {
    let form = [
        ("token", token),
        ("token_type_hint", hint),
        ("client_id", config.client_id.as_str()),
    ];
    let resp = http.post(endpoint).form(&form).send().await.map_err(|e| {
        format!(
            "cannot reach the IdP's revocation endpoint: {}",
            error_chain(&e)
        )
    })?;
    let status = resp.status();
    if status.is_success() {
        Ok(true)
    } else {
        Err(format!(
            "the IdP's revocation endpoint answered HTTP {}",
            status.as_u16()
        ))
    }
}
