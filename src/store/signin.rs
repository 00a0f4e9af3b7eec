//! What sign-in writes: failure counts and lockouts, TOTP secrets (sealed) with their
//! replay guard, recovery codes (hashed), and single-use authorization codes.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::digest::{SHA256, digest};
use sqlx::Row;

use super::{Result, Store, StoreError};
use crate::crypto::{MasterKey, Sealer};

pub(super) fn sha256_hex(parts: &[&[u8]]) -> String {
    let mut buf = Vec::new();
    for p in parts {
        buf.extend_from_slice(p);
        buf.push(0);
    }
    digest(&SHA256, &buf)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn totp_sealer(master: &MasterKey, pool: &str) -> Sealer {
    Sealer::new(master, "totp", pool)
}

impl Store {
    /// Counts a failed sign-in; at `attempts` failures the user is locked for `lock_secs`.
    /// Returns whether the user is now locked.
    pub async fn record_login_failure(&self, pool: &str, user_id: &str, attempts: i64, lock_secs: i64) -> Result<bool> {
        let now = self.now();
        // One statement counts the failure and reads the count: concurrent failures each
        // see their own count, and no read-then-write transaction contends for a lock.
        let row = sqlx::query(
            "UPDATE users SET failed_logins = failed_logins + 1 WHERE pool_id = $1 AND id = $2 RETURNING failed_logins",
        )
        .bind(pool)
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        let failures: i64 = row.try_get("failed_logins")?;
        if failures >= attempts {
            sqlx::query("UPDATE users SET locked_until = $1, failed_logins = 0 WHERE pool_id = $2 AND id = $3")
                .bind(now + lock_secs)
                .bind(pool)
                .bind(user_id)
                .execute(&self.pool)
                .await?;
            return Ok(true);
        }
        Ok(false)
    }

    pub async fn record_login_success(&self, pool: &str, user_id: &str) -> Result<()> {
        sqlx::query("UPDATE users SET failed_logins = 0, locked_until = NULL WHERE pool_id = $1 AND id = $2")
            .bind(pool)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Stores a TOTP secret, sealed under the pool's key with the user id bound to it.
    pub async fn set_totp_secret(&self, pool: &str, user_id: &str, secret: &[u8], master: &MasterKey) -> Result<()> {
        let sealed = totp_sealer(master, pool)
            .seal(secret, user_id.as_bytes())
            .map_err(|e| StoreError::Crypto(e.to_string()))?;
        sqlx::query(
            "UPDATE users SET totp_secret = $1, totp_last_step = 0, updated_at = $2 WHERE pool_id = $3 AND id = $4",
        )
        .bind(STANDARD.encode(sealed))
        .bind(self.now())
        .bind(pool)
        .bind(user_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The user's TOTP secret and the last time step a code was accepted for.
    pub async fn totp_secret(&self, pool: &str, user_id: &str, master: &MasterKey) -> Result<Option<(Vec<u8>, i64)>> {
        let row = sqlx::query("SELECT totp_secret, totp_last_step FROM users WHERE pool_id = $1 AND id = $2")
            .bind(pool)
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        let Some(sealed): Option<String> = row.try_get("totp_secret")? else {
            return Ok(None);
        };
        let sealed = STANDARD.decode(sealed).map_err(|e| StoreError::Crypto(e.to_string()))?;
        let secret = totp_sealer(master, pool)
            .open(&sealed, user_id.as_bytes())
            .map_err(|e| StoreError::Crypto(e.to_string()))?;
        Ok(Some((secret, row.try_get("totp_last_step")?)))
    }

    /// Records an accepted TOTP step; false if it (or a later one) was already used.
    pub async fn use_totp_step(&self, pool: &str, user_id: &str, step: i64) -> Result<bool> {
        let done =
            sqlx::query("UPDATE users SET totp_last_step = $1 WHERE pool_id = $2 AND id = $3 AND totp_last_step < $4")
                .bind(step)
                .bind(pool)
                .bind(user_id)
                .bind(step)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Replaces the user's recovery codes.
    pub async fn set_recovery_codes(&self, pool: &str, user_id: &str, codes: &[String]) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM recovery_codes WHERE pool_id = $1 AND user_id = $2")
            .bind(pool)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        for code in codes {
            sqlx::query("INSERT INTO recovery_codes (pool_id, user_id, code_hash) VALUES ($1, $2, $3)")
                .bind(pool)
                .bind(user_id)
                .bind(sha256_hex(&[user_id.as_bytes(), code.as_bytes()]))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Spends a recovery code; true if it was valid and unused.
    pub async fn use_recovery_code(&self, pool: &str, user_id: &str, code: &str) -> Result<bool> {
        let normalized: String = code
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        let done = sqlx::query("UPDATE recovery_codes SET used_at = $1 WHERE pool_id = $2 AND user_id = $3 AND code_hash = $4 AND used_at IS NULL")
            .bind(self.now())
            .bind(pool)
            .bind(user_id)
            .bind(sha256_hex(&[user_id.as_bytes(), normalized.as_bytes()]))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Stores an authorization code (by hash) with what it grants, until `expires_at`.
    pub async fn put_code(&self, pool: &str, code: &str, body: &str, expires_at: i64) -> Result<()> {
        sqlx::query("INSERT INTO oidc_codes (code_hash, pool_id, body, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(sha256_hex(&[code.as_bytes()]))
            .bind(pool)
            .bind(body)
            .bind(expires_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Presents a code. The first presenter marks it used, names the session its tokens
    /// will belong to (`grant_sid`) and reads what it grants, in one statement: there is
    /// no read-then-write for concurrent redemptions to contend over.
    pub async fn take_code(&self, pool: &str, code: &str, grant_sid: &str) -> Result<CodeUse> {
        let hash = sha256_hex(&[code.as_bytes()]);
        let now = self.now();
        let row = sqlx::query(
            "UPDATE oidc_codes SET used_at = $1, grant_sid = $2 \
             WHERE code_hash = $3 AND pool_id = $4 AND used_at IS NULL AND expires_at > $5 RETURNING body",
        )
        .bind(now)
        .bind(grant_sid)
        .bind(&hash)
        .bind(pool)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(row) = row {
            return Ok(CodeUse::Redeemed(row.try_get("body")?));
        }
        let used = sqlx::query(
            "SELECT grant_sid FROM oidc_codes WHERE code_hash = $1 AND pool_id = $2 AND used_at IS NOT NULL",
        )
        .bind(&hash)
        .bind(pool)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match used {
            Some(r) => CodeUse::Replayed(r.try_get("grant_sid")?),
            None => CodeUse::Unknown,
        })
    }

    /// Forgets codes that expired before `before`. Used codes are kept until then, so a
    /// replay is recognised as one.
    pub async fn prune_codes(&self, before: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM oidc_codes WHERE expires_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}

/// What presenting an authorization code found.
#[derive(Debug, PartialEq, Eq)]
pub enum CodeUse {
    /// The first use: what the code grants.
    Redeemed(String),
    /// A code used before, with the session its first redemption's tokens belong to.
    Replayed(Option<String>),
    /// No such code, or it expired unused.
    Unknown,
}
