//! Company networks: an IdP whose certificate comes from a CA of the
//! company's own (here, the test's), trusted through `ca_file` in the
//! config's `[network]` table or the system's store (`SSL_CERT_FILE`), and
//! named — host, problem, setting — when it is not.

use crate::World;
use regent_tests::idp::IdpTls;
use regent_tests::tls::TestCa;
use regent_tests::{Agent, AgentOptions, Idp, IdpOptions};
use serde_json::Value;

/// An IdP served over HTTPS with a certificate `ca` issued.
fn https_idp(ca: &TestCa) -> Idp {
    let server = ca.server();
    Idp::start(IdpOptions {
        tls: Some(IdpTls {
            cert: server.cert,
            key: server.key,
            client_ca: None,
        }),
        ..IdpOptions::default()
    })
}

/// The same on `addr`, an address of this machine that is not loopback.
fn https_idp_on(ca: &TestCa, addr: &str) -> Idp {
    let server = ca.server_for(&[addr]);
    Idp::start(IdpOptions {
        tls: Some(IdpTls {
            cert: server.cert,
            key: server.key,
            client_ca: None,
        }),
        host: Some(addr.to_string()),
        ..IdpOptions::default()
    })
}

/// An IdP over HTTPS that wants a client certificate `ca` issued (the
/// harness's own requests, forms and introspection, present one too).
fn mutual_tls_idp(ca: &TestCa) -> Idp {
    let server = ca.server();
    regent_tests::tls::present(&ca.client("harness"));
    Idp::start(IdpOptions {
        tls: Some(IdpTls {
            cert: server.cert,
            key: server.key,
            client_ca: Some(ca.ca_file.clone()),
        }),
        ..IdpOptions::default()
    })
}

fn add_corp(agent: &Agent, idp: &Idp) -> regent_tests::agent::CmdOut {
    agent.regent(&[
        "registry",
        "add",
        "corp",
        crate::REGISTRY_URL,
        "--issuer",
        &idp.issuer,
        "--client-id",
        regent_tests::idp::CLIENT_ID,
    ])
}

