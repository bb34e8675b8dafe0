//! Token lifecycle: cache, refresh, single flight, rotation, restarts,
//! refusals and outages, against the real IdP.

use crate::World;
use regent_tests::{AgentOptions, IdpOptions};
use std::collections::HashSet;
use std::time::Duration;

fn short(access_ttl: u64) -> IdpOptions {
    IdpOptions {
        access_ttl,
        ..Default::default()
    }
}

#[tokio::test]
async fn a_cached_token_is_served_without_asking_the_idp() {
    let w = World::default().await;
    w.login("alice").await;
    w.idp.reset().await;
    let a = w.token(&[]);
    let b = w.token(&["corp"]);
    assert_eq!(a, b);
    let counts = w.idp.counts().await;
    assert_eq!(
        counts["token"],
        serde_json::json!({}),
        "no token request: {counts}"
    );
}

#[tokio::test]
async fn an_expired_token_is_refreshed_and_the_rotation_persisted() {
    let w = World::new(short(2), AgentOptions::default()).await;
    w.login("alice").await;
    let first = w.token(&["--min-valid", "0"]);
    let rt_before = w.agent.stored_refresh_token().unwrap();
    tokio::time::sleep(Duration::from_millis(2300)).await;
    let second = w.token(&["--min-valid", "0"]);
    assert_ne!(first, second, "an expired token was served");
    assert_eq!(w.idp.refreshes().await, 1);
    let rt_after = w.agent.stored_refresh_token().unwrap();
    assert_ne!(
        rt_before, rt_after,
        "the rotated refresh token was not stored"
    );
    assert!(w.idp.is_active(&second).await);
    // No token reaches the agent's log, even at debug level.
    let log = w.agent.log();
    assert!(log.contains("refreshed access token"), "{log}");
    for secret in [&first, &second, &rt_before, &rt_after] {
        assert!(!log.contains(secret.as_str()), "a token is in the log");
    }
}

#[tokio::test]
async fn a_token_in_its_last_stretch_is_served_at_once_and_refreshed_behind() {
    // Lifetime 4 s: the refresh-ahead window is its second half.
    let w = World::new(short(4), AgentOptions::default()).await;
    w.login("alice").await;
    let first = w.token(&["--min-valid", "0"]);
    tokio::time::sleep(Duration::from_millis(2300)).await;
    assert_eq!(w.idp.refreshes().await, 0);
    // Still valid: served as it is, and one background refresh starts.
    assert_eq!(w.token(&["--min-valid", "0"]), first);
    let idp = &w.idp;
    regent_tests::eventually("the background refresh", Duration::from_secs(5), || async {
        (idp.refreshes().await == 1).then_some(())
    })
    .await;
    let next = w.token(&["--min-valid", "0"]);
    assert_ne!(next, first);
    assert_eq!(w.idp.refreshes().await, 1);
}

#[tokio::test]
async fn fifty_concurrent_callers_on_a_stale_token_cause_one_refresh() {
    // Lifetime 8 s: the new token stays out of its refresh-ahead window (the
    // last 4 s) while all fifty callers are served.
    let w = World::new(short(8), AgentOptions::default()).await;
    w.login("alice").await;
    let old = w.token(&["--min-valid", "1"]);
    tokio::time::sleep(Duration::from_millis(8200)).await;
    w.idp.reset().await;
    // The IdP takes 1.5 s to answer the refresh: every caller arrives while it is in flight.
    w.idp
        .fault(serde_json::json!({"mode": "slow", "delay_ms": 1500, "times": 1}))
        .await;
    let runs = (0..50).map(|_| w.agent.regent_async(&["token", "--min-valid", "1"]));
    let outs = futures::future::join_all(runs).await;
    let mut tokens = HashSet::new();
    for o in &outs {
        assert_eq!(o.code, 0, "{}", o.stderr);
        tokens.insert(o.stdout.trim().to_string());
    }
    assert_eq!(tokens.len(), 1, "callers got different tokens");
    assert!(!tokens.contains(&old));
    assert_eq!(w.idp.refreshes().await, 1, "{}", w.idp.counts().await);
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
    let mut w = World::new(short(2), AgentOptions::default()).await;
    w.login("alice").await;
    tokio::time::sleep(Duration::from_millis(2200)).await;
    w.token(&["--min-valid", "0"]); // refresh 1: rotates
    w.agent.restart_after_kill9().await;
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let t = w.token(&["--min-valid", "0"]); // refresh 2 with the rotated token from the store
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
    // And it stays so without asking the IdP again.
    w.idp.reset().await;
    assert_eq!(w.agent.regent(&["token"]).code, 4);
    assert_eq!(w.idp.refreshes().await, 0);
}

