//! The one HTTP client setup for requests to resources (registries, MCP
//! servers) with the agent's tokens, with the network settings of the
//! config file's `[network]` table over the environment's.

use std::sync::OnceLock;
use std::time::Duration;

/// The network settings of this process, read once: the config file's
/// `[network]` over the environment. A table that cannot be used is said on
/// stderr once, and the environment's settings are used alone.
pub fn network() -> &'static regent_net::Network {
    static NETWORK: OnceLock<regent_net::Network> = OnceLock::new();
    NETWORK.get_or_init(|| {
        let path = regent_proto::paths::config_file();
        regent_net::Network::from_config_file(&path).unwrap_or_else(|e| {
            eprintln!(
                "regent: the [network] settings of {} are not used: {e}",
                path.display()
            );
            regent_net::Network::load(&Default::default()).unwrap_or_else(|e| {
                eprintln!("regent: the environment's network settings are not used: {e}");
                regent_net::Network::load_with(&Default::default(), &|_| None)
                    .expect("no settings load")
            })
        })
    })
}

/// What a failed request to `url` means: the host, what was wrong and the
/// setting that fixes it where the network settings tell; else every cause
/// the error has.
pub fn why(e: &reqwest::Error, url: &url::Url) -> String {
    if let Some(f) = network().explain(e, url) {
        return f.to_string();
    }
    let mut reason = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        let t = s.to_string();
        if !reason.contains(&t) {
            reason.push_str(": ");
            reason.push_str(&t);
        }
        src = s.source();
    }
    reason
}

/// A client builder for requests that carry a resource's token: redirects
/// are never followed on their own (a token goes only where it is meant
/// to), connects are bounded, and regent says who it is.
pub fn builder() -> reqwest::ClientBuilder {
    let b = reqwest::Client::builder()
        // Names resolved in-process (hickory, from /etc/resolv.conf and /etc/hosts),
        // not by glibc's getaddrinfo: safe in the statically linked regent.
        .hickory_dns(true)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("regent/", env!("CARGO_PKG_VERSION")));
    network().apply(b)
}

/// A client for MCP servers: no overall timeout (a stream lasts as long as
/// the session), and an idle connection closed before the server's
/// keep-alive closes it under a request (a POST is never sent twice: it may
/// have run).
pub fn mcp_client() -> reqwest::Client {
    builder()
        .pool_idle_timeout(Duration::from_secs(3))
        .build()
        .expect("the TLS backend initialises")
}
