//! The MCP streamable HTTP transport, client side (MCP 2025-11-25, "Basic
//! / Transports"), with the agent's tokens: every JSON-RPC message is POSTed
//! with both `Accept` types; JSON and SSE answers come back message by
//! message; `Mcp-Session-Id` and `MCP-Protocol-Version` are carried; a GET
//! stream brings server-initiated messages; DELETE ends the session.
//!
//! The transport owns its streams: an answer stream cut before it answered
//! is resumed (GET with `Last-Event-ID`, after the server's `retry`) until
//! the answer comes, and the GET stream is reopened the same way, with a
//! floor and a backoff so a server that ends it at once is not hammered.
//! Messages pass through as bytes, each parsed once for what the transport
//! needs (ids, `initialize`, the protocol version): nothing the client and
//! server say to each other is reparsed into types that could drop a field.
//!
//! Auth is [`ResourceAuth`]'s: the one refusal path, where the agent decides.

use crate::resource::{AuthError, Credential, ResourceAuth};
use crate::sse::{self, Parser};
use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::StatusCode;
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use url::Url;

mod params;

/// Largest single message (or SSE event) read from the server.
pub const MAX_MESSAGE: usize = 16 * 1024 * 1024;
/// How long to wait before resuming a stream when the server says nothing.
const DEFAULT_RETRY: Duration = Duration::from_secs(1);
/// The least wait before reopening a stream, whatever `retry` says.
const MIN_RETRY: Duration = Duration::from_millis(250);
/// The longest wait between reopenings of a stream that keeps ending at once.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Resumptions of an answer stream in a row that bring nothing, before giving up.
const MAX_EMPTY_RESUMES: u32 = 5;

/// Why a message could not be delivered.
#[derive(Debug, thiserror::Error)]
pub enum McpError {
    /// The server could not be reached.
    #[error("cannot reach the MCP server at {url}: {reason}")]
    Unreachable {
        /// Its URL.
        url: String,
        /// What happened.
        reason: String,
    },
    /// The server answered an HTTP error.
    #[error("the MCP server answered HTTP {status}{}", if body.is_empty() { String::new() } else { format!(": {body}") })]
    Status {
        /// The status.
        status: u16,
        /// The start of its body.
        body: String,
    },
    /// The server refuses, and no token or login would help (the agent's reason).
    #[error("{0}")]
    Auth(String),
    /// A login is needed and not run here (`--no-login`), or it failed.
    #[error("{0}")]
    LoginNeeded(String),
    /// The agent could not be asked.
    #[error("{0}")]
    Agent(String),
    /// The server's answer is not what the transport allows.
    #[error("the MCP server's answer: {0}")]
    Protocol(String),
}

impl From<AuthError<McpError>> for McpError {
    fn from(e: AuthError<McpError>) -> Self {
        match e {
            AuthError::Agent(e) => McpError::Agent(e.to_string()),
            AuthError::LoginNeeded { message, .. } => McpError::LoginNeeded(message),
            AuthError::Refused { message, .. } => McpError::Auth(message),
            AuthError::Send(e) => e,
        }
    }
}

/// The first revision with the stateless wire and its routing headers.
const STATELESS: &str = "2026-07-28";

/// A message from the client, read once for what the transport needs.
#[derive(Debug, Clone)]
pub struct Outgoing {
    bytes: Bytes,
    ids: Vec<Value>,
    is_initialize: bool,
    /// Its method (`Mcp-Method`), for a single message.
    method: Option<String>,
    /// Its name-shaped parameter (`Mcp-Name`): a tool's or prompt's name, a
    /// resource's URI, a task's id.
    name: Option<String>,
    /// The protocol version its `_meta` names (the stateless wire).
    version: Option<String>,
    /// A `tools/call`'s arguments, for the parameters mirrored into headers.
    arguments: Option<Value>,
}

