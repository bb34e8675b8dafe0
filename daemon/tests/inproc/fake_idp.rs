//! A small in-process authorization server for the in-process tier: it
//! speaks just enough OAuth (metadata, refresh with rotation and reuse
//! detection, the device grant approved at once, revocation) through the
//! agent's [`Transport`] seam, so tests run on tokio's paused clock. The
//! end-to-end tier runs against the real oidc-provider instead.

use futures::future::BoxFuture;
use oauth2::{HttpRequest, HttpResponse};
use regentd::oauth::http::{HttpError, Transport};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The issuer the fake answers as.
pub const ISSUER: &str = "https://idp.test";

/// A fault the token endpoint answers with.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// Works.
    None,
    /// The connection fails.
    Down,
    /// HTTP 500.
    Error500,
    /// A 200 with an HTML page (a captive portal, a proxy's login page).
    Html,
    /// A 200 whose JSON breaks off.
    Truncated,
    /// A 400 with an empty body: refused, but not in OAuth's words.
    Empty400,
}

/// How the fake behaves.
#[derive(Clone, Debug)]
pub struct Options {
    /// Access token lifetime.
    pub access_ttl: u64,
    /// Issue refresh tokens.
    pub refresh: bool,
    /// A refresh revokes the grant's earlier access tokens.
    pub revoke_on_rotation: bool,
    /// Publish a revocation endpoint.
    pub revocation: bool,
    /// Approve device logins at once (else every poll is `authorization_pending`).
    pub approve_device: bool,
    /// Answer the first device-code poll `slow_down` (RFC 8628 §3.5).
    pub slow_down_once: bool,
    /// Resources whose tokens are minted only from a login made for them:
    /// a refresh of another resource's grant for one answers `invalid_target`.
    pub unshared: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            access_ttl: 300,
            refresh: true,
            revoke_on_rotation: false,
            revocation: true,
            approve_device: true,
            slow_down_once: false,
            unshared: Vec::new(),
        }
    }
}

#[derive(Default)]
struct State {
    serial: u64,
    /// Live refresh tokens -> grant.
    refresh: HashMap<String, u64>,
    /// Refresh tokens rotated away -> grant (a replay revokes the grant).
    rotated: HashMap<String, u64>,
    /// Live access tokens -> (grant, resource).
    access: HashMap<String, (u64, Option<String>)>,
    /// Token requests by grant type.
    counts: HashMap<String, u32>,
    /// Every token request's form, for assertions.
    requests: Vec<HashMap<String, String>>,
    revocations: u32,
    /// The resource each grant's login was for.
    origin: HashMap<u64, Option<String>>,
    /// When each device-code poll came (on tokio's clock).
    device_polls: Vec<tokio::time::Instant>,
}

/// The fake authorization server.
pub struct FakeIdp {
    pub opts: Options,
    state: Mutex<State>,
    fault: Mutex<Fault>,
    delay: Mutex<Duration>,
    /// Token requests that reached the endpoint, faulted or not.
    attempts: std::sync::atomic::AtomicU32,
    /// The AS every resource's metadata names (default: this one).
    resources_at: Mutex<Option<String>>,
}

impl FakeIdp {
    /// A fresh server.
    pub fn new(opts: Options) -> Arc<FakeIdp> {
        Arc::new(FakeIdp {
            opts,
            state: Mutex::default(),
            fault: Mutex::new(Fault::None),
            delay: Mutex::new(Duration::ZERO),
            attempts: Default::default(),
            resources_at: Mutex::default(),
        })
    }

    /// Makes every resource's metadata (RFC 9728, served for any host at
    /// `/.well-known/oauth-protected-resource`) name `issuer` as its AS, as
    /// a server that moved to another AS does. Any host but this one's
    /// answers as a second AS, with dynamic client registration.
    pub fn move_resources_to(&self, issuer: &str) {
        *self.resources_at.lock().unwrap() = Some(issuer.to_string());
    }

    /// Makes the token endpoint fail (or work again).
    pub fn set_fault(&self, f: Fault) {
        *self.fault.lock().unwrap() = f;
    }

    /// Makes the token endpoint take `d` to answer.
    pub fn set_delay(&self, d: Duration) {
        *self.delay.lock().unwrap() = d;
    }

    /// When each device-code poll came.
    pub fn device_polls(&self) -> Vec<tokio::time::Instant> {
        self.state.lock().unwrap().device_polls.clone()
    }

    /// Token requests of `grant_type` so far.
    pub fn count(&self, grant_type: &str) -> u32 {
        *self
            .state
            .lock()
            .unwrap()
            .counts
            .get(grant_type)
            .unwrap_or(&0)
    }

