//! The main job, end to end: the bundled test IdP, the real agent on the
//! kernel keyring, a registry, a device login completed on the IdP's own
//! forms, a token, and `regent status`. Run it with `scripts/demo`.

use regent_tests::{forms, Agent, AgentOptions, Idp, IdpOptions};
use std::io::{BufRead, BufReader};
use std::process::Stdio;

fn step(what: &str) {
    println!("\n\x1b[1m==> {what}\x1b[0m");
}

fn shell(agent: &Agent, args: &[&str]) -> String {
    println!("$ regent {}", args.join(" "));
    let out = agent.regent(args);
    print!("{}", out.stdout);
    eprint!("{}", out.stderr);
    assert_eq!(out.code, 0, "regent {} failed", args.join(" "));
    out.stdout
}

#[tokio::main]
async fn main() {
    step("Starting the bundled test IdP (npm oidc-provider) on a loopback port");
    let idp = Idp::start(IdpOptions::default());
    println!("issuer: {}", idp.issuer);

    step("Starting regentd (store: kernel keyutils keyring) in a temporary home");
    let agent = Agent::start(AgentOptions {
        store: "keyutils".into(),
        ..Default::default()
    })
    .await;
    println!("socket: {}", agent.socket.display());

    step("Adding a registry with OAuth (the agent checks the IdP's metadata first)");
    shell(
        &agent,
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

    step("Logging in with the device flow");
    println!("$ regent login --device corp");
    let mut child = agent
        .regent_command(&["login", "--device", "corp"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("regent login starts");
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let (mut uri, mut code) = (None, None);
    let mut line = String::new();
    while code.is_none() {
        line.clear();
        if err.read_line(&mut line).unwrap() == 0 {
            panic!("regent login ended without showing a code");
        }
        eprint!("{line}");
        let t = line.trim();
        if t.starts_with("http") {
            uri = Some(t.to_string());
        }
        if let Some(c) = t.strip_prefix("and enter the code:") {
            code = Some(c.trim().to_string());
        }
    }
    println!(
        "[demo] completing the IdP's own device, login and consent forms as user \"demo\" \
         (a person would do this in a browser on any device)"
    );
    forms::approve_device(&uri.unwrap(), &code.unwrap(), "demo")
        .await
        .expect("the IdP accepts the login");
    let out = child.wait_with_output().expect("regent login ends");
    print!("{}", String::from_utf8_lossy(&out.stdout));
    assert!(out.status.success(), "regent login failed");

    step("A token for scripts (refreshed by the agent, once for everyone, when needed)");
    let token = shell(&agent, &["token", "corp"]);
    println!(
        "[demo] the IdP says this token is {}",
        if idp.is_active(token.trim()).await {
            "active"
        } else {
            "NOT active"
        }
    );

    step("Status");
    shell(&agent, &["status"]);
    step("Logging out (revokes at the IdP, deletes the keyring entry); the demo's IdP and agent stop with it");
    shell(&agent, &["logout", "corp"]);
}
