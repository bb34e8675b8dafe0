//! The one HTTP client the agent uses towards IdPs ([`IdpClient`]), its
//! adapter to the `oauth2` crate that tells "IdP unavailable" apart from an
//! OAuth error, and the seam ([`Transport`]) the in-process tests plug a
//! fake IdP into.

use super::dpop::{DpopKey, Nonces};
use futures::future::BoxFuture;
use oauth2::{AsyncHttpClient, HttpRequest, HttpResponse};
use std::collections::HashSet;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Largest IdP answer the agent reads.
pub const MAX_IDP_BODY: usize = 1024 * 1024;

/// A transport-level failure (towards an IdP, or a resource the agent
/// asks how to authorize: the caller says which, the message names the URL).
#[derive(Debug, Clone, thiserror::Error)]
pub enum HttpError {
    /// Connection refused, timeout, TLS failure, an oversized answer...
    #[error("{0}")]
    Transport(String),
    /// 5xx or 429: the server is there but not serving.
    #[error("it answered HTTP {0}")]
    Status(u16),
    /// A request the client could not build.
    #[error("cannot build the request: {0}")]
    Build(String),
    /// A 4xx whose body is no OAuth error object (an empty `400`, a proxy's
    /// `403` page): the server refused the request, in other words than OAuth's.
    #[error("it refused the request with HTTP {0} and no OAuth error")]
    Refused(u16),
}

/// Whether a token endpoint's answer is a refusal without an OAuth error
/// object: a 4xx (not 408 or 429, which say "later") whose body has no
/// string `error`. Such an answer is final, as an `invalid_grant` is.
pub fn refused_without_error(status: u16, body: &[u8]) -> bool {
    (400..500).contains(&status)
        && status != 408
        && status != 429
        && serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v.get("error").map(|e| e.is_string()))
            != Some(true)
}

/// Sends one request and reads its whole (bounded) answer.
pub trait Transport: Send + Sync + 'static {
    /// Sends `req`; any status is an answer, only transport failures are errors.
    fn send(&self, req: HttpRequest) -> BoxFuture<'static, Result<HttpResponse, HttpError>>;

    /// Takes new network settings (CAs, proxies, client certificate).
    fn set_network(&self, _network: regent_net::Network) {}

    /// The network settings in use, where it has any.
    fn network(&self) -> Option<regent_net::Network> {
        None
    }
}

/// The hosts the user gave (resources' URLs, issuers typed by hand): the
/// only ones that may be at a link-local or unspecified address. Every other
/// host came from a server's answer (protected resource metadata, an AS's
/// metadata) and is refused there, after resolution: a blind request into a
/// cloud metadata service (169.254.169.254) or to 0.0.0.0 (this machine) is
/// never made for a server. Private ranges stay allowed: company IdPs live
/// there.
#[derive(Clone, Default)]
pub struct Typed(
    Arc<RwLock<HashSet<String>>>,
    Arc<std::sync::atomic::AtomicBool>,
    /// The proxies' hosts (the user's settings name them).
    Arc<RwLock<HashSet<String>>>,
);

