//! `regent serve`: a headless HTTP API over the user's registries. It never
//! starts a login by itself and never blocks on one: logins are started
//! through the agent and polled.

mod gateway;
mod peer;

use super::{Failure, Result};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::HOST;
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use regent_client::{AgentClient, ClientError, RegistryClient, RegistryError};
use regent_proto::{ErrorBody, ErrorCode, ErrorDetail, LoginFlow, LoginRequest, RegistryStatus};
use serde::Deserialize;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;

struct Serve {
    registries: RegistryClient,
    /// For the MCP gateway's requests.
    http: regent_client::http::Clients,
    /// `Host` values accepted (loopback listeners only): the DNS-rebinding defence.
    allowed_hosts: Option<Vec<String>>,
    /// Peers on other machines may connect (`--allow-remote`).
    allow_remote: bool,
}

type Shared = State<Arc<Serve>>;

/// Runs the server until SIGINT or SIGTERM.
pub async fn run(agent: AgentClient, listen: SocketAddr, allow_remote: bool) -> Result {
    let loopback = listen.ip().is_loopback();
    if !loopback && !allow_remote {
        return Err(Failure::Usage(format!(
            "refusing to listen on {listen}: regent serve lends your registry access to whoever can \
             connect; listen on a loopback address, or add --allow-remote if you mean it"
        )));
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| Failure::Other(format!("cannot listen on {listen}: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Failure::Other(e.to_string()))?;
    if !loopback {
        eprintln!(
            "regent serve: WARNING: listening on {addr}; anyone who can reach it gets your registry access"
        );
    }
    let port = addr.port();
    let state = Arc::new(Serve {
        registries: RegistryClient::new(agent),
        http: regent_client::http::Clients::mcp(),
        allow_remote,
        allowed_hosts: loopback.then(|| {
            let mut hosts = vec![
                addr.to_string(),
                format!("127.0.0.1:{port}"),
                format!("localhost:{port}"),
                format!("[::1]:{port}"),
            ];
            if port == 80 {
                // Browsers leave out the scheme's default port.
                hosts.extend(["127.0.0.1".into(), "localhost".into(), "[::1]".into()]);
                hosts.push(addr.ip().to_string());
            }
            hosts
        }),
    });
    let app = Router::new()
        .route("/health", get(health))
        .route("/api/v1/registries", get(list))
        .route("/api/v1/registries/{name}", get(one))
        .route("/api/v1/registries/{name}/servers", get(servers))
        .route("/api/v1/registries/{name}/servers/{*server}", get(server))
        .route("/api/v1/registries/{name}/login", post(login))
        .route("/api/v1/logins/{id}", get(login_status))
        .route("/api/v1/mcp", get(gateway::list))
        .route("/api/v1/mcp/{name}", get(gateway::one))
        .route("/api/v1/mcp/{name}/login", post(login))
        .route(
            "/mcp/{name}",
            axum::routing::any(gateway::forward)
                .layer(axum::extract::DefaultBodyLimit::max(gateway::MAX_BODY)),
        )
        .fallback(|| async { ServeError::new(ErrorCode::InvalidRequest, "no such endpoint", None) })
        .layer(middleware::from_fn_with_state(state.clone(), check_host))
        .layer(middleware::from_fn_with_state(state.clone(), owner_only))
        .with_state(state);
    eprintln!("regent serve: listening on http://{addr}");
    axum::serve(listener, app.into_make_service_with_connect_info::<Ends>())
        .with_graceful_shutdown(shutdown())
        .await
        .map_err(|e| Failure::Other(format!("serve failed: {e}")))
}

async fn shutdown() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler installs");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// Both ends of a connection.
#[derive(Clone, Copy, Debug)]
struct Ends {
    peer: SocketAddr,
    ours: SocketAddr,
}

impl
    axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, tokio::net::TcpListener>>
    for Ends
{
    fn connect_info(s: axum::serve::IncomingStream<'_, tokio::net::TcpListener>) -> Self {
        let peer = *s.remote_addr();
        Ends {
            peer,
            ours: s.io().local_addr().unwrap_or(peer),
        }
    }
}

/// Serves the user who runs it, and nobody else on this machine: a loopback
/// connection from another uid is refused before any route runs (whatever
/// its `Host` or `Origin` say). Peers on other machines exist only with
/// `--allow-remote`, which says they may connect.
async fn owner_only(
    State(s): Shared,
    axum::extract::ConnectInfo(ends): axum::extract::ConnectInfo<Ends>,
    req: Request,
    next: Next,
) -> Response {
    // SAFETY: getuid has no preconditions.
    let me = unsafe { libc::getuid() };
    // Every connection from this machine is in the kernel's socket table,
    // whatever source address it chose: it must be the owner's. One that is
    // not listed came from another machine, which only --allow-remote admits.
    let refuse = match peer::uid_of(ends.peer, ends.ours) {
        Some(uid) if uid == me => None,
        Some(uid) => Some(format!("uid {uid}")),
        None if s.allow_remote => None,
        None => Some("an unknown user".to_string()),
    };
    if let Some(who) = refuse {
        return ServeError::new(
            ErrorCode::Forbidden,
            format!("regent serve serves its owner (uid {me}) only; this connection is from {who}"),
            None,
        )
        .into_response();
    }
    next.run(req).await
}

/// Refuses requests addressed to another name (a DNS-rebinding page in the
/// user's browser would send its own host name).
async fn check_host(State(s): Shared, req: Request, next: Next) -> Response {
    if let Some(allowed) = &s.allowed_hosts {
        let host = req
            .headers()
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        if !allowed.iter().any(|a| a.eq_ignore_ascii_case(host)) {
            return ServeError::new(
                ErrorCode::Forbidden,
                format!(
                    "Host {host:?} is not this server's address; refused (DNS rebinding defence)"
                ),
                None,
            )
            .into_response();
        }
    }
    // A page on another site can send simple requests (a POST without preflight)
    // to loopback; browsers mark them, so refuse what they mark as foreign.
    let origin_ok = match req.headers().get("origin").and_then(|o| o.to_str().ok()) {
        None => true,
        Some(o) => s.allowed_hosts.as_ref().is_some_and(|hosts| {
            hosts
                .iter()
                .any(|h| o.eq_ignore_ascii_case(&format!("http://{h}")))
        }),
    };
    let cross_site = req
        .headers()
        .get("sec-fetch-site")
        .is_some_and(|v| v == "cross-site" || v == "same-site");
    if !origin_ok || cross_site {
        return ServeError::new(
            ErrorCode::Forbidden,
            "requests from other web sites are refused",
            None,
        )
        .into_response();
    }
    next.run(req).await
}

/// An error answer, in the agent API's shape.
struct ServeError(ErrorDetail);

impl ServeError {
    fn new(code: ErrorCode, message: impl Into<String>, registry: Option<&str>) -> Self {
        ServeError(ErrorDetail {
            code,
            message: message.into(),
            registry: registry.map(str::to_string),
        })
    }
}

/// `registry_auth_required`, naming both ways to fix it (`why`: the
/// agent's reason, where it gave one).
fn login_needed(registry: &str, why: Option<&str>) -> ServeError {
    let why = match why {
        Some(w) => w.to_string(),
        None => format!("registry {registry} needs a login: run `regent login {registry}`"),
    };
    ServeError::new(
        ErrorCode::RegistryAuthRequired,
        format!("{why}; or start the login with POST /api/v1/registries/{registry}/login"),
        Some(registry),
    )
}

impl From<ClientError> for ServeError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Api(f) if f.detail.code == ErrorCode::RegistryAuthRequired => {
                login_needed(f.detail.registry.as_deref().unwrap_or("?"), None)
            }
            ClientError::Api(f) => ServeError(f.detail),
            e @ ClientError::Unreachable { .. } => ServeError::new(
                ErrorCode::AgentUnavailable,
                format!("{e}; start the agent with `regentd`"),
                None,
            ),
            e @ ClientError::Refused { .. } => {
                ServeError::new(ErrorCode::AgentUnavailable, e.to_string(), None)
            }
            ClientError::Protocol(m) => ServeError::new(ErrorCode::Internal, m, None),
        }
    }
}

