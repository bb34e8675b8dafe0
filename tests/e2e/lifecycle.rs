//! Token lifecycle: cache, refresh, single flight, rotation, restarts,
//! refusals and outages, against the real IdP.

use crate::World;
use std::collections::HashSet;
use std::time::Duration;

#[tokio::test]
async fn a_refresh_is_persisted_with_its_rotated_refresh_token() {
    let w = World::default().await;
    w.login("alice").await;
    let first = w.token(&[]);
    let rt_before = w.agent.stored_refresh_token().unwrap();
    w.invalidate().await;
    let second = w.token(&[]);
    assert_ne!(first, second, "a refused token was served again");
    assert_eq!(w.idp.refreshes().await, 1);
    let rt_after = w.agent.stored_refresh_token().unwrap();
    assert_ne!(
        rt_before, rt_after,
        "the rotated refresh token was not stored"
    );
    assert!(w.idp.is_active(&second).await);
    assert!(w.agent.log().contains("refreshed access token"));
}

#[tokio::test]
async fn fifty_concurrent_callers_on_a_refused_token_cause_one_refresh() {
    let w = World::default().await;
    w.login("alice").await;
    let old = w.token(&[]);
    w.invalidate().await;
    w.idp.reset().await;
    // The IdP holds the refresh until all fifty callers wait for it at the agent.
    w.idp.hold(1).await;
    let runs: Vec<_> = (0..50)
        .map(|_| tokio::process::Command::from(w.agent.regent_command(&["token"])).output())
        .collect();
    let all = tokio::spawn(futures::future::join_all(runs));
    w.idp.wait_held(1).await;
    w.agent
        .wait_log("token request waits for the refresh in flight", 50)
        .await;
    w.idp.release().await;
    let outs = all.await.unwrap();
    let mut tokens = HashSet::new();
    for o in outs {
        let o = o.unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        tokens.insert(String::from_utf8_lossy(&o.stdout).trim().to_string());
    }
    assert_eq!(tokens.len(), 1, "callers got different tokens");
    assert!(!tokens.contains(&old));
    assert_eq!(w.idp.refreshes().await, 1, "{}", w.idp.counts().await);
    // The IdP's reuse detection never fired: the stored refresh token still refreshes.
    let rt = w.agent.stored_refresh_token().unwrap();
    let (status, body) = w.idp.refresh_directly(&rt).await;
    assert_eq!(status, 200, "the agent's grant was revoked: {body}");
}

#[tokio::test]
async fn kill_9_and_restart_serve_a_token_without_login() {
    let mut w = World::default().await;
    w.login("alice").await;
    let before = w.token(&[]);
    w.agent.restart_after_kill9().await;
    let after = w.token(&[]);
    assert_eq!(
        before, after,
        "the restored access token is served from the store"
    );
    assert_eq!(w.status()["registries"][0]["auth"]["account"], "alice");
}

#[tokio::test]
async fn rotation_then_restart_then_refresh_still_works() {
    let mut w = World::default().await;
    w.login("alice").await;
    w.invalidate().await;
    w.token(&[]); // refresh 1: rotates
    w.agent.restart_after_kill9().await;
    w.invalidate().await;
    let t = w.token(&[]); // refresh 2, with the rotated token from the store
    assert_eq!(w.idp.refreshes().await, 2);
    assert!(w.idp.is_active(&t).await);
}

#[tokio::test]
async fn a_refresh_token_revoked_at_the_idp_means_login_required_and_nothing_kept() {
    let w = World::default().await;
    w.login("alice").await;
    let rt = w.agent.stored_refresh_token().unwrap();
    w.idp.revoke(&rt, "refresh_token").await;
    w.invalidate().await;
    let out = w.agent.regent(&["token"]);
    assert_eq!(out.code, 4, "{out:?}");
    assert!(out.stderr.contains("regent login corp"), "{}", out.stderr);
    assert!(
        w.agent.stored().is_empty(),
        "the refused tokens are still stored"
    );
    assert_eq!(
        w.status()["registries"][0]["auth"]["status"],
        "auth_required"
    );
}

/// An IdP that refuses a refresh with an empty `400` (no OAuth error object)
/// has refused the grant: `regent token` says log in, exits 4, and the next
/// call does not refresh again.
#[tokio::test]
async fn an_empty_400_on_refresh_means_login_required_and_is_not_retried() {
    let w = World::default().await;
    w.login("alice").await;
    w.idp
        .fault(serde_json::json!({"mode": "empty_400", "times": 1}))
        .await;
    w.invalidate().await;
    let out = w.agent.regent(&["token"]);
    assert_eq!(out.code, 4, "{out:?}");
    assert!(
        out.stderr.contains("HTTP 400") && out.stderr.contains("regent login corp"),
        "{}",
        out.stderr
    );
    let refreshes = w.idp.counts().await["token"]["refresh_token"].clone();
    assert_eq!(w.agent.regent(&["token"]).code, 4);
    assert_eq!(
        w.idp.counts().await["token"]["refresh_token"],
        refreshes,
        "a refused refresh was tried again"
    );
}

