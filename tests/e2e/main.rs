//! End-to-end tests: the real regentd and regent binaries against a real
//! OpenID Provider, real keyrings, real sockets.

mod adversarial;
mod api;
mod browser;
mod config;
mod conformance;
mod doctor;
mod dpop;
mod forward;
mod helpers;
mod idps;
mod instance;
mod keyrings;
mod lifecycle;
mod login;
mod logout;
mod mcp;
mod network;
mod registry;
mod service;
mod systemd;
mod tools;

use regent_proto::{LoginFlow, LoginRequest, LoginState, LoginStatus};
use regent_tests::{forms, Agent, AgentOptions, Idp, IdpOptions};

/// The registry URL the tests configure (never contacted in these tests).
pub const REGISTRY_URL: &str = "https://registry.example.test";

/// An IdP and an agent with registry `corp` configured against it.
pub struct World {
    pub idp: Idp,
    pub agent: Agent,
}

/// After every test with a World: no token the IdP issued is in the agent's
/// (trace-level) log.
impl Drop for World {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let log = self.agent.log();
        for token in self.idp.issued_blocking() {
            assert!(
                !log.contains(token.as_str()),
                "a token the IdP issued is in the agent's log"
            );
        }
    }
}

impl World {
    pub async fn new(idp: IdpOptions, agent: AgentOptions) -> World {
        let idp = Idp::start(idp);
        let agent = Agent::start(agent).await;
        let out = agent.regent(&[
            "registry",
            "add",
            "corp",
            REGISTRY_URL,
            "--issuer",
            &idp.issuer,
            "--client-id",
            regent_tests::idp::CLIENT_ID,
        ]);
        assert_eq!(out.code, 0, "registry add failed: {}", out.stderr);
        World { idp, agent }
    }

    pub async fn default() -> World {
        World::new(IdpOptions::default(), AgentOptions::default()).await
    }

    /// A complete device login through the API, approved on the provider's forms.
    pub async fn login(&self, user: &str) -> LoginStatus {
        device_login(&self.agent, Some("corp"), user).await
    }

    /// `regent token` that must succeed; the token.
    pub fn token(&self, extra: &[&str]) -> String {
        let mut args = vec!["token"];
        args.extend_from_slice(extra);
        let out = self.agent.regent(&args);
        assert_eq!(out.code, 0, "regent token failed: {}", out.stderr);
        let t = out.stdout.trim().to_string();
        assert!(!t.is_empty());
        t
    }

    /// Drops the cached access token at the agent (as a registry's 401 would),
    /// so the next token request refreshes.
    pub async fn invalidate(&self) {
        let client = self.agent.client();
        let t = client.token(&Default::default()).await.unwrap();
        client
            .invalidate(&regent_proto::InvalidateRequest {
                registry: None,
                access_token: t.access_token,
            })
            .await
            .unwrap();
    }

    /// `regent status --json`.
    pub fn status(&self) -> serde_json::Value {
        let out = self.agent.regent(&["status", "--json"]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        serde_json::from_str(&out.stdout).unwrap()
    }
}

/// Starts a device login at the agent, approves it as `user`, and waits for the outcome.
pub async fn device_login(agent: &Agent, registry: Option<&str>, user: &str) -> LoginStatus {
    let client = agent.client();
    let login = client
        .login(&LoginRequest {
            registry: registry.map(str::to_string),
            flow: LoginFlow::Device,
            force: false,
        })
        .await
        .expect("device login starts");
    forms::approve_device(
        login.verification_uri.as_deref().unwrap(),
        login.user_code.as_deref().unwrap(),
        user,
    )
    .await
    .expect("the provider's forms accept the login");
    let status = client.login_status(&login.id, 30).await.unwrap();
    assert_eq!(status.status, LoginState::Succeeded, "{status:?}");
    status
}
