//! Values the browser carries for us, sealed to the pool and a purpose (hidden fields,
//! cookies), and the random tokens and constant-time comparisons around them.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SecureRandom;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::registry::PoolRoute;

/// Random bytes as base64url: codes, states, verifiers, CSRF tokens.
pub fn random_token(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    let _ = ring::rand::SystemRandom::new().fill(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

/// Seals a value for the browser to carry (a hidden field, a cookie), bound to a purpose
/// and the pool.
pub fn seal<T: Serialize>(pool: &PoolRoute, purpose: &str, value: &T) -> String {
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    let binding = format!("{purpose}\0{}", pool.id);
    pool.keys
        .cookies
        .seal(&bytes, binding.as_bytes())
        .map(|s| URL_SAFE_NO_PAD.encode(s))
        .unwrap_or_default()
}

pub fn open<T: for<'de> Deserialize<'de>>(pool: &PoolRoute, purpose: &str, text: &str) -> Option<T> {
    let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
    let binding = format!("{purpose}\0{}", pool.id);
    let plain = pool.keys.cookies.open(&bytes, binding.as_bytes()).ok()?;
    serde_json::from_slice(&plain).ok()
}

pub fn equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}
