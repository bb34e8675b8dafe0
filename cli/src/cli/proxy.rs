//! `regent mcp proxy TARGET`: a stdio ↔ streamable HTTP bridge, so any local
//! MCP client reaches a remote server with the agent's tokens. stdin carries
//! newline-delimited JSON-RPC from the client; each message is POSTed as it
//! is, and what the server answers (JSON or SSE, and the GET stream's
//! server-initiated messages) goes to stdout, one message a line. Notes go
//! to stderr only. Logins go through the agent; when stdin closes, or on
//! SIGTERM, the session is ended (DELETE), pending logins are cancelled at
//! the agent, and the browser commands it started are reaped.

use super::{login, Failure, Result};
use bytes::Bytes;
use regent_client::mcp::{
    futures_lite::BoxFuture, one_line, Authorizer, McpError, Reply, Transport,
};
use regent_client::{AgentClient, ClientError};
use regent_proto::{
    ChallengeRequest, ErrorCode, LoginFlow, LoginRequest, LoginState, Next, PutMcp, TokenRequest,
};
use serde::Deserialize;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// Largest line read from stdin.
const MAX_LINE: usize = 16 * 1024 * 1024;
/// How long in-flight requests may still finish after stdin closed.
const DRAIN: Duration = Duration::from_secs(5);
/// JSON-RPC error codes of the bridge (the implementation-defined range).
const AUTH_ERROR: i64 = -32001;
const TRANSPORT_ERROR: i64 = -32002;

pub async fn run(agent: &AgentClient, target: &str, device: bool, no_login: bool) -> Result {
    let (name, url) = resolve(agent, target).await?;
    let url = url::Url::parse(&url).map_err(|e| Failure::Other(format!("{url}: {e}")))?;
    let auth = Arc::new(AgentAuth {
        agent: agent.clone(),
        name: name.clone(),
        flow: if device {
            LoginFlow::Device
        } else {
            LoginFlow::Browser
        },
        no_login,
        login_lock: tokio::sync::Mutex::new(()),
        pending: Mutex::new(None),
        children: Mutex::new(Vec::new()),
    });
    let transport = Arc::new(Transport::new(url, Box::new(Shared(auth.clone()))));
    let (out, mut lines) = mpsc::channel::<String>(256);
    let writer = tokio::spawn(async move {
        let mut stdout = tokio::io::stdout();
        while let Some(line) = lines.recv().await {
            let ok = stdout.write_all(line.as_bytes()).await.is_ok()
                && stdout.write_all(b"\n").await.is_ok()
                && stdout.flush().await.is_ok();
            if !ok {
                break; // the client went away
            }
        }
    });
    // SIGTERM, SIGINT and SIGHUP end the proxy cleanly.
    let mut stop = login::Stop::install()?;
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin());
    let mut tasks = tokio::task::JoinSet::new();
    let mut listener: Option<tokio::task::JoinHandle<()>> = None;
    let mut signalled = false;
    loop {
        let mut line = Vec::new();
        let read = tokio::select! {
            r = read_line(&mut stdin, &mut line) => r,
            _ = stop.recv() => { signalled = true; break }
        };
        match read {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                eprintln!("regent: reading stdin: {e}");
                break;
            }
        }
        let message = Bytes::from(line);
        if message.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let peek = Peek::of(&message);
        // Order matters where the client relies on it: `initialize` is answered
        // before anything else goes out (it makes the session), and a
        // notification or response is delivered before the next message. Requests
        // run side by side, so a long tool call holds up nothing.
        if peek.is_initialize || peek.ids.is_empty() {
            // Inline, but a signal still stops it (a login may be waiting on a browser).
            tokio::select! {
                _ = deliver(&transport, &out, message, &peek) => {}
                _ = stop.recv() => { signalled = true; break }
            }
            if peek.is_initialize && listener.is_none() {
                // Server-initiated messages arrive on the GET stream, once the session exists.
                listener = Some(tokio::spawn(listen(transport.clone(), out.clone())));
            }
            continue;
        }
        let (transport, out) = (transport.clone(), out.clone());
        // Reap what finished, so a long session does not keep every handle.
        while tasks.try_join_next().is_some() {}
        tasks.spawn(async move { deliver(&transport, &out, message, &peek).await });
    }
    // stdin closed: requests in flight may finish (bounded). A signal: they stop now.
    if !signalled {
        let _ =
            tokio::time::timeout(DRAIN, async { while tasks.join_next().await.is_some() {} }).await;
    }
    // What is still running stops here (a login it waits on is cancelled below),
    // the GET stream too: then the writer has every message, and ends.
    tasks.abort_all();
    if let Some(l) = listener {
        l.abort();
        let _ = l.await;
    }
    while tasks.join_next().await.is_some() {}
    transport.close().await;
    auth.cancel_pending().await;
    auth.reap();
    drop(out);
    let _ = tokio::time::timeout(Duration::from_secs(1), writer).await;
    Ok(())
}

