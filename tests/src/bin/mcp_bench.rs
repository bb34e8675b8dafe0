//! regent's MCP benchmark, side by side with mcp-remote (npm, pinned in
//! tests/mcp): run with `scripts/bench mcp` (release build). Real MCP
//! servers built with the official SDK behind the bundled IdP (every token
//! introspected), the real regentd, and both bridges driven over stdio as an
//! MCP client drives them. Every figure comes from this one run.

use regent_tests::mcp::{McpServers, Proxy};
use regent_tests::{Agent, AgentOptions, Idp, IdpOptions};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// MCP servers behind the one authorization server.
const SERVERS: [&str; 3] = ["s1", "s2", "s3"];
/// Sequential calls timed per bridge (after warm-up).
const CALLS: usize = 1000;
/// Requests in flight for the throughput figure.
const IN_FLIGHT: usize = 16;
/// One-second throughput windows per side in the bridge-cost comparison.
const WINDOWS: usize = 6;
/// Client processes started at once on an expired token.
const STORM: usize = 20;

fn mcp_remote() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("mcp/node_modules/mcp-remote/dist/proxy.js");
    assert!(
        p.exists(),
        "mcp-remote is missing: run scripts/setup (npm ci in tests/mcp)"
    );
    p
}

/// `mcp-remote URL` with a config dir of its own and the test's headless
/// browser; asks for offline_access (with consent) so it gets a refresh token.
fn mcp_remote_command(url: &str, config_dir: &Path) -> Command {
    let mut cmd = Command::new("node");
    cmd.arg(mcp_remote())
        .arg(url)
        .args([
            "--static-oauth-client-metadata",
            r#"{"scope":"mcp:tools offline_access"}"#,
            "--authorize-param",
            "prompt=consent",
        ])
        // A generic desktop, so its xdg-open honours $BROWSER.
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", config_dir)
        .env("MCP_REMOTE_CONFIG_DIR", config_dir)
        .env("BROWSER", regent_tests::bin("browser"));
    cmd
}

fn regent_proxy(agent: &Agent, name: &str) -> Proxy {
    Proxy::start(
        agent,
        &[name],
        &[(
            "BROWSER",
            regent_tests::bin("browser").display().to_string(),
        )],
    )
}

async fn code_grants(idp: &Idp) -> u64 {
    idp.counts().await["token"]["authorization_code"]
        .as_u64()
        .unwrap_or(0)
}

async fn refresh_grants(idp: &Idp) -> u64 {
    idp.counts().await["token"]["refresh_token"]
        .as_u64()
        .unwrap_or(0)
}

/// initialize, then one tools/call: what an MCP client does first.
async fn first_call(p: &mut Proxy) {
    p.initialize().await;
    let r = p.call("echo", json!({"text": "hi"})).await;
    assert_eq!(r.as_deref(), Ok("hi"), "the bridge reached the server");
}

fn percentile(sorted: &[u128], p: f64) -> u128 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// p50 and p99 of `CALLS` sequential echo calls, in microseconds.
fn summary(mut us: Vec<u128>) -> (u128, u128) {
    us.sort_unstable();
    (percentile(&us, 0.50), percentile(&us, 0.99))
}

async fn bridge_latency(p: &mut Proxy) -> (u128, u128) {
    for _ in 0..20 {
        p.call("echo", json!({"text": "warm"})).await.unwrap();
    }
    let mut us = Vec::with_capacity(CALLS);
    for _ in 0..CALLS {
        let t = Instant::now();
        p.call("echo", json!({"text": "x"})).await.unwrap();
        us.push(t.elapsed().as_micros());
    }
    summary(us)
}

