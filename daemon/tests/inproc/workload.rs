//! Workload identity federation: the platform's JWT, read fresh from its
//! file for every grant, is exchanged by the JWT bearer grant; a refusal is
//! said once, never retried or turned into another grant.

use crate::fake_idp::{Options, ISSUER};
use crate::World;
use serde_json::json;
use std::time::Duration;

const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// Adds registry `name` whose tokens come from the workload JWT in `file`;
/// the agent's answer.
async fn add(w: &World, name: &str, file: &std::path::Path) -> (u16, serde_json::Value) {
    w.call(
        "PUT",
        &format!("/v1/registries/{name}"),
        Some(json!({
            "url": format!("https://{name}.example"),
            "auth": {"type": "workload", "issuer": ISSUER, "token_file": file,
                     "resource": format!("https://{name}.example")},
        })),
    )
    .await
}

fn write(file: &std::path::Path, jwt: &str) {
    std::fs::write(file, format!("{jwt}\n")).unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_workload_jwt_is_read_fresh_for_every_grant() {
    let w = World::new(Options {
        access_ttl: 60,
        ..Default::default()
    })
    .await;
    let file = w.home.path().join("workload.jwt");
    write(&file, "h.ok.first");
    let (s, v) = add(&w, "ci", &file).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["auth"]["status"], "authenticated", "{v}");
    let t1 = w.token("ci", 30).await.unwrap();
    assert_eq!(
        w.idp.resource_of(&t1).as_deref(),
        Some("https://ci.example")
    );
    // Cached while valid: one grant.
    assert_eq!(w.token("ci", 30).await.unwrap(), t1);
    assert_eq!(w.idp.count(JWT_BEARER), 1);
    // The platform rotates the file; the next grant carries the new JWT.
    write(&file, "h.ok.second");
    tokio::time::advance(Duration::from_secs(61)).await;
    let t2 = w.token("ci", 30).await.unwrap();
    assert_ne!(t1, t2);
    let sent: Vec<String> = w
        .idp
        .requests()
        .into_iter()
        .filter(|r| r["grant_type"] == JWT_BEARER)
        .map(|r| {
            assert!(
                !r.contains_key("client_id"),
                "no client was configured: {r:?}"
            );
            r["assertion"].clone()
        })
        .collect();
    assert_eq!(sent, ["h.ok.first", "h.ok.second"]);
}

#[tokio::test(start_paused = true)]
async fn a_refused_assertion_is_said_once_and_not_retried() {
    let w = World::new(Options::default()).await;
    let file = w.home.path().join("workload.jwt");
    write(&file, "h.wrong-audience.sig");
    let (s, v) = add(&w, "ci", &file).await;
    assert_eq!(s, 200, "{v}");
    let err = w.token("ci", 30).await.unwrap_err();
    assert_eq!(err["code"], "idp_error", "{err}");
    let (_, body) = w
        .call("POST", "/v1/token", Some(json!({"registry": "ci"})))
        .await;
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("invalid_grant")
            && message.contains("the assertion's audience is not this AS"),
        "the AS's reason reaches the user: {body}"
    );
    assert!(
        !message.contains("regent login"),
        "no login fixes it: {body}"
    );
    // Two token calls at once, one grant: the refusal is said again, not
    // retried, and no other grant is tried.
    assert_eq!(w.idp.count(JWT_BEARER), 1);
    // The platform mounts a JWT this AS trusts; a moment later it is used.
    write(&file, "h.ok.sig");
    tokio::time::advance(Duration::from_secs(2)).await;
    w.token("ci", 30).await.unwrap();
    let grants: Vec<String> = w
        .idp
        .requests()
        .into_iter()
        .map(|r| r["grant_type"].clone())
        .collect();
    assert_eq!(grants, [JWT_BEARER, JWT_BEARER]);
}

#[tokio::test(start_paused = true)]
async fn a_workload_file_that_is_missing_or_not_a_jwt_is_refused_at_add() {
    let w = World::new(Options::default()).await;
    let missing = w.home.path().join("nope.jwt");
    let (s, v) = add(&w, "ci", &missing).await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["error"]["code"], "invalid_auth_config", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cannot read the workload token file"),
        "{v}"
    );
    let file = w.home.path().join("workload.jwt");
    std::fs::write(&file, "not a jwt").unwrap();
    let (s, v) = add(&w, "ci", &file).await;
    assert_eq!(s, 422, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("does not hold a JWT"),
        "{v}"
    );
    // Nothing was added, nothing was asked of the AS.
    assert_eq!(w.auth("ci").await, serde_json::Value::Null);
    assert_eq!(w.idp.count(JWT_BEARER), 0);
}

#[tokio::test(start_paused = true)]
async fn a_workload_resource_has_no_user_login() {
    let w = World::new(Options::default()).await;
    let file = w.home.path().join("workload.jwt");
    write(&file, "h.ok.sig");
    add(&w, "ci", &file).await;
    for force in [false, true] {
        let (s, v) = w
            .call(
                "POST",
                "/v1/login",
                Some(json!({"registry": "ci", "flow": "device", "force": force})),
            )
            .await;
        assert_eq!(s, 400, "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("ci uses workload identity: there is no user login"),
            "{v}"
        );
    }
    // Its token is there all the same.
    w.token("ci", 30).await.unwrap();
}
