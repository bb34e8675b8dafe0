//! `regent mcp proxy TARGET`: a stdio ↔ streamable HTTP bridge, so any local
//! MCP client reaches a remote server with the agent's tokens. stdin carries
//! newline-delimited JSON-RPC from the client; each message is POSTed as it
//! is, and what the server answers (JSON or SSE, and the GET stream's
//! server-initiated messages) goes to stdout, one message a line. Notes go
//! to stderr only. The transport resumes cut streams itself; refusals go the
//! one refusal path, where the agent decides, and a login it asks for runs
//! here (unless `--no-login`). When stdin closes, requests in flight may
//! finish (bounded: a login waiting for the user does not hold the proxy);
//! then, or on a signal, the session is ended (DELETE), a pending login is
//! cancelled at the agent, and the browser commands it started are reaped.

use super::{login, Failure, Result};
use bytes::Bytes;
use regent_client::mcp::{McpError, Outgoing, Transport};
use regent_client::resource::{ResourceAuth, WithoutLogin};
use regent_client::AgentClient;
use regent_proto::{LoginFlow, PutMcp};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};

/// Largest line read from stdin.
const MAX_LINE: usize = 16 * 1024 * 1024;
/// How long in-flight requests may still finish after stdin closed.
const DRAIN: Duration = Duration::from_secs(5);
/// How long a bridge that cannot start waits for the request to refuse.
const REFUSE_WAIT: Duration = Duration::from_secs(30);
/// How long the next message waits for the GET stream to open.
const LISTEN_OPEN: Duration = Duration::from_secs(5);
/// JSON-RPC error codes of the bridge (the implementation-defined range).
const AUTH_ERROR: i64 = -32001;
const TRANSPORT_ERROR: i64 = -32002;

