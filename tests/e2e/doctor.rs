//! `regent doctor`: one line a step, and the fix under each that is not ok,
//! for each failure a user meets — logged out, the IdP down, its clock off,
//! its certificate from an unknown CA — with the exact line it prints.

use regent_tests::idp::IdpTls;
use regent_tests::tls::TestCa;
use regent_tests::{Agent, AgentOptions, Idp, IdpOptions};

/// `regent doctor ARGS`: its exit code and its lines.
fn doctor(agent: &Agent, args: &[&str]) -> (i32, Vec<String>) {
    let mut all = vec!["doctor"];
    all.extend_from_slice(args);
    let out = agent.regent(&all);
    (out.code, out.stdout.lines().map(str::to_string).collect())
}

/// The line of `step` for `resource`, and the one after it.
fn step<'a>(lines: &'a [String], resource: &str, step: &str) -> (&'a str, &'a str) {
    let i = lines
        .iter()
        .position(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            w.get(1) == Some(&resource) && w.get(2) == Some(&step)
        })
        .unwrap_or_else(|| panic!("no {step} line for {resource}: {lines:#?}"));
    (
        &lines[i],
        lines.get(i + 1).map(String::as_str).unwrap_or_default(),
    )
}

/// An agent whose config holds registry `corp` at the IdP's own origin
/// (something answers there), its logins at that IdP.
async fn agent_for(idp: &Idp) -> Agent {
    agent_with(idp, "", None).await
}

/// As [`agent_for`], the config starting with `head` and given `mode`.
async fn agent_with(idp: &Idp, head: &str, mode: Option<u32>) -> Agent {
    use std::os::unix::fs::PermissionsExt;
    let mut agent = Agent::unstarted(AgentOptions::default());
    let path = agent.config_file();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(
        &path,
        format!(
            "{head}[registries.corp]\nurl = \"{0}/registry\"\n\n[registries.corp.auth]\ntype = \"oauth\"\nissuer = \"{0}\"\nclient_id = \"{1}\"\n",
            idp.issuer,
            regent_tests::idp::CLIENT_ID
        ),
    )
    .unwrap();
    if let Some(m) = mode {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(m)).unwrap();
    }
    agent.spawn().await;
    agent
}

#[tokio::test]
async fn logged_out_and_the_idp_down_are_each_one_failed_step_with_its_fix() {
    let idp = Idp::start(IdpOptions::default());
    let agent = agent_for(&idp).await;
    let (code, lines) = doctor(&agent, &["corp"]);
    assert_eq!(code, 1, "{lines:#?}");
    assert_eq!(
        lines[0].split_whitespace().take(2).collect::<Vec<_>>(),
        ["ok", "-"]
    );
    assert!(lines[0].contains("answers at"), "{lines:#?}");
    let (login, fix) = step(&lines, "corp", "login");
    assert_eq!(login, "FAIL  corp         login     not logged in");
    assert_eq!(fix, "      fix: regent login corp");
    let (discovery, _) = step(&lines, "corp", "discovery");
    assert_eq!(
        discovery,
        format!(
            "ok    corp         discovery the metadata of {0} names its token endpoint {0}/token",
            idp.issuer
        )
    );
    let (clock, _) = step(&lines, "corp", "clock");
    assert!(
        clock.starts_with(&format!(
            "ok    corp         clock     {}'s clock is ",
            idp.issuer
        )),
        "{clock}"
    );

    crate::device_login(&agent, Some("corp"), "alice").await;
    let (code, lines) = doctor(&agent, &["corp"]);
    assert_eq!(code, 0, "{lines:#?}");
    let (login, _) = step(&lines, "corp", "login");
    assert_eq!(
        login,
        "ok    corp         login     logged in as alice, refreshable"
    );

    idp.go_down();
    let (code, lines) = doctor(&agent, &["corp"]);
    assert_eq!(code, 1, "{lines:#?}");
    let (tcp, fix) = step(&lines, "corp", "tcp");
    assert_eq!(
        tcp,
        format!(
            "FAIL  corp         tcp       cannot connect to 127.0.0.1:{}: Connection refused (os error 111)",
            idp.port
        )
    );
    assert_eq!(
        fix,
        "      fix: is the server up, and reachable from this network (a VPN, a firewall)?"
    );
    let (discovery, _) = step(&lines, "corp", "discovery");
    assert!(
        discovery.starts_with("skip  corp         discovery "),
        "{discovery}"
    );

    // --json: the same checks, for scripts.
    let out = agent.regent(&["doctor", "corp", "--json"]);
    assert_eq!(out.code, 1);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert!(v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["step"] == "tcp" && c["status"] == "fail" && c["resource"] == "corp"));
}