/// The resource a TARGET names: a configured MCP server, or a URL (added on
/// first use under a name derived from it, so the next run reuses its login).
async fn resolve(agent: &AgentClient, target: &str) -> Result<(String, String)> {
    let servers = agent.mcp_servers().await?;
    if !target.starts_with("http://") && !target.starts_with("https://") {
        return match servers.iter().find(|s| s.name == target) {
            Some(s) => Ok((s.name.clone(), s.url.clone())),
            None => Err(Failure::Other(format!(
                "no MCP server named {target}; add it with: regent mcp add {target} URL (or give its URL)"
            ))),
        };
    }
    let same = |a: &str| a.trim_end_matches('/') == target.trim_end_matches('/');
    if let Some(s) = servers.iter().find(|s| same(&s.url)) {
        return Ok((s.name.clone(), s.url.clone()));
    }
    let name = derive_name(target);
    eprintln!("regent: adding {target} as MCP server {name} (its login is kept for the next run)");
    let status = agent
        .put_mcp(
            &name,
            &PutMcp {
                url: target.to_string(),
                auth: None,
            },
        )
        .await?;
    Ok((status.name, status.url))
}

/// A resource name from a URL: host, port and path, in the characters names allow.
fn derive_name(url: &str) -> String {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let rest = rest.split(['?', '#']).next().unwrap_or(rest);
    let mut name: String = rest
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    while name.contains("--") {
        name = name.replace("--", "-");
    }
    let name = name.trim_matches(['-', '.']).to_string();
    let mut name: String = name.chars().take(64).collect();
    if name.is_empty() || !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        name = format!("mcp-{}", name.chars().take(59).collect::<String>());
    }
    name
}

/// What the bridge needs to know of a message without reparsing it: its id
/// (to answer an error in its place) and whether it is `initialize`.
struct Peek {
    ids: Vec<serde_json::Value>,
    is_initialize: bool,
}

impl Peek {
    fn of(message: &[u8]) -> Peek {
        #[derive(Deserialize)]
        struct One {
            #[serde(default)]
            id: Option<serde_json::Value>,
            #[serde(default)]
            method: Option<String>,
        }
        let all: Vec<One> = match serde_json::from_slice::<serde_json::Value>(message) {
            Ok(serde_json::Value::Array(a)) => a
                .into_iter()
                .filter_map(|v| serde_json::from_value(v).ok())
                .collect(),
            Ok(v) => serde_json::from_value(v).ok().into_iter().collect(),
            Err(_) => Vec::new(),
        };
        Peek {
            is_initialize: all
                .iter()
                .any(|m| m.method.as_deref() == Some("initialize")),
            // Requests have an id and a method; responses (to server requests) need no answer.
            ids: all
                .into_iter()
                .filter(|m| m.method.is_some())
                .filter_map(|m| m.id)
                .collect(),
        }
    }
}

