//! The authorization code grant with PKCE S256 (RFC 6749 §4.1, RFC 7636,
//! RFC 8252 loopback redirect): building the authorization URL and
//! exchanging the code.

use super::grant::{classify, client, Tokens};
use super::http::IdpClient;
use super::{ClientAuth, Metadata, OAuthError, Target};
use oauth2::{
    AuthorizationCode, CsrfToken, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
};
use secrecy::ExposeSecret;

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
    /// The OpenID `nonce` sent when `openid` is asked for, which the ID
    /// token must carry back (OIDC Core §3.1.2.1, §3.1.3.7).
    pub nonce: Option<String>,
}

/// Builds the authorization request for a loopback redirect on `port`;
/// `dpop_jkt` is the thumbprint of the login's DPoP key, for a bound login.
pub fn authorize(
    auth: &ClientAuth,
    meta: &Metadata,
    scopes: &[String],
    target: &Target,
    also: &[Target],
    port: u16,
    dpop_jkt: Option<&str>,
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
    // Some OpenID Providers require a nonce with `openid`; it is the ID
    // token's replay defence in any case.
    let nonce = scopes
        .iter()
        .any(|s| s == "openid")
        .then(|| CsrfToken::new_random_len(32).secret().clone());
    if let Some(n) = &nonce {
        req = req.add_extra_param("nonce", n.clone());
    }
    if offline {
        // OIDC Core §11: offline_access is honoured only with prompt=consent.
        req = req.add_extra_param("prompt", "consent");
    }
    // RFC 9449 §10: the code is bound to the key that will redeem it, so a
    // code stolen on its way back (another app on the loopback port, a
    // logged redirect) is useless without the agent's key.
    if let Some(jkt) = dpop_jkt {
        req = req.add_extra_param("dpop_jkt", jkt.to_string());
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
        nonce,
    })
}

/// Exchanges the authorization code for tokens; an ID token must carry
/// the `nonce` the authorization request sent.
#[allow(clippy::too_many_arguments)]
pub async fn exchange(
    http: &IdpClient,
    auth: &ClientAuth,
    meta: &Metadata,
    target: &Target,
    code: String,
    verifier: PkceCodeVerifier,
    redirect: &RedirectUrl,
    nonce: Option<&str>,
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
    let tokens: Tokens = answer.into();
    if let (Some(sent), Some(id_token)) = (nonce, &tokens.id_token) {
        check_nonce(id_token.expose_secret(), sent)?;
    }
    Ok(tokens)
}

/// Whether the ID token carries the nonce this login sent: one from another
/// login (replayed, or injected with a stolen code) does not.
fn check_nonce(id_token: &str, sent: &str) -> Result<(), OAuthError> {
    let claims = super::grant::jwt_claims(id_token).ok_or_else(|| OAuthError::Protocol {
        code: "invalid_id_token".into(),
        description: Some("the ID token is not a readable JWT".into()),
    })?;
    match claims.get("nonce").and_then(|n| n.as_str()) {
        Some(n) if n == sent => Ok(()),
        Some(_) => Err(OAuthError::Protocol {
            code: "invalid_id_token".into(),
            description: Some(
                "the ID token carries another login's nonce: refused (a replayed or injected ID token)"
                    .into(),
            ),
        }),
        None => Err(OAuthError::Protocol {
            code: "invalid_id_token".into(),
            description: Some(
                "the ID token has no nonce although this login sent one (OIDC Core 3.1.3.7): refused"
                    .into(),
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn jwt(claims: serde_json::Value) -> String {
        let b = |v: &serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        format!(
            "{}.{}.sig",
            b(&serde_json::json!({"alg": "RS256"})),
            b(&claims)
        )
    }

    /// An ID token is accepted only with the nonce its login sent.
    #[test]
    fn the_id_token_must_carry_the_nonce_sent() {
        assert!(check_nonce(&jwt(serde_json::json!({"nonce": "n1"})), "n1").is_ok());
        let other = check_nonce(&jwt(serde_json::json!({"nonce": "n0"})), "n1").unwrap_err();
        assert!(
            other.to_string().contains("another login's nonce"),
            "{other}"
        );
        let none = check_nonce(&jwt(serde_json::json!({"sub": "u"})), "n1").unwrap_err();
        assert!(none.to_string().contains("has no nonce"), "{none}");
        assert!(check_nonce("garbage", "n1").is_err());
    }

    /// `openid` brings a fresh nonce to the authorization URL; no `openid`, none.
    #[test]
    fn a_nonce_goes_with_openid_only() {
        let meta: Metadata = serde_json::from_value(serde_json::json!({
            "issuer": "https://idp.test",
            "authorization_endpoint": "https://idp.test/auth",
            "token_endpoint": "https://idp.test/token",
        }))
        .unwrap();
        let auth = ClientAuth::public("regent-cli");
        let with = |scopes: &[&str]| {
            let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
            authorize(&auth, &meta, &scopes, &Target::default(), &[], 4000, None).unwrap()
        };
        let a = with(&["openid", "profile"]);
        let b = with(&["openid"]);
        let n = a.nonce.clone().unwrap();
        assert!(a.url.contains(&format!("nonce={n}")), "{}", a.url);
        assert_ne!(a.nonce, b.nonce, "a nonce is used once");
        let c = with(&["mcp:tools"]);
        assert!(c.nonce.is_none() && !c.url.contains("nonce="), "{}", c.url);
    }
}
