//! What the network settings cost a process: reading the system's trust
//! store (once per process), and building a client with the settings (each
//! client: the roots added to its TLS config), against a client built with
//! the built-in roots alone — what every CLI command that makes an HTTPS
//! request pays at start (`regent token`'s lean path makes none).
//!
//!     cargo bench -p regent-net --bench network

use regent_net::{Network, NetworkConfig};
use std::time::Instant;

fn p50(mut v: Vec<u128>) -> u128 {
    v.sort_unstable();
    v[v.len() / 2]
}

fn main() {
    let t = Instant::now();
    let net = Network::load(&NetworkConfig::default()).expect("settings load");
    let first = t.elapsed();
    let sources = net.status().ca_sources.join("; ");
    const N: usize = 200;
    let (mut with, mut plain) = (Vec::with_capacity(N), Vec::with_capacity(N));
    for _ in 0..N {
        let t = Instant::now();
        let _c = net.apply(reqwest::Client::builder()).build().unwrap();
        with.push(t.elapsed().as_micros());
        let t = Instant::now();
        let _c = reqwest::Client::builder().build().unwrap();
        plain.push(t.elapsed().as_micros());
    }
    println!("trust: {sources}");
    println!(
        "first load (reads the system's store): {} µs; a client with the settings: p50 {} µs, \
         with the built-in roots alone: p50 {} µs ({N} each, alternating)",
        first.as_micros(),
        p50(with),
        p50(plain)
    );
}
