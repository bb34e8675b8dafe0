//! What a DPoP proof costs the agent (issue budget: ≤ 50 µs p50): a key made
//! as a login makes it, then proofs for one request each, as the token API
//! makes them (method, URL, the token's hash, a nonce).
//!
//!     cargo bench -p regentd --bench dpop

use regentd::oauth::dpop::DpopKey;
use std::time::Instant;

fn main() {
    const N: usize = 20_000;
    let started = Instant::now();
    let key = DpopKey::generate().expect("a key");
    let keygen = started.elapsed();
    let token = "x".repeat(800);
    for _ in 0..1_000 {
        key.proof("POST", "https://mcp.example/mcp", Some(&token), Some("n"))
            .unwrap();
    }
    let mut us = Vec::with_capacity(N);
    for _ in 0..N {
        let t = Instant::now();
        let p = key
            .proof(
                "POST",
                "https://mcp.example/mcp?x=1",
                Some(&token),
                Some("nonce-1"),
            )
            .unwrap();
        us.push(t.elapsed().as_nanos());
        std::hint::black_box(p);
    }
    us.sort_unstable();
    let at = |q: f64| us[((us.len() - 1) as f64 * q) as usize] as f64 / 1000.0;
    println!(
        "DPoP proof (ES256, {N} proofs after 1000 warm-up): p50 {:.1} µs, p99 {:.1} µs; key generation {:.1} µs",
        at(0.5),
        at(0.99),
        keygen.as_nanos() as f64 / 1000.0
    );
}
