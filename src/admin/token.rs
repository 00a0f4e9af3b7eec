//! The admin API's bearer token, compared in constant time.

use std::fmt;

use ring::digest::{SHA256, digest};
use subtle::ConstantTimeEq;

use crate::config::SecretSource;
use crate::crypto::secret::{self, SecretError};

/// Kept as a SHA-256 digest, so comparison time depends on neither the token's length nor
/// its bytes.
pub struct AdminToken([u8; 32]);

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

impl AdminToken {
    /// Loads the token; a missing token file is created with a random token.
    pub fn load(source: &SecretSource) -> Result<AdminToken, SecretError> {
        let (text, origin) = secret::load_or_create(source, "admin API token")?;
        if text.len() < 16 {
            return Err(SecretError::Malformed { origin });
        }
        Ok(AdminToken::new(&text))
    }

    pub fn new(token: &str) -> AdminToken {
        let mut d = [0u8; 32];
        d.copy_from_slice(digest(&SHA256, token.as_bytes()).as_ref());
        AdminToken(d)
    }

    pub fn matches(&self, presented: &str) -> bool {
        let other = AdminToken::new(presented);
        self.0.ct_eq(&other.0).into()
    }
}
