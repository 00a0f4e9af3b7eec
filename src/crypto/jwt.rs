//! JWTs of a pool: ID tokens, access tokens and identity assertions, signed ES256 with the
//! pool's active key and verified against the pool's published keys only.

use std::collections::HashMap;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::signing::PublicJwk;

#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    #[error("PG0320 signing failed: {0}")]
    Sign(String),
    #[error("token rejected: {0}")]
    Invalid(String),
}

/// Signs with one key; the `kid` goes in every header.
pub struct Signer {
    kid: String,
    key: EncodingKey,
}

impl Signer {
    pub fn from_pkcs8(kid: &str, pkcs8: &[u8]) -> Signer {
        Signer {
            kid: kid.to_owned(),
            key: EncodingKey::from_ec_der(pkcs8),
        }
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn sign<T: Serialize>(&self, claims: &T) -> Result<String, JwtError> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.key).map_err(|e| JwtError::Sign(e.to_string()))
    }
}

/// The published keys of one pool, by kid. Only ES256 is accepted.
#[derive(Default)]
pub struct Verifier {
    keys: HashMap<String, DecodingKey>,
}

impl Verifier {
    pub fn new(jwks: &[PublicJwk]) -> Verifier {
        let keys = jwks
            .iter()
            .filter(|k| k.kty == "EC" && k.crv == "P-256")
            .filter_map(|k| Some((k.kid.clone(), DecodingKey::from_ec_components(&k.x, &k.y).ok()?)))
            .collect();
        Verifier { keys }
    }

    /// Checks signature (by `kid`), `alg`, `iss`, `aud` and `exp`.
    pub fn verify<T: DeserializeOwned>(&self, token: &str, issuer: &str, audience: &str) -> Result<T, JwtError> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| JwtError::Invalid(e.to_string()))?;
        if header.alg != Algorithm::ES256 {
            return Err(JwtError::Invalid("algorithm not allowed".into()));
        }
        let kid = header.kid.ok_or_else(|| JwtError::Invalid("no kid".into()))?;
        let key = self
            .keys
            .get(&kid)
            .ok_or_else(|| JwtError::Invalid("unknown kid".into()))?;
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.leeway = 30;
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        jsonwebtoken::decode::<T>(token, key, &validation)
            .map(|d| d.claims)
            .map_err(|e| JwtError::Invalid(e.to_string()))
    }
}
