//! Grants shared by resources, per-resource access tokens, and what
//! removing, changing and restarting do to them; the version 1 migration.

use crate::fake_idp::{Options, ISSUER};
use crate::World;
use serde_json::json;

#[tokio::test(start_paused = true)]
async fn one_login_serves_every_resource_of_a_grant_with_a_token_each() {
    let w = World::new(Options::default()).await;
    w.add("a", json!({"resource": "https://a.example"})).await;
    w.add("b", json!({"resource": "https://b.example"})).await;
    w.login("a").await;
    assert_eq!(w.auth("b").await["status"], "authenticated");
    assert_eq!(w.auth("a").await["shared_with"], json!(["b"]));
    let ta = w.token("a", 30).await.unwrap();
    let tb = w.token("b", 30).await.unwrap();
    assert_ne!(ta, tb);
    assert_eq!(w.idp.resource_of(&ta).as_deref(), Some("https://a.example"));
    assert_eq!(w.idp.resource_of(&tb).as_deref(), Some("https://b.example"));
    // b's token came from the shared refresh token, with b's resource.
    let refresh = w
        .idp
        .requests()
        .into_iter()
        .find(|r| r["grant_type"] == "refresh_token")
        .unwrap();
    assert_eq!(refresh["resource"], "https://b.example");
    assert_eq!(
        w.idp.count("urn:ietf:params:oauth:grant-type:device_code"),
        1
    );
}

/// RFC 8707 lets an AS refuse a token for another resource from a grant
/// (`invalid_target`): that resource gets a login of its own, which lasts.
#[tokio::test]
async fn a_resource_the_as_will_not_share_a_grant_with_gets_its_own() {
    let mut w = World::with_file_store(Options {
        unshared: vec!["https://b.example".into()],
        ..Options::default()
    })
    .await;
    w.add("a", json!({"resource": "https://a.example"})).await;
    w.add("b", json!({"resource": "https://b.example"})).await;
    w.login("a").await;
    let err = w.token("b", 30).await.unwrap_err();
    assert_eq!(err["code"], "registry_auth_required", "{err}");
    let message = err["message"].as_str().unwrap();
    assert!(message.contains("invalid_target"), "{message}");
    assert!(message.contains("regent login b"), "{message}");
    assert_eq!(w.auth("b").await["status"], "auth_required");
    assert_eq!(w.auth("b").await["own_grant"], true);
    assert!(
        w.auth("a").await.get("shared_with").is_none(),
        "a shares with no one now"
    );
    // a is untouched; b's own login serves b.
    assert!(w.token("a", 30).await.is_ok());
    w.login("b").await;
    let tb = w.token("b", 30).await.unwrap();
    assert_eq!(w.idp.resource_of(&tb).as_deref(), Some("https://b.example"));
    assert_eq!(w.stored().len(), 2, "a grant for a, one for b");
    // The split is in the config: after a restart both logins still serve.
    w.restart().await;
    assert!(w.token("a", 30).await.is_ok());
    assert!(w.token("b", 30).await.is_ok());
    assert_eq!(
        w.idp.count("urn:ietf:params:oauth:grant-type:device_code"),
        2
    );
}

