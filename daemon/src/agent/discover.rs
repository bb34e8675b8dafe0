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
    /// The resource's metadata names DPoP.
    pub resource_dpop: bool,
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

/// What a 2025-era client sends first: asked where a server refuses
/// `server/discover` in a way that is not JSON-RPC.
fn initialize_request() -> serde_json::Value {
    serde_json::json!({
        "jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "regent", "version": env!("CARGO_PKG_VERSION")}
        }
    })
}

/// Requests the resource without a token, and checks that it is what it
/// was added as: an MCP server answers JSON-RPC (`server/discover`, else an
/// `initialize` as a 2025 client sends it) or a 401; a registry answers its
/// API (`/v0.1/servers`, else `/v0/servers`) or a 401; an API answers 401. Anything else (a 404
/// page, a registry's URL given as an MCP server's) is refused with what
/// answered, not taken for "asks for no auth".
pub async fn probe(ctx: &Ctx, kind: Kind, url: &str) -> Result<Probe, String> {
    let mut said = Vec::new();
    match kind {
        Kind::Mcp => {
            for (method, body) in [
                ("server/discover", discover_request()),
                ("initialize", initialize_request()),
            ] {
                let mut req = oauth2::http::Request::post(url)
                    .header("content-type", "application/json")
                    .header("accept", "application/json, text/event-stream");
                if method == "server/discover" {
                    req = req
                        .header("mcp-protocol-version", PROBE_VERSION)
                        .header("mcp-method", method);
                }
                let req = req
                    .body(body.to_string().into_bytes())
                    .map_err(|e| e.to_string())?;
                let resp = send(ctx, url, req).await?;
                if let Some(p) = challenged(&resp) {
                    return Ok(p);
                }
                if speaks_json_rpc(&resp) {
                    return Ok(Probe::Open);
                }
                said.push(format!("{method}: {}", answered(&resp)));
            }
            Err(format!(
                "{url} does not answer as an MCP server ({}); an MCP server answers JSON-RPC, or \
                 401 asking for a token. Check the URL: it is the server's endpoint (often ending \
                 in /mcp), not its web page or a registry's",
                said.join("; ")
            ))
        }
        Kind::Registry => {
            let base = url.trim_end_matches('/');
            for api in ["v0.1", "v0"] {
                let list = format!("{base}/{api}/servers?limit=1");
                let req = oauth2::http::Request::get(&list)
                    .header("accept", "application/json")
                    .body(Vec::new())
                    .map_err(|e| e.to_string())?;
                let resp = send(ctx, url, req).await?;
                if let Some(p) = challenged(&resp) {
                    return Ok(p);
                }
                if resp.status().is_success() && lists_servers(resp.body()) {
                    return Ok(Probe::Open);
                }
                said.push(format!("GET /{api}/servers: {}", answered(&resp)));
                if resp.status().as_u16() != 404 {
                    break;
                }
            }
            Err(format!(
                "{url} does not answer as an MCP registry ({}); a registry answers GET \
                 /v0.1/servers with its list, or 401 asking for a token. Check the URL: it is the \
                 registry's base, without /v0.1 (an MCP server is added with regent mcp add)",
                said.join("; ")
            ))
        }
        Kind::Api => {
            // Any HTTPS API: a GET of its URL without a token; 401 is the
            // answer discovery needs. Anything else — a 200 included: a forge's
            // home page is public while its repositories are not — says nothing
            // about auth, and is not taken for "none".
            let req = oauth2::http::Request::get(url)
                .header("accept", "application/json, */*;q=0.5")
                .body(Vec::new())
                .map_err(|e| e.to_string())?;
            let resp = send(ctx, url, req).await?;
            if let Some(p) = challenged(&resp) {
                return Ok(p);
            }
            Err(format!(
                "{url} answered GET without a token with {}, not 401 asking for one, so it says \
                 nothing of its auth; give it (--issuer URL --client-id ID), or --no-auth for an \
                 API that needs none",
                answered(&resp)
            ))
        }
        Kind::Idp => Ok(Probe::Open),
    }
}

/// Sends one probe; a session a server opened for it is ended at once.
async fn send(
    ctx: &Ctx,
    url: &str,
    req: oauth2::http::Request<Vec<u8>>,
) -> Result<oauth2::HttpResponse, String> {
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
    Ok(resp)
}

/// A 401, with its challenge (empty when it sent none).
fn challenged(resp: &oauth2::HttpResponse) -> Option<Probe> {
    if resp.status().as_u16() != 401 {
        return None;
    }
    let challenge = resp
        .headers()
        .get_all("www-authenticate")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(Challenge::parse)
        .unwrap_or_default();
    Some(Probe::Challenged(challenge))
}

/// Whether an answer is MCP's: an event stream, or JSON-RPC (a result or an
/// error, whatever the status: a 2025 server refuses `server/discover` so).
fn speaks_json_rpc(resp: &oauth2::HttpResponse) -> bool {
    let kind = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if kind.starts_with("text/event-stream") {
        return resp.status().is_success();
    }
    let rpc = |v: &serde_json::Value| v.get("jsonrpc").and_then(|j| j.as_str()) == Some("2.0");
    match serde_json::from_slice::<serde_json::Value>(resp.body()) {
        Ok(serde_json::Value::Array(all)) => !all.is_empty() && all.iter().all(rpc),
        Ok(v) => rpc(&v),
        Err(_) => false,
    }
}

/// Whether a body is a registry's server list.
fn lists_servers(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .is_ok_and(|v| v.get("servers").is_some_and(serde_json::Value::is_array))
}

/// What answered, for the error: the status and the kind of content.
fn answered(resp: &oauth2::HttpResponse) -> String {
    let kind = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(|k| k.split(';').next().unwrap_or(k).trim().to_string())
        .filter(|k| !k.is_empty())
        .unwrap_or_else(|| "no content type".into());
    format!(
        "HTTP {} with {}",
        resp.status().as_u16(),
        crate::oauth::grant::shorten(&kind)
    )
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
        resource_dpop: prm.names_dpop(),
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
            resource_dpop: false,
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
        resource_dpop: false,
    })
}

fn text(e: DiscoveryError) -> String {
    e.to_string()
}
