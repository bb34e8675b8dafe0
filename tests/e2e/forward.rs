//! Agent forwarding: the restricted socket (tokens only, forwardable
//! resources only, confirmation per session), and `regent ssh` to a real
//! sshd in a network namespace of the test's own, with a second user as the
//! remote side.

use crate::World;
use regent_client::{AgentClient, ClientError};
use regent_proto::{ErrorCode, ForwardSession, LoginFlow, LoginRequest, PutRegistry, TokenRequest};
use regent_tests::ssh::{text, Sshd, SshdOptions};
use std::time::Duration;

fn token_req(name: &str) -> TokenRequest {
    TokenRequest {
        url: None,
        registry: Some(name.into()),
        min_valid_secs: None,
        dpop: None,
    }
}

fn code(e: &ClientError) -> Option<ErrorCode> {
    e.code()
}

#[tokio::test]
async fn the_forwarding_socket_lends_tokens_of_forwardable_resources_only() {
    let w = World::default().await;
    w.login("alice").await;
    let tok = w.agent.home().join("static-token");
    std::fs::write(&tok, "static-secret\n").unwrap();
    let out = w.agent.regent(&[
        "registry",
        "add",
        "other",
        "https://other.example",
        "--token-file",
        tok.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    // Off by default: no socket until something is forwardable.
    assert!(w
        .agent
        .client()
        .health()
        .await
        .unwrap()
        .forward_socket
        .is_none());
    let out = w.agent.regent(&["forward", "allow", "corp"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let path = w.agent.forward_socket().await;
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let fwd = AgentClient::new(path.clone());
    assert!(fwd.health().await.unwrap().forwarded);
    let t = fwd.token(&token_req("corp")).await.unwrap();
    assert!(w.idp.is_active(&t.access_token).await);
    let e = fwd.token(&token_req("other")).await.unwrap_err();
    assert_eq!(code(&e), Some(ErrorCode::Forbidden), "{e}");
    assert!(e.to_string().contains("regent forward allow other"), "{e}");
    // corp2 shares corp's login but is not forwardable: the forwarded side
    // sees corp alone, and no name of the other (not even in shared_with).
    let out = w.agent.regent(&[
        "registry",
        "add",
        "corp2",
        "https://corp2.example",
        "--issuer",
        &w.idp.issuer,
        "--client-id",
        regent_tests::idp::CLIENT_ID,
        "--share-login",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let listed = fwd.registries().await.unwrap();
    assert_eq!(
        listed.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ["corp"]
    );
    assert!(
        listed[0].auth.as_ref().unwrap().shared_with.is_empty(),
        "{listed:?}"
    );
    let local = w.agent.client().registries().await.unwrap();
    assert_eq!(local[0].auth.as_ref().unwrap().shared_with, ["corp2"]);
    // A refusal reported over forwarding drops the token; a second one of
    // the same request is the laptop's to deal with, not a loop.
    let refused = |attempt| regent_proto::ChallengeRequest {
        registry: "corp".into(),
        status: 401,
        www_authenticate: vec!["Bearer error=\"invalid_token\"".into()],
        access_token: Some(t.access_token.clone()),
        dpop_nonce: None,
        attempt,
    };
    let a = fwd.challenge(&refused(1)).await.unwrap();
    assert_eq!(a.next, regent_proto::Next::Retry, "{a:?}");
    let a = fwd.challenge(&refused(2)).await.unwrap();
    assert_eq!(a.next, regent_proto::Next::Fail, "{a:?}");
    assert!(a.message.contains("machine where the agent runs"), "{a:?}");
    // Nothing but tokens: no change, no login, no logout.
    let e = fwd
        .put_registry(
            "x",
            &PutRegistry {
                url: "https://x.example".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(code(&e), Some(ErrorCode::Forbidden), "{e}");
    let e = fwd
        .login(&LoginRequest {
            registry: Some("corp".into()),
            flow: LoginFlow::Device,
            force: false,
        })
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("machine where the agent runs"),
        "{e}"
    );
    assert_eq!(w.agent.client().registries().await.unwrap().len(), 3);
    // The CLI over it: a token, and a login refused with where to do it.
    let socket = path.to_str().unwrap();
    let out = w.agent.regent(&["token", "corp", "--socket", socket]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = w
        .agent
        .regent(&["login", "corp", "--force", "--socket", socket]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("machine where the agent runs"),
        "{}",
        out.stderr
    );
    // What was lent shows at home.
    let out = w.agent.regent(&["forward", "list"]);
    assert!(
        out.stdout.contains("corp") && out.stdout.contains("to ssh -R"),
        "{}",
        out.stdout
    );
    let out = w.agent.regent(&["status"]);
    assert!(out.stdout.contains("forwardable, lent"), "{}", out.stdout);

    // With --confirm, only a session the user said yes to gets it.
    assert_eq!(
        w.agent
            .regent(&["forward", "allow", "corp", "--confirm"])
            .code,
        0
    );
    let e = fwd.token(&token_req("corp")).await.unwrap_err();
    assert!(e.to_string().contains("sessions you said yes to"), "{e}");
    // This test process is the forwarded connection's peer here.
    w.agent
        .client()
        .open_session(&ForwardSession {
            ssh_pid: std::process::id(),
            host: "box".into(),
            approved: vec!["corp".into()],
        })
        .await
        .unwrap();
    assert!(fwd.token(&token_req("corp")).await.is_ok());
    w.agent
        .client()
        .close_session(std::process::id())
        .await
        .unwrap();
    assert!(fwd.token(&token_req("corp")).await.is_err());

    assert_eq!(w.agent.regent(&["forward", "deny", "corp"]).code, 0);
    let e = fwd.token(&token_req("corp")).await.unwrap_err();
    assert!(e.to_string().contains("not forwardable"), "{e}");
}

fn sshd(opts: SshdOptions) -> Option<Sshd> {
    match Sshd::start(opts) {
        Ok(s) => Some(s),
        Err(why) => {
            regent_tests::missing("an sshd in a network namespace", &why);
            None
        }
    }
}

/// A World logged in as alice whose `corp` is lent over `regent ssh`.
async fn lent_world() -> World {
    let w = World::default().await;
    w.login("alice").await;
    assert_eq!(w.agent.regent(&["forward", "allow", "corp"]).code, 0);
    w.agent.forward_socket().await;
    w
}

/// A real sshd, a lent World, and the path of the `regent` to run there;
/// `None` where the machine cannot run the sshd (said why).
async fn lent_session() -> Option<(Sshd, World, String)> {
    let s = sshd(SshdOptions::default())?;
    let w = lent_world().await;
    Some((s, w, regent_tests::bin("regent").display().to_string()))
}

/// `regent ssh` to `s`, running `remote` there: its exit code, stdout, stderr.
fn over_ssh(w: &World, s: &Sshd, remote: &[&str]) -> (i32, String, String) {
    let mut args = vec!["ssh".to_string()];
    args.extend(s.ssh_args());
    args.push("--".into());
    args.extend(remote.iter().map(|a| a.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    text(&w.agent.regent_command(&args).output().unwrap())
}

/// `regent ssh` to a real sshd: the remote side (another user, no agent, no
/// keyring, no login) gets tokens through the forward; a change or a login
/// there is refused; the socket goes with the session; a gone forward is
/// exit 3 naming it, and starts no agent there.
#[tokio::test]
async fn regent_ssh_lends_tokens_to_a_real_sshd_session() {
    let Some((s, w, regent)) = lent_session().await else {
        return;
    };
    let over_ssh = |remote: &[&str]| over_ssh(&w, &s, remote);
    let (code, out, err) = over_ssh(&[&regent, "token", "corp"]);
    assert_eq!(code, 0, "{err}\nsshd: {}", s.log());
    assert!(
        w.idp.is_active(out.trim()).await,
        "the remote token is live at the IdP"
    );
    assert!(
        s.forwarded_sockets().is_empty(),
        "the session's socket and its relay's are removed"
    );
    let relay = std::process::Command::new("pgrep")
        .args(["-u", &s.user, "-x", "regent"])
        .output()
        .unwrap();
    assert!(!relay.status.success(), "the relay outlived the session");

    let (code, _, err) = over_ssh(&[
        &regent,
        "registry",
        "add",
        "x",
        "https://x.example",
        "--no-auth",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("only tokens are lent"), "{err}");
    let (code, _, err) = over_ssh(&[&regent, "login", "corp", "--force"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("machine where the agent runs"), "{err}");
    assert!(s.forwarded_sockets().is_empty());
    let out = w.agent.regent(&["forward", "list"]);
    assert!(
        out.stdout.contains(&format!("to {}@{}", s.user, s.addr)),
        "{}",
        out.stdout
    );

    // A forward whose session is gone: the socket sshd would have left behind.
    let dead = format!(
        "/tmp/{}dead{}.sock",
        regent_client::locate::FORWARD_PREFIX,
        s.uid
    );
    let (code, _, err) = text(
        &s.as_user("python3")
            .args([
                "-c",
                &format!("import os, socket; x=socket.socket(socket.AF_UNIX); x.bind({dead:?}); os.chmod({dead:?}, 0o600)"),
            ])
            .output()
            .unwrap(),
    );
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = text(&s.as_user(&regent).args(["token", "corp"]).output().unwrap());
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("the agent forwarded to this machine"), "{err}");
    let local = std::process::Command::new("pgrep")
        .args(["-u", &s.user, "regentd"])
        .output()
        .unwrap();
    assert!(!local.status.success(), "a local agent was started instead");
}

/// Every credential helper works on the remote side of `regent ssh`, as
/// its tool runs it there (stdin where the protocol has one): the forward
/// lends the lookup of a URL and the token, and the same token comes back
/// in each protocol's shape.
#[tokio::test]
async fn the_credential_helpers_work_over_regent_ssh() {
    let Some((s, w, r)) = lent_session().await else {
        return;
    };
    let host = crate::REGISTRY_URL.trim_start_matches("https://");
    // One remote shell runs them all, one answer per line (git's: several).
    let script = [
        format!("{r} headers corp"),
        format!("{r} kube-credential corp"),
        format!(
            "echo '{{\"uri\": \"{}/v0.1/servers\"}}' | {r} credential-helper get",
            crate::REGISTRY_URL
        ),
        format!(
            "printf 'capability[]=authtype\\nprotocol=https\\nhost={host}\\n\\n' | {r} git-credential get"
        ),
    ]
    .join(" && ");
    let (code, out, err) = over_ssh(&w, &s, &[&script]);
    assert_eq!(code, 0, "{err}\nsshd: {}", s.log());
    let lines: Vec<&str> = out.lines().collect();
    let json = |i: usize| -> serde_json::Value {
        serde_json::from_str(lines[i]).unwrap_or_else(|e| panic!("{}: {e}", lines[i]))
    };
    let bearer = json(0)["Authorization"].as_str().unwrap().to_string();
    let token = bearer.strip_prefix("Bearer ").unwrap();
    assert!(w.idp.is_active(token).await, "the remote token is live");
    assert_eq!(json(1)["status"]["token"], token, "{out}");
    assert_eq!(
        json(2)["headers"]["Authorization"][0],
        bearer.as_str(),
        "{out}"
    );
    assert!(
        lines.contains(&format!("credential={token}").as_str()),
        "{out}"
    );
    assert!(lines.contains(&"authtype=Bearer"), "{out}");
    assert!(!err.contains(token), "a token on stderr: {err}");
}

/// On the remote side, the relay `regent ssh` starts keeps one connection
/// to the agent for every helper call, and gives a token it was just given
/// again: four calls, one forwarded connection (one ssh channel) and two
/// tokens lent at the agent (one per way of asking). A relay killed without its cleanup costs
/// nothing but itself: the next call goes to the forward, and the dead
/// relay's socket is removed.
#[tokio::test]
async fn remote_helpers_share_one_channel_through_the_relay() {
    let Some((s, w, r)) = lent_session().await else {
        return;
    };
    let uid = s.uid;
    // Waits (bounded) for the relay's socket, as the first helper call of a
    // session may come before it and use the forward itself.
    let script = format!(
        r#"set -e
i=0
until relay=$(find /tmp -maxdepth 1 -user {uid} -name 'regent-fwd-*.relay' -type s) && [ -n "$relay" ]; do
  i=$((i+1)); [ $i -lt 1000 ] || {{ echo "no relay started" >&2; exit 9; }}; sleep 0.01
done
{r} token corp; {r} token corp; {r} headers corp; {r} headers corp >/dev/null
pkill -KILL -u {uid} -x regent
while pgrep -u {uid} -x regent >/dev/null; do sleep 0.01; done
{r} token corp
if [ -e "$relay" ]; then echo "the dead relay's socket stayed"; fi
"#
    );
    let (code, out, err) = over_ssh(&w, &s, &[&script]);
    assert_eq!(code, 0, "{err}\nsshd: {}", s.log());
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(w.idp.is_active(lines[0]).await, "the relayed token is live");
    assert_eq!(lines[1], lines[0], "{out}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(lines[2]).unwrap()["Authorization"],
        format!("Bearer {}", lines[0]),
        "{out}"
    );
    assert_eq!(lines[3], lines[0], "after the relay died: {out}");
    assert!(!err.contains(lines[0]), "a token on stderr: {err}");
    // The relay's one connection for four calls, and the last call's own;
    // the second `token corp` and the second `headers corp` were the relay's
    // to answer.
    let log = w.agent.log();
    assert_eq!(log.matches("a forwarded connection").count(), 2, "{log}");
    assert_eq!(
        log.matches("lent a token over forwarding").count(),
        3,
        "{log}"
    );
    assert!(s.forwarded_sockets().is_empty());
}

/// `regent ssh` to a real sshd with a DPoP-bound MCP server: the remote side
/// asks for the headers of one request and gets a proof the agent made here
/// (the key never crosses); the headers work once, and the token alone,
/// sent as a Bearer token, is refused.
#[tokio::test]
async fn regent_ssh_gets_dpop_proofs_from_the_agent() {
    // No regent on the remote side's paths, so no relay: the remote regent
    // (run by its full path) asks the forward itself.
    let Some(s) = sshd(SshdOptions {
        regent_installed: false,
        ..Default::default()
    }) else {
        return;
    };
    let idp = regent_tests::Idp::start(regent_tests::IdpOptions::default());
    let servers = regent_tests::mcp::McpServers::start_dual(&idp.issuer, &["dpop1"]);
    let agent = regent_tests::Agent::start(regent_tests::AgentOptions::default()).await;
    let url = servers.url("dpop1");
    assert_eq!(agent.regent(&["mcp", "add", "dpop1", url]).code, 0);
    crate::device_login(&agent, Some("dpop1"), "alice").await;
    assert_eq!(agent.regent(&["forward", "allow", "dpop1"]).code, 0);
    agent.forward_socket().await;
    let regent = regent_tests::bin("regent").display().to_string();
    let mut args = vec!["ssh".to_string()];
    args.extend(s.ssh_args());
    args.push("--".into());
    for a in [regent.as_str(), "token", "dpop1", "--dpop", "POST", url] {
        args.push(a.to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out, err) = text(&agent.regent_command(&args).output().unwrap());
    assert_eq!(code, 0, "{err}\nsshd: {}", s.log());
    let headers: Vec<(&str, &str)> = out.lines().map(|l| l.split_once(": ").unwrap()).collect();
    assert_eq!(headers[0].0, "Authorization", "{out}");
    assert!(headers[0].1.starts_with("DPoP "), "{out}");
    assert_eq!(headers[1].0, "DPoP", "{out}");

    let http = reqwest::Client::new();
    let init = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "remote", "version": "1"}}});
    let send = |auth: String, proof: Option<&str>| {
        let mut req = http
            .post(url)
            .header("authorization", auth)
            .header("accept", "application/json, text/event-stream")
            .json(&init);
        if let Some(p) = proof {
            req = req.header("dpop", p);
        }
        req.send()
    };
    let first = send(headers[0].1.to_string(), Some(headers[1].1))
        .await
        .unwrap();
    assert_eq!(first.status(), 200, "the remote side's headers work");
    let again = send(headers[0].1.to_string(), Some(headers[1].1))
        .await
        .unwrap();
    assert_eq!(again.status(), 401, "a proof was taken twice");
    let token = headers[0].1.trim_start_matches("DPoP ");
    let bare = send(format!("Bearer {token}"), None).await.unwrap();
    assert_eq!(
        bare.status(),
        401,
        "the bound token was taken without a proof"
    );
    assert!(agent.log().contains("lent a token over forwarding"));
}

/// A server that refuses stream-local forwarding: said so, naming the setting.
#[tokio::test]
async fn a_refused_forward_is_explained() {
    let Some(s) = sshd(SshdOptions {
        allow_forwarding: false,
        ..Default::default()
    }) else {
        return;
    };
    let w = World::default().await;
    assert_eq!(w.agent.regent(&["forward", "allow", "corp"]).code, 0);
    w.agent.forward_socket().await;
    let mut args = vec!["ssh".to_string()];
    args.extend(s.ssh_args());
    args.extend(["--".into(), "true".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, _, err) = text(&w.agent.regent_command(&args).output().unwrap());
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("refused to forward the agent") && err.contains("AllowStreamLocalForwarding"),
        "{err}"
    );
}

/// Over the forwarding socket, `regent servers` reads a registry and
/// `regent mcp proxy` reaches an MCP server, with the lent tokens.
#[tokio::test]
async fn servers_and_mcp_proxy_work_over_the_forwarding_socket() {
    use regent_tests::registry::{Registry, RegistryOptions};
    let idp = regent_tests::Idp::start(regent_tests::IdpOptions::default());
    let reg = Registry::start(RegistryOptions {
        issuer: Some(idp.issuer.clone()),
        prm: true,
        ..Default::default()
    });
    let mcp = regent_tests::mcp::McpServers::start(&idp.issuer, &["s1"]);
    let agent = regent_tests::Agent::start(regent_tests::AgentOptions::default()).await;
    assert_eq!(agent.regent(&["registry", "add", "reg", &reg.url]).code, 0);
    assert_eq!(agent.regent(&["mcp", "add", "s1", mcp.url("s1")]).code, 0);
    for name in ["reg", "s1"] {
        let out = agent
            .regent_command(&["login", name])
            .env("BROWSER", regent_tests::bin("browser"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(agent.regent(&["forward", "allow", "reg", "s1"]).code, 0);
    let client = agent.client();
    let fwd =
        regent_tests::eventually("the forwarding socket", Duration::from_secs(10), || async {
            client.health().await.ok().and_then(|h| h.forward_socket)
        })
        .await;
    let socket = fwd.display().to_string();
    let out = agent.regent(&["servers", "reg", "--json", "--socket", &socket]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["servers"].as_array().unwrap().len(), 7);
    let mut p = regent_tests::mcp::Proxy::start(
        &agent,
        &["s1", "--no-login"],
        &[("REGENT_SOCKET", socket.clone())],
    );
    p.initialize().await;
    let who: serde_json::Value =
        serde_json::from_str(&p.call("whoami", serde_json::json!({})).await.unwrap()).unwrap();
    assert_eq!(who["aud"], mcp.url("s1"));
    let (code, err) = p.close().await;
    assert_eq!(code, Some(0), "{err}");
}
