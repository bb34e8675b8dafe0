//! `regent doctor`, the agent's part: for each resource, checked from where
//! the agent runs (its environment, its `[network]` settings), one step a
//! line — the name's addresses, the proxy, a TCP connection, TLS (and the
//! certificate's issuer), the authorization server's metadata, its clock
//! against ours, the login — each with what fixes it.

use super::{Agent, AgentError};
use crate::resource::Kind;
use crate::resource::Resource;
use regent_proto::{AuthState, Check, CheckStatus, DoctorReport};
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// Clock skew past which tokens start to look wrong (warn), and past which
/// they will (fail): most servers allow a minute or so.
const SKEW_WARN: i64 = 30;
const SKEW_FAIL: i64 = 120;

struct Steps<'a> {
    resource: &'a str,
    checks: Vec<Check>,
}

impl Steps<'_> {
    fn add(&mut self, step: &str, status: CheckStatus, detail: String, fix: Option<String>) {
        self.checks.push(Check {
            resource: Some(self.resource.to_string()),
            step: step.into(),
            status,
            detail,
            fix,
        });
    }
    fn ok(&mut self, step: &str, detail: String) {
        self.add(step, CheckStatus::Ok, detail, None);
    }
    fn fail(&mut self, step: &str, detail: String, fix: impl Into<String>) {
        self.add(step, CheckStatus::Fail, detail, Some(fix.into()));
    }
}

impl Agent {
    /// `POST /v1/doctor`: the checks of `name` (or of every resource).
    pub async fn doctor(&self, name: Option<&str>) -> Result<DoctorReport, AgentError> {
        let resources: Vec<Arc<Resource>> = match name {
            Some(n) => vec![self.resolve(Some(n))?],
            None => [Kind::Registry, Kind::Mcp, Kind::Api, Kind::Idp]
                .iter()
                .flat_map(|k| self.all(*k))
                .collect(),
        };
        let mut checks = Vec::new();
        if name.is_none() {
            let file = self.config.lock().await;
            if let Some(detail) = file.exposed_proxy_password() {
                checks.push(Check {
                    resource: None,
                    step: "config".into(),
                    status: CheckStatus::Warn,
                    detail,
                    fix: Some(format!("chmod 600 {}", file.path().display())),
                });
            }
        }
        for res in resources {
            checks.extend(self.check(&res).await);
        }
        Ok(DoctorReport { checks })
    }

    async fn check(&self, res: &Arc<Resource>) -> Vec<Check> {
        let mut s = Steps {
            resource: &res.name,
            checks: Vec::new(),
        };
        let issuer = res.auth.issuer();
        // The server itself (an IdP resource is its issuer), then its AS.
        let mut origins: Vec<Url> = Vec::new();
        for u in std::iter::once(res.url.as_str()).chain(issuer.as_ref().map(|i| i.issuer.as_str()))
        {
            if let Ok(u) = Url::parse(u) {
                if !origins.iter().any(|o| o.origin() == u.origin()) {
                    origins.push(u);
                }
            }
        }
        let mut as_date = None;
        let mut reached_as = true;
        for (i, url) in origins.iter().enumerate() {
            let is_as = issuer
                .as_ref()
                .and_then(|iss| Url::parse(&iss.issuer).ok())
                .is_some_and(|a| a.origin() == url.origin());
            match self.check_origin(&mut s, url).await {
                // Compared with our clock as it was when the answer came, not
                // after the discovery steps that follow (seconds, under load).
                Some(date) if is_as => as_date = date.map(|d| (d, self.ctx.clock.now())),
                Some(_) => {}
                None if is_as || i > 0 => reached_as = false,
                None => {}
            }
        }
        if let Some(iss) = &issuer {
            if reached_as {
                match crate::oauth::discovery::discover(&self.ctx.idp, iss).await {
                    Ok(m) => s.ok(
                        "discovery",
                        format!(
                            "the metadata of {} names its token endpoint {}",
                            iss.issuer, m.token_endpoint
                        ),
                    ),
                    Err(e) => s.fail(
                        "discovery",
                        format!("the metadata of {}: {e}", iss.issuer),
                        "check the issuer URL (regent status shows it); its metadata must be at \
                         /.well-known/oauth-authorization-server or /.well-known/openid-configuration",
                    ),
                }
            } else {
                s.add(
                    "discovery",
                    CheckStatus::Skip,
                    format!("{} was not reached", iss.issuer),
                    None,
                );
            }
            self.check_clock(
                &mut s,
                &iss.issuer,
                as_date.as_ref().map(|(d, at)| (d.as_str(), *at)),
            );
        }
        self.check_login(&mut s, res);
        s.checks
    }