impl Typed {
    /// Refuses private addresses too (`regentd --no-private-addresses`).
    pub fn deny_private(&self, deny: bool) {
        self.1.store(deny, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether a host a server named may be at `ip`.
    fn refuses(&self, ip: IpAddr) -> bool {
        forbidden(ip) || (self.1.load(std::sync::atomic::Ordering::Relaxed) && private(ip))
    }

    /// Whether a request to `host` at `ip` is refused: a host a server
    /// named, at a forbidden address (for callers that connect themselves:
    /// `regent doctor`).
    pub fn refuses_host(&self, host: &str, ip: IpAddr) -> bool {
        !self.contains(host) && !self.contains(&ip.to_string()) && self.refuses(ip)
    }

    /// Makes `hosts` the ones the user gave (lowercased).
    pub fn set(&self, hosts: impl IntoIterator<Item = String>) {
        *self.0.write().unwrap() = hosts.into_iter().map(|h| h.to_ascii_lowercase()).collect();
    }

    /// Adds one (a URL the user gives, before it is in the config).
    pub fn add(&self, host: &str) {
        self.0.write().unwrap().insert(host.to_ascii_lowercase());
    }

    fn contains(&self, host: &str) -> bool {
        let h = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        self.0.read().unwrap().contains(&h) || self.2.read().unwrap().contains(&h)
    }

    /// Makes the proxies of `network` hosts the user gave.
    fn set_proxies(&self, network: &regent_net::Network) {
        *self.2.write().unwrap() = network.proxies().hosts().into_iter().collect();
    }
}

pub use regent_proto::net::{forbidden, private};

fn refused(host: &str, ip: IpAddr) -> String {
    format!(
        "refusing to connect to {host} ({ip}): a link-local, unspecified (or, with \
         --no-private-addresses, private) address, which only a URL you give may name (a server's \
         answer named it)"
    )
}

/// The system's resolver, with [`forbidden`] addresses dropped for hosts
/// the user did not give.
struct Guarded(Typed);

impl reqwest::dns::Resolve for Guarded {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let guard = self.0.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let kept = admit(&host, all, &guard)?;
            Ok(Box::new(kept.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The addresses of `host` the agent may connect to: all of them for a host
/// the user gave, else those the guard does not refuse (none left: refused).
fn admit(host: &str, all: Vec<SocketAddr>, guard: &Typed) -> Result<Vec<SocketAddr>, String> {
    let typed = guard.contains(host);
    let first = all.first().copied();
    let kept: Vec<SocketAddr> = all
        .into_iter()
        .filter(|a| typed || !guard.refuses(a.ip()))
        .collect();
    match (kept.is_empty(), first) {
        (true, Some(a)) => Err(refused(host, a.ip())),
        _ => Ok(kept),
    }
}

/// The production transport: reqwest with rustls, no redirects (SSRF, RFC
/// 9700), bounded connect and total times, no forbidden address for a host
/// a server named; the network settings (CAs, proxies, client certificate)
/// of the config file, taken again when it changes.
struct Reqwest {
    clients: RwLock<Clients>,
    typed: Typed,
}

/// The clients of one set of network settings: one for every origin, and
/// one for each origin with a client certificate of its own.
#[derive(Clone)]
struct Clients {
    any: reqwest::Client,
    own: Vec<(url::Origin, reqwest::Client)>,
    network: regent_net::Network,
}

impl Clients {
    fn new(network: regent_net::Network, typed: &Typed) -> Clients {
        let own = network
            .own_cert_origins()
            .into_iter()
            .filter_map(|o| {
                let url = url::Url::parse(&o.ascii_serialization()).ok()?;
                Some((o, Reqwest::build(&network, typed, Some(&url))))
            })
            .collect();
        Clients {
            any: Reqwest::build(&network, typed, None),
            own,
            network,
        }
    }

    fn for_url(&self, url: Option<&url::Url>) -> reqwest::Client {
        url.and_then(|u| {
            let o = u.origin();
            self.own
                .iter()
                .find(|(p, _)| *p == o)
                .map(|(_, c)| c.clone())
        })
        .unwrap_or_else(|| self.any.clone())
    }
}

impl Reqwest {
    fn new(network: regent_net::Network, typed: Typed) -> Reqwest {
        typed.set_proxies(&network);
        Reqwest {
            clients: RwLock::new(Clients::new(network, &typed)),
            typed,
        }
    }

    fn build(
        network: &regent_net::Network,
        typed: &Typed,
        own: Option<&url::Url>,
    ) -> reqwest::Client {
        let b = reqwest::Client::builder()
            // The system's resolver (the agent is dynamically linked), guarded.
            .hickory_dns(false)
            .dns_resolver(Arc::new(Guarded(typed.clone())))
            .redirect(reqwest::redirect::Policy::none())
            // No idle connections kept: a pooled connection the IdP (or a load balancer
            // before it) has just closed fails the next request, and a token request
            // that may have reached the IdP must not be sent twice (a replayed refresh
            // token revokes the grant). IdP requests are rare; a handshake each is cheap.
            .pool_max_idle_per_host(0)
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(20))
            .user_agent(concat!("regent/", env!("CARGO_PKG_VERSION")));
        match own {
            Some(u) => network.apply_for(u, b),
            None => network.apply(b),
        }
        .build()
        .expect("the TLS backend initialises")
    }
}

impl Transport for Reqwest {
    fn set_network(&self, network: regent_net::Network) {
        self.typed.set_proxies(&network);
        let clients = Clients::new(network, &self.typed);
        *self.clients.write().unwrap() = clients;
    }

    fn network(&self) -> Option<regent_net::Network> {
        Some(self.clients.read().unwrap().network.clone())
    }

    fn send(&self, req: HttpRequest) -> BoxFuture<'static, Result<HttpResponse, HttpError>> {
        let target = url::Url::parse(&req.uri().to_string()).ok();
        let (client, network) = {
            let c = self.clients.read().unwrap();
            (c.for_url(target.as_ref()), c.network.clone())
        };
        let typed = self.typed.clone();
        Box::pin(async move {
            // An address written as such is never resolved: checked here, as the
            // URL parser (and so the connector) reads it — `2852039166`,
            // `0xa9.0xfe.0xa9.0xfe` and `0` are addresses too.
            if let Ok(u) = url::Url::parse(&req.uri().to_string()) {
                let ip = match u.host() {
                    Some(url::Host::Ipv4(a)) => Some(IpAddr::V4(a)),
                    Some(url::Host::Ipv6(a)) => Some(IpAddr::V6(a)),
                    _ => None,
                };
                let host = req.uri().host().unwrap_or_default();
                if let Some(ip) = ip.filter(|ip| typed.refuses(*ip)) {
                    if !typed.contains(host) && !typed.contains(&ip.to_string()) {
                        return Err(HttpError::Transport(refused(host, ip)));
                    }
                }
            }
            let proxy = target.as_ref().and_then(|u| network.proxy_for(u));
            // Through a proxy, the proxy resolves the name: a host a server
            // named is resolved here too, where it can be, and refused if it
            // leads somewhere forbidden (a name the proxy alone knows passes).
            if let (Some(_), Some(url::Host::Domain(host))) =
                (&proxy, target.as_ref().and_then(|u| u.host()))
            {
                if !typed.contains(host) {
                    if let Ok(addrs) = tokio::net::lookup_host((host, 0)).await {
                        if let Some(a) = addrs.into_iter().find(|a| typed.refuses(a.ip())) {
                            return Err(HttpError::Transport(refused(host, a.ip())));
                        }
                    }
                }
            }
            let req =
                reqwest::Request::try_from(req).map_err(|e| HttpError::Build(e.to_string()))?;
            // reqwest's Display names the URL, never a body; a failure the
            // network settings explain is said with the host and the fix.
            let mut resp = client.execute(req).await.map_err(|e| {
                let explained = target.as_ref().and_then(|u| network.explain(&e, u));
                HttpError::Transport(match explained {
                    Some(f) => f.to_string(),
                    None => error_chain(&e),
                })
            })?;
            if let (407, Some(p), Some(u)) = (resp.status().as_u16(), &proxy, &target) {
                return Err(HttpError::Transport(
                    network.proxy_auth_refused(u, p).to_string(),
                ));
            }
            let mut builder = oauth2::http::Response::builder().status(resp.status());
            for (k, v) in resp.headers() {
                builder = builder.header(k, v);
            }
            let mut body = Vec::new();
            while let Some(chunk) = resp
                .chunk()
                .await
                .map_err(|e| HttpError::Transport(error_chain(&e)))?
            {
                if body.len() + chunk.len() > MAX_IDP_BODY {
                    return Err(HttpError::Transport(format!(
                        "the answer is larger than {} KiB",
                        MAX_IDP_BODY / 1024
                    )));
                }
                body.extend_from_slice(&chunk);
            }
            builder
                .body(body)
                .map_err(|e| HttpError::Build(e.to_string()))
        })
    }
}

/// The agent's client towards IdPs: every discovery, token, device and
/// revocation request goes through it.
#[derive(Clone)]
pub struct IdpClient(Arc<dyn Transport>, Typed, Arc<Nonces>);

tokio::task_local! {
    /// The DPoP key the current task's token requests are signed with.
    static DPOP_KEY: Arc<DpopKey>;
}

/// Runs `f` with every token request it makes signed with `key` (a DPoP
/// proof, RFC 9449 §5; the authorization server's nonce followed once);
/// without a key, as it is.
pub async fn with_dpop<F: Future>(key: Option<Arc<DpopKey>>, f: F) -> F::Output {
    match key {
        Some(k) => DPOP_KEY.scope(k, f).await,
        None => f.await,
    }
}

impl Default for IdpClient {
    fn default() -> Self {
        Self::new()
    }
}

impl IdpClient {
    /// The production client, with the environment's network settings
    /// until the config's are set ([`IdpClient::set_network`]).
    pub fn new() -> IdpClient {
        let typed = Typed::default();
        let network = regent_net::Network::load(&Default::default()).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "the environment's network settings are unusable; none taken");
            regent_net::Network::load_with(&Default::default(), &|_| None)
                .expect("no settings load")
        });
        IdpClient(
            Arc::new(Reqwest::new(network, typed.clone())),
            typed,
            Arc::default(),
        )
    }