pub async fn run(
    agent: &AgentClient,
    target: &str,
    device: bool,
    no_login: bool,
    share: Option<bool>,
) -> Result {
    let resolved = resolve(agent, target, share).await.and_then(|(name, url)| {
        let parsed = url::Url::parse(&url).map_err(|e| Failure::Other(format!("{url}: {e}")))?;
        Ok((name, parsed))
    });
    let (name, url) = match resolved {
        Ok(r) => r,
        Err(f) => {
            refuse_first_request(&f).await;
            return Err(f);
        }
    };
    let flow = if device {
        LoginFlow::Device
    } else {
        LoginFlow::Browser
    };
    let logins = Arc::new(
        login::Interactive::new(agent.clone(), flow, !no_login)
            .why_not(" (this proxy runs with --no-login, so it does not log in itself)"),
    );
    let auth = ResourceAuth::new(agent.clone(), &name, WithoutLogin::SendBare)
        .noting()
        .with_login(logins.clone());
    let transport = Transport::new(url, auth);
    // Bounded: a client that reads slowly holds the server back, not our memory
    // (at most this many messages of at most 16 MiB wait for stdout).
    let (out, mut lines_out) = mpsc::channel::<String>(8);
    let (stdin, mut stdout, _restore) = super::stdio::open();
    let writer = tokio::spawn(async move {
        while let Some(mut line) = lines_out.recv().await {
            line.push('\n');
            // One write a message (the line and its end together).
            let ok =
                stdout.write_all(line.as_bytes()).await.is_ok() && stdout.flush().await.is_ok();
            if !ok {
                break; // the client went away
            }
        }
    });
    // stdin is read on its own, so its end is seen even while a message waits (on a login).
    let (eof_tx, mut eof) = watch::channel(false);
    let (lines_tx, mut lines_in) = mpsc::channel::<Vec<u8>>(64);
    let reader = tokio::spawn(async move {
        let mut stdin = tokio::io::BufReader::new(stdin);
        loop {
            let mut line = Vec::new();
            match read_line(&mut stdin, &mut line).await {
                Ok(0) => break,
                Ok(_) => {
                    if lines_tx.send(line).await.is_err() {
                        break;
                    }
                }
                Err(e) => {
                    eprintln!("regent: reading stdin: {e}");
                    break;
                }
            }
        }
        let _ = eof_tx.send(true);
    });
    // SIGTERM, SIGINT and SIGHUP end the proxy cleanly.
    let mut stop = login::Stop::install()?;
    let mut tasks = tokio::task::JoinSet::new();
    // A message that must be answered before the next goes out (see below).
    let mut inline: Option<(tokio::task::JoinHandle<()>, bool)> = None;
    let mut listener: Option<tokio::task::JoinHandle<()>> = None;
    let mut signalled = false;
    loop {
        tokio::select! {
            _ = stop.recv() => { signalled = true; break }
            done = async { (&mut inline.as_mut().expect("guarded").0).await }, if inline.is_some() => {
                let (_, was_initialize) = inline.take().expect("guarded");
                if done.is_ok() && was_initialize && listener.is_none() {
                    // Server-initiated messages arrive on the GET stream, once the session
                    // exists. It is open before the next message goes out: a server that
                    // sends a request there (an elicitation during a tool call) and has no
                    // event store would otherwise drop it. Bounded: a GET that hangs before
                    // its headers does not hold the client.
                    let (opened, is_open) = tokio::sync::oneshot::channel();
                    listener = Some(tokio::spawn(listen(transport.clone(), out.clone(), opened)));
                    let wait = async move {
                        let _ = tokio::time::timeout(LISTEN_OPEN, is_open).await;
                    };
                    inline = Some((tokio::spawn(wait), false));
                }
            }
            // stdin ended while a message waits: stop waiting (bounded drain below).
            _ = eof.wait_for(|e| *e), if inline.is_some() => break,
            line = lines_in.recv(), if inline.is_none() => {
                let Some(line) = line else { break };
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let msg = Outgoing::parse(Bytes::from(line));
                let initialize = msg.is_initialize();
                // Order matters where the client relies on it: `initialize` is answered
                // before anything else goes out (it makes the session), and a
                // notification or response is delivered before the next message.
                // Requests run side by side, so a long tool call holds up nothing.
                let inline_one = initialize || msg.ids().is_empty();
                let (transport, out) = (transport.clone(), out.clone());
                let task = async move { deliver(&transport, &out, msg).await };
                if inline_one {
                    inline = Some((tokio::spawn(task), initialize));
                } else {
                    // Reap what finished, so a long session does not keep every handle.
                    while tasks.try_join_next().is_some() {}
                    tasks.spawn(task);
                }
            }
        }
    }
    // stdin closed: what is in flight may finish (bounded). A signal: it stops now.
    if !signalled {
        let _ = tokio::time::timeout(DRAIN, async {
            if let Some((t, _)) = inline.as_mut() {
                let _ = t.await;
                // Finished: a JoinHandle must not be awaited again below.
                inline = None;
            }
            while tasks.join_next().await.is_some() {}
        })
        .await;
    }
    // What is still running stops here (a login it waits on is cancelled below),
    // the GET stream too: then the writer has every message, and ends.
    if let Some((t, _)) = inline.take() {
        t.abort();
        let _ = t.await;
    }
    tasks.abort_all();
    if let Some(l) = listener {
        l.abort();
        let _ = l.await;
    }
    while tasks.join_next().await.is_some() {}
    reader.abort();
    transport.close().await;
    logins.cancel_pending().await;
    logins.reap();
    drop(out);
    let _ = tokio::time::timeout(Duration::from_secs(1), writer).await;
    Ok(())
}

/// The resource a TARGET names: a configured MCP server, or a URL (added on
/// first use under a name derived from it, so the next run reuses its login).
async fn resolve(
    agent: &AgentClient,
    target: &str,
    share: Option<bool>,
) -> Result<(String, String)> {
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
    // A name already taken (by another URL, or another kind) gets a suffix: a
    // URL never replaces what another name holds.
    let base = derive_name(target);
    let mut name = base.clone();
    let mut n = 2;
    while !matches!(
        agent.resource(Some(&name), None).await,
        Err(e) if e.code() == Some(regent_proto::ErrorCode::UnknownRegistry)
    ) {
        let suffix = format!("-{n}");
        name = format!("{}{suffix}", &base[..base.len().min(64 - suffix.len())]);
        n += 1;
        if n > 100 {
            return Err(Failure::Other(format!(
                "cannot find a free name for {}; add it with: regent mcp add NAME URL",
                super::output::safe(target)
            )));
        }
    }
    eprintln!(
        "regent: adding {} as MCP server {name} (its login is kept for the next run)",
        super::output::safe(target)
    );
    let status = agent
        .put_mcp(
            &name,
            &PutMcp {
                url: target.to_string(),
                auth: None,
                // stdin is the protocol: nobody to ask, so the word must be given.
                share_login: share,
                dpop: None,
            },
        )
        .await?;
    Ok((status.name, status.url))
}

