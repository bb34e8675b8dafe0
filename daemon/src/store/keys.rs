//! Store keys (contract): what each stored entry is filed under.

use sha2::{Digest, Sha256};

/// `regent:` and the first 16 hex digits of the SHA-256 of `parts` joined by NUL.
fn key(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for (n, p) in parts.iter().enumerate() {
        if n > 0 {
            h.update([0]);
        }
        h.update(p.as_bytes());
    }
    let hex: String = h
        .finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("regent:{hex}")
}

/// The key of a grant: `sha256(issuer \0 client_id \0 scopes)`, the
/// configured scopes sorted and joined by one space (empty when none).
pub fn grant(issuer: &str, client_id: &str, scopes: &[String]) -> String {
    key(&[issuer, client_id, &scope_list(scopes)])
}

/// The key of a grant one resource holds alone (the AS would not share it:
/// `invalid_target`): `sha256(issuer \0 client_id \0 scopes \0 resource)`.
pub fn own_grant(issuer: &str, client_id: &str, scopes: &[String], resource: &str) -> String {
    key(&[issuer, client_id, &scope_list(scopes), resource])
}

/// The key of a grant whose logins may bind their tokens to a key (DPoP),
/// from the key it would have without: `sha256(key \0 dpop)`.
pub fn dpop_grant(key_without: &str) -> String {
    key(&[key_without, "dpop"])
}

/// Configured scopes as one canonical string: sorted, deduplicated, space separated.
pub fn scope_list(scopes: &[String]) -> String {
    let mut s: Vec<&str> = scopes
        .iter()
        .map(String::as_str)
        .filter(|s| !s.is_empty())
        .collect();
    s.sort_unstable();
    s.dedup();
    s.join(" ")
}

/// The key of a client's credential (a registration, a secret, a private
/// key): `sha256("client" \0 issuer \0 client_id)`.
pub fn client(issuer: &str, client_id: &str) -> String {
    key(&["client", issuer, client_id])
}

/// The version 1 key of a registry's token set: `sha256(url \0 issuer \0 client_id)`.
pub fn v1(registry_url: &str, issuer: &str, client_id: &str) -> String {
    key(&[registry_url, issuer, client_id])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expect(input: &[u8]) -> String {
        let d = Sha256::digest(input);
        format!(
            "regent:{}",
            d[..8]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        )
    }

    #[test]
    fn keys_are_the_contract_derivations() {
        let scopes = vec!["profile".to_string(), "openid".to_string()];
        let g = grant("https://idp.example", "cli", &scopes);
        assert_eq!(g, expect(b"https://idp.example\0cli\0openid profile"));
        assert_eq!(g.len(), "regent:".len() + 16);
        // Order of the configured scopes does not matter; the scopes do.
        let swapped = vec!["openid".to_string(), "profile".to_string()];
        assert_eq!(grant("https://idp.example", "cli", &swapped), g);
        assert_ne!(grant("https://idp.example", "cli", &[]), g);
        assert_eq!(
            grant("https://idp.example", "cli", &[]),
            expect(b"https://idp.example\0cli\0")
        );
        assert_eq!(
            own_grant(
                "https://idp.example",
                "cli",
                &scopes,
                "https://mcp.example/mcp"
            ),
            expect(b"https://idp.example\0cli\0openid profile\0https://mcp.example/mcp")
        );
        assert_eq!(
            v1("https://r.example", "https://idp.example", "cli"),
            expect(b"https://r.example\0https://idp.example\0cli")
        );
    }
}
