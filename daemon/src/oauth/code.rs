//! The authorization code grant with PKCE S256 (RFC 6749 §4.1, RFC 7636,
//! RFC 8252 loopback redirect): building the authorization URL and
//! exchanging the code.

use super::grant::{classify, client, Tokens};
use super::http::IdpClient;
use super::{ClientAuth, Metadata, OAuthError, Target};
use oauth2::{
    AuthorizationCode, CsrfToken, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
};

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
    auth: &ClientAuth,
    meta: &Metadata,
    scopes: &[String],
    target: &Target,
    also: &[Target],
    port: u16,
) -> Result<Authorization, OAuthError> {
    let client = client(auth, meta)?;
    let redirect = RedirectUrl::new(format!("http://127.0.0.1:{port}/callback"))
        .map_err(|e| OAuthError::Config(format!("redirect URI: {e}")))?;
    // S256 always: there is no code path that sends `plain`.
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256_len(32);
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
        req = req.add_scope(Scope::new(s.clone()));
    }
    if offline {
        // OIDC Core §11: offline_access is honoured only with prompt=consent.
        req = req.add_extra_param("prompt", "consent");
    }
    for (k, v) in target.params() {
        req = req.add_extra_param(k, v);
    }
    // The other resources of the grant, so one login can mint a token for each.
    let mut named: Vec<&str> = target.resource.as_deref().into_iter().collect();
    for r in also.iter().filter_map(|t| t.resource.as_deref()) {
        if !named.contains(&r) {
            named.push(r);
            req = req.add_extra_param("resource", r.to_string());
        }
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
    http: &IdpClient,
    auth: &ClientAuth,
    meta: &Metadata,
    target: &Target,
    code: String,
    verifier: PkceCodeVerifier,
    redirect: &RedirectUrl,
) -> Result<Tokens, OAuthError> {
    let client = client(auth, meta)?;
    let mut req = client
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(verifier)
        .set_redirect_uri(std::borrow::Cow::Borrowed(redirect));
    for (k, v) in target.params() {
        req = req.add_extra_param(k, v);
    }
    let answer = req.request_async(http).await.map_err(classify)?;
    Ok(answer.into())
}
