//! The MCP streamable HTTP transport, client side (MCP 2025-11-25, "Basic
//! / Transports"), with the agent's tokens: every JSON-RPC message is POSTed
//! with both `Accept` types; JSON and SSE answers come back message by
//! message; `Mcp-Session-Id` and `MCP-Protocol-Version` are carried; a GET
//! stream brings server-initiated messages and resumes with `Last-Event-ID`
//! after the server's `retry`; DELETE ends the session. Messages pass through
//! as bytes: nothing the client and server say to each other is reparsed
//! into types that could drop a field.
//!
//! Auth is the [`Authorizer`]'s: the transport sends the Bearer token it
//! gives, and reports every 401 and 403 to it (the agent then decides:
//! retry, log in, or give up).

use bytes::Bytes;
use regent_proto::Next;
use reqwest::header::{
    HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE,
};
use reqwest::StatusCode;
use std::sync::Mutex;
use std::time::Duration;
use url::Url;

/// What one request has tried against refusals: a retry with a new token
/// once, then at most [`MAX_AUTH_ATTEMPTS`] logins.
#[derive(Default)]
struct Attempts {
    retried: bool,
    logins: usize,
}

impl Attempts {
    /// A 401 or 403 for `token`: reported to the authorizer, and `Ok` when the
    /// request should be sent again (after a login, where it said so).
    async fn refused(
        &mut self,
        t: &Transport,
        resp: &reqwest::Response,
        token: Option<&str>,
    ) -> Result<(), McpError> {
        let challenge = header(resp.headers(), WWW_AUTHENTICATE);
        let (next, why) = t
            .auth
            .refused(resp.status().as_u16(), challenge.as_deref(), token)
            .await?;
        match next {
            Next::Retry if !self.retried => {
                self.retried = true;
                Ok(())
            }
            Next::Retry | Next::Login if self.logins < MAX_AUTH_ATTEMPTS => {
                self.logins += 1;
                t.auth.login().await
            }
            Next::Retry | Next::Login => Err(McpError::Auth(format!(
                "the server still refuses after {MAX_AUTH_ATTEMPTS} logins: {why}"
            ))),
            Next::Fail | Next::Unknown => Err(McpError::Auth(why)),
        }
    }
}

/// Largest single message read from the server.
const MAX_MESSAGE: usize = 16 * 1024 * 1024;
/// Most authorization attempts (logins) for one request.
const MAX_AUTH_ATTEMPTS: usize = 3;
/// How long to wait before resuming a stream when the server says nothing.
const DEFAULT_RETRY: Duration = Duration::from_secs(1);

/// Where tokens come from, and what a refusal leads to.
pub trait Authorizer: Send + Sync {
    /// The token to send, if the resource has auth (`None`: none).
    fn token(&self) -> futures_lite::BoxFuture<'_, Result<Option<String>, McpError>>;
    /// A 401 or 403 for `token`: what now.
    fn refused<'a>(
        &'a self,
        status: u16,
        www_authenticate: Option<&'a str>,
        token: Option<&'a str>,
    ) -> futures_lite::BoxFuture<'a, Result<(Next, String), McpError>>;
    /// Runs a login (and returns once it succeeded).
    fn login(&self) -> futures_lite::BoxFuture<'_, Result<(), McpError>>;
}

/// A tiny local stand-in for `futures::future::BoxFuture`, so the library
/// needs no `futures` dependency.
pub mod futures_lite {
    /// A boxed, sendable future.
    pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;
}

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
    /// Auth failed and regent cannot help (the message says why).
    #[error("{0}")]
    Auth(String),
    /// A login is needed and not allowed here (`--no-login`), or failed.
    #[error("{0}")]
    LoginNeeded(String),
    /// The agent could not be asked.
    #[error("{0}")]
    Agent(String),
    /// The server's answer is not what the transport allows.
    #[error("the MCP server's answer: {0}")]
    Protocol(String),
}

