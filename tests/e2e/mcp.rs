//! MCP servers end to end: real servers built with the official SDK (bearer
//! auth, protected resource metadata, every token introspected at the IdP and
//! its audience checked), the real oidc-provider with dynamic registration,
//! and `regent mcp proxy` driven over stdio.

use regent_tests::mcp::{McpServers, Proxy};
use regent_tests::{Agent, AgentOptions, Idp, IdpOptions};
use serde_json::{json, Value};
use std::time::Duration;

/// An IdP, three MCP servers behind it, and an agent.
struct Mcp {
    idp: Idp,
    servers: McpServers,
    agent: Agent,
}

impl Mcp {
    async fn new(names: &[&str]) -> Mcp {
        let idp = Idp::start(IdpOptions::default());
        let servers = McpServers::start(&idp.issuer, names);
        let agent = Agent::start(AgentOptions::default()).await;
        Mcp {
            idp,
            servers,
            agent,
        }
    }

    fn add(&self, name: &str) {
        let out = self
            .agent
            .regent(&["mcp", "add", name, self.servers.url(name)]);
        assert_eq!(out.code, 0, "{}", out.stderr);
    }

    /// `regent login NAME` with the test's headless browser.
    fn login(&self, name: &str) -> String {
        let out = self
            .agent
            .regent_command(&["login", name])
            .env("BROWSER", regent_tests::bin("browser"))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    fn proxy(&self, target: &str, extra: &[&str]) -> Proxy {
        let mut args = vec![target];
        args.extend_from_slice(extra);
        Proxy::start(
            &self.agent,
            &args,
            &[(
                "BROWSER",
                regent_tests::bin("browser").display().to_string(),
            )],
        )
    }

    /// `regent login NAME --force` with the test's headless browser.
    fn login_forced(&self, name: &str) -> String {
        let out = self
            .agent
            .regent_command(&["login", name, "--force"])
            .env("BROWSER", regent_tests::bin("browser"))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    async fn code_grants(&self) -> u64 {
        self.idp.counts().await["token"]["authorization_code"]
            .as_u64()
            .unwrap_or(0)
    }
}

fn whoami(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

#[tokio::test]
async fn three_servers_behind_one_as_one_login_each_its_own_token() {
    let mut m = Mcp::new(&["s1", "s2", "s3"]).await;
    for s in ["s1", "s2", "s3"] {
        m.add(s);
    }
    // One registration at the AS, reused by all three: one grant.
    let status: Value =
        serde_json::from_str(&m.agent.regent(&["mcp", "list", "--json"]).stdout).unwrap();
    let clients: std::collections::BTreeSet<_> = status["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["auth"]["client_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(clients.len(), 1, "{status}");
    assert_eq!(status["servers"][0]["auth"]["client"], "registered");
    assert_eq!(
        status["servers"][0]["auth"]["shared_with"],
        json!(["s2", "s3"])
    );
    assert!(m.login("s1").contains("Logged in to s1"));
    for s in ["s1", "s2", "s3"] {
        let mut p = m.proxy(s, &["--no-login"]);
        p.initialize().await;
        let me = whoami(&p.call("whoami", json!({})).await.unwrap());
        // The server checked the token by introspection: it is for this server, and alice's.
        assert_eq!(me["aud"], m.servers.url(s), "{me}");
        assert_eq!(me["sub"], "alice");
        assert_eq!(p.call("echo", json!({"text": "hi"})).await.unwrap(), "hi");
        let (code, err) = p.close().await;
        assert_eq!(code, Some(0), "{err}");
    }
    assert_eq!(m.code_grants().await, 1, "one login for three servers");
    // After a restart of the agent: no login at all.
    m.agent.restart_after_kill9().await;
    let mut p = m.proxy("s3", &["--no-login"]);
    p.initialize().await;
    assert_eq!(
        whoami(&p.call("whoami", json!({})).await.unwrap())["aud"],
        m.servers.url("s3")
    );
    p.close().await;
    assert_eq!(m.code_grants().await, 1);
}

#[tokio::test]
async fn a_proxy_to_a_new_url_adds_it_and_logs_in_through_the_browser() {
    let m = Mcp::new(&["s1"]).await;
    let url = m.servers.url("s1").to_string();
    let mut p = m.proxy(&url, &[]);
    p.initialize().await;
    let me = whoami(&p.call("whoami", json!({})).await.unwrap());
    assert_eq!(me["aud"], url.as_str());
    let (code, err) = p.close().await;
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("adding") && err.contains("logged in to"),
        "{err}"
    );
    // The next run reuses the name and the login.
    let list: Value =
        serde_json::from_str(&m.agent.regent(&["mcp", "list", "--json"]).stdout).unwrap();
    assert_eq!(list["servers"].as_array().unwrap().len(), 1);
    assert_eq!(list["servers"][0]["url"], url.as_str());
    let mut p = m.proxy(&url, &["--no-login"]);
    p.initialize().await;
    assert!(p.call("whoami", json!({})).await.is_ok());
    p.close().await;
    assert_eq!(m.code_grants().await, 1);
}

#[tokio::test]
async fn without_a_login_no_login_answers_a_json_rpc_error_naming_the_command() {
    let m = Mcp::new(&["s1"]).await;
    m.add("s1");
    let mut p = m.proxy("s1", &["--no-login"]);
    let r = p
        .request(
            "initialize",
            json!({"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}),
        )
        .await;
    assert_eq!(r["error"]["code"], -32001, "{r}");
    let msg = r["error"]["message"].as_str().unwrap();
    assert!(msg.contains("regent login s1"), "{msg}");
    let (code, err) = p.close().await;
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(m.code_grants().await, 0);
    assert!(
        !m.agent.log().contains("login started"),
        "a login was started"
    );
}

/// A proxy that cannot start (no such server) answers the MCP client's
/// first request with a JSON-RPC error saying what to do, instead of a
/// closed connection.
#[tokio::test]
async fn a_proxy_that_cannot_start_says_why_to_the_client() {
    let m = Mcp::new(&["s1"]).await;
    let mut p = m.proxy("nope", &[]);
    let r = p
        .request(
            "initialize",
            json!({"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}),
        )
        .await;
    assert_eq!(r["error"]["code"], -32002, "{r}");
    let msg = r["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("no MCP server named nope") && msg.contains("regent mcp add nope"),
        "{msg}"
    );
    let (code, err) = p.close().await;
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("no MCP server named nope"), "{err}");
}

#[tokio::test]
async fn a_403_for_more_scope_logs_in_again_with_the_union_of_scopes() {
    let m = Mcp::new(&["s1"]).await;
    m.add("s1");
    m.login("s1");
    let mut p = m.proxy("s1", &[]);
    p.initialize().await;
    let before = whoami(&p.call("whoami", json!({})).await.unwrap());
    assert_eq!(before["scopes"], json!(["mcp:tools"]));
    // "admin" needs mcp:admin too: a 403 insufficient_scope, a step-up login, the call replayed.
    assert_eq!(p.call("admin", json!({})).await.unwrap(), "admin done");
    let after = whoami(&p.call("whoami", json!({})).await.unwrap());
    let scopes: Vec<&str> = after["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(
        scopes.contains(&"mcp:tools") && scopes.contains(&"mcp:admin"),
        "{after}"
    );
    let (_, err) = p.close().await;
    // The proxy logs in by itself: it says so, and tells nobody to type a command.
    assert!(
        err.contains("wants scope") && err.contains("logging in"),
        "{err}"
    );
    assert!(!err.contains("log in with"), "{err}");
    assert_eq!(m.code_grants().await, 2);
    let list: Value =
        serde_json::from_str(&m.agent.regent(&["mcp", "list", "--json"]).stdout).unwrap();
    assert_eq!(
        list["servers"][0]["auth"]["scopes"],
        json!(["mcp:tools", "mcp:admin"])
    );
}

/// A server written as Python SDK servers commonly are: its metadata lists
/// the AS as `http://host:port/` (the issuer has no slash), which names the
/// same metadata and is taken, with the AS's own issuer recorded; and it
/// answers 403 insufficient_scope without naming a scope (required_scopes),
/// where regent steps up to the metadata's scopes_supported, as the SDKs'
/// own clients do.
#[tokio::test]
async fn a_403_without_a_scope_steps_up_to_the_scopes_its_metadata_lists() {
    let m = Mcp::new(&["py1"]).await;
    let out = m.agent.regent(&[
        "mcp",
        "add",
        "py1",
        m.servers.url("py1"),
        "--scopes",
        "mcp:tools",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let list: Value =
        serde_json::from_str(&m.agent.regent(&["mcp", "list", "--json"]).stdout).unwrap();
    assert_eq!(list["servers"][0]["auth"]["issuer"], m.idp.issuer, "{list}");
    m.login("py1");
    let mut p = m.proxy("py1", &[]);
    p.initialize().await;
    assert_eq!(p.call("admin", json!({})).await.unwrap(), "admin done");
    let (_, err) = p.close().await;
    assert!(err.contains("mcp:admin"), "{err}");
    assert_eq!(m.code_grants().await, 2);
}

#[tokio::test]
async fn the_get_stream_brings_server_messages_and_resumes_after_a_drop() {
    let m = Mcp::new(&["s1"]).await;
    m.add("s1");
    m.login("s1");
    let mut p = m.proxy("s1", &["--no-login"]);
    let init = p.initialize().await;
    assert_eq!(init["result"]["serverInfo"]["name"], "regent-test-s1");
    // The proxy opens the GET stream once initialized: wait for the server to see it.
    let servers = &m.servers;
    regent_tests::eventually(
        "the GET stream",
        std::time::Duration::from_secs(30),
        || async {
            let log = servers.log().await;
            log["gets"]
                .as_array()
                .unwrap()
                .iter()
                .any(|g| g["status"] == 200)
                .then_some(())
        },
    )
    .await;
    assert_eq!(m.servers.notify("s1").await, 1);
    let n = p.recv().await.unwrap();
    assert_eq!(n["method"], "notifications/tools/list_changed", "{n}");
    // The server drops the stream; the proxy comes back with Last-Event-ID and misses nothing.
    assert_eq!(m.servers.drop_streams("s1").await, 1);
    assert_eq!(m.servers.notify("s1").await, 1);
    let n = p.recv().await.unwrap();
    assert_eq!(n["method"], "notifications/tools/list_changed", "{n}");
    let log = m.servers.log().await;
    let gets = log["gets"].as_array().unwrap();
    assert!(gets.len() >= 2, "{log}");
    assert!(
        gets.iter().any(|g| g["last_event_id"].is_string()),
        "no resumption: {log}"
    );
    // Every request carried the session and the negotiated version.
    let later: Vec<&Value> = log["requests"]
        .as_array()
        .unwrap()
        .iter()
        // The agent's probe at `mcp add` (server/discover, before any session) aside.
        .filter(|r| r["method"] != "initialize" && r["method"] != "server/discover")
        .collect();
    assert!(
        later
            .iter()
            .all(|r| r["session"].is_string() && r["version"] == "2025-11-25"),
        "{log}"
    );
    p.close().await;
}

#[tokio::test]
async fn closing_stdin_or_sigterm_ends_the_session_and_leaves_nothing_behind() {
    let m = Mcp::new(&["s1"]).await;
    m.add("s1");
    m.login("s1");
    for how in ["stdin", "sigterm"] {
        let mut p = m.proxy("s1", &["--no-login"]);
        p.initialize().await;
        assert!(p.call("whoami", json!({})).await.is_ok());
        let (code, err) = match how {
            "stdin" => p.close().await,
            _ => p.signal(libc::SIGTERM).await,
        };
        assert_eq!(code, Some(0), "{how}: {err}");
    }
    let log = m.servers.log().await;
    let deletes = log["deletes"].as_array().unwrap();
    assert_eq!(deletes.len(), 2, "a DELETE for each session: {log}");
    assert!(deletes.iter().all(|d| d["session"].is_string()));
}

/// An answer whose event is cut halfway by a dropped connection arrives
/// whole, once: nothing of the half event reaches the client, and the
/// stream is resumed after the last event dispatched (which replays it).
#[tokio::test]
async fn an_answer_cut_in_the_middle_of_its_event_arrives_whole_once() {
    let m = Mcp::new(&["s1"]).await;
    m.add("s1");
    m.login("s1");
    let mut p = m.proxy("s1", &["--no-login"]);
    p.initialize().await;
    assert_eq!(
        p.call("echo", json!({"text": "cut-in-the-middle"})).await,
        Ok("cut-in-the-middle".to_string())
    );
    // Another request after it: had a truncated line or a second copy gone
    // out, it would be read here instead of this answer.
    assert_eq!(
        p.call("echo", json!({"text": "next"})).await.unwrap(),
        "next"
    );
    assert!(p.notifications.is_empty(), "{:?}", p.notifications);
    let log = m.servers.log().await;
    assert_eq!(log["cuts"], 1, "the fixture cut the answer");
    assert!(
        log["gets"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["last_event_id"].is_string()),
        "resumed with Last-Event-ID: {log}"
    );
    let (code, err) = p.close().await;
    assert_eq!(code, Some(0), "{err}");
}

/// stdin closing while a message waits on a login ends the proxy (after a
/// bounded drain), and the login is cancelled at the agent.
#[tokio::test]
async fn the_end_of_stdin_ends_a_proxy_whose_login_waits() {
    let m = Mcp::new(&["s1"]).await;
    m.add("s1");
    let mut p = Proxy::start(&m.agent, &["s1"], &[("BROWSER", "true".to_string())]);
    p.send(&json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}))
        .await;
    m.agent.wait_log("login started", 1).await;
    let (code, err) = p.close().await;
    assert_eq!(code, Some(0), "{err}");
    m.agent.wait_log("login cancelled: by request", 1).await;
}

/// Several MCP clients starting at once, with a login needed: one login,
/// which every proxy joins (no browser opened twice, none replaced), and
/// every one of them gets through once it is done.
#[tokio::test]
async fn proxies_starting_at_once_share_one_login() {
    let m = Mcp::new(&["s1"]).await;
    m.add("s1");
    // A browser that never completes: the logins stay pending until the test finishes one.
    let mut proxies: Vec<Proxy> = (0..3)
        .map(|_| Proxy::start(&m.agent, &["s1"], &[("BROWSER", "true".to_string())]))
        .collect();
    for p in &mut proxies {
        p.send(&json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}))
            .await;
    }
    m.agent.wait_log("joined a pending login", 2).await;
    assert_eq!(m.agent.log().matches("login started").count(), 1);
    // The user finishes the one login (as a fourth caller would see it: joined).
    let login = m
        .agent
        .client()
        .login(&regent_proto::LoginRequest {
            registry: Some("s1".into()),
            flow: regent_proto::LoginFlow::Browser,
            force: false,
        })
        .await
        .unwrap();
    assert!(login.joined, "{login:?}");
    let cb = regent_tests::forms::Session::default()
        .authorize(login.authorize_url.as_deref().unwrap(), "alice")
        .await
        .unwrap();
    assert_eq!(regent_tests::get(cb).await.unwrap().status(), 200);
    for mut p in proxies {
        let init = p.recv().await.expect("the initialize answer");
        assert_eq!(init["id"], 1, "{init}");
        assert!(init["result"]["serverInfo"].is_object(), "{init}");
        let (code, err) = p.close().await;
        assert_eq!(code, Some(0), "{err}");
        assert!(!err.contains("replaced"), "{err}");
    }
    assert_eq!(m.code_grants().await, 1, "one login for all three");
}

/// Re-adding a name with another URL never silently replaces it (and ends
/// its login): without a terminal it fails naming --replace.
#[tokio::test]
async fn re_adding_a_name_with_another_url_asks_first() {
    let m = Mcp::new(&["s1", "s2"]).await;
    m.add("s1");
    m.login("s1");
    let out = m.agent.regent(&["mcp", "add", "s1", m.servers.url("s2")]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("--replace"), "{}", out.stderr);
    let list: Value =
        serde_json::from_str(&m.agent.regent(&["mcp", "list", "--json"]).stdout).unwrap();
    assert_eq!(list["servers"][0]["url"], m.servers.url("s1"));
    assert_eq!(list["servers"][0]["auth"]["status"], "authenticated");
    // The same URL again is fine (unchanged), and --replace replaces.
    assert_eq!(
        m.agent
            .regent(&["mcp", "add", "s1", m.servers.url("s1")])
            .code,
        0
    );
    let out = m
        .agent
        .regent(&["mcp", "add", "s1", m.servers.url("s2"), "--replace"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let list: Value =
        serde_json::from_str(&m.agent.regent(&["mcp", "list", "--json"]).stdout).unwrap();
    assert_eq!(list["servers"][0]["url"], m.servers.url("s2"));
}

/// Login and logout by name work alike for every kind; a lone MCP server is
/// what a nameless logout means; a second login says it was not needed, as
/// whom, and which servers share the login.
#[tokio::test]
async fn login_and_logout_of_mcp_servers_as_of_registries() {
    let m = Mcp::new(&["s1", "s2"]).await;
    m.add("s1");
    m.add("s2");
    let out = m.login("s1");
    assert!(out.contains("Logged in to s1 as alice"), "{out}");
    assert!(out.contains("s2 shares this login"), "{out}");
    let out = m.agent.regent(&["login", "s1", "--device"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("Already logged in to s1 as alice"),
        "{}",
        out.stdout
    );
    let out = m.agent.regent(&["login", "s2", "--no-browser"]);
    assert!(out.stdout.contains("Already logged in to s2"), "{out:?}");
    assert_eq!(m.code_grants().await, 1);
    // Forced: a new login, which names the server it also logs in.
    let out = m.login_forced("s1");
    assert!(out.contains("s2 shares this login"), "{out}");
    // A nameless logout with two servers is ambiguous; with one, it is that one.
    let out = m.agent.regent(&["logout", "--all"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("s1, s2"), "{}", out.stderr);
    assert_eq!(m.agent.regent(&["mcp", "remove", "s2"]).code, 0);
    let out = m.agent.regent(&["logout"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("Logged out of s1"), "{}", out.stdout);
    // A token for a server that asks for none says so, naming no registry.
    let out = m
        .agent
        .regent(&["mcp", "add", "open", m.servers.url("s2"), "--no-auth"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = m.agent.regent(&["token", "open"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("MCP server open asks for no auth") && !out.stderr.contains("registry"),
        "{}",
        out.stderr
    );
    // regent servers lists a registry's servers: an MCP server is said to be one.
    let out = m.agent.regent(&["servers", "open"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("open is an MCP server, not a registry"),
        "{}",
        out.stderr
    );
}

/// A server that cannot be reached is named as such, not as the IdP.
#[tokio::test]
async fn an_unreachable_server_is_named_not_the_idp() {
    let agent = Agent::start(AgentOptions::default()).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://127.0.0.1:{}/mcp",
        closed.local_addr().unwrap().port()
    );
    drop(closed);
    let out = agent.regent(&["mcp", "add", "gone", &url]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains(&format!("cannot reach {url}")) && !out.stderr.contains("IdP"),
        "{}",
        out.stderr
    );
}

/// A server on another origin that names the same authorization server is
/// not lent the user's login: `mcp add` (and the proxy's add-on-first-use)
/// fails naming --share-login and --own-login; with --own-login it gets a
/// login of its own, and no token is minted for it from the user's login.
#[tokio::test]
async fn a_login_is_not_lent_to_a_server_on_another_origin() {
    let m = Mcp::new(&["s1"]).await;
    m.add("s1");
    m.login("s1");
    // The same servers on another port: another origin, the same AS.
    let other = McpServers::start(&m.idp.issuer, &["evil"]);
    let url = other.url("evil");
    let out = m.agent.regent(&["mcp", "add", "evil", url]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("--share-login") && out.stderr.contains("--own-login"),
        "{}",
        out.stderr
    );
    assert!(m.agent.regent(&["token", "evil"]).code != 0);
    let mut p = Proxy::start(&m.agent, &[url, "--no-login"], &[]);
    let r = p
        .request(
            "initialize",
            json!({"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}),
        )
        .await;
    let said = r["error"]["message"].as_str().unwrap_or_default();
    assert!(said.contains("--share-login"), "{r}");
    let (code, err) = p.close().await;
    assert_ne!(code, Some(0), "{err}");
    assert!(err.contains("--share-login"), "{err}");
    let out = m.agent.regent(&["mcp", "add", "evil", url, "--own-login"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = m.agent.regent(&["token", "evil"]);
    assert_eq!(out.code, 4, "its own login is needed: {out:?}");
    let list: Value =
        serde_json::from_str(&m.agent.regent(&["mcp", "list", "--json"]).stdout).unwrap();
    let s1 = list["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "s1")
        .unwrap();
    assert_eq!(s1["auth"]["shared_with"], json!(null), "{s1}");
    assert_eq!(m.code_grants().await, 1);
}

/// A server that joins a login after it was made is not refreshed for: the
/// real IdP would consume the refresh token and then refuse the resource,
/// and every server sharing the login would be logged out. It asks for a
/// login that names it; the others stay logged in throughout.
#[tokio::test]
async fn joining_a_login_never_logs_the_others_out() {
    let m = Mcp::new(&["s1", "s2"]).await;
    m.add("s1");
    m.login("s1");
    m.add("s2"); // the same origin: it shares s1's login
    let out = m.agent.regent(&["token", "s2"]);
    assert_eq!(out.code, 4, "{out:?}");
    assert!(
        out.stderr.contains("joined this login after") && out.stderr.contains("regent login s2"),
        "{}",
        out.stderr
    );
    // s1 refreshes with the refresh token the login gave: still alive at the IdP.
    let client = m.agent.client();
    let t = client
        .token(&regent_proto::TokenRequest {
            url: None,
            registry: Some("s1".into()),
            min_valid_secs: None,
            dpop: None,
        })
        .await
        .unwrap();
    client
        .invalidate(&regent_proto::InvalidateRequest {
            registry: Some("s1".into()),
            access_token: t.access_token,
        })
        .await
        .unwrap();
    let out = m.agent.regent(&["token", "s1"]);
    assert_eq!(out.code, 0, "s1 was logged out: {out:?}");
    // A login for s2 names both: both have tokens, each its own audience.
    m.login("s2");
    for s in ["s1", "s2"] {
        let mut p = m.proxy(s, &["--no-login"]);
        p.initialize().await;
        let me = whoami(&p.call("whoami", json!({})).await.unwrap());
        assert_eq!(me["aud"], m.servers.url(s), "{me}");
        p.close().await;
    }
}

#[tokio::test]
async fn a_pending_login_is_cancelled_at_the_agent_when_the_proxy_stops() {
    let m = Mcp::new(&["s1"]).await;
    m.add("s1");
    // A browser that never completes: the login stays pending until the proxy goes.
    let mut p = Proxy::start(&m.agent, &["s1"], &[("BROWSER", "true".to_string())]);
    p.send(&json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}))
        .await;
    m.agent.wait_log("login started", 1).await;
    let (code, err) = p.signal(libc::SIGTERM).await;
    assert_eq!(code, Some(0), "{err}");
    m.agent.wait_log("login cancelled: by request", 1).await;
}

/// What does not answer as an MCP server is not taken for one that asks
/// for no auth: a 404 page, a registry's URL given to `mcp add`, an MCP
/// endpoint given to `registry add` are refused with what answered.
#[tokio::test]
async fn a_url_that_is_not_what_it_is_added_as_is_refused_with_what_answered() {
    let m = Mcp::new(&["s1"]).await;
    let reg = regent_tests::registry::Registry::start(regent_tests::registry::RegistryOptions {
        public: true,
        ..Default::default()
    });
    let page = format!(
        "{}/nothing-here",
        m.servers.url("s1").trim_end_matches("/s1/mcp")
    );
    let out = m.agent.regent(&["mcp", "add", "typo", &page]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("does not answer as an MCP server") && out.stderr.contains("HTTP 404"),
        "{}",
        out.stderr
    );
    let out = m.agent.regent(&["mcp", "add", "reg", &reg.url]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("does not answer as an MCP server"),
        "{}",
        out.stderr
    );
    let out = m
        .agent
        .regent(&["registry", "add", "srv", m.servers.url("s1")]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("does not answer as an MCP registry"),
        "{}",
        out.stderr
    );
    let list: Value =
        serde_json::from_str(&m.agent.regent(&["mcp", "list", "--json"]).stdout).unwrap();
    assert_eq!(
        list["servers"],
        json!([]),
        "a refused URL was added: {list}"
    );
    // What is what it is added as still is taken.
    assert_eq!(
        m.agent.regent(&["registry", "add", "corp", &reg.url]).code,
        0
    );
    m.add("s1");
}

/// A server whose client regent registered itself (RFC 7591) can be logged
/// in to with the device flow (an SSH session): the registration asked for
/// the device grant, which the authorization server lists.
#[tokio::test]
async fn a_registered_client_logs_in_with_the_device_flow_too() {
    let m = Mcp::new(&["s1"]).await;
    m.add("s1");
    let status = crate::device_login(&m.agent, Some("s1"), "alice").await;
    assert_eq!(status.account.as_deref(), Some("alice"), "{status:?}");
    let mut p = m.proxy("s1", &["--no-login"]);
    p.initialize().await;
    let me = whoami(&p.call("whoami", json!({})).await.unwrap());
    assert_eq!(me["server"], "s1", "{me}");
    p.close().await;
    assert_eq!(
        m.code_grants().await,
        0,
        "the login was not the device flow"
    );
}

/// A client whose authorization server takes assertions signed PS256 only
/// (an RSA key that must sign RSASSA-PSS): with `--client-key-alg PS256`
/// the client credentials grant works and the server takes the token;
/// without it the key signs RS256, and the IdP's refusal is shown.
#[tokio::test]
async fn client_key_alg_signs_the_assertion_the_authorization_server_wants() {
    let m = Mcp::new(&["s1"]).await;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key.pem");
    std::fs::write(&key, m.idp.client_key().await).unwrap();
    let add = |name: &str, alg: Option<&str>| {
        let mut args = vec![
            "mcp",
            "add",
            name,
            m.servers.url("s1"),
            "--client-credentials",
            "--client-id",
            "regent-pss",
            "--client-key-file",
            key.to_str().unwrap(),
        ];
        if let Some(a) = alg {
            args.extend(["--client-key-alg", a]);
        }
        m.agent.regent(&args)
    };
    let out = add("rs", None);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = m.agent.regent(&["token", "rs"]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("invalid_client"), "{}", out.stderr);
    let out = add("ps", Some("PS256"));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = m.agent.regent(&["token", "ps"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(m.idp.is_active(out.stdout.trim()).await);
    let mut p = m.proxy("ps", &["--no-login"]);
    p.initialize().await;
    let me = whoami(&p.call("whoami", json!({})).await.unwrap());
    assert_eq!(me["server"], "s1", "{me}");
    p.close().await;
    // An EC algorithm for an RSA key is refused at add, before any request.
    let out = add("es", Some("ES256"));
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("RSA key signs"), "{}", out.stderr);
}

/// A client on 2025-11-25 and a client on 2026-07-28 (the official SDK's v2
/// client, on each wire) use the same server through regent, with one login:
/// the stateful one with its session, the stateless one with the version,
/// method and name headers on every POST and no session.
#[tokio::test]
async fn clients_on_both_wires_use_the_same_server_with_one_login() {
    let idp = Idp::start(IdpOptions::default());
    let servers = McpServers::start_dual(&idp.issuer, &["d1"]);
    let agent = Agent::start(AgentOptions::default()).await;
    let out = agent.regent(&["mcp", "add", "d1", servers.url("d1")]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let calls = [("whoami", json!({})), ("echo", json!({"text": "héllo"}))];
    let old = regent_tests::mcp::real_client(&agent, "2025-11-25", "d1", &calls).unwrap();
    let new = regent_tests::mcp::real_client(&agent, "2026-07-28", "d1", &calls).unwrap();
    for (wire, answers) in [("2025-11-25", &old), ("2026-07-28", &new)] {
        let me = whoami(answers[0].text.as_deref().unwrap());
        assert_eq!(me["wire"], wire, "{me}");
        assert_eq!(me["aud"], servers.url("d1"), "{me}");
        assert_eq!(answers[1].text.as_deref(), Some("héllo"));
    }
    // One login (the first client's), used by the second.
    let codes = idp.counts().await["token"]["authorization_code"].as_u64();
    assert_eq!(codes, Some(1));
    let log = servers.log().await;
    let posts: Vec<&Value> = log["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["http"] == "POST" && r["status"] == 200)
        .collect();
    let stateless: Vec<&&Value> = posts
        .iter()
        .filter(|r| r["version"] == "2026-07-28")
        .collect();
    assert!(!stateless.is_empty(), "{log}");
    for r in &stateless {
        assert!(
            r["session"].is_null(),
            "a session on the stateless wire: {r}"
        );
        assert_eq!(r["mcp_method"], r["method"], "{r}");
    }
    assert!(
        stateless
            .iter()
            .any(|r| r["method"] == "tools/call" && r["mcp_name"] == "echo"),
        "{log}"
    );
    assert!(
        posts
            .iter()
            .any(|r| r["version"] == "2025-11-25" && r["session"].is_string()),
        "{log}"
    );
}

#[tokio::test]
async fn mcp_add_from_a_registry_entry() {
    let m = Mcp::new(&["s1"]).await;
    let reg = regent_tests::registry::Registry::start(regent_tests::registry::RegistryOptions {
        public: true,
        remote: Some(m.servers.url("s1").to_string()),
        ..Default::default()
    });
    assert_eq!(
        m.agent.regent(&["registry", "add", "corp", &reg.url]).code,
        0
    );
    let out = m.agent.regent(&[
        "mcp",
        "add",
        "remote",
        "--from",
        "corp",
        "io.example/server-1",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let list: Value =
        serde_json::from_str(&m.agent.regent(&["mcp", "list", "--json"]).stdout).unwrap();
    assert_eq!(list["servers"][0]["url"], m.servers.url("s1"));
    let out = m
        .agent
        .regent(&["mcp", "add", "x", "--from", "corp", "io.example/server-2"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("no streamable-http remote"),
        "{}",
        out.stderr
    );
    assert_eq!(m.agent.regent(&["mcp", "remove", "remote"]).code, 0);
    assert_eq!(
        m.agent.regent(&["mcp", "list"]).stdout.trim(),
        "No MCP servers. Add one with: regent mcp add NAME URL"
    );
}

/// A registry behind OAuth that says where its authorization server is
/// (RFC 9728): `regent registry add NAME URL` alone leads to a working login.
#[tokio::test]
async fn a_registry_without_issuer_is_discovered() {
    let idp = Idp::start(IdpOptions::default());
    let reg = regent_tests::registry::Registry::start(regent_tests::registry::RegistryOptions {
        issuer: Some(idp.issuer.clone()),
        prm: true,
        ..Default::default()
    });
    let agent = Agent::start(AgentOptions::default()).await;
    let out = agent.regent(&["registry", "add", "corp", &reg.url]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout
            .contains(&format!("authorization server {}", idp.issuer)),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("Log in with: regent login corp"),
        "{}",
        out.stdout
    );
    let login = agent
        .regent_command(&["login", "corp"])
        .env("BROWSER", regent_tests::bin("browser"))
        .output()
        .unwrap();
    assert!(
        login.status.success(),
        "{}",
        String::from_utf8_lossy(&login.stderr)
    );
    let out = agent.regent(&["servers", "corp", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["servers"].as_array().unwrap().len(), 7);
    let token = agent.regent(&["token", "corp"]).stdout.trim().to_string();
    assert!(idp.is_active(&token).await);
}

/// One request to `regent serve`'s gateway, as an MCP client sends it.
async fn gateway(
    http: &reqwest::Client,
    url: &str,
    session: Option<&str>,
    body: Value,
) -> (u16, Option<String>, Value) {
    regent_tests::mcp::post(http, url, None, session, &body).await
}

/// `regent serve` lists MCP servers with their auth status, and its gateway
/// at /mcp/NAME reaches them with the agent's token; where a login or a
/// step-up is needed it answers an error naming the command, and never
/// starts a login itself.
#[tokio::test]
async fn serve_lists_mcp_servers_and_its_gateway_names_the_command_to_run() {
    let m = Mcp::new(&["s1", "s2"]).await;
    m.add("s1");
    m.add("s2");
    let serve = regent_tests::registry::Serve::start(&m.agent);
    let http = reqwest::Client::new();
    let list: Value = http
        .get(format!("{}/api/v1/mcp", serve.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let servers = list["servers"].as_array().unwrap();
    assert_eq!(servers.len(), 2, "{list}");
    assert!(
        servers
            .iter()
            .all(|s| s["auth"]["status"] == "auth_required"),
        "{list}"
    );

    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let url = format!("{}/mcp/s1", serve.url);
    let (status, _, err) = gateway(&http, &url, None, init.clone()).await;
    assert_eq!(status, 503, "{err}");
    assert_eq!(err["error"]["code"], "registry_auth_required");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("regent login s1"),
        "{err}"
    );

    m.login("s1");
    let one: Value = http
        .get(format!("{}/api/v1/mcp/s1", serve.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one["auth"]["status"], "authenticated", "{one}");
    let (status, session, answer) = gateway(&http, &url, None, init).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["result"]["serverInfo"]["name"], "regent-test-s1");
    let session = session.expect("the server's session id is passed back");
    let (status, _, _) = gateway(
        &http,
        &url,
        Some(&session),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await;
    assert_eq!(status, 202);
    let (status, _, answer) = gateway(
        &http,
        &url,
        Some(&session),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let who: Value =
        serde_json::from_str(answer["result"]["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(who["aud"], m.servers.url("s1"), "a token for s1 itself");

    // More scope: the step-up is recorded, and the answer says how to run it.
    let (status, _, err) = gateway(
        &http,
        &url,
        Some(&session),
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "admin", "arguments": {}}}),
    )
    .await;
    assert_eq!(status, 503, "{err}");
    let message = err["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("mcp:admin") && message.contains("regent login s1"),
        "{message}"
    );
    // No login was started but the user's own.
    assert_eq!(
        m.agent.log().matches("login started").count(),
        1,
        "{}",
        m.agent.log()
    );
    // A server that is not configured is not reachable through it.
    let (status, _, err) =
        gateway(&http, &format!("{}/mcp/nope", serve.url), None, json!({})).await;
    assert_eq!(status, 404, "{err}");
}

/// Peak resident memory (kB) and CPU time (ticks) of a running process.
fn usage(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // After the command name, from the state (field 3): utime is field 14, stime 15.
    let rest: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let field = |n: usize| rest[n - 3].parse::<u64>().unwrap();
    (hwm, field(14) + field(15))
}

/// A server that streams one event that never ends (data lines without the
/// blank line, or one line without an end) gets an error once the event
/// passes the message limit: the proxy's memory stays bounded by it, and
/// each byte is scanned once (no quadratic rescanning of a long line).
#[tokio::test]
async fn a_hostile_event_stream_costs_bounded_memory_and_cpu() {
    use regent_tests::hostile::{Answer, Hostile};
    let agent = Agent::start(AgentOptions::default()).await;
    let line = format!("data: {}\n", "x".repeat(1017)).into_bytes();
    for (name, chunk) in [("lines", line), ("oneline", vec![b'x'; 64 * 1024])] {
        let evil = Hostile::start(Answer::Endless {
            chunk,
            total: 1 << 30,
        })
        .await;
        let out = agent
            .regent_async(&[
                "mcp",
                "add",
                name,
                &format!("{}/mcp", evil.url),
                "--no-auth",
            ])
            .await;
        assert_eq!(out.code, 0, "{out:?}");
        let mut p = Proxy::start(&agent, &[name], &[]);
        p.send(&json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}))
            .await;
        let answer = p.recv().await.expect("an answer");
        let msg = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(msg.contains("larger than 16 MiB"), "{name}: {answer}");
        let (hwm_kb, cpu_ticks) = usage(p.pid());
        eprintln!(
            "{name}: peak RSS {hwm_kb} kB, CPU {cpu_ticks} ticks, {} bytes sent",
            evil.sent()
        );
        // The 16 MiB event limit, twice over for the buffers, and the program itself.
        assert!(hwm_kb < 96 * 1024, "{name}: peak RSS {hwm_kb} kB");
        // Linear in the bytes read (rescanning a 16 MiB line took seconds per MiB).
        assert!(cpu_ticks < 1000, "{name}: {cpu_ticks} ticks of CPU");
        assert!(evil.sent() < 64 << 20, "{name}: read {} bytes", evil.sent());
        let (code, err) = p.close().await;
        assert_eq!(code, Some(0), "{err}");
    }
}

/// A server whose GET stream says `retry: 0` and ends at once is not
/// hammered: the proxy reopens it after a floor, backing off while the
/// reopenings bring nothing (the gaps only grow; none is under the floor).
#[tokio::test]
async fn a_stream_that_ends_at_once_is_reopened_with_a_floor_and_backoff() {
    use regent_tests::hostile::{Answer, Hostile};
    let agent = Agent::start(AgentOptions::default()).await;
    let init = r#"{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2025-11-25","capabilities":{},"serverInfo":{"name":"h","version":"1"}}}"#;
    let evil = Hostile::start(Answer::PerMethod {
        post: Box::new(Answer::Fixed {
            status: "200 OK",
            headers: vec!["mcp-session-id: s1".into()],
            body: init.into(),
        }),
        get: Box::new(Answer::Endless {
            chunk: b"retry: 0\n\n".to_vec(),
            total: 1,
        }),
    })
    .await;
    let out = agent
        .regent_async(&["mcp", "add", "h", &format!("{}/mcp", evil.url), "--no-auth"])
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    let mut p = Proxy::start(&agent, &["h"], &[]);
    p.initialize().await;
    regent_tests::eventually("five reopenings", Duration::from_secs(30), || async {
        (evil.gets().len() >= 5).then_some(())
    })
    .await;
    let gets = evil.gets();
    let gaps: Vec<Duration> = gets.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps.iter().all(|g| *g >= Duration::from_millis(200)),
        "a reopening under the floor: {gaps:?}"
    );
    // Backing off: without it every gap would be the floor. (Lower bounds
    // only: a loaded machine makes gaps longer, never shorter.)
    assert!(gaps[3] >= Duration::from_secs(2), "no backoff: {gaps:?}");
    let (code, err) = p.close().await;
    assert_eq!(code, Some(0), "{err}");
}

/// The `regent serve` gateway passes both wires: the session where there
/// is one, and the stateless wire's routing headers (Mcp-Method, Mcp-Name,
/// Mcp-Param-*); never the client's own Authorization or cookies.
#[tokio::test]
async fn the_gateway_passes_the_stateless_wires_headers() {
    use regent_tests::hostile::{Answer, Hostile};
    let agent = Agent::start(AgentOptions::default()).await;
    let server = Hostile::start(Answer::Fixed {
        status: "200 OK",
        headers: vec![],
        body: r#"{"jsonrpc":"2.0","id":1,"result":{"content":[]}}"#.into(),
    })
    .await;
    let out = agent
        .regent_async(&[
            "mcp",
            "add",
            "h",
            &format!("{}/mcp", server.url),
            "--no-auth",
        ])
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    let serve = regent_tests::registry::Serve::start(&agent);
    let r = reqwest::Client::new()
        .post(format!("{}/mcp/h", serve.url))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "add")
        .header("mcp-param-region", "us-west1")
        .header("authorization", "Bearer the-clients-own")
        .header("cookie", "c=1")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add"}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let head = server.heads().last().cloned().unwrap().to_ascii_lowercase();
    for h in [
        "mcp-protocol-version: 2026-07-28",
        "mcp-method: tools/call",
        "mcp-name: add",
        "mcp-param-region: us-west1",
    ] {
        assert!(head.contains(h), "{h} not passed on: {head}");
    }
    assert!(
        !head.contains("the-clients-own") && !head.contains("cookie"),
        "{head}"
    );
}
