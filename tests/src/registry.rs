//! The MCP registry fixture (`node tests/registry/registry.mjs`): pages of
//! servers behind Bearer tokens it verifies by introspection at the IdP.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// How to start the registry.
#[derive(Clone, Debug, Default)]
pub struct RegistryOptions {
    /// The IdP whose tokens it accepts (introspection).
    pub issuer: Option<String>,
    /// Tokens accepted as they are.
    pub static_tokens: Vec<String>,
    /// No auth at all.
    pub public: bool,
    /// Only the v0 API (v0.1 answers 404).
    pub v0_only: bool,
    /// Protected resource metadata naming the issuer (RFC 9728), so no `--issuer` is needed.
    pub prm: bool,
    /// A URL `io.example/server-1` lists as its streamable-http remote.
    pub remote: Option<String>,
}

/// A running registry fixture; killed on drop.
pub struct Registry {
    child: Child,
    /// Its base URL, `http://127.0.0.1:PORT`.
    pub url: String,
    http: reqwest::Client,
}

impl Registry {
    /// Starts the fixture and waits for its ready line.
    pub fn start(opts: RegistryOptions) -> Registry {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/registry/registry.mjs");
        let mut cmd = Command::new("node");
        cmd.arg(script)
            .env("REGISTRY_PORT", "0")
            .env("REGISTRY_ISSUER", opts.issuer.unwrap_or_default())
            .env("REGISTRY_STATIC_TOKENS", opts.static_tokens.join(","))
            .env("REGISTRY_PUBLIC", if opts.public { "1" } else { "" })
            .env("REGISTRY_V0_ONLY", if opts.v0_only { "1" } else { "" })
            .env("REGISTRY_PRM", if opts.prm { "1" } else { "" })
            .env("REGISTRY_REMOTE", opts.remote.unwrap_or_default());
        let (child, ready) = crate::start_fixture(&mut cmd, "registry");
        Registry {
            child,
            url: ready["url"].as_str().unwrap().to_string(),
            http: reqwest::Client::new(),
        }
    }

    /// Sets the fixture's mode (`{"forbid": true}`, `{"redirect_to": URL}`).
    pub async fn mode(&self, mode: Value) {
        let r = self
            .http
            .post(format!("{}/__test/mode", self.url))
            .json(&mode)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }

    /// What it has received.
    pub async fn seen(&self) -> Value {
        crate::get_json(&self.http, format!("{}/__test/seen", self.url)).await
    }

    /// Zeroes its counters.
    pub async fn reset(&self) {
        self.http
            .post(format!("{}/__test/reset", self.url))
            .send()
            .await
            .unwrap();
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `regent serve`; killed on drop.
pub struct Serve {
    child: Child,
    /// Its base URL, `http://127.0.0.1:PORT`.
    pub url: String,
    /// Its port.
    pub port: u16,
}

impl Serve {
    /// Starts `regent serve --listen 127.0.0.1:0` against `agent`.
    pub fn start(agent: &crate::Agent) -> Serve {
        let mut child = agent
            .regent_command(&["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("regent serve starts");
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        let url = loop {
            line.clear();
            assert!(
                err.read_line(&mut line).unwrap() > 0,
                "regent serve ended at start"
            );
            if let Some(u) = line.trim().strip_prefix("regent serve: listening on ") {
                break u.to_string();
            }
        };
        // Keep draining its stderr so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in err.lines() {});
        let port = url.rsplit(':').next().unwrap().parse().unwrap();
        Serve { child, url, port }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
