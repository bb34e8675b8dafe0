//! regent as other tools' credential helper, run as those tools run it:
//! Claude Code's `headersHelper` (its environment, no stdin, a 10 s limit,
//! a flat JSON object of strings) and real git's credential helper protocol
//! (`git credential fill` / `reject`, with and without `capability[]=authtype`).

use regent_tests::mcp::McpServers;
use regent_tests::{Agent, AgentOptions, Idp, IdpOptions};
use serde_json::{json, Value};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `cmd` as a tool with a deadline runs it: killed, and the test
/// failed, if it has not finished by then.
fn within(mut cmd: Command, limit: Duration, stdin: Option<&str>) -> std::process::Output {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("it starts");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("it did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn headers_for_claude_code_from_its_environment() {
    let idp = Idp::start(IdpOptions::default());
    let servers = McpServers::start_dual(&idp.issuer, &["d1", "d2"]);
    let agent = Agent::start(AgentOptions::default()).await;
    // d2 with a login of its own (else one login at the AS serves both).
    for (name, own) in [("d1", None), ("d2", Some("--own-login"))] {
        let mut args = vec!["mcp", "add", name, servers.url(name)];
        args.extend(own);
        let out = agent.regent(&args);
        assert_eq!(out.code, 0, "{}", out.stderr);
    }
    crate::device_login(&agent, Some("d1"), "alice").await;
    // As Claude Code runs it: its two variables, no stdin, 10 s.
    let mut cmd = agent.regent_command(&["headers"]);
    cmd.env("CLAUDE_CODE_MCP_SERVER_NAME", "corp-wiki")
        .env("CLAUDE_CODE_MCP_SERVER_URL", servers.url("d1"));
    let out = within(cmd, Duration::from_secs(10), None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let headers: Value = serde_json::from_slice(&out.stdout).unwrap();
    // The documented schema: one flat object of header names to strings.
    let obj = headers.as_object().expect("a JSON object");
    assert!(obj.values().all(Value::is_string), "{headers}");
    let auth = obj["Authorization"].as_str().unwrap();
    assert!(auth.starts_with("Bearer "), "{auth}");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The server takes it.
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "claude-code", "version": "2"}}});
    let resp = reqwest::Client::new()
        .post(servers.url("d1"))
        .header("authorization", auth)
        .header("accept", "application/json, text/event-stream")
        .json(&init)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // Not logged in there: no browser, exit 4, the login to run on stderr.
    let mut cmd = agent.regent_command(&["headers"]);
    cmd.env("CLAUDE_CODE_MCP_SERVER_URL", servers.url("d2"));
    let out = within(cmd, Duration::from_secs(10), None);
    assert_eq!(out.status.code(), Some(4));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("regent login d2"), "{err}");
    assert!(out.stdout.is_empty());
}

/// `git credential fill` / `reject` through `credential.helper = !regent
/// git-credential`, as git runs helpers.
fn git(agent: &Agent, args: &[&str], input: &str) -> std::process::Output {
    let helper = format!("!{} git-credential", regent_tests::bin("regent").display());
    let mut cmd = Command::new("git");
    cmd.envs(agent.env())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_TERMINAL_PROMPT", "0")
        .args(["-c", "credential.helper=", "-c"])
        .arg(format!("credential.helper={helper}"))
        .args(["-c", "credential.useHttpPath=true"])
        .args(args);
    within(cmd, Duration::from_secs(30), Some(input))
}

fn fields(out: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(out)
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, v)| (k.into(), v.into())))
        .collect()
}