/// Appends `table` to the agent's config file and has it reloaded.
async fn configure(agent: &Agent, table: &str) {
    let path = agent.config_file();
    let mut text = std::fs::read_to_string(&path).unwrap_or_default();
    text.push_str(table);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, text).unwrap();
    let out = agent.regent(&["agent", "reload"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
}

#[tokio::test]
async fn an_idp_on_a_company_ca_is_named_until_ca_file_trusts_it() {
    let ca = TestCa::new("Corp Root CA");
    let idp = https_idp(&ca);
    assert!(
        idp.issuer.starts_with("https://127.0.0.1:"),
        "{}",
        idp.issuer
    );
    let agent = Agent::start(AgentOptions::default()).await;
    // Untrusted: the error names the host, the problem and the setting.
    let out = add_corp(&agent, &idp);
    assert_ne!(out.code, 0, "{out:?}");
    let host = idp.issuer.trim_start_matches("https://");
    assert!(
        out.stderr.contains(host)
            && out
                .stderr
                .contains("certificate authority regent does not trust")
            && out.stderr.contains("ca_file"),
        "{}",
        out.stderr
    );
    configure(
        &agent,
        &format!(
            "\n[network]\nca_file = {:?}\n",
            ca.ca_file.display().to_string()
        ),
    )
    .await;
    let out = add_corp(&agent, &idp);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let status: Value = serde_json::from_str(&agent.regent(&["status", "--json"]).stdout).unwrap();
    let sources = status["network"]["ca_sources"].to_string();
    assert!(
        sources.contains(&format!("ca_file {}: 1 certificate", ca.ca_file.display())),
        "{status}"
    );
    let w = World { idp, agent };
    w.login("alice").await;
    let token = w.token(&[]);
    assert!(w.idp.is_active(&token).await);
}

/// The system's store as `SSL_CERT_FILE` names it: an agent whose
/// environment points there trusts the company CA with nothing in the config.
#[tokio::test]
async fn the_system_store_of_ssl_cert_file_is_trusted() {
    let ca = TestCa::new("Corp Root CA");
    let idp = https_idp(&ca);
    let agent = Agent::start(AgentOptions {
        env: vec![("SSL_CERT_FILE".into(), ca.ca_file.display().to_string())],
        ..AgentOptions::default()
    })
    .await;
    let out = add_corp(&agent, &idp);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let w = World { idp, agent };
    w.login("alice").await;
    let status = w.status();
    let sources = status["network"]["ca_sources"].to_string();
    assert!(
        sources.contains(&format!("SSL_CERT_FILE={}", ca.ca_file.display())),
        "{status}"
    );
}

/// A real proxy (tinyproxy, Basic auth, an access log): with `proxy` in
/// `[network]`, every request of the agent to the IdP goes through it (the
/// log shows the CONNECTs), its password is never shown; with the IdP in
/// `no_proxy`, none does; a wrong password is named as the proxy's refusal.
#[tokio::test]
async fn the_agent_goes_through_the_configured_proxy_and_not_for_no_proxy_hosts() {
    let proxy = match regent_tests::proxy::Tinyproxy::start() {
        Ok(p) => p,
        Err(why) => return regent_tests::missing("tinyproxy", &why),
    };
    let addr = match regent_tests::proxy::outward_address() {
        Ok(a) => a,
        Err(why) => return regent_tests::missing("an address besides loopback", &why),
    };
    let ca = TestCa::new("Corp Root CA");
    let idp = https_idp_on(&ca, &addr);
    let host_port = idp.issuer.trim_start_matches("https://").to_string();
    let agent = Agent::start(AgentOptions::default()).await;
    let network = |proxy_url: &str, no_proxy: &str| {
        format!(
            "\n[network]\nca_file = {:?}\nproxy = {:?}\nno_proxy = {:?}\n",
            ca.ca_file.display().to_string(),
            proxy_url,
            no_proxy
        )
    };
    configure(&agent, &network(&proxy.url(), "")).await;
    let out = add_corp(&agent, &idp);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let w = World { idp, agent };
    w.login("alice").await;
    let token = w.token(&[]);
    assert!(w.idp.is_active(&token).await);
    let through = proxy.connects_to(&host_port);
    assert!(
        through >= 2,
        "the agent went around the proxy: {}",
        proxy.log()
    );
    let status = w.agent.regent(&["status"]);
    assert!(
        status.stdout.contains(&format!(
            "proxy: http://{}:***@127.0.0.1:{} (from the config)",
            regent_tests::proxy::USER,
            proxy.port
        )),
        "{}",
        status.stdout
    );
    let json = w.agent.regent(&["status", "--json"]).stdout;
    for shown in [&status.stdout, &json, &w.agent.log()] {
        assert!(
            !shown.contains(regent_tests::proxy::PASSWORD),
            "the proxy's password was shown"
        );
    }

    // The IdP in no_proxy: a refresh goes direct.
    rewrite_network(&w.agent, &network(&proxy.url(), &addr)).await;
    w.invalidate().await;
    let refreshed = w.token(&[]);
    assert_ne!(refreshed, token);
    assert_eq!(proxy.connects_to(&host_port), through, "{}", proxy.log());

    // No credentials: the proxy's 407, named with the setting; a wrong
    // password: the proxy's refusal, naming the credentials first.
    let add_another = || {
        w.agent.regent(&[
            "registry",
            "add",
            "corp2",
            "https://registry2.example.test",
            "--issuer",
            &w.idp.issuer,
            "--client-id",
            regent_tests::idp::CLIENT_ID,
        ])
    };
    rewrite_network(
        &w.agent,
        &network(&format!("http://127.0.0.1:{}", proxy.port), ""),
    )
    .await;
    let out = add_another();
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains(&host_port)
            && out.stderr.contains("wants credentials (407)")
            && out.stderr.contains("proxy under [network]"),
        "{}",
        out.stderr
    );
    rewrite_network(
        &w.agent,
        &network(&proxy.url_with_password("bad-pass-123"), ""),
    )
    .await;
    let out = add_another();
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains(&host_port)
            && out.stderr.contains("refused to open a connection to it")
            && out
                .stderr
                .contains("check the user and password in the proxy under [network]")
            && !out.stderr.contains("bad-pass-123"),
        "{}",
        out.stderr
    );
    // regent doctor says the same, at its step.
    let out = w.agent.regent(&["doctor", "corp"]);
    assert_eq!(out.code, 1, "{}", out.stdout);
    let proxy_shown = format!(
        "http://{}:***@127.0.0.1:{}",
        regent_tests::proxy::USER,
        proxy.port
    );
    assert!(
        out.stdout.lines().any(|l| l
            == format!(
                "FAIL  corp         tls       {host_port}: the proxy {proxy_shown} refused to open a connection to it \
                 (a wrong user or password, a host it cannot resolve or reach, or one it does not allow)"
            )),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.lines().any(|l| l
            == format!(
                "ok    corp         proxy     {addr} through {proxy_shown} (from the config)"
            )),
        "{}",
        out.stdout
    );
}