#[tokio::test]
async fn an_idp_outage_keeps_everything_and_recovers() {
    let w = World::new(short(4), AgentOptions::default()).await;
    w.login("alice").await;
    let valid = w.token(&["--min-valid", "0"]);
    let stored = w.agent.stored();
    w.idp.go_down();
    // Past half its life, a caller wanting 3 s more needs a refresh, which
    // fails: the still-valid token is served all the same.
    tokio::time::sleep(Duration::from_millis(2300)).await;
    let out = w.agent.regent(&["token", "--min-valid", "3"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout.trim(), valid);
    tokio::time::sleep(Duration::from_millis(2000)).await;
    // Expired, IdP down: idp_unavailable, exit 1, nothing deleted.
    let out = w.agent.regent(&["token", "--min-valid", "0"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("cannot reach the IdP"),
        "{}",
        out.stderr
    );
    let api = w
        .agent
        .client()
        .token(&Default::default())
        .await
        .unwrap_err();
    assert_eq!(api.code(), Some(regent_proto::ErrorCode::IdpUnavailable));
    assert_eq!(
        w.agent.stored(),
        stored,
        "the store changed during the outage"
    );
    assert_eq!(
        w.status()["registries"][0]["auth"]["status"],
        "authenticated"
    );
    w.idp.come_back().await;
    tokio::time::sleep(Duration::from_millis(1100)).await; // past the failure-reuse second
    let fresh = w.token(&["--min-valid", "0"]);
    assert_ne!(fresh, valid);
    assert!(w.idp.is_active(&fresh).await);
}

#[tokio::test]
async fn garbage_from_the_idp_is_an_outage_not_a_logout() {
    let w = World::default().await;
    w.login("alice").await;
    for mode in ["500", "html", "truncated"] {
        let rt = w.agent.stored_refresh_token().unwrap();
        w.invalidate().await;
        w.idp
            .fault(serde_json::json!({"mode": mode, "times": 1}))
            .await;
        let err = w
            .agent
            .client()
            .token(&Default::default())
            .await
            .unwrap_err();
        assert_eq!(
            err.code(),
            Some(regent_proto::ErrorCode::IdpUnavailable),
            "{mode}: {err}"
        );
        assert_eq!(
            w.agent.stored_refresh_token().unwrap(),
            rt,
            "{mode}: tokens changed"
        );
        tokio::time::sleep(Duration::from_millis(1100)).await; // past the failure-reuse second
        let t = w.token(&[]);
        assert!(w.idp.is_active(&t).await, "{mode}: no recovery");
    }
}

#[tokio::test]
async fn without_a_refresh_token_the_access_token_is_served_until_it_expires() {
    let w = World::new(
        IdpOptions {
            access_ttl: 3,
            no_refresh: true,
            ..Default::default()
        },
        AgentOptions::default(),
    )
    .await;
    w.login("alice").await;
    let status = w.status();
    assert_eq!(status["registries"][0]["auth"]["has_refresh_token"], false);
    assert_eq!(status["registries"][0]["auth"]["status"], "authenticated");
    let first = w.token(&["--min-valid", "0"]);
    // Past half its life and short of the 30 s asked by default: still served,
    // since nothing could give a longer one.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(w.token(&[]), first);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let out = w.agent.regent(&["token", "--min-valid", "0"]);
    assert_eq!(out.code, 4, "{out:?}");
    assert!(out.stderr.contains("no refresh token"), "{}", out.stderr);
    assert_eq!(w.status()["registries"][0]["auth"]["status"], "expired");
    assert_eq!(w.idp.refreshes().await, 0);
}

/// The race regent exists to prevent: two programs that each hold the same
/// refresh token and refresh at once. With rotation and reuse detection the
/// IdP revokes the whole family, and the winner's new token dies too.
#[tokio::test]
async fn two_independent_refreshers_get_the_family_revoked_and_the_agent_does_not() {
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

    // Through the agent: a fresh login, then many concurrent callers that all
    // need a refresh, and the grant survives.
    let w = World::default().await;
    w.login("alice").await;
    w.invalidate().await;
    w.idp.reset().await;
    let runs = (0..20).map(|_| w.agent.regent_async(&["token"]));
    let outs = futures::future::join_all(runs).await;
    assert!(outs.iter().all(|o| o.code == 0));
    assert_eq!(w.idp.refreshes().await, 1);
    let rt = w.agent.stored_refresh_token().unwrap();
    let (status, body) = w.idp.refresh_directly(&rt).await;
    assert_eq!(status, 200, "the agent's grant was revoked: {body}");
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