impl Outgoing {
    /// Reads a JSON-RPC message (or batch) as the client wrote it. Something
    /// that is not JSON is sent as it is (the server answers it).
    pub fn parse(bytes: Bytes) -> Outgoing {
        // The stateless wire (2026-07-28) carries each request's version in its `_meta`.
        #[derive(Deserialize)]
        struct Meta {
            #[serde(default, rename = "io.modelcontextprotocol/protocolVersion")]
            version: Option<String>,
        }
        #[derive(Deserialize)]
        struct Params {
            /// `initialize`'s: the version it asks for.
            #[serde(default, rename = "protocolVersion")]
            protocol_version: Option<Value>,
            #[serde(default)]
            name: Option<Value>,
            #[serde(default)]
            uri: Option<Value>,
            #[serde(default, rename = "taskId")]
            task_id: Option<Value>,
            #[serde(default)]
            arguments: Option<Value>,
            #[serde(default, rename = "_meta")]
            meta: Option<Meta>,
        }
        #[derive(Deserialize)]
        struct One {
            #[serde(default)]
            id: Option<Value>,
            #[serde(default)]
            method: Option<String>,
            #[serde(default)]
            params: Option<Params>,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Shape {
            Batch(Vec<One>),
            One(Box<One>),
        }
        let (all, single) = match serde_json::from_slice::<Shape>(&bytes) {
            Ok(Shape::Batch(v)) => (v, false),
            Ok(Shape::One(o)) => (vec![*o], true),
            Err(_) => (Vec::new(), false),
        };
        let one = all.first().filter(|_| single);
        let method = one.and_then(|m| m.method.clone());
        let params = one.and_then(|m| m.params.as_ref());
        let text = |v: &Option<Value>| v.as_ref().and_then(Value::as_str).map(str::to_string);
        let name = params.and_then(|p| match method.as_deref() {
            Some("tools/call" | "prompts/get") => text(&p.name),
            Some("resources/read" | "resources/subscribe" | "resources/unsubscribe") => {
                text(&p.uri)
            }
            Some(m) if m.starts_with("tasks/") => text(&p.task_id),
            _ => None,
        });
        let version = params
            .and_then(|p| p.meta.as_ref())
            .and_then(|m| m.version.clone())
            // An `initialize` that asks for the stateless wire's revision (or later)
            // is routed as that revision's requests are.
            .or_else(|| {
                (method.as_deref() == Some("initialize"))
                    .then(|| params.and_then(|p| text(&p.protocol_version)))
                    .flatten()
                    .filter(|v| v.as_str() >= STATELESS)
            });
        let arguments = params
            .filter(|_| method.as_deref() == Some("tools/call"))
            .and_then(|p| p.arguments.clone());
        Outgoing {
            method,
            name,
            version,
            arguments,
            is_initialize: all
                .iter()
                .any(|m| m.method.as_deref() == Some("initialize")),
            // Requests have an id and a method; responses (to server requests) need no answer.
            ids: all
                .into_iter()
                .filter(|m| m.method.is_some())
                .filter_map(|m| m.id)
                .collect(),
            bytes,
        }
    }

    /// The ids of the requests in it (answers are owed to these).
    pub fn ids(&self) -> &[Value] {
        &self.ids
    }

    /// Whether it is (or has) an `initialize`.
    pub fn is_initialize(&self) -> bool {
        self.is_initialize
    }
}

/// A message from the server, read once: which requests it answers, the
/// protocol version if it is an `initialize` result, and the tools a
/// `tools/list` result declares headers for.
struct Incoming {
    answers: Vec<Value>,
    version: Option<String>,
    tools: Vec<(String, params::Declarations)>,
}

impl Incoming {
    fn read(data: &[u8]) -> Incoming {
        #[derive(Deserialize)]
        struct Init {
            #[serde(rename = "protocolVersion")]
            protocol_version: Option<String>,
            #[serde(rename = "serverInfo")]
            server_info: Option<IgnoredAny>,
            capabilities: Option<IgnoredAny>,
            // Read loosely: a result that is not a tool list is still an answer.
            #[serde(default)]
            tools: Option<Value>,
        }
        #[derive(Deserialize)]
        struct One {
            #[serde(default)]
            id: Option<Value>,
            #[serde(default)]
            method: Option<IgnoredAny>,
            #[serde(default)]
            result: Option<Init>,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Shape {
            Batch(Vec<One>),
            One(One),
        }
        let all = match serde_json::from_slice::<Shape>(data) {
            Ok(Shape::Batch(v)) => v,
            Ok(Shape::One(o)) => vec![o],
            Err(_) => Vec::new(),
        };
        let mut version = None;
        let mut answers = Vec::new();
        let mut tools = Vec::new();
        for m in all {
            if m.method.is_some() {
                continue; // a request or notification of the server's
            }
            if let Some(r) = m.result {
                if r.server_info.is_some() || r.capabilities.is_some() {
                    version = r.protocol_version.or(version);
                }
                for t in r
                    .tools
                    .as_ref()
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let (Some(name), Some(schema)) =
                        (t.get("name").and_then(Value::as_str), t.get("inputSchema"))
                    {
                        tools.push((name.to_string(), params::scan(schema)));
                    }
                }
            }
            answers.extend(m.id);
        }
        Incoming {
            answers,
            version,
            tools,
        }
    }
}

/// The transport for one server.
pub struct Transport {
    http: reqwest::Client,
    url: Url,
    auth: ResourceAuth,
    session: Mutex<Option<HeaderValue>>,
    version: Mutex<Option<HeaderValue>>,
    /// The client's `initialize`, replayed when the server forgets the session.
    init: Mutex<Option<Bytes>>,
    /// Each listed tool's parameters mirrored into headers (or why it is left out).
    tools: Mutex<std::collections::HashMap<String, params::Declarations>>,
}

impl Transport {
    /// A transport to the server at `url`, with `auth`'s tokens.
    pub fn new(url: Url, auth: ResourceAuth) -> Arc<Transport> {
        Arc::new(Transport {
            http: crate::http::mcp_client_for(&url),
            url,
            auth,
            session: Mutex::default(),
            version: Mutex::default(),
            init: Mutex::default(),
            tools: Mutex::default(),
        })
    }

