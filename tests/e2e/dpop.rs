//! DPoP (RFC 9449) at the authorization server: a login with `dpop` on
//! binds its tokens to a key the agent alone holds, and every refresh proves
//! it; the key is kept with the grant, so a restart keeps the binding.

use crate::World;

/// Turns DPoP on for registry `corp` in the config file, as a user would,
/// and has the agent reload it.
async fn dpop_always(w: &World) {
    let file = w.agent.config_file();
    let text = std::fs::read_to_string(&file).unwrap();
    let at = text
        .find("client_id = ")
        .expect("corp's auth table has its client id");
    let end = at + text[at..].find('\n').unwrap() + 1;
    let text = format!("{}dpop = \"always\"\n{}", &text[..end], &text[end..]);
    std::fs::write(&file, text).unwrap();
    regent_tests::idp::signal(w.agent.pid(), libc::SIGHUP);
    w.agent.wait_log("config reloaded", 1).await;
}

#[tokio::test]
async fn a_dpop_login_binds_its_tokens_and_a_restart_keeps_the_binding() {
    let mut w = World::default().await;
    dpop_always(&w).await;
    w.login("alice").await;
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

/// Without the setting nothing is bound (the default until every caller
/// of the agent sends proofs).
#[tokio::test]
async fn without_dpop_tokens_stay_bearer_tokens() {
    let w = World::default().await;
    w.login("alice").await;
    let claims = w.idp.introspect(&w.token(&[])).await;
    assert!(claims.get("cnf").is_none(), "{claims}");
}