/// What a POST came back with.
pub enum Reply {
    /// Accepted (a notification or a response): nothing to deliver.
    Accepted,
    /// One JSON-RPC message or batch.
    Json(Bytes),
    /// An SSE stream of messages.
    Stream(Box<EventStream>),
}

/// The transport for one server.
pub struct Transport {
    http: reqwest::Client,
    url: Url,
    auth: Box<dyn Authorizer>,
    session: Mutex<Option<HeaderValue>>,
    version: Mutex<Option<HeaderValue>>,
    /// The client's `initialize`, replayed when the server forgets the session.
    init: Mutex<Option<Bytes>>,
}

impl Transport {
    /// A transport to the server at `url`.
    pub fn new(url: Url, auth: Box<dyn Authorizer>) -> Transport {
        Transport {
            http: crate::http::mcp_client(),
            url,
            auth,
            session: Mutex::default(),
            version: Mutex::default(),
            init: Mutex::default(),
        }
    }

    /// The negotiated protocol version, once known (`MCP-Protocol-Version`).
    pub fn set_protocol_version(&self, v: &str) {
        if let Ok(h) = HeaderValue::from_str(v) {
            *self.version.lock().unwrap() = Some(h);
        }
    }

    /// Whether a session id was given.
    pub fn has_session(&self) -> bool {
        self.session.lock().unwrap().is_some()
    }

    fn headers(&self, token: Option<&str>, accept: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(ACCEPT, HeaderValue::from_static(accept));
        if let Some(s) = self.session.lock().unwrap().clone() {
            h.insert("mcp-session-id", s);
        }
        if let Some(v) = self.version.lock().unwrap().clone() {
            h.insert("mcp-protocol-version", v);
        }
        if let Some(t) = token {
            if let Ok(v) = HeaderValue::from_str(&format!("Bearer {t}")) {
                h.insert(AUTHORIZATION, v);
            }
        }
        h
    }