#[tokio::test]
async fn removing_or_changing_one_resource_never_touches_anothers_grant() {
    let mut w = World::with_file_store(Options::default()).await;
    w.add("a", json!({"scopes": ["openid"]})).await;
    w.add("b", json!({"scopes": ["openid"]})).await;
    w.add("c", json!({"scopes": ["openid", "profile"]})).await;
    w.login("a").await;
    w.login("c").await;
    assert_eq!(w.stored().len(), 2, "one grant for a and b, one for c");
    // Removing a keeps the grant b uses.
    let (s, _) = w.call("DELETE", "/v1/registries/a", None).await;
    assert_eq!(s, 204);
    assert_eq!(w.stored().len(), 2);
    assert_eq!(w.auth("b").await["status"], "authenticated");
    // Re-adding a with the same auth shares it again, without a login.
    w.add("a", json!({"scopes": ["openid"]})).await;
    assert_eq!(w.auth("a").await["status"], "authenticated");
    // Changing a's scopes gives a a grant of its own; b and c keep theirs.
    w.add("a", json!({"scopes": ["openid", "email"]})).await;
    assert_eq!(w.auth("a").await["status"], "auth_required");
    assert_eq!(w.auth("b").await["status"], "authenticated");
    assert_eq!(w.auth("c").await["status"], "authenticated");
    // And all of it survives a restart.
    w.restart().await;
    assert!(w.token("b", 30).await.is_ok());
    assert!(w.token("c", 30).await.is_ok());
    assert_eq!(w.auth("a").await["status"], "auth_required");
    // The last user of a grant gone: its stored tokens go with it.
    let (s, _) = w.call("DELETE", "/v1/registries/c", None).await;
    assert_eq!(s, 204);
    assert_eq!(w.stored().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_shared_login_is_logged_out_only_with_all() {
    let w = World::new(Options::default()).await;
    w.add("a", json!({})).await;
    w.add("b", json!({})).await;
    w.login("a").await;
    let (s, e) = w
        .call("POST", "/v1/logout", Some(json!({"registry": "a"})))
        .await;
    assert_eq!(s, 400, "{e}");
    let msg = e["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("shares its login with b") && msg.contains("--all"),
        "{msg}"
    );
    assert_eq!(w.auth("b").await["status"], "authenticated");
    let (s, r) = w
        .call(
            "POST",
            "/v1/logout",
            Some(json!({"registry": "a", "all": true})),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["revocation"], "revoked");
    assert_eq!(r["logged_out"], json!(["a", "b"]));
    assert_eq!(w.auth("b").await["status"], "auth_required");
    assert_eq!(w.idp.revocations(), 1);
}

#[tokio::test(start_paused = true)]
async fn logout_says_when_the_idp_offers_no_revocation() {
    let w = World::new(Options {
        revocation: false,
        ..Default::default()
    })
    .await;
    w.add("corp", json!({})).await;
    w.login("corp").await;
    let (_, r) = w.call("POST", "/v1/logout", Some(json!({}))).await;
    assert_eq!(r["revocation"], "not_offered", "{r}");
    assert_eq!(r["revoked"], false);
    assert_eq!(w.idp.revocations(), 0);
    let (_, r) = w.call("POST", "/v1/logout", Some(json!({}))).await;
    assert_eq!(r["revocation"], "not_needed", "{r}");
}

/// A store written by version 1 (one token set per registry under the old
/// key): the agent migrates it at start, and the login is kept.
#[tokio::test]
async fn a_version_1_store_is_migrated_and_keeps_the_login() {
    let mut w = World::with_file_store(Options::default()).await;
    w.add("corp", json!({})).await;
    w.login("corp").await;
    let token = w.token("corp", 30).await.unwrap();
    // Rewrite the store as version 1 would have left it.
    let v2 = w.stored();
    let (_, grant) = v2.iter().next().unwrap();
    let rt = grant["refresh_token"].as_str().unwrap();
    let at = grant["tokens"][""].clone();
    let v1_key = regentd::store::keys::v1("https://corp.example", ISSUER, "cli");
    let v1 = json!({ v1_key.clone(): {
        "access_token": at["access_token"], "expires_at": at["expires_at"],
        "obtained_at": at["obtained_at"], "refresh_token": rt,
        "scope": "openid offline_access", "issuer": ISSUER, "account": "alice"
    }});
    std::fs::write(w.home.path().join("tokens.json"), v1.to_string()).unwrap();
    w.restart().await;
    // The same access token, served from the migrated grant, with no IdP request.
    let before = w.idp.refreshes();
    assert_eq!(w.token("corp", 30).await.unwrap(), token);
    assert_eq!(w.idp.refreshes(), before);
    assert_eq!(w.auth("corp").await["account"], "alice");
    let stored = w.stored();
    let grant_key = regentd::store::keys::grant(ISSUER, "cli", &[]);
    assert!(stored.contains_key(&grant_key), "{stored:?}");
    assert!(
        !stored.contains_key(&v1_key),
        "the version 1 entry is still there"
    );
    assert_eq!(stored[&grant_key]["refresh_token"], rt);
    // And the migrated refresh token works.
    let (s, _) = w
        .call(
            "POST",
            "/v1/token/invalidate",
            Some(json!({"registry": "corp", "access_token": token})),
        )
        .await;
    assert_eq!(s, 204);
    let fresh = w.token("corp", 30).await.unwrap();
    assert!(w.idp.is_active(&fresh));
}

/// A login is lent to a resource on another origin only on the user's
/// word: without it the change is refused (naming both ways on); `false`
/// gives it a login of its own; the same origin shares freely.
#[tokio::test]
async fn a_login_is_shared_across_origins_only_on_the_users_word() {
    let w = World::new(Options::default()).await;
    w.add("corp", json!({})).await;
    w.login("corp").await;
    let put = |name: &str, url: &str, share: Option<bool>| {
        let mut body =
            json!({"url": url, "auth": {"type": "oauth", "issuer": ISSUER, "client_id": "cli"}});
        if let Some(s) = share {
            body["share_login"] = json!(s);
        }
        let path = format!("/v1/registries/{name}");
        let w = &w;
        async move { w.call("PUT", &path, Some(body)).await }
    };
    let (s, v) = put("evil", "https://evil.example", None).await;
    assert_eq!(s, 409, "{v}");
    assert_eq!(v["error"]["code"], "consent_required");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("corp (https://corp.example)")
            && msg.contains("--share-login")
            && msg.contains("--own-login"),
        "{msg}"
    );
    assert_eq!(w.auth("evil").await, serde_json::Value::Null, "not added");
    // A login of its own: nothing lent.
    let (s, v) = put("evil", "https://evil.example", Some(false)).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["auth"]["status"], "auth_required", "{v}");
    assert_eq!(v["auth"]["shared_with"], json!(null), "{v}");
    assert!(w.token("evil", 0).await.is_err());
    // The same origin shares without asking.
    let (s, v) = put("corp-two", "https://corp.example/two", None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["auth"]["status"], "authenticated", "{v}");
    assert_eq!(v["auth"]["shared_with"], json!(["corp"]), "{v}");
    // And another origin with the user's word.
    let (s, v) = put("partner", "https://partner.example", Some(true)).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["auth"]["status"], "authenticated", "{v}");
}

