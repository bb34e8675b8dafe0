//! Which addresses a URL that a server handed over may lead to: pure
//! checks on an IP address, shared by the agent's HTTP client and the
//! clients' redirect handling.

use std::net::IpAddr;

/// Private (RFC 1918, RFC 4193) addresses, refused only where the user says so.
pub fn private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => a.is_private(),
        IpAddr::V6(a) => {
            (a.segments()[0] & 0xfe00) == 0xfc00
                || a.to_ipv4_mapped().is_some_and(|v4| v4.is_private())
        }
    }
}

/// Addresses a server's answer may not send the agent to.
pub fn forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => a.is_link_local() || a.is_unspecified() || a.is_broadcast(),
        IpAddr::V6(a) => {
            a.is_unspecified()
                || (a.segments()[0] & 0xffc0) == 0xfe80
                || a.to_ipv4_mapped()
                    .is_some_and(|v4| forbidden(IpAddr::V4(v4)))
        }
    }
}
