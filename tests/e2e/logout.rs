//! What logout says: revoked, not offered, or shared with other registries.

use crate::World;
use regent_tests::{AgentOptions, IdpOptions};

async fn world(idp: IdpOptions) -> World {
    World::new(idp, AgentOptions::default()).await
}

#[tokio::test]
async fn without_a_revocation_endpoint_logout_says_the_refresh_token_stays_valid() {
    let w = world(IdpOptions {
        no_revocation: true,
        ..Default::default()
    })
    .await;
    w.login("alice").await;
    let rt = w.agent.stored_refresh_token().unwrap();
    let out = w.agent.regent(&["logout", "corp"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("offers no revocation")
            && out.stdout.contains("stays valid there until it expires"),
        "{}",
        out.stdout
    );
    assert!(w.agent.stored().is_empty());
    assert!(w.idp.is_active(&rt).await, "nothing revoked it");
}

/// The RFC 8414 document names no revocation endpoint; the OpenID
/// configuration does: the agent finds it there.
#[tokio::test]
async fn a_revocation_endpoint_in_only_one_metadata_document_is_found() {
    let w = world(IdpOptions {
        rfc8414_without_revocation: true,
        ..Default::default()
    })
    .await;
    w.login("alice").await;
    let rt = w.agent.stored_refresh_token().unwrap();
    let out = w.agent.regent(&["logout"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("revoked at the IdP"), "{}", out.stdout);
    assert!(!w.idp.is_active(&rt).await);
    assert_eq!(w.idp.counts().await["revocation"], 1);
}

#[tokio::test]
async fn a_shared_login_is_logged_out_only_when_the_user_says_all() {
    let w = world(IdpOptions::default()).await;
    // Another origin: the login is shared only on the user's word.
    let out = w.agent.regent(&[
        "registry",
        "add",
        "mirror",
        "https://mirror.example.test",
        "--issuer",
        &w.idp.issuer,
        "--client-id",
        regent_tests::idp::CLIENT_ID,
    ]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("--share-login") && out.stderr.contains("--own-login"),
        "{}",
        out.stderr
    );
    let out = w.agent.regent(&[
        "registry",
        "add",
        "mirror",
        "https://mirror.example.test",
        "--issuer",
        &w.idp.issuer,
        "--client-id",
        regent_tests::idp::CLIENT_ID,
        "--share-login",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    w.login("alice").await;
    let status = w.status();
    assert_eq!(
        status["registries"][0]["auth"]["shared_with"],
        serde_json::json!(["mirror"])
    );
    assert_eq!(status["registries"][1]["auth"]["status"], "authenticated");
    // Not a terminal: no question to ask, so nothing is logged out.
    let out = w.agent.regent(&["logout", "corp"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("shares its login with mirror") && out.stderr.contains("--all"),
        "{}",
        out.stderr
    );
    assert!(w.token(&["mirror"]).len() > 10);
    let out = w.agent.regent(&["logout", "corp", "--all"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.starts_with("Logged out of corp, mirror:"),
        "{}",
        out.stdout
    );
    assert_eq!(w.agent.regent(&["token", "mirror"]).code, 4);
    // Removing one of two sharers keeps the login for the other.
    w.login("alice").await;
    let out = w.agent.regent(&["registry", "remove", "corp"]);
    assert!(
        out.stdout
            .contains("Its login stays: mirror still uses it."),
        "{}",
        out.stdout
    );
    assert_eq!(w.agent.stored().len(), 1);
    assert_eq!(w.agent.regent(&["token", "mirror"]).code, 0);
}