    /// Takes new network settings (the config file's `[network]`).
    pub fn set_network(&self, network: regent_net::Network) {
        self.0.set_network(network);
    }

    /// The network settings in use (none for a test transport).
    pub fn network(&self) -> Option<regent_net::Network> {
        self.0.network()
    }

    /// A client over another transport (the in-process tests' fake IdP).
    pub fn with_transport(t: Arc<dyn Transport>) -> IdpClient {
        IdpClient(t, Typed::default(), Arc::default())
    }

    /// The hosts the user gave, which alone may be at forbidden addresses.
    pub fn typed(&self) -> &Typed {
        &self.1
    }

    /// Sends a request (any status is an answer). A POST made under
    /// [`with_dpop`] carries a proof of the key, with the authorization
    /// server's last nonce; an answer `use_dpop_nonce` with a new nonce is
    /// the one case a token request is sent again (the AS did not act on it).
    pub async fn send(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        let key = DPOP_KEY.try_with(Arc::clone).ok();
        let Some(key) = key.filter(|_| req.method() == oauth2::http::Method::POST) else {
            return self.0.send(req).await;
        };
        let url = req.uri().to_string();
        let mut retried = false;
        loop {
            let proof = key
                .proof("POST", &url, None, self.2.get(&url).as_deref())
                .map_err(|e| HttpError::Build(e.to_string()))?;
            let mut signed = oauth2::http::Request::builder()
                .method(req.method().clone())
                .uri(req.uri().clone())
                .body(req.body().clone())
                .map_err(|e| HttpError::Build(e.to_string()))?;
            *signed.headers_mut() = req.headers().clone();
            signed.headers_mut().insert(
                "dpop",
                oauth2::http::HeaderValue::from_str(&proof)
                    .map_err(|e| HttpError::Build(e.to_string()))?,
            );
            let resp = self.0.send(signed).await?;
            let nonce = resp
                .headers()
                .get("dpop-nonce")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            if let Some(n) = &nonce {
                self.2.put(&url, n);
            }
            let wants_nonce = resp.status().as_u16() == 400
                && serde_json::from_slice::<serde_json::Value>(resp.body())
                    .is_ok_and(|v| v["error"] == "use_dpop_nonce");
            if wants_nonce && nonce.is_some() && !retried {
                retried = true;
                continue;
            }
            return Ok(resp);
        }
    }