    /// The network steps for one origin; the `Date` it sent when it answered
    /// (`Some(None)`: it answered without one), `None` when it was not reached.
    async fn check_origin(&self, s: &mut Steps<'_>, url: &Url) -> Option<Option<String>> {
        let Some(net) = self.ctx.idp.network() else {
            return Some(None);
        };
        let host = url.host_str().unwrap_or_default().to_string();
        let port = url.port_or_known_default().unwrap_or(443);
        let proxy = net.proxy_for(url);
        let typed = self.ctx.idp.typed();
        let refused = |ip: std::net::IpAddr| typed.refuses_host(&host, ip);
        let literal = match url.host() {
            Some(url::Host::Ipv4(a)) => Some(std::net::IpAddr::V4(a)),
            Some(url::Host::Ipv6(a)) => Some(std::net::IpAddr::V6(a)),
            _ => None,
        };
        // As the agent's own requests: a host a server named is not
        // connected to at a link-local or unspecified address.
        if let Some(ip) = literal.filter(|ip| refused(*ip)) {
            s.fail(
                "dns",
                format!("{host} is {ip}, an address a server's answer may not send regent to"),
                "check the server's metadata; only a URL you give may name such an address",
            );
            return None;
        }
        // DNS: where the agent resolves it (behind a proxy, the proxy does).
        if url
            .host()
            .is_some_and(|h| matches!(h, url::Host::Domain(_)))
        {
            let lookup = tokio::time::timeout(
                Duration::from_secs(5),
                tokio::net::lookup_host((host.as_str(), port)),
            )
            .await;
            match (lookup, &proxy) {
                (Ok(Ok(addrs)), _) => {
                    let addrs: Vec<std::net::SocketAddr> = addrs.collect();
                    let mut ips: Vec<String> = addrs.iter().map(|a| a.ip().to_string()).collect();
                    ips.dedup();
                    if let Some(a) = addrs.iter().find(|a| refused(a.ip())) {
                        s.fail(
                            "dns",
                            format!(
                                "{host} is {}, an address a server's answer may not send regent to",
                                a.ip()
                            ),
                            "check the server's metadata; only a URL you give may name such an address",
                        );
                        return None;
                    }
                    s.ok("dns", format!("{host} is {}", ips.join(", ")));
                }
                (_, Some(p)) => s.add(
                    "dns",
                    CheckStatus::Warn,
                    format!(
                        "{host} does not resolve here; the proxy {} resolves it",
                        regent_net::redacted(p)
                    ),
                    None,
                ),
                (Ok(Err(e)), None) => {
                    s.fail(
                        "dns",
                        format!("{host} does not resolve ({e})"),
                        "check the name, this machine's DNS (/etc/resolv.conf), or the VPN",
                    );
                    return None;
                }
                (Err(_), None) => {
                    s.fail(
                        "dns",
                        format!("{host} did not resolve within 5 s"),
                        "check this machine's DNS (/etc/resolv.conf), or the VPN",
                    );
                    return None;
                }
            }
        }
        let (shown, source) = (
            proxy.as_ref().map(regent_net::redacted),
            net.proxies().shown().2,
        );
        match &shown {
            Some(p) => s.ok("proxy", format!("{host} through {p} (from the {source})")),
            None if source != "none" => {
                s.ok("proxy", format!("{host} directly (no_proxy, or loopback)"))
            }
            None => s.ok("proxy", format!("{host} directly (no proxy set)")),
        }
        // TCP: to the proxy where there is one, else to the host.
        let (to_host, to_port) = match &proxy {
            Some(p) => (
                p.host_str()
                    .unwrap_or_default()
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string(),
                p.port_or_known_default().unwrap_or(80),
            ),
            None => (
                host.trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string(),
                port,
            ),
        };
        let started = std::time::Instant::now();
        let tcp = tokio::time::timeout(
            Duration::from_secs(5),
            tokio::net::TcpStream::connect((to_host.as_str(), to_port)),
        )
        .await;
        let what = match &shown {
            Some(p) => format!("the proxy {p}"),
            None => format!("{to_host}:{to_port}"),
        };
        match tcp {
            Ok(Ok(_)) => s.ok(
                "tcp",
                format!(
                    "connected to {what} in {} ms",
                    started.elapsed().as_millis()
                ),
            ),
            Ok(Err(e)) => {
                s.fail(
                    "tcp",
                    format!("cannot connect to {what}: {e}"),
                    match &shown {
                        Some(_) => "check proxy under [network] in regent's config, or HTTPS_PROXY in the agent's environment",
                        None => "is the server up, and reachable from this network (a VPN, a firewall)?",
                    },
                );
                return None;
            }
            Err(_) => {
                s.fail(
                    "tcp",
                    format!("no connection to {what} within 5 s"),
                    "a firewall may drop the connection; behind a company proxy, set proxy under [network]",
                );
                return None;
            }
        }
        let step = if url.scheme() == "https" {
            "tls"
        } else {
            "http"
        };
        match net.probe(url).await {
            Ok(r) => {
                let detail = match &r.issuer {
                    Some(i) => format!(
                        "{host} answered HTTP {}; its certificate is issued by {i}",
                        r.status
                    ),
                    None => format!("{host} answered HTTP {}", r.status),
                };
                s.ok(step, detail);
                Some(r.date)
            }
            Err(u) => {
                let by = u
                    .issuer
                    .map(|i| format!(" (its certificate is issued by {i})"))
                    .unwrap_or_default();
                match u.failure {
                    Some(f) => s.fail(step, format!("{}: {}{by}", f.host, f.problem), f.fix),
                    None => s.fail(
                        step,
                        format!("{host}: {}", u.message),
                        "check the URL, and that the server is up",
                    ),
                }
                None
            }
        }
    }