/// Replaces the `[network]` table of the agent's config and reloads.
async fn rewrite_network(agent: &Agent, table: &str) {
    let path = agent.config_file();
    let text = std::fs::read_to_string(&path).unwrap();
    let kept = match text.find("\n[network]") {
        Some(i) => {
            let rest = &text[i + 1..];
            let end = rest[1..]
                .find("\n[")
                .map(|j| i + 1 + 1 + j)
                .unwrap_or(text.len());
            format!("{}{}", &text[..i], &text[end..])
        }
        None => text,
    };
    std::fs::write(&path, kept).unwrap();
    configure(agent, table).await;
}

/// Mutual TLS: an IdP that wants a client certificate is named as such
/// until `client_cert` and `client_key` are set; a key others can read is
/// refused (the running settings stay).
#[tokio::test]
async fn an_idp_that_wants_a_client_certificate_gets_the_configured_one() {
    let ca = TestCa::new("Corp Root CA");
    let idp = mutual_tls_idp(&ca);
    let agent = Agent::start(AgentOptions::default()).await;
    let trust = format!(
        "\n[network]\nca_file = {:?}\n",
        ca.ca_file.display().to_string()
    );
    configure(&agent, &trust).await;
    let out = add_corp(&agent, &idp);
    assert_ne!(out.code, 0, "{out:?}");
    let host = idp.issuer.trim_start_matches("https://");
    assert!(
        out.stderr.contains(host)
            && out.stderr.contains("wants a client certificate")
            && out.stderr.contains("client_cert and client_key"),
        "{}",
        out.stderr
    );
    let mine = ca.client("alice-laptop");
    let with_cert = format!(
        "{trust}client_cert = {:?}\nclient_key = {:?}\n",
        mine.cert.display().to_string(),
        mine.key.display().to_string()
    );
    rewrite_network(&agent, &with_cert).await;
    let out = add_corp(&agent, &idp);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let w = World { idp, agent };
    w.login("alice").await;
    let status = w.status();
    assert_eq!(
        status["network"]["client_cert"],
        mine.cert.display().to_string(),
        "{status}"
    );

    // A key others can read: the reload is refused, naming the fix.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&mine.key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = w.agent.regent(&["agent", "reload"]);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("can be read by others") && out.stderr.contains("chmod 600"),
        "{}",
        out.stderr
    );
    w.invalidate().await;
    assert!(
        w.idp.is_active(&w.token(&[])).await,
        "the running settings stay"
    );
}

/// The other certificate failures a user meets, each named with the host
/// and what was wrong: a certificate for another name, an expired one.
#[tokio::test]
async fn a_wrong_name_and_an_expired_certificate_are_named() {
    let ca = TestCa::new("Corp Root CA");
    let agent = Agent::start(AgentOptions::default()).await;
    configure(
        &agent,
        &format!(
            "\n[network]\nca_file = {:?}\n",
            ca.ca_file.display().to_string()
        ),
    )
    .await;
    for (issued, problem) in [
        (
            ca.server_for(&["idp.corp.example"]),
            "its TLS certificate is not for the name 127.0.0.1",
        ),
        (ca.expired_server(), "its TLS certificate has expired"),
    ] {
        let idp = Idp::start(IdpOptions {
            tls: Some(IdpTls {
                cert: issued.cert,
                key: issued.key,
                client_ca: None,
            }),
            ..IdpOptions::default()
        });
        let out = add_corp(&agent, &idp);
        assert_ne!(out.code, 0);
        let host = idp.issuer.trim_start_matches("https://");
        assert!(
            out.stderr.contains(&format!("{host}: {problem}")),
            "{}",
            out.stderr
        );
    }
}

