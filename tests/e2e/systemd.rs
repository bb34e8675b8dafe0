//! The units under a real systemd user manager (see `regent_tests::systemd`).

use regent_tests::systemd::UserManager;

/// The manager, or the reason this machine cannot run one (the test then
/// says so and checks nothing).
fn manager() -> Option<UserManager> {
    match UserManager::start() {
        Ok(m) => Some(m),
        Err(why) => {
            eprintln!("SKIPPED: no systemd user manager here: {why}");
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
