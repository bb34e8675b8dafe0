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
use regent_client::ClientError;
use regent_proto::{ChallengeRequest, ErrorCode, Next, RegistryStatus, TokenRequest};
use serde_json::{json, Value};

/// Largest request body passed on (one JSON-RPC message or batch).
pub const MAX_BODY: usize = 16 * 1024 * 1024;

/// Request headers of the transport, passed to the server; nothing else
/// (never the client's own `Authorization` or cookies).
const UPSTREAM: [&str; 5] = [
    "accept",
    "content-type",
    "mcp-session-id",
    "mcp-protocol-version",
    "last-event-id",
];
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
        format!(
            "{why}; run `regent login {name}`, or start the login with POST /api/v1/mcp/{name}/login"
        ),
        Some(name),
    )
}

/// `/mcp/{name}`: one request of the streamable HTTP transport, passed on
/// with the agent's token. A refused token is reported to the agent, and the
/// request sent once more where the agent says a new token can be had.
pub async fn forward(
    State(s): Shared,
    Path(name): Path<String>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Answer<Response> {
    let target = server(&s, &name).await?;
    let agent = s.registries.agent();
    let mut retried = false;
    loop {
        let token = match agent
            .token(&TokenRequest {
                registry: Some(name.clone()),
                min_valid_secs: None,
            })
            .await
        {
            Ok(t) => Some(t.access_token),
            // No auth, or no login yet: the server's 401 says what it wants.
            Err(ClientError::Api(f))
                if matches!(
                    f.detail.code,
                    ErrorCode::AuthNotConfigured | ErrorCode::RegistryAuthRequired
                ) =>
            {
                None
            }
            Err(e) => return Err(e.into()),
        };
        let mut req = s
            .http
            .request(method.clone(), &target.url)
            .body(body.clone());
        for h in UPSTREAM {
            if let Some(v) = headers.get(h) {
                req = req.header(h, v);
            }
        }
        if let Some(t) = &token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.map_err(|e| {
            ServeError::new(
                ErrorCode::RegistryUnavailable,
                format!("cannot reach MCP server {name} at {}: {e}", target.url),
                Some(&name),
            )
        })?;
        let status = resp.status().as_u16();
        if status != 401 && status != 403 {
            return Ok(pass_back(resp));
        }
        let www_authenticate = resp
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let answer = agent
            .challenge(&ChallengeRequest {
                registry: name.clone(),
                status,
                www_authenticate,
                access_token: token,
            })
            .await?;
        match answer.next {
            Next::Retry if !retried => retried = true,
            Next::Retry | Next::Login => return Err(login_needed(&name, &answer.message)),
            Next::Fail | Next::Unknown => {
                return Err(ServeError::new(
                    ErrorCode::RegistryForbidden,
                    answer.message,
                    Some(&name),
                ))
            }
        }
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
