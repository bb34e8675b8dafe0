//! Who the agent is at an authorization server, and how it proves it at the
//! token endpoint: `none` (a public client), `client_secret_basic`,
//! `client_secret_post`, or `private_key_jwt` (RFC 7523 §2.2, signed with
//! `ring`: ES256 for a P-256 key, ES384 for P-384, RS256 for an RSA key
//! unless another RSA algorithm is chosen: PS256 and the like).

use super::OAuthError;
use base64::Engine;
use regent_proto::TokenAuthMethod;
use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, RsaEncoding, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING,
    ECDSA_P384_SHA384_FIXED_SIGNING, RSA_PKCS1_SHA256, RSA_PKCS1_SHA384, RSA_PKCS1_SHA512,
    RSA_PSS_SHA256, RSA_PSS_SHA384, RSA_PSS_SHA512,
};
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;

/// The client, its method and its credential. `Debug` shows no secret.
#[derive(Clone)]
pub struct ClientAuth {
    /// The client id.
    pub id: String,
    /// How it authenticates.
    pub method: TokenAuthMethod,
    /// The secret (`client_secret_*`).
    pub secret: Option<SecretString>,
    /// The signing key (`private_key_jwt`).
    pub key: Option<Arc<SigningKey>>,
}

impl std::fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientAuth")
            .field("id", &self.id)
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

impl ClientAuth {
    /// No client at all (a grant whose assertion is the credential).
    pub fn anonymous() -> ClientAuth {
        ClientAuth::public("")
    }

    /// A public client.
    pub fn public(id: &str) -> ClientAuth {
        ClientAuth {
            id: id.to_string(),
            method: TokenAuthMethod::None,
            secret: None,
            key: None,
        }
    }

    /// Adds what authenticates the client to a token request's form; returns
    /// the `Authorization` header value for `client_secret_basic`. `audience`
    /// is the AS's issuer (the `aud` of a client assertion).
    pub fn apply(
        &self,
        form: &mut Vec<(&'static str, String)>,
        audience: &str,
    ) -> Result<Option<String>, OAuthError> {
        let missing = |what: &str| {
            OAuthError::Config(format!(
                "client {} authenticates with {:?} but no {what} is stored for it; add it again with its {what}",
                self.id, self.method
            ))
        };
        match self.method {
            TokenAuthMethod::None => {
                if !self.id.is_empty() {
                    form.push(("client_id", self.id.clone()));
                }
                Ok(None)
            }
            TokenAuthMethod::ClientSecretPost => {
                let secret = self
                    .secret
                    .as_ref()
                    .ok_or_else(|| missing("client secret"))?;
                form.push(("client_id", self.id.clone()));
                form.push(("client_secret", secret.expose_secret().to_string()));
                Ok(None)
            }
            TokenAuthMethod::ClientSecretBasic => {
                let secret = self
                    .secret
                    .as_ref()
                    .ok_or_else(|| missing("client secret"))?;
                Ok(Some(basic(&self.id, secret.expose_secret())))
            }
            TokenAuthMethod::PrivateKeyJwt => {
                let key = self.key.as_ref().ok_or_else(|| missing("private key"))?;
                let assertion = key.assertion(&self.id, audience)?;
                form.push(("client_id", self.id.clone()));
                form.push((
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
                ));
                form.push(("client_assertion", assertion));
                Ok(None)
            }
        }
    }
}

/// `Basic base64(urlencode(id):urlencode(secret))` (RFC 6749 §2.3.1).
pub fn basic(id: &str, secret: &str) -> String {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let raw = format!("{}:{}", enc(id), enc(secret));
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// A private key for `private_key_jwt`; the algorithm follows the key
/// unless one is chosen ([`SigningKey::with_alg`]).
pub enum SigningKey {
    /// P-256, ES256.
    Es256(EcdsaKeyPair),
    /// P-384, ES384.
    Es384(EcdsaKeyPair),
    /// RSA, with its JWS algorithm (RS256 unless chosen).
    Rsa(RsaKeyPair, RsaAlg),
}

/// An RSA JWS algorithm.
#[derive(Clone, Copy)]
pub struct RsaAlg {
    name: &'static str,
    encoding: &'static dyn RsaEncoding,
}

/// The RSA algorithms, by JWS name.
const RSA_ALGS: [RsaAlg; 6] = [
    RsaAlg {
        name: "RS256",
        encoding: &RSA_PKCS1_SHA256,
    },
    RsaAlg {
        name: "PS256",
        encoding: &RSA_PSS_SHA256,
    },
    RsaAlg {
        name: "RS384",
        encoding: &RSA_PKCS1_SHA384,
    },
    RsaAlg {
        name: "PS384",
        encoding: &RSA_PSS_SHA384,
    },
    RsaAlg {
        name: "RS512",
        encoding: &RSA_PKCS1_SHA512,
    },
    RsaAlg {
        name: "PS512",
        encoding: &RSA_PSS_SHA512,
    },
];

/// Every algorithm a key may sign with (`--client-key-alg`).
pub const ALGS: [&str; 8] = [
    "ES256", "ES384", "RS256", "PS256", "RS384", "PS384", "RS512", "PS512",
];

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", self.alg())
    }
}