/// A server that moved to another AS is discovered again (a new
/// registration there, a new login), and the user's DPoP choice goes with
/// it: the new config keeps `dpop = "never"`, not the default.
#[tokio::test(start_paused = true)]
async fn a_move_to_another_as_keeps_the_dpop_choice() {
    let w = World::new(Options::default()).await;
    w.add(
        "corp",
        json!({"resource": "https://corp.example", "dpop": "never"}),
    )
    .await;
    w.login("corp").await;
    let token = w.token("corp", 30).await.unwrap();
    w.idp.move_resources_to("https://as2.test");
    let (s, v) = w
        .call(
            "POST",
            "/v1/challenge",
            Some(json!({
                "registry": "corp",
                "status": 401,
                "www_authenticate": [
                    "Bearer resource_metadata=\"https://corp.example/.well-known/oauth-protected-resource\""
                ],
                "access_token": token,
                "attempt": 1,
            })),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["next"], "login", "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("moved to another authorization server"),
        "{v}"
    );
    let config = std::fs::read_to_string(w.config_path()).unwrap();
    let config: toml::Value = toml::from_str(&config).unwrap();
    let auth = &config["registries"]["corp"]["auth"];
    assert_eq!(
        auth["issuer"].as_str(),
        Some("https://as2.test"),
        "{config}"
    );
    assert_eq!(auth["client_id"].as_str(), Some("registered-1"), "{config}");
    assert_eq!(auth["dpop"].as_str(), Some("never"), "{config}");
}
