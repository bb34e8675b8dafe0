//! DPoP (RFC 9449): a key pair per grant, held by the agent alone, and the
//! proofs that bind a token request, and each use of a token, to it. The
//! private key never leaves this module except as the stored form of its
//! grant; `Debug` shows its thumbprint only.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use secrecy::{ExposeSecret, SecretBox};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;

/// The one algorithm regent signs proofs with (P-256; RFC 9449 §4.2 names
/// ES256 as the one every server should take).
pub const ALG: &str = "ES256";

/// Whether a grant binds its tokens to a key: `always` does; `auto` where
/// the resource's metadata names DPoP and the AS offers ES256 (a resource
/// that cannot check a binding would refuse a bound token); `never` does not.
pub fn binds(
    mode: regent_proto::DpopMode,
    resource_names_dpop: bool,
    meta: &super::Metadata,
) -> bool {
    let offered = meta
        .dpop_signing_alg_values_supported
        .as_ref()
        .is_some_and(|a| a.iter().any(|a| a == ALG));
    match mode {
        regent_proto::DpopMode::Always => true,
        regent_proto::DpopMode::Auto => offered && resource_names_dpop,
        regent_proto::DpopMode::Never => false,
    }
}

/// Why a key could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum DpopError {
    /// The stored key does not parse.
    #[error("the stored DPoP key is unreadable")]
    BadKey,
    /// The system's random source failed.
    #[error("cannot make a DPoP key")]
    NoRandom,
    /// Signing failed.
    #[error("cannot sign a DPoP proof")]
    Sign,
}

/// A grant's DPoP key pair.
pub struct DpopKey {
    pair: EcdsaKeyPair,
    pkcs8: SecretBox<Vec<u8>>,
    thumbprint: String,
}

impl std::fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DpopKey(jkt {})", self.thumbprint)
    }
}

impl DpopKey {
    /// A new P-256 key pair.
    pub fn generate() -> Result<DpopKey, DpopError> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| DpopError::NoRandom)?;
        DpopKey::from_pkcs8(pkcs8.as_ref().to_vec())
    }

    /// The key in its stored form (PKCS#8, base64url).
    pub fn from_stored(s: &str) -> Result<DpopKey, DpopError> {
        let der = B64.decode(s).map_err(|_| DpopError::BadKey)?;
        DpopKey::from_pkcs8(der)
    }

    fn from_pkcs8(der: Vec<u8>) -> Result<DpopKey, DpopError> {
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, &rng)
            .map_err(|_| DpopError::BadKey)?;
        let thumbprint = thumbprint(&jwk_of(&pair));
        Ok(DpopKey {
            pair,
            pkcs8: SecretBox::new(Box::new(der)),
            thumbprint,
        })
    }

    /// The stored form (a secret: it is kept exactly as the refresh token is).
    pub fn to_stored(&self) -> String {
        B64.encode(self.pkcs8.expose_secret())
    }

    /// The public key as a JWK.
    pub fn jwk(&self) -> serde_json::Value {
        jwk_of(&self.pair)
    }

    /// The JWK SHA-256 thumbprint (RFC 7638): the `jkt` a bound token names.
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// A proof for one request: `htm` and `htu` (its query and fragment
    /// dropped, RFC 9449 §4.2), `ath` for a request that carries
    /// `access_token`, and the server's `nonce` where it gave one.
    pub fn proof(
        &self,
        htm: &str,
        htu: &str,
        access_token: Option<&str>,
        nonce: Option<&str>,
    ) -> Result<String, DpopError> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let jti: [u8; 16] = rand::random();
        let mut claims = serde_json::json!({
            "jti": B64.encode(jti),
            "htm": htm,
            "htu": htu_of(htu),
            "iat": now,
        });
        if let Some(t) = access_token {
            claims["ath"] = B64.encode(Sha256::digest(t.as_bytes())).into();
        }
        if let Some(n) = nonce {
            claims["nonce"] = n.into();
        }
        let header = serde_json::json!({"typ": "dpop+jwt", "alg": ALG, "jwk": self.jwk()});
        let input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let sig = self
            .pair
            .sign(&SystemRandom::new(), input.as_bytes())
            .map_err(|_| DpopError::Sign)?;
        Ok(format!("{input}.{}", B64.encode(sig.as_ref())))
    }
}

/// `htu`: the URL without its query and fragment.
fn htu_of(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        }
        Err(_) => url.split(['?', '#']).next().unwrap_or(url).to_string(),
    }
}

/// The JWK of a P-256 public key (the uncompressed point 0x04 || x || y).
fn jwk_of(pair: &EcdsaKeyPair) -> serde_json::Value {
    let point = pair.public_key().as_ref();
    let (x, y) = point[1..].split_at(32);
    serde_json::json!({"kty": "EC", "crv": "P-256", "x": B64.encode(x), "y": B64.encode(y)})
}

