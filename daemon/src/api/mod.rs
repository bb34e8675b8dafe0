//! The agent API v1 routes. Handlers translate HTTP to `Agent` calls and
//! back; a handler that panics answers `internal` instead of dropping the
//! connection. The same routes serve the forwarding socket: its callers are
//! [`Caller::Forwarded`], held by [`guard`] to the routes that lend, and the
//! agent applies the forwarding policy to what they ask.

mod body;
mod path;

pub use body::decode as decode_body;

use crate::agent::{Agent, Caller};
use crate::error::ApiError;
use crate::resource::Kind;
use axum::extract::{FromRequestParts, RawQuery, Request, State};
use axum::handler::Handler;
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::MethodFilter;
use axum::{Json, Router};
pub use body::JsonBody;
use path::Segment;
use regent_proto::api::Endpoint;
use regent_proto::{
    ApiList, AuthConfig, ChallengeAnswer, ChallengeRequest, ForwardList, ForwardSession, Health,
    IdTokenRequest, IdpList, InvalidateRequest, Login, LoginRequest, LoginStatus, LogoutRequest,
    LogoutResponse, McpList, PutForward, PutIdp, PutMcp, PutRegistry, RegistryList, RegistryStatus,
    ReloadResponse, TokenRequest, TokenResponse, API_VERSION, DEFAULT_MIN_VALID_SECS,
    MAX_LOGIN_WAIT_SECS,
};
use std::sync::Arc;
use std::time::Duration;

type Shared = State<Arc<Agent>>;
type ApiResult<T> = Result<T, ApiError>;

/// The API router, for both sockets (the accept loop says who the caller is).
pub fn router(agent: Arc<Agent>) -> Router {
    protect(routes().route_layer(axum::middleware::from_fn(guard))).with_state(agent)
}

/// What a forwarded caller may do: borrow tokens, list what is lent, report
/// a refusal. Every change, login and logout happens where the agent runs.
const LENT: [(&str, &str); 8] = {
    use regent_proto::api::*;
    [
        (GetHealth::METHOD, GetHealth::PATH),
        (GetResource::METHOD, GetResource::PATH),
        (Token::METHOD, Token::PATH),
        (Invalidate::METHOD, Invalidate::PATH),
        (GetRegistries::METHOD, GetRegistries::PATH),
        (GetMcp::METHOD, GetMcp::PATH),
        (GetApis::METHOD, GetApis::PATH),
        (Challenge::METHOD, Challenge::PATH),
    ]
};

/// Holds a forwarded caller to the routes that lend.
async fn guard(req: Request, next: Next) -> Response {
    if let Some(Caller::Forwarded(_)) = req.extensions().get::<Caller>() {
        // Every lent route is a fixed path: the request's path is its route.
        let path = req.uri().path();
        if !LENT
            .iter()
            .any(|(m, p)| req.method().as_str() == *m && path == *p)
        {
            return ApiError::new(
                regent_proto::ErrorCode::Forbidden,
                "over a forwarded agent only tokens are lent: logins, logouts and changes happen on \
                 the machine where the agent runs (there: regent login NAME, regent registry add ...)",
            )
            .into_response();
        }
    }
    next.run(req).await
}

/// The caller of a request: local unless the accept loop said otherwise.
struct Who(Caller);

impl<S: Send + Sync> FromRequestParts<S> for Who {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Who, Self::Rejection> {
        Ok(Who(parts
            .extensions
            .get::<Caller>()
            .copied()
            .unwrap_or(Caller::Local)))
    }
}

/// A router whose handlers answer `internal` when they panic.
pub fn protect<S: Clone + Send + Sync + 'static>(routes: Router<S>) -> Router<S> {
    routes.layer(tower_http::catch_panic::CatchPanicLayer::custom(panicked))
}

