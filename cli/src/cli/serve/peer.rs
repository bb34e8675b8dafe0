//! Who is on the other end of a loopback TCP connection: the kernel's socket
//! table (`/proc/net/tcp`, `/proc/net/tcp6`) names the uid that owns the
//! client's socket — the one whose local address is the peer's and whose
//! remote address is ours. `regent serve` answers its owner only: on a
//! shared machine every local user can reach a loopback port, and `Host`
//! or `Origin` checks say nothing about who connects.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The uid owning the socket at `peer` connected to `ours`, if the kernel
/// lists it (a peer on another machine is not listed).
pub fn uid_of(peer: SocketAddr, ours: SocketAddr) -> Option<u32> {
    // A v4 client of a dual-stack listener is seen as ::ffff:a.b.c.d; its own
    // socket is in the v4 table with plain addresses.
    let (peer, ours) = (plain(peer), plain(ours));
    let table = match peer {
        SocketAddr::V4(_) => "/proc/net/tcp",
        SocketAddr::V6(_) => "/proc/net/tcp6",
    };
    let text = std::fs::read_to_string(table).ok()?;
    find(&text, peer, ours)
}

/// An IPv4-mapped address as the IPv4 address it is.
fn plain(a: SocketAddr) -> SocketAddr {
    match a {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => a,
        },
        v4 => v4,
    }
}

/// The uid of the line whose local address is `peer` and remote is `ours`.
fn find(table: &str, peer: SocketAddr, ours: SocketAddr) -> Option<u32> {
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        // sl local rem st queues timer retransmits uid ...
        let (local, remote, uid) = (f.get(1)?, f.get(2)?, f.get(7)?);
        (address(local)? == peer && address(remote)? == ours).then(|| uid.parse().ok())?
    })
}

/// `0100007F:1F90` (IPv4: one little-endian word) or 32 hex digits (IPv6:
/// four little-endian words), then the port in big-endian hex.
fn address(s: &str) -> Option<SocketAddr> {
    let (ip, port) = s.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |h: &str| u32::from_str_radix(h, 16).ok().map(u32::swap_bytes);
    let ip = match ip.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(ip)?)),
        32 => {
            let mut bytes = [0u8; 16];
            for (i, chunk) in bytes.chunks_mut(4).enumerate() {
                chunk.copy_from_slice(&word(&ip[i * 8..i * 8 + 8])?.to_be_bytes());
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clients_socket_names_its_owner() {
        // A listener on 127.0.0.1:8080, our accepted socket, and uid 1000's client.
        let table = "\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0
   1: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 20 4 30 10 -1
   2: 0100007F:D431 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  1000        0 3 1 0 20 4 30 10 -1
";
        let ours: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let peer: SocketAddr = "127.0.0.1:54321".parse().unwrap();
        assert_eq!(find(table, peer, ours), Some(1000));
        assert_eq!(find(table, "127.0.0.1:1".parse().unwrap(), ours), None);
    }

    #[test]
    fn ipv6_addresses_read_word_by_word() {
        assert_eq!(
            address("00000000000000000000000001000000:1F90"),
            Some("[::1]:8080".parse().unwrap())
        );
    }

    #[test]
    fn this_process_owns_its_own_loopback_connection() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let ours = listener.local_addr().unwrap();
        let client = std::net::TcpStream::connect(ours).unwrap();
        let peer = client.local_addr().unwrap();
        // SAFETY: getuid has no preconditions.
        let me = unsafe { libc::getuid() };
        assert_eq!(uid_of(peer, ours), Some(me));
    }
}
