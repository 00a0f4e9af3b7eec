//! The master key: 32 random bytes that never leave the process. Everything secret at rest
//! (signing keys, TOTP secrets) and every sealed cookie uses a key derived from it.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hkdf;

use super::secret::{self, SecretError};
use crate::config::SecretSource;

pub type MasterKeyError = SecretError;

/// 32 secret bytes. `Debug` never shows them.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl MasterKey {
    /// Loads the key; a missing key file is created with a fresh key (back it up: without
    /// it, sealed keys and sessions cannot be read).
    pub fn load(source: &SecretSource) -> Result<MasterKey, SecretError> {
        let (text, origin) = secret::load_or_create(source, "master key; back it up")?;
        Self::decode(&text).ok_or(SecretError::Malformed { origin })
    }

    pub fn generate() -> Result<MasterKey, SecretError> {
        Self::decode(&secret::random_secret()?).ok_or(SecretError::Random)
    }

    /// The key as stored: base64url, no padding.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    fn decode(text: &str) -> Option<MasterKey> {
        let bytes = URL_SAFE_NO_PAD.decode(text.trim()).ok()?;
        Some(MasterKey(bytes.try_into().ok()?))
    }

    /// A 32-byte key for one purpose (and usually one pool): HKDF-SHA256 with the purpose
    /// as info, so keys of different pools or purposes are unrelated.
    pub fn derive(&self, purpose: &str, context: &str) -> [u8; 32] {
        let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, b"poolgate v1");
        let prk = salt.extract(&self.0);
        let info = [purpose.as_bytes(), b"\0", context.as_bytes()];
        let mut out = [0u8; 32];
        // Both calls only fail for output lengths HKDF cannot produce; 32 bytes is always fine.
        if let Ok(okm) = prk.expand(&info, Len32) {
            let _ = okm.fill(&mut out);
        }
        out
    }
}

struct Len32;

impl hkdf::KeyType for Len32 {
    fn len(&self) -> usize {
        32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_keys_differ_by_purpose_and_context() {
        let k = MasterKey::generate().unwrap();
        assert_ne!(k.derive("cookie", "employees"), k.derive("cookie", "suppliers"));
        assert_ne!(k.derive("cookie", "employees"), k.derive("seal", "employees"));
        assert_eq!(k.derive("seal", "a"), k.derive("seal", "a"));
        assert_ne!(k.derive("seal", "a"), [0u8; 32]);
        assert_eq!(format!("{k:?}"), "MasterKey(<redacted>)");
    }

    #[test]
    fn a_key_file_is_created_once_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/master.key");
        let a = MasterKey::load(&SecretSource::File(path.clone())).unwrap();
        let b = MasterKey::load(&SecretSource::File(path.clone())).unwrap();
        assert_eq!(a.0, b.0);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        std::fs::write(&path, "short").unwrap();
        assert!(matches!(
            MasterKey::load(&SecretSource::File(path)),
            Err(MasterKeyError::Malformed { .. })
        ));
    }
}
