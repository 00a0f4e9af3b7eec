//! JWTs of a pool: ID tokens, access tokens and identity assertions, signed with the
//! pool's active key and verified against the pool's published keys only.

use std::collections::HashMap;

use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
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
    key: SigningKey,
}

/// The private half, parsed once when the pool's keys are loaded: an RSA key takes longer
/// to parse than to sign with. RSA is aws-lc-rs's, which signs in 60% of ring's time on
/// this project's machines (≈ 315 against 530 µs for RSA-2048), and each RS256 grant pays
/// it once.
enum SigningKey {
    Es256(aws_lc_rs::signature::EcdsaKeyPair),
    Rs256(aws_lc_rs::signature::RsaKeyPair),
}

impl SigningKey {
    fn alg(&self) -> Algorithm {
        match self {
            SigningKey::Es256(_) => Algorithm::ES256,
            SigningKey::Rs256(_) => Algorithm::RS256,
        }
    }

    fn sign(&self, input: &[u8]) -> Result<Vec<u8>, JwtError> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let failed = |_| JwtError::Sign("the key refused to sign".into());
        match self {
            SigningKey::Es256(pair) => Ok(pair.sign(&rng, input).map_err(failed)?.as_ref().to_vec()),
            SigningKey::Rs256(pair) => {
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(&aws_lc_rs::signature::RSA_PKCS1_SHA256, &rng, input, &mut signature)
                    .map_err(failed)?;
                Ok(signature)
            }
        }
    }
}

/// A JWS in compact serialization (RFC 7515 §7.1) of exactly these header and payload
/// bytes.
fn compact(header: &[u8], payload: &[u8], key: &SigningKey) -> Result<String, JwtError> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut token = format!("{}.{}", b64.encode(header), b64.encode(payload));
    let signature = key.sign(token.as_bytes())?;
    token.push('.');
    token.push_str(&b64.encode(signature));
    Ok(token)
}

impl Signer {
    /// An ES256 signer from a PKCS#8 document.
    pub fn from_pkcs8(kid: &str, pkcs8: &[u8]) -> Result<Signer, JwtError> {
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8)
            .map_err(|e| JwtError::Sign(format!("ES256 key {kid}: {e}")))?;
        Ok(Signer {
            kid: kid.to_owned(),
            key: SigningKey::Es256(pair),
        })
    }

    /// An RS256 signer from a PKCS#1 RSA private key.
    pub fn from_rsa_der(kid: &str, der: &[u8]) -> Result<Signer, JwtError> {
        let pair = aws_lc_rs::signature::RsaKeyPair::from_der(der)
            .map_err(|e| JwtError::Sign(format!("RS256 key {kid}: {e}")))?;
        Ok(Signer {
            kid: kid.to_owned(),
            key: SigningKey::Rs256(pair),
        })
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
        let mut header = Header::new(self.key.alg());
        header.kid = Some(self.kid.clone());
        header.typ = Some(typ.to_owned());
        let json = |v: Result<Vec<u8>, serde_json::Error>| v.map_err(|e| JwtError::Sign(e.to_string()));
        compact(
            &json(serde_json::to_vec(&header))?,
            &json(serde_json::to_vec(claims))?,
            &self.key,
        )
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
    use serde_json::{Value, json};

    use super::*;
    use crate::crypto::signing::{NewKey, generate_es256, generate_rs256};

    /// Signs exactly this header and these claims (a header the signer would not write,
    /// say).
    fn signed(header: Value, claims: Value, key: &NewKey) -> String {
        let signer = Signer::from_pkcs8(&key.jwk.kid, &key.pkcs8).unwrap();
        compact(
            header.to_string().as_bytes(),
            claims.to_string().as_bytes(),
            &signer.key,
        )
        .unwrap()
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

    #[test]
    fn tokens_of_either_algorithm_verify_with_the_published_key_and_no_other() {
        let (es, rs) = (generate_es256().unwrap(), generate_rs256().unwrap());
        let signers = [
            Signer::from_pkcs8(&es.jwk.kid, &es.pkcs8).unwrap(),
            Signer::from_rsa_der(&rs.jwk.kid, &rs.pkcs8).unwrap(),
        ];
        let both = Verifier::new(&[es.jwk.clone(), rs.jwk.clone()]);
        let now = jsonwebtoken::get_current_timestamp() as i64;
        let claims = json!({"iss": "i", "aud": "a", "sub": "s", "exp": now + 300});
        for (signer, alg) in signers.iter().zip(["ES256", "RS256"]) {
            let token = signer.sign_typed("at+jwt", &claims).unwrap();
            let header = jsonwebtoken::decode_header(&token).unwrap();
            assert_eq!(format!("{:?}", header.alg), alg);
            assert_eq!(header.kid.as_deref(), Some(signer.kid()));
            assert_eq!(header.typ.as_deref(), Some("at+jwt"));
            assert_eq!(both.verify::<Value>(&token, "i", "a").unwrap(), claims);
            assert!(both.verify::<Value>(&token, "i", "another").is_err());
        }
        // A key that is not published verifies nothing, whatever its algorithm.
        let stranger = generate_es256().unwrap();
        let token = Signer::from_pkcs8(&stranger.jwk.kid, &stranger.pkcs8)
            .unwrap()
            .sign(&claims)
            .unwrap();
        assert!(both.verify::<Value>(&token, "i", "a").is_err());
        assert!(Signer::from_rsa_der("k", &es.pkcs8).is_err(), "an EC key is no RSA key");
    }
}
