//! Browser login: authorization code + PKCE through the agent's loopback
//! callback. One test drives real headless Chromium; the others walk the
//! provider's forms over HTTP with a cookie jar and tamper with the callback.

use crate::{World, REGISTRY_URL};
use regent_proto::{Login, LoginFlow, LoginRequest, LoginState};
use regent_tests::browser::Chromium;
use regent_tests::forms::Session;
use regent_tests::{AgentOptions, IdpOptions};
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;
use url::Url;

async fn start(w: &World, registry: &str) -> Login {
    w.agent
        .client()
        .login(&LoginRequest {
            registry: Some(registry.into()),
            flow: LoginFlow::Browser,
            force: false,
        })
        .await
        .expect("browser login starts")
}

fn query(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn with_param(url: &Url, name: &str, value: Option<&str>) -> Url {
    let mut u = url.clone();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != name)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    {
        let mut q = u.query_pairs_mut();
        q.clear();
        for (k, v) in &pairs {
            q.append_pair(k, v);
        }
        if let Some(v) = value {
            q.append_pair(name, v);
        }
    }
    u
}

#[tokio::test]
async fn browser_login_in_real_headless_chromium() {
    let w = World::default().await;
    // The CLI "opens the browser" through $BROWSER; the test's Chromium plays the user.
    let mut cli = w
        .agent
        .regent_command(&["login", "corp"])
        .env("BROWSER", "true")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(cli.stderr.take().unwrap());
    let mut line = String::new();
    let url = loop {
        line.clear();
        assert!(
            err.read_line(&mut line).unwrap() > 0,
            "regent login printed no URL"
        );
        if line.trim().starts_with("http") {
            break line.trim().to_string();
        }
    };
    let chromium = Chromium::start().await;
    let c = &chromium.client;
    use fantoccini::Locator;
    c.goto(&url).await.unwrap();
    c.wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css("input[name=login]"))
        .await
        .unwrap()
        .send_keys("alice")
        .await
        .unwrap();
    c.find(Locator::Css("input[name=password]"))
        .await
        .unwrap()
        .send_keys("correct horse")
        .await
        .unwrap();
    c.find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // Consent (offline_access was asked for with prompt=consent). Wait for the
    // consent page itself: the login page's button may still be there.
    c.wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css("input[name='prompt'][value='consent']"))
        .await
        .unwrap();
    c.find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css("main.ok"))
        .await
        .unwrap();
    let landed = c.current_url().await.unwrap();
    assert_eq!(landed.host_str(), Some("127.0.0.1"));
    assert_eq!(landed.path(), "/callback");
    let text = c
        .find(Locator::Css("main"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("You are logged in"), "{text}");
    assert!(text.contains("alice"), "{text}");
    let png = c.screenshot().await.unwrap();
    let dir = regent_tests::target_dir().join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("browser-login-callback.png"), &png).unwrap();
    let source = c.source().await.unwrap();
    chromium.stop().await;

    let out = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::task::spawn_blocking(move || cli.wait_with_output()),
    )
    .await
    .expect("regent login ended after the callback")
    .unwrap()
    .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "Logged in to corp as alice."
    );
    let token = w.token(&[]);
    assert!(w.idp.is_active(&token).await);
    assert!(!source.contains(&token), "the callback page shows a token");
    let auth = &w.status()["registries"][0]["auth"];
    assert_eq!(
        auth["has_refresh_token"], true,
        "offline_access with prompt=consent gives a refresh token"
    );
}

