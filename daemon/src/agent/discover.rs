//! How a resource wants to be authorized, found from the resource itself
//! (MCP authorization 2025-11-25, RFC 9728): the unauthenticated request and
//! its `WWW-Authenticate` challenge, the protected resource metadata, the
//! authorization server's metadata; and the MCP 2025-03-26 fallbacks where a
//! server publishes no resource metadata.

use crate::ctx::Ctx;
use crate::oauth::challenge::Challenge;
use crate::oauth::discovery::{self, DiscoveryError, Issuer, Metadata, Pkce};
use crate::oauth::resource;
use crate::resource::Kind;
use regent_proto::Endpoints;

/// What the unauthenticated request found.
pub enum Probe {
    /// The resource answered without asking for a token.
    Open,
    /// A 401, with its challenge (empty when it sent none).
    Challenged(Challenge),
}

/// What discovery found.
pub struct Found {
    /// The `resource` to send on every request (the metadata's, verbatim;
    /// else the canonical URI).
    pub resource: String,
    /// How to reach the authorization server, as it is to be configured.
    pub issuer: Issuer,
    /// Its metadata.
    pub meta: Metadata,
    /// The scopes to ask for: the challenge's, else the resource's
    /// `scopes_supported`, else none.
    pub scopes: Vec<String>,
}

/// The revision whose wire the probe speaks.
const PROBE_VERSION: &str = "2026-07-28";

/// What an MCP server is probed with: `server/discover` on the stateless
/// wire (its version in `_meta` and the header, SEP-2575; `Mcp-Method`,
/// SEP-2243). A server asks for auth before it dispatches, so a 2025-era
/// server answers its 401 to it as well; it opens no session on either.
fn discover_request() -> serde_json::Value {
    serde_json::json!({
        "jsonrpc": "2.0", "id": 0, "method": "server/discover",
        "params": {
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": PROBE_VERSION,
                "io.modelcontextprotocol/clientInfo": {"name": "regent", "version": env!("CARGO_PKG_VERSION")},
                "io.modelcontextprotocol/clientCapabilities": {}
            }
        }
    })
}

