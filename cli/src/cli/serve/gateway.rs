//! `regent serve`'s MCP side: `GET /api/v1/mcp[/NAME]` (the MCP servers and
//! their auth status), `POST /api/v1/mcp/NAME/login`, and `/mcp/NAME`, a
//! streamable HTTP gateway, so an MCP client that speaks HTTP reaches a
//! remote server at a local URL with the agent's token added. What the client
//! and server say passes through as bytes (SSE streams included); only the
//! headers of the transport are carried. A login or a step-up is never run
//! here: the answer is an error naming the command that runs it.

use super::{Answer, Path, ServeError, Shared};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use regent_client::resource::{AuthError, ResourceAuth, WithoutLogin};
use regent_proto::{ErrorCode, RegistryStatus};
use serde_json::{json, Value};

/// Largest request body passed on (one JSON-RPC message or batch).
pub const MAX_BODY: usize = 16 * 1024 * 1024;

/// Request headers of the transport, passed to the server; nothing else
/// (never the client's own `Authorization` or cookies). Both wires: the
/// session where there is one, and the routing headers of 2026-07-28
/// (`Mcp-Method`, `Mcp-Name`, and every `Mcp-Param-*`, SEP-2243).
const UPSTREAM: [&str; 7] = [
    "accept",
    "content-type",
    "mcp-session-id",
    "mcp-protocol-version",
    "last-event-id",
    "mcp-method",
    "mcp-name",
];
/// The prefix of the headers a client mirrors tool parameters into.
const PARAM_PREFIX: &str = "mcp-param-";
/// Response headers passed back to the client.
const DOWNSTREAM: [&str; 3] = ["content-type", "mcp-session-id", "cache-control"];

/// `GET /api/v1/mcp`.
pub async fn list(State(s): Shared) -> Answer<Json<Value>> {
    let servers = s.registries.agent().mcp_servers().await?;
    Ok(Json(json!({ "servers": servers })))
}

/// `GET /api/v1/mcp/{name}`.
pub async fn one(State(s): Shared, Path(name): Path<String>) -> Answer<Json<RegistryStatus>> {
    Ok(Json(server(&s, &name).await?))
}

async fn server(s: &super::Serve, name: &str) -> Answer<RegistryStatus> {
    let servers = s.registries.agent().mcp_servers().await?;
    servers.into_iter().find(|r| r.name == name).ok_or_else(|| {
        ServeError::new(
            ErrorCode::UnknownRegistry,
            format!("no MCP server named {name}; see GET /api/v1/mcp"),
            Some(name),
        )
    })
}

/// A login is needed: which command runs it (this server never does).
fn login_needed(name: &str, why: &str) -> ServeError {
    ServeError::new(
        ErrorCode::RegistryAuthRequired,
        format!("{why}; or start the login with POST /api/v1/mcp/{name}/login"),
        Some(name),
    )
}

/// `/mcp/{name}`: one request of the streamable HTTP transport, passed on
/// with the agent's token, through the one refusal path (with no login run
/// here: where one is needed, the answer names the command).
pub async fn forward(
    State(s): Shared,
    Path(name): Path<String>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Answer<Response> {
    let target = server(&s, &name).await?;
    let auth = ResourceAuth::new(s.registries.agent().clone(), &name, WithoutLogin::SendBare);
    // A URL that does not parse fails at the request below, with its reason.
    let client = reqwest::Url::parse(&target.url)
        .map(|u| s.http.for_url(&u))
        .unwrap_or_default();
    let sent = auth
        .send(method.as_str(), &target.url, |credential| {
            let mut req = client
                .request(method.clone(), &target.url)
                .body(body.clone());
            for h in UPSTREAM {
                if let Some(v) = headers.get(h) {
                    req = req.header(h, v);
                }
            }
            for (h, v) in headers.iter() {
                if h.as_str().starts_with(PARAM_PREFIX) {
                    req = req.header(h, v);
                }
            }
            if let Some(c) = &credential {
                req = c.apply(req);
            }
            req.send()
        })
        .await;
    match sent {
        Ok(resp) => Ok(pass_back(resp)),
        Err(AuthError::Agent(e)) => Err(e.into()),
        Err(AuthError::LoginNeeded { message, .. }) => Err(login_needed(&name, &message)),
        Err(AuthError::Refused { message, .. }) => Err(ServeError::new(
            ErrorCode::RegistryForbidden,
            message,
            Some(&name),
        )),
        Err(AuthError::Send(e)) => Err(ServeError::new(
            ErrorCode::RegistryUnavailable,
            format!("cannot reach MCP server {name} at {}: {e}", target.url),
            Some(&name),
        )),
    }
}

/// The server's answer, streamed as it comes (an SSE stream can last).
fn pass_back(resp: reqwest::Response) -> Response {
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut headers = HeaderMap::new();
    for h in DOWNSTREAM {
        if let Some(v) = resp.headers().get(h) {
            if let Ok(v) = axum::http::HeaderValue::from_bytes(v.as_bytes()) {
                headers.insert(HeaderName::from_static(h), v);
            }
        }
    }
    // Ends after the first error (the client sees the stream cut, as it was).
    let stream = futures::stream::unfold(Some(resp), |r| async move {
        let mut r = r?;
        match r.chunk().await {
            Ok(Some(c)) => Some((Ok::<_, reqwest::Error>(c), Some(r))),
            Ok(None) => None,
            Err(e) => Some((Err(e), None)),
        }
    });
    (status, headers, Body::from_stream(stream)).into_response()
}
