//! What a failed request means, in words that name the host, what was
//! wrong, and the setting that fixes it — not only what the TLS library
//! said. A TLS failure is read from rustls's own error (unknown issuer,
//! expired, a name the certificate is not for, a certificate the server
//! wants from us); a proxy's from what the tunnel said.

use crate::Network;
use rustls::{AlertDescription, CertificateError};
use std::error::Error;
use url::Url;

/// What went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The server's certificate is from a CA regent does not trust.
    UnknownIssuer,
    /// The certificate is not for the host's name.
    WrongName,
    /// The certificate has expired.
    Expired,
    /// The certificate is not valid yet.
    NotYetValid,
    /// Any other certificate problem.
    Certificate,
    /// The server wants a client certificate (or refused ours).
    ClientCertificate,
    /// The proxy wants credentials, or refused the ones given.
    ProxyAuth,
    /// The proxy refused to connect to the host.
    ProxyRefused,
    /// The proxy cannot be reached.
    ProxyUnreachable,
}

/// A failure, explained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// What went wrong.
    pub kind: Kind,
    /// The host (and port) the request was for.
    pub host: String,
    /// What was wrong, in words.
    pub problem: String,
    /// What fixes it.
    pub fix: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}; {}", self.host, self.problem, self.fix)
    }
}