    /// `GET url` asking for JSON.
    pub async fn get_json(&self, url: &str) -> Result<HttpResponse, HttpError> {
        let req = oauth2::http::Request::get(url)
            .header("accept", "application/json")
            .body(Vec::new())
            .map_err(|e| HttpError::Build(e.to_string()))?;
        self.send(req).await
    }
}

impl<'c> AsyncHttpClient<'c> for IdpClient {
    type Error = HttpError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let resp = self.send(request).await?;
            let status = resp.status();
            if status.is_server_error() || matches!(status.as_u16(), 408 | 429) {
                return Err(HttpError::Status(status.as_u16()));
            }
            if refused_without_error(status.as_u16(), resp.body()) {
                return Err(HttpError::Refused(status.as_u16()));
            }
            Ok(resp)
        })
    }
}

/// An error with its causes ("error sending request: connection refused").
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    regent_net::chain_text(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// An IdP that keeps connections open must still get a fresh one per
    /// request: a pooled connection it closed meanwhile would fail a token
    /// request that must not be retried.
    #[tokio::test]
    async fn no_connection_is_reused() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        let body = "{}";
                        let answer = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: keep-alive\r\n\r\n{body}",
                            body.len()
                        );
                        if s.write_all(answer.as_bytes()).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        let idp = IdpClient::new();
        for _ in 0..3 {
            let r = idp.get_json(&format!("http://{addr}/x")).await.unwrap();
            assert_eq!(r.status(), 200);
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
    }
}

#[cfg(test)]
mod guard_tests {
    use super::*;

