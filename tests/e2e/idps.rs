//! The identity providers people have: each quirk of the README's IdP
//! guides, shown by the test IdP configured to mimic it, and what regent
//! does about it (an option that makes it work, or a message that says
//! which one).

use regent_proto::{LoginFlow, LoginRequest};
use regent_tests::{Agent, AgentOptions, Idp, IdpOptions};
use serde_json::Value;

const REGISTRY: &str = "https://registry.example.test";

fn add(agent: &Agent, idp: &Idp, client: &str, extra: &[&str]) -> regent_tests::CmdOut {
    let mut args = vec![
        "registry",
        "add",
        "corp",
        REGISTRY,
        "--issuer",
        &idp.issuer,
        "--client-id",
        client,
    ];
    args.extend_from_slice(extra);
    agent.regent(&args)
}

/// `regent login corp` through the headless browser; its output.
fn browser_login(agent: &Agent, log: Option<&std::path::Path>) -> std::process::Output {
    let mut cmd = agent.regent_command(&["login", "corp"]);
    cmd.env("BROWSER", regent_tests::bin("browser"));
    if let Some(l) = log {
        cmd.env("REGENT_TEST_BROWSER_LOG", l);
    }
    cmd.output().unwrap()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Entra ID: metadata without `code_challenge_methods_supported`. Refused
/// unless `--assume-pkce-s256`; with it, S256 is still sent and shown.
#[tokio::test]
async fn entra_metadata_without_pkce_methods_works_with_assume_pkce_s256() {
    let idp = Idp::start(IdpOptions {
        no_pkce_metadata: true,
        ..Default::default()
    });
    let agent = Agent::start(AgentOptions::default()).await;
    let out = add(&agent, &idp, regent_tests::idp::CLIENT_ID, &[]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("--assume-pkce-s256"), "{}", out.stderr);
    let out = add(
        &agent,
        &idp,
        regent_tests::idp::CLIENT_ID,
        &["--assume-pkce-s256"],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let status: Value = serde_json::from_str(&agent.regent(&["status", "--json"]).stdout).unwrap();
    assert_eq!(status["registries"][0]["auth"]["assume_pkce_s256"], true);
    let opened = agent.home().join("opened");
    let login = browser_login(&agent, Some(&opened));
    assert!(login.status.success(), "{}", stderr(&login));
    let url = std::fs::read_to_string(&opened).unwrap();
    assert!(url.contains("code_challenge_method=S256"), "{url}");
    assert!(agent.regent(&["token", "corp"]).code == 0);
}

/// Okta (and any IdP that matches redirect URIs exactly): with
/// `--callback-port` the redirect URI is the registered one, and it works.
#[tokio::test]
async fn okta_exact_redirect_uri_works_with_a_callback_port() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let idp = Idp::start(IdpOptions {
        exact_port: Some(port),
        ..Default::default()
    });
    let agent = Agent::start(AgentOptions::default()).await;
    let out = add(
        &agent,
        &idp,
        "regent-exact",
        &["--callback-port", &port.to_string()],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let opened = agent.home().join("opened");
    let login = browser_login(&agent, Some(&opened));
    assert!(login.status.success(), "{}", stderr(&login));
    let url = std::fs::read_to_string(&opened).unwrap();
    let expected = format!("redirect_uri=http%3A%2F%2F127.0.0.1%3A{port}%2Fcallback");
    assert!(url.contains(&expected), "{url}");
}

/// Keycloak with the device grant switched off for the client: the device
/// login is refused before any code is shown, naming the client and the switch.
#[tokio::test]
async fn a_client_without_the_device_grant_is_told_so_before_a_code_is_shown() {
    let idp = Idp::start(IdpOptions::default());
    let agent = Agent::start(AgentOptions::default()).await;
    assert_eq!(add(&agent, &idp, "regent-nodevice", &[]).code, 0);
    let out = agent.regent(&["login", "corp", "--device"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(!out.stderr.contains("enter the code"), "{}", out.stderr);
    for s in [
        "unauthorized_client",
        "client regent-nodevice may not use the device flow",
        "Keycloak",
        "device login of corp",
    ] {
        assert!(out.stderr.contains(s), "{s}: {}", out.stderr);
    }
}

/// Google's "installed app" clients carry a secret: `--client-secret-file`
/// gives it (kept in the store, never in the config); without it the IdP's
/// invalid_client is explained.
#[tokio::test]
async fn an_installed_app_client_secret_is_kept_in_the_store_only() {
    let idp = Idp::start(IdpOptions::default());
    let agent = Agent::start(AgentOptions::default()).await;
    assert_eq!(add(&agent, &idp, "regent-secret", &[]).code, 0);
    let login = browser_login(&agent, None);
    assert!(!login.status.success());
    let err = stderr(&login);
    assert!(
        err.contains("invalid_client") && err.contains("--client-secret-file"),
        "{err}"
    );

    let secret = agent.home().join("secret");
    std::fs::write(&secret, "installed-app-secret\n").unwrap();
    let out = add(
        &agent,
        &idp,
        "regent-secret",
        &["--client-secret-file", secret.to_str().unwrap()],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let login = browser_login(&agent, None);
    assert!(login.status.success(), "{}", stderr(&login));
    let token = agent.regent(&["token", "corp"]).stdout.trim().to_string();
    assert!(idp.is_active(&token).await);
    let config = std::fs::read_to_string(agent.config_file()).unwrap();
    assert!(!config.contains("installed-app-secret"), "{config}");
    let stored = std::fs::read_to_string(agent.home().join("state/regent/tokens.json")).unwrap();
    assert!(stored.contains("regent:"), "the secret is in the store");
}

/// Auth0: the API is named by `audience`; the token is for it.
#[tokio::test]
async fn auth0_audience_names_the_api_the_token_is_for() {
    let idp = Idp::start(IdpOptions {
        audience: true,
        ..Default::default()
    });
    let agent = Agent::start(AgentOptions::default()).await;
    let api = "https://api.corp.example";
    let out = add(
        &agent,
        &idp,
        regent_tests::idp::CLIENT_ID,
        &["--audience", api],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let login = browser_login(&agent, None);
    assert!(login.status.success(), "{}", stderr(&login));
    let token = agent.regent(&["token", "corp"]).stdout.trim().to_string();
    let payload = token
        .split('.')
        .nth(1)
        .expect("a JWT access token for the API");
    use base64::Engine;
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["aud"], api, "{claims}");
}

/// An OpenID Provider that requires a nonce with `openid`: the browser login
/// sends a fresh one each time, the ID token carries it back, and the login
/// works; the IdP's words are shown where an IdP refuses a request.
#[tokio::test]
async fn an_idp_that_requires_a_nonce_gets_one_and_the_login_works() {
    let idp = Idp::start(IdpOptions {
        require_nonce: true,
        ..Default::default()
    });
    let agent = Agent::start(AgentOptions::default()).await;
    assert_eq!(add(&agent, &idp, regent_tests::idp::CLIENT_ID, &[]).code, 0);
    let log = tempfile::NamedTempFile::new().unwrap();
    let login = browser_login(&agent, Some(log.path()));
    assert!(login.status.success(), "{}", stderr(&login));
    let opened = std::fs::read_to_string(log.path()).unwrap();
    let url = opened
        .split_whitespace()
        .find(|w| w.starts_with("http"))
        .expect("the browser opened the authorization URL");
    let url = url::Url::parse(url).unwrap();
    let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert!(q["scope"].split(' ').any(|s| s == "openid"), "{url}");
    assert!(q.get("nonce").is_some_and(|n| n.len() >= 32), "{url}");
    let token = agent.regent(&["token", "corp"]).stdout.trim().to_string();
    assert!(idp.is_active(&token).await);
}

/// An error redirect without `iss` from an IdP that promises it (RFC 9207)
/// is refused, and what it said is shown as unverified text.
#[tokio::test]
async fn an_error_redirect_without_iss_is_refused_and_shown_unverified() {
    let idp = Idp::start(IdpOptions::default());
    let agent = Agent::start(AgentOptions::default()).await;
    assert_eq!(add(&agent, &idp, regent_tests::idp::CLIENT_ID, &[]).code, 0);
    let client = agent.client();
    let login = client
        .login(&LoginRequest {
            registry: Some("corp".into()),
            flow: LoginFlow::Browser,
            force: false,
        })
        .await
        .unwrap();
    let url = url::Url::parse(login.authorize_url.as_deref().unwrap()).unwrap();
    let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    let callback = format!(
        "{}?error=access_denied&state={}",
        q["redirect_uri"], q["state"]
    );
    let page = regent_tests::get(&callback)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("unverified"), "{page}");
    let st = client.login_status(&login.id, 10).await.unwrap();
    let why = st.error.unwrap_or_default();
    assert!(
        why.contains("no iss parameter") && why.contains("(unverified): access_denied"),
        "{why}"
    );
}
