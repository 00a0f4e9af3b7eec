//! Pools' signing keys: ES256 (ECDSA P-256) for everything the gateway signs, and RS256
//! (RSA 2048) for the ID tokens of clients that ask for it. The private half exists in
//! clear only in memory; at rest it is sealed under a key derived from the master key for
//! that pool.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde::{Deserialize, Serialize};

/// The public half as a JWK, as published in the pool's JWKS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicJwk {
    pub kty: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    /// RSA modulus and exponent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    pub kid: String,
    pub alg: String,
    #[serde(rename = "use")]
    pub use_: String,
}

/// A freshly generated key pair: the private key (PKCS#8 for ES256, PKCS#1 for RS256, as
/// the JWT encoder takes them) and its public JWK.
pub struct NewKey {
    pub pkcs8: Vec<u8>,
    pub jwk: PublicJwk,
}

#[derive(Debug, thiserror::Error)]
#[error("PG0310 signing key generation failed")]
pub struct KeyGenError;

pub fn generate_es256() -> Result<NewKey, KeyGenError> {
    let rng = SystemRandom::new();
    let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).map_err(|_| KeyGenError)?;
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref(), &rng).map_err(|_| KeyGenError)?;
    // Uncompressed point: 0x04 ‖ X (32) ‖ Y (32).
    let point = pair.public_key().as_ref();
    let (x, y) = point[1..].split_at(32);
    let digest = ring::digest::digest(&ring::digest::SHA256, point);
    let jwk = PublicJwk {
        kty: "EC".into(),
        crv: Some("P-256".into()),
        x: Some(URL_SAFE_NO_PAD.encode(x)),
        y: Some(URL_SAFE_NO_PAD.encode(y)),
        n: None,
        e: None,
        kid: URL_SAFE_NO_PAD.encode(&digest.as_ref()[..12]),
        alg: "ES256".into(),
        use_: "sig".into(),
    };
    Ok(NewKey {
        pkcs8: doc.as_ref().to_vec(),
        jwk,
    })
}

/// An RSA 2048 key for RS256. Generation takes tens to hundreds of milliseconds: call it
/// off the async runtime.
pub fn generate_rs256() -> Result<NewKey, KeyGenError> {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::traits::PublicKeyParts;
    let mut rng = rsa::rand_core::OsRng;
    let key = rsa::RsaPrivateKey::new(&mut rng, 2048).map_err(|_| KeyGenError)?;
    let der = key.to_pkcs1_der().map_err(|_| KeyGenError)?;
    let n = key.n().to_bytes_be();
    let e = key.e().to_bytes_be();
    let digest = ring::digest::digest(&ring::digest::SHA256, &n);
    let jwk = PublicJwk {
        kty: "RSA".into(),
        crv: None,
        x: None,
        y: None,
        n: Some(URL_SAFE_NO_PAD.encode(&n)),
        e: Some(URL_SAFE_NO_PAD.encode(&e)),
        kid: URL_SAFE_NO_PAD.encode(&digest.as_ref()[..12]),
        alg: "RS256".into(),
        use_: "sig".into(),
    };
    Ok(NewKey {
        pkcs8: der.as_bytes().to_vec(),
        jwk,
    })
}
