//! DPoP (RFC 9449): a login with `dpop` on binds its tokens to a key the
//! agent alone holds; every refresh proves it, and the key is kept with the
//! grant, so a restart keeps the binding. Every request to the resource
//! carries a fresh proof the agent makes for it: through the proxy, and for
//! scripts with `regent token --dpop METHOD URL`. A resource server that
//! checks proofs (tests/mcp/dual.mjs) takes them, and refuses a replayed
//! proof and a bound token without one.

use crate::World;
use regent_tests::mcp::McpServers;
use regent_tests::{Agent, AgentOptions, Idp, IdpOptions};
use serde_json::{json, Value};

#[tokio::test]
async fn a_dpop_login_binds_its_tokens_and_a_restart_keeps_the_binding() {
    let idp = Idp::start(IdpOptions::default());
    let agent = Agent::start(AgentOptions::default()).await;
    // A registry the agent is told to bind for (its metadata cannot say).
    add_bound_registry(&agent, &idp);
    let status: Value = serde_json::from_str(&agent.regent(&["status", "--json"]).stdout).unwrap();
    assert_eq!(
        status["registries"][0]["auth"]["dpop"], "always",
        "{status}"
    );
    let mut w = World { idp, agent };
    w.login("alice").await;
    let status: Value =
        serde_json::from_str(&w.agent.regent(&["status", "--json"]).stdout).unwrap();
    assert_eq!(
        status["registries"][0]["auth"]["dpop_bound"], true,
        "{status}"
    );
    assert!(w.agent.regent(&["status"]).stdout.contains("DPoP-bound"));
    let first = w.token(&[]);
    let claims = w.idp.introspect(&first).await;
    let jkt = claims["cnf"]["jkt"]
        .as_str()
        .unwrap_or_else(|| panic!("the token is not bound to a key: {claims}"))
        .to_string();
    assert_eq!(claims["token_type"], "DPoP", "{claims}");
    // The key is kept with the grant: after a restart, a refresh proves the
    // same key, and the new token is bound to it too.
    w.agent.terminate();
    w.agent.spawn().await;
    w.invalidate().await;
    let second = w.token(&[]);
    assert_ne!(first, second, "no refresh happened");
    let claims = w.idp.introspect(&second).await;
    assert_eq!(claims["cnf"]["jkt"], jkt.as_str(), "{claims}");
    // The refresh token is bound as well: without a proof of the key, the IdP refuses it.
    let rt = w.agent.stored_refresh_token().unwrap();
    let (status, answer) = w.idp.refresh_directly(&rt).await;
    assert_eq!(status, 400, "{answer}");
}

/// A registry whose metadata does not name DPoP is not bound by the default
/// (auto): a server that cannot check a binding would refuse the token.
#[tokio::test]
async fn without_dpop_tokens_stay_bearer_tokens() {
    let w = World::default().await;
    w.login("alice").await;
    let claims = w.idp.introspect(&w.token(&[])).await;
    assert!(claims.get("cnf").is_none(), "{claims}");
}

