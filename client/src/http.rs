//! The one HTTP client setup for requests to resources (registries, MCP
//! servers) with the agent's tokens, with the network settings of the
//! config file's `[network]` table over the environment's.

use std::sync::OnceLock;
use std::time::Duration;

/// The network settings of this process, read once: the config file's
/// `[network]` over the environment. Settings that cannot be used are said
/// on stderr once, and none are used (not the environment's instead: a
/// `proxy = ""` there must not turn into the shell's proxy; the agent
/// refuses the same file).
pub fn network() -> &'static regent_net::Network {
    static NETWORK: OnceLock<regent_net::Network> = OnceLock::new();
    NETWORK.get_or_init(|| {
        let path = regent_proto::paths::config_file();
        regent_net::Network::from_config_file(&path).unwrap_or_else(|e| {
            eprintln!(
                "regent: the network settings of {} cannot be used ({e}); requests go direct, \
                 with the built-in and system CAs only",
                path.display()
            );
            regent_net::Network::load_with(&Default::default(), &|_| None)
                .expect("no settings load")
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
    regent_net::chain_text(e)
}

/// A client builder for requests that carry a resource's token to the
/// origin of `url`: redirects are never followed on their own (a token goes
/// only where it is meant to), connects are bounded, regent says who it
/// is, and the network settings apply (with the resource's own client
/// certificate, where it has one).
pub fn builder_for(url: &url::Url) -> reqwest::ClientBuilder {
    let b = reqwest::Client::builder()
        // Names resolved in-process (hickory, from /etc/resolv.conf and /etc/hosts),
        // not by glibc's getaddrinfo: safe in the statically linked regent.
        .hickory_dns(true)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("regent/", env!("CARGO_PKG_VERSION")));
    network().apply_for(url, b)
}

/// A client for the MCP server at `url`: no overall timeout (a stream lasts
/// as long as the session), and an idle connection closed before the
/// server's keep-alive closes it under a request (a POST is never sent
/// twice: it may have run).
pub fn mcp_client_for(url: &url::Url) -> reqwest::Client {
    builder_for(url)
        .pool_idle_timeout(Duration::from_secs(3))
        .build()
        .expect("the TLS backend initialises")
}

/// A client for the registry at `url` (a minute at most per request).
pub fn registry_client_for(url: &url::Url) -> reqwest::Client {
    builder_for(url)
        .timeout(Duration::from_secs(60))
        .build()
        .expect("the TLS backend initialises")
}

/// Clients by origin, each made once (for callers that reach many
/// servers: the registry reader, the `regent serve` gateway).
#[derive(Clone)]
pub struct Clients {
    make: fn(&url::Url) -> reqwest::Client,
    made: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<url::Origin, reqwest::Client>>>,
}

impl Clients {
    /// For MCP servers ([`mcp_client_for`]).
    pub fn mcp() -> Clients {
        Clients {
            make: mcp_client_for,
            made: Default::default(),
        }
    }

    /// For registries ([`registry_client_for`]).
    pub fn registry() -> Clients {
        Clients {
            make: registry_client_for,
            made: Default::default(),
        }
    }

    /// The client for the origin of `url`.
    pub fn for_url(&self, url: &url::Url) -> reqwest::Client {
        self.made
            .lock()
            .unwrap()
            .entry(url.origin())
            .or_insert_with(|| (self.make)(url))
            .clone()
    }
}
