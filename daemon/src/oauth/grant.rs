//! The token endpoint: the client the agent builds from metadata, the
//! refresh grant, and the classification of its answers.

use super::http::{HttpError, IdpClient};
use super::{ClientAuth, Metadata, OAuthError, Target};
use oauth2::basic::{
    BasicErrorResponse, BasicErrorResponseType, BasicRevocationErrorResponse,
    BasicTokenIntrospectionResponse, BasicTokenType,
};
use oauth2::{
    AuthType, AuthUrl, Client, ClientId, ClientSecret, DeviceAuthorizationUrl, EndpointMaybeSet,
    EndpointNotSet, EndpointSet, ErrorResponse, ExtraTokenFields, RefreshToken, RequestTokenError,
    StandardRevocableToken, StandardTokenResponse, TokenResponse, TokenUrl,
};
use regent_proto::TokenAuthMethod;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// Token answers keep the `id_token`, which names the account for display.
/// Its `Debug` does not show it.
#[derive(Clone, Serialize, Deserialize, Default)]
pub struct IdTokenField {
    /// The OIDC ID token, if the IdP sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}
impl ExtraTokenFields for IdTokenField {}

impl std::fmt::Debug for IdTokenField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdTokenField")
            .field("id_token", &self.id_token.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// A token endpoint answer.
pub type TokenAnswer = StandardTokenResponse<IdTokenField, BasicTokenType>;

/// The public client the agent builds per IdP.
pub type PublicClient = Client<
    BasicErrorResponse,
    TokenAnswer,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointMaybeSet,
    EndpointMaybeSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// What a token endpoint answered, as the agent keeps it.
#[derive(Debug)]
pub struct Tokens {
    /// The access token.
    pub access_token: SecretString,
    /// Its lifetime, if the IdP said.
    pub expires_in: Option<std::time::Duration>,
    /// A refresh token, if one was issued (or rotated).
    pub refresh_token: Option<SecretString>,
    /// The granted scopes, space separated, if the IdP said.
    pub scope: Option<String>,
    /// Who logged in, from the ID token (for display only).
    pub account: Option<String>,
    /// The ID token itself (an enterprise IdP's login is exchanged with it).
    pub id_token: Option<SecretString>,
    /// The DPoP key they are bound to, where the request proved one.
    pub dpop_key: Option<std::sync::Arc<super::dpop::DpopKey>>,
    /// Whether the AS bound them (`token_type` DPoP, RFC 9449 §5): an AS
    /// that ignores the proof answers Bearer, and Bearer they stay.
    pub bound: bool,
}

impl From<TokenAnswer> for Tokens {
    fn from(answer: TokenAnswer) -> Tokens {
        Tokens {
            access_token: SecretString::from(answer.access_token().secret().clone()),
            expires_in: answer.expires_in(),
            refresh_token: answer
                .refresh_token()
                .map(|r| SecretString::from(r.secret().clone())),
            scope: answer
                .scopes()
                .map(|s| s.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ")),
            account: answer
                .extra_fields()
                .id_token
                .as_deref()
                .and_then(account_from_id_token),
            id_token: answer
                .extra_fields()
                .id_token
                .clone()
                .map(SecretString::from),
            dpop_key: None,
            bound: answer.token_type().as_ref().eq_ignore_ascii_case("dpop"),
        }
    }
}

/// Builds the client: its id in the request body for a public client; its
/// secret in a Basic header or in the body for a confidential one.
pub fn client(auth: &ClientAuth, meta: &Metadata) -> Result<PublicClient, OAuthError> {
    let bad = |what: &str, e: url::ParseError| OAuthError::Config(format!("{what}: {e}"));
    let authorize = meta
        .authorization_endpoint
        .clone()
        .map(AuthUrl::new)
        .transpose()
        .map_err(|e| bad("authorization_endpoint", e))?;
    let device = meta
        .device_authorization_endpoint
        .clone()
        .map(DeviceAuthorizationUrl::new)
        .transpose()
        .map_err(|e| bad("device_authorization_endpoint", e))?;
    let token = TokenUrl::new(meta.token_endpoint.clone()).map_err(|e| bad("token_endpoint", e))?;
    let mut c = Client::new(ClientId::new(auth.id.clone()))
        .set_auth_type(AuthType::RequestBody)
        .set_auth_uri_option(authorize)
        .set_device_authorization_url_option(device)
        .set_token_uri(token);
    match (auth.method, &auth.secret) {
        (TokenAuthMethod::None, _) => {}
        (TokenAuthMethod::ClientSecretBasic, Some(secret)) => {
            c = c
                .set_client_secret(ClientSecret::new(secret.expose_secret().to_string()))
                .set_auth_type(AuthType::BasicAuth);
        }
        (TokenAuthMethod::ClientSecretPost, Some(secret)) => {
            c = c.set_client_secret(ClientSecret::new(secret.expose_secret().to_string()));
        }
        (method, _) => {
            return Err(OAuthError::Config(format!(
                "client {} authenticates with {method:?}, which a user login cannot use here \
                 (or its secret is not stored)",
                auth.id
            )))
        }
    }
    Ok(c)
}

/// Runs the refresh grant for `target`.
pub async fn refresh(
    http: &IdpClient,
    auth: &ClientAuth,
    meta: &Metadata,
    refresh_token: &SecretString,
    target: &Target,
) -> Result<Tokens, OAuthError> {
    let rt = RefreshToken::new(refresh_token.expose_secret().to_string());
    let client = client(auth, meta)?;
    let mut req = client.exchange_refresh_token(&rt);
    for (k, v) in target.params() {
        req = req.add_extra_param(k, v);
    }
    let answer = req.request_async(http).await.map_err(classify)?;
    Ok(answer.into())
}

/// When a JWT expires (its `exp`), read without checking the signature:
/// only to know when to get a new one.
pub fn jwt_expiry(jwt: &str) -> Option<time::OffsetDateTime> {
    let claims = jwt_claims(jwt)?;
    time::OffsetDateTime::from_unix_timestamp(claims.get("exp")?.as_i64()?).ok()
}

/// The claims of a JWT, read without checking its signature.
pub(crate) fn jwt_claims(jwt: &str) -> Option<serde_json::Value> {
    use base64::Engine;
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The account an ID token names, for display only: `preferred_username`,
/// else `email`, else `sub`. The token came straight from the token endpoint
/// over the agent's own connection, which OIDC Core §3.1.3.7 accepts in place
/// of a signature check; nothing is authorised on this value.
pub fn account_from_id_token(jwt: &str) -> Option<String> {
    let claims = jwt_claims(jwt)?;
    ["preferred_username", "email", "sub"]
        .iter()
        .find_map(|k| claims.get(k).and_then(|v| v.as_str()).map(str::to_string))
}

/// Classifies a failed token request by what the agent does next.
pub fn classify<T>(e: RequestTokenError<HttpError, T>) -> OAuthError
where
    T: ErrorResponse + OAuthErrorCode,
{
    match e {
        RequestTokenError::ServerResponse(r) => {
            let code = r.code();
            let description = r.description();
            if code == "invalid_grant" {
                OAuthError::InvalidGrant(description.unwrap_or(code))
            } else if code == "temporarily_unavailable" {
                OAuthError::Unavailable(format!("the IdP is temporarily unavailable ({code})"))
            } else {
                OAuthError::Protocol { code, description }
            }
        }
        RequestTokenError::Request(HttpError::Refused(s)) => OAuthError::InvalidGrant(format!(
            "the IdP refused the request with HTTP {s} and no OAuth error"
        )),
        RequestTokenError::Request(HttpError::Status(s)) => {
            OAuthError::Unavailable(format!("the IdP answered HTTP {s}"))
        }
        RequestTokenError::Request(e) => {
            OAuthError::Unavailable(format!("cannot reach the IdP: {e}"))
        }
        RequestTokenError::Parse(e, _body) => OAuthError::Unavailable(format!(
            "the IdP's answer is not a valid token response ({})",
            e.inner()
        )),
        RequestTokenError::Other(m) => OAuthError::Unavailable(format!(
            "the IdP's answer is not a valid token response ({m})"
        )),
    }
}

/// The OAuth error code and description of an error answer.
pub trait OAuthErrorCode {
    /// The `error` field.
    fn code(&self) -> String;
    /// The `error_description` field, cut to a sane length.
    fn description(&self) -> Option<String>;
}

impl OAuthErrorCode for BasicErrorResponse {
    fn code(&self) -> String {
        match self.error() {
            BasicErrorResponseType::Extension(s) => shorten(s),
            other => other.as_ref().to_string(),
        }
    }
    fn description(&self) -> Option<String> {
        self.error_description().map(|d| shorten(d))
    }
}

impl OAuthErrorCode for oauth2::DeviceCodeErrorResponse {
    fn code(&self) -> String {
        shorten(self.error().as_ref())
    }
    fn description(&self) -> Option<String> {
        self.error_description().map(|d| shorten(d))
    }
}

/// Bounds text that comes from the IdP before it reaches a log or a user.
pub fn shorten(s: &str) -> String {
    const MAX: usize = 300;
    let s: String = s.chars().filter(|c| !c.is_control()).collect();
    if s.chars().count() <= MAX {
        s
    } else {
        format!("{}…", s.chars().take(MAX).collect::<String>())
    }
}