fn routes() -> Router<Arc<Agent>> {
    use regent_proto::api::*;
    Router::new()
        .at::<GetHealth, _, _>(health)
        .at::<Reload, _, _>(reload)
        .at::<GetResource, _, _>(resource)
        .at::<GetForwards, _, _>(forward_list)
        .at::<PutForwardRule, _, _>(put_forward)
        .at::<OpenSession, _, _>(open_session)
        .at::<CloseSession, _, _>(close_session)
        .at::<GetRegistries, _, _>(list)
        .at::<PutRegistryAt, _, _>(put_registry)
        .at::<DeleteRegistry, _, _>(delete_registry)
        .at::<PutAuth, _, _>(put_auth)
        .at::<DeleteAuth, _, _>(delete_auth)
        .at::<Token, _, _>(token)
        .at::<Invalidate, _, _>(invalidate)
        .at::<GetMcp, _, _>(mcp_list)
        .at::<PutMcpAt, _, _>(put_mcp)
        .at::<DeleteMcp, _, _>(delete_mcp)
        .at::<GetApis, _, _>(api_list)
        .at::<PutApiAt, _, _>(put_api)
        .at::<DeleteApi, _, _>(delete_api)
        .at::<GetIdps, _, _>(idp_list)
        .at::<PutIdpAt, _, _>(put_idp)
        .at::<DeleteIdp, _, _>(delete_idp)
        .at::<HandOverIdToken, _, _>(id_token)
        .at::<Challenge, _, _>(challenge)
        .at::<StartLogin, _, _>(login_start)
        .at::<GetLogin, _, _>(login_get)
        .at::<CancelLogin, _, _>(login_cancel)
        .at::<Logout, _, _>(logout)
        .at::<Doctor, _, _>(doctor)
        .fallback(fallback)
        .method_not_allowed_fallback(method_not_allowed)
}

/// Routes an endpoint of `regent_proto::api` (its method and path, as declared there).
trait At<S> {
    fn at<E: Endpoint, H: Handler<T, S>, T: 'static>(self, handler: H) -> Self;
}

impl<S: Clone + Send + Sync + 'static> At<S> for Router<S> {
    fn at<E: Endpoint, H: Handler<T, S>, T: 'static>(self, handler: H) -> Self {
        let method = Method::from_bytes(E::METHOD.as_bytes()).expect("a declared method");
        let filter = MethodFilter::try_from(method).expect("a routable method");
        self.route(E::PATH, axum::routing::on(filter, handler))
    }
}

/// The answer of a handler that panicked. The panic's payload is not shown:
/// it could hold anything the handler had in hand.
fn panicked(_payload: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    ApiError::internal("the agent hit a bug while answering this request (see its log)")
        .into_response()
}

/// The answer to every request from a peer of another uid.
pub fn forbidden_router() -> Router {
    Router::new().fallback(|| async {
        ApiError::new(
            regent_proto::ErrorCode::Forbidden,
            "this agent serves only its own user",
        )
    })
}