/// POSTs one message and writes what comes back.
async fn deliver(transport: &Transport, out: &mpsc::Sender<String>, message: Bytes, peek: &Peek) {
    let reply = transport.post(message, peek.is_initialize).await;
    let mut answered = false;
    match reply {
        Ok(Reply::Accepted) => {}
        Ok(Reply::Json(body)) => {
            observe(transport, &body);
            let _ = out.send(one_line(&String::from_utf8_lossy(&body))).await;
        }
        Ok(Reply::Stream(mut stream)) => {
            loop {
                match stream.next().await {
                    Ok(Some(ev)) if !ev.data.trim().is_empty() => {
                        answered |= answers(&ev.data, &peek.ids);
                        observe(transport, ev.data.as_bytes());
                        if out.send(one_line(&ev.data)).await.is_err() {
                            return;
                        }
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(e) => {
                        eprintln!("regent: {e}");
                        break;
                    }
                }
            }
            // The stream ended before the answer: resume it where it stopped.
            let mut last = stream.last_id().map(str::to_string);
            let mut wait = stream.retry_after();
            while !answered && !peek.ids.is_empty() {
                let Some(id) = last.clone() else { break };
                tokio::time::sleep(wait).await;
                match transport.listen(Some(&id)).await {
                    Ok(Some(mut s)) => {
                        while let Ok(Some(ev)) = s.next().await {
                            if ev.data.trim().is_empty() {
                                continue;
                            }
                            answered |= answers(&ev.data, &peek.ids);
                            let _ = out.send(one_line(&ev.data)).await;
                        }
                        last = s.last_id().map(str::to_string).or(last);
                        wait = s.retry_after();
                    }
                    Ok(None) => break,
                    Err(e) => {
                        fail(out, &peek.ids, &e).await;
                        return;
                    }
                }
            }
            if !answered && !peek.ids.is_empty() {
                let e = McpError::Protocol("the stream ended without an answer".into());
                fail(out, &peek.ids, &e).await;
            }
        }
        Err(e) => fail(out, &peek.ids, &e).await,
    }
}

/// Answers each request of a message that could not be delivered with a
/// JSON-RPC error saying why (a notification has no one to tell: stderr).
async fn fail(out: &mpsc::Sender<String>, ids: &[serde_json::Value], e: &McpError) {
    eprintln!("regent: {e}");
    let code = match e {
        McpError::Auth(_) | McpError::LoginNeeded(_) => AUTH_ERROR,
        _ => TRANSPORT_ERROR,
    };
    for id in ids {
        let err = serde_json::json!({
            "jsonrpc": "2.0", "id": id,
            "error": {"code": code, "message": e.to_string()}
        });
        let _ = out.send(err.to_string()).await;
    }
}

/// Whether `data` is the answer to one of `ids`.
fn answers(data: &str, ids: &[serde_json::Value]) -> bool {
    #[derive(Deserialize)]
    struct Answer {
        #[serde(default)]
        id: Option<serde_json::Value>,
        #[serde(default)]
        method: Option<String>,
    }
    let one = |v: serde_json::Value| {
        serde_json::from_value::<Answer>(v)
            .ok()
            .is_some_and(|a| a.method.is_none() && a.id.is_some_and(|id| ids.contains(&id)))
    };
    match serde_json::from_str::<serde_json::Value>(data) {
        Ok(serde_json::Value::Array(a)) => a.into_iter().any(one),
        Ok(v) => one(v),
        Err(_) => false,
    }
}

/// Takes the protocol version from an `initialize` result, for the header.
fn observe(transport: &Transport, data: &[u8]) {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
        if let Some(version) = v["result"]["protocolVersion"].as_str() {
            if v["result"]["serverInfo"].is_object() || v["result"]["capabilities"].is_object() {
                transport.set_protocol_version(version);
            }
        }
    }
}

