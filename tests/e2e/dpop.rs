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
    let servers = McpServers::start_dual(&idp.issuer, &["dpop1", "dpopn1"]);
    let agent = Agent::start(AgentOptions::default()).await;
    // Added as they are: their metadata names DPoP and the IdP offers it, so
    // the default (auto) binds.
    for name in ["dpop1", "dpopn1"] {
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
    let log = servers.log().await;
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
            .all(|r| r["error"] == "use_dpop_nonce" && r["server"] == "dpopn1"),
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
    let w = World { idp, agent };
    w.login("alice").await;
    assert_eq!(w.agent.regent(&["forward", "allow", "corp"]).code, 0);
    let fwd = regent_client::AgentClient::new(w.agent.forward_socket().await);
    let htu = format!("{}/v0.1/servers", crate::REGISTRY_URL);
    let t = fwd
        .token(&regent_proto::TokenRequest {
            registry: Some("corp".into()),
            min_valid_secs: None,
            dpop: Some(regent_proto::DpopRequest {
                htm: "GET".into(),
                htu: format!("{htu}?limit=1"),
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