impl SigningKey {
    /// Reads a PEM private key: PKCS#8 (`BEGIN PRIVATE KEY`, P-256, P-384
    /// or RSA), or PKCS#1 (`BEGIN RSA PRIVATE KEY`). The error names no key material.
    pub fn from_pem(pem: &str) -> Result<SigningKey, String> {
        let (label, der) = pem_der(pem)?;
        let rng = SystemRandom::new();
        let rsa = |k| SigningKey::Rsa(k, RSA_ALGS[0]);
        match label.as_str() {
            "PRIVATE KEY" => {
                if let Ok(k) = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, &rng) {
                    return Ok(SigningKey::Es256(k));
                }
                if let Ok(k) = EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, &der, &rng) {
                    return Ok(SigningKey::Es384(k));
                }
                RsaKeyPair::from_pkcs8(&der).map(rsa).map_err(|_| {
                    "the private key is neither a P-256, a P-384 nor an RSA key in PKCS#8 form"
                        .to_string()
                })
            }
            "RSA PRIVATE KEY" => RsaKeyPair::from_der(&der)
                .map(rsa)
                .map_err(|_| "the RSA private key does not parse".to_string()),
            "EC PRIVATE KEY" => Err(
                "an EC key in SEC1 form; convert it to PKCS#8 with: openssl pkcs8 -topk8 -nocrypt -in KEY.pem".into(),
            ),
            other => Err(format!("a PEM block of type {other:?} is not a private key")),
        }
    }

    /// The key, signing with `alg` (a JWS name): an RSA key signs any RSA
    /// algorithm; an EC key only its curve's.
    pub fn with_alg(self, alg: &str) -> Result<SigningKey, String> {
        match self {
            SigningKey::Rsa(k, _) => match RSA_ALGS.iter().find(|a| a.name == alg) {
                Some(a) => Ok(SigningKey::Rsa(k, *a)),
                None => Err(format!(
                    "an RSA key signs RS256, PS256, RS384, PS384, RS512 or PS512, not {alg}"
                )),
            },
            k if k.alg() == alg => Ok(k),
            k => Err(format!(
                "this key is an EC key that signs {} only, not {alg}",
                k.alg()
            )),
        }
    }

    /// The algorithm to sign with at an AS that accepts `accepted` (its
    /// `token_endpoint_auth_signing_alg_values_supported`): the key's own
    /// where the AS takes it (or says nothing), else the first RSA one it
    /// takes for an RSA key; `None` where it takes none this key can sign.
    pub fn alg_for(&self, accepted: Option<&[String]>) -> Option<&'static str> {
        let Some(accepted) = accepted.filter(|a| !a.is_empty()) else {
            return Some(self.alg());
        };
        let takes = |a: &str| accepted.iter().any(|x| x == a);
        if takes(self.alg()) {
            return Some(self.alg());
        }
        match self {
            SigningKey::Rsa(..) => RSA_ALGS.iter().map(|a| a.name).find(|a| takes(a)),
            _ => None,
        }
    }

    /// The JWS algorithm.
    pub fn alg(&self) -> &'static str {
        match self {
            SigningKey::Es256(_) => "ES256",
            SigningKey::Es384(_) => "ES384",
            SigningKey::Rsa(_, a) => a.name,
        }
    }

    /// A client assertion: `iss` = `sub` = the client id, `aud` = the AS's
    /// issuer, valid for five minutes, with a fresh `jti`.
    pub fn assertion(&self, client_id: &str, audience: &str) -> Result<String, OAuthError> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let jti: [u8; 16] = rand::random();
        let claims = serde_json::json!({
            "iss": client_id, "sub": client_id, "aud": audience,
            "iat": now, "exp": now + 300,
            "jti": jti.iter().map(|b| format!("{b:02x}")).collect::<String>(),
        });
        self.sign(
            &serde_json::json!({"alg": self.alg(), "typ": "JWT"}),
            &claims,
        )
    }

    /// A compact JWS of `claims`.
    pub fn sign(
        &self,
        header: &serde_json::Value,
        claims: &serde_json::Value,
    ) -> Result<String, OAuthError> {
        let b64 = |v: &serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let input = format!("{}.{}", b64(header), b64(claims));
        let rng = SystemRandom::new();
        let sig = match self {
            SigningKey::Es256(k) | SigningKey::Es384(k) => k
                .sign(&rng, input.as_bytes())
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| OAuthError::Config("cannot sign the client assertion".into()))?,
            SigningKey::Rsa(k, alg) => {
                let mut sig = vec![0u8; k.public().modulus_len()];
                k.sign(alg.encoding, &rng, input.as_bytes(), &mut sig)
                    .map_err(|_| OAuthError::Config("cannot sign the client assertion".into()))?;
                sig
            }
        };
        Ok(format!(
            "{input}.{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig)
        ))
    }
}

