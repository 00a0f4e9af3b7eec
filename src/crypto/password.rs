//! Password hashing: argon2id with OWASP's parameters (19 MiB, 2 passes, 1 lane) for every
//! password poolgate sets; imported bcrypt and argon2 hashes are kept as they are and
//! verified by their own scheme.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng};
use argon2::{Algorithm, Argon2, Params, Version};

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("the password is empty")]
    Empty,
    #[error("the password is longer than 1024 bytes")]
    TooLong,
    #[error("hashing failed: {0}")]
    Hash(String),
}

fn argon2id() -> Argon2<'static> {
    // 19456 KiB, t = 2, p = 1: OWASP's recommended argon2id configuration.
    let params = Params::new(19_456, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Verified against when the username is unknown, so a miss costs what a hit costs.
pub const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$Kl1QHxuhVDzMYsnt0Wo3F4+YM9T3HVFr+oVk8pFxQPo";

/// Hashes a new password (PHC string).
pub fn hash(password: &str) -> Result<String, PasswordError> {
    if password.is_empty() {
        return Err(PasswordError::Empty);
    }
    if password.len() > 1024 {
        return Err(PasswordError::TooLong);
    }
    let salt = SaltString::generate(&mut OsRng);
    argon2id()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// What kind of stored hash this is, if any poolgate can verify.
#[derive(Debug, PartialEq, Eq)]
pub enum HashKind {
    Argon2,
    Bcrypt,
}

/// Recognises a pre-hashed password for import.
pub fn kind_of(stored: &str) -> Option<HashKind> {
    if stored.starts_with("$argon2") && PasswordHash::new(stored).is_ok() {
        return Some(HashKind::Argon2);
    }
    let bcrypt_prefix = ["$2a$", "$2b$", "$2y$"].iter().any(|p| stored.starts_with(p));
    if bcrypt_prefix && stored.len() == 60 {
        return Some(HashKind::Bcrypt);
    }
    None
}

/// Checks a password against a stored hash of either kind. Unknown hashes never verify.
pub fn verify(password: &str, stored: &str) -> bool {
    match kind_of(stored) {
        Some(HashKind::Argon2) => {
            PasswordHash::new(stored).is_ok_and(|h| argon2id().verify_password(password.as_bytes(), &h).is_ok())
        }
        Some(HashKind::Bcrypt) => bcrypt::verify(password, stored).unwrap_or(false),
        None => false,
    }
}

/// Whether a stored hash should be replaced by a fresh argon2id one at the next sign-in.
pub fn needs_rehash(stored: &str) -> bool {
    kind_of(stored) != Some(HashKind::Argon2) || !stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2id_with_owasp_parameters() {
        let h = hash("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify("correct horse", &h));
        assert!(!verify("correct horse!", &h));
        assert!(!needs_rehash(&h));
    }

    #[test]
    fn imported_bcrypt_hashes_verify_and_ask_for_rehash() {
        let b = bcrypt::hash("hunter2", 4).unwrap();
        assert_eq!(kind_of(&b), Some(HashKind::Bcrypt));
        assert!(verify("hunter2", &b));
        assert!(!verify("hunter3", &b));
        assert!(needs_rehash(&b));
        assert_eq!(kind_of("$2b$10$short"), None);
        assert!(!verify("x", "plain-text-password"));
    }
}
