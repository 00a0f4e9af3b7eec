//! Pools' signing keys: ES256 (ECDSA P-256). The private half exists in clear only in
//! memory; at rest it is sealed under a key derived from the master key for that pool.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde::{Deserialize, Serialize};

/// The public half as a JWK, as published in the pool's JWKS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicJwk {
    pub kty: String,
    pub crv: String,
    pub x: String,
    pub y: String,
    pub kid: String,
    pub alg: String,
    #[serde(rename = "use")]
    pub use_: String,
}

/// A freshly generated key pair: PKCS#8 private document and its public JWK.
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
        crv: "P-256".into(),
        x: URL_SAFE_NO_PAD.encode(x),
        y: URL_SAFE_NO_PAD.encode(y),
        kid: URL_SAFE_NO_PAD.encode(&digest.as_ref()[..12]),
        alg: "ES256".into(),
        use_: "sig".into(),
    };
    Ok(NewKey {
        pkcs8: doc.as_ref().to_vec(),
        jwk,
    })
}
