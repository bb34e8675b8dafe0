//! The main job, end to end: the bundled test IdP, the real agent on the
//! kernel keyring, a registry, a device login completed on the IdP's own
//! forms, a token; then two MCP servers added by discovery, one login for
//! both, and a real MCP client (the official SDK's) calling a tool through
//! `regent mcp proxy` on each wire (2025-11-25 and 2026-07-28); and
//! `regent status`. Run it with `scripts/demo`.

use regent_tests::mcp::McpServers;
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
    device_login(&agent, "corp").await;

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

    step(
        "Two MCP servers behind the same IdP, added by discovery (RFC 9728 metadata, registration)",
    );
    let servers = McpServers::start_dual(&idp.issuer, &["tools", "docs"]);
    for name in ["tools", "docs"] {
        shell(&agent, &["mcp", "add", name, servers.url(name)]);
    }
    step("One login for both servers");
    device_login(&agent, "tools").await;
    step(
        "A real MCP client (the official TypeScript SDK's) through regent mcp proxy, on both wires",
    );
    for name in ["tools", "docs"] {
        for wire in ["2025-11-25", "2026-07-28"] {
            println!("$ <MCP client on {wire}> -> regent mcp proxy {name} -> tools/call whoami");
            let answers = regent_tests::mcp::real_client(
                &agent,
                wire,
                name,
                &[("whoami", serde_json::json!({}))],
            )
            .unwrap_or_else(|e| panic!("the MCP client failed: {e}"));
            println!("  {}", answers[0].text.as_deref().unwrap_or("(no text)"));
        }
    }
    step("Status");
    shell(&agent, &["status"]);
    step("Logging out (revokes at the IdP, deletes the keyring entry); the demo's IdP and agent stop with it");
    shell(&agent, &["logout", "corp"]);
}

/// `regent login --device NAME`, its code entered on the IdP's own forms.
async fn device_login(agent: &Agent, name: &str) {
    println!("$ regent login --device {name}");
    let mut child = agent
        .regent_command(&["login", "--device", name])
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
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "regent login failed");
}