/// RFC 7638: SHA-256 of the required members in lexicographic order, no whitespace.
fn thumbprint(jwk: &serde_json::Value) -> String {
    let canonical = format!(
        r#"{{"crv":"{}","kty":"{}","x":"{}","y":"{}"}}"#,
        jwk["crv"].as_str().unwrap_or_default(),
        jwk["kty"].as_str().unwrap_or_default(),
        jwk["x"].as_str().unwrap_or_default(),
        jwk["y"].as_str().unwrap_or_default()
    );
    B64.encode(Sha256::digest(canonical.as_bytes()))
}

/// The nonces servers gave (`DPoP-Nonce`), per origin: an authorization
/// server's for its token requests, a resource server's for its requests.
#[derive(Default)]
pub struct Nonces(Mutex<HashMap<String, String>>);

impl Nonces {
    /// The nonce last given by the origin of `url`.
    pub fn get(&self, url: &str) -> Option<String> {
        self.0.lock().unwrap().get(&origin(url)?).cloned()
    }

    /// Keeps `nonce` for the origin of `url` (bounded: one per origin, and
    /// a value a header can carry).
    pub fn put(&self, url: &str, nonce: &str) {
        let Some(o) = origin(url) else { return };
        if nonce.len() > 512 || !nonce.bytes().all(|b| (0x21..0x7f).contains(&b)) {
            return;
        }
        let mut m = self.0.lock().unwrap();
        if m.len() >= 1024 && !m.contains_key(&o) {
            m.clear();
        }
        m.insert(o, nonce.to_string());
    }
}

fn origin(url: &str) -> Option<String> {
    url::Url::parse(url)
        .ok()
        .map(|u| u.origin().ascii_serialization())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(jws: &str) -> (serde_json::Value, serde_json::Value, Vec<u8>, String) {
        let p: Vec<&str> = jws.split('.').collect();
        assert_eq!(p.len(), 3);
        let json = |s: &str| serde_json::from_slice(&B64.decode(s).unwrap()).unwrap();
        (
            json(p[0]),
            json(p[1]),
            B64.decode(p[2]).unwrap(),
            format!("{}.{}", p[0], p[1]),
        )
    }

    /// A proof is a JWS a resource server can verify with the key in its
    /// header, naming the method, the URL without query and fragment, the
    /// token's hash and the nonce.
    #[test]
    fn a_proof_verifies_with_its_own_jwk_and_says_what_it_binds() {
        let key = DpopKey::generate().unwrap();
        let proof = key
            .proof(
                "POST",
                "https://mcp.example/mcp?x=1#f",
                Some("the-token"),
                Some("n-1"),
            )
            .unwrap();
        let (header, claims, sig, input) = parts(&proof);
        assert_eq!(header["typ"], "dpop+jwt");
        assert_eq!(header["alg"], "ES256");
        assert!(
            header["jwk"].get("d").is_none(),
            "the private key is in the proof"
        );
        assert_eq!(claims["htm"], "POST");
        assert_eq!(claims["htu"], "https://mcp.example/mcp");
        assert_eq!(claims["nonce"], "n-1");
        assert_eq!(
            claims["ath"],
            B64.encode(Sha256::digest(b"the-token")).as_str()
        );
        assert!(claims["jti"].as_str().unwrap().len() >= 22);
        let x = B64.decode(header["jwk"]["x"].as_str().unwrap()).unwrap();
        let y = B64.decode(header["jwk"]["y"].as_str().unwrap()).unwrap();
        let point = [&[4u8][..], &x, &y].concat();
        ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, point)
            .verify(input.as_bytes(), &sig)
            .expect("the proof verifies");
        // Each proof is fresh.
        let again = key
            .proof("POST", "https://mcp.example/mcp", None, None)
            .unwrap();
        let (_, c2, _, _) = parts(&again);
        assert_ne!(c2["jti"], claims["jti"]);
        assert!(c2.get("ath").is_none() && c2.get("nonce").is_none());
    }

    /// The key survives its stored form (a restart keeps the binding), and
    /// its thumbprint is RFC 7638's.
    #[test]
    fn the_stored_key_is_the_same_key() {
        let key = DpopKey::generate().unwrap();
        let back = DpopKey::from_stored(&key.to_stored()).unwrap();
        assert_eq!(back.thumbprint(), key.thumbprint());
        assert_eq!(back.jwk(), key.jwk());
        let jwk = key.jwk();
        let canonical = format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            jwk["x"].as_str().unwrap(),
            jwk["y"].as_str().unwrap()
        );
        assert_eq!(
            key.thumbprint(),
            B64.encode(Sha256::digest(canonical.as_bytes()))
        );
        assert!(!format!("{key:?}").contains(&key.to_stored()));
        assert!(DpopKey::from_stored("not-a-key").is_err());
    }

    #[test]
    fn nonces_are_kept_per_origin_and_bounded() {
        let n = Nonces::default();
        n.put("https://as.example/token", "abc");
        assert_eq!(n.get("https://as.example/other").as_deref(), Some("abc"));
        assert_eq!(n.get("https://rs.example/mcp"), None);
        n.put("https://as.example/token", "bad\nvalue");
        assert_eq!(n.get("https://as.example/token").as_deref(), Some("abc"));
        n.put("https://as.example/token", &"x".repeat(600));
        assert_eq!(n.get("https://as.example/token").as_deref(), Some("abc"));
    }
}
