//! The one HTTP client the agent uses towards IdPs, and its adapter to the
//! `oauth2` crate that tells "IdP unavailable" apart from an OAuth error.

use oauth2::{AsyncHttpClient, HttpRequest, HttpResponse};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// Builds the agent's HTTP client: no redirects (SSRF, RFC 9700), bounded
/// connect and total times, rustls.
pub fn build_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(20))
        .user_agent(concat!("regent/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("the TLS backend initialises")
}

/// A transport-level failure towards the IdP.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// Connection refused, timeout, TLS failure...
    #[error("cannot reach the IdP: {0}")]
    Transport(String),
    /// 5xx or 429: the IdP is there but not serving.
    #[error("the IdP answered HTTP {0}")]
    Status(u16),
    /// A request the client could not build.
    #[error("cannot build the request: {0}")]
    Build(String),
}

impl From<reqwest::Error> for HttpError {
    fn from(e: reqwest::Error) -> Self {
        // reqwest's Display names the URL, never a body.
        HttpError::Transport(error_chain(&e))
    }
}

/// A reqwest error with its causes ("error sending request: connection refused").
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

/// Largest IdP answer the agent reads.
pub const MAX_IDP_BODY: usize = 1024 * 1024;

/// Reads a response body, refusing more than [`MAX_IDP_BODY`] bytes.
pub async fn read_limited(mut resp: reqwest::Response) -> Result<Vec<u8>, HttpError> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        if body.len() + chunk.len() > MAX_IDP_BODY {
            return Err(HttpError::Transport(format!(
                "the IdP's answer is larger than {} KiB",
                MAX_IDP_BODY / 1024
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// [`reqwest::Client`] as an `oauth2` HTTP client.
#[derive(Clone)]
pub struct IdpHttp(pub reqwest::Client);

impl<'c> AsyncHttpClient<'c> for IdpHttp {
    type Error = HttpError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let req =
                reqwest::Request::try_from(request).map_err(|e| HttpError::Build(e.to_string()))?;
            let resp = self.0.execute(req).await?;
            let status = resp.status();
            if status.is_server_error() || status.as_u16() == 429 {
                return Err(HttpError::Status(status.as_u16()));
            }
            let mut builder = oauth2::http::Response::builder().status(status);
            for (k, v) in resp.headers() {
                builder = builder.header(k, v);
            }
            let body = read_limited(resp).await?;
            builder
                .body(body)
                .map_err(|e| HttpError::Build(e.to_string()))
        })
    }
}
