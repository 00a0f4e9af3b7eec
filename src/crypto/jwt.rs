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

/// The claims of a compact JWT, read without verifying anything: for a token that was
/// just verified (to read a claim the verifier does not expose), or to choose how to verify
/// it (its audience). Never a reason to trust it.
pub fn unverified_claims(token: &str) -> Option<serde_json::Value> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Signs with one key; the `kid` goes in every header.
pub struct Signer {
    kid: String,
    alg: Algorithm,
    key: EncodingKey,
}

impl Signer {
    /// An ES256 signer from a PKCS#8 document.
    pub fn from_pkcs8(kid: &str, pkcs8: &[u8]) -> Signer {
        Signer {
            kid: kid.to_owned(),
            alg: Algorithm::ES256,
            key: EncodingKey::from_ec_der(pkcs8),
        }
    }

    /// An RS256 signer from a PKCS#1 RSA private key.
    pub fn from_rsa_der(kid: &str, der: &[u8]) -> Signer {
        Signer {
            kid: kid.to_owned(),
            alg: Algorithm::RS256,
            key: EncodingKey::from_rsa_der(der),
        }
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn sign<T: Serialize>(&self, claims: &T) -> Result<String, JwtError> {
        self.sign_typed("JWT", claims)
    }

    /// Signs with an explicit `typ` (`at+jwt` for an access token, RFC 9068), so one kind of
    /// token cannot be passed off as another.
    pub fn sign_typed<T: Serialize>(&self, typ: &str, claims: &T) -> Result<String, JwtError> {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        header.typ = Some(typ.to_owned());
        jsonwebtoken::encode(&header, claims, &self.key).map_err(|e| JwtError::Sign(e.to_string()))
    }
}

/// The published keys of one pool, by kid, each with the one algorithm it signs with: a
/// token's `alg` must be its key's (no algorithm confusion).
#[derive(Default)]
pub struct Verifier {
    keys: HashMap<String, (Algorithm, DecodingKey)>,
}

impl Verifier {
    pub fn new(jwks: &[PublicJwk]) -> Verifier {
        let keys = jwks
            .iter()
            .filter_map(|k| {
                let key = match (k.kty.as_str(), k.alg.as_str()) {
                    ("EC", "ES256") if k.crv.as_deref() == Some("P-256") => (
                        Algorithm::ES256,
                        DecodingKey::from_ec_components(k.x.as_deref()?, k.y.as_deref()?).ok()?,
                    ),
                    ("RSA", "RS256") => (
                        Algorithm::RS256,
                        DecodingKey::from_rsa_components(k.n.as_deref()?, k.e.as_deref()?).ok()?,
                    ),
                    _ => return None,
                };
                Some((k.kid.clone(), key))
            })
            .collect();
        Verifier { keys }
    }

    /// The key a token's header names, if its algorithm is that key's.
    fn key_for(&self, token: &str) -> Result<(Algorithm, &DecodingKey), JwtError> {
        if names_critical_extensions(token) {
            return Err(JwtError::Invalid(
                "critical header extensions are not understood".into(),
            ));
        }
        let header = jsonwebtoken::decode_header(token).map_err(|e| JwtError::Invalid(e.to_string()))?;
        let kid = header.kid.ok_or_else(|| JwtError::Invalid("no kid".into()))?;
        let (alg, key) = self
            .keys
            .get(&kid)
            .ok_or_else(|| JwtError::Invalid("unknown kid".into()))?;
        if header.alg != *alg {
            return Err(JwtError::Invalid("algorithm not allowed".into()));
        }
        Ok((*alg, key))
    }

    /// Checks signature (by `kid`), `alg`, `iss`, `aud`, `exp` and `nbf`; a token whose
    /// header names critical extensions (`crit`) is refused, since none is understood here
    /// (RFC 7515 §4.1.11).
    pub fn verify<T: DeserializeOwned>(&self, token: &str, issuer: &str, audience: &str) -> Result<T, JwtError> {
        let (alg, key) = self.key_for(token)?;
        let mut validation = Validation::new(alg);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.leeway = 30;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        jsonwebtoken::decode::<T>(token, key, &validation)
            .map(|d| d.claims)
            .map_err(|e| JwtError::Invalid(e.to_string()))
    }
}

impl Verifier {
    /// An ID token this pool issued, offered back as a hint (`id_token_hint`): signature,
    /// algorithm and issuer are checked, not expiry (a hint may be old), and the audience
    /// is returned for the caller to check.
    pub fn verify_hint(&self, token: &str, issuer: &str) -> Result<serde_json::Value, JwtError> {
        let (alg, key) = self.key_for(token)?;
        let mut validation = Validation::new(alg);
        validation.set_issuer(&[issuer]);
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["iss", "aud", "sub"]);
        jsonwebtoken::decode::<serde_json::Value>(token, key, &validation)
            .map(|d| d.claims)
            .map_err(|e| JwtError::Invalid(e.to_string()))
    }
}

/// Whether the token's protected header carries `crit` (or cannot be read at all, in which
/// case the decoder refuses it anyway).
fn names_critical_extensions(token: &str) -> bool {
    use base64::Engine;
    let Some(header) = token.split('.').next() else {
        return false;
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .is_some_and(|h| h.get("crit").is_some())
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde_json::{Value, json};

    use super::*;
    use crate::crypto::signing::{NewKey, generate_es256};

    /// Signs exactly this header and these claims (a header the `jsonwebtoken` encoder
    /// would not write, say).
    fn signed(header: Value, claims: Value, key: &NewKey) -> String {
        use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
        let rng = ring::rand::SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &key.pkcs8, &rng).unwrap();
        let h = URL_SAFE_NO_PAD.encode(header.to_string());
        let c = URL_SAFE_NO_PAD.encode(claims.to_string());
        let input = format!("{h}.{c}");
        let sig = pair.sign(&rng, input.as_bytes()).unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }

    #[test]
    fn not_before_and_critical_extensions_are_honoured() {
        let key = generate_es256().unwrap();
        let verifier = Verifier::new(std::slice::from_ref(&key.jwk));
        let now = jsonwebtoken::get_current_timestamp() as i64;
        let claims = |nbf: i64| json!({"iss": "i", "aud": "a", "sub": "s", "exp": now + 300, "nbf": nbf});
        let header = json!({"alg": "ES256", "kid": key.jwk.kid, "typ": "JWT"});
        let ok = signed(header.clone(), claims(now - 10), &key);
        assert!(verifier.verify::<Value>(&ok, "i", "a").is_ok());
        let early = signed(header.clone(), claims(now + 3600), &key);
        assert!(
            verifier.verify::<Value>(&early, "i", "a").is_err(),
            "not valid before nbf"
        );
        let mut crit = header;
        crit["crit"] = json!(["exp-ext"]);
        crit["exp-ext"] = json!(true);
        let critical = signed(crit, claims(now - 10), &key);
        assert!(
            verifier.verify::<Value>(&critical, "i", "a").is_err(),
            "an unknown crit is refused"
        );
    }
}
