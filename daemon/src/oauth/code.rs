//! The authorization code grant with PKCE S256 (RFC 6749 §4.1, RFC 7636,
//! RFC 8252 loopback redirect): building the authorization URL and
//! exchanging the code.

use super::grant::{classify, client, token_set_from};
use super::http::IdpHttp;
use super::{extra_params, requested_scopes, Metadata, OAuthError};
use crate::tokens::TokenSet;
use oauth2::{
    AuthorizationCode, CsrfToken, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
};
use regent_proto::OAuthConfig;

/// What a browser login needs to remember between the redirect and the callback.
pub struct Authorization {
    /// The URL the user opens.
    pub url: String,
    /// The `state` the callback must echo.
    pub state: CsrfToken,
    /// The PKCE verifier (32 random bytes, base64url).
    pub verifier: PkceCodeVerifier,
    /// The loopback redirect URI.
    pub redirect: RedirectUrl,
}

/// Builds the authorization request for a loopback redirect on `port`.
pub fn authorize(
    config: &OAuthConfig,
    meta: &Metadata,
    port: u16,
) -> Result<Authorization, OAuthError> {
    let client = client(config, meta)?;
    let redirect = RedirectUrl::new(format!("http://127.0.0.1:{port}/callback"))
        .map_err(|e| OAuthError::Config(format!("redirect URI: {e}")))?;
    // S256 always: there is no code path that sends `plain`.
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256_len(32);
    let scopes = requested_scopes(config, meta);
    let offline = scopes.iter().any(|s| s == "offline_access");
    let mut req = client
        .authorize_url(|| CsrfToken::new_random_len(32))
        .map_err(|_| {
            OAuthError::Config(format!(
                "the IdP {} offers no authorization endpoint; use the device login",
                meta.issuer
            ))
        })?
        .set_pkce_challenge(challenge)
        .set_redirect_uri(std::borrow::Cow::Owned(redirect.clone()));
    for s in scopes {
        req = req.add_scope(Scope::new(s));
    }
    if offline {
        // OIDC Core §11: offline_access is honoured only with prompt=consent.
        req = req.add_extra_param("prompt", "consent");
    }
    for (k, v) in extra_params(config) {
        req = req.add_extra_param(k, v);
    }
    let (url, state) = req.url();
    Ok(Authorization {
        url: url.to_string(),
        state,
        verifier,
        redirect,
    })
}

/// Exchanges the authorization code for tokens.
pub async fn exchange(
    http: &IdpHttp,
    config: &OAuthConfig,
    meta: &Metadata,
    code: String,
    verifier: PkceCodeVerifier,
    redirect: &RedirectUrl,
) -> Result<TokenSet, OAuthError> {
    let client = client(config, meta)?;
    let mut req = client
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(verifier)
        .set_redirect_uri(std::borrow::Cow::Borrowed(redirect));
    for (k, v) in extra_params(config) {
        req = req.add_extra_param(k, v);
    }
    let answer = req.request_async(http).await.map_err(classify)?;
    Ok(token_set_from(answer, &meta.issuer, None))
}