    #[test]
    fn link_local_and_unspecified_are_forbidden_private_ranges_are_not() {
        for ip in [
            "169.254.169.254",
            "0.0.0.0",
            "::",
            "fe80::1",
            "::ffff:169.254.169.254",
            "255.255.255.255",
        ] {
            assert!(forbidden(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "10.0.0.1",
            "192.168.1.1",
            "172.16.0.1",
            "127.0.0.1",
            "::1",
            "8.8.8.8",
            "fd00::1",
        ] {
            assert!(!forbidden(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn a_host_name_is_judged_by_what_it_resolves_to() {
        let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
        // A name (or a rebinding) that resolves to the metadata service: refused.
        let guard = Typed::default();
        let e = admit("meta.evil.example", vec![addr("169.254.169.254:0")], &guard).unwrap_err();
        assert!(e.contains("meta.evil.example (169.254.169.254)"), "{e}");
        // Mixed answers keep only the allowed addresses.
        let kept = admit("x", vec![addr("169.254.1.1:0"), addr("10.1.2.3:0")], &guard).unwrap();
        assert_eq!(kept, [addr("10.1.2.3:0")]);
        // Private ones too, where the user says so.
        guard.deny_private(true);
        assert!(admit("x", vec![addr("10.1.2.3:0")], &guard).is_err());
        assert!(admit("x", vec![addr("[fd00::1]:0")], &guard).is_err());
        assert!(admit("x", vec![addr("8.8.8.8:0")], &guard).is_ok());
        // The user's own host keeps everything.
        guard.add("x");
        assert_eq!(
            admit("x", vec![addr("169.254.1.1:0")], &guard)
                .unwrap()
                .len(),
            1
        );
    }

    #[tokio::test]
    async fn a_server_named_address_is_refused_unless_the_user_gave_it() {
        let client = IdpClient::new();
        let err = client
            .get_json("http://169.254.169.254/latest/meta-data/")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("refusing to connect to 169.254.169.254"),
            "{err}"
        );
        let err = client
            .get_json("http://[::]:1/")
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("refusing to connect"), "{err}");
        // Given by the user: tried (and fails only for being unreachable here).
        client.typed().add("0.0.0.0");
        let err = client
            .get_json("http://0.0.0.0:1/")
            .await
            .unwrap_err()
            .to_string();
        assert!(!err.contains("refusing to connect"), "{err}");
    }
}

#[cfg(test)]
mod dpop_tests {
    use super::*;

    /// An AS that wants DPoP nonces: what it was sent, and its answers.
    struct NonceAs(std::sync::Mutex<Vec<Option<String>>>);

    impl Transport for NonceAs {
        fn send(&self, req: HttpRequest) -> BoxFuture<'static, Result<HttpResponse, HttpError>> {
            let proof = req
                .headers()
                .get("dpop")
                .map(|v| v.to_str().unwrap().to_string());
            let nonce = proof.as_ref().and_then(|p| {
                use base64::Engine;
                let claims = p.split('.').nth(1)?;
                let v: serde_json::Value = serde_json::from_slice(
                    &base64::engine::general_purpose::URL_SAFE_NO_PAD
                        .decode(claims)
                        .ok()?,
                )
                .ok()?;
                v["nonce"].as_str().map(str::to_string)
            });
            self.0.lock().unwrap().push(proof.clone());
            let answer = match (proof, nonce.as_deref()) {
                (Some(_), Some("n-1")) => oauth2::http::Response::builder()
                    .status(200)
                    .body(br#"{"access_token":"at","token_type":"DPoP"}"#.to_vec()),
                (Some(_), _) => oauth2::http::Response::builder()
                    .status(400)
                    .header("dpop-nonce", "n-1")
                    .body(br#"{"error":"use_dpop_nonce"}"#.to_vec()),
                (None, _) => oauth2::http::Response::builder()
                    .status(200)
                    .body(br#"{"access_token":"at","token_type":"Bearer"}"#.to_vec()),
            };
            Box::pin(async move { Ok(answer.unwrap()) })
        }
    }

    fn post(url: &str) -> HttpRequest {
        oauth2::http::Request::post(url)
            .body(b"grant_type=refresh_token".to_vec())
            .unwrap()
    }

    /// Under a DPoP key every token request carries a proof; the AS's
    /// `use_dpop_nonce` is followed once, and its nonce is used from then on.
    #[tokio::test]
    async fn token_requests_carry_proofs_and_follow_the_nonce_once() {
        let fake = Arc::new(NonceAs(std::sync::Mutex::default()));
        let idp = IdpClient::with_transport(fake.clone());
        let key = Arc::new(DpopKey::generate().unwrap());
        let r = idp.send(post("https://as.example/token")).await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(
            fake.0.lock().unwrap().pop(),
            Some(None),
            "a proof without a key"
        );
        let r = with_dpop(
            Some(key.clone()),
            idp.send(post("https://as.example/token")),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 200, "{}", String::from_utf8_lossy(r.body()));
        let sent: Vec<_> = fake.0.lock().unwrap().drain(..).collect();
        assert_eq!(sent.len(), 2, "the nonce was followed once: {sent:?}");
        assert!(sent.iter().all(Option::is_some));
        // The nonce is kept for the AS: the next request needs no second try.
        with_dpop(Some(key), idp.send(post("https://as.example/token")))
            .await
            .unwrap();
        assert_eq!(fake.0.lock().unwrap().len(), 1);
    }
}
