//! The test IdP: `node tests/idp/idp.mjs` (oidc-provider) on an ephemeral port.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The public client the provider knows.
pub const CLIENT_ID: &str = "regent-test";

/// How to start the IdP.
#[derive(Clone, Debug)]
pub struct IdpOptions {
    /// Access token lifetime, seconds.
    pub access_ttl: u64,
    /// Refresh token lifetime, seconds.
    pub refresh_ttl: u64,
    /// `interval` in device authorization answers.
    pub device_interval: u64,
    /// Issue no refresh tokens at all.
    pub no_refresh: bool,
    /// A successful refresh revokes the access tokens issued before it (as
    /// some authorization servers do).
    pub revoke_on_rotation: bool,
    /// No revocation endpoint at all.
    pub no_revocation: bool,
    /// Serve an RFC 8414 document without the revocation endpoint (which only
    /// the OpenID configuration then names).
    pub rfc8414_without_revocation: bool,
    /// Metadata without `code_challenge_methods_supported` (Entra ID).
    pub no_pkce_metadata: bool,
    /// The API is named by `audience` on the authorization request (Auth0).
    pub audience: bool,
    /// Client `regent-exact` allows only `http://127.0.0.1:PORT/callback` (Okta).
    pub exact_port: Option<u16>,
    /// An authorization request for `openid` without a nonce is refused.
    pub require_nonce: bool,
    /// Every DPoP proof at the token endpoint must carry the IdP's nonce
    /// (RFC 9449 §8: a first proof without one is answered `use_dpop_nonce`).
    pub dpop_nonce: bool,
    /// Serve HTTPS with this certificate (the issuer is then `https://`).
    pub tls: Option<IdpTls>,
    /// Listen on this address instead of 127.0.0.1 (the issuer names it).
    pub host: Option<String>,
    /// Every answer's `Date` is this many seconds off the real time.
    pub date_skew: i64,
}

/// The IdP's HTTPS: its certificate and key, and, for mutual TLS, the CA
/// whose client certificates it requires.
#[derive(Clone, Debug)]
pub struct IdpTls {
    /// The server certificate (PEM).
    pub cert: std::path::PathBuf,
    /// Its key (PEM).
    pub key: std::path::PathBuf,
    /// Require a client certificate issued by this CA (PEM).
    pub client_ca: Option<std::path::PathBuf>,
}

impl Default for IdpOptions {
    fn default() -> Self {
        IdpOptions {
            access_ttl: 300,
            refresh_ttl: 3600,
            device_interval: 1,
            no_refresh: false,
            revoke_on_rotation: false,
            no_revocation: false,
            rfc8414_without_revocation: false,
            no_pkce_metadata: false,
            audience: false,
            exact_port: None,
            require_nonce: false,
            dpop_nonce: false,
            tls: None,
            host: None,
            date_skew: 0,
        }
    }
}

/// A running test IdP; killed on drop.
pub struct Idp {
    child: Child,
    /// Its issuer, `http://127.0.0.1:PORT`.
    pub issuer: String,
    /// Its port.
    pub port: u16,
    http: reqwest::Client,
    _log: tempfile::NamedTempFile,
}