/// The label and DER bytes of the first PEM block.
fn pem_der(pem: &str) -> Result<(String, Vec<u8>), String> {
    let begin = pem
        .find("-----BEGIN ")
        .ok_or("not a PEM file (no -----BEGIN line)")?;
    let rest = &pem[begin + "-----BEGIN ".len()..];
    let label_end = rest.find("-----").ok_or("a malformed PEM header")?;
    let label = rest[..label_end].to_string();
    let body_start = label_end + 5;
    let end = rest
        .find(&format!("-----END {label}-----"))
        .ok_or("a PEM block without its END line")?;
    let b64: String = rest[body_start..end]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| "the PEM body is not base64".to_string())?;
    Ok((label, der))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_encodes_as_rfc_6749_says() {
        assert_eq!(basic("a", "b"), "Basic YTpi");
        // ':' and '+' are form-encoded before base64.
        let v = basic("id:x", "s+t");
        let raw = base64::engine::general_purpose::STANDARD
            .decode(v.trim_start_matches("Basic "))
            .unwrap();
        assert_eq!(String::from_utf8(raw).unwrap(), "id%3Ax:s%2Bt");
    }

    #[test]
    fn an_es256_assertion_is_a_verifiable_jws() {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(pkcs8.as_ref())
        );
        let key = SigningKey::from_pem(&pem).unwrap();
        assert_eq!(key.alg(), "ES256");
        let jwt = key.assertion("client-1", "https://as.example").unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let claims: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(parts[1])
                .unwrap(),
        )
        .unwrap();
        assert_eq!(claims["iss"], "client-1");
        assert_eq!(claims["sub"], "client-1");
        assert_eq!(claims["aud"], "https://as.example");
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        use ring::signature::KeyPair;
        let public = ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_FIXED,
            pair.public_key().as_ref().to_vec(),
        );
        let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[2])
            .unwrap();
        public
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
            .expect("the signature verifies");
        assert!(SigningKey::from_pem(
            "-----BEGIN EC PRIVATE KEY-----\nAA==\n-----END EC PRIVATE KEY-----"
        )
        .unwrap_err()
        .contains("openssl pkcs8"));
    }

    /// An RSA key from openssl (ring makes none), PKCS#8 PEM.
    fn rsa_pem() -> String {
        let out = std::process::Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
            ])
            .output()
            .expect("openssl runs (scripts/setup installs it)");
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    }

    /// `--client-key-alg PS256` on an RSA key signs RSASSA-PSS, verifiable
    /// with the key's public half; an EC key refuses another curve's or RSA's.
    #[test]
    fn an_rsa_key_signs_the_algorithm_chosen() {
        let pem = rsa_pem();
        let key = SigningKey::from_pem(&pem).unwrap();
        assert_eq!(key.alg(), "RS256");
        let key = key.with_alg("PS256").unwrap();
        assert_eq!(key.alg(), "PS256");
        let jwt = key.assertion("client-1", "https://as.example").unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        let header: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(parts[0])
                .unwrap(),
        )
        .unwrap();
        assert_eq!(header["alg"], "PS256");
        let SigningKey::Rsa(pair, _) = &key else {
            panic!("an RSA key")
        };
        use ring::signature::KeyPair;
        let public = ring::signature::UnparsedPublicKey::new(
            &ring::signature::RSA_PSS_2048_8192_SHA256,
            pair.public_key().as_ref().to_vec(),
        );
        let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[2])
            .unwrap();
        public
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
            .expect("the PS256 signature verifies");
        assert!(SigningKey::from_pem(&pem)
            .unwrap()
            .with_alg("ES256")
            .unwrap_err()
            .contains("RSA key signs"));
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let ec = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(pkcs8.as_ref())
        );
        let e = SigningKey::from_pem(&ec)
            .unwrap()
            .with_alg("PS256")
            .unwrap_err();
        assert!(e.contains("signs ES256 only"), "{e}");
    }

    /// Where the AS names the algorithms it takes, an RSA key signs the
    /// first RSA one it takes; an EC key it does not take has none.
    #[test]
    fn the_algorithm_follows_what_the_as_takes() {
        let key = SigningKey::from_pem(&rsa_pem()).unwrap();
        let takes = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(key.alg_for(None), Some("RS256"));
        assert_eq!(
            key.alg_for(Some(&takes(&["PS256", "ES256"]))),
            Some("PS256")
        );
        assert_eq!(
            key.alg_for(Some(&takes(&["RS256", "PS256"]))),
            Some("RS256")
        );
        assert_eq!(key.alg_for(Some(&takes(&["ES256"]))), None);
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, &rng).unwrap();
        let ec = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(pkcs8.as_ref())
        );
        let ec = SigningKey::from_pem(&ec).unwrap();
        assert_eq!(ec.alg(), "ES384");
        assert_eq!(ec.alg_for(Some(&takes(&["ES256"]))), None);
    }
}