    /// `date`: the AS's `Date`, and our clock when it came.
    fn check_clock(
        &self,
        s: &mut Steps<'_>,
        issuer: &str,
        date: Option<(&str, time::OffsetDateTime)>,
    ) {
        let Some((theirs, ours)) = date.and_then(|(d, at)| Some((regent_proto::http_date(d)?, at)))
        else {
            s.add(
                "clock",
                CheckStatus::Skip,
                format!("{issuer} sent no Date to compare with"),
                None,
            );
            return;
        };
        let skew = (theirs - ours).whole_seconds();
        let detail = format!(
            "{issuer}'s clock is {} s {} ours",
            skew.abs(),
            if skew >= 0 { "ahead of" } else { "behind" }
        );
        let fix =
            "set this machine's clock right (timedatectl set-ntp true), or tell the server's \
                   administrators: tokens look expired or not yet valid across a skew";
        match skew.abs() {
            a if a <= SKEW_WARN => s.ok("clock", detail),
            a if a <= SKEW_FAIL => s.add("clock", CheckStatus::Warn, detail, Some(fix.into())),
            _ => s.fail("clock", detail, fix),
        }
    }

    fn check_login(&self, s: &mut Steps<'_>, res: &Arc<Resource>) {
        let Some(st) = res.auth.state(&self.ctx) else {
            s.ok("login", "no auth: it is public".into());
            return;
        };
        let who = st.account.map(|a| format!(" as {a}")).unwrap_or_default();
        match st.status {
            AuthState::Authenticated => s.ok(
                "login",
                format!(
                    "logged in{who}{}",
                    if st.has_refresh_token {
                        ", refreshable"
                    } else {
                        ""
                    }
                ),
            ),
            _ if res.kind == Kind::Idp || res.auth.oauth().is_some() => s.fail(
                "login",
                "not logged in".into(),
                format!("regent login {}", res.name),
            ),
            _ => s.fail(
                "login",
                "no token can be had".into(),
                format!("regent status {} says why", res.name),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn http_dates_are_read() {
        let t = regent_proto::http_date("Thu, 03 Dec 2026 08:15:39 GMT").unwrap();
        assert_eq!(t.unix_timestamp(), 1796285739);
        assert!(regent_proto::http_date("yesterday").is_none());
    }
}