/// The GET stream: server-initiated messages, resumed after the server's
/// `retry` with `Last-Event-ID`, until the server says it offers none.
async fn listen(transport: Arc<Transport>, out: mpsc::Sender<String>) {
    let mut last: Option<String> = None;
    let mut backoff = Duration::from_secs(1);
    loop {
        match transport.listen(last.as_deref()).await {
            Ok(Some(mut s)) => {
                backoff = Duration::from_secs(1);
                while let Ok(Some(ev)) = s.next().await {
                    if ev.data.trim().is_empty() {
                        continue;
                    }
                    if out.send(one_line(&ev.data)).await.is_err() {
                        return;
                    }
                }
                last = s.last_id().map(str::to_string).or(last);
                tokio::time::sleep(s.retry_after()).await;
            }
            Ok(None) => return,
            Err(McpError::Auth(m)) | Err(McpError::LoginNeeded(m)) => {
                eprintln!("regent: the server's event stream: {m}");
                return;
            }
            Err(e) => {
                eprintln!(
                    "regent: the server's event stream: {e}; trying again in {}s",
                    backoff.as_secs()
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// Tokens, challenges and logins, all through the agent.
struct AgentAuth {
    agent: AgentClient,
    name: String,
    flow: LoginFlow,
    no_login: bool,
    /// One login at a time, for every request that needs one.
    login_lock: tokio::sync::Mutex<()>,
    /// The login in progress, to cancel at the agent if the proxy stops.
    pending: Mutex<Option<String>>,
    /// Browser commands still running, reaped at exit.
    children: Mutex<Vec<std::process::Child>>,
}

impl AgentAuth {
    async fn token(&self) -> std::result::Result<Option<String>, McpError> {
        let req = TokenRequest {
            registry: Some(self.name.clone()),
            min_valid_secs: None,
        };
        match self.agent.token(&req).await {
            Ok(t) => Ok(Some(t.access_token)),
            // No auth, or no login yet: sent without a token; the server's 401 says what it wants.
            Err(e)
                if matches!(
                    e.code(),
                    Some(ErrorCode::AuthNotConfigured | ErrorCode::RegistryAuthRequired)
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(McpError::Agent(e.to_string())),
        }
    }

    async fn refused(
        &self,
        status: u16,
        www_authenticate: Option<&str>,
        token: Option<&str>,
    ) -> std::result::Result<(Next, String), McpError> {
        let req = ChallengeRequest {
            registry: self.name.clone(),
            status,
            www_authenticate: www_authenticate.map(str::to_string),
            access_token: token.map(str::to_string),
        };
        let a = self
            .agent
            .challenge(&req)
            .await
            .map_err(|e| McpError::Auth(e.to_string()))?;
        eprintln!("regent: {} answered {status}: {}", self.name, a.message);
        Ok((a.next, a.message))
    }

    async fn login(&self) -> std::result::Result<(), McpError> {
        let name = &self.name;
        if self.no_login {
            return Err(McpError::LoginNeeded(format!(
                "{name} needs a login, and this proxy runs with --no-login; log in with: regent login {name}"
            )));
        }
        let _one = self.login_lock.lock().await;
        let login = self
            .agent
            .login(&LoginRequest {
                registry: Some(name.clone()),
                flow: self.flow,
            })
            .await
            .map_err(|e| McpError::LoginNeeded(login_error(name, e)))?;
        *self.pending.lock().unwrap() = Some(login.id.clone());
        let child = {
            let login = login.clone();
            tokio::task::spawn_blocking(move || login::show_instructions(&login, true))
                .await
                .ok()
                .flatten()
        };
        if let Some(c) = child {
            self.children.lock().unwrap().push(c);
        }
        let status = login::wait(&self.agent, &login).await;
        login::clear_progress();
        *self.pending.lock().unwrap() = None;
        let status = status.map_err(|e| McpError::LoginNeeded(e.message()))?;
        match status.status {
            LoginState::Succeeded => {
                eprintln!("regent: logged in to {name}");
                Ok(())
            }
            _ => Err(McpError::LoginNeeded(format!(
                "the login to {name} did not succeed: {}",
                status.error.unwrap_or_else(|| "no reason given".into())
            ))),
        }
    }

    /// Cancels a login still waiting at the agent.
    async fn cancel_pending(&self) {
        let id = self.pending.lock().unwrap().take();
        if let Some(id) = id {
            let _ = self.agent.cancel_login(&id).await;
        }
    }

    /// Waits (briefly) for the browser commands it started, so none is left behind.
    fn reap(&self) {
        let mut children = std::mem::take(&mut *self.children.lock().unwrap());
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        for c in &mut children {
            while c.try_wait().ok().flatten().is_none() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

fn login_error(name: &str, e: ClientError) -> String {
    format!("cannot start a login to {name}: {e}")
}

/// The authorizer as the transport holds it.
struct Shared(Arc<AgentAuth>);

impl Authorizer for Shared {
    fn token(&self) -> BoxFuture<'_, std::result::Result<Option<String>, McpError>> {
        Box::pin(self.0.token())
    }
    fn refused<'a>(
        &'a self,
        status: u16,
        www_authenticate: Option<&'a str>,
        token: Option<&'a str>,
    ) -> BoxFuture<'a, std::result::Result<(Next, String), McpError>> {
        Box::pin(self.0.refused(status, www_authenticate, token))
    }
    fn login(&self) -> BoxFuture<'_, std::result::Result<(), McpError>> {
        Box::pin(self.0.login())
    }
}

/// Reads one line (without its newline) into `buf`, at most [`MAX_LINE`] bytes.
async fn read_line(
    r: &mut tokio::io::BufReader<tokio::io::Stdin>,
    buf: &mut Vec<u8>,
) -> std::io::Result<usize> {
    loop {
        let chunk = r.fill_buf().await?;
        if chunk.is_empty() {
            return Ok(buf.len());
        }
        if let Some(i) = chunk.iter().position(|b| *b == b'\n') {
            buf.extend_from_slice(&chunk[..i]);
            r.consume(i + 1);
            return Ok(buf.len() + 1);
        }
        let n = chunk.len();
        buf.extend_from_slice(chunk);
        r.consume(n);
        if buf.len() > MAX_LINE {
            return Err(std::io::Error::other("a message longer than 16 MiB"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_derived_from_urls() {
        assert_eq!(
            derive_name("https://mcp.example.com/mcp"),
            "mcp.example.com-mcp"
        );
        assert_eq!(
            derive_name("http://localhost:8080/mcp/"),
            "localhost-8080-mcp"
        );
        assert_eq!(
            derive_name("https://x.example/a%20b?q=1"),
            "x.example-a-20b"
        );
        assert!(derive_name(&format!("https://{}.example/mcp", "a".repeat(80))).len() <= 64);
    }

    #[test]
    fn peeks_find_request_ids_and_initialize() {
        let p = Peek::of(br#"{"jsonrpc":"2.0","id":7,"method":"initialize","params":{}}"#);
        assert!(p.is_initialize);
        assert_eq!(p.ids, vec![serde_json::json!(7)]);
        let p = Peek::of(br#"[{"jsonrpc":"2.0","id":"a","method":"tools/list"},{"jsonrpc":"2.0","method":"notifications/x"},{"jsonrpc":"2.0","id":3,"result":{}}]"#);
        assert!(!p.is_initialize);
        assert_eq!(p.ids, vec![serde_json::json!("a")]);
        assert!(answers(r#"{"jsonrpc":"2.0","id":"a","result":{}}"#, &p.ids));
        assert!(!answers(
            r#"{"jsonrpc":"2.0","id":"a","method":"ping"}"#,
            &p.ids
        ));
    }
}
