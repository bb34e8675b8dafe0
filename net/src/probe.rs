//! `regent doctor`'s look at a server: one request with the network
//! settings, what answered, and the certificate's issuer — also when the
//! certificate is refused (then a second look that trusts anything, to
//! name what was shown; nothing is sent but a bare GET, and nothing of the
//! answer is used).

use crate::{Failure, Network};
use std::time::Duration;
use url::Url;

/// What a request met.
#[derive(Debug, Clone, Default)]
pub struct Reached {
    /// The HTTP status.
    pub status: u16,
    /// The server certificate's issuer (its distinguished name), for HTTPS.
    pub issuer: Option<String>,
    /// The `Date` header, as sent.
    pub date: Option<String>,
}

/// Why a request did not get an answer.
#[derive(Debug, Clone)]
pub struct Unreached {
    /// The failure, explained where the settings tell.
    pub failure: Option<Failure>,
    /// What the library said.
    pub message: String,
    /// The issuer of the certificate shown, where one was refused.
    pub issuer: Option<String>,
}

impl Network {
    fn probe_client(&self, url: &Url, trust_anything: bool) -> reqwest::Client {
        let b = reqwest::Client::builder()
            // The system's resolver, as the agent's own client.
            .hickory_dns(false)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .tls_info(true)
            .user_agent(concat!("regent/", env!("CARGO_PKG_VERSION"), " doctor"));
        if trust_anything {
            // Only to read the certificate shown: no client certificate is
            // presented to a server nobody verified.
            return self
                .build(b, None)
                .danger_accept_invalid_certs(true)
                .build()
                .expect("the TLS backend initialises");
        }
        self.apply_for(url, b)
            .build()
            .expect("the TLS backend initialises")
    }

    /// A bare GET of `url`.
    pub async fn probe(&self, url: &Url) -> Result<Reached, Unreached> {
        match self.probe_client(url, false).get(url.clone()).send().await {
            Ok(resp) => Ok(Reached {
                status: resp.status().as_u16(),
                issuer: issuer_of(&resp),
                date: resp
                    .headers()
                    .get(reqwest::header::DATE)
                    .and_then(|d| d.to_str().ok())
                    .map(str::to_string),
            }),
            Err(e) => {
                let failure = self.explain(&e, url);
                let tls = failure.as_ref().is_some_and(|f| {
                    matches!(
                        f.kind,
                        crate::Kind::UnknownIssuer
                            | crate::Kind::WrongName
                            | crate::Kind::Expired
                            | crate::Kind::NotYetValid
                            | crate::Kind::Certificate
                    )
                });
                // Not through an https:// proxy: its TLS would go unchecked
                // too, and it would get the proxy's credentials.
                let https_proxy = self.proxy_for(url).is_some_and(|p| p.scheme() == "https");
                let issuer = if tls && !https_proxy {
                    match self.probe_client(url, true).get(url.clone()).send().await {
                        Ok(resp) => issuer_of(&resp),
                        Err(_) => None,
                    }
                } else {
                    None
                };
                Err(Unreached {
                    failure,
                    message: crate::explain::chain_text(&e),
                    issuer,
                })
            }
        }
    }
}

fn issuer_of(resp: &reqwest::Response) -> Option<String> {
    let der = resp
        .extensions()
        .get::<reqwest::tls::TlsInfo>()?
        .peer_certificate()?;
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(cert.issuer().to_string())
}