/// The CLI's own requests (here the registry reader of `regent servers`)
/// take the config's `[network]` too: with `ca_file` the registry is
/// reached (and answers what it answers); without, the CLI names the CA.
#[tokio::test]
async fn the_clis_own_requests_take_the_network_settings_of_the_config() {
    let ca = TestCa::new("Corp Root CA");
    let idp = https_idp(&ca);
    let agent = Agent::start(AgentOptions::default()).await;
    let trust = format!(
        "\n[network]\nca_file = {:?}\n",
        ca.ca_file.display().to_string()
    );
    configure(&agent, &trust).await;
    // A registry on the IdP's own origin: something answers there, over HTTPS.
    let out = agent.regent(&[
        "registry",
        "add",
        "corp",
        &format!("{}/registry", idp.issuer),
        "--issuer",
        &idp.issuer,
        "--client-id",
        regent_tests::idp::CLIENT_ID,
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    crate::device_login(&agent, Some("corp"), "alice").await;
    let out = agent.regent(&["servers", "corp"]);
    assert_ne!(out.code, 0, "the IdP is no registry");
    assert!(
        out.stderr.contains("has no MCP registry API"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("does not trust"), "{}", out.stderr);

    rewrite_network(&agent, "\n[network]\n").await;
    let out = agent.regent(&["servers", "corp"]);
    assert_ne!(out.code, 0);
    let host = idp.issuer.trim_start_matches("https://");
    assert!(
        out.stderr.contains(&format!(
            "{host}: its TLS certificate is issued by a certificate authority regent does not trust"
        )) && out.stderr.contains("ca_file"),
        "{}",
        out.stderr
    );
}

/// A resource's own client certificate (`client_cert` / `client_key` in
/// its table) goes to its server and its IdP, from the agent and from the
/// CLI alike, while `[network]` names none.
#[tokio::test]
async fn a_resources_own_client_certificate_goes_to_its_idp_and_its_server() {
    let ca = TestCa::new("Corp Root CA");
    let idp = mutual_tls_idp(&ca);
    let mine = ca.client("alice-laptop");
    let mut agent = Agent::unstarted(AgentOptions::default());
    let path = agent.config_file();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(
        &path,
        format!(
            "[network]\nca_file = {:?}\n\n[registries.corp]\nurl = \"{1}/registry\"\nclient_cert = {2:?}\nclient_key = {3:?}\n\n\
             [registries.corp.auth]\ntype = \"oauth\"\nissuer = \"{1}\"\nclient_id = \"{4}\"\n",
            ca.ca_file.display().to_string(),
            idp.issuer,
            mine.cert.display().to_string(),
            mine.key.display().to_string(),
            regent_tests::idp::CLIENT_ID
        ),
    )
    .unwrap();
    agent.spawn().await;
    crate::device_login(&agent, Some("corp"), "alice").await;
    let w = World { idp, agent };
    assert!(w.idp.is_active(&w.token(&[])).await);
    // The CLI's registry reader reaches the server (which is no registry).
    let out = w.agent.regent(&["servers", "corp"]);
    assert!(
        out.stderr.contains("has no MCP registry API"),
        "{}",
        out.stderr
    );
    let out = w.agent.regent(&["doctor", "corp"]);
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert!(
        out.stdout.lines().any(|l| l
            == "ok    corp         tls       127.0.0.1 answered HTTP 404; its certificate is issued by CN=Corp Root CA, O=regent tests"),
        "{}",
        out.stdout
    );
}

/// A desktop's SOCKS proxy in the environment (`all_proxy=socks://…`) is
/// left out, said in status, and refuses nothing.
#[tokio::test]
async fn a_socks_proxy_in_the_environment_is_left_out_and_said() {
    let idp = Idp::start(IdpOptions::default());
    let agent = Agent::start(AgentOptions {
        env: vec![("all_proxy".into(), "socks://127.0.0.1:1080".into())],
        ..AgentOptions::default()
    })
    .await;
    let out = add_corp(&agent, &idp);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let status: Value = serde_json::from_str(&agent.regent(&["status", "--json"]).stdout).unwrap();
    let source = status["network"]["proxy_source"].as_str().unwrap();
    assert!(
        source.starts_with("none (1 left out:") && source.contains("socks proxy"),
        "{source}"
    );
}
