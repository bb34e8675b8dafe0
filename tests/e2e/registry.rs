//! Registry access: `regent servers`, `regent serve` and the Bearer layer,
//! against a registry fixture that verifies every token at the IdP.

use crate::World;
use regent_tests::registry::{Registry, RegistryOptions, Serve};
use regent_tests::{forms, Agent, AgentOptions};
use serde_json::Value;

/// A world whose registry `corp` is the fixture, verifying tokens at the IdP.
async fn world_with_registry() -> (World, Registry) {
    let w = World::default().await;
    let reg = Registry::start(RegistryOptions {
        issuer: Some(w.idp.issuer.clone()),
        ..Default::default()
    });
    let out = w.agent.regent(&[
        "registry",
        "add",
        "corp",
        &reg.url,
        "--issuer",
        &w.idp.issuer,
        "--client-id",
        "regent-test",
        "--replace",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    (w, reg)
}

/// An HTTP client whose every request is bounded (60 s).
fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .unwrap()
}

fn names(v: &Value) -> Vec<String> {
    v["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["server"]["name"].as_str().unwrap().to_string())
        .collect()
}

/// A GET to `regent serve`, bounded: a stuck answer fails the test, naming it.
async fn get(url: &str) -> (u16, Value) {
    let r = http()
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn servers_lists_every_page_through_the_cli_and_serve() {
    let (w, reg) = world_with_registry().await;
    w.login("alice").await;
    let out = w.agent.regent(&["servers", "corp", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    let all = names(&v);
    assert_eq!(all.len(), 7, "{all:?}");
    assert!(
        reg.seen().await["ok"].as_u64().unwrap() >= 3,
        "three pages of three"
    );
    let out = w.agent.regent(&["servers"]);
    assert_eq!(out.code, 0);
    assert!(out.stdout.starts_with("NAME"), "{}", out.stdout);
    assert!(
        out.stdout.contains(&all[0]) && out.stdout.contains("7 servers"),
        "{}",
        out.stdout
    );

    let serve = Serve::start(&w.agent);
    let (s, v) = get(&format!("{}/api/v1/registries/corp/servers", serve.url)).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(names(&v), all);
    let (s, v) = get(&format!(
        "{}/api/v1/registries/corp/servers?limit=2",
        serve.url
    ))
    .await;
    assert_eq!(s, 200);
    assert_eq!(names(&v).len(), 2);
    let cursor = v["metadata"]["nextCursor"].as_str().unwrap();
    let (_, v) = get(&format!(
        "{}/api/v1/registries/corp/servers?limit=2&cursor={cursor}",
        serve.url
    ))
    .await;
    assert_eq!(names(&v), all[2..4]);
    let one = &all[3];
    let enc: String = url::form_urlencoded::byte_serialize(one.as_bytes()).collect();
    let (s, v) = get(&format!(
        "{}/api/v1/registries/corp/servers/{enc}",
        serve.url
    ))
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["server"]["name"], one.as_str());
    let (s, v) = get(&format!("{}/api/v1/registries/corp", serve.url)).await;
    assert_eq!(
        (s, v["auth"]["status"].as_str()),
        (200, Some("authenticated"))
    );
}

#[tokio::test]
async fn a_revoked_access_token_costs_one_401_and_no_user() {
    let (w, reg) = world_with_registry().await;
    w.login("alice").await;
    let at = w.token(&[]);
    w.idp.destroy_access_token(&at).await;
    assert!(!w.idp.is_active(&at).await);
    reg.reset().await;
    w.idp.reset().await;
    let out = w.agent.regent(&["servers", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let seen = reg.seen().await;
    assert_eq!(seen["unauthorized"], 1, "{seen}");
    assert_eq!(w.idp.refreshes().await, 1);
    let fresh = w.token(&[]);
    assert_ne!(fresh, at);
}

#[tokio::test]
async fn a_revoked_grant_means_login_required() {
    let (w, _reg) = world_with_registry().await;
    w.login("alice").await;
    let rt = w.agent.stored_refresh_token().unwrap();
    w.idp.revoke(&rt, "refresh_token").await; // the whole grant: access token included
    let out = w.agent.regent(&["servers"]);
    assert_eq!(out.code, 4, "{out:?}");
    assert!(out.stderr.contains("regent login corp"), "{}", out.stderr);
}

/// A 403 asking for more scope is a step-up (the agent widens the login to
/// the union of the scopes), found even behind a `Basic` challenge sent
/// first; without a terminal to log in on, the command names the login.
#[tokio::test]
async fn a_403_for_more_scope_steps_up_even_behind_another_challenge() {
    let (w, reg) = world_with_registry().await;
    w.login("alice").await;
    reg.mode(serde_json::json!({"forbid": true, "www_authenticate": [
        "Basic realm=\"registry\"",
        "Bearer error=\"insufficient_scope\", scope=\"registry:write\""
    ]}))
    .await;
    reg.reset().await;
    w.idp.reset().await;
    let out = w.agent.regent(&["servers"]);
    assert_eq!(out.code, 4, "{out:?}");
    assert!(
        out.stderr.contains("registry:write") && out.stderr.contains("regent login corp"),
        "{}",
        out.stderr
    );
    assert_eq!(
        reg.seen().await["requests"],
        1,
        "no retry: a login is needed"
    );
    assert_eq!(w.idp.refreshes().await, 0);
    let scopes = w.status()["registries"][0]["auth"]["scopes"].clone();
    assert_eq!(
        scopes,
        serde_json::json!(["openid", "registry:write"]),
        "the union"
    );
    let serve = Serve::start(&w.agent);
    let (s, v) = get(&format!("{}/api/v1/registries/corp/servers", serve.url)).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (503, Some("registry_auth_required")),
        "{v}"
    );
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("regent login corp") && msg.contains("/api/v1/registries/corp/login"),
        "{msg}"
    );
}

/// A 403 that asks for nothing a login could give is `registry_forbidden`,
/// with no retry and no refresh.
#[tokio::test]
async fn a_plain_403_is_registry_forbidden_without_a_retry() {
    let (w, reg) = world_with_registry().await;
    w.login("alice").await;
    reg.mode(
        serde_json::json!({"forbid": true, "www_authenticate": "Bearer error=\"access_denied\""}),
    )
    .await;
    reg.reset().await;
    w.idp.reset().await;
    let out = w.agent.regent(&["servers"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("refused access") && out.stderr.contains("access_denied"),
        "{}",
        out.stderr
    );
    assert_eq!(reg.seen().await["requests"], 1, "no retry after a 403");
    assert_eq!(w.idp.refreshes().await, 0);
    let serve = Serve::start(&w.agent);
    let (s, v) = get(&format!("{}/api/v1/registries/corp/servers", serve.url)).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (403, Some("registry_forbidden")),
        "{v}"
    );
}

#[tokio::test]
async fn a_redirect_to_another_origin_carries_no_token() {
    let (w, reg) = world_with_registry().await;
    w.login("alice").await;
    let other = Registry::start(RegistryOptions {
        public: true,
        ..Default::default()
    });
    reg.mode(serde_json::json!({"redirect_to": other.url}))
        .await;
    let out = w.agent.regent(&["servers", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let seen = other.seen().await;
    assert!(seen["requests"].as_u64().unwrap() >= 1, "{seen}");
    assert_eq!(
        seen["with_authorization"], 0,
        "the token went to another origin: {seen}"
    );
    assert!(reg.seen().await["with_authorization"].as_u64().unwrap() >= 1);
}

#[tokio::test]
async fn serve_answers_503_without_a_token_and_drives_a_login() {
    let (w, reg) = world_with_registry().await;
    let serve = Serve::start(&w.agent);
    let (s, v) = get(&format!("{}/api/v1/registries/corp/servers", serve.url)).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (503, Some("registry_auth_required")),
        "{v}"
    );
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("regent login corp") && msg.contains("/api/v1/registries/corp/login"),
        "{msg}"
    );
    assert_eq!(
        reg.seen().await["requests"],
        0,
        "nothing reached the registry"
    );
    let (s, v) = get(&format!("{}/api/v1/registries", serve.url)).await;
    assert_eq!(s, 200);
    assert_eq!(v["registries"][0]["auth"]["status"], "auth_required");

    // A UI starts a login through serve and polls it; a person approves it at the IdP.
    let http = http();
    let r = http
        .post(format!("{}/api/v1/registries/corp/login", serve.url))
        .json(&serde_json::json!({"flow": "device"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let login: Value = r.json().await.unwrap();
    forms::approve_device(
        login["verification_uri"].as_str().unwrap(),
        login["user_code"].as_str().unwrap(),
        "alice",
    )
    .await
    .unwrap();
    let id = login["id"].as_str().unwrap();
    let (s, v) = get(&format!("{}/api/v1/logins/{id}?wait_secs=20", serve.url)).await;
    assert_eq!((s, v["status"].as_str()), (200, Some("succeeded")), "{v}");
    let (s, v) = get(&format!("{}/api/v1/registries/corp/servers", serve.url)).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(names(&v).len(), 7);
    // Logged in now: another login starts nothing and says so.
    let r = http
        .post(format!("{}/api/v1/registries/corp/login", serve.url))
        .json(&serde_json::json!({"flow": "browser"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let login: Value = r.json().await.unwrap();
    assert_eq!(login["already"], true, "{login}");
    assert_eq!(login["account"], "alice", "{login}");
    // A forced browser login through serve only returns the URL to show: it never blocks.
    let r = http
        .post(format!("{}/api/v1/registries/corp/login", serve.url))
        .json(&serde_json::json!({"flow": "browser", "force": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let login: Value = r.json().await.unwrap();
    assert!(login["authorize_url"]
        .as_str()
        .unwrap()
        .contains("code_challenge_method=S256"));
}

#[tokio::test]
async fn a_static_token_file_is_sent_and_reread() {
    let a = Agent::start(AgentOptions::default()).await;
    let reg = Registry::start(RegistryOptions {
        static_tokens: vec!["ci-token-2".into()],
        ..Default::default()
    });
    let file = a.home().join("ci-token");
    std::fs::write(&file, "ci-token-1\n").unwrap();
    let out = a.regent(&[
        "registry",
        "add",
        "ci",
        &reg.url,
        "--token-file",
        &file.display().to_string(),
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    // The registry does not take token 1, and the file still holds it: one
    // 401 (another request would only be refused again), then exit 4 naming the file.
    let out = a.regent(&["servers"]);
    assert_eq!(out.code, 4, "{out:?}");
    assert!(out.stderr.contains("ci-token"), "{}", out.stderr);
    assert_eq!(reg.seen().await["unauthorized"], 1);
    std::fs::write(&file, "ci-token-2").unwrap();
    let out = a.regent(&["servers", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let seen = reg.seen().await;
    assert!(
        seen["authorization_values"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v == "Bearer ci-token-2"),
        "{seen}"
    );
    std::fs::remove_file(&file).unwrap();
    let out = a.regent(&["servers"]);
    assert_eq!(out.code, 4);
    assert!(
        out.stderr.contains("cannot read the token file"),
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn a_registry_with_only_v0_is_read_through_the_fallback() {
    let a = Agent::start(AgentOptions::default()).await;
    let reg = Registry::start(RegistryOptions {
        public: true,
        v0_only: true,
        ..Default::default()
    });
    assert_eq!(a.regent(&["registry", "add", "pub", &reg.url]).code, 0);
    let out = a.regent(&["servers", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(names(&v).len(), 7);
    assert_eq!(
        reg.seen().await["with_authorization"],
        0,
        "a public registry gets no token"
    );
}

#[tokio::test]
async fn serve_refuses_foreign_hosts_and_wildcard_listening() {
    let (mut w, _reg) = world_with_registry().await;
    let serve = Serve::start(&w.agent);
    let http = http();
    let r = http
        .get(format!("{}/api/v1/registries", serve.url))
        .header("host", format!("attacker.example:{}", serve.port))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "forbidden");
    // A page of another site: its Origin is refused (no login can be started or cancelled).
    let r = http
        .post(format!(
            "http://localhost:{}/api/v1/registries/corp/login",
            serve.port
        ))
        .header("origin", "http://attacker.example")
        .header("content-type", "text/plain")
        .body(r#"{"flow":"device"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(
        r.headers().get("access-control-allow-origin").is_none(),
        "no CORS"
    );
    let r = http
        .post(format!("{}/api/v1/registries/corp/login", serve.url))
        .header("content-type", "text/plain")
        .body(r#"{"flow":"device"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "a login needs a JSON content type");
    let r = http
        .get(format!("http://localhost:{}/api/v1/registries", serve.port))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers().get("access-control-allow-origin").is_none(),
        "no CORS"
    );

    let out = w.agent.regent(&["serve", "--listen", "0.0.0.0:0"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("--allow-remote"), "{}", out.stderr);

    // The agent restarts: serve reconnects; while none answers, it says so.
    w.agent.kill9();
    let (s, v) = get(&format!("{}/api/v1/registries", serve.url)).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (503, Some("agent_unavailable")),
        "{v}"
    );
    w.agent.restart_after_kill9().await;
    let (s, _) = get(&format!("{}/api/v1/registries", serve.url)).await;
    assert_eq!(s, 200);
}

/// Host names are resolved in-process (the static CLI loads no NSS module):
/// `localhost` comes from /etc/hosts.
#[tokio::test]
async fn a_registry_named_by_host_name_is_reached() {
    let a = Agent::start(AgentOptions::default()).await;
    let reg = Registry::start(RegistryOptions {
        public: true,
        ..Default::default()
    });
    let url = reg.url.replace("127.0.0.1", "localhost");
    assert_eq!(
        a.regent(&["registry", "add", "loc", &url, "--no-auth"])
            .code,
        0
    );
    let out = a.regent(&["servers", "loc", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(names(&v).len(), 7);
}

/// `regent serve` answers its owner only: another local user gets 403 on
/// every route (the listing, a login, the MCP gateway), before anything
/// runs, whatever its Host says; the owner is served.
#[tokio::test]
async fn serve_refuses_another_local_user() {
    let (w, reg) = world_with_registry().await;
    w.login("alice").await;
    let serve = Serve::start(&w.agent);
    let as_nobody = |method: &str, path: &str| {
        let out = std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .args(["curl", "-s", "-S", "-X", method])
            .args([
                "-H",
                "content-type: application/json",
                "-d",
                r#"{"flow":"device"}"#,
            ])
            .arg(format!("{}{path}", serve.url))
            .output()
            .unwrap();
        serde_json::from_slice::<Value>(&out.stdout).unwrap_or(Value::Null)
    };
    reg.reset().await;
    for (method, path) in [
        ("GET", "/api/v1/registries"),
        ("GET", "/api/v1/registries/corp/servers"),
        ("POST", "/api/v1/registries/corp/login"),
        ("POST", "/mcp/corp"),
    ] {
        let v = as_nobody(method, path);
        assert_eq!(v["error"]["code"], "forbidden", "{method} {path}: {v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("uid 65534"),
            "{v}"
        );
    }
    assert_eq!(
        reg.seen().await["requests"],
        0,
        "nothing reached the registry"
    );
    assert!(w
        .agent
        .client()
        .health()
        .await
        .unwrap()
        .pending_logins
        .is_empty());
    // From this machine's own non-loopback address to the loopback listener:
    // still this machine, still another user.
    let ip = std::process::Command::new("ip")
        .args(["-4", "-o", "addr", "show", "scope", "global"])
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .skip_while(|w| *w != "inet")
                .nth(1)
                .and_then(|a| a.split('/').next().map(str::to_string))
        });
    match ip {
        Some(ip) => {
            let out = std::process::Command::new("setpriv")
                .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .args(["curl", "-s", "-S", "--interface", &ip])
                .arg(format!("{}/api/v1/registries", serve.url))
                .output()
                .unwrap();
            let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
            assert_eq!(v["error"]["code"], "forbidden", "from {ip}: {v}");
        }
        None => regent_tests::missing(
            "a non-loopback address on this machine",
            "ip -4 addr shows none",
        ),
    }
    let (s, _) = get(&format!("{}/api/v1/registries/corp/servers", serve.url)).await;
    assert_eq!(s, 200, "the owner is served");
}

/// A registry cannot send the reader into a link-local address with a redirect.
#[tokio::test]
async fn a_redirect_to_a_link_local_address_is_refused() {
    let (w, reg) = world_with_registry().await;
    w.login("alice").await;
    reg.mode(serde_json::json!({"redirect_to": "http://169.254.169.254/latest"}))
        .await;
    let out = w.agent.regent(&["servers"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("refusing its redirect"),
        "{}",
        out.stderr
    );
}