/// Every error in `err`'s chain, the ones wrapped in an `io::Error` too
/// (whose `source()` skips the error it wraps).
fn chain<'a>(err: &'a (dyn Error + 'static)) -> Vec<&'a (dyn Error + 'static)> {
    let mut out = Vec::new();
    let mut next = Some(err);
    while let Some(e) = next {
        out.push(e);
        next = match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            // An io::Error's source() is its inner error's source: the inner
            // error (itself an io::Error, at times) is the next one.
            Some(inner) => {
                let inner: &(dyn Error + 'static) = inner;
                Some(inner)
            }
            None => e.source(),
        };
    }
    out
}

/// Every cause of `err`, joined (a message repeated by its wrapper once).
pub fn chain_text(err: &(dyn Error + 'static)) -> String {
    let mut s = String::new();
    for e in chain(err) {
        let t = e.to_string();
        if !s.contains(&t) {
            if !s.is_empty() {
                s.push_str(": ");
            }
            s.push_str(&t);
        }
    }
    s
}

const CA_FIX: &str =
    "if it is your organisation's CA (or its TLS-inspecting proxy's), add it with \
ca_file = \"/path/to/ca.pem\" under [network] in regent's config (or install it in the system's \
store, or point SSL_CERT_FILE at it, and restart the agent)";

fn host_of(url: &Url) -> String {
    match (url.host_str(), url.port_or_known_default()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        _ => url.to_string(),
    }
}

fn proxy_setting(net: &Network) -> &'static str {
    match net.proxies().shown().2 {
        "config" => "proxy under [network] in regent's config",
        _ => "HTTPS_PROXY / HTTP_PROXY in the agent's environment (or proxy under [network] in regent's config)",
    }
}

pub(crate) fn proxy_auth(url: &Url, proxy: &Url, net: &Network) -> Failure {
    Failure {
        kind: Kind::ProxyAuth,
        host: host_of(url),
        problem: format!(
            "the proxy {} wants credentials (407), or refused the ones given",
            crate::proxy::redacted(proxy)
        ),
        fix: format!(
            "put user:password@ in the proxy URL: {}",
            proxy_setting(net)
        ),
    }
}

pub(crate) fn explain(
    err: &(dyn Error + 'static),
    url: &Url,
    proxy: Option<&Url>,
    net: &Network,
) -> Option<Failure> {
    let host = host_of(url);
    let failure = |kind, problem: String, fix: String| Failure {
        kind,
        host: host.clone(),
        problem,
        fix,
    };
    let causes = chain(err);
    for e in &causes {
        let Some(tls) = e.downcast_ref::<rustls::Error>() else {
            continue;
        };
        return Some(match tls {
            rustls::Error::InvalidCertificate(c) => match c {
                CertificateError::UnknownIssuer => failure(
                    Kind::UnknownIssuer,
                    "its TLS certificate is issued by a certificate authority regent does not trust"
                        .into(),
                    CA_FIX.into(),
                ),
                CertificateError::NotValidForName
                | CertificateError::NotValidForNameContext { .. } => failure(
                    Kind::WrongName,
                    format!("its TLS certificate is not for the name {}", url.host_str().unwrap_or_default()),
                    "use the name the certificate is for in the URL, or ask the server's administrators for a certificate with this name".into(),
                ),
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => failure(
                    Kind::Expired,
                    "its TLS certificate has expired".into(),
                    "tell the server's administrators; if the certificate looks current, check this machine's clock".into(),
                ),
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => failure(
                    Kind::NotYetValid,
                    "its TLS certificate is not valid yet".into(),
                    "check this machine's clock (date -u)".into(),
                ),
                other if format!("{other:?}").contains("CaUsedAsEndEntity") => failure(
                    Kind::UnknownIssuer,
                    "its TLS certificate is self-signed (a CA certificate presented as the server's)"
                        .into(),
                    CA_FIX.into(),
                ),
                other => failure(
                    Kind::Certificate,
                    format!("its TLS certificate was refused ({other:?})"),
                    CA_FIX.into(),
                ),
            },
            rustls::Error::AlertReceived(
                AlertDescription::CertificateRequired
                | AlertDescription::HandshakeFailure
                | AlertDescription::BadCertificate
                | AlertDescription::UnknownCA
                | AlertDescription::CertificateUnknown,
            ) => match net.client_cert_for(url) {
                None if matches!(
                    tls,
                    rustls::Error::AlertReceived(AlertDescription::HandshakeFailure)
                ) =>
                {
                    failure(
                        Kind::ClientCertificate,
                        "it ended the TLS handshake: it wants a client certificate (mutual TLS) and \
                         none is configured, or it shares no TLS version or cipher with regent"
                            .into(),
                        "if it wants a client certificate, set client_cert and client_key (PEM files, \
                         the key yours alone) under [network] in regent's config, or in the resource's \
                         own table"
                            .into(),
                    )
                }
                None => failure(
                    Kind::ClientCertificate,
                    "it wants a client certificate (mutual TLS), and none is configured".into(),
                    "set client_cert and client_key (PEM files, the key yours alone) under [network] in regent's config, or in the resource's own table".into(),
                ),
                Some(c) => failure(
                    Kind::ClientCertificate,
                    format!("it refused the client certificate {}", c.display()),
                    "check that client_cert is one this server accepts (issued by a CA it trusts, not expired)".into(),
                ),
            },
            _ => continue,
        });
    }
    let proxy = proxy?;
    let shown = crate::proxy::redacted(proxy);
    let text: Vec<String> = causes.iter().map(|e| e.to_string()).collect();
    let said = |s: &str| text.iter().any(|t| t.contains(s));
    let source = proxy_setting(net);
    if said("proxy authorization required") {
        return Some(proxy_auth(url, proxy, net));
    }
    if said("tunnel error: unsuccessful") {
        // Some proxies (tinyproxy) answer wrong credentials 401, not 407:
        // the tunnel's refusal says no more than that it failed.
        let creds = if proxy.username().is_empty() {
            String::new()
        } else {
            format!("check the user and password in the {source}; if they are right, ")
        };
        return Some(failure(
            Kind::ProxyRefused,
            format!(
                "the proxy {shown} refused to open a connection to it (a wrong user or password, \
                 a host it cannot resolve or reach, or one it does not allow)"
            ),
            format!("{creds}ask the proxy's administrators to allow this host, or reach it directly with no_proxy under [network]"),
        ));
    }
    // Only a failure to connect is the proxy's being out of reach (a reset
    // after the tunnel opened is the server's, or a firewall's).
    let connecting = causes.iter().any(|e| {
        e.downcast_ref::<reqwest::Error>()
            .is_some_and(|r| r.is_connect())
    });
    let unreachable = connecting
        && causes.iter().any(|e| {
            e.downcast_ref::<std::io::Error>().is_some_and(|io| {
                matches!(
                    io.kind(),
                    std::io::ErrorKind::ConnectionRefused
                        | std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::HostUnreachable
                        | std::io::ErrorKind::NetworkUnreachable
                )
            })
        })
        || said("failed to create underlying connection")
        || said("dns error");
    unreachable.then(|| {
        failure(
            Kind::ProxyUnreachable,
            format!(
                "cannot reach the proxy {shown} ({})",
                text.last().cloned().unwrap_or_default()
            ),
            format!("check {source}"),
        )
    })
}