/// Requests per second with `IN_FLIGHT` outstanding, for `secs`.
async fn bridge_throughput(p: &mut Proxy, secs: f64) -> f64 {
    let call = |id: u64| json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "x"}}});
    let mut next = 1_000_000u64;
    for _ in 0..IN_FLIGHT {
        p.send(&call(next)).await;
        next += 1;
    }
    let start = Instant::now();
    let mut done = 0u64;
    let mut outstanding = IN_FLIGHT;
    while outstanding > 0 {
        let m = p.recv().await.expect("an answer");
        if m.get("id").is_none() {
            continue;
        }
        assert!(m["result"].is_object(), "{m}");
        outstanding -= 1;
        done += 1;
        if start.elapsed().as_secs_f64() < secs {
            p.send(&call(next)).await;
            next += 1;
            outstanding += 1;
        }
    }
    done as f64 / start.elapsed().as_secs_f64()
}

/// A direct streamable HTTP session with a token: the baseline.
struct Direct {
    http: reqwest::Client,
    url: String,
    token: String,
    session: String,
}

impl Direct {
    async fn post(&self, body: Value, session: bool) -> (Option<String>, Value) {
        let session = session.then_some(self.session.as_str());
        let (_, sid, v) =
            regent_tests::mcp::post(&self.http, &self.url, Some(&self.token), session, &body).await;
        (sid, v)
    }

    async fn start(url: &str, token: String) -> Direct {
        let mut d = Direct {
            http: reqwest::Client::new(),
            url: url.to_string(),
            token,
            session: String::new(),
        };
        let (sid, _) = d
            .post(
                json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}}),
                false,
            )
            .await;
        d.session = sid.expect("a session");
        d.post(
            json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
            true,
        )
        .await;
        d
    }

    async fn call(&self) {
        let (_, v) = self
            .post(
                json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "x"}}}),
                true,
            )
            .await;
        assert_eq!(v["result"]["content"][0]["text"], "x", "{v}");
    }
}

async fn direct_latency(d: &Direct) -> (u128, u128) {
    for _ in 0..20 {
        d.call().await;
    }
    let mut us = Vec::with_capacity(CALLS);
    for _ in 0..CALLS {
        let t = Instant::now();
        d.call().await;
        us.push(t.elapsed().as_micros());
    }
    summary(us)
}

async fn direct_throughput(d: &std::sync::Arc<Direct>, secs: f64) -> f64 {
    let start = Instant::now();
    let tasks: Vec<_> = (0..IN_FLIGHT)
        .map(|_| {
            let d = d.clone();
            tokio::spawn(async move {
                let mut n = 0u64;
                while start.elapsed().as_secs_f64() < secs {
                    d.call().await;
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    total as f64 / start.elapsed().as_secs_f64()
}

/// Every process at once: initialize and one call each, side by side.
/// Answers how many got their answer, and why the others did not.
async fn storm(procs: Vec<Proxy>) -> (usize, String) {
    let tasks: Vec<_> = procs
        .into_iter()
        .map(|mut p| {
            tokio::spawn(async move {
                let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}});
                if p.try_send(&init).await.is_err() {
                    return Err(p.close().await.1);
                }
                match p.recv().await {
                    Some(m) if m["result"].is_object() => {}
                    _ => return Err(p.close().await.1),
                }
                let _ = p
                    .try_send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
                    .await;
                let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "hi"}}});
                if p.try_send(&call).await.is_err() {
                    return Err(p.close().await.1);
                }
                let answered = matches!(p.recv().await, Some(m) if m["result"]["content"][0]["text"] == "hi");
                let (_, err) = p.close().await;
                if answered { Ok(()) } else { Err(err) }
            })
        })
        .collect();
    let (mut ok, mut why) = (0, Vec::new());
    for t in tasks {
        match t.await {
            Ok(Ok(())) => ok += 1,
            Err(panicked) => why.push(panicked.to_string()),
            Ok(Err(err)) => why.push(
                err.lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("no output")
                    .to_string(),
            ),
        }
    }
    let why = if why.is_empty() {
        String::new()
    } else {
        format!(
            "\n    {} failed; the last line of the first one's stderr: {}",
            why.len(),
            why[0]
        )
    };
    (ok, why)
}

