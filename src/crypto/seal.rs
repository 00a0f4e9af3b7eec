//! Authenticated encryption (ChaCha20-Poly1305) under a derived key: what is sealed can be
//! read only with the same key and the same associated data (pool, purpose), and any change
//! to the bytes is detected.

use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

use super::MasterKey;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("sealed data is damaged or was sealed under another key")]
    Open,
    #[error("the system random generator failed")]
    Random,
}

/// Seals and opens bytes for one purpose and context.
pub struct Sealer {
    key: LessSafeKey,
    rng: SystemRandom,
}

impl Sealer {
    pub fn new(master: &MasterKey, purpose: &str, context: &str) -> Sealer {
        let bytes = master.derive(purpose, context);
        // A 32-byte key is exactly what ChaCha20-Poly1305 takes, so this cannot fail.
        let unbound = UnboundKey::new(&CHACHA20_POLY1305, &bytes).unwrap_or_else(|_| unreachable!("32-byte key"));
        Sealer {
            key: LessSafeKey::new(unbound),
            rng: SystemRandom::new(),
        }
    }

    /// `nonce ‖ ciphertext ‖ tag`. `aad` is bound to the result but not stored in it.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| SealError::Random)?;
        let mut out = Vec::with_capacity(NONCE_LEN + plaintext.len() + 16);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plaintext);
        let mut body = out.split_off(NONCE_LEN);
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut body)
            .map_err(|_| SealError::Open)?;
        out.extend_from_slice(&body);
        Ok(out)
    }

    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < NONCE_LEN + 16 {
            return Err(SealError::Open);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Open)?;
        let mut body = body.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(aad), &mut body)
            .map_err(|_| SealError::Open)?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_bytes_open_only_with_the_same_key_and_aad() {
        let master = MasterKey::generate().unwrap();
        let a = Sealer::new(&master, "seal", "employees");
        let b = Sealer::new(&master, "seal", "suppliers");
        let sealed = a.seal(b"secret", b"kid-1").unwrap();
        assert_eq!(a.open(&sealed, b"kid-1").unwrap(), b"secret");
        assert_eq!(a.open(&sealed, b"kid-2"), Err(SealError::Open));
        assert_eq!(b.open(&sealed, b"kid-1"), Err(SealError::Open));
        let mut tampered = sealed.clone();
        tampered[15] ^= 1;
        assert_eq!(a.open(&tampered, b"kid-1"), Err(SealError::Open));
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
    }
}