impl From<RegistryError> for ServeError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::Agent(c) => c.into(),
            RegistryError::AuthRequired { registry, message } => {
                login_needed(&registry, Some(&message))
            }
            RegistryError::Forbidden { ref registry, .. } => {
                ServeError::new(ErrorCode::RegistryForbidden, e.to_string(), Some(registry))
            }
            RegistryError::Unavailable { ref registry, .. } => ServeError::new(
                ErrorCode::RegistryUnavailable,
                e.to_string(),
                Some(registry),
            ),
            RegistryError::NotFound { ref registry, .. } => {
                ServeError::new(ErrorCode::UnknownRegistry, e.to_string(), Some(registry))
            }
        }
    }
}

impl IntoResponse for ServeError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(ErrorBody { error: self.0 })).into_response()
    }
}

type Answer<T> = std::result::Result<T, ServeError>;

/// Path parameters; a bad one is an error in the contract's shape.
struct Path<T>(T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ServeError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Answer<Self> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Path(p.0))
            .map_err(|e| ServeError::new(ErrorCode::InvalidRequest, e.body_text(), None))
    }
}

/// Query parameters, strict; a bad one is an error in the contract's shape.
struct Query<T>(T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ServeError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Answer<Self> {
        axum::extract::Query::<T>::try_from_uri(&parts.uri)
            .map(|q| Query(q.0))
            .map_err(|e| ServeError::new(ErrorCode::InvalidRequest, e.body_text(), None))
    }
}

