//! The API contract on the socket: error codes and statuses, bounds, the
//! config file, socket security.

use crate::{World, REGISTRY_URL};
use regent_tests::{Agent, AgentOptions, Idp, IdpOptions};
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;

async fn raw(agent: &Agent, method: &str, path: &str, body: &[u8]) -> (u16, Value) {
    let (status, bytes) = agent
        .client()
        .raw(method, path, body.to_vec())
        .await
        .unwrap();
    let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, v)
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("<none>")
}

#[tokio::test]
async fn malformed_requests_get_the_contract_codes() {
    let w = World::default().await;
    let a = &w.agent;
    let (s, v) = raw(a, "POST", "/v1/token", b"{not json").await;
    assert_eq!((s, code(&v)), (400, "invalid_request"), "{v}");
    let (s, v) = raw(
        a,
        "POST",
        "/v1/token",
        br#"{"registry":"corp","scope":"x"}"#,
    )
    .await;
    assert_eq!((s, code(&v)), (400, "invalid_request"), "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown field `scope`"),
        "{v}"
    );
    let big = format!(r#"{{"registry":"{}"}}"#, "x".repeat(70 * 1024));
    let (s, v) = raw(a, "POST", "/v1/token", big.as_bytes()).await;
    assert_eq!((s, code(&v)), (413, "payload_too_large"), "{v}");
    let (s, v) = raw(a, "POST", "/v1/token", br#"{"registry":"nope"}"#).await;
    assert_eq!((s, code(&v)), (404, "unknown_registry"), "{v}");
    assert_eq!(v["error"]["registry"], "nope");
    // An unknown field inside `auth`, a type shared with answers, is refused too.
    let body =
        br#"{"url":"https://x.example","auth":{"type":"bearer","token_file":"/t","secret":"s"}}"#;
    let (s, v) = raw(a, "PUT", "/v1/registries/x", body).await;
    assert_eq!((s, code(&v)), (400, "invalid_request"), "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("auth.secret"),
        "{v}"
    );
    let (s, v) = raw(a, "GET", "/v1/nothing", b"").await;
    assert_eq!((s, code(&v)), (400, "invalid_request"), "{v}");
    let (s, v) = raw(
        a,
        "PUT",
        "/v1/registries/bad%20name",
        br#"{"url":"https://x"}"#,
    )
    .await;
    assert_eq!((s, code(&v)), (400, "invalid_request"), "{v}");
    let (s, v) = raw(a, "GET", "/v1/login/nope?wait_secs=abc", b"").await;
    assert_eq!((s, code(&v)), (400, "invalid_request"), "{v}");
    // A token placed in the wrong field is not echoed back.
    let (_, v) = raw(
        a,
        "POST",
        "/v1/token",
        br#"{"min_valid_secs":"eyJsecret-token"}"#,
    )
    .await;
    assert!(!v.to_string().contains("eyJsecret"), "{v}");

    // Ambiguous registry: a second one makes "no name" an error.
    let out = a.regent(&[
        "registry",
        "add",
        "other",
        "https://other.example.test",
        "--no-auth",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let (s, v) = raw(a, "POST", "/v1/token", b"{}").await;
    assert_eq!((s, code(&v)), (400, "invalid_request"), "{v}");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("corp, other"));
    // A registry without auth.
    let (s, v) = raw(a, "POST", "/v1/token", br#"{"registry":"other"}"#).await;
    assert_eq!((s, code(&v)), (409, "auth_not_configured"), "{v}");
    let out = a.regent(&["token", "other"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("set-registry-auth"), "{}", out.stderr);
    // Health.
    let (s, v) = raw(a, "GET", "/v1/health", b"").await;
    assert_eq!(s, 200);
    assert_eq!(v["api"], 1);
    assert_eq!(v["pid"], a.pid());
}

#[tokio::test]
async fn configuring_auth_validates_the_idp() {
    let idp = Idp::start(IdpOptions::default());
    let a = Agent::start(AgentOptions::default()).await;
    let add = |issuer: &str| {
        a.regent(&[
            "registry",
            "add",
            "corp",
            REGISTRY_URL,
            "--issuer",
            issuer,
            "--client-id",
            "regent-test",
        ])
    };
    // A trailing slash is another issuer (RFC 8414 §3.3).
    let out = add(&format!("{}/", idp.issuer));
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("must match exactly"), "{}", out.stderr);
    // http is for loopback only.
    let out = add("http://idp.example.test");
    assert!(out.stderr.contains("only https"), "{}", out.stderr);
    // Nothing listening.
    let out = add("http://127.0.0.1:9");
    assert!(
        out.stderr.contains("cannot reach the IdP"),
        "{}",
        out.stderr
    );
    let (s, v) = raw(
        &a,
        "PUT",
        "/v1/registries/corp",
        json!({"url": REGISTRY_URL, "auth": {"type": "oauth", "issuer": "http://127.0.0.1:9", "client_id": "c"}})
            .to_string()
            .as_bytes(),
    )
    .await;
    assert_eq!((s, code(&v)), (422, "invalid_auth_config"), "{v}");
    // None of that was saved.
    assert!(
        !a.config_file().exists()
            || !std::fs::read_to_string(a.config_file())
                .unwrap()
                .contains("corp")
    );
    // The real one works, and set/unset-registry-auth round trip.
    assert_eq!(add(&idp.issuer).code, 0);
    let out = a.regent(&["config", "unset-registry-auth"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let list: Value =
        serde_json::from_str(&a.regent(&["registry", "list", "--json"]).stdout).unwrap();
    assert_eq!(list["registries"][0]["auth"], Value::Null);
    let out = a.regent(&[
        "config",
        "set-registry-auth",
        "--issuer",
        &idp.issuer,
        "--client-id",
        "regent-test",
        "--scopes",
        "openid,profile",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let cfg = std::fs::read_to_string(a.config_file()).unwrap();
    assert!(cfg.contains("profile"), "{cfg}");
}

#[tokio::test]
async fn a_broken_config_stops_the_agent_and_is_left_alone() {
    let mut a = Agent::start(AgentOptions::default()).await;
    let out = a.regent(&["registry", "add", "corp", REGISTRY_URL, "--no-auth"]);
    assert_eq!(out.code, 0);
    a.terminate();
    let broken = "[registries.corp]\nurl = \"https://r.example\"\nbogus = 1\n";
    std::fs::write(a.config_file(), broken).unwrap();
    let out = a.regentd_command().output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 3") && err.contains("bogus"), "{err}");
    assert_eq!(std::fs::read_to_string(a.config_file()).unwrap(), broken);
}

#[tokio::test]
async fn the_socket_is_private_and_other_users_get_nothing() {
    let w = World::default().await;
    w.login("alice").await;
    let sock = &w.agent.socket;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(sock), 0o600);
    assert_eq!(mode(sock.parent().unwrap()), 0o700);

    let as_nobody = |path: &str| {
        std::process::Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "curl",
                "-s",
                "-S",
            ])
            .args(["--unix-socket", &sock.display().to_string(), "-X", "POST"])
            .arg(format!("http://agent{path}"))
            .output()
            .unwrap()
    };
    // The directory keeps nobody out.
    let out = as_nobody("/v1/token");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Permission denied") || out.stdout.is_empty()
    );
    // Even with the permissions opened, the peer-uid check refuses.
    let opened = [
        sock.parent().unwrap().parent().unwrap(),
        sock.parent().unwrap(),
    ];
    let home = w.agent.home();
    std::fs::set_permissions(home, std::fs::Permissions::from_mode(0o711)).unwrap();
    for d in opened {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o711)).unwrap();
    }
    std::fs::set_permissions(sock, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = as_nobody("/v1/token");
    let body: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert_eq!(code(&body), "forbidden", "{body}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("access_token"));
}

#[tokio::test]
async fn the_agent_refuses_a_socket_directory_open_to_others() {
    let a = Agent::unstarted(AgentOptions::default());
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = a
        .regentd_command()
        .arg("--socket")
        .arg(dir.path().join("agent.sock"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("open to other users"), "{err}");
}

#[tokio::test]
async fn the_agent_refuses_a_socket_directory_of_another_user() {
    let a = Agent::unstarted(AgentOptions::default());
    let dir = tempfile::tempdir().unwrap();
    let theirs = dir.path().join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
    let out = a
        .regentd_command()
        .arg("--socket")
        .arg(theirs.join("agent.sock"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("owned by uid 65534"), "{err}");
}

#[tokio::test]
async fn a_client_that_sends_no_headers_is_cut_off() {
    use std::io::{Read, Write};
    let a = Agent::start(AgentOptions::default()).await;
    let mut s = std::os::unix::net::UnixStream::connect(&a.socket).unwrap();
    s.write_all(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    let mut buf = Vec::new();
    let n = s.read_to_end(&mut buf);
    // Closed by the agent after its header read timeout (10 s), not by ours (60 s).
    assert!(n.is_ok(), "{n:?}");
    // Meanwhile and after, others are served.
    assert!(a.client().health().await.is_ok());
}

#[tokio::test]
async fn the_file_store_is_private_and_says_so() {
    let w = World::default().await;
    w.login("alice").await;
    let mode = std::fs::metadata(w.agent.token_file())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let cfg_mode = std::fs::metadata(w.agent.config_file())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(cfg_mode, 0o600);
    assert!(w.agent.log().contains("token store is a plain file"));
}

#[tokio::test]
async fn a_stale_socket_is_replaced_and_a_live_agent_is_not() {
    let mut a = Agent::start(AgentOptions::default()).await;
    // A second agent for the same user is refused, whatever its socket; the first keeps serving.
    let elsewhere = tempfile::tempdir().unwrap();
    for socket in [None, Some(elsewhere.path().join("agent.sock"))] {
        let mut cmd = a.regentd_command();
        if let Some(s) = &socket {
            cmd.arg("--socket").arg(s);
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!(
                "another regentd (pid {}) is already running for this user, serving on {}",
                a.pid(),
                a.socket.display()
            )),
            "{err}"
        );
    }
    assert!(a.client().health().await.is_ok());
    // kill -9 leaves the socket file behind; a new agent replaces it.
    a.kill9();
    assert!(a.socket.exists());
    a.restart_after_kill9().await;
    assert!(a.client().health().await.is_ok());
}

#[tokio::test]
async fn an_unreachable_agent_is_exit_3_with_the_socket_named() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("none.sock");
    let out = std::process::Command::new(regent_tests::bin("regent"))
        .args(["--socket", &sock.display().to_string(), "token"])
        .env("REGENT_NO_AUTOSTART", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&sock.display().to_string()), "{err}");
    // Usage errors are exit 2.
    let out = std::process::Command::new(regent_tests::bin("regent"))
        .args(["token", "--min-valid", "soon"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test]
async fn logout_revokes_at_the_idp_and_deletes_the_tokens() {
    let w = World::default().await;
    w.login("alice").await;
    let at = w.token(&[]);
    let rt = w.agent.stored_refresh_token().unwrap();
    assert!(w.idp.is_active(&rt).await);
    let out = w.agent.regent(&["logout", "corp"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("revoked"), "{}", out.stdout);
    assert!(
        !w.idp.is_active(&rt).await,
        "the IdP still accepts the refresh token"
    );
    assert!(
        !w.idp.is_active(&at).await,
        "revoking the grant ends its access token too"
    );
    assert!(w.agent.stored().is_empty());
    assert_eq!(w.agent.regent(&["token"]).code, 4);
    let (s, v) = raw(&w.agent, "POST", "/v1/logout", b"").await;
    assert_eq!(s, 200);
    assert_eq!(
        v,
        json!({"revoked": false, "deleted": false, "revocation": "not_needed", "logged_out": ["corp"]})
    );
    let out = w.agent.regent(&["logout", "corp"]);
    assert_eq!(out.stdout.trim(), "Not logged in to corp; nothing to do.");
}

#[tokio::test]
async fn removing_a_registry_deletes_its_tokens() {
    let w = World::default().await;
    w.login("alice").await;
    assert_eq!(w.agent.stored().len(), 1);
    let out = w.agent.regent(&["registry", "remove", "corp"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(w.agent.stored().is_empty());
    let (s, v) = raw(&w.agent, "DELETE", "/v1/registries/corp", b"").await;
    assert_eq!((s, code(&v)), (404, "unknown_registry"));
    let out = w.agent.regent(&["registry", "list"]);
    assert!(out.stdout.contains("No registries"), "{}", out.stdout);
}