    /// Whether the server gave a session id.
    pub fn has_session(&self) -> bool {
        self.session.lock().unwrap().is_some()
    }

    /// The protocol version negotiated, once an `initialize` result said it.
    pub fn protocol_version(&self) -> Option<String> {
        self.version
            .lock()
            .unwrap()
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    fn observe(&self, m: &Incoming) {
        if !m.tools.is_empty() {
            let mut tools = self.tools.lock().unwrap();
            for (name, d) in &m.tools {
                tools.insert(name.clone(), d.clone());
            }
        }
        if let Some(v) = m
            .version
            .as_deref()
            .and_then(|v| HeaderValue::from_str(v).ok())
        {
            *self.version.lock().unwrap() = Some(v);
        }
    }

    /// Whether a message goes on the 2026-07-28 wire (by its own version, or
    /// the one negotiated).
    fn routed(&self, msg: Option<&Outgoing>) -> bool {
        msg.and_then(|m| m.version.clone())
            .or_else(|| self.protocol_version())
            .is_some_and(|v| v.as_str() >= STATELESS)
    }

    /// The headers of a request: the token, the session (where the wire has
    /// one), and the protocol version: the message's own (`_meta`, the
    /// stateless wire) or the one `initialize` negotiated; from 2026-07-28
    /// on, `Mcp-Method`, `Mcp-Name` and a tool's `Mcp-Param-*` mirror the
    /// message (SEP-2243).
    fn headers(
        &self,
        credential: Option<&Credential>,
        accept: &'static str,
        msg: Option<&Outgoing>,
    ) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(ACCEPT, HeaderValue::from_static(accept));
        if let Some(s) = self.session.lock().unwrap().clone() {
            h.insert("mcp-session-id", s);
        }
        let version = msg
            .and_then(|m| m.version.as_deref())
            .and_then(|v| HeaderValue::from_str(v).ok())
            .or_else(|| self.version.lock().unwrap().clone());
        let routed = version
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v >= STATELESS);
        if let Some(v) = version {
            h.insert("mcp-protocol-version", v);
        }
        if let (true, Some(m)) = (routed, msg) {
            if let Some(v) = m.method.as_deref().and_then(header_value) {
                h.insert("mcp-method", v);
            }
            if let Some(v) = m.name.as_deref().and_then(header_value) {
                h.insert("mcp-name", v);
            }
            if let (Some(args), Some(Ok(decls))) = (
                m.arguments.as_ref(),
                m.name
                    .as_ref()
                    .and_then(|n| self.tools.lock().unwrap().get(n).cloned()),
            ) {
                for d in decls {
                    let name = format!("mcp-param-{}", d.header.to_ascii_lowercase());
                    if let (Ok(name), Some(v)) = (
                        reqwest::header::HeaderName::from_bytes(name.as_bytes()),
                        params::value(&d, args).as_deref().and_then(header_value),
                    ) {
                        h.insert(name, v);
                    }
                }
            }
        }
        if let Some(c) = credential {
            if let Ok(v) = HeaderValue::from_str(&c.authorization()) {
                h.insert(AUTHORIZATION, v);
            }
            if let Some(p) = c.proof().and_then(|p| HeaderValue::from_str(p).ok()) {
                h.insert("dpop", p);
            }
        }
        h
    }

