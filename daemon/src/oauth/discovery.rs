//! Authorization server metadata (RFC 8414 / OIDC Discovery) in the MCP
//! order, with the checks that make a configuration safe to use, and the
//! agent's cache of it ([`Issuers`]).

use super::http::IdpClient;
use super::OAuthError;
use regent_proto::Endpoints;
use serde::Deserialize;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use url::Url;

/// What the agent needs from an IdP's metadata document.
#[derive(Debug, Clone, Deserialize)]
pub struct Metadata {
    /// Must equal the configured issuer exactly.
    pub issuer: String,
    /// Browser login.
    #[serde(default)]
    pub authorization_endpoint: Option<String>,
    /// Every grant.
    pub token_endpoint: String,
    /// Device login (RFC 8628).
    #[serde(default)]
    pub device_authorization_endpoint: Option<String>,
    /// Logout (RFC 7009).
    #[serde(default)]
    pub revocation_endpoint: Option<String>,
    /// Must contain `S256`.
    #[serde(default)]
    pub code_challenge_methods_supported: Vec<String>,
    /// `None` when the IdP does not list them.
    #[serde(default)]
    pub scopes_supported: Option<Vec<String>>,
    /// RFC 9207: the authorization response then must carry `iss`.
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: bool,
    /// Dynamic client registration (RFC 7591).
    #[serde(default)]
    pub registration_endpoint: Option<String>,
    /// How clients may authenticate at the token endpoint (RFC 8414 default: basic).
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Option<Vec<String>>,
    /// Client ID metadata documents (an https URL as the client id).
    #[serde(default)]
    pub client_id_metadata_document_supported: bool,
    /// The grant types it supports (`None`: not listed).
    #[serde(default)]
    pub grant_types_supported: Option<Vec<String>>,
    /// The algorithms it takes for client assertions (`None`: not listed).
    #[serde(default)]
    pub token_endpoint_auth_signing_alg_values_supported: Option<Vec<String>>,
    /// The algorithms it takes for DPoP proofs (RFC 9449 §5.1): it offers DPoP.
    #[serde(default)]
    pub dpop_signing_alg_values_supported: Option<Vec<String>>,
}

/// How to find an authorization server's metadata, and what it must offer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Issuer {
    /// The issuer identifier.
    pub issuer: String,
    /// Fetch exactly this document (found by discovery at a non-standard place).
    pub metadata_url: Option<String>,
    /// No metadata at all: these endpoints (an MCP 2025-03-26 server's defaults).
    pub endpoints: Option<Endpoints>,
    /// What is required of PKCE.
    pub pkce: Pkce,
}

impl Issuer {
    /// An AS where no authorization code flow runs (client credentials, token
    /// exchange, jwt-bearer): its metadata need not offer PKCE.
    pub fn without_code_flow(issuer: &str, metadata_url: Option<&str>) -> Issuer {
        Issuer {
            issuer: issuer.to_string(),
            metadata_url: metadata_url.map(str::to_string),
            endpoints: None,
            pkce: Pkce::NotNeeded,
        }
    }
}

/// What the metadata must say about PKCE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pkce {
    /// `S256` must be listed (an authorization code flow runs there).
    Required,
    /// Assumed though not listed (`--assume-pkce-s256`; Entra ID); S256 is used.
    Assumed,
    /// No authorization code flow runs there (client credentials, token exchange).
    NotNeeded,
}

impl Issuer {
    /// An issuer found at its well-known URLs, for code flows.
    pub fn plain(issuer: &str) -> Issuer {
        Issuer {
            issuer: issuer.to_string(),
            metadata_url: None,
            endpoints: None,
            pkce: Pkce::Required,
        }
    }
}

/// Why discovery failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DiscoveryError {
    /// The IdP could not be reached (retryable).
    #[error("{0}")]
    Unreachable(String),
    /// The configuration or the document is unusable (the user must act).
    #[error("{0}")]
    Invalid(String),
    /// The metadata names another issuer than the one it was looked up for.
    #[error("the metadata at {url} names issuer {named:?}, not {expected:?}; the issuer must match exactly (RFC 8414 §3.3){}", mismatch_hint(expected, named))]
    IssuerMismatch {
        /// The document's URL.
        url: String,
        /// The issuer it names.
        named: String,
        /// The issuer it was looked up for.
        expected: String,
    },
}