    /// Sends one JSON-RPC message (or batch), `message` as the client wrote it.
    pub async fn post(&self, message: Bytes, is_initialize: bool) -> Result<Reply, McpError> {
        if is_initialize {
            *self.init.lock().unwrap() = Some(message.clone());
            // A new initialize is a new session.
            *self.session.lock().unwrap() = None;
        }
        let mut attempts = Attempts::default();
        let mut reinitialized = false;
        loop {
            let token = self.auth.token().await?;
            let had_session = self.has_session();
            let resp = self
                .http
                .post(self.url.clone())
                .headers(self.headers(token.as_deref(), "application/json, text/event-stream"))
                .header(CONTENT_TYPE, "application/json")
                .body(message.clone())
                .send()
                .await
                .map_err(|e| self.unreachable(&e))?;
            let status = resp.status();
            if let Some(s) = resp.headers().get("mcp-session-id") {
                *self.session.lock().unwrap() = Some(s.clone());
            }
            match status {
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    attempts.refused(self, &resp, token.as_deref()).await?
                }
                StatusCode::NOT_FOUND if had_session && !is_initialize && !reinitialized => {
                    // The server forgot the session: start a new one, then send again.
                    reinitialized = true;
                    self.reinitialize().await?;
                }
                s if s == StatusCode::ACCEPTED || s == StatusCode::NO_CONTENT => {
                    return Ok(Reply::Accepted)
                }
                s if s.is_success() => return self.reply(resp).await,
                s => return Err(status_error(s, resp).await),
            }
        }
    }

    /// Sends the cached `initialize` and `notifications/initialized` again;
    /// the answer to the first is not forwarded (the client has one).
    async fn reinitialize(&self) -> Result<(), McpError> {
        let Some(init) = self.init.lock().unwrap().clone() else {
            return Err(McpError::Protocol(
                "the server lost the session, and there is no initialize to replay".into(),
            ));
        };
        note("the server lost the session; initializing a new one");
        *self.session.lock().unwrap() = None;
        match Box::pin(self.post(init, true)).await? {
            Reply::Stream(mut s) => while s.next().await?.is_some() {},
            Reply::Json(_) | Reply::Accepted => {}
        }
        let initialized =
            Bytes::from_static(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
        Box::pin(self.post(initialized, false)).await?;
        Ok(())
    }

    async fn reply(&self, resp: reqwest::Response) -> Result<Reply, McpError> {
        let kind = header(resp.headers(), CONTENT_TYPE).unwrap_or_default();
        if kind.starts_with("text/event-stream") {
            return Ok(Reply::Stream(Box::new(EventStream::new(resp))));
        }
        let body = read(resp).await?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Reply::Accepted);
        }
        Ok(Reply::Json(body))
    }

    /// Opens (or resumes, after `last_event_id`) the GET stream of
    /// server-initiated messages. `Ok(None)`: the server offers none.
    pub async fn listen(
        &self,
        last_event_id: Option<&str>,
    ) -> Result<Option<EventStream>, McpError> {
        let mut attempts = Attempts::default();
        loop {
            let token = self.auth.token().await?;
            let mut req = self
                .http
                .get(self.url.clone())
                .headers(self.headers(token.as_deref(), "text/event-stream"));
            if let Some(id) = last_event_id {
                req = req.header("last-event-id", id);
            }
            let resp = req.send().await.map_err(|e| self.unreachable(&e))?;
            let status = resp.status();
            match status {
                StatusCode::METHOD_NOT_ALLOWED | StatusCode::NOT_FOUND => return Ok(None),
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    attempts.refused(self, &resp, token.as_deref()).await?
                }
                s if s.is_success()
                    && header(resp.headers(), CONTENT_TYPE)
                        .is_some_and(|c| c.starts_with("text/event-stream")) =>
                {
                    return Ok(Some(EventStream::new(resp)))
                }
                s if s.is_success() => return Ok(None),
                s => return Err(status_error(s, resp).await),
            }
        }
    }

    /// Ends the session (DELETE), if the server gave one; its refusal is fine.
    pub async fn close(&self) {
        if !self.has_session() {
            return;
        }
        let token = self.auth.token().await.ok().flatten();
        let _ = self
            .http
            .delete(self.url.clone())
            .headers(self.headers(token.as_deref(), "application/json, text/event-stream"))
            .timeout(Duration::from_secs(2))
            .send()
            .await;
    }

    fn unreachable(&self, e: &reqwest::Error) -> McpError {
        let mut reason = e.to_string();
        let mut src = std::error::Error::source(e);
        while let Some(s) = src {
            let t = s.to_string();
            if !reason.contains(&t) {
                reason.push_str(": ");
                reason.push_str(&t);
            }
            src = s.source();
        }
        McpError::Unreachable {
            url: self.url.as_str().to_string(),
            reason,
        }
    }
}

/// A note for the person reading stderr (stdout carries the protocol).
fn note(msg: &str) {
    eprintln!("regent: {msg}");
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

/// One server-sent event.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Event {
    /// Its `id`, if it had one.
    pub id: Option<String>,
    /// Its `event` type (`message` when not said).
    pub event: Option<String>,
    /// Its `data` lines, joined by newlines.
    pub data: String,
}

/// The events of a `text/event-stream` answer.
pub struct EventStream {
    resp: reqwest::Response,
    parser: Parser,
    done: bool,
}

impl EventStream {
    fn new(resp: reqwest::Response) -> EventStream {
        EventStream {
            resp,
            parser: Parser::default(),
            done: false,
        }
    }

    /// The last event id seen (to resume with).
    pub fn last_id(&self) -> Option<&str> {
        self.parser.last_id.as_deref()
    }

    /// How long to wait before resuming: the server's `retry`, else a second.
    pub fn retry_after(&self) -> Duration {
        self.parser.retry.unwrap_or(DEFAULT_RETRY)
    }

