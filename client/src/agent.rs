//! `AgentClient`: the agent API v1 over the Unix socket (hyper + hyperlocal).

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use hyperlocal::{UnixConnector, Uri};
use regent_proto::api::{self, Endpoint};
use regent_proto::{
    AuthConfig, ChallengeAnswer, ChallengeRequest, ErrorBody, ErrorCode, ErrorDetail, ForwardList,
    ForwardSession, Health, IdTokenRequest, InvalidateRequest, Login, LoginRequest, LoginStatus,
    LogoutRequest, LogoutResponse, PutForward, PutIdp, PutMcp, PutRegistry, RegistryStatus,
    ReloadResponse, ResourceKind, TokenRequest, TokenResponse,
};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Longest a call may take: a 60 s login long-poll, or IdP discovery when a
/// registry is configured, fit well within it; a wedged agent does not hang us.
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// Largest answer the client reads from the agent.
const MAX_ANSWER: usize = 4 * 1024 * 1024;

/// Why a call to the agent failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No agent answers on the socket.
    #[error("cannot reach the regent agent at {}: {reason}", socket.display())]
    Unreachable {
        /// The socket tried.
        socket: PathBuf,
        /// What the OS said.
        reason: String,
    },
    /// The socket (or its directory) is not the user's, or is a symlink: it is
    /// not used, whoever listens there.
    #[error("refusing the socket {}: {reason}", socket.display())]
    Refused {
        /// The socket.
        socket: PathBuf,
        /// Why it is not trusted.
        reason: String,
    },
    /// The agent answered with an error of the contract.
    #[error("{0}")]
    Api(ApiFailure),
    /// The agent answered something this client cannot read.
    #[error("unexpected answer from the agent: {0}")]
    Protocol(String),
}

impl ClientError {
    /// The contract error code, for agent errors.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Api(f) => Some(f.detail.code),
            _ => None,
        }
    }
}

/// An error answer of the agent: its HTTP status and contract body.
#[derive(Debug, Clone)]
pub struct ApiFailure {
    /// HTTP status.
    pub status: u16,
    /// The error body.
    pub detail: ErrorDetail,
}

impl std::fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.detail.message)
    }
}

/// A client of the agent API v1.
#[derive(Clone)]
pub struct AgentClient {
    socket: PathBuf,
    http: Client<UnixConnector, Full<Bytes>>,
}

