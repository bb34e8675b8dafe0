//! The token lifecycle on the paused clock: expiry, single flight,
//! refresh-ahead (alive on delivery), outages, backoff, refusals.

use crate::fake_idp::{Fault, Options};
use crate::World;
use std::time::Duration;
use tokio::time::advance;

fn ttl(secs: u64) -> Options {
    Options {
        access_ttl: secs,
        ..Default::default()
    }
}

#[tokio::test(start_paused = true)]
async fn an_expired_token_is_refreshed_once_for_a_hundred_callers() {
    let w = World::new(ttl(60)).await;
    w.add("corp", serde_json::json!({})).await;
    w.login("corp").await;
    let old = w.token("corp", 0).await.unwrap();
    advance(Duration::from_secs(61)).await;
    // The IdP takes a second: every caller arrives while the refresh is in flight.
    w.idp.set_delay(Duration::from_secs(1));
    let calls = (0..100).map(|_| w.token("corp", 30));
    let got = futures::future::join_all(calls).await;
    let first = got[0].clone().unwrap();
    assert_ne!(first, old);
    assert!(
        got.iter().all(|t| t.as_ref() == Ok(&first)),
        "callers got different tokens"
    );
    assert_eq!(w.idp.refreshes(), 1);
    assert!(w.idp.is_active(&first));
}

/// The rule that keeps a token alive on delivery against an IdP that
/// revokes the previous access token the moment it rotates: a token served
/// at any moment, across several lifetimes, is active when it arrives.
#[tokio::test(start_paused = true)]
async fn every_token_served_is_alive_against_an_idp_that_revokes_at_rotation() {
    let w = World::new(Options {
        access_ttl: 100,
        revoke_on_rotation: true,
        ..Default::default()
    })
    .await;
    w.add("corp", serde_json::json!({})).await;
    w.login("corp").await;
    let mut seen = std::collections::HashSet::new();
    // Every second for five lifetimes; the first half takes tokens down to
    // their last second, the second half wants 5 s of validity.
    for step in 0..500u64 {
        let min_valid = if step < 250 { 0 } else { 5 };
        let t = w.token("corp", min_valid).await.unwrap();
        // The caller uses it a moment later: whatever the agent started meanwhile has run.
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            w.idp.is_active(&t),
            "step {step}: the token served died on delivery"
        );
        seen.insert(t);
        advance(Duration::from_millis(980)).await;
    }
    assert!(w.idp.refreshes() >= 5, "{} refreshes", w.idp.refreshes());
    assert_eq!(seen.len() as u32, w.idp.refreshes() + 1);
}

#[tokio::test(start_paused = true)]
async fn an_outage_serves_the_valid_token_then_idp_unavailable_then_recovers() {
    let w = World::new(ttl(100)).await;
    w.add("corp", serde_json::json!({})).await;
    w.login("corp").await;
    let valid = w.token("corp", 0).await.unwrap();
    w.idp.set_fault(Fault::Down);
    // 30 s left, 60 s wanted: a refresh is needed and fails; the valid token is served.
    advance(Duration::from_secs(70)).await;
    assert_eq!(w.token("corp", 60).await.unwrap(), valid);
    // Expired and the IdP still down: idp_unavailable, and the login is kept.
    advance(Duration::from_secs(31)).await;
    let e = w.token("corp", 0).await.unwrap_err();
    assert_eq!(e["code"], "idp_unavailable", "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("connection refused"),
        "{e}"
    );
    assert_eq!(w.auth("corp").await["status"], "authenticated");
    // Back: the next caller after the failure's second gets a fresh token.
    w.idp.set_fault(Fault::None);
    advance(Duration::from_secs(1)).await;
    let fresh = w.token("corp", 0).await.unwrap();
    assert_ne!(fresh, valid);
    assert!(w.idp.is_active(&fresh));
}

/// A 500, an HTML page or a JSON answer that breaks off is an outage: the
/// login is kept, and it recovers.
#[tokio::test(start_paused = true)]
async fn garbage_from_the_idp_is_an_outage_not_a_logout() {
    let w = World::new(ttl(100)).await;
    w.add("corp", serde_json::json!({})).await;
    w.login("corp").await;
    for fault in [Fault::Error500, Fault::Html, Fault::Truncated] {
        advance(Duration::from_secs(101)).await;
        w.idp.set_fault(fault.clone());
        let e = w.token("corp", 0).await.unwrap_err();
        assert_eq!(e["code"], "idp_unavailable", "{fault:?}: {e}");
        assert_eq!(w.auth("corp").await["status"], "authenticated", "{fault:?}");
        w.idp.set_fault(Fault::None);
        advance(Duration::from_secs(1)).await;
        assert!(w.token("corp", 0).await.is_ok(), "{fault:?}: no recovery");
    }
}

