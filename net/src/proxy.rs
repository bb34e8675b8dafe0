//! Which proxy a request goes through: `proxy` / `no_proxy` in `[network]`
//! win over the environment (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`,
//! `NO_PROXY`, either case); `NO_PROXY` is read as curl reads it; loopback
//! is never proxied. One decision, used by every client and shown by
//! `regent status` and `regent doctor`.

use crate::{NetError, NetworkConfig};
use std::net::IpAddr;
use url::{Host, Url};

/// The proxies, resolved.
#[derive(Clone)]
pub struct Proxies {
    https: Option<Url>,
    http: Option<Url>,
    source: &'static str,
    no_proxy: NoProxy,
    skipped: Vec<String>,
}

impl std::fmt::Debug for Proxies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (https, http, source) = self.shown();
        write!(f, "Proxies(https {https:?}, http {http:?}, from {source})")
    }
}

fn first(env: &dyn Fn(&str) -> Option<String>, keys: &[&str]) -> Option<String> {
    keys.iter()
        .find_map(|k| env(k).filter(|v| !v.trim().is_empty()))
}

/// A proxy URL as curl takes it (`host:port` means `http://host:port`).
fn parse(raw: &str, from: &str) -> Result<Url, NetError> {
    let raw = raw.trim();
    let with_scheme = if raw.contains("://") {
        raw.to_string()
    } else {
        format!("http://{raw}")
    };
    let url = Url::parse(&with_scheme)
        .map_err(|e| NetError::Proxy(format!("the proxy {from} is not a URL ({e})")))?;
    match url.scheme() {
        "http" | "https" if url.host().is_some() => Ok(url),
        "http" | "https" => Err(NetError::Proxy(format!("the proxy {from} names no host"))),
        other => Err(NetError::Proxy(format!(
            "the proxy {from} is a {other} proxy; regent speaks to HTTP and HTTPS proxies only"
        ))),
    }
}

impl Proxies {
    /// `config` over `env`.
    pub fn resolve(
        config: &NetworkConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Proxies, NetError> {
        let no_proxy = match &config.no_proxy {
            Some(n) => NoProxy::parse(n),
            None => first(env, &NO_PROXY_ENV)
                .map(|n| NoProxy::parse(&n))
                .unwrap_or_default(),
        };
        if let Some(p) = &config.proxy {
            let url = if p.trim().is_empty() {
                None
            } else {
                Some(parse(p, "in [network] proxy")?)
            };
            return Ok(Proxies {
                https: url.clone(),
                http: url,
                source: "config",
                no_proxy,
                skipped: Vec::new(),
            });
        }
        // The environment's are taken where regent can use them: a SOCKS
        // proxy set for the whole desktop (`all_proxy=socks://…`) is left
        // out, not a reason to refuse the config (status says so).
        let mut skipped = Vec::new();
        let mut usable = |keys: &[&str]| {
            let (key, value) = keys
                .iter()
                .find_map(|k| env(k).filter(|v| !v.trim().is_empty()).map(|v| (*k, v)))?;
            match parse(&value, &format!("in {key}")) {
                Ok(u) => Some(u),
                Err(e) => {
                    // Said once, though both schemes may have read it.
                    if !skipped.contains(&e.to_string()) {
                        skipped.push(e.to_string());
                    }
                    None
                }
            }
        };
        let [https_l, https_u, http_l, http_u, all_l, all_u] = PROXY_ENV;
        let https = usable(&[https_l, https_u, all_l, all_u]);
        let http = usable(&[http_l, http_u, all_l, all_u]);
        let source = if https.is_some() || http.is_some() {
            "environment"
        } else {
            "none"
        };
        Ok(Proxies {
            https,
            http,
            source,
            no_proxy,
            skipped,
        })
    }

    /// The environment's proxies left out, and why.
    pub fn skipped(&self) -> &[String] {
        &self.skipped
    }

    /// The proxy a request to `url` goes through: none for loopback and for
    /// the hosts `no_proxy` names.
    pub fn proxy_for(&self, url: &Url) -> Option<Url> {
        let host = url.host()?;
        if loopback(&host) || self.no_proxy.matches(&host) {
            return None;
        }
        match url.scheme() {
            "https" | "wss" => self.https.clone(),
            "http" | "ws" => self.http.clone(),
            _ => None,
        }
    }

    /// The hosts of the proxies in use (the user's settings name them).
    pub fn hosts(&self) -> Vec<String> {
        [&self.https, &self.http]
            .into_iter()
            .flatten()
            .filter_map(|u| u.host_str())
            .map(|h| {
                h.trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_ascii_lowercase()
            })
            .collect()
    }

    /// The proxies as shown (passwords as `***`) and their source.
    pub fn shown(&self) -> (Option<String>, Option<String>, &'static str) {
        (
            self.https.as_ref().map(redacted),
            self.http.as_ref().map(redacted),
            self.source,
        )
    }

    /// `no_proxy` as given, if any.
    pub fn no_proxy_shown(&self) -> Option<String> {
        self.no_proxy.raw.clone()
    }
}

/// The environment's variables that name a proxy, in either case
/// (lower case first: curl reads it first).
pub const PROXY_ENV: [&str; 6] = [
    "https_proxy",
    "HTTPS_PROXY",
    "http_proxy",
    "HTTP_PROXY",
    "all_proxy",
    "ALL_PROXY",
];

/// The environment's variables that exempt hosts from the proxy, in the
/// order they are read.
pub const NO_PROXY_ENV: [&str; 2] = ["NO_PROXY", "no_proxy"];

/// A proxy URL with its password replaced by `***`.
pub fn redacted(u: &Url) -> String {
    let mut u = u.clone();
    if u.password().is_some() {
        let _ = u.set_password(Some("***"));
    }
    u.as_str().trim_end_matches('/').to_string()
}

fn loopback(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(d) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d == "localhost" || d.ends_with(".localhost")
        }
        Host::Ipv4(a) => a.is_loopback(),
        Host::Ipv6(a) => a.is_loopback() || a.to_ipv4_mapped().is_some_and(|v| v.is_loopback()),
    }
}