    /// The next event with data; `None` at the end of the stream.
    pub async fn next(&mut self) -> Result<Option<Event>, McpError> {
        loop {
            if let Some(ev) = self.parser.next_event() {
                return Ok(Some(ev));
            }
            if self.done {
                return Ok(None);
            }
            match self.resp.chunk().await {
                Ok(Some(chunk)) => self.parser.feed(&chunk)?,
                Ok(None) => {
                    self.done = true;
                    self.parser.finish();
                }
                Err(e) => {
                    // A cut stream ends here; the caller may resume after `last_id`.
                    note(&format!("the event stream broke off: {e}"));
                    self.done = true;
                    self.parser.finish();
                }
            }
        }
    }
}

/// The WHATWG event stream format, fed in chunks.
#[derive(Default)]
struct Parser {
    buf: Vec<u8>,
    current: Event,
    has_data: bool,
    last_id: Option<String>,
    retry: Option<Duration>,
}

impl Parser {
    fn feed(&mut self, chunk: &[u8]) -> Result<(), McpError> {
        if self.buf.len() + chunk.len() > MAX_MESSAGE {
            return Err(McpError::Protocol("an event larger than 16 MiB".into()));
        }
        self.buf.extend_from_slice(chunk);
        Ok(())
    }

    /// The end of the stream: a last line without its newline still counts.
    fn finish(&mut self) {
        if !self.buf.is_empty() {
            self.buf.push(b'\n');
        }
        self.buf.push(b'\n');
    }

    fn next_event(&mut self) -> Option<Event> {
        while let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
            let mut line: Vec<u8> = self.buf.drain(..=pos).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if let Some(ev) = self.line(&line) {
                return Some(ev);
            }
        }
        None
    }

    /// One line; an event when it ends one.
    fn line(&mut self, line: &[u8]) -> Option<Event> {
        if line.is_empty() {
            let ev = std::mem::take(&mut self.current);
            return std::mem::replace(&mut self.has_data, false).then_some(ev);
        }
        if line.starts_with(b":") {
            return None; // a comment (keep-alive)
        }
        let text = String::from_utf8_lossy(line);
        let (field, value) = match text.split_once(':') {
            Some((f, v)) => (f.to_string(), v.strip_prefix(' ').unwrap_or(v).to_string()),
            None => (text.to_string(), String::new()),
        };
        match field.as_str() {
            "data" => {
                if self.has_data {
                    self.current.data.push('\n');
                }
                self.current.data.push_str(&value);
                self.has_data = true;
            }
            "event" => self.current.event = Some(value),
            "id" if !value.contains('\0') => {
                self.current.id = Some(value.clone());
                self.last_id = Some(value);
            }
            "retry" => {
                if let Ok(ms) = value.parse::<u64>() {
                    self.retry = Some(Duration::from_millis(ms));
                }
            }
            _ => {}
        }
        None
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

    fn events(chunks: &[&str]) -> (Vec<Event>, Parser) {
        let mut p = Parser::default();
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c.as_bytes()).unwrap();
            while let Some(e) = p.next_event() {
                out.push(e);
            }
        }
        p.finish();
        while let Some(e) = p.next_event() {
            out.push(e);
        }
        (out, p)
    }

    #[test]
    fn events_across_chunks_with_ids_retry_and_comments() {
        let (ev, p) = events(&[
            ": keep-alive\n\nid: 1\nretry: 2500\ndata:\n\n",
            "event: message\nid: 2\ndata: {\"a\":",
            "1}\n\nid: 3\r\ndata: {\"b\":\r\ndata: 2}\r\n\r\n",
            "data: {\"last\":true}",
        ]);
        // The priming event (id, empty data) is an event with empty data.
        assert_eq!(ev[0].data, "");
        assert_eq!(ev[1].data, "{\"a\":1}");
        assert_eq!(ev[1].event.as_deref(), Some("message"));
        assert_eq!(ev[2].data, "{\"b\":\n2}");
        assert_eq!(one_line(&ev[2].data), "{\"b\": 2}");
        assert_eq!(ev[3].data, "{\"last\":true}");
        assert_eq!(ev.len(), 4);
        assert_eq!(p.last_id.as_deref(), Some("3"));
        assert_eq!(p.retry, Some(Duration::from_millis(2500)));
    }
}