#[tokio::test(start_paused = true)]
async fn without_a_refresh_token_the_token_is_served_until_it_expires() {
    let w = World::new(Options {
        access_ttl: 20,
        refresh: false,
        ..Default::default()
    })
    .await;
    w.add("corp", serde_json::json!({})).await;
    w.login("corp").await;
    let auth = w.auth("corp").await;
    assert_eq!(
        (auth["status"].as_str(), auth["has_refresh_token"].as_bool()),
        (Some("authenticated"), Some(false))
    );
    let first = w.token("corp", 0).await.unwrap();
    // Shorter than the 30 s asked, past half its life: served, as nothing longer can be had.
    advance(Duration::from_secs(15)).await;
    assert_eq!(w.token("corp", 30).await.unwrap(), first);
    advance(Duration::from_secs(6)).await;
    let e = w.token("corp", 0).await.unwrap_err();
    assert_eq!(e["code"], "registry_auth_required");
    let msg = e["message"].as_str().unwrap();
    assert!(
        msg.contains("no refresh token") && msg.contains("regent login corp"),
        "{msg}"
    );
    assert_eq!(w.auth("corp").await["status"], "expired");
    assert_eq!(w.idp.refreshes(), 0);
}

#[tokio::test]
async fn a_refused_refresh_token_means_login_required_and_is_not_retried() {
    let w = World::with_file_store(ttl(100)).await;
    w.add("corp", serde_json::json!({})).await;
    w.login("corp").await;
    let t = w.token("corp", 0).await.unwrap();
    // An administrator revokes the grant; the next refresh is refused.
    let rt = format!("rt-{}", &t["at-".len()..]);
    w.idp.revoke_refresh_token(&rt);
    let (s, _) = w
        .call(
            "POST",
            "/v1/token/invalidate",
            Some(serde_json::json!({"registry": "corp", "access_token": t})),
        )
        .await;
    assert_eq!(s, 204);
    let e = w.token("corp", 0).await.unwrap_err();
    assert_eq!(e["code"], "registry_auth_required");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("refused the refresh token"),
        "{e}"
    );
    assert_eq!(w.auth("corp").await["status"], "auth_required");
    assert!(w.stored().is_empty(), "the refused grant is still stored");
    let before = w.idp.refreshes();
    assert!(w.token("corp", 0).await.is_err());
    assert_eq!(
        w.idp.refreshes(),
        before,
        "a refused refresh token was used again"
    );
}

/// A refresh answered with a 4xx that is no OAuth error object (an empty
/// `400`, as some IdPs answer a revoked refresh token) is a refused grant:
/// said, and not tried again on every call.
#[tokio::test]
async fn an_empty_400_on_refresh_is_a_refused_grant_not_an_outage() {
    let w = World::with_file_store(ttl(100)).await;
    w.add("corp", serde_json::json!({})).await;
    w.login("corp").await;
    let t = w.token("corp", 0).await.unwrap();
    w.idp.set_fault(Fault::Empty400);
    let (s, _) = w
        .call(
            "POST",
            "/v1/token/invalidate",
            Some(serde_json::json!({"registry": "corp", "access_token": t})),
        )
        .await;
    assert_eq!(s, 204);
    let e = w.token("corp", 0).await.unwrap_err();
    assert_eq!(e["code"], "registry_auth_required", "{e}");
    let m = e["message"].as_str().unwrap();
    assert!(
        m.contains("refused the refresh token") && m.contains("HTTP 400"),
        "{e}"
    );
    assert_eq!(w.auth("corp").await["status"], "auth_required");
    let before = w.idp.attempts();
    assert!(w.token("corp", 0).await.is_err());
    assert_eq!(
        w.idp.attempts(),
        before,
        "a refused refresh was tried again"
    );
}

/// A refresh's rotated refresh token is in the store before the caller has
/// its answer: a crash right after answering loses nothing.
#[tokio::test]
async fn a_refresh_is_stored_before_it_is_answered() {
    let w = World::with_file_store(ttl(100)).await;
    w.add("corp", serde_json::json!({})).await;
    w.login("corp").await;
    let old = w.token("corp", 0).await.unwrap();
    let (s, _) = w
        .call(
            "POST",
            "/v1/token/invalidate",
            Some(serde_json::json!({"registry": "corp", "access_token": old})),
        )
        .await;
    assert_eq!(s, 204);
    let new = w.token("corp", 0).await.unwrap();
    assert_ne!(new, old);
    // The fake names a rotated refresh token after the access token it came with.
    let rotated = format!("rt-{}", &new["at-".len()..]);
    let stored = serde_json::to_string(&w.stored()).unwrap();
    assert!(
        stored.contains(&rotated),
        "the rotated refresh token is not stored yet"
    );
    assert!(
        stored.contains(&new),
        "the new access token is not stored yet"
    );
}