/// What a person should check, where the two issuers differ in a way that has a name.
fn mismatch_hint(expected: &str, named: &str) -> &'static str {
    if expected.trim_end_matches('/') == named.trim_end_matches('/') {
        " — they differ only in a trailing slash, which regent overlooks only where the issuer \
         is at the root of its host (both forms name the same metadata there)"
    } else {
        " — check for a different host, port or path"
    }
}

/// Whether `named` is `expected` without the `/` of a root path: `http://h:p/`
/// and `http://h:p` name the same metadata URL (RFC 8414 §3.1), and servers
/// built on URL types write the first for an AS whose issuer is the second.
pub fn root_slash_only(expected: &str, named: &str) -> bool {
    expected.strip_suffix('/') == Some(named)
        && Url::parse(expected).is_ok_and(|u| u.path() == "/" && u.query().is_none())
        && Url::parse(named).is_ok_and(|u| u.path() == "/")
}

/// Checks that `url` is https, or http on a loopback host.
pub fn check_secure_url(what: &str, url: &str) -> Result<Url, String> {
    if url.chars().any(char::is_control) {
        // A terminal would act on them (clear the screen, hide a link).
        return Err(format!("{what} {url:?} has control characters"));
    }
    let u = Url::parse(url).map_err(|e| format!("{what} {url:?} is not a URL: {e}"))?;
    match u.scheme() {
        "https" => {}
        "http" if is_loopback(&u) => {}
        "http" => {
            return Err(format!(
                "{what} {url} uses http; only https is allowed (http only on a loopback host)"
            ))
        }
        s => return Err(format!("{what} {url} has scheme {s:?}; it must be https")),
    }
    if u.host().is_none() {
        return Err(format!("{what} {url} has no host"));
    }
    Ok(u)
}