    /// One request with the agent's token, through the one refusal path.
    async fn send(
        &self,
        method: &str,
        build: impl Fn(Option<&Credential>) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, McpError> {
        let resp = self
            .auth
            .send(method, self.url.as_str(), |credential| {
                let req = build(credential.as_ref());
                async move { req.send().await.map_err(|e| self.unreachable(&e)) }
            })
            .await?;
        if let Some(s) = resp.headers().get("mcp-session-id") {
            *self.session.lock().unwrap() = Some(s.clone());
        }
        Ok(resp)
    }

    /// Sends one message; its answers (none for a notification) follow.
    pub async fn post(self: &Arc<Self>, msg: &Outgoing) -> Result<Answers, McpError> {
        let routed = self.routed(Some(msg));
        if let (true, Some("tools/call"), Some(name)) =
            (routed, msg.method.as_deref(), msg.name.as_deref())
        {
            if let Some(Err(why)) = self.tools.lock().unwrap().get(name) {
                return Err(McpError::Protocol(format!(
                    "tool {} is left out, so regent does not call it: {why}",
                    crate::text::printable(name)
                )));
            }
        }
        if msg.is_initialize {
            *self.init.lock().unwrap() = Some(msg.bytes.clone());
            // A new initialize is a new session.
            *self.session.lock().unwrap() = None;
        }
        let mut reinitialized = false;
        loop {
            let had_session = self.has_session();
            let resp = self
                .send("POST", |credential| {
                    self.http
                        .post(self.url.clone())
                        .headers(self.headers(
                            credential,
                            "application/json, text/event-stream",
                            Some(msg),
                        ))
                        .header(CONTENT_TYPE, "application/json")
                        .body(msg.bytes.clone())
                })
                .await?;
            let status = resp.status();
            if status == StatusCode::NOT_FOUND
                && had_session
                && !msg.is_initialize
                && !reinitialized
            {
                // The server forgot the session: start a new one, then send again.
                reinitialized = true;
                self.reinitialize().await?;
                continue;
            }
            let source = match status {
                StatusCode::ACCEPTED | StatusCode::NO_CONTENT => Source::Done,
                s if s.is_success() => self.source(resp).await?,
                s => return Err(status_error(s, resp).await),
            };
            return Ok(Answers {
                transport: self.clone(),
                source,
                pending: msg.ids.clone(),
                listening: false,
                routed,
                resume: Resume::default(),
            });
        }
    }

    /// Sends the cached `initialize` and `notifications/initialized` again;
    /// the answer to the first is not forwarded (the client has one).
    async fn reinitialize(self: &Arc<Self>) -> Result<(), McpError> {
        let Some(init) = self.init.lock().unwrap().clone() else {
            return Err(McpError::Protocol(
                "the server lost the session, and there is no initialize to replay".into(),
            ));
        };
        note("the server lost the session; initializing a new one");
        *self.session.lock().unwrap() = None;
        let mut answers = Box::pin(self.post(&Outgoing::parse(init))).await?;
        while answers.next().await?.is_some() {}
        let initialized = Outgoing::parse(Bytes::from_static(
            br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        ));
        let mut answers = Box::pin(self.post(&initialized)).await?;
        while answers.next().await?.is_some() {}
        Ok(())
    }

    async fn source(&self, resp: reqwest::Response) -> Result<Source, McpError> {
        let kind = header(resp.headers(), CONTENT_TYPE).unwrap_or_default();
        if kind.starts_with("text/event-stream") {
            return Ok(Source::Stream(Box::new(EventStream::new(resp))));
        }
        let body = read(resp).await?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Source::Done);
        }
        Ok(Source::Json(Some(body)))
    }

    /// The GET stream of server-initiated messages; it reopens itself
    /// (resuming after the last event) until the server says it offers none.
    /// `Ok(None)`: it offers none.
    pub async fn listen(self: &Arc<Self>) -> Result<Option<Answers>, McpError> {
        Ok(self.open_stream(None).await?.map(|s| Answers {
            transport: self.clone(),
            source: Source::Stream(Box::new(s)),
            pending: Vec::new(),
            listening: true,
            routed: self.routed(None),
            resume: Resume::default(),
        }))
    }

    /// A GET stream, resumed after `last_event_id`; `Ok(None)`: none offered.
    async fn open_stream(
        &self,
        last_event_id: Option<&str>,
    ) -> Result<Option<EventStream>, McpError> {
        let resp = self
            .send("GET", |credential| {
                let mut req = self.http.get(self.url.clone()).headers(self.headers(
                    credential,
                    "text/event-stream",
                    None,
                ));
                if let Some(id) = last_event_id.and_then(|i| HeaderValue::from_str(i).ok()) {
                    req = req.header("last-event-id", id);
                }
                req
            })
            .await?;
        match resp.status() {
            StatusCode::METHOD_NOT_ALLOWED | StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success()
                && header(resp.headers(), CONTENT_TYPE)
                    .is_some_and(|c| c.starts_with("text/event-stream")) =>
            {
                Ok(Some(EventStream::new(resp)))
            }
            s if s.is_success() => Ok(None),
            s => Err(status_error(s, resp).await),
        }
    }

    /// Ends the session (DELETE), if the server gave one; its refusal is fine.
    pub async fn close(&self) {
        if !self.has_session() {
            return;
        }
        let credential = self
            .auth
            .credential("DELETE", self.url.as_str())
            .await
            .ok()
            .flatten();
        let _ = self
            .http
            .delete(self.url.clone())
            .headers(self.headers(
                credential.as_ref(),
                "application/json, text/event-stream",
                None,
            ))
            .timeout(Duration::from_secs(2))
            .send()
            .await;
    }

    fn unreachable(&self, e: &reqwest::Error) -> McpError {
        McpError::Unreachable {
            url: self.url.as_str().to_string(),
            reason: crate::http::why(e, &self.url),
        }
    }
}