/// The proxy sends every request with a fresh proof from the agent, to a
/// server that checks proofs as a resource server must, on both wires; a
/// nonce it asks for is followed. `regent token --dpop` gives a script the
/// two headers of one request; the server refuses that proof used again,
/// and the bound token sent as a Bearer token.
#[tokio::test]
async fn proofs_reach_a_server_that_checks_them_and_replays_are_refused() {
    let idp = Idp::start(IdpOptions::default());
    let servers = McpServers::start_dual(&idp.issuer, &["dpop1", "dpopn1", "dpopr1"]);
    let agent = Agent::start(AgentOptions::default()).await;
    // Added as they are: their metadata names DPoP and the IdP offers it, so
    // the default (auto) binds.
    for name in ["dpop1", "dpopn1", "dpopr1"] {
        let out = agent.regent(&["mcp", "add", name, servers.url(name)]);
        assert_eq!(out.code, 0, "{}", out.stderr);
    }
    let calls = [("whoami", json!({}))];
    for (name, wire) in [
        ("dpop1", "2025-11-25"),
        ("dpop1", "2026-07-28"),
        ("dpopn1", "2025-11-25"),
        ("dpopn1", "2026-07-28"),
    ] {
        let answers = regent_tests::mcp::real_client(&agent, wire, name, &calls)
            .unwrap_or_else(|e| panic!("{name} on {wire}: {e}"));
        let me: Value = serde_json::from_str(answers[0].text.as_deref().unwrap()).unwrap();
        assert_eq!(me["server"], name, "{me}");
    }
    // A server that moves its nonce with every answer: the bridge follows it
    // (RFC 9449 §9), so only its first request, before any nonce, is refused.
    let calls3 = [
        ("whoami", json!({})),
        ("whoami", json!({})),
        ("whoami", json!({})),
    ];
    let answers = regent_tests::mcp::real_client(&agent, "2026-07-28", "dpopr1", &calls3)
        .unwrap_or_else(|e| panic!("dpopr1: {e}"));
    assert_eq!(answers.len(), 3);
    let log = servers.log().await;
    let refused_r: Vec<&Value> = log["dpop"]["refused"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["server"] == "dpopr1")
        .collect();
    assert_eq!(refused_r.len(), 1, "a moved nonce was not followed: {log}");
    let sent: Vec<&Value> = log["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["scheme"].is_string())
        .collect();
    assert!(!sent.is_empty());
    assert!(
        sent.iter().all(|r| r["scheme"] == "DPoP"),
        "a bound token went as Bearer: {log}"
    );
    assert!(log["dpop"]["accepted"].as_u64().unwrap() >= 8, "{log}");
    // The nonce server asked once, and was answered with its nonce.
    let refused = log["dpop"]["refused"].as_array().unwrap();
    assert!(
        refused
            .iter()
            .all(|r| r["error"] == "use_dpop_nonce" && r["server"] != "dpop1"),
        "{log}"
    );

    // A script's headers for one request.
    let url = servers.url("dpop1");
    let out = agent.regent(&["token", "dpop1", "--dpop", "POST", url]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let headers: Vec<(&str, &str)> = out
        .stdout
        .lines()
        .map(|l| l.split_once(": ").unwrap())
        .collect();
    assert_eq!(headers[0].0, "Authorization");
    assert!(headers[0].1.starts_with("DPoP "), "{}", out.stdout);
    assert_eq!(headers[1].0, "DPoP");
    let http = reqwest::Client::new();
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "curl", "version": "1"}}});
    let send = |auth: &str, proof: Option<&str>| {
        let mut req = http
            .post(url)
            .header("authorization", auth)
            .header("accept", "application/json, text/event-stream")
            .json(&init);
        if let Some(p) = proof {
            req = req.header("dpop", p);
        }
        req.send()
    };
    let first = send(headers[0].1, Some(headers[1].1)).await.unwrap();
    assert_eq!(first.status(), 200, "the script's headers work");
    let again = send(headers[0].1, Some(headers[1].1)).await.unwrap();
    assert_eq!(again.status(), 401, "a replayed proof was taken");
    assert!(again.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("invalid_dpop_proof"));
    let token = headers[0].1.trim_start_matches("DPoP ");
    let stolen = send(&format!("Bearer {token}"), None).await.unwrap();
    assert_eq!(
        stolen.status(),
        401,
        "a bound token without a proof was taken"
    );
}

/// A forwarded session (what `regent ssh` gives a remote machine) gets
/// proofs for its requests, made by the agent here; never the key.
#[tokio::test]
async fn a_forwarded_session_gets_proofs_and_never_the_key() {
    let idp = Idp::start(IdpOptions::default());
    let agent = Agent::start(AgentOptions::default()).await;
    add_bound_registry(&agent, &idp);
    let w = World { idp, agent };
    w.login("alice").await;
    assert_eq!(w.agent.regent(&["forward", "allow", "corp"]).code, 0);
    let fwd = regent_client::AgentClient::new(w.agent.forward_socket().await);
    let htu = format!("{}/v0.1/servers", crate::REGISTRY_URL);
    let t = fwd
        .token(&regent_proto::TokenRequest {
            url: None,
            registry: Some("corp".into()),
            min_valid_secs: None,
            dpop: Some(regent_proto::DpopRequest {
                htm: "GET".into(),
                htu: format!("{htu}?limit=1"),
                nonce: None,
            }),
        })
        .await
        .unwrap();
    assert_eq!(t.token_type, "DPoP");
    let proof = t.dpop_proof.expect("a proof for the forwarded request");
    use base64::Engine;
    let part = |i: usize| -> Value {
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(proof.expose().split('.').nth(i).unwrap())
                .unwrap(),
        )
        .unwrap()
    };
    let (header, claims) = (part(0), part(1));
    assert_eq!(claims["htm"], "GET");
    assert_eq!(claims["htu"], htu.as_str(), "the query is not part of htu");
    assert!(claims["ath"].is_string());
    assert!(
        header["jwk"].get("d").is_none(),
        "the private key left the agent"
    );
    // The token it proves is the bound one the IdP issued.
    let claims = w.idp.introspect(t.access_token.expose()).await;
    assert!(claims["cnf"]["jkt"].is_string(), "{claims}");
}

