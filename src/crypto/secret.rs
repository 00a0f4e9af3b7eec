//! Secrets read from a file or the environment. A missing *file* is created (0600) with a
//! fresh value, so a first start needs no setup; a missing environment variable is an error.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::{SecureRandom, SystemRandom};

use crate::config::SecretSource;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("PG0301 secret file {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("PG0302 the secret from {origin} is malformed")]
    Malformed { origin: String },
    #[error("PG0303 the environment variable {0} is not set")]
    MissingEnv(String),
    #[error("PG0304 the system random generator failed")]
    Random,
}

/// 32 random bytes, base64url: the form every generated secret takes.
pub fn random_secret() -> Result<String, SecretError> {
    let mut bytes = [0u8; 32];
    SystemRandom::new().fill(&mut bytes).map_err(|_| SecretError::Random)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// The secret's text (trimmed), and where it came from for messages.
pub fn load_or_create(source: &SecretSource, what: &str) -> Result<(String, String), SecretError> {
    match source {
        SecretSource::Env(var) => {
            let text = std::env::var(var).map_err(|_| SecretError::MissingEnv(var.clone()))?;
            Ok((text.trim().to_owned(), format!("${var}")))
        }
        SecretSource::File(path) => {
            if !path.exists() {
                create(path, what)?;
            }
            let text = std::fs::read_to_string(path).map_err(|source| SecretError::Io {
                path: path.display().to_string(),
                source,
            })?;
            Ok((text.trim().to_owned(), path.display().to_string()))
        }
    }
}

fn create(path: &Path, what: &str) -> Result<(), SecretError> {
    let io = |source| SecretError::Io {
        path: path.display().to_string(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let value = random_secret()?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    f.write_all(format!("{value}\n").as_bytes()).map_err(io)?;
    tracing::warn!(code = "PG0305", path = %path.display(), "created a new {what}");
    Ok(())
}