impl Idp {
    /// Starts the IdP and waits for its ready line.
    pub fn start(opts: IdpOptions) -> Idp {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/idp/idp.mjs");
        let modules = concat!(env!("CARGO_MANIFEST_DIR"), "/idp/node_modules");
        assert!(
            std::path::Path::new(modules).exists(),
            "the test IdP's packages are missing: run `npm ci --prefix tests/idp` (scripts/test does)"
        );
        // The fixture, until it prints its ready line. A node that has printed
        // nothing within 20 s is killed and started again (two more tries at
        // most): a rare stall of the Node fixture's own start-up under load
        // (before it serves anything, so before regent is involved) is said on
        // stderr and not left to stall the test; a third fails it, saying so.
        let mut attempt = 0;
        let (child, log, line) = loop {
            attempt += 1;
            let log = tempfile::NamedTempFile::new().unwrap();
            let mut child = Command::new("node")
                .arg(script)
                .env("IDP_PORT", "0")
                .env("IDP_HOST", opts.host.clone().unwrap_or_default())
                .env("IDP_DATE_SKEW", opts.date_skew.to_string())
                .env("IDP_ACCESS_TTL", opts.access_ttl.to_string())
                .env("IDP_REFRESH_TTL", opts.refresh_ttl.to_string())
                .env("IDP_DEVICE_INTERVAL", opts.device_interval.to_string())
                .env("IDP_NO_REFRESH", if opts.no_refresh { "1" } else { "" })
                .env(
                    "IDP_REVOKE_ON_ROTATION",
                    if opts.revoke_on_rotation { "1" } else { "" },
                )
                .env(
                    "IDP_NO_REVOCATION",
                    if opts.no_revocation { "1" } else { "" },
                )
                .env(
                    "IDP_RFC8414",
                    if opts.rfc8414_without_revocation {
                        "no-revocation"
                    } else {
                        ""
                    },
                )
                .env(
                    "IDP_NO_PKCE_METADATA",
                    if opts.no_pkce_metadata { "1" } else { "" },
                )
                .env("IDP_AUDIENCE", if opts.audience { "1" } else { "" })
                .env(
                    "IDP_REQUIRE_NONCE",
                    if opts.require_nonce { "1" } else { "" },
                )
                .env("IDP_DPOP_NONCE", if opts.dpop_nonce { "1" } else { "" })
                .env(
                    "IDP_TLS_CERT",
                    opts.tls
                        .as_ref()
                        .map(|t| t.cert.clone())
                        .unwrap_or_default(),
                )
                .env(
                    "IDP_TLS_KEY",
                    opts.tls.as_ref().map(|t| t.key.clone()).unwrap_or_default(),
                )
                .env(
                    "IDP_TLS_CLIENT_CA",
                    opts.tls
                        .as_ref()
                        .and_then(|t| t.client_ca.clone())
                        .unwrap_or_default(),
                )
                .env(
                    "IDP_EXACT_PORT",
                    opts.exact_port.map(|p| p.to_string()).unwrap_or_default(),
                )
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(log.reopen().unwrap())
                .spawn()
                .expect("node starts (is Node.js installed?)");
            let stdout = child.stdout.take().unwrap();
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let mut line = String::new();
                let _ = BufReader::new(stdout).read_line(&mut line);
                let _ = tx.send(line);
            });
            match rx.recv_timeout(Duration::from_secs(20)) {
                Ok(line) => break (child, log, line),
                Err(_) if attempt < 3 => {
                    eprintln!(
                        "the test IdP printed no ready line within 20 s (attempt {attempt}); starting it again. Its log: {}",
                        std::fs::read_to_string(log.path()).unwrap_or_default()
                    );
                    let _ = child.kill();
                    let _ = child.wait();
                }
                Err(_) => panic!(
                    "the IdP printed no ready line within 20 s, {attempt} times: {}",
                    std::fs::read_to_string(log.path()).unwrap_or_default()
                ),
            }
        };
        let ready: Value = serde_json::from_str(&line).unwrap_or_else(|_| {
            panic!(
                "the IdP did not start: {}",
                std::fs::read_to_string(log.path()).unwrap_or_default()
            )
        });
        Idp {
            child,
            issuer: ready["issuer"].as_str().unwrap().to_string(),
            port: ready["port"].as_u64().unwrap() as u16,
            http: crate::tls::client_builder().build().unwrap(),
            _log: log,
        }
    }

    /// Token endpoint requests so far, by grant type.
    pub async fn counts(&self) -> Value {
        crate::get_json(&self.http, format!("{}/__test/counts", self.issuer)).await
    }

    /// Client regent-pss's private key (PKCS#8 PEM): it signs PS256 only.
    pub async fn client_key(&self) -> String {
        self.text("/__test/client-key").await
    }

    /// A test endpoint's answer, as text.
    async fn text(&self, path: &str) -> String {
        self.http
            .get(format!("{}{path}", self.issuer))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// A workload identity JWT for `sub`, as a platform would project it
    /// (the IdP's jwt-bearer grant trusts it).
    pub async fn workload_token(&self, sub: &str) -> String {
        self.text(&format!("/__test/workload-token?sub={sub}"))
            .await
    }

    /// Every ID-JAG the IdP's token exchange issued: `sub`, `aud`,
    /// `resource`, and `jkt`, the key it is bound to (or null).
    pub async fn id_jags(&self) -> Value {
        crate::get_json(&self.http, format!("{}/__test/id-jags", self.issuer)).await
    }

    /// Refresh-token grants so far.
    pub async fn refreshes(&self) -> u64 {
        self.counts().await["token"]["refresh_token"]
            .as_u64()
            .unwrap_or(0)
    }

    /// Every token value the IdP has issued (access, refresh, ID tokens).
    pub async fn issued(&self) -> Vec<String> {
        crate::get_json(&self.http, format!("{}/__test/issued", self.issuer)).await
    }

    /// [`Idp::issued`] for places that cannot await (a `Drop`): plain blocking HTTP.
    pub fn issued_blocking(&self) -> Vec<String> {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return Vec::new();
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let req = format!(
            "GET /__test/issued HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
            self.port
        );
        if s.write_all(req.as_bytes()).is_err() {
            return Vec::new();
        }
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        let body = answer.split("\r\n\r\n").nth(1).unwrap_or("[]");
        serde_json::from_str(body).unwrap_or_default()
    }

    /// The refresh tokens issued so far, oldest first.
    pub async fn refresh_tokens(&self) -> Vec<String> {
        crate::get_json(&self.http, format!("{}/__test/refresh-tokens", self.issuer)).await
    }

    /// Whether the IdP rotated `refresh_token` away (it answered a refresh with it).
    pub async fn rotated_away(&self, refresh_token: &str) -> bool {
        let rotations: Vec<Value> =
            crate::get_json(&self.http, format!("{}/__test/rotations", self.issuer)).await;
        rotations.iter().any(|r| r["from"] == refresh_token)
    }

    /// The refresh tokens presented again after their rotation (each revoked its grant).
    pub async fn replays(&self) -> Vec<String> {
        crate::get_json(&self.http, format!("{}/__test/replays", self.issuer)).await
    }

    /// Holds the next `times` token requests until [`Idp::release`].
    pub async fn hold(&self, times: u32) {
        self.fault(serde_json::json!({"mode": "hold", "times": times}))
            .await;
    }

    /// Waits until `n` token requests are held.
    pub async fn wait_held(&self, n: u64) {
        crate::eventually(
            "token requests held at the IdP",
            Duration::from_secs(60),
            || async { (self.counts().await["held"].as_u64() == Some(n)).then_some(()) },
        )
        .await;
    }

    /// Answers every held token request.
    pub async fn release(&self) {
        self.http
            .post(format!("{}/__test/release", self.issuer))
            .send()
            .await
            .unwrap();
    }

    /// Zeroes the counters.
    pub async fn reset(&self) {
        self.http
            .post(format!("{}/__test/reset", self.issuer))
            .send()
            .await
            .unwrap();
    }

    /// Injects a token-endpoint fault (`{"mode": ..., "times": n, "delay_ms": ms}`).
    pub async fn fault(&self, fault: Value) {
        let r = self
            .http
            .post(format!("{}/__test/fault", self.issuer))
            .json(&fault)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "fault not accepted: {fault}");
    }

    /// Stops accepting connections (state kept): the IdP is down once a
    /// connection to its port is refused.
    pub fn go_down(&self) {
        signal(self.child.id(), libc::SIGUSR2);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            assert!(
                std::time::Instant::now() < deadline,
                "the IdP still accepts connections"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Accepts connections again on the same port.
    pub async fn come_back(&self) {
        signal(self.child.id(), libc::SIGUSR2);
        let url = format!("{}/.well-known/openid-configuration", self.issuer);
        crate::eventually(
            "the IdP to listen again",
            Duration::from_secs(5),
            || async { self.http.get(&url).send().await.ok().map(|_| ()) },
        )
        .await;
    }

    /// RFC 7662 introspection: whether the IdP considers `token` active.
    pub async fn is_active(&self, token: &str) -> bool {
        self.introspect(token).await["active"].as_bool().unwrap()
    }

    /// RFC 7662 introspection: what the IdP says of `token` (`cnf.jkt` for a
    /// DPoP-bound one).
    pub async fn introspect(&self, token: &str) -> Value {
        self.http
            .post(format!("{}/token/introspection", self.issuer))
            .basic_auth("regent-introspector", Some("introspector-secret"))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// RFC 7009 revocation by the public client, as an administrator or another app would.
    pub async fn revoke(&self, token: &str, hint: &str) {
        let r = self
            .http
            .post(format!("{}/token/revocation", self.issuer))
            .form(&[
                ("token", token),
                ("token_type_hint", hint),
                ("client_id", CLIENT_ID),
            ])
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }

    /// Revokes one access token alone (its refresh token stays valid).
    pub async fn destroy_access_token(&self, token: &str) {
        let r = self
            .http
            .post(format!("{}/__test/destroy-access-token", self.issuer))
            .json(&serde_json::json!({ "token": token }))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "no such access token at the IdP");
    }

    /// A raw refresh-token grant, as a client without the agent would send it.
    pub async fn refresh_directly(&self, refresh_token: &str) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}/token", self.issuer))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
                ("client_id", CLIENT_ID),
            ])
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends a signal to a process.
pub fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) with a pid we started.
    unsafe {
        libc::kill(pid as i32, sig);
    }
}