fn status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// A message of the 2026-07-28 wire: the version and capabilities in `_meta`.
fn stateless(id: u64, method: &str, mut params: Value) -> Value {
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "bench", "version": "1"}
    });
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

/// The echo call on a wire, as a client on it writes it.
fn echo_call(wire: &str, id: u64) -> Value {
    let params = json!({"name": "echo", "arguments": {"text": "x"}});
    if wire == "2026-07-28" {
        stateless(id, "tools/call", params)
    } else {
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params})
    }
}

/// A client straight to the server, on one wire: the baseline.
struct Wired {
    http: reqwest::Client,
    url: String,
    token: String,
    wire: &'static str,
    session: Option<String>,
}

impl Wired {
    async fn start(url: &str, token: String, wire: &'static str) -> Wired {
        let mut w = Wired {
            http: reqwest::Client::new(),
            url: url.to_string(),
            token,
            wire,
            session: None,
        };
        if wire != "2026-07-28" {
            let d = Direct::start(url, w.token.clone()).await;
            w.session = Some(d.session);
        }
        w
    }

    async fn call(&self) {
        let mut req = self
            .http
            .post(&self.url)
            .bearer_auth(&self.token)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", self.wire)
            .json(&echo_call(self.wire, 2));
        if let Some(s) = &self.session {
            req = req.header("mcp-session-id", s);
        } else {
            req = req
                .header("mcp-method", "tools/call")
                .header("mcp-name", "echo");
        }
        let resp = req.send().await.unwrap();
        assert!(resp.status().is_success(), "{}", resp.status());
        let text = resp.text().await.unwrap();
        // JSON, or one SSE event carrying it.
        let body = text
            .lines()
            .find_map(|l| l.strip_prefix("data:"))
            .unwrap_or(&text);
        let v: Value = serde_json::from_str(body.trim()).unwrap();
        assert_eq!(v["result"]["content"][0]["text"], "x", "{v}");
    }
}