fn is_loopback(u: &Url) -> bool {
    match u.host() {
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// The metadata URLs to try, in the MCP order: OAuth metadata with path
/// insertion, OIDC with path insertion, OIDC appended to the issuer path.
pub fn candidate_urls(issuer: &Url) -> Vec<String> {
    let origin = issuer.origin().ascii_serialization();
    let path = issuer.path().trim_end_matches('/');
    let mut v = vec![
        format!("{origin}/.well-known/oauth-authorization-server{path}"),
        format!("{origin}/.well-known/openid-configuration{path}"),
        format!("{origin}{path}/.well-known/openid-configuration"),
    ];
    v.dedup();
    v
}

/// The metadata of every issuer in use, discovered once (at configure time,
/// or on first need after a start).
#[derive(Default)]
pub struct Issuers {
    known: Mutex<HashMap<String, Arc<Metadata>>>,
}

impl Issuers {
    /// The issuer's metadata. The configuration was validated when it was
    /// set, so a document that is now missing or broken is an outage (retried
    /// on the next need), not a logout.
    pub async fn get(&self, idp: &IdpClient, issuer: &Issuer) -> Result<Arc<Metadata>, OAuthError> {
        if let Some(m) = self
            .known
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&issuer.issuer)
        {
            return Ok(m.clone());
        }
        let meta = discover(idp, issuer)
            .await
            .map_err(|e| OAuthError::Unavailable(format!("IdP metadata: {e}")))?;
        Ok(self.put(meta))
    }

    /// Remembers freshly discovered metadata (a configuration change).
    pub fn put(&self, meta: Metadata) -> Arc<Metadata> {
        let meta = Arc::new(meta);
        self.known
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(meta.issuer.clone(), meta.clone());
        meta
    }
}

/// Fetches and validates the issuer's metadata. Where the first document
/// found names no revocation endpoint, the other documents of the same
/// issuer are asked for one (some servers publish it in one only).
pub async fn discover(http: &IdpClient, issuer: &Issuer) -> Result<Metadata, DiscoveryError> {
    let pkce = issuer.pkce;
    if let Some(e) = &issuer.endpoints {
        return Ok(Metadata::defaults(&issuer.issuer, e));
    }
    if let Some(url) = &issuer.metadata_url {
        let meta = fetch(http, url)
            .await?
            .ok_or_else(|| DiscoveryError::Invalid(format!("no metadata document at {url}")))?;
        validate(&meta, &issuer.issuer, url, pkce)?;
        return Ok(meta);
    }
    let issuer = issuer.issuer.as_str();
    let issuer_url = check_secure_url("issuer", issuer).map_err(DiscoveryError::Invalid)?;
    if issuer_url.query().is_some() || issuer_url.fragment().is_some() {
        return Err(DiscoveryError::Invalid(format!(
            "issuer {issuer} must not have a query or fragment (RFC 8414 §2)"
        )));
    }
    let mut tried = Vec::new();
    let candidates = candidate_urls(&issuer_url);
    for (n, url) in candidates.iter().enumerate() {
        let resp = http.get_json(url).await.map_err(|e| {
            DiscoveryError::Unreachable(format!("cannot reach the IdP at {url}: {e}"))
        })?;
        let status = resp.status();
        if status.is_server_error() {
            return Err(DiscoveryError::Unreachable(format!(
                "the IdP answered HTTP {} at {url}",
                status.as_u16()
            )));
        }
        if !status.is_success() {
            tried.push(format!("{url} (HTTP {})", status.as_u16()));
            continue;
        }
        let mut meta: Metadata = match serde_json::from_slice(resp.body()) {
            Ok(m) => m,
            Err(e) => {
                tried.push(format!("{url} (not a metadata document: {e})"));
                continue;
            }
        };
        validate(&meta, issuer, url, pkce)?;
        if meta.revocation_endpoint.is_none() {
            meta.revocation_endpoint =
                revocation_elsewhere(http, issuer, &candidates[n + 1..]).await;
        }
        return Ok(meta);
    }
    Err(DiscoveryError::Invalid(format!(
        "no metadata found for issuer {issuer}; tried {}",
        tried.join(", ")
    )))
}

/// A revocation endpoint from another metadata document of the same issuer, if any.
async fn revocation_elsewhere(http: &IdpClient, issuer: &str, urls: &[String]) -> Option<String> {
    for url in urls {
        let Ok(resp) = http.get_json(url).await else {
            continue;
        };
        if !resp.status().is_success() {
            continue;
        }
        let Ok(meta) = serde_json::from_slice::<Metadata>(resp.body()) else {
            continue;
        };
        match meta.revocation_endpoint {
            Some(ep)
                if meta.issuer == issuer
                    && check_secure_url("revocation_endpoint", &ep).is_ok() =>
            {
                return Some(ep)
            }
            _ => {}
        }
    }
    None
}

/// One metadata document: `Ok(None)` when there is none at `url` (any 4xx,
/// or not a metadata document), an error when the server is not there.
pub async fn fetch(http: &IdpClient, url: &str) -> Result<Option<Metadata>, DiscoveryError> {
    let resp = http
        .get_json(url)
        .await
        .map_err(|e| DiscoveryError::Unreachable(format!("cannot reach the IdP at {url}: {e}")))?;
    let status = resp.status();
    if status.is_server_error() {
        return Err(DiscoveryError::Unreachable(format!(
            "the IdP answered HTTP {} at {url}",
            status.as_u16()
        )));
    }
    if !status.is_success() {
        return Ok(None);
    }
    Ok(serde_json::from_slice(resp.body()).ok())
}

impl Metadata {
    /// The metadata of an AS that publishes none: its default endpoints.
    pub fn defaults(issuer: &str, e: &Endpoints) -> Metadata {
        Metadata {
            issuer: issuer.to_string(),
            authorization_endpoint: Some(e.authorization.clone()),
            token_endpoint: e.token.clone(),
            device_authorization_endpoint: None,
            revocation_endpoint: None,
            // S256 is what regent sends; with no metadata there is nothing to check it against.
            code_challenge_methods_supported: vec!["S256".into()],
            scopes_supported: None,
            authorization_response_iss_parameter_supported: false,
            registration_endpoint: None,
            token_endpoint_auth_methods_supported: None,
            client_id_metadata_document_supported: false,
            grant_types_supported: None,
            token_endpoint_auth_signing_alg_values_supported: None,
            dpop_signing_alg_values_supported: None,
        }
    }
}

/// Checks a metadata document against the issuer it was fetched for.
pub fn validate(
    meta: &Metadata,
    issuer: &str,
    url: &str,
    pkce: Pkce,
) -> Result<(), DiscoveryError> {
    let invalid = |m: String| Err(DiscoveryError::Invalid(m));
    if meta.issuer != issuer {
        return Err(DiscoveryError::IssuerMismatch {
            url: url.to_string(),
            named: meta.issuer.clone(),
            expected: issuer.to_string(),
        });
    }
    if pkce == Pkce::Required
        && !meta
            .code_challenge_methods_supported
            .iter()
            .any(|m| m == "S256")
    {
        return invalid(format!(
            "the IdP does not advertise PKCE S256 (code_challenge_methods_supported: {:?}); \
             regent requires it. If it supports S256 without saying so (Microsoft Entra ID \
             does), add --assume-pkce-s256",
            meta.code_challenge_methods_supported
        ));
    }
    let endpoints = [
        ("token_endpoint", Some(&meta.token_endpoint)),
        (
            "authorization_endpoint",
            meta.authorization_endpoint.as_ref(),
        ),
        (
            "device_authorization_endpoint",
            meta.device_authorization_endpoint.as_ref(),
        ),
        ("revocation_endpoint", meta.revocation_endpoint.as_ref()),
        ("registration_endpoint", meta.registration_endpoint.as_ref()),
    ];
    for (name, value) in endpoints {
        if let Some(v) = value {
            check_secure_url(name, v).map_err(DiscoveryError::Invalid)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only a root path's slash is overlooked; any other difference is not.
    #[test]
    fn a_root_slash_alone_may_differ() {
        assert!(root_slash_only(
            "http://127.0.0.1:9000/",
            "http://127.0.0.1:9000"
        ));
        assert!(root_slash_only("https://as.example/", "https://as.example"));
        assert!(!root_slash_only(
            "https://as.example/tenant/",
            "https://as.example/tenant"
        ));
        assert!(!root_slash_only(
            "https://as.example",
            "https://as.example/"
        ));
        assert!(!root_slash_only(
            "https://as.example/",
            "https://AS.example"
        ));
        assert!(!root_slash_only(
            "https://as.example/",
            "https://other.example"
        ));
        let e = DiscoveryError::IssuerMismatch {
            url: "u".into(),
            named: "https://as.example/tenant".into(),
            expected: "https://as.example/tenant/".into(),
        };
        assert!(e.to_string().contains("only in a trailing slash"), "{e}");
    }

    #[test]
    fn candidates_follow_the_mcp_order() {
        let u = Url::parse("https://idp.example/tenant/a").unwrap();
        assert_eq!(
            candidate_urls(&u),
            vec![
                "https://idp.example/.well-known/oauth-authorization-server/tenant/a",
                "https://idp.example/.well-known/openid-configuration/tenant/a",
                "https://idp.example/tenant/a/.well-known/openid-configuration",
            ]
        );
        let root = Url::parse("https://idp.example").unwrap();
        assert_eq!(
            candidate_urls(&root),
            vec![
                "https://idp.example/.well-known/oauth-authorization-server",
                "https://idp.example/.well-known/openid-configuration",
            ]
        );
    }

    #[test]
    fn http_only_on_loopback() {
        assert!(check_secure_url("issuer", "http://127.0.0.1:8080").is_ok());
        assert!(check_secure_url("issuer", "http://[::1]:8080").is_ok());
        assert!(check_secure_url("issuer", "http://localhost").is_ok());
        let e = check_secure_url("issuer", "http://idp.example").unwrap_err();
        assert!(e.contains("only https"), "{e}");
        assert!(check_secure_url("issuer", "ftp://idp.example").is_err());
        let e = check_secure_url("issuer", "https://idp.example/\u{1b}]8;;x").unwrap_err();
        assert!(
            e.contains("control characters") && !e.contains('\u{1b}'),
            "{e}"
        );
    }

    #[test]
    fn metadata_needs_exact_issuer_and_s256() {
        let mut m: Metadata = serde_json::from_value(serde_json::json!({
            "issuer": "https://idp.example/",
            "token_endpoint": "https://idp.example/token",
            "code_challenge_methods_supported": ["S256"]
        }))
        .unwrap();
        let e = validate(&m, "https://idp.example", "u", Pkce::Required)
            .unwrap_err()
            .to_string();
        assert!(e.contains("must match exactly"), "{e}");
        m.issuer = "https://idp.example".into();
        assert!(validate(&m, "https://idp.example", "u", Pkce::Required).is_ok());
        m.code_challenge_methods_supported = vec!["plain".into()];
        let e = validate(&m, "https://idp.example", "u", Pkce::Required)
            .unwrap_err()
            .to_string();
        assert!(e.contains("S256"), "{e}");
    }
}
