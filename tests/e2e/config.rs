//! Registry configuration over time: static tokens, auth changes, restarts
//! with several registries, the default store.

use crate::{World, REGISTRY_URL};
use regent_tests::keyring::SecretService;
use regent_tests::{Agent, AgentOptions};
use std::os::unix::fs::PermissionsExt;

#[tokio::test]
async fn a_static_token_file_is_served_as_it_is_and_reread() {
    let a = Agent::start(AgentOptions::default()).await;
    let file = a.home().join("registry-token");
    std::fs::write(&file, "static-token-1\n").unwrap();
    let out = a.regent(&[
        "registry",
        "add",
        "ci",
        REGISTRY_URL,
        "--token-file",
        &file.display().to_string(),
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = a.regent(&["token", "ci"]);
    assert_eq!((out.code, out.stdout.as_str()), (0, "static-token-1\n"));
    std::fs::write(&file, "static-token-2").unwrap();
    assert_eq!(a.regent(&["token"]).stdout, "static-token-2\n");
    std::fs::write(&file, "  \n").unwrap();
    let out = a.regent(&["token"]);
    assert_eq!(out.code, 4, "{out:?}");
    assert!(out.stderr.contains("is empty"), "{}", out.stderr);
    std::fs::remove_file(&file).unwrap();
    let out = a.regent(&["token"]);
    assert_eq!(out.code, 4);
    assert!(
        out.stderr.contains("cannot read the token file"),
        "{}",
        out.stderr
    );
    assert!(
        !a.log().contains("static-token"),
        "the token file's content is in the log"
    );
    let out = a.regent(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["registries"][0]["auth"]["type"], "bearer");
    assert_eq!(v["registries"][0]["auth"]["status"], "auth_required");
}

/// `config set-registry-auth --api` and `unset-registry-auth --api` set and
/// remove an API's auth as they do a registry's; a registry is not taken
/// for an API, nor the other way round.
#[tokio::test]
async fn an_apis_auth_is_set_and_unset_from_the_cli() {
    let a = Agent::start(AgentOptions::default()).await;
    let file = a.home().join("forge-token");
    std::fs::write(&file, "forge-token-1\n").unwrap();
    let file = file.display().to_string();
    let out = a.regent(&[
        "api",
        "add",
        "forge",
        "https://forge.example.test",
        "--no-auth",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = a.regent(&["registry", "add", "ci", REGISTRY_URL, "--token-file", &file]);
    assert_eq!(out.code, 0, "{}", out.stderr);

    let set = |name: &str, as_what: &str| {
        a.regent(&[
            "config",
            "set-registry-auth",
            as_what,
            name,
            "--token-file",
            &file,
        ])
    };
    let out = set("forge", "--api");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout.trim(), "Auth of API forge set.");
    let out = a.regent(&["token", "forge"]);
    assert_eq!((out.code, out.stdout.as_str()), (0, "forge-token-1\n"));
    let v: serde_json::Value =
        serde_json::from_str(&a.regent(&["api", "list", "--json"]).stdout).unwrap();
    assert_eq!(v["apis"][0]["auth"]["type"], "bearer", "{v}");
    // A registry is not an API, and an API not a registry.
    for (name, as_what, said) in [
        ("ci", "--api", "ci is a registry, not an API"),
        ("forge", "--registry", "forge is an API, not a registry"),
    ] {
        let out = set(name, as_what);
        assert_ne!(out.code, 0);
        assert!(out.stderr.contains(said), "{}", out.stderr);
    }
    assert_eq!(a.regent(&["token", "ci"]).stdout, "forge-token-1\n");
    // Both at once is a usage error.
    let out = a.regent(&[
        "config",
        "set-registry-auth",
        "--api",
        "forge",
        "--registry",
        "ci",
    ]);
    assert_eq!(out.code, 2, "{}", out.stderr);

    let out = a.regent(&["config", "unset-registry-auth", "--api", "forge"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.starts_with("Auth of API forge removed"),
        "{}",
        out.stdout
    );
    let out = a.regent(&["token", "forge"]);
    assert_eq!(out.code, 1, "auth_not_configured: {}", out.stderr);
    assert_eq!(a.regent(&["token", "ci"]).stdout, "forge-token-1\n");
}

#[tokio::test]
async fn changing_auth_keeps_or_drops_the_tokens_as_it_should() {
    let w = World::default().await;
    w.login("alice").await;
    let before = w.token(&[]);
    // Adding the same registry again with the same config keeps the login.
    let same = [
        "registry",
        "add",
        "corp",
        REGISTRY_URL,
        "--issuer",
        &w.idp.issuer,
        "--client-id",
        "regent-test",
    ];
    assert_eq!(w.agent.regent(&same).code, 0);
    assert_eq!(w.token(&[]), before);
    // Different scopes: a different login, the old tokens deleted.
    let out = w.agent.regent(&[
        "config",
        "set-registry-auth",
        "--issuer",
        &w.idp.issuer,
        "--client-id",
        "regent-test",
        "--scopes",
        "openid,profile",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(w.agent.stored().is_empty());
    assert_eq!(w.agent.regent(&["token"]).code, 4);
    w.login("alice").await;
    assert_eq!(w.agent.stored().len(), 1);
    // Unsetting auth deletes them too.
    assert_eq!(
        w.agent
            .regent(&["config", "unset-registry-auth", "--registry", "corp"])
            .code,
        0
    );
    assert!(w.agent.stored().is_empty());
    assert_eq!(w.agent.regent(&["token"]).code, 1, "auth_not_configured");
    // No auth flags at all is a usage error.
    assert_eq!(w.agent.regent(&["config", "set-registry-auth"]).code, 2);
}

#[tokio::test]
async fn a_restart_restores_every_registry() {
    let mut w = World::default().await;
    let out = w.agent.regent(&[
        "registry",
        "add",
        "second",
        "https://second.example.test",
        "--issuer",
        &w.idp.issuer,
        "--client-id",
        "regent-test",
        "--scopes",
        "openid,profile",
    ]);
    assert_eq!(out.code, 0);
    w.login("alice").await;
    crate::device_login(&w.agent, Some("second"), "bob").await;
    let a = w.token(&["corp"]);
    let b = w.token(&["second"]);
    w.agent.restart_after_kill9().await;
    assert_eq!(w.token(&["corp"]), a);
    assert_eq!(w.token(&["second"]), b);
    let status = w.status();
    let accounts: Vec<_> = status["registries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["auth"]["account"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(accounts, ["alice", "bob"]);
}

#[tokio::test]
async fn the_default_store_is_the_secret_service_when_a_bus_answers_else_keyutils() {
    let a = Agent::start(AgentOptions {
        store: "auto".into(),
        ..Default::default()
    })
    .await;
    assert_eq!(a.client().health().await.unwrap().store, "keyutils");
    let ss = SecretService::start();
    let b = Agent::start(AgentOptions {
        store: "auto".into(),
        env: vec![("DBUS_SESSION_BUS_ADDRESS".into(), ss.bus.clone())],
        ..Default::default()
    })
    .await;
    assert_eq!(b.client().health().await.unwrap().store, "secret-service");
}

#[tokio::test]
async fn the_client_refuses_a_socket_behind_a_symlink() {
    let a = Agent::start(AgentOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(a.socket.parent().unwrap(), &link).unwrap();
    let out = std::process::Command::new(regent_tests::bin("regent"))
        .args([
            "--socket",
            &link.join("agent.sock").display().to_string(),
            "status",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("symbolic link"));
}

/// `registry add` says what a re-add did (nothing; or a new login needed),
/// warns about URLs that name an API path or carry a query, and refuses a
/// token over cleartext http off loopback.
#[tokio::test]
async fn registry_add_explains_urls_and_re_adds() {
    let w = World::default().await;
    let add = |name: &str, url: &str, extra: &[&str]| {
        let mut args = vec!["registry", "add", name, url];
        args.extend_from_slice(extra);
        w.agent.regent(&args)
    };
    let oauth = [
        "--issuer",
        w.idp.issuer.as_str(),
        "--client-id",
        regent_tests::idp::CLIENT_ID,
    ];
    let out = add("corp", REGISTRY_URL, &oauth);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("is unchanged"), "{}", out.stdout);

    w.login("alice").await;
    let mut scoped = oauth.to_vec();
    scoped.extend(["--scopes", "openid,profile"]);
    let out = add("corp", REGISTRY_URL, &scoped);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("you are logged out of corp"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("Log in with: regent login corp"),
        "{}",
        out.stdout
    );

    let out = add(
        "api",
        &format!("{REGISTRY_URL}/v0.1/servers"),
        &["--no-auth"],
    );
    assert_eq!(out.code, 0);
    assert!(
        out.stderr
            .contains(&format!("did you mean {REGISTRY_URL}?")),
        "{}",
        out.stderr
    );
    let out = add("q", &format!("{REGISTRY_URL}/?team=a"), &["--no-auth"]);
    assert!(
        out.stderr.contains("has a query or fragment"),
        "{}",
        out.stderr
    );

    let out = add("plain", "http://registry.example.test", &oauth);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("cleartext http"), "{}", out.stderr);
    let out = add(
        "plain",
        "http://127.0.0.1:9/",
        &["--token-file", "/etc/hostname"],
    );
    assert_eq!(out.code, 0, "loopback http is fine: {}", out.stderr);
}