/// Where answers come from now.
enum Source {
    Done,
    Json(Option<Bytes>),
    Stream(Box<EventStream>),
    /// The stream ended; it is opened again (after the last event).
    Reopen,
}

/// How a stream is reopened: after the last event dispatched, not before
/// the server's `retry` (nor [`MIN_RETRY`]), backing off while reopenings
/// bring nothing.
#[derive(Default)]
struct Resume {
    last_id: Option<String>,
    retry: Option<Duration>,
    /// Reopenings in a row that brought no event.
    empty: u32,
}

impl Resume {
    fn wait(&self) -> Duration {
        let base = self.retry.unwrap_or(DEFAULT_RETRY).max(MIN_RETRY);
        base.saturating_mul(1 << self.empty.min(7))
            .min(MAX_BACKOFF.max(base))
    }
}

/// The messages that answer one POST (or arrive on the GET stream), one line
/// of JSON each, in order.
pub struct Answers {
    transport: Arc<Transport>,
    source: Source,
    /// Requests not answered yet.
    pending: Vec<Value>,
    /// The GET stream: reopened for as long as the session lasts.
    listening: bool,
    /// On the 2026-07-28 wire: tools with invalid header declarations are left out.
    routed: bool,
    resume: Resume,
}

impl Answers {
    /// The ids of the requests still owed an answer.
    pub fn unanswered(&self) -> &[Value] {
        &self.pending
    }