    /// Refresh grants so far.
    pub fn refreshes(&self) -> u32 {
        self.count("refresh_token")
    }

    /// Token requests so far, including those a fault answered.
    pub fn attempts(&self) -> u32 {
        self.attempts.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Revocation requests so far.
    pub fn revocations(&self) -> u32 {
        self.state.lock().unwrap().revocations
    }

    /// Every token request's form, oldest first.
    pub fn requests(&self) -> Vec<HashMap<String, String>> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Whether an access token is live (introspection).
    pub fn is_active(&self, token: &str) -> bool {
        self.state.lock().unwrap().access.contains_key(token)
    }

    /// The resource an access token is for.
    pub fn resource_of(&self, token: &str) -> Option<String> {
        self.state
            .lock()
            .unwrap()
            .access
            .get(token)
            .and_then(|(_, r)| r.clone())
    }

    /// Revokes a refresh token as an administrator would.
    pub fn revoke_refresh_token(&self, token: &str) {
        let mut st = self.state.lock().unwrap();
        if let Some(g) = st.refresh.remove(token) {
            st.access.retain(|_, (grant, _)| *grant != g);
        }
    }

    /// Drops one access token alone.
    pub fn destroy_access_token(&self, token: &str) {
        self.state.lock().unwrap().access.remove(token);
    }

    fn metadata(&self) -> Value {
        let mut m = json!({
            "issuer": ISSUER,
            "authorization_endpoint": format!("{ISSUER}/auth"),
            "token_endpoint": format!("{ISSUER}/token"),
            "device_authorization_endpoint": format!("{ISSUER}/device"),
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": ["openid", "offline_access", "profile"],
        });
        if self.opts.revocation {
            m["revocation_endpoint"] = json!(format!("{ISSUER}/revoke"));
        }
        m
    }

    /// Mints tokens for `grant`.
    fn issue(&self, st: &mut State, grant: u64, resource: Option<String>, rotation: bool) -> Value {
        st.serial += 1;
        let n = st.serial;
        let at = format!("at-{grant}-{n}");
        if rotation && self.opts.revoke_on_rotation {
            st.access.retain(|_, (g, _)| *g != grant);
        }
        st.access.insert(at.clone(), (grant, resource));
        // An unsigned ID token: the agent reads it for display only.
        use base64::Engine;
        let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(json!({"sub": "alice", "preferred_username": "alice"}).to_string());
        let mut body = json!({
            "access_token": at,
            "token_type": "Bearer",
            "expires_in": self.opts.access_ttl,
            "scope": "openid offline_access",
            "id_token": format!("e30.{claims}.sig"),
        });
        if self.opts.refresh {
            let rt = format!("rt-{grant}-{n}");
            st.refresh.insert(rt.clone(), grant);
            body["refresh_token"] = json!(rt);
        }
        body
    }

    fn token(&self, form: HashMap<String, String>) -> (u16, Value) {
        let mut st = self.state.lock().unwrap();
        let grant_type = form.get("grant_type").cloned().unwrap_or_default();
        *st.counts.entry(grant_type.clone()).or_default() += 1;
        st.requests.push(form.clone());
        if grant_type == "urn:ietf:params:oauth:grant-type:device_code" {
            st.device_polls.push(tokio::time::Instant::now());
        }
        let resource = form.get("resource").cloned();
        match grant_type.as_str() {
            "refresh_token" => {
                let rt = form.get("refresh_token").cloned().unwrap_or_default();
                let refused = st.refresh.get(&rt).is_some_and(|g| {
                    resource
                        .as_ref()
                        .is_some_and(|r| self.opts.unshared.contains(r))
                        && st.origin.get(g) != Some(&resource)
                });
                if refused {
                    return (
                        400,
                        json!({"error": "invalid_target", "error_description": "not from this grant"}),
                    );
                }
                if let Some(grant) = st.refresh.remove(&rt) {
                    st.rotated.insert(rt, grant);
                    (200, self.issue(&mut st, grant, resource, true))
                } else {
                    if let Some(grant) = st.rotated.get(&rt).copied() {
                        // Reuse detection: the whole family goes.
                        st.refresh.retain(|_, g| *g != grant);
                        st.access.retain(|_, (g, _)| *g != grant);
                    }
                    (
                        400,
                        json!({"error": "invalid_grant", "error_description": "refresh token is invalid"}),
                    )
                }
            }
            "urn:ietf:params:oauth:grant-type:device_code"
                if self.opts.slow_down_once && st.device_polls.len() == 1 =>
            {
                (400, json!({"error": "slow_down"}))
            }
            "urn:ietf:params:oauth:grant-type:device_code" if !self.opts.approve_device => {
                (400, json!({"error": "authorization_pending"}))
            }
            "urn:ietf:params:oauth:grant-type:device_code" => {
                st.serial += 1;
                let grant = st.serial;
                st.origin.insert(grant, resource.clone());
                (200, self.issue(&mut st, grant, resource, false))
            }
            // Workload identity: an assertion whose payload part is `ok`
            // is a workload this AS trusts (no signature: the agent never
            // reads the assertion, it only carries it).
            "urn:ietf:params:oauth:grant-type:jwt-bearer" => {
                let assertion = form.get("assertion").cloned().unwrap_or_default();
                if assertion.split('.').nth(1) == Some("ok") {
                    st.serial += 1;
                    let grant = st.serial;
                    let mut body = self.issue(&mut st, grant, resource, false);
                    body.as_object_mut().unwrap().remove("refresh_token");
                    (200, body)
                } else {
                    (
                        400,
                        json!({"error": "invalid_grant", "error_description": "the assertion's audience is not this AS"}),
                    )
                }
            }
            _ => (400, json!({"error": "unsupported_grant_type"})),
        }
    }

    async fn answer(self: Arc<Self>, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        let path = req.uri().path().to_string();
        let form: HashMap<String, String> = url::form_urlencoded::parse(req.body())
            .into_owned()
            .collect();
        let origin = format!("https://{}", req.uri().host().unwrap_or_default());
        let (status, body) = match (req.method().as_str(), path.as_str()) {
            ("GET", p) if p.starts_with("/.well-known/oauth-protected-resource") => {
                let at = self.resources_at.lock().unwrap().clone();
                let suffix = &p["/.well-known/oauth-protected-resource".len()..];
                (
                    200,
                    json!({
                        "resource": format!("{origin}{suffix}"),
                        "authorization_servers": [at.unwrap_or_else(|| ISSUER.to_string())],
                    }),
                )
            }
            ("GET", "/.well-known/openid-configuration") if origin != ISSUER => (
                200,
                json!({
                    "issuer": origin,
                    "authorization_endpoint": format!("{origin}/auth"),
                    "token_endpoint": format!("{origin}/token"),
                    "registration_endpoint": format!("{origin}/register"),
                    "code_challenge_methods_supported": ["S256"],
                }),
            ),
            ("POST", "/register") if origin != ISSUER => (
                201,
                json!({"client_id": "registered-1", "token_endpoint_auth_method": "none",
                       "redirect_uris": ["http://127.0.0.1/callback"]}),
            ),
            ("GET", "/.well-known/openid-configuration") => (200, self.metadata()),
            ("GET", _) => (404, json!({"error": "not_found"})),
            ("POST", "/device") => (
                200,
                json!({
                    "device_code": "dc",
                    "user_code": "ABCD-EFGH",
                    "verification_uri": format!("{ISSUER}/activate"),
                    "expires_in": 600,
                    "interval": 1,
                }),
            ),
            ("POST", "/token") => {
                self.attempts
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let delay = *self.delay.lock().unwrap();
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                let fault = self.fault.lock().unwrap().clone();
                match fault {
                    Fault::Down => return Err(HttpError::Transport("connection refused".into())),
                    Fault::Error500 => (500, json!({"error": "server_error"})),
                    Fault::Html => return Ok(raw(200, "text/html", "<html>sign in</html>")),
                    Fault::Empty400 => return Ok(raw(400, "text/plain", "")),
                    Fault::Truncated => {
                        return Ok(raw(200, "application/json", r#"{"access_token": "at-tru"#))
                    }
                    Fault::None => self.token(form),
                }
            }
            ("POST", "/revoke") => {
                let mut st = self.state.lock().unwrap();
                st.revocations += 1;
                if let Some(t) = form.get("token") {
                    if let Some(g) = st.refresh.remove(t) {
                        st.access.retain(|_, (grant, _)| *grant != g);
                    }
                    st.access.remove(t);
                }
                (200, json!({}))
            }
            _ => (404, json!({"error": "not_found"})),
        };
        Ok(oauth2::http::Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(body.to_string().into_bytes())
            .expect("a response builds"))
    }
}

/// An answer with a body as it is.
fn raw(status: u16, content_type: &str, body: &str) -> HttpResponse {
    oauth2::http::Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(body.as_bytes().to_vec())
        .expect("a response builds")
}

/// The fake as the agent's transport.
pub struct Wire(pub Arc<FakeIdp>);

impl Transport for Wire {
    fn send(&self, req: HttpRequest) -> BoxFuture<'static, Result<HttpResponse, HttpError>> {
        Box::pin(self.0.clone().answer(req))
    }
}
