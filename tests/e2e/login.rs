//! Device login through the CLI and the API.

use crate::World;
use regent_proto::{LoginFlow, LoginRequest, LoginState};
use regent_tests::forms;
use std::io::{BufRead, BufReader};
use std::process::Stdio;

#[tokio::test]
async fn device_login_through_the_cli_end_to_end() {
    let w = World::default().await;
    // Not logged in yet: exit 4 and the command to run.
    let out = w.agent.regent(&["token"]);
    assert_eq!(out.code, 4, "{out:?}");
    assert!(out.stderr.contains("regent login corp"), "{}", out.stderr);

    let mut child = w
        .agent
        .regent_command(&["login", "--device", "corp"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read the instructions the user would read.
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let (mut uri, mut code) = (None, None);
    let mut line = String::new();
    while code.is_none() {
        line.clear();
        assert!(
            err.read_line(&mut line).unwrap() > 0,
            "regent login printed no code"
        );
        let t = line.trim();
        if t.starts_with("http://") {
            uri = Some(t.to_string());
        }
        if let Some(c) = t.strip_prefix("and enter the code:") {
            code = Some(c.trim().to_string());
        }
    }
    forms::approve_device(&uri.unwrap(), &code.unwrap(), "alice")
        .await
        .unwrap();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert_eq!(stdout.trim(), "Logged in to corp as alice.");

    let token = w.token(&[]);
    assert!(
        w.idp.is_active(&token).await,
        "the IdP knows the token it issued"
    );
    let status = w.status();
    let auth = &status["registries"][0]["auth"];
    assert_eq!(auth["status"], "authenticated");
    assert_eq!(auth["has_refresh_token"], true);
    assert_eq!(auth["persisted"], true);
    assert_eq!(auth["account"], "alice");
    assert_eq!(status["agent"]["store"], "file");
}

/// Ctrl-C, SIGTERM and SIGHUP each cancel a waiting `regent login` at the
/// agent (so its callback port and polling end), with exit 128 + the signal.
#[tokio::test]
async fn a_signal_cancels_the_waiting_login_at_the_agent() {
    let w = World::default().await;
    for (n, (sig, name, code)) in [
        (libc::SIGINT, "Ctrl-C", 130),
        (libc::SIGTERM, "SIGTERM", 143),
        (libc::SIGHUP, "SIGHUP", 129),
    ]
    .into_iter()
    .enumerate()
    {
        let mut child = w
            .agent
            .regent_command(&["login", "--device"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        while !line.contains("enter the code") {
            line.clear();
            assert!(err.read_line(&mut line).unwrap() > 0);
        }
        regent_tests::idp::signal(child.id(), sig);
        let out = tokio::task::spawn_blocking(move || child.wait_with_output())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(out.status.code(), Some(code), "{name}");
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
        assert!(
            rest.contains(&format!("login to corp cancelled ({name})")),
            "{rest}"
        );
        // The CLI cancelled it at the agent before it exited.
        assert_eq!(
            w.agent.log().matches("login cancelled: by request").count(),
            n + 1,
            "{name}: the login was left pending at the agent"
        );
    }
}

#[tokio::test]
async fn cancel_and_long_poll_through_the_api() {
    let w = World::default().await;
    let client = w.agent.client();
    let login = client
        .login(&LoginRequest {
            registry: None,
            flow: LoginFlow::Device,
            force: false,
        })
        .await
        .unwrap();
    assert_eq!(login.flow, LoginFlow::Device);
    assert_eq!(login.interval, Some(1));
    assert!(login.user_code.is_some());
    // A long poll without a change answers pending; a cancel ends one at once.
    let s = client.login_status(&login.id, 0).await.unwrap();
    assert_eq!(s.status, LoginState::Pending);
    let poll = {
        let client = client.clone();
        let id = login.id.clone();
        tokio::spawn(async move { client.login_status(&id, 60).await })
    };
    client.cancel_login(&login.id).await.unwrap();
    // Woken by the change, not by its 60 s: the answer is the cancel, not "pending".
    let s = poll.await.unwrap().unwrap();
    assert_eq!(s.status, LoginState::Failed);
    assert!(s.error.unwrap().contains("cancelled"));
}

/// A second login of the same grant and flow joins the pending one (one
/// login, one outcome for both callers; a cancel by one of them leaves it to
/// the other); a login of another flow replaces it.
#[tokio::test]
async fn a_second_login_joins_a_pending_one_and_another_flow_replaces_it() {
    let w = World::default().await;
    let client = w.agent.client();
    let req = |flow| LoginRequest {
        registry: Some("corp".into()),
        flow,
        force: false,
    };
    let first = client.login(&req(LoginFlow::Device)).await.unwrap();
    let second = client.login(&req(LoginFlow::Device)).await.unwrap();
    assert_eq!(second.id, first.id, "joined, not started again");
    assert!(second.joined && !first.joined);
    assert_eq!(second.user_code, first.user_code);
    // One caller lets go: the login stays for the other.
    client.cancel_login(&first.id).await.unwrap();
    let s = client.login_status(&first.id, 0).await.unwrap();
    assert_eq!(s.status, LoginState::Pending, "{s:?}");
    // A browser login replaces the device login.
    let browser = client.login(&req(LoginFlow::Browser)).await.unwrap();
    assert_ne!(browser.id, first.id);
    let s = client.login_status(&first.id, 0).await.unwrap();
    assert_eq!(s.status, LoginState::Failed);
    assert!(s.error.unwrap().contains("replaced by a browser login"));
    let again = client.login(&req(LoginFlow::Device)).await.unwrap();
    forms::approve_device(
        again.verification_uri.as_deref().unwrap(),
        again.user_code.as_deref().unwrap(),
        "bob",
    )
    .await
    .unwrap();
    let s = client.login_status(&again.id, 30).await.unwrap();
    assert_eq!(s.status, LoginState::Succeeded);
    assert_eq!(s.account.as_deref(), Some("bob"));
    // Logged in: a login without force starts nothing, and says so.
    let already = client.login(&req(LoginFlow::Device)).await.unwrap();
    assert!(already.already, "{already:?}");
    assert_eq!(already.account.as_deref(), Some("bob"));
    let s = client.login_status(&already.id, 0).await.unwrap();
    assert_eq!(s.status, LoginState::Succeeded);
    let out = w.agent.regent(&["login", "corp", "--device"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("Already logged in to corp as bob"),
        "{}",
        out.stdout
    );
}

/// A `slow_down` from the real IdP does not end the login (the wait it asks
/// for is checked on tokio's clock in the in-process tier).
#[tokio::test]
async fn a_device_login_goes_on_after_slow_down() {
    let w = World::default().await;
    let client = w.agent.client();
    w.idp
        .fault(serde_json::json!({"mode": "slow_down", "times": 1}))
        .await;
    let login = client
        .login(&LoginRequest {
            registry: None,
            flow: LoginFlow::Device,
            force: false,
        })
        .await
        .unwrap();
    forms::approve_device(
        login.verification_uri.as_deref().unwrap(),
        login.user_code.as_deref().unwrap(),
        "alice",
    )
    .await
    .unwrap();
    let s = client.login_status(&login.id, 30).await.unwrap();
    assert_eq!(s.status, LoginState::Succeeded);
    let polls = w.idp.counts().await["token"]["urn:ietf:params:oauth:grant-type:device_code"]
        .as_u64()
        .unwrap();
    assert!(polls >= 2, "polls: {polls}");
}

#[tokio::test]
async fn a_login_when_already_logged_in_starts_nothing_unless_forced() {
    let w = World::default().await;
    w.login("alice").await;
    let out = w.agent.regent(&["login", "corp", "--device"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout.trim(),
        "Already logged in to corp as alice; nothing to do. Log in again with: regent login corp --force"
    );
    assert_eq!(
        w.agent.log().matches("login started").count(),
        1,
        "a login was started"
    );
    // --force starts one.
    let mut child = w
        .agent
        .regent_command(&["login", "corp", "--device", "--force"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("enter the code") {
        line.clear();
        assert!(err.read_line(&mut line).unwrap() > 0);
    }
    assert_eq!(w.agent.log().matches("login started").count(), 2);
    regent_tests::idp::signal(child.id(), libc::SIGINT);
    let _ = child.wait();
}

/// A `$BROWSER` that fails (`BROWSER=false`, a missing program) is a failure
/// to open, said as such, with the URL to open by hand; never "Opened".
#[tokio::test]
async fn a_browser_command_that_fails_is_not_reported_as_opened() {
    let w = World::default().await;
    for browser in ["false", "/nonexistent/browser"] {
        let mut child = w
            .agent
            .regent_command(&["login", "corp"])
            .env("BROWSER", browser)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let mut seen = String::new();
        while !seen.contains("/auth?") {
            let mut line = String::new();
            assert!(err.read_line(&mut line).unwrap() > 0, "{seen}");
            seen.push_str(&line);
        }
        regent_tests::idp::signal(child.id(), libc::SIGTERM);
        let out = tokio::task::spawn_blocking(move || child.wait_with_output())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(out.status.code(), Some(143));
        assert!(
            seen.contains("Could not open a browser"),
            "{browser}: {seen}"
        );
        assert!(
            seen.contains("open this URL in a browser"),
            "{browser}: {seen}"
        );
        assert!(!seen.contains("Opened your browser"), "{browser}: {seen}");
    }
}

/// `regent status` shows the logins waiting for the user, and `regent` alone
/// prints the short usage (exit 2) rather than every command's help.
#[tokio::test]
async fn status_shows_waiting_logins_and_bare_regent_is_short() {
    let w = World::default().await;
    let login = w
        .agent
        .client()
        .login(&LoginRequest {
            registry: Some("corp".into()),
            flow: LoginFlow::Device,
            force: false,
        })
        .await
        .unwrap();
    let out = w.agent.regent(&["status"]);
    assert!(
        out.stdout.contains("logins waiting for you: corp"),
        "{}",
        out.stdout
    );
    let v: serde_json::Value =
        serde_json::from_str(&w.agent.regent(&["status", "--json"]).stdout).unwrap();
    assert_eq!(v["agent"]["pending_logins"][0]["registry"], "corp");
    w.agent.client().cancel_login(&login.id).await.unwrap();
    let out = w.agent.regent(&["status"]);
    assert!(!out.stdout.contains("logins waiting"), "{}", out.stdout);

    // Asked for nothing, the overview is the answer: stdout, exit 0.
    let out = w.agent.regent(&[]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("regent login NAME"), "{}", out.stdout);
    assert!(out.stdout.lines().count() < 20, "{}", out.stdout);
}

/// An enterprise IdP logs in and out like any resource: a second login says
/// it is not needed, and a nameless logout means the IdP when it is alone.
#[tokio::test]
async fn an_enterprise_idp_logs_in_and_out_like_any_resource() {
    let idp = regent_tests::Idp::start(regent_tests::IdpOptions::default());
    let agent = regent_tests::Agent::start(regent_tests::AgentOptions::default()).await;
    let out = agent.regent(&[
        "idp",
        "add",
        "okta",
        "--issuer",
        &idp.issuer,
        "--client-id",
        regent_tests::idp::CLIENT_ID,
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    crate::device_login(&agent, Some("okta"), "alice").await;
    let out = agent.regent(&["login", "okta", "--device"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("Already logged in to okta as alice"),
        "{}",
        out.stdout
    );
    let out = agent.regent(&["logout", "okta"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("Logged out of okta"), "{}", out.stdout);
    let st = agent.client().idps().await.unwrap();
    assert_eq!(
        st[0].auth.as_ref().unwrap().status,
        regent_proto::AuthState::AuthRequired
    );
}
