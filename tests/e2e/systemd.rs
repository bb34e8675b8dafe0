//! The units under a real systemd user manager (see `regent_tests::systemd`).

use regent_tests::systemd::UserManager;

/// The manager; where this machine cannot run one, the test fails under CI
/// and elsewhere says it checked nothing.
fn manager() -> Option<UserManager> {
    match UserManager::start() {
        Ok(m) => Some(m),
        Err(why) => {
            regent_tests::missing("a systemd user manager", &why);
            None
        }
    }
}

fn run(m: &UserManager, args: &[&str]) -> (i32, String, String) {
    let out = m
        .command(regent_tests::bin("regent"))
        .args(args)
        .output()
        .expect("regent runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn pid_of(status_json: &str) -> u64 {
    let v: serde_json::Value = serde_json::from_str(status_json).unwrap();
    v["agent"]["pid"].as_u64().unwrap()
}

#[test]
fn service_install_enable_takes_over_from_an_autostarted_agent() {
    let Some(m) = manager() else { return };
    // The CLI starts an agent of its own first.
    let (code, out, err) = run(&m, &["status", "--json"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("started the agent"), "{err}");
    let autostarted = pid_of(&out);
    let (code, out, err) = run(&m, &["service", "install", "--enable"]);
    assert_eq!(code, 0, "{out}{err}\n{}", m.manager_log());
    assert!(
        out.contains(&format!(
            "Stopping the agent that runs now (regentd, pid {autostarted})"
        )) && out.contains("It stopped"),
        "{out}"
    );
    // The next command reaches systemd's agent, started by socket activation.
    let (code, out, err) = run(&m, &["status", "--json"]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("started the agent"), "{err}");
    let managed = pid_of(&out);
    assert_ne!(managed, autostarted);
    let main_pid = m.systemctl(&["show", "-p", "MainPID", "--value", "regentd.service"]);
    assert_eq!(
        String::from_utf8_lossy(&main_pid.stdout).trim(),
        managed.to_string()
    );
    let record: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(m.home.join(".local/state/regent/agent.lock"))
            .unwrap()
            .trim(),
    )
    .unwrap();
    assert_eq!(record["pid"], managed);
    assert_eq!(record["systemd"], true);
}

fn main_pid(m: &UserManager) -> String {
    let out = m.systemctl(&["show", "-p", "MainPID", "--value", "regentd.service"]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The service's life under systemd, with a real login: socket activation,
/// a reload that fails on a broken file (and keeps the running config), a
/// stop that drains, a kill -9 that systemd restarts, and the login through
/// all of it.
#[tokio::test]
async fn under_systemd_reload_stop_and_kill_9_keep_the_login() {
    let Some(m) = manager() else { return };
    let idp = regent_tests::Idp::start(regent_tests::IdpOptions::default());
    let (code, out, err) = run(&m, &["service", "install", "--enable"]);
    assert_eq!(code, 0, "{out}{err}\n{}", m.manager_log());
    // The first command is served by an agent systemd starts on the socket.
    let (code, _, err) = run(
        &m,
        &[
            "registry",
            "add",
            "corp",
            "https://registry.example.test",
            "--issuer",
            &idp.issuer,
            "--client-id",
            regent_tests::idp::CLIENT_ID,
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("started the agent"), "{err}");
    let first = main_pid(&m);
    assert_ne!(first, "0", "socket activation started regentd.service");
    let login = m
        .command(regent_tests::bin("regent"))
        .args(["login", "corp"])
        .env("BROWSER", regent_tests::bin("browser"))
        .output()
        .unwrap();
    assert!(
        login.status.success(),
        "{}",
        String::from_utf8_lossy(&login.stderr)
    );
    let (code, token, err) = run(&m, &["token", "corp"]);
    assert_eq!(code, 0, "{err}");
    assert!(idp.is_active(token.trim()).await);
    let (_, out, _) = run(&m, &["agent", "status"]);
    assert!(out.contains("started by    systemd"), "{out}");

    // A broken file: `systemctl reload` fails, and the agent keeps serving.
    let file = m.home.join(".config/regent/config.toml");
    let good = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, format!("{good}\n[registries.bad\n")).unwrap();
    let reload = m.systemctl(&["reload", "regentd.service"]);
    assert!(
        !reload.status.success(),
        "a reload of a broken config succeeded"
    );
    assert_eq!(main_pid(&m), first, "the agent kept running");
    let (code, _, err) = run(&m, &["token", "corp"]);
    assert_eq!(code, 0, "{err}");
    std::fs::write(&file, &good).unwrap();
    let reload = m.systemctl(&["reload", "regentd.service"]);
    assert!(
        reload.status.success(),
        "{}",
        String::from_utf8_lossy(&reload.stderr)
    );

    // Stop drains and exits cleanly; the next command starts it again, logged in.
    let (code, out, err) = run(&m, &["agent", "stop"]);
    assert_eq!(code, 0, "{out}{err}");
    let result = m.systemctl(&[
        "show",
        "-p",
        "Result",
        "-p",
        "ExecMainStatus",
        "regentd.service",
    ]);
    let result = String::from_utf8_lossy(&result.stdout).to_string();
    assert!(
        result.contains("Result=success") && result.contains("ExecMainStatus=0"),
        "{result}"
    );
    let (code, _, err) = run(&m, &["token", "corp"]);
    assert_eq!(code, 0, "the login survived a stop: {err}");
    let second = main_pid(&m);
    assert!(second != "0" && second != first, "{second}");

    // kill -9: systemd restarts it (Restart=on-failure), and the login is still there.
    regent_tests::idp::signal(second.parse().unwrap(), libc::SIGKILL);
    let m2 = &m;
    let prev = &second;
    let third = regent_tests::eventually(
        "systemd to restart the agent",
        std::time::Duration::from_secs(30),
        || async move {
            let p = main_pid(m2);
            (p != "0" && p != *prev).then_some(p)
        },
    )
    .await;
    let (code, token, err) = run(&m, &["token", "corp"]);
    assert_eq!(code, 0, "the login survived kill -9: {err}");
    assert!(idp.is_active(token.trim()).await);
    assert_eq!(main_pid(&m), third);
    assert_eq!(
        idp.counts().await["token"]["authorization_code"],
        1,
        "one login in all"
    );

    // The forwarding socket can be made under the unit's sandbox too.
    let (code, _, err) = run(&m, &["forward", "allow", "corp"]);
    assert_eq!(code, 0, "{err}");
    let m3 = &m;
    regent_tests::eventually(
        "the forwarding socket under systemd",
        std::time::Duration::from_secs(10),
        || async move {
            let (_, out, _) = run(m3, &["status", "--json"]);
            let v: serde_json::Value = serde_json::from_str(&out).ok()?;
            v["agent"]["forward_socket"].is_string().then_some(())
        },
    )
    .await;
    assert!(m.runtime.join("regent/agent.forward.sock").exists());
}

/// An agent systemd's user manager starts has none of a login shell's
/// environment (no HTTPS_PROXY, no SSL_CERT_FILE): its proxy and its CA
/// come from the config's `[network]` alone, and it goes through the proxy
/// (tinyproxy's log shows the CONNECTs) to an IdP on the company's CA.
#[tokio::test]
async fn under_systemd_the_proxy_and_the_ca_come_from_the_config() {
    let Some(m) = manager() else { return };
    let proxy = match regent_tests::proxy::Tinyproxy::start() {
        Ok(p) => p,
        Err(why) => return regent_tests::missing("tinyproxy", &why),
    };
    let addr = match regent_tests::proxy::outward_address() {
        Ok(a) => a,
        Err(why) => return regent_tests::missing("an address besides loopback", &why),
    };
    let ca = regent_tests::tls::TestCa::new("Corp Root CA");
    let server = ca.server_for(&[&addr]);
    let idp = regent_tests::Idp::start(regent_tests::IdpOptions {
        tls: Some(regent_tests::idp::IdpTls {
            cert: server.cert,
            key: server.key,
            client_ca: None,
        }),
        host: Some(addr.clone()),
        ..regent_tests::IdpOptions::default()
    });
    // The user's files: the CA, and the config naming it and the proxy.
    let own = |p: &std::path::Path| std::os::unix::fs::chown(p, Some(m.uid), Some(m.uid)).unwrap();
    let ca_file = m.home.join("corp-ca.pem");
    std::fs::copy(&ca.ca_file, &ca_file).unwrap();
    own(&ca_file);
    let dir = m.home.join(".config/regent");
    std::fs::create_dir_all(&dir).unwrap();
    own(&m.home.join(".config"));
    own(&dir);
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[network]\nca_file = {:?}\nproxy = {:?}\n",
            ca_file.display().to_string(),
            proxy.url()
        ),
    )
    .unwrap();
    own(&config);
    let (code, out, err) = run(&m, &["service", "install", "--enable"]);
    assert_eq!(code, 0, "{out}{err}\n{}", m.manager_log());
    let (code, _, err) = run(
        &m,
        &[
            "registry",
            "add",
            "corp",
            "https://registry.example.test",
            "--issuer",
            &idp.issuer,
            "--client-id",
            regent_tests::idp::CLIENT_ID,
        ],
    );
    assert_eq!(code, 0, "{err}");
    let host_port = idp.issuer.trim_start_matches("https://");
    assert!(
        proxy.connects_to(host_port) >= 1,
        "the agent went around the proxy: {}",
        proxy.log()
    );
    let (_, out, _) = run(&m, &["agent", "status"]);
    assert!(out.contains("started by    systemd"), "{out}");
    let (_, out, _) = run(&m, &["doctor", "corp"]);
    for line in [
        format!("ok    corp         tls       {addr} answered HTTP 404"),
        format!("ok    corp         proxy     {addr} through http://{}:***@127.0.0.1:{} (from the config)", regent_tests::proxy::USER, proxy.port),
    ] {
        assert!(out.lines().any(|l| l == line), "{line}\n{out}");
    }
}