    /// The next message, as one line of JSON; `None` when all is answered
    /// (or, for the GET stream, when the server offers it no more).
    pub async fn next(&mut self) -> Result<Option<String>, McpError> {
        loop {
            match &mut self.source {
                Source::Done => {
                    if self.pending.is_empty() {
                        return Ok(None);
                    }
                    return Err(McpError::Protocol(
                        "the server ended its answer without answering".into(),
                    ));
                }
                Source::Json(body) => {
                    let Some(body) = body.take() else {
                        self.source = Source::Done;
                        continue;
                    };
                    let line = self.deliver(&body);
                    self.pending.clear(); // a JSON answer is the whole answer
                    return Ok(Some(line));
                }
                Source::Stream(s) => {
                    if let Some(ev) = s.next().await? {
                        if ev.data.trim().is_empty() {
                            continue; // brings nothing: no reason to reopen sooner
                        }
                        self.resume.empty = 0;
                        return Ok(Some(self.deliver(ev.data.as_bytes())));
                    }
                    // The stream ended (or broke off): resume it if something is owed.
                    if let Some(id) = s.parser.last_id() {
                        self.resume.last_id = Some(id.to_string());
                    }
                    self.resume.retry = s.parser.retry().or(self.resume.retry);
                    if !s.delivered {
                        self.resume.empty += 1;
                    }
                    if !self.listening {
                        if self.pending.is_empty() {
                            self.source = Source::Done;
                            continue;
                        }
                        if self.resume.last_id.is_none() {
                            return Err(McpError::Protocol(
                                "the stream ended without an answer, and had no event id to resume from"
                                    .into(),
                            ));
                        }
                        if self.resume.empty > MAX_EMPTY_RESUMES {
                            return Err(McpError::Protocol(format!(
                                "the stream was resumed {MAX_EMPTY_RESUMES} times without an answer"
                            )));
                        }
                    }
                    self.source = Source::Reopen;
                }
                Source::Reopen => {
                    tokio::time::sleep(self.resume.wait()).await;
                    match self
                        .transport
                        .open_stream(self.resume.last_id.as_deref())
                        .await
                    {
                        Ok(Some(s)) => self.source = Source::Stream(Box::new(s)),
                        Ok(None) if self.listening => return Ok(None),
                        Ok(None) => return Err(McpError::Protocol(
                            "the stream ended without an answer, and the server does not resume it"
                                .into(),
                        )),
                        Err(e @ (McpError::Unreachable { .. } | McpError::Status { .. }))
                            if self.listening =>
                        {
                            self.resume.empty += 1;
                            note(&format!(
                                "the server's event stream: {e}; trying again in {:.1} s",
                                self.resume.wait().as_secs_f32()
                            ));
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
        }
    }

    /// Takes note of a message on its way to the client; the line to give it.
    fn deliver(&mut self, data: &[u8]) -> String {
        let m = Incoming::read(data);
        self.transport.observe(&m);
        self.pending.retain(|id| !m.answers.contains(id));
        let left_out: Vec<(&String, &String)> = m
            .tools
            .iter()
            .filter_map(|(name, d)| d.as_ref().err().map(|why| (name, why)))
            .collect();
        if self.routed && !left_out.is_empty() {
            if let Some(line) = without_tools(data, &left_out) {
                return line;
            }
        }
        one_line(&String::from_utf8_lossy(data))
    }
}

/// A `tools/list` answer without the tools whose header declarations are
/// invalid (each named on stderr); the rest of the message as it was.
fn without_tools(data: &[u8], left_out: &[(&String, &String)]) -> Option<String> {
    let mut v: Value = serde_json::from_slice(data).ok()?;
    let messages: Vec<&mut Value> = match &mut v {
        Value::Array(all) => all.iter_mut().collect(),
        one => vec![one],
    };
    for m in messages {
        if let Some(tools) = m
            .get_mut("result")
            .and_then(|r| r.get_mut("tools"))
            .and_then(Value::as_array_mut)
        {
            tools.retain(|t| {
                let name = t.get("name").and_then(Value::as_str);
                !left_out.iter().any(|(n, _)| Some(n.as_str()) == name)
            });
        }
    }
    for (name, why) in left_out {
        note(&format!(
            "tool {name} is left out of the list: {why} (SEP-2243)"
        ));
    }
    serde_json::to_string(&v).ok()
}

/// A note for the person reading stderr (stdout carries the protocol).
fn note(msg: &str) {
    eprintln!("regent: {}", crate::text::printable(msg));
}

/// A header value for `s`: as it is where it is visible ASCII (and has no
/// leading or trailing space), else Base64 in the `=?base64?...?=` form
/// SEP-2243 defines for values a header cannot carry.
fn header_value(s: &str) -> Option<HeaderValue> {
    let plain = !s.is_empty()
        && s.bytes().all(|b| (0x20..0x7f).contains(&b))
        && !s.starts_with(' ')
        && !s.ends_with(' ')
        && !s.starts_with("=?");
    if plain {
        return HeaderValue::from_str(s).ok();
    }
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    HeaderValue::from_str(&format!("=?base64?{encoded}?=")).ok()
}

fn header(h: &HeaderMap, name: impl reqwest::header::AsHeaderName) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

async fn read(mut resp: reqwest::Response) -> Result<Bytes, McpError> {
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| McpError::Protocol(format!("reading the answer: {e}")))?
    {
        if body.len() + chunk.len() > MAX_MESSAGE {
            return Err(McpError::Protocol(format!(
                "an answer larger than {} MiB",
                MAX_MESSAGE / 1024 / 1024
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(body))
}

async fn status_error(status: StatusCode, resp: reqwest::Response) -> McpError {
    let body = read(resp).await.unwrap_or_default();
    let text: String = String::from_utf8_lossy(&body)
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    McpError::Status {
        status: status.as_u16(),
        body: text,
    }
}

/// The events of a `text/event-stream` answer; a cut ends it (the
/// unfinished event is dropped, and the last id is the last one dispatched).
struct EventStream {
    resp: reqwest::Response,
    parser: Parser,
    done: bool,
    /// Whether it brought any event.
    delivered: bool,
}

impl EventStream {
    fn new(resp: reqwest::Response) -> EventStream {
        EventStream {
            resp,
            parser: Parser::new(MAX_MESSAGE),
            done: false,
            delivered: false,
        }
    }

    /// The next event with data; `None` at the end (or a cut) of the stream.
    async fn next(&mut self) -> Result<Option<sse::Event>, McpError> {
        loop {
            if let Some(ev) = self.parser.next_event() {
                self.delivered |= !ev.data.trim().is_empty();
                return Ok(Some(ev));
            }
            if self.done {
                return Ok(None);
            }
            match self.resp.chunk().await {
                Ok(Some(chunk)) => self
                    .parser
                    .feed(&chunk)
                    .map_err(|e| McpError::Protocol(e.to_string()))?,
                Ok(None) => self.done = true,
                Err(e) => {
                    note(&format!("the event stream broke off: {e}"));
                    self.done = true;
                }
            }
        }
    }
}

/// The data of an event as one line of JSON (stdio framing): a newline in
/// valid JSON can only be whitespace between tokens, so it becomes a space.
pub fn one_line(data: &str) -> String {
    data.replace(['\r', '\n'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outgoing_messages_are_read_for_ids_and_initialize() {
        let m = Outgoing::parse(Bytes::from_static(
            br#"{"jsonrpc":"2.0","id":7,"method":"initialize","params":{}}"#,
        ));
        assert!(m.is_initialize());
        assert_eq!(m.ids(), [serde_json::json!(7)]);
        let m = Outgoing::parse(Bytes::from_static(
            br#"[{"jsonrpc":"2.0","id":"a","method":"tools/list"},{"jsonrpc":"2.0","method":"notifications/x"},{"jsonrpc":"2.0","id":3,"result":{}}]"#,
        ));
        assert!(!m.is_initialize());
        assert_eq!(m.ids(), [serde_json::json!("a")]);
        assert!(Outgoing::parse(Bytes::from_static(b"not json"))
            .ids()
            .is_empty());
    }

    #[test]
    fn stateless_requests_carry_their_version_method_and_name() {
        let m = Outgoing::parse(Bytes::from_static(
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add","arguments":{},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#,
        ));
        assert_eq!(m.version.as_deref(), Some("2026-07-28"));
        assert_eq!(m.method.as_deref(), Some("tools/call"));
        assert_eq!(m.name.as_deref(), Some("add"));
        let m = Outgoing::parse(Bytes::from_static(
            br#"{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"file:///a b"}}"#,
        ));
        assert_eq!(m.name.as_deref(), Some("file:///a b"));
        assert_eq!(m.version, None);
        // A 2025 initialize sets no version of its own; a 2026 one does.
        let old = Outgoing::parse(Bytes::from_static(
            br#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25"}}"#,
        ));
        assert_eq!(old.version, None);
        let new = Outgoing::parse(Bytes::from_static(
            br#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2026-07-28"}}"#,
        ));
        assert_eq!(new.version.as_deref(), Some("2026-07-28"));
    }

    #[test]
    fn header_values_a_header_cannot_carry_go_as_base64() {
        assert_eq!(header_value("add_numbers").unwrap(), "add_numbers");
        assert_eq!(
            header_value("Hello, 世界").unwrap(),
            "=?base64?SGVsbG8sIOS4lueVjA==?="
        );
        assert_eq!(header_value(" padded ").unwrap(), "=?base64?IHBhZGRlZCA=?=");
        assert!(header_value("line1\nline2")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("=?base64?"));
    }

    #[test]
    fn incoming_messages_are_read_for_answers_and_the_version() {
        let m = Incoming::read(
            br#"{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2025-11-25","capabilities":{},"serverInfo":{"name":"s","version":"1"}}}"#,
        );
        assert_eq!(m.answers, [serde_json::json!(1)]);
        assert_eq!(m.version.as_deref(), Some("2025-11-25"));
        // A request of the server's answers nothing, whatever its id.
        let m = Incoming::read(br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#);
        assert!(m.answers.is_empty());
        // A tool's result that happens to have a protocolVersion field is not an initialize.
        let m = Incoming::read(br#"{"jsonrpc":"2.0","id":2,"result":{"protocolVersion":"x"}}"#);
        assert_eq!(m.version, None);
        assert_eq!(m.answers, [serde_json::json!(2)]);
    }

    #[test]
    fn reopening_waits_for_retry_with_a_floor_and_backs_off() {
        let mut r = Resume {
            retry: Some(Duration::ZERO),
            ..Resume::default()
        };
        assert_eq!(r.wait(), MIN_RETRY);
        r.empty = 3;
        assert_eq!(r.wait(), MIN_RETRY * 8);
        r.empty = 50;
        assert_eq!(r.wait(), MAX_BACKOFF);
        r.retry = Some(Duration::from_secs(60));
        assert_eq!(r.wait(), Duration::from_secs(60));
    }
}
