//! The real OS keyrings hold the tokens: proof that no mock store is in use.

use crate::World;
use regent_tests::keyring::{keyctl_finds, SecretService};
use regent_tests::{AgentOptions, IdpOptions};

/// The store key the contract derives for the test registry's grant:
/// `sha256(issuer \0 client_id \0 scopes)`, no scopes configured.
fn store_key(issuer: &str) -> String {
    use std::fmt::Write;
    let mut input = Vec::new();
    input.extend_from_slice(issuer.as_bytes());
    input.push(0);
    input.extend_from_slice(regent_tests::idp::CLIENT_ID.as_bytes());
    input.push(0);
    let out = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write as _;
            c.stdin.take().unwrap().write_all(&input)?;
            c.wait_with_output()
        })
        .unwrap();
    let hex = String::from_utf8(out.stdout).unwrap();
    let mut key = String::from("regent:");
    write!(key, "{}", &hex[..16]).unwrap();
    key
}

#[tokio::test]
async fn keyutils_holds_the_tokens_until_logout_and_across_restarts() {
    let mut w = World::new(
        IdpOptions::default(),
        AgentOptions {
            store: "keyutils".into(),
            ..Default::default()
        },
    )
    .await;
    let desc = format!("keyring:{}@regent", store_key(&w.idp.issuer));
    assert!(!keyctl_finds(&desc));
    w.login("alice").await;
    assert!(keyctl_finds(&desc), "keyctl does not find {desc}");
    assert_eq!(w.status()["agent"]["store"], "keyutils");
    assert_eq!(w.status()["registries"][0]["auth"]["persisted"], true);
    let before = w.token(&[]);
    w.agent.restart_after_kill9().await;
    assert_eq!(
        w.token(&[]),
        before,
        "the restarted agent did not find its key"
    );
    assert_eq!(w.agent.regent(&["logout"]).code, 0);
    assert!(!keyctl_finds(&desc), "the key survived the logout");
}

#[tokio::test]
async fn the_secret_service_holds_the_tokens() {
    let ss = SecretService::start();
    let w = World::new(
        IdpOptions::default(),
        AgentOptions {
            store: "secret-service".into(),
            env: vec![("DBUS_SESSION_BUS_ADDRESS".into(), ss.bus.clone())],
            ..Default::default()
        },
    )
    .await;
    let key = store_key(&w.idp.issuer);
    w.login("alice").await;
    let found = ss.search(&["service", "regent", "username", &key]);
    assert!(
        found.contains(&key),
        "secret-tool does not find {key}: {found}"
    );
    assert_eq!(w.status()["agent"]["store"], "secret-service");
    assert_eq!(w.agent.regent(&["logout"]).code, 0);
    let found = ss.search(&["service", "regent", "username", &key]);
    assert!(
        !found.contains(&key),
        "the item survived the logout: {found}"
    );
}
