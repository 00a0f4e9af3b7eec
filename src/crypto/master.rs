//! The master key: 32 random bytes that never leave the process. Everything secret at rest
//! (signing keys, TOTP secrets) and every sealed cookie uses a key derived from it.

use std::fmt;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hkdf;
use ring::rand::{SecureRandom, SystemRandom};

use crate::config::MasterKeySource;

#[derive(Debug, thiserror::Error)]
pub enum MasterKeyError {
    #[error("PG0301 master key file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("PG0302 master key from {origin} is not 32 bytes of base64url")]
    Malformed { origin: String },
    #[error("PG0303 the environment variable {0} holding the master key is not set")]
    MissingEnv(String),
    #[error("PG0304 the system random generator failed")]
    Random,
}

/// 32 secret bytes. `Debug` never shows them.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl MasterKey {
    /// Loads the key. A missing key *file* is created (0600) with a fresh random key, so a
    /// first start needs no setup; a missing environment variable is an error.
    pub fn load(source: &MasterKeySource) -> Result<MasterKey, MasterKeyError> {
        match source {
            MasterKeySource::Env(var) => {
                let text =
                    std::env::var(var).map_err(|_| MasterKeyError::MissingEnv(var.clone()))?;
                Self::decode(&text).ok_or(MasterKeyError::Malformed {
                    origin: format!("${var}"),
                })
            }
            MasterKeySource::File(path) => {
                if !path.exists() {
                    Self::create_file(path)?;
                }
                let io = |source| MasterKeyError::Io {
                    path: path.display().to_string(),
                    source,
                };
                let text = std::fs::read_to_string(path).map_err(io)?;
                Self::decode(&text).ok_or(MasterKeyError::Malformed {
                    origin: path.display().to_string(),
                })
            }
        }
    }

    pub fn generate() -> Result<MasterKey, MasterKeyError> {
        let mut key = [0u8; 32];
        SystemRandom::new()
            .fill(&mut key)
            .map_err(|_| MasterKeyError::Random)?;
        Ok(MasterKey(key))
    }

    /// The key as stored: base64url, no padding.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    fn decode(text: &str) -> Option<MasterKey> {
        let bytes = URL_SAFE_NO_PAD.decode(text.trim()).ok()?;
        Some(MasterKey(bytes.try_into().ok()?))
    }

    fn create_file(path: &Path) -> Result<(), MasterKeyError> {
        let io = |source| MasterKeyError::Io {
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let key = Self::generate()?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(io)?;
        f.write_all(format!("{}\n", key.encode()).as_bytes())
            .map_err(io)?;
        tracing::warn!(code = "PG0305", path = %path.display(), "created a new master key; back it up: without it sealed keys and sessions cannot be read");
        Ok(())
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
        assert_ne!(
            k.derive("cookie", "employees"),
            k.derive("cookie", "suppliers")
        );
        assert_ne!(
            k.derive("cookie", "employees"),
            k.derive("seal", "employees")
        );
        assert_eq!(k.derive("seal", "a"), k.derive("seal", "a"));
        assert_ne!(k.derive("seal", "a"), [0u8; 32]);
        assert_eq!(format!("{k:?}"), "MasterKey(<redacted>)");
    }

    #[test]
    fn a_key_file_is_created_once_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/master.key");
        let a = MasterKey::load(&MasterKeySource::File(path.clone())).unwrap();
        let b = MasterKey::load(&MasterKeySource::File(path.clone())).unwrap();
        assert_eq!(a.0, b.0);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        std::fs::write(&path, "short").unwrap();
        assert!(matches!(
            MasterKey::load(&MasterKeySource::File(path)),
            Err(MasterKeyError::Malformed { .. })
        ));
    }
}