/// A machine's token (client credentials, no user) is bound too where both
/// sides take DPoP: the server's metadata names it and the IdP offers it.
#[tokio::test]
async fn client_credentials_tokens_are_bound_and_proved_too() {
    let idp = Idp::start(IdpOptions::default());
    let servers = McpServers::start_dual(&idp.issuer, &["dpop1"]);
    let agent = Agent::start(AgentOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key.pem");
    std::fs::write(&key, idp.client_key().await).unwrap();
    let out = agent.regent(&[
        "mcp",
        "add",
        "cc",
        servers.url("dpop1"),
        "--client-credentials",
        "--client-id",
        "regent-pss",
        "--client-key-file",
        key.to_str().unwrap(),
        "--client-key-alg",
        "PS256",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let answers =
        regent_tests::mcp::real_client(&agent, "2026-07-28", "cc", &[("whoami", json!({}))])
            .unwrap();
    let me: Value = serde_json::from_str(answers[0].text.as_deref().unwrap()).unwrap();
    assert_eq!(me["server"], "dpop1", "{me}");
    let log = servers.log().await;
    assert!(log["dpop"]["accepted"].as_u64().unwrap() >= 1, "{log}");
    let status: Value = serde_json::from_str(&agent.regent(&["status", "--json"]).stdout).unwrap();
    assert_eq!(
        status["mcp_servers"][0]["auth"]["dpop_bound"], true,
        "{status}"
    );
}

/// A bound browser login names its key in the authorization request
/// (`dpop_jkt`, RFC 9449 §10): the IdP binds the code to it, so a code
/// caught on its way back to the loopback port cannot be redeemed with
/// another key. The IdP holds regent to it: a code bound to another key is
/// refused at the exchange, and the login fails.
#[tokio::test]
async fn a_browser_login_binds_its_code_to_the_key() {
    use regent_proto::{LoginFlow, LoginRequest, LoginState};
    let idp = Idp::start(IdpOptions::default());
    let agent = Agent::start(AgentOptions::default()).await;
    add_bound_registry(&agent, &idp);
    let w = World { idp, agent };
    let start = || async {
        w.agent
            .client()
            .login(&LoginRequest {
                registry: Some("corp".into()),
                flow: LoginFlow::Browser,
                force: true,
            })
            .await
            .expect("browser login starts")
    };
    let param = |url: &url::Url, name: &str| {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };

    let login = start().await;
    let url = url::Url::parse(login.authorize_url.as_deref().unwrap()).unwrap();
    let jkt = param(&url, "dpop_jkt").expect("a bound login names its key");
    let cb = regent_tests::forms::Session::default()
        .authorize(url.as_str(), "alice")
        .await
        .unwrap();
    regent_tests::get(cb).await.unwrap();
    let s = w.agent.client().login_status(&login.id, 10).await.unwrap();
    assert_eq!(s.status, LoginState::Succeeded, "{s:?}");
    let claims = w.idp.introspect(&w.token(&[])).await;
    assert_eq!(claims["cnf"]["jkt"], jkt.as_str(), "{claims}");

    // The same login with the code bound to some other key.
    let login = start().await;
    let url = url::Url::parse(login.authorize_url.as_deref().unwrap()).unwrap();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "dpop_jkt" {
                "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I".to_string()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    let mut other = url.clone();
    other.query_pairs_mut().clear().extend_pairs(pairs);
    let cb = regent_tests::forms::Session::default()
        .authorize(other.as_str(), "alice")
        .await
        .unwrap();
    regent_tests::get(cb).await.unwrap();
    let s = w.agent.client().login_status(&login.id, 10).await.unwrap();
    assert_eq!(s.status, LoginState::Failed, "{s:?}");
}

/// `registry add corp` at the test IdP, with `--dpop always` (a registry's
/// metadata cannot say it takes DPoP).
fn add_bound_registry(agent: &Agent, idp: &Idp) {
    let out = agent.regent(&[
        "registry",
        "add",
        "corp",
        crate::REGISTRY_URL,
        "--issuer",
        &idp.issuer,
        "--client-id",
        regent_tests::idp::CLIENT_ID,
        "--dpop",
        "always",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
}

/// A workload's token (RFC 7523 jwt-bearer, the platform's JWT as the
/// assertion) is bound too: the grant carries a proof, and every request
/// to the server one made by the agent.
#[tokio::test]
async fn a_workload_identity_token_is_bound_and_proved() {
    let idp = Idp::start(IdpOptions::default());
    let servers = McpServers::start_dual(&idp.issuer, &["dpop1"]);
    let agent = Agent::start(AgentOptions::default()).await;
    let file = agent.home().join("workload.jwt");
    std::fs::write(&file, idp.workload_token("build-bot").await).unwrap();
    let out = agent.regent(&[
        "mcp",
        "add",
        "w",
        servers.url("dpop1"),
        "--workload-token-file",
        file.to_str().unwrap(),
        "--client-id",
        "regent-ent",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let me = whoami_through_proxy(&agent, "w").await;
    assert_eq!(me["sub"], "build-bot", "{me}");
    assert_bound(&agent, &idp, &servers, "w").await;
}

/// Enterprise-managed authorization: the token exchange at the enterprise
/// IdP and the jwt-bearer grant at the server's AS both prove the same key,
/// so the ID-JAG is bound to it and the AS mints a token bound to it.
#[tokio::test]
async fn an_enterprise_managed_token_is_bound_from_the_id_jag_on() {
    let idp = Idp::start(IdpOptions::default());
    let servers = McpServers::start_dual(&idp.issuer, &["dpop1"]);
    let agent = Agent::start(AgentOptions::default()).await;
    let out = agent.regent(&[
        "idp",
        "add",
        "ent",
        "--issuer",
        &idp.issuer,
        "--client-id",
        "regent-ent",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    crate::device_login(&agent, Some("ent"), "alice").await;
    let secret = agent.home().join("jag-secret");
    std::fs::write(&secret, "jag-secret").unwrap();
    let out = agent.regent(&[
        "mcp",
        "add",
        "e",
        servers.url("dpop1"),
        "--enterprise-idp",
        "ent",
        "--client-id",
        "regent-jag",
        "--client-secret-file",
        secret.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let me = whoami_through_proxy(&agent, "e").await;
    assert_eq!(me["sub"], "alice", "{me}");
    let jkt = assert_bound(&agent, &idp, &servers, "e").await;
    let jags = idp.id_jags().await;
    assert_eq!(jags.as_array().unwrap().len(), 1, "{jags}");
    assert_eq!(
        jags[0]["jkt"],
        jkt.as_str(),
        "the ID-JAG is not bound: {jags}"
    );
}

/// `whoami` at resource `name` through `regent mcp proxy` (2026-07-28).
async fn whoami_through_proxy(agent: &Agent, name: &str) -> Value {
    let answers =
        regent_tests::mcp::real_client(agent, "2026-07-28", name, &[("whoami", json!({}))])
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    serde_json::from_str(answers[0].text.as_deref().unwrap()).unwrap()
}

/// Resource `name`'s token is bound to a key (its `cnf.jkt`, returned), status
/// says so, and every request that reached the servers carried a proof.
async fn assert_bound(agent: &Agent, idp: &Idp, servers: &McpServers, name: &str) -> String {
    let status: Value = serde_json::from_str(&agent.regent(&["status", "--json"]).stdout).unwrap();
    let entry = status["mcp_servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("{status}"));
    assert_eq!(entry["auth"]["dpop_bound"], true, "{status}");
    let out = agent.regent(&["token", name]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let claims = idp.introspect(out.stdout.trim()).await;
    assert_eq!(claims["token_type"], "DPoP", "{claims}");
    let log = servers.log().await;
    let sent: Vec<&Value> = log["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["scheme"].is_string())
        .collect();
    assert!(
        !sent.is_empty() && sent.iter().all(|r| r["scheme"] == "DPoP"),
        "{log}"
    );
    assert!(log["dpop"]["accepted"].as_u64().unwrap() >= 2, "{log}");
    claims["cnf"]["jkt"].as_str().unwrap().to_string()
}

/// An IdP that wants its nonce in every proof (RFC 9449 §8): the first token
/// request is answered `use_dpop_nonce` and sent once more with the nonce;
/// the nonce is kept for that AS, so the refreshes after it are not refused.
#[tokio::test]
async fn an_idp_that_wants_its_nonce_asks_once() {
    let idp = Idp::start(IdpOptions {
        dpop_nonce: true,
        ..IdpOptions::default()
    });
    let agent = Agent::start(AgentOptions::default()).await;
    add_bound_registry(&agent, &idp);
    let w = World { idp, agent };
    w.login("alice").await;
    let mut token = w.token(&[]);
    for _ in 0..2 {
        w.invalidate().await;
        let next = w.token(&[]);
        assert_ne!(next, token, "no refresh happened");
        token = next;
    }
    let claims = w.idp.introspect(&token).await;
    assert!(claims["cnf"]["jkt"].is_string(), "{claims}");
    let counts = w.idp.counts().await;
    assert_eq!(counts["use_dpop_nonce"], 1, "{counts}");
    assert!(
        counts["token"]["refresh_token"].as_u64().unwrap() >= 2,
        "{counts}"
    );
}