#[tokio::test]
async fn the_authorization_request_is_pkce_s256_on_loopback() {
    let idp = regent_tests::Idp::start(IdpOptions::default());
    let agent = regent_tests::Agent::start(AgentOptions::default()).await;
    let resource = "https://registry.example.test/api";
    let out = agent.regent(&[
        "registry",
        "add",
        "corp",
        REGISTRY_URL,
        "--issuer",
        &idp.issuer,
        "--client-id",
        "regent-test",
        "--resource",
        resource,
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let w = World { idp, agent };
    let login = start(&w, "corp").await;
    let url = Url::parse(login.authorize_url.as_deref().unwrap()).unwrap();
    assert!(url.as_str().starts_with(&format!("{}/auth?", w.idp.issuer)));
    assert_eq!(
        query(&url, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert!(query(&url, "code_challenge").unwrap().len() >= 43);
    assert!(query(&url, "state").unwrap().len() >= 32);
    assert_eq!(query(&url, "response_type").as_deref(), Some("code"));
    assert_eq!(query(&url, "client_id").as_deref(), Some("regent-test"));
    assert_eq!(query(&url, "resource").as_deref(), Some(resource));
    assert_eq!(query(&url, "prompt").as_deref(), Some("consent"));
    let scope = query(&url, "scope").unwrap();
    assert!(scope.split(' ').any(|s| s == "offline_access"), "{scope}");
    let redirect = Url::parse(&query(&url, "redirect_uri").unwrap()).unwrap();
    assert_eq!(redirect.scheme(), "http");
    assert_eq!(redirect.host_str(), Some("127.0.0.1"));
    assert_eq!(redirect.path(), "/callback");
    assert!(redirect.port().is_some());

    // Complete it: the resource goes on the token request too, so the IdP
    // mints a JWT for that audience.
    let cb = Session::default()
        .authorize(url.as_str(), "alice")
        .await
        .unwrap();
    let page = regent_tests::get(cb.clone()).await.unwrap();
    assert_eq!(page.status(), 200);
    let s = w.agent.client().login_status(&login.id, 10).await.unwrap();
    assert_eq!(s.status, LoginState::Succeeded, "{s:?}");
    let token = w.token(&[]);
    let payload = token.split('.').nth(1).expect("a JWT access token");
    use base64::Engine;
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["aud"], resource, "{claims}");
    // The refresh carries the resource as well.
    w.invalidate().await;
    let refreshed = w.token(&[]);
    assert_ne!(refreshed, token);
    assert!(refreshed.split('.').count() == 3);
}

#[tokio::test]
async fn a_wrong_state_is_rejected_and_the_login_stays_pending_and_a_replay_finds_the_port_closed()
{
    let w = World::default().await;
    let login = start(&w, "corp").await;
    let cb = Session::default()
        .authorize(login.authorize_url.as_deref().unwrap(), "alice")
        .await
        .unwrap();
    let forged = with_param(&cb, "state", Some("not-the-state"));
    let r = regent_tests::get(forged).await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("does not match"));
    let s = w.agent.client().login_status(&login.id, 0).await.unwrap();
    assert_eq!(s.status, LoginState::Pending);
    // The real callback still works...
    let r = regent_tests::get(cb.clone()).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("You are logged in"));
    assert_eq!(
        w.agent
            .client()
            .login_status(&login.id, 5)
            .await
            .unwrap()
            .status,
        LoginState::Succeeded
    );
    // ...once: the listener is gone. (Its port may already serve another
    // test's listener: what answers there, if anything, is not regent's login.)
    match regent_tests::get(cb).await {
        Err(e) => assert!(e.is_connect() || e.is_timeout(), "{e:?}"),
        Ok(r) => assert!(
            !r.text()
                .await
                .unwrap_or_default()
                .contains("You are logged in"),
            "the callback was taken twice"
        ),
    }
}

#[tokio::test]
async fn an_iss_mismatch_or_a_missing_iss_fails_the_login() {
    let w = World::default().await;
    for (iss, expect) in [
        (Some("https://evil.example.test"), "names issuer"),
        (None, "no iss parameter"),
    ] {
        let login = start(&w, "corp").await;
        let cb = Session::default()
            .authorize(login.authorize_url.as_deref().unwrap(), "alice")
            .await
            .unwrap();
        assert_eq!(
            query(&cb, "iss").as_deref(),
            Some(w.idp.issuer.as_str()),
            "the IdP sends iss"
        );
        let tampered = with_param(&cb, "iss", iss);
        let page = regent_tests::get(tampered)
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(page.contains("did not succeed"), "{page}");
        let s = w.agent.client().login_status(&login.id, 5).await.unwrap();
        assert_eq!(s.status, LoginState::Failed);
        assert!(s.error.as_deref().unwrap().contains(expect), "{s:?}");
    }
    assert_eq!(w.agent.regent(&["token"]).code, 4);
}

#[tokio::test]
async fn refused_consent_fails_with_the_reason_and_markup_is_escaped() {
    let w = World::default().await;
    let login = start(&w, "corp").await;
    let cb = Session::default()
        .deny(login.authorize_url.as_deref().unwrap(), "alice")
        .await
        .unwrap();
    assert_eq!(query(&cb, "error").as_deref(), Some("access_denied"));
    let page = regent_tests::get(cb).await.unwrap().text().await.unwrap();
    assert!(page.contains("access_denied"), "{page}");
    let s = w.agent.client().login_status(&login.id, 5).await.unwrap();
    assert_eq!(s.status, LoginState::Failed);
    let why = s.error.unwrap();
    assert!(
        why.contains("answered access_denied") && why.contains("declined at the IdP"),
        "{why}"
    );

    // An error description with markup, on a callback with the right state and iss.
    let login = start(&w, "corp").await;
    let auth = Url::parse(login.authorize_url.as_deref().unwrap()).unwrap();
    let mut cb = Url::parse(&query(&auth, "redirect_uri").unwrap()).unwrap();
    cb.query_pairs_mut()
        .append_pair("error", "access_denied")
        .append_pair(
            "error_description",
            "<script>alert('x')</script><b>bold</b>",
        )
        .append_pair("state", &query(&auth, "state").unwrap())
        .append_pair("iss", &w.idp.issuer);
    let r = regent_tests::get(cb).await.unwrap();
    let h = r.headers().clone();
    let page = r.text().await.unwrap();
    assert!(
        page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&lt;b&gt;bold&lt;/b&gt;"),
        "{page}"
    );
    assert!(
        !page.contains("<script>") && !page.contains("<b>bold"),
        "{page}"
    );
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("script-src"),
        "{csp}"
    );
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["cache-control"], "no-store");
}