async fn health(State(s): Shared) -> Json<Value> {
    let agent = match s.registries.agent().health().await {
        Ok(h) => json!({"status": "ok", "version": h.version, "store": h.store}),
        Err(e) => json!({"status": "unreachable", "message": e.to_string()}),
    };
    Json(json!({"status": "ok", "agent": agent}))
}

async fn registry(s: &Serve, name: &str) -> Answer<RegistryStatus> {
    let regs = s.registries.agent().registries().await?;
    regs.into_iter().find(|r| r.name == name).ok_or_else(|| {
        ServeError::new(
            ErrorCode::UnknownRegistry,
            format!("no registry named {name}"),
            Some(name),
        )
    })
}

async fn list(State(s): Shared) -> Answer<Json<Value>> {
    let regs = s.registries.agent().registries().await?;
    Ok(Json(json!({ "registries": regs })))
}

async fn one(State(s): Shared, Path(name): Path<String>) -> Answer<Json<RegistryStatus>> {
    Ok(Json(registry(&s, &name).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServersQuery {
    search: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

async fn servers(
    State(s): Shared,
    Path(name): Path<String>,
    Query(q): Query<ServersQuery>,
) -> Answer<Json<Value>> {
    let reg = registry(&s, &name).await?;
    if q.limit.is_some() || q.cursor.is_some() {
        // One page, as asked.
        let page = s
            .registries
            .list_page(&reg, q.search.as_deref(), q.limit, q.cursor.as_deref())
            .await?;
        let mut metadata = json!({ "count": page.servers.len() });
        if let Some(c) = page.next_cursor {
            metadata["nextCursor"] = json!(c);
        }
        return Ok(Json(
            json!({ "servers": page.servers, "metadata": metadata }),
        ));
    }
    let all = s.registries.list_all(&reg, q.search.as_deref()).await?;
    let count = all.len();
    Ok(Json(
        json!({ "servers": all, "metadata": { "count": count } }),
    ))
}

async fn server(
    State(s): Shared,
    Path((name, server)): Path<(String, String)>,
) -> Answer<Json<Value>> {
    let reg = registry(&s, &name).await?;
    Ok(Json(s.registries.server(&reg, &server).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    flow: LoginFlow,
    /// Log in again even when already logged in.
    #[serde(default)]
    force: bool,
}

async fn login(
    State(s): Shared,
    Path(name): Path<String>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Answer<(StatusCode, Json<regent_proto::Login>)> {
    // JSON only: a browser cannot send it cross-site without a preflight, which this server never grants.
    let json = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json {
        return Err(ServeError::new(
            ErrorCode::InvalidRequest,
            "send the body as Content-Type: application/json",
            Some(&name),
        ));
    }
    let body: LoginBody = serde_json::from_slice(&body).map_err(|e| {
        ServeError::new(
            ErrorCode::InvalidRequest,
            format!(
                "the body must be {{\"flow\": \"browser\" | \"device\", \"force\"?: bool}}: {e}"
            ),
            Some(&name),
        )
    })?;
    let login = s
        .registries
        .agent()
        .login(&LoginRequest {
            registry: Some(name),
            flow: body.flow,
            force: body.force,
        })
        .await?;
    Ok((StatusCode::ACCEPTED, Json(login)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WaitQuery {
    wait_secs: Option<u64>,
}

async fn login_status(
    State(s): Shared,
    Path(id): Path<String>,
    Query(q): Query<WaitQuery>,
) -> Answer<Json<regent_proto::LoginStatus>> {
    let wait = q.wait_secs.unwrap_or(0).min(30);
    Ok(Json(s.registries.agent().login_status(&id, wait).await?))
}
