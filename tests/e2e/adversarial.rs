//! Adversarial tests: crashes at random moments, socket abuse, IdP faults,
//! secrets in logs, ptrace. Bounded in time; figures they print go to
//! BENCHMARKS.md.

use crate::World;
use regent_proto::{ErrorCode, InvalidateRequest, TokenRequest};
use regent_tests::{AgentOptions, IdpOptions};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// kill -9 at random moments while clients take tokens and the IdP's
/// one-second tokens force a rotating refresh every half second. A restart
/// may need a login only when the kill landed inside the one window no agent
/// can close against an IdP without a reuse grace period: the refresh had
/// reached the IdP (which rotated the stored refresh token, or rotates it
/// later as the killed agent's request is processed, which then replays it),
/// and the agent had not stored the answer. The test tells that from the
/// IdP's record of rotations and replays, not from a bound on how often.
#[tokio::test]
async fn a_hundred_kill_9_at_random_moments() {
    let mut w = World::new(
        IdpOptions {
            access_ttl: 1,
            ..Default::default()
        },
        AgentOptions::default(),
    )
    .await;
    w.login("alice").await;
    let mut relogins = 0;
    // The refresh token each kill left in the store: the one a request of the
    // killed agent may have carried.
    let mut at_kill = std::collections::HashSet::new();
    for round in 0..100 {
        let client = w.agent.client();
        let load = tokio::spawn(async move {
            loop {
                let _ = client
                    .token(&TokenRequest {
                        url: None,
                        registry: None,
                        min_valid_secs: Some(0),
                        dpop: None,
                    })
                    .await;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        let wait = rand_ms(round, 300);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        w.agent.kill9();
        load.abort();
        // Nothing writes the store now: this is what the restarted agent finds.
        let stored = w.agent.stored_refresh_token();
        at_kill.extend(stored.clone());
        w.agent.spawn().await;
        let r = w
            .agent
            .client()
            .token(&TokenRequest {
                url: None,
                registry: None,
                min_valid_secs: Some(0),
                dpop: None,
            })
            .await;
        match r {
            Ok(_) => {}
            Err(e) if e.code() == Some(ErrorCode::RegistryAuthRequired) => {
                relogins += 1;
                let rotated = match &stored {
                    Some(rt) => w.idp.rotated_away(rt).await,
                    None => false,
                };
                let replayed_by_a_killed_agent =
                    w.idp.replays().await.iter().any(|rt| at_kill.contains(rt));
                assert!(
                    rotated || replayed_by_a_killed_agent,
                    "round {round}: a login was needed after kill -9 at {wait} ms, yet no request of \
                     a killed agent rotated or replayed the stored refresh token: persistence lost it ({e})"
                );
                w.login("alice").await;
            }
            Err(e) => panic!("round {round}: {e}"),
        }
    }
    eprintln!(
        "kill -9 x100: {relogins} restarts needed a login, each inside the window between the \
         IdP's rotation and the agent's store write"
    );
}

/// A deterministic spread of waits in 0..max ms.
fn rand_ms(round: u64, max: u64) -> u64 {
    (round.wrapping_mul(2654435761) >> 7) % max
}

#[tokio::test]
async fn socket_abuse_does_not_starve_a_well_behaved_client() {
    regent_tests::raise_nofile_limit();
    let w = World::default().await;
    w.login("alice").await;
    let sock = w.agent.socket.clone();
    let client = w.agent.client();
    // A well-behaved client is served at every step (how fast is for the benchmarks).
    let prompt = |what: &'static str| {
        let client = client.clone();
        async move {
            client
                .token(&Default::default())
                .await
                .unwrap_or_else(|e| panic!("{what}: {e}"));
        }
    };
    // 2000 idle connections.
    let idle: Vec<UnixStream> = (0..2000)
        .map(|_| UnixStream::connect(&sock).unwrap())
        .collect();
    prompt("2000 idle connections").await;
    // Slowloris: headers one byte a second, for a minute.
    let slow_sock = sock.clone();
    let slowloris = std::thread::spawn(move || {
        let mut s = UnixStream::connect(&slow_sock).unwrap();
        let header = format!(
            "GET /v1/health HTTP/1.1\r\nHost: agent\r\nX-Slow: {}",
            "a".repeat(60)
        );
        for b in header.bytes() {
            if s.write_all(&[b]).is_err() {
                return true;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        false
    });
    // 10 MB body announced: refused at once.
    let mut big = UnixStream::connect(&sock).unwrap();
    big.write_all(b"POST /v1/token HTTP/1.1\r\nHost: agent\r\nContent-Type: application/json\r\nContent-Length: 10485760\r\n\r\n{\"registry\":\"").unwrap();
    let _ = big.write_all(&vec![b'a'; 256 * 1024]);
    big.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut answer = vec![0u8; 4096];
    let n = big.read(&mut answer).unwrap_or(0);
    let answer = String::from_utf8_lossy(&answer[..n]).to_string();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("payload_too_large"), "{answer}");
    prompt("after a 10 MB body").await;
    // Malformed input of every kind.
    let deep = format!("{}{}", "[".repeat(30_000), "]".repeat(30_000)); // under 64 KiB
    let cases: Vec<(&str, &str, Vec<u8>, u16)> = vec![
        ("POST", "/v1/token", vec![0xff, 0xfe, b'{', 0x80], 400),
        ("POST", "/v1/token", deep.into_bytes(), 400),
        (
            "POST",
            "/v1/token",
            br#"{"registry": {"registry": {"registry": 1}}}"#.to_vec(),
            400,
        ),
        ("BREW", "/v1/token", vec![], 400),
        ("GET", "/../../etc/passwd", vec![], 400),
        ("DELETE", "/v1/health", vec![], 400),
    ];
    for (method, path, body, status) in cases {
        let (s, b) = client.raw(method, path, body).await.unwrap();
        assert_eq!(
            s,
            status,
            "{method} {path}: {}",
            String::from_utf8_lossy(&b)
        );
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert!(v["error"]["code"].is_string(), "{v}");
    }
    prompt("after malformed requests").await;
    // The slowloris connection is cut by the agent's header timeout (10 s)
    // long before its minute of headers is out.
    assert!(slowloris.join().unwrap(), "slowloris survived a minute");
    prompt("after slowloris").await;
    let rss = std::fs::read_to_string(format!("/proc/{}/status", w.agent.pid())).unwrap();
    let rss_kb: u64 = rss
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .parse()
        .unwrap();
    eprintln!("agent RSS with 2000 idle connections: {rss_kb} kB");
    assert!(rss_kb < 200 * 1024, "memory is not bounded: {rss_kb} kB");
    drop(idle);
    assert!(client.health().await.is_ok());
}

/// One registry's refresh is stuck at the IdP: its callers wait, the
/// others are served meanwhile, and nothing is deleted.
#[tokio::test]
async fn a_stuck_refresh_delays_no_other_registry_and_deletes_nothing() {
    let w = World::default().await;
    let out = w.agent.regent(&[
        "registry",
        "add",
        "other",
        "https://other.example.test",
        "--issuer",
        &w.idp.issuer,
        "--client-id",
        "regent-test",
        "--scopes",
        "openid,profile",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    w.login("alice").await;
    crate::device_login(&w.agent, Some("other"), "bob").await;
    let client = w.agent.client();
    let token_of = |name: &str| {
        let (c, name) = (client.clone(), name.to_string());
        async move {
            c.token(&TokenRequest {
                url: None,
                registry: Some(name),
                min_valid_secs: None,
                dpop: None,
            })
            .await
        }
    };
    let t = token_of("corp").await.unwrap();
    client
        .invalidate(&InvalidateRequest {
            registry: Some("corp".into()),
            access_token: t.access_token,
        })
        .await
        .unwrap();
    let stored = w.agent.stored();
    w.idp.hold(1).await;
    let stuck = tokio::spawn(token_of("corp"));
    w.idp.wait_held(1).await;
    for _ in 0..20 {
        token_of("other").await.unwrap();
    }
    assert!(!stuck.is_finished(), "the stuck refresh answered early");
    assert_eq!(w.agent.stored().len(), stored.len());
    w.idp.release().await;
    let done = stuck.await.unwrap();
    assert!(done.is_ok(), "{done:?}");
}

/// Every token value the IdP issued during a whole session of logins,
/// refreshes, registry calls and logout: none in the agent's trace log or in
/// any CLI error output.
#[tokio::test]
async fn no_token_reaches_a_log_even_at_trace_level() {
    let w = World::new(
        IdpOptions::default(),
        AgentOptions {
            env: vec![("REGENT_LOG".into(), "trace".into())],
            ..Default::default()
        },
    )
    .await;
    let reg = regent_tests::registry::Registry::start(regent_tests::registry::RegistryOptions {
        issuer: Some(w.idp.issuer.clone()),
        ..Default::default()
    });
    let mut stderr = String::new();
    let mut run = |args: &[&str]| {
        let o = w.agent.regent(args);
        stderr.push_str(&o.stderr);
        o
    };
    run(&[
        "registry",
        "add",
        "corp",
        &reg.url,
        "--issuer",
        &w.idp.issuer,
        "--client-id",
        "regent-test",
    ]);
    w.login("alice").await;
    run(&["token"]);
    run(&["servers", "--json"]);
    w.invalidate().await;
    run(&["token"]); // a refresh
                     // A browser login through the forms.
    let login = w
        .agent
        .client()
        .login(&regent_proto::LoginRequest {
            registry: None,
            flow: regent_proto::LoginFlow::Browser,
            force: true,
        })
        .await
        .unwrap();
    let cb = regent_tests::forms::Session::default()
        .authorize(login.authorize_url.as_deref().unwrap(), "alice")
        .await
        .unwrap();
    let page = regent_tests::get(cb).await.unwrap().text().await.unwrap();
    run(&["servers"]);
    run(&["status", "--json"]);
    run(&["logout"]);
    run(&["token"]); // an error, with the reason
    run(&["servers"]);
    let issued = w.idp.issued().await;
    assert!(issued.len() >= 6, "{issued:?}");
    let log = w.agent.log();
    assert!(
        log.contains("TRACE") || log.contains("DEBUG"),
        "the agent did not log at trace level"
    );
    for t in &issued {
        assert!(!log.contains(t.as_str()), "a token is in the agent's log");
        assert!(!stderr.contains(t.as_str()), "a token is in a CLI error");
        assert!(
            !page.contains(t.as_str()),
            "a token is on the callback page"
        );
    }
}

/// The agent is not dumpable and has no core size: another process of the
/// same (non-root) user cannot read its memory or attach to it.
#[tokio::test]
async fn ptrace_and_proc_mem_are_refused() {
    let home = tempfile::tempdir().unwrap();
    std::os::unix::fs::chown(home.path(), Some(65534), Some(65534)).unwrap();
    let h = home.path().display().to_string();
    let mut child = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(regent_tests::bin("regentd"))
        .args([
            "--store",
            "memory",
            "--socket",
            &format!("{h}/run/agent.sock"),
        ])
        .env("HOME", &h)
        .env("XDG_CONFIG_HOME", format!("{h}/config"))
        .env("XDG_STATE_HOME", format!("{h}/state"))
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let sock = home.path().join("run/agent.sock");
    regent_tests::eventually("the agent to listen", Duration::from_secs(10), || async {
        sock.exists().then_some(())
    })
    .await;
    // As a non-root user the kernel's own rule is visible: the /proc files of a
    // non-dumpable process belong to root.
    use std::os::unix::fs::MetadataExt;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("Uid:") && l.contains("65534")),
        "{status}"
    );
    assert_eq!(
        std::fs::metadata(format!("/proc/{pid}/mem")).unwrap().uid(),
        0
    );
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    assert_eq!(core.split_whitespace().nth(4), Some("0"), "{core}");
    // Same uid, no privileges: reading its memory or environment needs ptrace access.
    let as_nobody = |args: &[&str]| {
        std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .args(args)
            .output()
            .unwrap()
    };
    for file in ["mem", "environ"] {
        let out = as_nobody(&[
            "dd",
            &format!("if=/proc/{pid}/{file}"),
            "of=/dev/null",
            "bs=1",
            "count=1",
            "skip=4096",
        ]);
        assert!(!out.status.success(), "/proc/{pid}/{file} was readable");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("Permission denied") || err.contains("Operation not permitted"),
            "{err}"
        );
    }
    let gdb = as_nobody(&[
        "gdb",
        "-batch",
        "-p",
        &pid.to_string(),
        "-ex",
        "info registers",
    ]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&gdb.stdout),
        String::from_utf8_lossy(&gdb.stderr)
    );
    assert!(!text.contains("rip "), "gdb attached: {text}");
    let _ = child.kill();
    let _ = child.wait();
}

/// What an IdP or a server says never reaches the terminal raw: a device
/// login with a `javascript:` link or an escape sequence in its code is
/// refused; an account name with escape sequences is shown escaped.
#[tokio::test]
async fn nothing_raw_from_a_server_reaches_the_terminal() {
    let w = World::default().await;
    w.idp
        .fault(serde_json::json!({"mode": "hostile_device", "times": 1}))
        .await;
    let out = w.agent.regent(&["login", "corp", "--device"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("refusing the IdP's answer") && out.stderr.contains("verification_uri"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains('\u{1b}'), "{:?}", out.stderr);
    // An account whose name carries an escape sequence (a hostile IdP's ID token).
    crate::device_login(&w.agent, Some("corp"), "ev\u{1b}[2Jil").await;
    for args in [
        &["status"][..],
        &["login", "corp"][..],
        &["registry", "list"][..],
    ] {
        let out = w.agent.regent(args);
        assert_eq!(out.code, 0, "{args:?}: {out:?}");
        let all = format!("{}{}", out.stdout, out.stderr);
        assert!(!all.contains('\u{1b}'), "{args:?}: {all:?}");
        if args[0] != "registry" {
            assert!(all.contains("ev\\u{1b}[2Jil"), "{args:?}: {all}");
        }
    }
}

/// A server whose challenge points at a link-local or unspecified address
/// (a cloud metadata service, or 0.0.0.0: this machine) gets no request
/// made there: refused after resolution, before connecting.
#[tokio::test]
async fn discovery_never_fetches_link_local_or_unspecified_addresses() {
    let agent = regent_tests::Agent::start(regent_tests::AgentOptions::default()).await;
    // What 0.0.0.0:PORT would reach: a listener that counts connections.
    let target = regent_tests::hostile::Hostile::start(regent_tests::hostile::Answer::Fixed {
        status: "200 OK",
        headers: vec![],
        body: "{}".into(),
    })
    .await;
    for metadata in [
        "https://169.254.169.254/latest/meta-data/iam".to_string(),
        format!(
            "https://0.0.0.0:{}/.well-known/oauth-protected-resource",
            target.port
        ),
    ] {
        let evil = regent_tests::hostile::Hostile::start(regent_tests::hostile::Answer::Fixed {
            status: "401 Unauthorized",
            headers: vec![format!(
                "WWW-Authenticate: Bearer resource_metadata=\"{metadata}\""
            )],
            body: "{}".into(),
        })
        .await;
        // Async: the hostile servers run on this test's runtime.
        let out = agent
            .regent_async(&["mcp", "add", "evil", &format!("{}/mcp", evil.url)])
            .await;
        assert_eq!(out.code, 1, "{out:?}");
        assert!(
            out.stderr.contains("refusing to connect to"),
            "{}",
            out.stderr
        );
    }
    assert_eq!(target.connections(), 0, "a request reached 0.0.0.0");
}
