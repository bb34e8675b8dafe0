//! One agent per user, and the config file that is the user's too.

use crate::{World, REGISTRY_URL};
use regent_tests::{Agent, AgentOptions};
use std::os::unix::fs::PermissionsExt;

/// cron, `sudo -u`, an ssh session: no `XDG_RUNTIME_DIR`, no `REGENT_SOCKET`.
fn bare(cmd: &mut std::process::Command) -> &mut std::process::Command {
    cmd.env_remove("XDG_RUNTIME_DIR")
        .env_remove("REGENT_SOCKET")
        .env_remove("REGENT_NO_AUTOSTART")
}

#[tokio::test]
async fn a_cli_without_xdg_runtime_dir_reaches_the_running_agent() {
    let w = World::default().await;
    w.login("alice").await;
    let want = w.token(&[]);
    let pid = w.agent.pid();
    let out = bare(&mut w.agent.regent_command(&["token", "corp"]))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), want);
    assert!(!stderr.contains("started the agent"), "{stderr}");
    let out = bare(&mut w.agent.regent_command(&["status", "--json"]))
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["agent"]["pid"], pid);
    assert_eq!(v["socket"], w.agent.socket.display().to_string());
}

#[tokio::test]
async fn no_second_agent_is_autostarted_while_one_runs() {
    let a = Agent::start(AgentOptions::default()).await;
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::set_permissions(elsewhere.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let other = elsewhere.path().join("agent.sock");
    let out = a
        .regent_command(&["--socket", &other.display().to_string(), "status"])
        .env_remove("REGENT_NO_AUTOSTART")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains(&format!("regentd, pid {}", a.pid()))
            && stderr.contains(&a.socket.display().to_string()),
        "{stderr}"
    );
    assert!(!other.exists(), "a second agent was started");
}

#[tokio::test]
async fn an_autostarted_agent_that_cannot_start_says_why() {
    let a = Agent::unstarted(AgentOptions::default());
    std::fs::create_dir_all(a.config_file().parent().unwrap()).unwrap();
    std::fs::write(
        a.config_file(),
        "[registries.corp]\nurl = \"https://r.example\"\ncolour = \"blue\"\n",
    )
    .unwrap();
    let out = a
        .regent_command(&["status"])
        .env_remove("REGENT_NO_AUTOSTART")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("regentd could not start")
            && stderr.contains("line 3")
            && stderr.contains("colour"),
        "{stderr}"
    );
    // A socket directory open to others: the fix is named.
    std::fs::remove_file(a.config_file()).unwrap();
    let dir = a.socket.parent().unwrap();
    std::fs::create_dir_all(dir).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = a
        .regent_command(&["status"])
        .env_remove("REGENT_NO_AUTOSTART")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("chmod 700 {}", dir.display())),
        "{stderr}"
    );
}

#[tokio::test]
async fn hand_edits_to_the_config_survive_regent_registry_add() {
    let w = World::default().await;
    w.login("alice").await;
    let token = w.token(&[]);
    let path = w.agent.config_file();
    let mine = format!(
        "# My registries. regent keeps this comment.\n{}\n# Added by hand:\n[registries.hand]\nurl = \"https://hand.example.test\" # no auth\n",
        std::fs::read_to_string(&path).unwrap()
    );
    std::fs::write(&path, &mine).unwrap();
    let out = w.agent.regent(&[
        "registry",
        "add",
        "more",
        "https://more.example.test",
        "--no-auth",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.starts_with("# My registries. regent keeps this comment.\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "# Added by hand:\n[registries.hand]\nurl = \"https://hand.example.test\" # no auth"
        ),
        "{text}"
    );
    assert!(text.contains("[registries.more]"), "{text}");
    let list = w.agent.regent(&["registry", "list", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
    assert_eq!(v["registries"].as_array().unwrap().len(), 3);
    assert_eq!(
        w.token(&["corp"]),
        token,
        "the hand edit cost corp its login"
    );
    // A file broken by hand: the change is refused, naming the line; nothing is touched.
    let broken = format!("{text}[registries.oops\n");
    std::fs::write(&path, &broken).unwrap();
    let out = w
        .agent
        .regent(&["registry", "add", "x", REGISTRY_URL, "--no-auth"]);
    assert_eq!(out.code, 1, "{out:?}");
    let line = broken.lines().count();
    assert!(
        out.stderr.contains(&format!("line {line}"))
            && out.stderr.contains("the change was refused"),
        "{}",
        out.stderr
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), broken);
    assert_eq!(w.token(&["corp"]), token);
}

/// A store left by version 1 (one token set per registry, under the old
/// key) is taken over at start: the login is kept, the old entry is gone.
#[tokio::test]
async fn a_version_1_store_keeps_the_login() {
    let mut w = World::default().await;
    w.login("alice").await;
    let token = w.token(&[]);
    w.agent.terminate();
    let v2 = w.agent.stored();
    let grant = v2.values().next().unwrap();
    let at = &grant["tokens"][""];
    let v1_key = {
        use std::io::Write;
        let mut c = std::process::Command::new("sha256sum")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let input = format!(
            "{REGISTRY_URL}\0{}\0{}",
            w.idp.issuer,
            regent_tests::idp::CLIENT_ID
        );
        c.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        let hex = String::from_utf8(c.wait_with_output().unwrap().stdout).unwrap();
        format!("regent:{}", &hex[..16])
    };
    let v1 = serde_json::json!({ v1_key.clone(): {
        "access_token": at["access_token"], "expires_at": at["expires_at"],
        "obtained_at": at["obtained_at"], "refresh_token": grant["refresh_token"],
        "scope": grant["scope"], "issuer": w.idp.issuer, "account": "alice"
    }});
    std::fs::write(w.agent.token_file(), v1.to_string()).unwrap();
    w.agent.spawn().await;
    assert_eq!(w.token(&[]), token);
    assert_eq!(w.status()["registries"][0]["auth"]["account"], "alice");
    let stored = w.agent.stored();
    assert!(!stored.contains_key(&v1_key), "{stored:?}");
    assert_eq!(stored.len(), 1);
    assert!(w.agent.log().contains("migrated the stored login"));
    // The migrated refresh token still refreshes.
    w.invalidate().await;
    let fresh = w.token(&[]);
    assert!(w.idp.is_active(&fresh).await);
}