#[tokio::test]
async fn an_idp_outage_keeps_everything_and_recovers() {
    let w = World::default().await;
    w.login("alice").await;
    let valid = w.token(&[]);
    let stored = w.agent.stored();
    w.idp.go_down();
    // A token refused by a resource server needs a refresh, which cannot be had.
    w.invalidate().await;
    let out = w.agent.regent(&["token"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("cannot reach the IdP"),
        "{}",
        out.stderr
    );
    assert_eq!(
        w.agent.stored(),
        stored,
        "the store changed during the outage"
    );
    w.idp.come_back().await;
    // Once the failure is no longer reused (the agent's own second), a caller refreshes.
    let fresh = regent_tests::eventually(
        "a refresh after the outage",
        Duration::from_secs(30),
        || async {
            let out = w.agent.regent(&["token"]);
            (out.code == 0).then(|| out.stdout.trim().to_string())
        },
    )
    .await;
    assert_ne!(fresh, valid);
    assert!(w.idp.is_active(&fresh).await);
}

/// The race regent exists to prevent: two programs that each hold the same
/// refresh token and refresh at once. With rotation and reuse detection the
/// IdP revokes the whole family, and the winner's new token dies too.
#[tokio::test]
async fn two_independent_refreshers_get_the_family_revoked() {
    let mut w = World::default().await;
    w.login("alice").await;
    let rt = w.agent.stored_refresh_token().unwrap();
    w.agent.kill9(); // from here on, two plain processes share the refresh token
    let refresh = |rt: String, issuer: String| {
        tokio::process::Command::new("curl")
            .args(["-s", "-X", "POST", &format!("{issuer}/token")])
            .args([
                "-d",
                "grant_type=refresh_token",
                "-d",
                "client_id=regent-test",
            ])
            .arg("--data-urlencode")
            .arg(format!("refresh_token={rt}"))
            .output()
    };
    let (a, b) = tokio::join!(
        refresh(rt.clone(), w.idp.issuer.clone()),
        refresh(rt.clone(), w.idp.issuer.clone())
    );
    let answers: Vec<serde_json::Value> = [a, b]
        .into_iter()
        .map(|o| serde_json::from_slice(&o.unwrap().stdout).unwrap())
        .collect();
    let winners: Vec<_> = answers
        .iter()
        .filter_map(|v| v["refresh_token"].as_str())
        .collect();
    let losers = answers
        .iter()
        .filter(|v| v["error"] == "invalid_grant")
        .count();
    // One rotated the token; the other replayed the rotated one and was refused...
    assert_eq!((winners.len(), losers), (1, 1), "{answers:?}");
    // ...and reuse detection revoked the family: the winner's new token is dead too.
    let (status, body) = w.idp.refresh_directly(winners[0]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );

    // Through the agent the same storm costs one refresh and the grant lives:
    // fifty_concurrent_callers_on_a_refused_token_cause_one_refresh.
}

#[tokio::test]
async fn a_store_that_fails_at_run_time_degrades_to_memory_visibly() {
    let w = World::default().await;
    w.login("alice").await;
    // Replace the token file with a directory: every store access fails.
    std::fs::remove_file(w.agent.token_file()).unwrap();
    std::fs::create_dir(w.agent.token_file()).unwrap();
    for _ in 0..2 {
        w.invalidate().await;
        let t = w.token(&[]); // a refresh; its store write fails
        assert!(w.idp.is_active(&t).await);
    }
    let auth = &w.status()["registries"][0]["auth"];
    assert_eq!(auth["persisted"], false, "{auth}");
    assert_eq!(auth["status"], "authenticated");
    let warnings = w
        .agent
        .log()
        .matches("keeping tokens in memory only")
        .count();
    assert_eq!(
        warnings,
        1,
        "one warning for two failures:\n{}",
        w.agent.log()
    );
    // The store works again: the next refresh is persisted, and status says so.
    std::fs::remove_dir(w.agent.token_file()).unwrap();
    w.invalidate().await;
    let t = w.token(&[]);
    assert_eq!(w.status()["registries"][0]["auth"]["persisted"], true);
    assert!(w.agent.log().contains("works again"));
    assert!(w.agent.stored_refresh_token().is_some());
    assert!(w.idp.is_active(&t).await);
}

/// `--min-valid` longer than the IdP's tokens live: the freshest token is
/// served (on stdout, exit 0), and stderr says it is shorter than asked.
#[tokio::test]
async fn a_min_valid_longer_than_the_idps_tokens_is_said() {
    let w = World::default().await;
    w.login("alice").await;
    let out = w.agent.regent(&["token", "--min-valid", "100000"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(w.idp.is_active(out.stdout.trim()).await);
    assert!(
        out.stderr.contains("less than the") && out.stderr.contains("--min-valid"),
        "{}",
        out.stderr
    );
    let out = w.agent.regent(&["token"]);
    assert!(out.stderr.is_empty(), "{}", out.stderr);
}