#[tokio::test]
async fn an_idp_clock_an_hour_ahead_fails_the_clock_step() {
    let idp = Idp::start(IdpOptions {
        date_skew: 3600,
        ..IdpOptions::default()
    });
    let agent = agent_for(&idp).await;
    let (code, lines) = doctor(&agent, &["corp"]);
    assert_eq!(code, 1);
    let (clock, fix) = step(&lines, "corp", "clock");
    // The IdP stamps its Date as the request comes in and counts whole
    // seconds; the agent reads it when the answer is back, which under load
    // can be seconds later. The user sees "an hour ahead", give or take the
    // answer's time — far inside the 120 s that make it a failure.
    let prefix = format!("FAIL  corp         clock     {}'s clock is ", idp.issuer);
    let secs: i64 = clock
        .strip_prefix(&prefix)
        .and_then(|r| r.strip_suffix(" s ahead of ours"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{clock}"));
    assert!((3540..=3600).contains(&secs), "{clock}");
    assert!(
        fix.starts_with("      fix: set this machine's clock right"),
        "{fix}"
    );
}

#[tokio::test]
async fn an_unknown_ca_is_named_with_the_issuer_of_the_certificate_shown() {
    let ca = TestCa::new("Corp Root CA");
    let server = ca.server();
    let idp = Idp::start(IdpOptions {
        tls: Some(IdpTls {
            cert: server.cert,
            key: server.key,
            client_ca: None,
        }),
        ..IdpOptions::default()
    });
    let agent = agent_for(&idp).await;
    let (code, lines) = doctor(&agent, &["corp"]);
    assert_eq!(code, 1, "{lines:#?}");
    let (tls, fix) = step(&lines, "corp", "tls");
    assert_eq!(
        tls,
        format!(
            "FAIL  corp         tls       127.0.0.1:{}: its TLS certificate is issued by a certificate authority regent does not trust (its certificate is issued by CN=Corp Root CA, O=regent tests)",
            idp.port
        )
    );
    assert!(
        fix.starts_with("      fix: if it is your organisation's CA"),
        "{fix}"
    );
}

/// A hand-made config that carries the proxy's password and that others may
/// read is a warning with its fix (never the password); made private, it is
/// not.
#[tokio::test]
async fn a_proxy_password_in_a_config_others_can_read_is_a_warning() {
    use std::os::unix::fs::PermissionsExt;
    let idp = Idp::start(IdpOptions::default());
    let head = "[network]\nproxy = \"http://alice:s3cret-pw@proxy.corp.example:3128\"\n\n";
    let agent = agent_with(&idp, head, Some(0o644)).await;
    let path = agent.config_file();
    let (_, lines) = doctor(&agent, &[]);
    let (line, fix) = step(&lines, "-", "config");
    assert!(line.trim_start().starts_with("warn"), "{line}");
    assert!(line.contains("others may read it (mode 644)"), "{line}");
    assert_eq!(fix.trim(), format!("fix: chmod 600 {}", path.display()));
    assert!(!lines.concat().contains("s3cret-pw"), "{lines:#?}");

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (_, lines) = doctor(&agent, &[]);
    assert!(!lines.iter().any(|l| l.contains(" config ")), "{lines:#?}");
}