#[tokio::test]
async fn a_login_past_its_deadline_expires_and_closes_its_port() {
    let w = World::new(
        IdpOptions::default(),
        AgentOptions {
            args: vec!["--login-timeout".into(), "2".into()],
            ..Default::default()
        },
    )
    .await;
    let login = start(&w, "corp").await;
    let auth = Url::parse(login.authorize_url.as_deref().unwrap()).unwrap();
    let cb = Url::parse(&query(&auth, "redirect_uri").unwrap()).unwrap();
    let port = cb.port().unwrap();
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
        "listening while pending"
    );
    let s = w.agent.client().login_status(&login.id, 10).await.unwrap();
    assert_eq!(s.status, LoginState::Expired, "{s:?}");
    // The listener is dropped before the login is marked expired.
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the port is still open"
    );
}

#[tokio::test]
async fn a_busy_fixed_callback_port_is_a_clear_error() {
    let idp = regent_tests::Idp::start(IdpOptions::default());
    let agent = regent_tests::Agent::start(AgentOptions::default()).await;
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    let out = agent.regent(&[
        "registry",
        "add",
        "corp",
        REGISTRY_URL,
        "--issuer",
        &idp.issuer,
        "--client-id",
        "regent-test",
        "--callback-port",
        &port,
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = agent.regent(&["login", "--no-browser"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains(&format!("callback port {port}")) && out.stderr.contains("in use"),
        "{}",
        out.stderr
    );
    // Freed, the same fixed port is used (never a silent switch to another).
    drop(busy);
    let w = World { idp, agent };
    let login = start(&w, "corp").await;
    let auth = Url::parse(login.authorize_url.as_deref().unwrap()).unwrap();
    let cb = Url::parse(&query(&auth, "redirect_uri").unwrap()).unwrap();
    assert_eq!(cb.port().unwrap().to_string(), port);
    // A second browser login of the registry joins the first: the one port.
    let second = start(&w, "corp").await;
    assert_eq!(second.id, login.id);
    assert!(second.joined);
    let cb = Session::default()
        .authorize(second.authorize_url.as_deref().unwrap(), "bob")
        .await
        .unwrap();
    assert_eq!(cb.port().unwrap().to_string(), port);
    assert_eq!(regent_tests::get(cb).await.unwrap().status(), 200);
    assert_eq!(
        w.agent
            .client()
            .login_status(&second.id, 5)
            .await
            .unwrap()
            .status,
        LoginState::Succeeded
    );
}

#[tokio::test]
async fn logins_for_several_registries_run_at_once_and_never_block_tokens() {
    let w = World::default().await;
    // Two more registries, each a login of its own (different scopes); the third,
    // logged in with the device flow, keeps serving tokens throughout.
    for (name, scopes) in [("other", "openid,profile"), ("third", "openid,email")] {
        let out = w.agent.regent(&[
            "registry",
            "add",
            name,
            &format!("https://{name}.example.test"),
            "--issuer",
            &w.idp.issuer,
            "--client-id",
            "regent-test",
            "--scopes",
            scopes,
        ]);
        assert_eq!(out.code, 0, "{}", out.stderr);
    }
    crate::device_login(&w.agent, Some("third"), "carol").await;
    let a = start(&w, "corp").await;
    let b = start(&w, "other").await;
    // Two browser logins pending: tokens are still served.
    let out = w.agent.regent(&["token", "third"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let cb_b = Session::default()
        .authorize(b.authorize_url.as_deref().unwrap(), "bob")
        .await
        .unwrap();
    let cb_a = Session::default()
        .authorize(a.authorize_url.as_deref().unwrap(), "alice")
        .await
        .unwrap();
    assert_ne!(cb_a.port(), cb_b.port());
    assert_eq!(regent_tests::get(cb_a).await.unwrap().status(), 200);
    assert_eq!(regent_tests::get(cb_b).await.unwrap().status(), 200);
    let client = w.agent.client();
    assert_eq!(
        client
            .login_status(&a.id, 5)
            .await
            .unwrap()
            .account
            .as_deref(),
        Some("alice")
    );
    assert_eq!(
        client
            .login_status(&b.id, 5)
            .await
            .unwrap()
            .account
            .as_deref(),
        Some("bob")
    );
    let regs = client.registries().await.unwrap();
    let accounts: Vec<_> = regs
        .iter()
        .map(|r| r.auth.as_ref().unwrap().account.clone().unwrap())
        .collect();
    assert_eq!(accounts, ["alice", "bob", "carol"]);
}