impl AgentClient {
    /// A client of the agent at `socket`.
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        AgentClient {
            socket: socket.into(),
            // Pooled connections are dropped before the agent's 10 s idle cut-off.
            http: Client::builder(TokioExecutor::new())
                .pool_idle_timeout(std::time::Duration::from_secs(5))
                .build(UnixConnector),
        }
    }

    /// A client of the user's agent, found as [`crate::locate::socket`] finds it.
    pub fn from_env() -> Self {
        Self::new(crate::locate::socket(None))
    }

    /// The socket this client talks to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// `GET /v1/health`.
    pub async fn health(&self) -> Result<Health, ClientError> {
        self.call::<api::GetHealth>(&[], None, None).await
    }

    /// `POST /v1/doctor`: the agent's checks of `name` (or of every resource).
    pub async fn doctor(
        &self,
        req: &regent_proto::DoctorRequest,
    ) -> Result<regent_proto::DoctorReport, ClientError> {
        self.call::<api::Doctor>(&[], None, Some(req)).await
    }

    /// `GET /v1/forward`: the forwardable resources and the `regent ssh` sessions.
    pub async fn forwards(&self) -> Result<ForwardList, ClientError> {
        self.call::<api::GetForwards>(&[], None, None).await
    }

    /// `PUT /v1/forward/{name}`: make a resource forwardable, or not.
    pub async fn put_forward(
        &self,
        name: &str,
        body: &PutForward,
    ) -> Result<RegistryStatus, ClientError> {
        self.call::<api::PutForwardRule>(&[name], None, Some(body))
            .await
    }

    /// `POST /v1/forward/sessions`: a `regent ssh` session begins.
    pub async fn open_session(&self, body: &ForwardSession) -> Result<(), ClientError> {
        self.call::<api::OpenSession>(&[], None, Some(body)).await?;
        Ok(())
    }

    /// `DELETE /v1/forward/sessions/{pid}`: it ended.
    pub async fn close_session(&self, ssh_pid: u32) -> Result<(), ClientError> {
        self.call::<api::CloseSession>(&[&ssh_pid.to_string()], None, None)
            .await?;
        Ok(())
    }

    /// `POST /v1/reload`: read the config file again.
    pub async fn reload(&self) -> Result<ReloadResponse, ClientError> {
        self.call::<api::Reload>(&[], None, None).await
    }

    /// `GET /v1/resource`: the resource `name` means (or, with none, the
    /// only one, of `kind` if given), as the agent decides.
    pub async fn resource(
        &self,
        name: Option<&str>,
        kind: Option<ResourceKind>,
    ) -> Result<RegistryStatus, ClientError> {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        if let Some(n) = name {
            q.append_pair("name", n);
        }
        if let Some(k) = kind {
            q.append_pair("kind", k.as_str());
        }
        self.call::<api::GetResource>(&[], Some(q.finish()), None)
            .await
    }

    /// `GET /v1/resource?url=U`: the resource whose URL covers `url` (its
    /// origin, and the longest path prefix), as the agent decides.
    pub async fn resource_for_url(&self, url: &str) -> Result<RegistryStatus, ClientError> {
        self.call::<api::GetResource>(&[], Some(lookup_query("url", url)), None)
            .await
    }

    /// `GET /v1/resource?origin=U`: the one resource at `url`'s origin,
    /// whatever its path (for callers that know only the host).
    pub async fn resource_at_origin(&self, url: &str) -> Result<RegistryStatus, ClientError> {
        self.call::<api::GetResource>(&[], Some(lookup_query("origin", url)), None)
            .await
    }

    /// `GET /v1/registries`.
    pub async fn registries(&self) -> Result<Vec<RegistryStatus>, ClientError> {
        Ok(self
            .call::<api::GetRegistries>(&[], None, None)
            .await?
            .registries)
    }

    /// `PUT /v1/registries/{name}`: add or replace a registry.
    pub async fn put_registry(
        &self,
        name: &str,
        body: &PutRegistry,
    ) -> Result<RegistryStatus, ClientError> {
        self.call::<api::PutRegistryAt>(&[name], None, Some(body))
            .await
    }

    /// `DELETE /v1/registries/{name}`.
    pub async fn remove_registry(&self, name: &str) -> Result<(), ClientError> {
        self.call::<api::DeleteRegistry>(&[name], None, None)
            .await?;
        Ok(())
    }

    /// `PUT /v1/registries/{name}/auth`.
    pub async fn set_auth(
        &self,
        name: &str,
        auth: &AuthConfig,
    ) -> Result<RegistryStatus, ClientError> {
        self.call::<api::PutAuth>(&[name], None, Some(auth)).await
    }

    /// `DELETE /v1/registries/{name}/auth`.
    pub async fn unset_auth(&self, name: &str) -> Result<(), ClientError> {
        self.call::<api::DeleteAuth>(&[name], None, None).await?;
        Ok(())
    }

    /// `GET /v1/apis`.
    pub async fn apis(&self) -> Result<Vec<RegistryStatus>, ClientError> {
        Ok(self.call::<api::GetApis>(&[], None, None).await?.apis)
    }

    /// `PUT /v1/apis/{name}`: add or replace an API (a registry's body).
    pub async fn put_api(
        &self,
        name: &str,
        body: &PutRegistry,
    ) -> Result<RegistryStatus, ClientError> {
        self.call::<api::PutApiAt>(&[name], None, Some(body)).await
    }

    /// `DELETE /v1/apis/{name}`.
    pub async fn remove_api(&self, name: &str) -> Result<(), ClientError> {
        self.call::<api::DeleteApi>(&[name], None, None).await?;
        Ok(())
    }

    /// `GET /v1/mcp`.
    pub async fn mcp_servers(&self) -> Result<Vec<RegistryStatus>, ClientError> {
        Ok(self.call::<api::GetMcp>(&[], None, None).await?.servers)
    }

    /// `PUT /v1/mcp/{name}`: add or replace an MCP server (its auth discovered).
    pub async fn put_mcp(&self, name: &str, body: &PutMcp) -> Result<RegistryStatus, ClientError> {
        self.call::<api::PutMcpAt>(&[name], None, Some(body)).await
    }

    /// `DELETE /v1/mcp/{name}`.
    pub async fn remove_mcp(&self, name: &str) -> Result<(), ClientError> {
        self.call::<api::DeleteMcp>(&[name], None, None).await?;
        Ok(())
    }

    /// `GET /v1/idps`.
    pub async fn idps(&self) -> Result<Vec<RegistryStatus>, ClientError> {
        Ok(self.call::<api::GetIdps>(&[], None, None).await?.idps)
    }

    /// `PUT /v1/idps/{name}`.
    pub async fn put_idp(&self, name: &str, body: &PutIdp) -> Result<RegistryStatus, ClientError> {
        self.call::<api::PutIdpAt>(&[name], None, Some(body)).await
    }

    /// `DELETE /v1/idps/{name}`.
    pub async fn remove_idp(&self, name: &str) -> Result<(), ClientError> {
        self.call::<api::DeleteIdp>(&[name], None, None).await?;
        Ok(())
    }

    /// `POST /v1/idps/{name}/id-token`: an ID token as the login at the IdP.
    pub async fn hand_over_id_token(&self, name: &str, id_token: &str) -> Result<(), ClientError> {
        let body = IdTokenRequest {
            id_token: id_token.into(),
        };
        self.call::<api::HandOverIdToken>(&[name], None, Some(&body))
            .await?;
        Ok(())
    }

    /// `POST /v1/challenge`: a resource server refused a request; what now.
    pub async fn challenge(&self, req: &ChallengeRequest) -> Result<ChallengeAnswer, ClientError> {
        self.call::<api::Challenge>(&[], None, Some(req)).await
    }

    /// `POST /v1/token`.
    pub async fn token(&self, req: &TokenRequest) -> Result<TokenResponse, ClientError> {
        self.call::<api::Token>(&[], None, Some(req)).await
    }

    /// `POST /v1/token/invalidate`.
    pub async fn invalidate(&self, req: &InvalidateRequest) -> Result<(), ClientError> {
        self.call::<api::Invalidate>(&[], None, Some(req)).await?;
        Ok(())
    }

    /// `POST /v1/login`.
    pub async fn login(&self, req: &LoginRequest) -> Result<Login, ClientError> {
        self.call::<api::StartLogin>(&[], None, Some(req)).await
    }

    /// `GET /v1/login/{id}?wait_secs=N`.
    pub async fn login_status(&self, id: &str, wait_secs: u64) -> Result<LoginStatus, ClientError> {
        self.call::<api::GetLogin>(&[id], Some(format!("wait_secs={wait_secs}")), None)
            .await
    }

    /// `DELETE /v1/login/{id}`.
    pub async fn cancel_login(&self, id: &str) -> Result<(), ClientError> {
        self.call::<api::CancelLogin>(&[id], None, None).await?;
        Ok(())
    }

    /// `POST /v1/logout`.
    pub async fn logout(&self, req: &LogoutRequest) -> Result<LogoutResponse, ClientError> {
        self.call::<api::Logout>(&[], None, Some(req)).await
    }

    /// Sends raw bytes and returns the status and body as they are (for tests and tools).
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        body: Vec<u8>,
    ) -> Result<(u16, Vec<u8>), ClientError> {
        let method = Method::from_bytes(method.as_bytes())
            .map_err(|e| ClientError::Protocol(format!("bad method: {e}")))?;
        self.send(method, path, Bytes::from(body)).await
    }

    /// One call of endpoint `E`: its path with `params` filled in, `query`
    /// appended, `body` sent as JSON; its answer decoded (a 204 is `NoContent`).
    async fn call<E: Endpoint>(
        &self,
        params: &[&str],
        query: Option<String>,
        body: Option<&E::Request>,
    ) -> Result<E::Answer, ClientError> {
        let mut path = api::path::<E>(params);
        if let Some(q) = query.filter(|q| !q.is_empty()) {
            path.push('?');
            path.push_str(&q);
        }
        let method = Method::from_bytes(E::METHOD.as_bytes())
            .map_err(|e| ClientError::Protocol(format!("bad method: {e}")))?;
        let bytes = self.request(method, &path, body).await?;
        let bytes: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
        serde_json::from_slice(bytes).map_err(|e| ClientError::Protocol(e.to_string()))
    }

    async fn request<B: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<Vec<u8>, ClientError> {
        let body = match body {
            Some(b) => Bytes::from(
                serde_json::to_vec(b).map_err(|e| ClientError::Protocol(e.to_string()))?,
            ),
            None => Bytes::new(),
        };
        let (status, bytes) = self.send(method, path, body).await?;
        if (200..300).contains(&status) {
            return Ok(bytes);
        }
        match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(e) => Err(ClientError::Api(ApiFailure {
                status,
                detail: e.error,
            })),
            Err(_) => Err(ClientError::Protocol(format!(
                "HTTP {status} without an error body"
            ))),
        }
    }

    fn check_socket(&self) -> Result<(), ClientError> {
        check_socket(&self.socket).map_err(|reason| ClientError::Refused {
            socket: self.socket.clone(),
            reason,
        })
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> Result<(u16, Vec<u8>), ClientError> {
        self.check_socket()?;
        let uri: hyper::Uri = Uri::new(&self.socket, path).into();
        let (method_again, uri_again) = (method.clone(), uri.clone());
        let mut req = Request::builder().method(method).uri(uri);
        if !body.is_empty() {
            req = req.header("content-type", "application/json");
        }
        let req = req
            .body(Full::new(body.clone()))
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let exchange = async {
            let resp = match self.http.request(req).await {
                Ok(r) => r,
                // A pooled connection the agent had just closed: the request never
                // reached it, so it is sent once more on a fresh connection.
                Err(e) if stale_connection(&e) && idempotent(&method_again, path) => {
                    let mut again = Request::builder().method(method_again).uri(uri_again);
                    if !body.is_empty() {
                        again = again.header("content-type", "application/json");
                    }
                    let again = again
                        .body(Full::new(body))
                        .map_err(|e| ClientError::Protocol(e.to_string()))?;
                    self.http
                        .request(again)
                        .await
                        .map_err(|e| self.transport_error(e))?
                }
                Err(e) => return Err(self.transport_error(e)),
            };
            let status = resp.status().as_u16();
            let bytes = Limited::new(resp.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| ClientError::Protocol(format!("reading the answer: {e}")))?
                .to_bytes();
            Ok((status, bytes.to_vec()))
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| {
                ClientError::Protocol(format!(
                    "the agent did not answer within {} s",
                    REQUEST_TIMEOUT.as_secs()
                ))
            })?
    }

    fn transport_error(&self, e: hyper_util::client::legacy::Error) -> ClientError {
        // The innermost cause is the OS error ("No such file or directory").
        let mut cause: &dyn std::error::Error = &e;
        while let Some(next) = cause.source() {
            cause = next;
        }
        if e.is_connect() {
            ClientError::Unreachable {
                socket: self.socket.clone(),
                reason: cause.to_string(),
            }
        } else {
            ClientError::Protocol(format!("the connection failed: {cause}"))
        }
    }
}