fn field<'a>(f: &'a [(String, String)], k: &str) -> Option<&'a str> {
    f.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn real_git_gets_the_token_of_the_resource_covering_its_url() {
    let idp = Idp::start(IdpOptions::default());
    let agent = Agent::start(AgentOptions::default()).await;
    for (name, url) in [
        ("forge", "https://git.corp.example"),
        ("team", "https://git.corp.example/team"),
    ] {
        let out = agent.regent(&[
            "registry",
            "add",
            name,
            url,
            "--issuer",
            &idp.issuer,
            "--client-id",
            regent_tests::idp::CLIENT_ID,
            "--own-login",
        ]);
        assert_eq!(out.code, 0, "{}", out.stderr);
    }
    crate::device_login(&agent, Some("team"), "alice").await;

    // git 2.46+: Bearer, when git offers it.
    let out = git(
        &agent,
        &["credential", "fill"],
        "capability[]=authtype\nprotocol=https\nhost=git.corp.example\npath=team/app.git\n\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let f = fields(&out.stdout);
    assert_eq!(field(&f, "authtype"), Some("Bearer"), "{f:?}");
    let token = field(&f, "credential").unwrap().to_string();
    assert!(idp.is_active(&token).await);
    // The longest prefix: team's token, not forge's (forge has no login).
    let team = agent.regent(&["token", "team"]).stdout.trim().to_string();
    assert_eq!(token, team);

    // Older gits: the token as the password.
    let out = git(
        &agent,
        &["credential", "fill"],
        "protocol=https\nhost=git.corp.example\npath=team/app.git\n\n",
    );
    let f = fields(&out.stdout);
    assert_eq!(field(&f, "username"), Some("x-access-token"), "{f:?}");
    assert_eq!(field(&f, "password"), Some(token.as_str()));

    // git saw it refused: `reject` drops it at the agent, the next fill
    // has a fresh one.
    let out = git(
        &agent,
        &["credential", "reject"],
        &format!("protocol=https\nhost=git.corp.example\npath=team/app.git\nusername=x-access-token\npassword={token}\n\n"),
    );
    assert!(out.status.success());
    let out = git(
        &agent,
        &["credential", "fill"],
        "capability[]=authtype\nprotocol=https\nhost=git.corp.example\npath=team/app.git\n\n",
    );
    let fresh = field(&fields(&out.stdout), "credential")
        .unwrap()
        .to_string();
    assert_ne!(fresh, token, "the refused token came back");

    // A covering resource without a login: no credential from regent, the
    // login to run on stderr (git then fails without a terminal to ask).
    let out = git(
        &agent,
        &["credential", "fill"],
        "capability[]=authtype\nprotocol=https\nhost=git.corp.example\npath=other/lib.git\n\n",
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("regent login forge"), "{err}");
    // Not ours at all: regent says nothing.
    let out = git(
        &agent,
        &["credential", "fill"],
        "protocol=https\nhost=elsewhere.example\npath=x.git\n\n",
    );
    assert!(!out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("regent"));
}

/// kubectl's exec plugin and the Bazel/Buck2 credential helper, run as
/// those tools run them (kubectl: `KUBERNETES_EXEC_INFO` with the cluster,
/// no stdin; Bazel: `get` with `{"uri"}` on stdin), answering in their
/// documented shapes.
#[tokio::test]
async fn kube_and_bazel_helpers_answer_in_their_documented_shapes() {
    let idp = Idp::start(IdpOptions::default());
    let agent = Agent::start(AgentOptions::default()).await;
    let server = "https://k8s.corp.example:6443";
    let out = agent.regent(&[
        "registry",
        "add",
        "cluster",
        server,
        "--issuer",
        &idp.issuer,
        "--client-id",
        regent_tests::idp::CLIENT_ID,
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    crate::device_login(&agent, Some("cluster"), "alice").await;
    let rfc3339 = |v: &Value| {
        time::OffsetDateTime::parse(
            v.as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap_or_else(|e| panic!("{v} is not RFC 3339: {e}"))
    };

    let mut cmd = agent.regent_command(&["kube-credential"]);
    cmd.env(
        "KUBERNETES_EXEC_INFO",
        json!({"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
               "spec": {"interactive": false, "cluster": {"server": server}}})
        .to_string(),
    );
    let out = within(cmd, Duration::from_secs(10), None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cred: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        cred["apiVersion"], "client.authentication.k8s.io/v1",
        "{cred}"
    );
    assert_eq!(cred["kind"], "ExecCredential");
    let token = cred["status"]["token"].as_str().unwrap();
    assert!(idp.is_active(token).await);
    assert!(rfc3339(&cred["status"]["expirationTimestamp"]) > time::OffsetDateTime::now_utc());

    let helper = || agent.regent_command(&["credential-helper", "get"]);
    let uri = format!("{server}/api/v1/namespaces/default/pods");
    let out = within(
        helper(),
        Duration::from_secs(10),
        Some(&json!({ "uri": uri }).to_string()),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        got["headers"]["Authorization"],
        json!([format!("Bearer {token}")]),
        "{got}"
    );
    assert!(rfc3339(&got["expires"]) > time::OffsetDateTime::now_utc());
    // A URI no resource covers: no headers, and the build goes on.
    let out = within(
        helper(),
        Duration::from_secs(10),
        Some(r#"{"uri": "https://elsewhere.example/x"}"#),
    );
    assert!(out.status.success());
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got, json!({"headers": {}}));
}
