//! Protected resource metadata (RFC 9728): where a resource says which
//! authorization server guards it, and the checks that make it safe to use.
//! Strings that go on the wire (`resource`) are used as the server wrote
//! them, never round-tripped through a URL parser that would add a slash.

use super::discovery::DiscoveryError;
use super::http::IdpClient;
use serde::Deserialize;
use url::Url;

/// A protected resource's metadata document.
#[derive(Debug, Clone, Deserialize)]
pub struct ResourceMetadata {
    /// The resource identifier (sent as `resource` on every request for it).
    pub resource: String,
    /// Its authorization servers (the first is used).
    #[serde(default)]
    pub authorization_servers: Vec<String>,
    /// Scopes it knows.
    #[serde(default)]
    pub scopes_supported: Option<Vec<String>>,
    /// The DPoP proof algorithms it takes (RFC 9728 §2).
    #[serde(default)]
    pub dpop_signing_alg_values_supported: Option<Vec<String>>,
    /// It takes only DPoP-bound tokens (RFC 9728 §2).
    #[serde(default)]
    pub dpop_bound_access_tokens_required: bool,
}

impl ResourceMetadata {
    /// Whether it names DPoP: bound tokens required, or ES256 proofs taken.
    pub fn names_dpop(&self) -> bool {
        self.dpop_bound_access_tokens_required
            || self
                .dpop_signing_alg_values_supported
                .as_ref()
                .is_some_and(|a| a.iter().any(|a| a == super::dpop::ALG))
    }
}

/// The documents to try, in the order of RFC 9728 §3 and the MCP
/// specification: the challenge's `resource_metadata`; else the well-known
/// URL with the resource's path inserted, then at the root.
pub fn candidates(resource_url: &str, from_challenge: Option<&str>) -> Result<Vec<String>, String> {
    if let Some(u) = from_challenge {
        return Ok(vec![u.to_string()]);
    }
    let u = Url::parse(resource_url).map_err(|e| format!("{resource_url:?} is not a URL: {e}"))?;
    let origin = u.origin().ascii_serialization();
    let path = u.path().trim_end_matches('/');
    let mut v = Vec::new();
    if !path.is_empty() {
        v.push(format!(
            "{origin}/.well-known/oauth-protected-resource{path}"
        ));
    }
    v.push(format!("{origin}/.well-known/oauth-protected-resource"));
    Ok(v)
}

/// The first document found among `urls`, and where; `None` when none is.
pub async fn fetch(
    http: &IdpClient,
    urls: &[String],
) -> Result<Option<(ResourceMetadata, String)>, DiscoveryError> {
    for url in urls {
        super::discovery::check_secure_url("resource metadata URL", url)
            .map_err(DiscoveryError::Invalid)?;
        let resp = http
            .get_json(url)
            .await
            .map_err(|e| DiscoveryError::Unreachable(format!("cannot reach {url}: {e}")))?;
        if resp.status().is_server_error() {
            return Err(DiscoveryError::Unreachable(format!(
                "{url} answered HTTP {}",
                resp.status().as_u16()
            )));
        }
        if !resp.status().is_success() {
            continue;
        }
        let meta: ResourceMetadata = serde_json::from_slice(resp.body()).map_err(|e| {
            DiscoveryError::Invalid(format!(
                "{url} is not a protected resource metadata document: {e}"
            ))
        })?;
        return Ok(Some((meta, url.clone())));
    }
    Ok(None)
}

/// Whether metadata naming `resource` may speak for `url`: the same origin,
/// and `url`'s path at or under the resource's (RFC 9728 §3.3; a document
/// naming another resource is refused, and no authorization request is made).
pub fn identifies(resource: &str, url: &str) -> bool {
    let (Ok(r), Ok(u)) = (Url::parse(resource), Url::parse(url)) else {
        return false;
    };
    if r.origin() != u.origin() || r.fragment().is_some() {
        return false;
    }
    let base = r.path().trim_end_matches('/');
    let path = u.path();
    path == base || path.starts_with(&format!("{base}/")) || base.is_empty()
}

/// A resource's canonical URI (RFC 8707, MCP): lowercase scheme and host,
/// no fragment, no trailing slash (the root is the bare origin).
pub fn canonical(url: &str) -> Result<String, String> {
    let mut u = Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    u.set_fragment(None);
    let s = u.to_string();
    Ok(match (u.path(), u.query()) {
        ("/", None) => s.trim_end_matches('/').to_string(),
        (p, None) if p.ends_with('/') => s.trim_end_matches('/').to_string(),
        _ => s,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_in_the_rfc_9728_order() {
        assert_eq!(
            candidates("http://localhost:8/mcp", None).unwrap(),
            vec![
                "http://localhost:8/.well-known/oauth-protected-resource/mcp",
                "http://localhost:8/.well-known/oauth-protected-resource"
            ]
        );
        assert_eq!(
            candidates("https://r.example/", None).unwrap(),
            vec!["https://r.example/.well-known/oauth-protected-resource"]
        );
        assert_eq!(
            candidates(
                "https://r.example/mcp",
                Some("https://r.example/custom.json")
            )
            .unwrap(),
            vec!["https://r.example/custom.json"]
        );
    }

    #[test]
    fn a_document_speaks_only_for_its_own_resource() {
        assert!(identifies(
            "http://localhost:8/mcp",
            "http://localhost:8/mcp"
        ));
        assert!(identifies("http://localhost:8", "http://localhost:8/mcp"));
        assert!(identifies("http://localhost:8/", "http://localhost:8/mcp"));
        assert!(identifies(
            "https://r.example/api",
            "https://r.example/api/v0.1/servers"
        ));
        assert!(!identifies(
            "https://evil.example.com/mcp",
            "http://localhost:8/mcp"
        ));
        assert!(!identifies(
            "http://localhost:9/mcp",
            "http://localhost:8/mcp"
        ));
        assert!(!identifies(
            "http://localhost:8/other",
            "http://localhost:8/mcp"
        ));
        assert!(!identifies(
            "http://localhost:8/mc",
            "http://localhost:8/mcp"
        ));
        assert!(!identifies(
            "https://localhost:8/mcp",
            "http://localhost:8/mcp"
        ));
    }

    #[test]
    fn canonical_uris() {
        assert_eq!(
            canonical("HTTPS://MCP.Example.com/MCP#frag").unwrap(),
            "https://mcp.example.com/MCP"
        );
        assert_eq!(
            canonical("https://mcp.example.com/").unwrap(),
            "https://mcp.example.com"
        );
        assert_eq!(
            canonical("https://mcp.example.com").unwrap(),
            "https://mcp.example.com"
        );
        assert_eq!(
            canonical("https://mcp.example.com:8443/mcp/").unwrap(),
            "https://mcp.example.com:8443/mcp"
        );
        assert_eq!(
            canonical("https://mcp.example.com/mcp?x=1").unwrap(),
            "https://mcp.example.com/mcp?x=1"
        );
    }
}
