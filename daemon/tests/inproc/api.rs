//! The API's edges in process: panics, the config file kept as people wrote it.

use crate::fake_idp::{Options, ISSUER};
use crate::World;
use axum::routing::get;
use serde_json::json;
use tower::ServiceExt;

#[tokio::test]
async fn a_panic_in_a_handler_answers_internal_and_the_agent_goes_on() {
    let w = World::new(Options::default()).await;
    let app = regentd::api::protect(axum::Router::new().route(
        "/boom",
        get(|| async {
            panic!("kaboom: sekrit-payload");
            #[allow(unreachable_code)]
            ""
        }),
    ));
    let resp = app
        .oneshot(
            axum::http::Request::get("/boom")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 500);
    let body: serde_json::Value = serde_json::from_slice(
        &axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(body["error"]["code"], "internal");
    assert!(!body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("sekrit"));
    // The agent's own router carries the same guard.
    let (s, _) = w.call("GET", "/v1/health", None).await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn hand_edits_survive_and_a_broken_file_refuses_the_change() {
    let w = World::new(Options::default()).await;
    w.add("corp", json!({})).await;
    let path = w.config_path();
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.insert_str(0, "# kept by hand\n");
    text.push_str("\n[registries.hand] # added by hand\nurl = \"https://hand.example\"\n");
    std::fs::write(&path, &text).unwrap();
    // The next change through the API takes the hand edit in first.
    w.add("other", json!({})).await;
    let now = std::fs::read_to_string(&path).unwrap();
    assert!(now.starts_with("# kept by hand\n"), "{now}");
    assert!(now.contains("[registries.hand] # added by hand"), "{now}");
    let (_, list) = w.call("GET", "/v1/registries", None).await;
    let names: Vec<_> = list["registries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].clone())
        .collect();
    assert_eq!(names, vec![json!("corp"), json!("hand"), json!("other")]);
    // A file broken by hand: the change is refused with the line, the file kept.
    let broken = format!("{now}\n[registries.bad]\nurl = https://nope\n");
    std::fs::write(&path, &broken).unwrap();
    let (s, e) = w
        .call(
            "PUT",
            "/v1/registries/x",
            Some(json!({"url": "https://x.example"})),
        )
        .await;
    assert_eq!(s, 409, "{e}");
    assert_eq!(e["error"]["code"], "invalid_config");
    let msg = e["error"]["message"].as_str().unwrap();
    let line = broken
        .lines()
        .position(|l| l.starts_with("url = https://nope"))
        .unwrap()
        + 1;
    assert!(msg.contains(&format!("line {line}")), "{msg}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), broken);
    // What was in force stays in force.
    let (_, list) = w.call("GET", "/v1/registries", None).await;
    assert_eq!(list["registries"].as_array().unwrap().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_device_login_stops_polling_the_idp() {
    let w = World::new(Options {
        approve_device: false,
        ..Default::default()
    })
    .await;
    w.add("corp", json!({})).await;
    let (_, login) = w
        .call(
            "POST",
            "/v1/login",
            Some(json!({"registry": "corp", "flow": "device"})),
        )
        .await;
    let id = login["id"].as_str().unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    let polls = w.idp.count("urn:ietf:params:oauth:grant-type:device_code");
    assert!(polls >= 3, "{polls} polls in 5 s at a 1 s interval");
    let (s, _) = w.call("DELETE", &format!("/v1/login/{id}"), None).await;
    assert_eq!(s, 204);
    let (_, st) = w.call("GET", &format!("/v1/login/{id}"), None).await;
    assert_eq!(st["status"], "failed");
    tokio::time::sleep(std::time::Duration::from_secs(60)).await;
    assert_eq!(
        w.idp.count("urn:ietf:params:oauth:grant-type:device_code"),
        polls
    );
}

/// An explicit `false` (or another default) is accepted wherever the field
/// exists; a field that does not exist is refused, whatever its value.
#[tokio::test]
async fn an_explicit_false_is_accepted_and_an_unknown_field_is_not() {
    let w = World::new(Options::default()).await;
    let auth = json!({"type": "oauth", "issuer": ISSUER, "client_id": "cli",
                      "discovered": false, "own_grant": false, "assume_pkce_s256": false});
    let (s, v) = w
        .call(
            "PUT",
            "/v1/registries/corp",
            Some(json!({"url": "https://corp.example", "discover": false, "auth": auth})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = w
        .call("PUT", "/v1/registries/corp/auth", Some(auth.clone()))
        .await;
    assert_eq!(s, 200, "{v}");
    let mut typo = auth;
    typo["own_grnat"] = json!(false);
    let (s, v) = w.call("PUT", "/v1/registries/corp/auth", Some(typo)).await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"]["code"], "invalid_request");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown field `own_grnat`"),
        "{v}"
    );
}

/// After a `slow_down`, the agent polls the device endpoint 5 s less often
/// (RFC 8628 §3.5): the next poll comes no sooner than interval + 5 s.
#[tokio::test(start_paused = true)]
async fn device_polling_honours_slow_down() {
    let w = World::new(Options {
        slow_down_once: true,
        ..Default::default()
    })
    .await;
    w.add("corp", json!({})).await;
    let (_, login) = w
        .call(
            "POST",
            "/v1/login",
            Some(json!({"registry": "corp", "flow": "device"})),
        )
        .await;
    let id = login["id"].as_str().unwrap();
    let (_, st) = w
        .call("GET", &format!("/v1/login/{id}?wait_secs=60"), None)
        .await;
    assert_eq!(st["status"], "succeeded", "{st}");
    let polls = w.idp.device_polls();
    assert_eq!(polls.len(), 2, "one slow_down, then the approval");
    let gap = polls[1] - polls[0];
    assert!(
        gap >= std::time::Duration::from_secs(6),
        "{gap:?} after slow_down"
    );
}