async fn wired_throughput(w: &std::sync::Arc<Wired>, secs: f64) -> f64 {
    let start = Instant::now();
    let tasks: Vec<_> = (0..IN_FLIGHT)
        .map(|_| {
            let w = w.clone();
            tokio::spawn(async move {
                let mut n = 0u64;
                while start.elapsed().as_secs_f64() < secs {
                    w.call().await;
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    total as f64 / start.elapsed().as_secs_f64()
}

/// One echo call through the bridge, answered.
async fn proxied_call(p: &mut Proxy, wire: &str, id: u64) {
    p.send(&echo_call(wire, id)).await;
    loop {
        let m = p.recv().await.expect("an answer");
        if m.get("id").is_some() {
            assert_eq!(m["result"]["content"][0]["text"], "x", "{m}");
            return;
        }
    }
}

async fn proxied_throughput(p: &mut Proxy, wire: &str, secs: f64) -> f64 {
    let mut next = 1_000_000u64;
    for _ in 0..IN_FLIGHT {
        p.send(&echo_call(wire, next)).await;
        next += 1;
    }
    let start = Instant::now();
    let mut done = 0u64;
    let mut outstanding = IN_FLIGHT;
    while outstanding > 0 {
        let m = p.recv().await.expect("an answer");
        if m.get("id").is_none() {
            continue;
        }
        assert!(m["result"].is_object(), "{m}");
        outstanding -= 1;
        done += 1;
        if start.elapsed().as_secs_f64() < secs {
            p.send(&echo_call(wire, next)).await;
            next += 1;
            outstanding += 1;
        }
    }
    done as f64 / start.elapsed().as_secs_f64()
}

/// The bridge's own cost, on both wires, against a server that does no
/// per-request introspection (`tests/mcp/dual.mjs`, the SDK v2): the same
/// calls straight to the server and through `regent mcp proxy`, in turn,
/// each measured twice (direct, proxy, direct, proxy) and the better kept.
async fn bridge_cost() {
    println!("\nBridge cost on both wires (a server without per-request introspection: tests/mcp/dual.mjs)");
    println!("  {CALLS} sequential echo calls, direct and through regent alternating; then {IN_FLIGHT} in flight, {WINDOWS} one-second windows each, alternating");
    let idp = Idp::start(IdpOptions {
        access_ttl: 3600,
        ..Default::default()
    });
    let servers = McpServers::start_dual(&idp.issuer, &["d1", "dpop1"]);
    let agent = Agent::start(AgentOptions {
        store: "file".into(),
        ..Default::default()
    })
    .await;
    let out = agent.regent(&["mcp", "add", "d1", servers.url("d1")]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let mut p = regent_proxy(&agent, "d1");
    first_call(&mut p).await;
    p.close().await;
    let token = agent.regent(&["token", "d1"]).stdout.trim().to_string();
    let p50 = |mut v: Vec<u128>| {
        v.sort_unstable();
        percentile(&v, 0.5)
    };
    let p99 = |mut v: Vec<u128>| {
        v.sort_unstable();
        percentile(&v, 0.99)
    };
    for wire in ["2025-11-25", "2026-07-28"] {
        let direct =
            std::sync::Arc::new(Wired::start(servers.url("d1"), token.clone(), wire).await);
        let mut proxy = regent_proxy(&agent, "d1");
        if wire != "2026-07-28" {
            proxy.initialize().await;
        }
        // Latency: direct and proxied calls alternate, so both meet the same
        // server and the same machine load.
        for id in 0..50 {
            direct.call().await;
            proxied_call(&mut proxy, wire, 10 + id).await;
        }
        let (mut d, mut r) = (Vec::with_capacity(CALLS), Vec::with_capacity(CALLS));
        for id in 0..CALLS as u64 {
            let t = Instant::now();
            direct.call().await;
            d.push(t.elapsed().as_micros());
            let t = Instant::now();
            proxied_call(&mut proxy, wire, 100 + id).await;
            r.push(t.elapsed().as_micros());
        }
        // The added cost: the median of each pair's difference (the server's own
        // variation cancels in a pair).
        let mut diff: Vec<i128> = d
            .iter()
            .zip(&r)
            .map(|(d, r)| *r as i128 - *d as i128)
            .collect();
        diff.sort_unstable();
        let added = diff[diff.len() / 2];
        let (d50, r50) = (p50(d), p50(r));
        // Throughput: one-second windows, direct and through regent in turn,
        // averaged: both meet the same server and the same load.
        let (mut d_rps, mut r_rps) = (0f64, 0f64);
        for _ in 0..WINDOWS {
            d_rps += wired_throughput(&direct, 1.0).await / WINDOWS as f64;
            r_rps += proxied_throughput(&mut proxy, wire, 1.0).await / WINDOWS as f64;
        }
        let rss = (
            status_kb(proxy.pid(), "VmRSS:"),
            status_kb(proxy.pid(), "VmHWM:"),
        );
        proxy.close().await;
        println!(
            "  {wire}: direct p50 {d50} µs, {d_rps:.0} req/s; through regent p50 {r50} µs, {r_rps:.0} req/s; \
             added (median of paired differences) {added:+} µs, throughput {:.2}x direct; proxy RSS {} kB (peak {} kB)",
            r_rps / d_rps,
            rss.0,
            rss.1
        );
    }
    // DPoP: the same proxy to a server whose tokens are bound (a proof from the
    // agent per request, checked by the server) against one with a Bearer token,
    // calls alternating on the 2026-07-28 wire.
    let out = agent.regent(&["mcp", "add", "dpop1", servers.url("dpop1")]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let mut p = regent_proxy(&agent, "dpop1");
    first_call(&mut p).await;
    p.close().await;
    let wire = "2026-07-28";
    let mut bearer = regent_proxy(&agent, "d1");
    let mut bound = regent_proxy(&agent, "dpop1");
    for id in 0..50 {
        proxied_call(&mut bearer, wire, 10 + id).await;
        proxied_call(&mut bound, wire, 10 + id).await;
    }
    let mut diff = Vec::with_capacity(CALLS);
    let (mut b, mut d) = (Vec::with_capacity(CALLS), Vec::with_capacity(CALLS));
    for id in 0..CALLS as u64 {
        let t = Instant::now();
        proxied_call(&mut bearer, wire, 100 + id).await;
        let tb = t.elapsed().as_micros();
        let t = Instant::now();
        proxied_call(&mut bound, wire, 100 + id).await;
        let td = t.elapsed().as_micros();
        b.push(tb);
        d.push(td);
        diff.push(td as i128 - tb as i128);
    }
    diff.sort_unstable();
    println!(
        "  DPoP ({wire}): through regent with a Bearer token p50 {} µs, with a DPoP-bound one p50 {} µs; \
         added (median of paired differences: the agent's proof, its round trip, the server's check) {:+} µs",
        p50(b),
        p50(d),
        diff[diff.len() / 2]
    );
    bearer.close().await;
    bound.close().await;
    // The agent's part alone: its token answer for the bound server, with and
    // without a proof, over the socket (alternating).
    let client = agent.client();
    let ask = |dpop: bool| regent_proto::TokenRequest {
        url: None,
        registry: Some("dpop1".into()),
        min_valid_secs: None,
        dpop: dpop.then(|| regent_proto::DpopRequest {
            htm: "POST".into(),
            htu: servers.url("dpop1").into(),
            nonce: None,
        }),
    };
    let (mut plain, mut proved) = (Vec::new(), Vec::new());
    for _ in 0..500 {
        let t = Instant::now();
        client.token(&ask(false)).await.unwrap();
        plain.push(t.elapsed().as_micros());
        let t = Instant::now();
        let a = client.token(&ask(true)).await.unwrap();
        proved.push(t.elapsed().as_micros());
        assert!(a.dpop_proof.is_some());
    }
    println!(
        "  the agent's token answer for it over the socket: p50 {} µs without a proof, {} µs with one",
        p50(plain),
        p50(proved)
    );
    // What a bridge waits for before each request: its credential. A Bearer
    // token is kept; a bound one's proof was asked for ahead, while the
    // request before it was out (2 ms here, a fast server's answer).
    let what = |name: &str| {
        regent_client::resource::ResourceAuth::new(
            client.clone(),
            name,
            regent_client::resource::WithoutLogin::Fail,
        )
    };
    let (bearer, bound) = (what("d1"), what("dpop1"));
    let (b_url, d_url) = (servers.url("d1"), servers.url("dpop1"));
    let (mut b, mut d) = (Vec::new(), Vec::new());
    for i in 0..520 {
        let t = Instant::now();
        let cb = bearer.credential("POST", b_url).await.unwrap().unwrap();
        let tb = t.elapsed().as_micros();
        let t = Instant::now();
        let cd = bound.credential("POST", d_url).await.unwrap().unwrap();
        let td = t.elapsed().as_micros();
        assert!(cb.proof().is_none() && cd.proof().is_some());
        if i >= 20 {
            b.push(tb);
            d.push(td);
        }
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    println!(
        "  a bridge's wait for its credential before a request: p50 {} µs with a kept Bearer token, \
         {} µs with a DPoP proof asked for ahead (p99 {} µs)",
        p50(b),
        p50(d.clone()),
        p99(d)
    );
}

#[tokio::main]
async fn main() {
    regent_tests::raise_nofile_limit();
    if std::env::args().nth(1).as_deref() == Some("bridge") {
        bridge_cost().await;
        return;
    }
    println!(
        "regent MCP benchmark against mcp-remote 0.15.1 ({} cores)",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    let idp = Idp::start(IdpOptions {
        access_ttl: 3600,
        ..Default::default()
    });
    let servers = McpServers::start(&idp.issuer, &SERVERS);
    let mut agent = Agent::start(AgentOptions {
        store: "file".into(),
        ..Default::default()
    })
    .await;
    let remote_dir = tempfile::tempdir().unwrap();

    println!(
        "\n1. logins for {} MCP servers behind one authorization server",
        SERVERS.len()
    );
    for s in SERVERS {
        let out = agent.regent(&["mcp", "add", s, servers.url(s)]);
        assert_eq!(out.code, 0, "{}", out.stderr);
    }
    let before = code_grants(&idp).await;
    for s in SERVERS {
        let mut p = regent_proxy(&agent, s);
        first_call(&mut p).await;
        p.close().await;
    }
    let regent_logins = code_grants(&idp).await - before;
    let before = code_grants(&idp).await;
    for s in SERVERS {
        let mut p = regent_proxy(&agent, s);
        first_call(&mut p).await;
        p.close().await;
    }
    let regent_again = code_grants(&idp).await - before;
    agent.terminate();
    agent.spawn().await;
    let before = code_grants(&idp).await;
    for s in SERVERS {
        let mut p = regent_proxy(&agent, s);
        first_call(&mut p).await;
        p.close().await;
    }
    let regent_after_restart = code_grants(&idp).await - before;

    let before = code_grants(&idp).await;
    for s in SERVERS {
        let mut p = Proxy::spawn(mcp_remote_command(servers.url(s), remote_dir.path()));
        first_call(&mut p).await;
        p.close().await;
    }
    let remote_logins = code_grants(&idp).await - before;
    let before = code_grants(&idp).await;
    for s in SERVERS {
        let mut p = Proxy::spawn(mcp_remote_command(servers.url(s), remote_dir.path()));
        first_call(&mut p).await;
        p.close().await;
    }
    let remote_again = code_grants(&idp).await - before;
    println!("  regent:     {regent_logins} login(s); new client processes: {regent_again}; after regentd restarted: {regent_after_restart}");
    println!("  mcp-remote: {remote_logins} login(s); new client processes: {remote_again}");

    println!("\n2. one tools/call (echo), {CALLS} sequential, then {IN_FLIGHT} in flight for 3 s");
    let token = agent.regent(&["token", "s1"]).stdout.trim().to_string();
    let direct = std::sync::Arc::new(Direct::start(servers.url("s1"), token).await);
    let (d50, d99) = direct_latency(&direct).await;
    let d_rps = direct_throughput(&direct, 3.0).await;
    let mut rp = regent_proxy(&agent, "s1");
    first_call(&mut rp).await;
    let (r50, r99) = bridge_latency(&mut rp).await;
    let r_rps = bridge_throughput(&mut rp, 3.0).await;
    let r_rss = (status_kb(rp.pid(), "VmRSS:"), status_kb(rp.pid(), "VmHWM:"));
    let agent_rss = status_kb(agent.pid(), "VmRSS:");
    rp.close().await;
    let mut mp = Proxy::spawn(mcp_remote_command(servers.url("s1"), remote_dir.path()));
    first_call(&mut mp).await;
    let (m50, m99) = bridge_latency(&mut mp).await;
    let m_rps = bridge_throughput(&mut mp, 3.0).await;
    let m_rss = (status_kb(mp.pid(), "VmRSS:"), status_kb(mp.pid(), "VmHWM:"));
    mp.close().await;
    let ms = |us: u128| us as f64 / 1000.0;
    println!(
        "  direct (no bridge): p50 {:.2} ms  p99 {:.2} ms  {d_rps:.0} req/s",
        ms(d50),
        ms(d99)
    );
    println!(
        "  regent mcp proxy:   p50 {:.2} ms  p99 {:.2} ms  {r_rps:.0} req/s  (added p50 {:+.2} ms, p99 {:+.2} ms)",
        ms(r50),
        ms(r99),
        ms(r50) - ms(d50),
        ms(r99) - ms(d99)
    );
    println!(
        "  mcp-remote:         p50 {:.2} ms  p99 {:.2} ms  {m_rps:.0} req/s  (added p50 {:+.2} ms, p99 {:+.2} ms)",
        ms(m50),
        ms(m99),
        ms(m50) - ms(d50),
        ms(m99) - ms(d99)
    );

    println!("\n3. memory of the bridge process, after item 2");
    println!("  regent mcp proxy: RSS {} kB, peak {} kB (regentd, shared by every proxy: RSS {agent_rss} kB)", r_rss.0, r_rss.1);
    println!(
        "  mcp-remote:       RSS {} kB, peak {} kB",
        m_rss.0, m_rss.1
    );
    println!(
        "  ratio (RSS): mcp-remote / regent proxy = {:.1}x; / (proxy + agent) = {:.1}x",
        m_rss.0 as f64 / r_rss.0 as f64,
        m_rss.0 as f64 / (r_rss.0 + agent_rss) as f64
    );
    drop(agent);
    drop(servers);
    drop(idp);

    // Item 4 on short tokens, so they can be expired for real.
    const TTL: u64 = 10;
    println!(
        "\n4. {STORM} MCP client processes started at once on an expired token ({TTL} s tokens)"
    );
    let idp = Idp::start(IdpOptions {
        access_ttl: TTL,
        ..Default::default()
    });
    let servers = McpServers::start(&idp.issuer, &["s1"]);
    let agent = Agent::start(AgentOptions {
        store: "file".into(),
        ..Default::default()
    })
    .await;
    let remote_dir = tempfile::tempdir().unwrap();
    assert_eq!(
        agent.regent(&["mcp", "add", "s1", servers.url("s1")]).code,
        0
    );
    let mut p = regent_proxy(&agent, "s1");
    first_call(&mut p).await;
    p.close().await;
    let mut p = Proxy::spawn(mcp_remote_command(servers.url("s1"), remote_dir.path()));
    first_call(&mut p).await;
    p.close().await;
    tokio::time::sleep(Duration::from_secs(TTL + 1)).await;

    let before = (refresh_grants(&idp).await, code_grants(&idp).await);
    let start = Instant::now();
    let (ok, regent_failed) = storm((0..STORM).map(|_| regent_proxy(&agent, "s1")).collect()).await;
    let regent_storm = start.elapsed();
    let regent_refreshes = refresh_grants(&idp).await - before.0;
    let regent_logins = code_grants(&idp).await - before.1;
    println!(
        "  regent:     {ok}/{STORM} answered in {:.0} ms; refreshes at the AS: {regent_refreshes}; logins: {regent_logins}{regent_failed}",
        regent_storm.as_secs_f64() * 1000.0
    );
    let before = (refresh_grants(&idp).await, code_grants(&idp).await);
    let start = Instant::now();
    let url = servers.url("s1").to_string();
    let (ok, remote_failed) = storm(
        (0..STORM)
            .map(|_| Proxy::spawn(mcp_remote_command(&url, remote_dir.path())))
            .collect(),
    )
    .await;
    let remote_storm = start.elapsed();
    let remote_refreshes = refresh_grants(&idp).await - before.0;
    let remote_logins = code_grants(&idp).await - before.1;
    println!(
        "  mcp-remote: {ok}/{STORM} answered in {:.0} ms; refreshes at the AS: {remote_refreshes}; logins: {remote_logins}{remote_failed}",
        remote_storm.as_secs_f64() * 1000.0
    );
    let replays = idp.replays().await;
    println!(
        "  refresh tokens replayed at the AS (reuse detection): {}",
        replays.len()
    );
}
