//! Running as a user service: socket activation, readiness, signals,
//! autostart, the units, shell integration.

use crate::World;
use regent_tests::{Agent, AgentOptions, IdpOptions};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

#[tokio::test]
async fn socket_activation_with_systemd_socket_activate() {
    let a = Agent::start(AgentOptions {
        wrapper: vec![
            "systemd-socket-activate".into(),
            "-l".into(),
            "{socket}".into(),
        ],
        ..Default::default()
    })
    .await;
    let mode = std::fs::metadata(&a.socket).unwrap().permissions().mode() & 0o777;
    let out = a.regent(&["status", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["agent"]["store"], "file");
    assert!(a.log().contains("ready"), "{}", a.log());
    // The agent uses the socket it was given as it is.
    let after = std::fs::metadata(&a.socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(after, mode);
    assert_eq!(a.regent(&["registry", "list", "--json"]).code, 0);
}

#[tokio::test]
async fn readiness_and_stopping_are_notified() {
    let mut a = Agent::start(AgentOptions::default()).await;
    a.kill9();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    let dgram = UnixDatagram::bind(&path).unwrap();
    dgram
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut child = a
        .regentd_command()
        .env("NOTIFY_SOCKET", &path)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = dgram.recv(&mut buf).expect("READY=1 within 10 s");
    let msg = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(msg.lines().any(|l| l == "READY=1"), "{msg}");
    assert!(msg.contains("STATUS=serving"), "{msg}");
    // Ready means answering, right now.
    let health = a.client().health().await;
    assert!(
        health.is_ok(),
        "READY=1 came before the agent answered: {health:?}"
    );
    regent_tests::idp::signal(child.id(), libc::SIGTERM);
    let n = dgram.recv(&mut buf).expect("STOPPING=1 on SIGTERM");
    let msg = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(msg.lines().any(|l| l == "STOPPING=1"), "{msg}");
    assert!(child.wait().unwrap().success());
    assert!(!a.socket.exists(), "the agent removed its socket at exit");
}

#[tokio::test]
async fn sigterm_during_a_refresh_storm_loses_nothing() {
    let mut w = World::default().await;
    w.login("alice").await;
    w.invalidate().await;
    // The refresh is at the IdP (held there) with callers waiting for it when SIGTERM comes.
    w.idp.hold(1).await;
    let runs: Vec<_> = (0..30)
        .map(|_| tokio::process::Command::from(w.agent.regent_command(&["token"])).output())
        .collect();
    let storm = tokio::spawn(futures::future::join_all(runs));
    w.idp.wait_held(1).await;
    w.agent.signal(libc::SIGTERM);
    w.agent.wait_log("draining requests in flight", 1).await;
    w.idp.release().await;
    let code = w.agent.wait_exit();
    assert_eq!(code, Some(0), "{}", w.agent.log());
    let outs = storm.await.unwrap();
    let mut served = 0;
    for o in outs {
        let o = o.unwrap();
        match o.status.code() {
            Some(0) => served += 1,
            // Connected after the listener closed: a clean "cannot reach the agent".
            Some(3) => {
                assert!(String::from_utf8_lossy(&o.stderr).contains("cannot reach the regent agent"))
            }
            other => panic!("{other:?}: {}", String::from_utf8_lossy(&o.stderr)),
        }
    }
    assert!(
        served >= 1,
        "the callers waiting on the refresh were answered"
    );
    assert!(
        w.agent.log().contains("refreshed access token"),
        "the refresh finished before exit"
    );
    // Restart: the stored grant is the rotated one, and refreshable.
    let stored = w.agent.stored_refresh_token().unwrap();
    assert_eq!(w.idp.refresh_tokens().await.last(), Some(&stored));
    w.agent.spawn().await;
    let t = w.token(&[]);
    assert!(w.idp.is_active(&t).await);
    w.invalidate().await;
    let t2 = w.token(&[]);
    assert_ne!(t, t2);
    assert_ne!(w.agent.stored_refresh_token().unwrap(), stored);
}

#[tokio::test]
async fn sighup_reloads_a_valid_config_and_keeps_the_old_one_on_a_broken_one() {
    let w = World::default().await;
    w.login("alice").await;
    let token = w.token(&[]);
    let file = w.agent.config_file();
    let mut text = std::fs::read_to_string(&file).unwrap();
    text.push_str("\n[registries.added]\nurl = \"https://added.example.test\"\n");
    std::fs::write(&file, &text).unwrap();
    regent_tests::idp::signal(w.agent.pid(), libc::SIGHUP);
    let client = w.agent.client();
    regent_tests::eventually("the reload", Duration::from_secs(5), || async {
        (client.registries().await.unwrap().len() == 2).then_some(())
    })
    .await;
    assert_eq!(
        w.token(&["corp"]),
        token,
        "an unchanged registry keeps its login"
    );

    let broken = format!("{text}\n[registries.bad\n");
    std::fs::write(&file, &broken).unwrap();
    regent_tests::idp::signal(w.agent.pid(), libc::SIGHUP);
    let agent = &w.agent;
    regent_tests::eventually("the reload error", Duration::from_secs(5), || async {
        agent
            .log()
            .contains("the config was not reloaded")
            .then_some(())
    })
    .await;
    assert_eq!(client.registries().await.unwrap().len(), 2);
    assert_eq!(w.token(&["corp"]), token);
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        broken,
        "the broken file was touched"
    );
}

#[tokio::test]
async fn the_cli_starts_the_agent_when_none_answers() {
    let a = Agent::unstarted(AgentOptions::default());
    let out = a
        .regent_command(&["status", "--json"])
        .env_remove("REGENT_NO_AUTOSTART")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("started the agent"), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let pid = v["agent"]["pid"].as_u64().unwrap() as u32;
    let started = regent_tests::KillOnDrop(pid);
    let log = a.home().join("state/regent/agent.log");
    assert!(
        std::fs::read_to_string(&log).unwrap().contains("ready"),
        "the agent logs to {}",
        log.display()
    );
    // With autostart off, no agent means exit 3.
    drop(started);
    regent_tests::eventually("the agent to die", Duration::from_secs(30), || async {
        std::os::unix::net::UnixStream::connect(&a.socket)
            .is_err()
            .then_some(())
    })
    .await;
    let out = a.regent(&["status"]);
    assert_eq!(out.code, 3);
}

#[tokio::test]
async fn ten_clis_at_once_start_exactly_one_agent() {
    let a = Agent::unstarted(AgentOptions::default());
    let runs = (0..10).map(|_| {
        let mut c = a.regent_command(&["registry", "list", "--json"]);
        c.env_remove("REGENT_NO_AUTOSTART");
        tokio::process::Command::from(c).output()
    });
    let outs = futures::future::join_all(runs).await;
    let _started = a
        .client()
        .health()
        .await
        .ok()
        .map(|h| regent_tests::KillOnDrop(h.pid));
    let mut started = Vec::new();
    for o in outs {
        let o = o.unwrap();
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        assert_eq!(o.status.code(), Some(0), "{err}");
        if let Some(rest) = err.split("pid ").nth(1) {
            started.push(rest.split(')').next().unwrap().to_string());
        }
    }
    assert_eq!(started.len(), 1, "agents started: {started:?}");
    let pid = a.client().health().await.unwrap().pid;
    assert_eq!(started[0], pid.to_string());
}

#[tokio::test]
async fn the_units_install_and_verify() {
    let a = Agent::unstarted(AgentOptions::default());
    let out = a.regent(&["service", "install"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout
            .contains("systemctl --user enable --now regentd.socket"),
        "{}",
        out.stdout
    );
    let dir = a.home().join("config/systemd/user");
    let service = std::fs::read_to_string(dir.join("regentd.service")).unwrap();
    let regentd = regent_tests::bin("regentd").canonicalize().unwrap();
    assert!(
        service.contains(&format!("ExecStart={}", regentd.display())),
        "{service}"
    );
    let socket = std::fs::read_to_string(dir.join("regentd.socket")).unwrap();
    assert!(
        socket.contains("ListenStream=%t/regent/agent.sock") && socket.contains("SocketMode=0600")
    );
    std::fs::create_dir_all(a.home().join("run")).unwrap();
    let verify = std::process::Command::new("systemd-analyze")
        .args(["--user", "verify"])
        .arg(dir.join("regentd.socket"))
        .arg(dir.join("regentd.service"))
        .env("XDG_RUNTIME_DIR", a.home().join("run"))
        .output()
        .expect("systemd-analyze runs (Debian package systemd)");
    assert!(
        verify.status.success(),
        "systemd-analyze verify: {}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    let out = a.regent(&["service", "uninstall"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!dir.join("regentd.service").exists() && !dir.join("regentd.socket").exists());
}

#[tokio::test]
async fn completions_and_man_page() {
    let a = Agent::start(AgentOptions::default()).await;
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = a.regent(&["completions", shell]);
        assert_eq!(out.code, 0, "{shell}");
        assert!(
            out.stdout.contains("REGENT_COMPLETE"),
            "{shell}: {}",
            out.stdout
        );
    }
    // The completer knows the agent's resources, by kind, and offers no file
    // names where a name is wanted.
    assert_eq!(
        a.regent(&["registry", "add", "corp", "https://r.example", "--no-auth"])
            .code,
        0
    );
    assert_eq!(
        a.regent(&["mcp", "add", "tools", "https://m.example/mcp", "--no-auth"])
            .code,
        0
    );
    let complete = |words: &[&str]| {
        let mut args = vec!["--", "regent"];
        args.extend_from_slice(words);
        let out = a
            .regent_command(&args)
            .env("REGENT_COMPLETE", "fish")
            .current_dir(a.home())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.split('\t').next().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        complete(&["login", ""])
            .iter()
            .filter(|c| !c.starts_with('-'))
            .collect::<Vec<_>>(),
        ["corp", "tools"]
    );
    assert!(complete(&["mcp", "remove", ""]).contains(&"tools".to_string()));
    assert!(!complete(&["mcp", "remove", ""]).contains(&"corp".to_string()));
    let new_name = complete(&["registry", "add", ""]);
    assert!(new_name.iter().all(|c| c.starts_with('-')), "{new_name:?}");
    let out = a.regent(&["man"]);
    assert!(
        out.stdout.contains(".TH regent"),
        "{}",
        &out.stdout[..200.min(out.stdout.len())]
    );
    let out = a.regent(&["man", "mcp", "proxy"]);
    assert!(out.stdout.contains(".TH regent-mcp-proxy") && out.stdout.contains(".SH EXIT STATUS"));
    // Every page, regentd's included, into a directory man reads.
    let dir = a.home().join("man1");
    let out = a.regent(&["man", "--dir", dir.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("Wrote regentd.1"), "{}", out.stdout);
    let regentd = std::fs::read_to_string(dir.join("regentd.1")).unwrap();
    assert!(regentd.contains(".SH SIGNALS") && regentd.contains(".SH FILES"));
    assert!(dir.join("regent-registry-add.1").exists());
}

/// When stderr is the journal (as `JOURNAL_STREAM` says), every event is one
/// line with its sd-daemon priority, so `journalctl -p warning` finds what
/// matters; no timestamp, no level word, no leading space.
#[tokio::test]
async fn under_journald_every_event_is_one_line_with_its_priority() {
    let w = World::new(
        IdpOptions::default(),
        AgentOptions {
            journal: true,
            ..Default::default()
        },
    )
    .await;
    // An error: a reload of a broken config.
    let file = w.agent.config_file();
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, format!("{text}\n[registries.bad\n")).unwrap();
    regent_tests::idp::signal(w.agent.pid(), libc::SIGHUP);
    w.agent.wait_log("the config was not reloaded", 1).await;
    let log = w.agent.log();
    let lines: Vec<&str> = log.lines().collect();
    for l in &lines {
        let rest = l
            .strip_prefix('<')
            .and_then(|r| r.split_once('>'))
            .filter(|(p, _)| ["3", "4", "6", "7"].contains(p))
            .map(|(_, rest)| rest)
            .unwrap_or_else(|| panic!("a line without a priority: {l:?}"));
        assert!(!rest.starts_with(' ') && !rest.starts_with("20"), "{l:?}");
        assert!(
            !rest.starts_with("INFO") && !rest.starts_with("ERROR"),
            "{l:?}"
        );
    }
    let with = |p: &str, what: &str| lines.iter().any(|l| l.starts_with(p) && l.contains(what));
    assert!(with("<6>", "ready"), "{log}");
    // The file store's warning at start.
    assert!(with("<4>", "file"), "{log}");
    assert!(with("<3>", "the config was not reloaded"), "{log}");
}

/// `regent agent ...` on an agent regent started: status names it, reload
/// reports a broken file (and the running config stays), logs shows its log,
/// restart starts a new one with the logins restored, stop stops it.
#[tokio::test]
async fn regent_agent_status_reload_logs_restart_and_stop() {
    let a = Agent::unstarted(AgentOptions::default());
    let run = |args: &[&str]| {
        let out = a
            .regent_command(args)
            .env_remove("REGENT_NO_AUTOSTART")
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, _) = run(&["agent", "status"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("No agent runs."), "{out}");
    assert!(
        a.client().health().await.is_err(),
        "agent status started an agent"
    );
    let (code, _, err) = run(&["registry", "add", "corp", "https://r.example", "--no-auth"]);
    assert_eq!(code, 0, "{err}");
    let first = a.client().health().await.unwrap().pid;
    let _first = regent_tests::KillOnDrop(first);
    let (code, out, _) = run(&["agent", "status"]);
    assert_eq!(code, 0);
    assert!(out.contains(&format!("pid {first}")), "{out}");
    assert!(out.contains("started by    regent"), "{out}");
    // The store says how long it keeps tokens (keyutils here, or the Secret Service).
    assert!(
        out.contains("lost at reboot") || out.contains("kept on disk"),
        "the store's durability: {out}"
    );

    let file = a.config_file();
    let good = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, format!("{good}\n[registries.bad\n")).unwrap();
    let (code, _, err) = run(&["agent", "reload"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("line") && err.contains("not a valid regent config"),
        "{err}"
    );
    std::fs::write(
        &file,
        format!("{good}\n[registries.more]\nurl = \"https://more.example\"\n"),
    )
    .unwrap();
    let (code, out, err) = run(&["agent", "reload"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("2 resources configured"), "{out}");

    let (code, out, _) = run(&["agent", "logs", "-n", "200"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("ready") && out.contains("config reloaded"),
        "{out}"
    );

    // A file that does not parse: the restart is refused before anything stops.
    let fine = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, format!("{fine}\n[registries.bad\n")).unwrap();
    let (code, _, err) = run(&["agent", "restart"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("not restarted") && err.contains("line"),
        "{err}"
    );
    assert_eq!(
        a.client().health().await.unwrap().pid,
        first,
        "still running"
    );
    std::fs::write(&file, fine).unwrap();

    let (code, out, err) = run(&["agent", "restart"]);
    assert_eq!(code, 0, "{err}");
    let second = a.client().health().await.unwrap().pid;
    let _second = regent_tests::KillOnDrop(second);
    assert_ne!(second, first);
    assert!(out.contains(&format!("pid {second}")), "{out}");
    assert_eq!(a.client().registries().await.unwrap().len(), 2);

    let (code, out, err) = run(&["agent", "stop"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("Stopped the agent (pid {second})")),
        "{out}"
    );
    assert!(a.client().health().await.is_err());
    let (code, out, _) = run(&["agent", "status"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("No agent runs."), "{out}");
}

/// `regent agent restart` starts the agent as it was started: an agent on
/// the file store comes back on the file store, with its login.
#[tokio::test]
async fn a_restart_keeps_the_agents_settings() {
    let w = crate::World::default().await;
    w.login("alice").await;
    assert_eq!(w.agent.client().health().await.unwrap().store, "file");
    let out = w.agent.regent(&["agent", "restart"]);
    assert_eq!(out.code, 0, "{out:?}");
    let h = w.agent.client().health().await.unwrap();
    let _new = regent_tests::KillOnDrop(h.pid);
    assert_eq!(h.store, "file", "restarted on the store it had");
    let st = w.status();
    assert_eq!(
        st["registries"][0]["auth"]["status"], "authenticated",
        "{st}"
    );
}