async fn fallback(method: Method, uri: Uri) -> ApiError {
    ApiError::invalid(format!("no such endpoint: {method} {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::invalid(format!("{method} is not allowed on {}", uri.path()))
}

async fn health(State(agent): Shared, Who(caller): Who) -> Json<Health> {
    let ctx = agent.ctx();
    if let Caller::Forwarded(_) = caller {
        // What a remote machine needs to know, and no more.
        return Json(Health {
            version: env!("CARGO_PKG_VERSION").to_string(),
            api: API_VERSION,
            pid: std::process::id(),
            store: ctx.store.name().to_string(),
            durability: None,
            started_at: None,
            systemd: false,
            pending_logins: Vec::new(),
            forward_socket: None,
            forwarded: true,
            network: None,
        });
    }
    Json(Health {
        version: env!("CARGO_PKG_VERSION").to_string(),
        api: API_VERSION,
        pid: std::process::id(),
        store: ctx.store.name().to_string(),
        durability: Some(ctx.store.durability().to_string()),
        started_at: Some(agent.started_at()),
        systemd: ctx.settings.systemd,
        pending_logins: agent.logins().pending(),
        forward_socket: agent.forwarding().socket(),
        forwarded: false,
        network: ctx.idp.network().map(|n| n.status()),
    })
}

/// `GET /v1/forward`: what is forwardable, and the sessions.
async fn forward_list(State(agent): Shared) -> Json<ForwardList> {
    let f = agent.forwarding();
    let mut resources: Vec<RegistryStatus> = [Kind::Registry, Kind::Mcp, Kind::Api]
        .iter()
        .flat_map(|k| agent.all(*k))
        .map(|r| agent.status(&r))
        .filter(|s| s.forward.is_some())
        .collect();
    resources.sort_by(|a, b| a.name.cmp(&b.name));
    Json(ForwardList {
        socket: f.socket(),
        resources,
        sessions: f.sessions(),
    })
}

/// `PUT /v1/forward/{name}`.
async fn put_forward(
    State(agent): Shared,
    Segment(name): Segment,
    JsonBody(body): JsonBody<PutForward>,
) -> ApiResult<Json<RegistryStatus>> {
    Ok(Json(agent.set_forward(&name, body).await?))
}

/// `POST /v1/forward/sessions`.
async fn open_session(
    State(agent): Shared,
    JsonBody(body): JsonBody<ForwardSession>,
) -> StatusCode {
    agent.forwarding().open(body);
    StatusCode::NO_CONTENT
}

/// `DELETE /v1/forward/sessions/{pid}`.
async fn close_session(State(agent): Shared, Segment(pid): Segment) -> ApiResult<StatusCode> {
    let pid: u32 = pid
        .parse()
        .map_err(|_| ApiError::invalid(format!("{pid:?} is not a pid")))?;
    agent.forwarding().close(pid);
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/reload`: what SIGHUP does, with the outcome in the answer.
async fn reload(State(agent): Shared) -> ApiResult<Json<ReloadResponse>> {
    let resources = agent.reload().await?;
    Ok(Json(ReloadResponse { resources }))
}

/// `GET /v1/resource?name=N&kind=K`: which resource a name (or none: the
/// only one, of the kind if given) means, with its status; `?url=U`: the
/// resource whose URL covers U (longest path prefix); `?origin=U`: the one
/// resource at U's origin, whatever its path (git names only the host).
async fn resource(
    State(agent): Shared,
    Who(caller): Who,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<RegistryStatus>> {
    let (mut name, mut kind, mut url, mut origin) = (None, None, None, None);
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "name" => name = Some(v.into_owned()),
            "kind" => kind = Some(v.parse().map_err(ApiError::invalid)?),
            "url" => url = Some(v.into_owned()),
            "origin" => origin = Some(v.into_owned()),
            other => {
                return Err(ApiError::invalid(format!(
                    "unknown query parameter {other:?}"
                )))
            }
        }
    }
    let by_url = match (url, origin) {
        (Some(u), None) => Some((u, false)),
        (None, Some(o)) => Some((o, true)),
        (Some(_), Some(_)) => return Err(ApiError::invalid("url or origin, not both")),
        (None, None) => None,
    };
    if let Some((u, whole_origin)) = by_url {
        if name.is_some() || kind.is_some() {
            return Err(ApiError::invalid(
                "url and origin go alone, without name or kind",
            ));
        }
        return Ok(Json(agent.covering(caller, &u, whole_origin)?));
    }
    Ok(Json(agent.lookup(caller, name.as_deref(), kind)?))
}

async fn list(State(agent): Shared, Who(caller): Who) -> Json<RegistryList> {
    Json(RegistryList {
        registries: agent.statuses(caller, Kind::Registry),
    })
}

async fn put_registry(
    State(agent): Shared,
    Segment(name): Segment,
    JsonBody(body): JsonBody<PutRegistry>,
) -> ApiResult<Json<RegistryStatus>> {
    put_server(&agent, Kind::Registry, &name, body).await
}

/// A registry or an API: the same body, the same checks.
async fn put_server(
    agent: &Agent,
    kind: Kind,
    name: &str,
    body: PutRegistry,
) -> ApiResult<Json<RegistryStatus>> {
    Ok(Json(
        agent
            .put_registry(
                kind,
                name,
                Some(body.url),
                body.auth,
                body.discover,
                body.client_secret.map(regent_proto::Secret::into_inner),
                body.share_login,
                body.dpop,
            )
            .await?,
    ))
}

async fn delete_registry(State(agent): Shared, Segment(name): Segment) -> ApiResult<StatusCode> {
    agent.remove(&name, Kind::Registry).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Whose auth `set-registry-auth` sets: an API's where `name` is one, else
/// a registry's (which the call may create).
fn auth_kind(agent: &Agent, name: &str) -> Kind {
    match agent.resolve(Some(name)) {
        Ok(r) if r.kind == Kind::Api => Kind::Api,
        _ => Kind::Registry,
    }
}

async fn put_auth(
    State(agent): Shared,
    Segment(name): Segment,
    JsonBody(auth): JsonBody<AuthConfig>,
) -> ApiResult<Json<RegistryStatus>> {
    let kind = auth_kind(&agent, &name);
    Ok(Json(
        agent
            .put_registry(kind, &name, None, Some(auth), false, None, None, None)
            .await?,
    ))
}

async fn delete_auth(State(agent): Shared, Segment(name): Segment) -> ApiResult<StatusCode> {
    let kind = auth_kind(&agent, &name);
    agent
        .put_registry(kind, &name, None, None, false, None, None, None)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn api_list(State(agent): Shared, Who(caller): Who) -> Json<ApiList> {
    Json(ApiList {
        apis: agent.statuses(caller, Kind::Api),
    })
}

async fn put_api(
    State(agent): Shared,
    Segment(name): Segment,
    JsonBody(body): JsonBody<PutRegistry>,
) -> ApiResult<Json<RegistryStatus>> {
    put_server(&agent, Kind::Api, &name, body).await
}

async fn delete_api(State(agent): Shared, Segment(name): Segment) -> ApiResult<StatusCode> {
    agent.remove(&name, Kind::Api).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn mcp_list(State(agent): Shared, Who(caller): Who) -> Json<McpList> {
    Json(McpList {
        servers: agent.statuses(caller, Kind::Mcp),
    })
}

async fn put_mcp(
    State(agent): Shared,
    Segment(name): Segment,
    JsonBody(body): JsonBody<PutMcp>,
) -> ApiResult<Json<RegistryStatus>> {
    Ok(Json(agent.put_mcp(&name, body).await?))
}

async fn delete_mcp(State(agent): Shared, Segment(name): Segment) -> ApiResult<StatusCode> {
    agent.remove(&name, Kind::Mcp).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn idp_list(State(agent): Shared, Who(caller): Who) -> Json<IdpList> {
    Json(IdpList {
        idps: agent.statuses(caller, Kind::Idp),
    })
}

async fn put_idp(
    State(agent): Shared,
    Segment(name): Segment,
    JsonBody(body): JsonBody<PutIdp>,
) -> ApiResult<Json<RegistryStatus>> {
    Ok(Json(agent.put_idp(&name, body).await?))
}

async fn delete_idp(State(agent): Shared, Segment(name): Segment) -> ApiResult<StatusCode> {
    agent.remove(&name, Kind::Idp).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn id_token(
    State(agent): Shared,
    Segment(name): Segment,
    JsonBody(body): JsonBody<IdTokenRequest>,
) -> ApiResult<StatusCode> {
    agent
        .hand_over_id_token(&name, body.id_token.into_inner())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/doctor`: the checks of a resource (or of all), from here.
async fn doctor(
    State(agent): Shared,
    body: Option<JsonBody<regent_proto::DoctorRequest>>,
) -> ApiResult<Json<regent_proto::DoctorReport>> {
    let name = body.and_then(|JsonBody(b)| b.name);
    Ok(Json(agent.doctor(name.as_deref()).await?))
}

async fn challenge(
    State(agent): Shared,
    Who(caller): Who,
    JsonBody(body): JsonBody<ChallengeRequest>,
) -> ApiResult<Json<ChallengeAnswer>> {
    Ok(Json(agent.challenge(caller, body).await?))
}

async fn token(
    State(agent): Shared,
    Who(caller): Who,
    body: Option<JsonBody<TokenRequest>>,
) -> ApiResult<Json<TokenResponse>> {
    let req = body.map(|b| b.0).unwrap_or_default();
    let min_valid = Duration::from_secs(req.min_valid_secs.unwrap_or(DEFAULT_MIN_VALID_SECS));
    let name = match (req.registry, req.url) {
        (Some(_), Some(_)) => return Err(ApiError::invalid("registry or url, not both")),
        (None, Some(url)) => Some(agent.covering(caller, &url, false)?.name),
        (name, None) => name,
    };
    Ok(Json(
        agent
            .token(caller, name.as_deref(), min_valid, req.dpop.as_ref())
            .await?,
    ))
}

async fn invalidate(
    State(agent): Shared,
    Who(caller): Who,
    JsonBody(req): JsonBody<InvalidateRequest>,
) -> ApiResult<StatusCode> {
    agent.invalidate(caller, req.registry.as_deref(), &req.access_token)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn login_start(
    State(agent): Shared,
    JsonBody(req): JsonBody<LoginRequest>,
) -> ApiResult<(StatusCode, Json<Login>)> {
    let login = agent
        .login(req.registry.as_deref(), req.flow, req.force)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(login)))
}

async fn login_get(
    State(agent): Shared,
    Segment(id): Segment,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<LoginStatus>> {
    let wait = wait_secs(query.as_deref())?;
    Ok(Json(
        agent.logins().get(&id, Duration::from_secs(wait)).await?,
    ))
}

/// Reads `wait_secs` from a query string (public for fuzzing).
pub fn parse_wait_secs(query: Option<&str>) -> Result<u64, ApiError> {
    wait_secs(query)
}

/// Reads `wait_secs` from the query: a whole number of seconds, at most 60.
fn wait_secs(query: Option<&str>) -> ApiResult<u64> {
    let mut wait = 0;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "wait_secs" => {
                wait = v.parse::<u64>().map_err(|_| {
                    ApiError::invalid(format!(
                        "wait_secs must be a whole number of seconds, not {v:?}"
                    ))
                })?;
            }
            other => {
                return Err(ApiError::invalid(format!(
                    "unknown query parameter {other:?}"
                )))
            }
        }
    }
    Ok(wait.min(MAX_LOGIN_WAIT_SECS))
}

async fn login_cancel(State(agent): Shared, Segment(id): Segment) -> ApiResult<StatusCode> {
    agent.logins().cancel(&id)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn logout(
    State(agent): Shared,
    body: Option<JsonBody<LogoutRequest>>,
) -> ApiResult<Json<LogoutResponse>> {
    let req = body.map(|b| b.0).unwrap_or_default();
    Ok(Json(agent.logout(req.registry.as_deref(), req.all).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_secs_is_bounded_and_strict() {
        assert_eq!(wait_secs(None).unwrap(), 0);
        assert_eq!(wait_secs(Some("wait_secs=5")).unwrap(), 5);
        assert_eq!(wait_secs(Some("wait_secs=600")).unwrap(), 60);
        assert!(wait_secs(Some("wait_secs=-1")).is_err());
        assert!(wait_secs(Some("wait=1")).is_err());
    }
}
