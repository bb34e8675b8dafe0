//! The in-process tier: the agent's own router on an agent in this process,
//! with an in-process IdP (`fake_idp`) and, where time matters, tokio's
//! paused clock, so expiry, refresh-ahead, backoff and outages are driven
//! step by step instead of waited for. The end-to-end tier (tests/e2e) runs
//! the real binaries against the real oidc-provider.

mod api;
mod fake_idp;
mod grants;
mod tokens;
mod workload;

use axum::body::Body;
use axum::http::Request;
use fake_idp::{FakeIdp, Options, Wire, ISSUER};
use regentd::agent::Agent;
use regentd::clock::Clock;
use regentd::config::ConfigFile;
use regentd::ctx::{Ctx, Settings};
use regentd::oauth::http::IdpClient;
use regentd::store::{Store, StoreChoice};
use serde_json::{json, Value};
use std::sync::Arc;
use tower::ServiceExt;

/// An agent with its router, an IdP, and a home for its config (and file store).
pub struct World {
    pub idp: Arc<FakeIdp>,
    pub agent: Arc<Agent>,
    pub router: axum::Router,
    pub home: tempfile::TempDir,
    store: StoreChoice,
}

impl World {
    /// A memory-store agent on tokio's clock (paused in `start_paused` tests).
    pub async fn new(opts: Options) -> World {
        Self::with_store(opts, StoreChoice::Memory).await
    }

    /// An agent whose tokens persist in a file under its home (real time:
    /// the file store's calls run on the blocking pool).
    pub async fn with_file_store(opts: Options) -> World {
        Self::with_store(opts, StoreChoice::File).await
    }

    async fn with_store(opts: Options, store: StoreChoice) -> World {
        let home = tempfile::tempdir().unwrap();
        let idp = FakeIdp::new(opts);
        let agent = start(&idp, home.path(), store).await;
        World {
            router: regentd::api::router(agent.clone()),
            idp,
            agent,
            home,
            store,
        }
    }

    /// A new agent on the same home and store (the old one is dropped).
    pub async fn restart(&mut self) {
        self.agent = start(&self.idp, self.home.path(), self.store).await;
        self.router = regentd::api::router(self.agent.clone());
    }

    /// The config file.
    pub fn config_path(&self) -> std::path::PathBuf {
        self.home.path().join("config.toml")
    }

    /// The file store's contents.
    pub fn stored(&self) -> serde_json::Map<String, Value> {
        std::fs::read(self.home.path().join("tokens.json"))
            .map(|b| serde_json::from_slice(&b).unwrap())
            .unwrap_or_default()
    }

    /// One API call: status and JSON body (`Value::Null` when empty).
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .body(match body {
                Some(b) => Body::from(b.to_string()),
                None => Body::empty(),
            })
            .unwrap();
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status().as_u16();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        let v = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        (status, v)
    }

    /// Adds registry `name` with OAuth at the fake IdP; `extra` adds fields to
    /// the auth. The tests' registries share logins with one another when
    /// they can (`share_login`); the consent itself is tested on its own.
    pub async fn add(&self, name: &str, extra: Value) {
        let mut auth = json!({"type": "oauth", "issuer": ISSUER, "client_id": "cli"});
        if let Value::Object(m) = extra {
            for (k, v) in m {
                auth[k] = v;
            }
        }
        let (s, v) = self
            .call(
                "PUT",
                &format!("/v1/registries/{name}"),
                Some(json!({"url": format!("https://{name}.example"), "auth": auth, "share_login": true})),
            )
            .await;
        assert_eq!(s, 200, "{v}");
    }

    /// A device login of `name`, approved at once by the fake IdP.
    pub async fn login(&self, name: &str) {
        let (s, login) = self
            .call(
                "POST",
                "/v1/login",
                Some(json!({"registry": name, "flow": "device"})),
            )
            .await;
        assert_eq!(s, 202, "{login}");
        let id = login["id"].as_str().unwrap();
        let (_, st) = self
            .call("GET", &format!("/v1/login/{id}?wait_secs=30"), None)
            .await;
        assert_eq!(st["status"], "succeeded", "{st}");
    }

    /// `POST /v1/token`: the token, or the error body.
    pub async fn token(&self, name: &str, min_valid: u64) -> Result<String, Value> {
        let (s, v) = self
            .call(
                "POST",
                "/v1/token",
                Some(json!({"registry": name, "min_valid_secs": min_valid})),
            )
            .await;
        if s == 200 {
            Ok(v["access_token"].as_str().unwrap().to_string())
        } else {
            Err(v["error"].clone())
        }
    }

    /// The auth status of `name`.
    pub async fn auth(&self, name: &str) -> Value {
        let (_, v) = self.call("GET", "/v1/registries", None).await;
        v["registries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .map(|r| r["auth"].clone())
            .unwrap_or(Value::Null)
    }
}

async fn start(idp: &Arc<FakeIdp>, home: &std::path::Path, store: StoreChoice) -> Arc<Agent> {
    let store = Store::open(store, home.to_path_buf()).unwrap();
    let clock = Clock::tokio_at(time::OffsetDateTime::now_utc());
    let ctx = Ctx::with(
        store,
        Settings::default(),
        IdpClient::with_transport(Arc::new(Wire(idp.clone()))),
        clock,
    );
    let config = ConfigFile::open(&home.join("config.toml")).unwrap();
    Agent::start(ctx, config).await
}