/// Hosts reached directly, read as curl reads `NO_PROXY`: entries separated
/// by commas; `*` alone matches every host; a name matches itself and its
/// subdomains (a leading `.` or `*.` changes nothing); an IP address
/// matches itself, and with `/bits` its network.
#[derive(Clone, Debug, Default)]
pub struct NoProxy {
    all: bool,
    names: Vec<String>,
    nets: Vec<(IpAddr, u8)>,
    raw: Option<String>,
}

impl NoProxy {
    /// Reads a `NO_PROXY` value.
    pub fn parse(raw: &str) -> NoProxy {
        let mut n = NoProxy {
            raw: Some(raw.to_string()).filter(|r| !r.trim().is_empty()),
            ..NoProxy::default()
        };
        for entry in raw
            .split([',', ' ', '\t'])
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            let e = entry.to_ascii_lowercase();
            if e == "*" {
                n.all = true;
                continue;
            }
            let (addr, bits) = match e.split_once('/') {
                Some((a, b)) => (a, b.parse::<u8>().ok()),
                None => (e.as_str(), None),
            };
            // A port is not the host's: `10.1.2.3:8080`, `[fd00::1]:8443`.
            let addr = match addr.parse::<std::net::SocketAddr>() {
                Ok(sa) => sa.ip().to_string(),
                Err(_) => addr
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string(),
            };
            if let Ok(ip) = addr.parse::<IpAddr>() {
                let max = if ip.is_ipv4() { 32 } else { 128 };
                n.nets.push((ip, bits.unwrap_or(max).min(max)));
                continue;
            }
            // A port is not a host's: `host:8080` names the host.
            let name = e.split(':').next().unwrap_or_default();
            let name = name.trim_start_matches("*.").trim_start_matches('.');
            if !name.is_empty() {
                n.names.push(name.trim_end_matches('.').to_string());
            }
        }
        n
    }

    /// Whether `host` is reached directly.
    pub fn matches<S: AsRef<str>>(&self, host: &Host<S>) -> bool {
        if self.all {
            return true;
        }
        match host {
            Host::Domain(d) => {
                let d = d.as_ref().trim_end_matches('.').to_ascii_lowercase();
                self.names
                    .iter()
                    .any(|n| d == *n || d.ends_with(&format!(".{n}")))
            }
            Host::Ipv4(a) => self.contains(IpAddr::V4(*a)),
            Host::Ipv6(a) => self.contains(IpAddr::V6(*a)),
        }
    }

    fn contains(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|(net, bits)| match (net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(*bits)).unwrap_or(0);
                u32::from(*n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(*bits)).unwrap_or(0);
                u128::from(*n) & mask == u128::from(a) & mask
            }
            _ => false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn proxies(config: NetworkConfig, env: &[(&str, &str)]) -> Proxies {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Proxies::resolve(&config, &|k| env.get(k).cloned()).unwrap()
    }

    fn via(p: &Proxies, url: &str) -> Option<String> {
        p.proxy_for(&Url::parse(url).unwrap())
            .map(|u| u.to_string())
    }

    /// curl's rules: names match themselves and subdomains, a leading dot
    /// or `*.` changes nothing, addresses and networks, `*` all; never a
    /// suffix that is not a label boundary.
    #[test]
    fn no_proxy_is_read_as_curl_reads_it() {
        let n = NoProxy::parse(" corp.example, .internal ,*.svc.local, 10.0.0.0/8, 192.168.1.5, [fd00::1], host.test:8443, 172.16.0.9:8080, [fd00::2]:8443 ");
        let m = |h: &str| n.matches(&Host::parse(h).unwrap());
        assert!(m("corp.example") && m("idp.corp.example"));
        assert!(!m("notcorp.example"), "a suffix that is not a label");
        assert!(m("a.internal") && m("internal"));
        assert!(m("x.svc.local"));
        assert!(m("10.1.2.3") && !m("11.0.0.1"));
        assert!(m("192.168.1.5") && !m("192.168.1.6"));
        assert!(m("[fd00::1]"));
        assert!(m("172.16.0.9") && m("[fd00::2]"), "an address with a port");
        assert!(m("host.test"));
        assert!(NoProxy::parse("*").matches(&Host::parse("anything.example").unwrap()));
    }

    /// The config's proxy wins over the environment's; `""` there means
    /// none at all; loopback is never proxied.
    #[test]
    fn the_config_wins_and_loopback_is_direct() {
        let env = [
            ("HTTPS_PROXY", "http://env-proxy:3128"),
            ("no_proxy", "direct.example"),
        ];
        let p = proxies(NetworkConfig::default(), &env);
        assert_eq!(
            via(&p, "https://idp.example/").as_deref(),
            Some("http://env-proxy:3128/")
        );
        assert_eq!(via(&p, "https://direct.example/"), None);
        assert_eq!(
            via(&p, "http://idp.example/"),
            None,
            "HTTPS_PROXY is for https"
        );
        assert_eq!(via(&p, "https://127.0.0.1:8443/"), None);
        assert_eq!(via(&p, "https://localhost/"), None);
        assert_eq!(via(&p, "https://[::1]/"), None);
        assert_eq!(p.shown().2, "environment");

        let config = NetworkConfig {
            proxy: Some("proxy.corp:8080".into()),
            no_proxy: Some("".into()),
            ..Default::default()
        };
        let p = proxies(config, &env);
        assert_eq!(
            via(&p, "https://direct.example/").as_deref(),
            Some("http://proxy.corp:8080/")
        );
        assert_eq!(
            via(&p, "http://idp.example/").as_deref(),
            Some("http://proxy.corp:8080/")
        );
        assert_eq!(p.shown().2, "config");

        let off = NetworkConfig {
            proxy: Some(String::new()),
            ..Default::default()
        };
        assert_eq!(via(&proxies(off, &env), "https://idp.example/"), None);
    }

    /// A password is never shown; a SOCKS proxy is refused with the reason.
    #[test]
    fn passwords_are_hidden_and_socks_is_refused() {
        let config = NetworkConfig {
            proxy: Some("http://alice:s3cret@proxy.corp:3128".into()),
            ..Default::default()
        };
        let p = proxies(config, &[]);
        let shown = format!("{:?} {:?}", p.shown(), p);
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("alice:***@proxy.corp:3128"), "{shown}");
        let bad = NetworkConfig {
            proxy: Some("socks5://proxy:1080".into()),
            ..Default::default()
        };
        let e = Proxies::resolve(&bad, &|_| None).unwrap_err().to_string();
        assert!(e.contains("socks5 proxy"), "{e}");
        // The same in the environment (a desktop's all_proxy) is left out, said why.
        let p = proxies(
            NetworkConfig::default(),
            &[("all_proxy", "socks://127.0.0.1:1080")],
        );
        assert_eq!(via(&p, "https://idp.example/"), None);
        assert!(p.skipped()[0].contains("socks proxy"), "{:?}", p.skipped());
    }
}