/// Refuses a socket whose directory is a symlink or is not ours, or that is
/// not ours itself: someone else's listener must not get our requests (in a
/// shared directory such as /tmp, a planted socket or symlink could). One
/// exception: a sticky directory (/tmp, where sshd puts a forwarded agent)
/// need not be ours, since nobody else can replace or rename our socket
/// there; the socket itself must still be ours.
pub(crate) fn check_socket(socket: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let uid = regent_proto::paths::current_uid();
    let dir = socket.parent().filter(|d| !d.as_os_str().is_empty());
    let sticky = dir
        .and_then(|d| std::fs::symlink_metadata(d).ok())
        .is_some_and(|d| d.is_dir() && d.mode() & 0o1000 != 0);
    for (what, p) in [("directory", dir), ("socket", Some(socket))] {
        let Some(p) = p else { continue };
        if what == "directory" && sticky {
            continue;
        }
        match std::fs::symlink_metadata(p) {
            Ok(m) if m.file_type().is_symlink() && what == "directory" => {
                return Err(format!(
                    "the socket directory {} is a symbolic link",
                    p.display()
                ))
            }
            Ok(m) if m.uid() != uid => {
                return Err(format!(
                    "the {what} {} belongs to uid {}, not to you",
                    p.display(),
                    m.uid()
                ))
            }
            // Missing: the connect reports it.
            _ => {}
        }
    }
    Ok(())
}

/// Requests that may be sent twice without changing anything twice.
fn idempotent(method: &Method, path: &str) -> bool {
    *method == Method::GET || path == api::Token::PATH || path == api::Invalidate::PATH
}

/// Whether a request failed on a reused connection that the agent had
/// closed (broken pipe or reset while writing): nothing reached the agent.
fn stale_connection(e: &hyper_util::client::legacy::Error) -> bool {
    if e.is_connect() {
        return false;
    }
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
            );
        }
        if let Some(h) = c.downcast_ref::<hyper::Error>() {
            if h.is_incomplete_message() || h.is_canceled() {
                return true;
            }
        }
        cause = c.source();
    }
    false
}

/// The query of `GET /v1/resource` that looks a URL up (`key`: `url` or `origin`).
pub(crate) fn lookup_query(key: &str, url: &str) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .append_pair(key, url)
        .finish()
}
