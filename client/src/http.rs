//! The one HTTP client setup for requests to resources (registries, MCP
//! servers) with the agent's tokens.

use std::time::Duration;

/// A client builder for requests that carry a resource's token: redirects
/// are never followed on their own (a token goes only where it is meant
/// to), connects are bounded, and regent says who it is.
pub fn builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        // Names resolved in-process (hickory, from /etc/resolv.conf and /etc/hosts),
        // not by glibc's getaddrinfo: safe in the statically linked regent.
        .hickory_dns(true)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("regent/", env!("CARGO_PKG_VERSION")))
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