/// Requests the resource without a token: an MCP server gets a
/// `server/discover` (and, should a server open a session for it, its
/// `DELETE`), a registry a one-entry list.
pub async fn probe(ctx: &Ctx, kind: Kind, url: &str) -> Result<Probe, String> {
    let req = match kind {
        Kind::Mcp => oauth2::http::Request::post(url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", PROBE_VERSION)
            .header("mcp-method", "server/discover")
            .body(discover_request().to_string().into_bytes()),
        Kind::Registry => {
            let base = url.trim_end_matches('/');
            oauth2::http::Request::get(format!("{base}/v0.1/servers?limit=1"))
                .header("accept", "application/json")
                .body(Vec::new())
        }
        Kind::Idp => return Ok(Probe::Open),
    }
    .map_err(|e| e.to_string())?;
    let resp = ctx
        .idp
        .send(req)
        .await
        .map_err(|e| format!("cannot reach {url}: {e}"))?;
    if let Some(session) = resp.headers().get("mcp-session-id") {
        // Be a good citizen: the probe's session is not used.
        if let Ok(del) = oauth2::http::Request::delete(url)
            .header("mcp-session-id", session.clone())
            .body(Vec::new())
        {
            let _ = ctx.idp.send(del).await;
        }
    }
    if resp.status().as_u16() != 401 {
        return Ok(Probe::Open);
    }
    let challenge = resp
        .headers()
        .get_all("www-authenticate")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(Challenge::parse)
        .unwrap_or_default();
    Ok(Probe::Challenged(challenge))
}

/// Finds the authorization server of the resource at `url`.
pub async fn find(
    ctx: &Ctx,
    url: &str,
    challenge: &Challenge,
    pkce: Pkce,
) -> Result<Found, String> {
    let candidates = resource::candidates(url, challenge.resource_metadata.as_deref())?;
    let prm = resource::fetch(&ctx.idp, &candidates).await.map_err(text)?;
    let challenged_scopes = challenge.scope.clone().filter(|s| !s.is_empty());
    let Some((prm, at)) = prm else {
        if challenge.resource_metadata.is_some() {
            return Err(format!(
                "the server names protected resource metadata at {} but none is there",
                candidates[0]
            ));
        }
        return legacy(ctx, url, challenged_scopes.unwrap_or_default(), pkce).await;
    };
    // A document naming another resource is refused before anything else happens.
    if !resource::identifies(&prm.resource, url) {
        return Err(format!(
            "the protected resource metadata at {at} is for {}, not for {url}; refused (RFC 9728 §3.3), \
             and no authorization request was made",
            prm.resource
        ));
    }
    let as_url = prm.authorization_servers.first().ok_or_else(|| {
        format!("the protected resource metadata at {at} names no authorization server")
    })?;
    let mut issuer = Issuer {
        issuer: as_url.clone(),
        metadata_url: None,
        endpoints: None,
        pkce,
    };
    let meta = match discovery::discover(&ctx.idp, &issuer).await {
        // `http://host:port/` for an AS whose issuer is `http://host:port` (the
        // Python SDK's AnyHttpUrl adds the slash): the same metadata URL, so the
        // same server. Its own issuer is recorded, and every `iss` is compared
        // with that, exactly.
        Err(DiscoveryError::IssuerMismatch {
            named, expected, ..
        }) if discovery::root_slash_only(&expected, &named) => {
            tracing::info!(
                listed = %expected,
                issuer = %named,
                "the resource lists its authorization server with a root slash its issuer lacks; using the issuer"
            );
            issuer.issuer = named;
            discovery::discover(&ctx.idp, &issuer).await
        }
        other => other,
    }
    .map_err(|e| format!("the authorization server {as_url}: {e}"))?;
    let scopes = challenged_scopes
        .or_else(|| prm.scopes_supported.clone())
        .unwrap_or_default();
    Ok(Found {
        resource: prm.resource,
        issuer,
        meta,
        scopes,
    })
}

/// MCP 2025-03-26: no resource metadata, so the authorization server is the
/// server's origin; its metadata there (an issuer on that origin is taken as
/// it is, and used from then on), else its default endpoints.
async fn legacy(ctx: &Ctx, url: &str, scopes: Vec<String>, pkce: Pkce) -> Result<Found, String> {
    let origin = url::Url::parse(url)
        .map_err(|e| e.to_string())?
        .origin()
        .ascii_serialization();
    let resource = resource::canonical(url)?;
    for doc in [
        format!("{origin}/.well-known/oauth-authorization-server"),
        format!("{origin}/.well-known/openid-configuration"),
    ] {
        let Some(meta) = discovery::fetch(&ctx.idp, &doc).await.map_err(text)? else {
            continue;
        };
        let same_origin = meta.issuer == origin || meta.issuer.starts_with(&format!("{origin}/"));
        if !same_origin {
            return Err(format!(
                "the authorization server metadata at {doc} names issuer {}, which is not on the \
                 server's origin {origin}; refused",
                meta.issuer
            ));
        }
        discovery::validate(&meta, &meta.issuer, &doc, pkce).map_err(text)?;
        return Ok(Found {
            resource,
            issuer: Issuer {
                issuer: meta.issuer.clone(),
                metadata_url: Some(doc),
                endpoints: None,
                pkce,
            },
            meta,
            scopes,
        });
    }
    let endpoints = Endpoints {
        authorization: format!("{origin}/authorize"),
        token: format!("{origin}/token"),
    };
    let mut meta = Metadata::defaults(&origin, &endpoints);
    meta.registration_endpoint = Some(format!("{origin}/register"));
    Ok(Found {
        resource,
        issuer: Issuer {
            issuer: origin,
            metadata_url: None,
            endpoints: Some(endpoints),
            pkce,
        },
        meta,
        scopes,
    })
}

fn text(e: DiscoveryError) -> String {
    e.to_string()
}
