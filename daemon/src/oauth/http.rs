//! The one HTTP client the agent uses towards IdPs ([`IdpClient`]), its
//! adapter to the `oauth2` crate that tells "IdP unavailable" apart from an
//! OAuth error, and the seam ([`Transport`]) the in-process tests plug a
//! fake IdP into.

use futures::future::BoxFuture;
use oauth2::{AsyncHttpClient, HttpRequest, HttpResponse};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
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
}

/// Sends one request and reads its whole (bounded) answer.
pub trait Transport: Send + Sync + 'static {
    /// Sends `req`; any status is an answer, only transport failures are errors.
    fn send(&self, req: HttpRequest) -> BoxFuture<'static, Result<HttpResponse, HttpError>>;
}

/// The production transport: reqwest with rustls, no redirects (SSRF, RFC
/// 9700), bounded connect and total times.
struct Reqwest(reqwest::Client);

impl Transport for Reqwest {
    fn send(&self, req: HttpRequest) -> BoxFuture<'static, Result<HttpResponse, HttpError>> {
        let client = self.0.clone();
        Box::pin(async move {
            let req =
                reqwest::Request::try_from(req).map_err(|e| HttpError::Build(e.to_string()))?;
            // reqwest's Display names the URL, never a body.
            let mut resp = client
                .execute(req)
                .await
                .map_err(|e| HttpError::Transport(error_chain(&e)))?;
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
pub struct IdpClient(Arc<dyn Transport>);

impl Default for IdpClient {
    fn default() -> Self {
        Self::new()
    }
}

impl IdpClient {
    /// The production client.
    pub fn new() -> IdpClient {
        let client = reqwest::Client::builder()
            // The system's resolver (nsswitch, mDNS, ...): the agent is dynamically linked.
            .hickory_dns(false)
            .redirect(reqwest::redirect::Policy::none())
            // No idle connections kept: a pooled connection the IdP (or a load balancer
            // before it) has just closed fails the next request, and a token request
            // that may have reached the IdP must not be sent twice (a replayed refresh
            // token revokes the grant). IdP requests are rare; a handshake each is cheap.
            .pool_max_idle_per_host(0)
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(20))
            .user_agent(concat!("regent/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the TLS backend initialises");
        IdpClient(Arc::new(Reqwest(client)))
    }

    /// A client over another transport (the in-process tests' fake IdP).
    pub fn with_transport(t: Arc<dyn Transport>) -> IdpClient {
        IdpClient(t)
    }

    /// Sends a request as it is (any status is an answer).
    pub async fn send(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        self.0.send(req).await
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
            if status.is_server_error() || status.as_u16() == 429 {
                return Err(HttpError::Status(status.as_u16()));
            }
            Ok(resp)
        })
    }
}

/// An error with its causes ("error sending request: connection refused").
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(cause) = src {
        let c = cause.to_string();
        if !s.contains(&c) {
            s.push_str(": ");
            s.push_str(&c);
        }
        src = cause.source();
    }
    s
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