/// When the bridge cannot start (no such server, no agent), the MCP client
/// would see only "connection closed": its first request is answered with a
/// JSON-RPC error that says why and what to do (and stderr says it too).
/// Waits for that request at most [`REFUSE_WAIT`]; nothing on a terminal.
async fn refuse_first_request(f: &Failure) {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        return;
    }
    let message = format!("regent cannot start the bridge: {}", f.message());
    let first = async {
        let mut stdin = tokio::io::BufReader::new(tokio::io::stdin());
        loop {
            let mut line = Vec::new();
            match read_line(&mut stdin, &mut line).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(&line) else {
                continue;
            };
            // A notification is owed nothing; a request is owed an answer.
            if let (Some(id), true) = (v.get("id"), v.get("method").is_some()) {
                return Some(id.clone());
            }
        }
    };
    if let Ok(Some(id)) = tokio::time::timeout(REFUSE_WAIT, first).await {
        let code = match f.exit_code() {
            4 => AUTH_ERROR,
            _ => TRANSPORT_ERROR,
        };
        let err = serde_json::json!({
            "jsonrpc": "2.0", "id": id,
            "error": {"code": code, "message": message}
        });
        let mut stdout = tokio::io::stdout();
        let _ = stdout.write_all(format!("{err}\n").as_bytes()).await;
        let _ = stdout.flush().await;
    }
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

/// POSTs one message and writes what comes back; requests left without an
/// answer get a JSON-RPC error saying why.
async fn deliver(transport: &Arc<Transport>, out: &mpsc::Sender<String>, msg: Outgoing) {
    let mut answers = match transport.post(&msg).await {
        Ok(a) => a,
        Err(e) => return fail(out, msg.ids(), &e).await,
    };
    loop {
        match answers.next().await {
            Ok(Some(line)) => {
                if out.send(line).await.is_err() {
                    return;
                }
            }
            Ok(None) => return,
            Err(e) => return fail(out, answers.unanswered(), &e).await,
        }
    }
}

/// Answers each request of a message that could not be delivered with a
/// JSON-RPC error saying why (a notification has no one to tell: stderr).
async fn fail(out: &mpsc::Sender<String>, ids: &[serde_json::Value], e: &McpError) {
    eprintln!("regent: {}", super::output::safe(&e.to_string()));
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

/// The GET stream: server-initiated messages, for as long as the server
/// offers them (the transport reopens it after a cut).
async fn listen(
    transport: Arc<Transport>,
    out: mpsc::Sender<String>,
    opened: tokio::sync::oneshot::Sender<()>,
) {
    let listening = transport.listen().await;
    let _ = opened.send(());
    let mut stream = match listening {
        Ok(Some(s)) => s,
        Ok(None) => return,
        Err(e) => {
            eprintln!(
                "regent: the server's event stream: {}",
                super::output::safe(&e.to_string())
            );
            return;
        }
    };
    loop {
        match stream.next().await {
            Ok(Some(line)) => {
                if out.send(line).await.is_err() {
                    return;
                }
            }
            Ok(None) => return,
            Err(e) => {
                eprintln!(
                    "regent: the server's event stream: {}",
                    super::output::safe(&e.to_string())
                );
                return;
            }
        }
    }
}

/// Reads one line (without its newline) into `buf`, at most [`MAX_LINE`] bytes.
async fn read_line(
    r: &mut (impl tokio::io::AsyncBufRead + Unpin),
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
}
