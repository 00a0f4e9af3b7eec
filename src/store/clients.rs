//! What the OP keeps for clients and their grants: client secrets (hashes only, rotated
//! with an overlap) and refresh tokens (hashes only, rotated on every use, in families a
//! replay revokes).

use sqlx::Row;

use super::signin::sha256_hex;
use super::{Result, Store};

/// How long a secret replaced by a new one keeps working, so a client can be redeployed
/// with its new secret without an outage.
pub const SECRET_OVERLAP_SECS: i64 = 24 * 3600;

/// A refresh token as stored: what it grants (a JSON body the OP defines) and its family.
#[derive(Debug, Clone)]
pub struct RefreshRecord {
    pub family: String,
    pub client_id: String,
    pub body: String,
    pub sso_sid: String,
    pub offline: bool,
    pub expires_at: i64,
}

/// What presenting a refresh token found.
#[derive(Debug)]
pub enum RefreshUse {
    /// Its first use: spent now; what it granted.
    Fresh(RefreshRecord),
    /// Spent before (a replay, or a thief racing the client): its family is now revoked.
    Replayed { family: String, client_id: String },
    /// Unknown, expired, or revoked.
    Unknown,
}

impl Store {
    /// Adds a secret for a client; its other secrets end after the overlap.
    pub async fn add_client_secret(&self, pool: &str, client: &str, secret: &str) -> Result<()> {
        let now = self.now();
        let mut tx = self.begin().await?;
        sqlx::query(
            "UPDATE client_secrets SET expires_at = $1 WHERE pool_id = $2 AND client_id = $3 \
             AND (expires_at IS NULL OR expires_at > $1)",
        )
        .bind(now + SECRET_OVERLAP_SECS)
        .bind(pool)
        .bind(client)
        .execute(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO client_secrets (pool_id, client_id, hash, created_at, expires_at) VALUES ($1, $2, $3, $4, NULL)")
            .bind(pool)
            .bind(client)
            .bind(secret_hash(pool, client, secret))
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Whether `secret` is a live secret of the client.
    /// Whether `secret` is one of the client's live secrets: `Some(until)` (the time it
    /// ends, `None` for never) when it is.
    pub async fn client_secret_valid(&self, pool: &str, client: &str, secret: &str) -> Result<Option<Option<i64>>> {
        let row = sqlx::query(
            "SELECT expires_at FROM client_secrets WHERE pool_id = $1 AND client_id = $2 AND hash = $3 \
             AND (expires_at IS NULL OR expires_at > $4)",
        )
        .bind(pool)
        .bind(client)
        .bind(secret_hash(pool, client, secret))
        .bind(self.now())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok(r.try_get::<Option<i64>, _>("expires_at")?)).transpose()
    }

    /// Stores a new refresh token of `family`.
    pub async fn put_refresh(&self, pool: &str, token: &str, r: &RefreshRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO refresh_tokens (hash, pool_id, family, client_id, body, sso_sid, offline, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(sha256_hex(&[pool.as_bytes(), token.as_bytes()]))
        .bind(pool)
        .bind(&r.family)
        .bind(&r.client_id)
        .bind(&r.body)
        .bind(&r.sso_sid)
        .bind(i32::from(r.offline))
        .bind(r.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Spends a refresh token in one statement (two concurrent uses: one wins). A spent
    /// token presented again revokes its whole family.
    pub async fn take_refresh(&self, pool: &str, token: &str) -> Result<RefreshUse> {
        let hash = sha256_hex(&[pool.as_bytes(), token.as_bytes()]);
        let now = self.now();
        let row = sqlx::query(
            "UPDATE refresh_tokens SET used_at = $1 WHERE hash = $2 AND pool_id = $3 AND used_at IS NULL \
             AND revoked = 0 AND expires_at > $1 \
             RETURNING family, client_id, body, sso_sid, offline, expires_at",
        )
        .bind(now)
        .bind(&hash)
        .bind(pool)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(r) = row {
            return Ok(RefreshUse::Fresh(refresh_row(&r)?));
        }
        let spent = sqlx::query(
            "SELECT family, client_id FROM refresh_tokens WHERE hash = $1 AND pool_id = $2 AND used_at IS NOT NULL",
        )
        .bind(&hash)
        .bind(pool)
        .fetch_optional(&self.pool)
        .await?;
        match spent {
            Some(r) => {
                let family: String = r.try_get("family")?;
                self.revoke_refresh_family(pool, &family).await?;
                Ok(RefreshUse::Replayed {
                    family,
                    client_id: r.try_get("client_id")?,
                })
            }
            None => Ok(RefreshUse::Unknown),
        }
    }

    /// A refresh token's record without spending it (revocation, introspection).
    pub async fn find_refresh(&self, pool: &str, token: &str) -> Result<Option<RefreshRecord>> {
        let row = sqlx::query(
            "SELECT family, client_id, body, sso_sid, offline, expires_at FROM refresh_tokens \
             WHERE hash = $1 AND pool_id = $2 AND used_at IS NULL AND revoked = 0 AND expires_at > $3",
        )
        .bind(sha256_hex(&[pool.as_bytes(), token.as_bytes()]))
        .bind(pool)
        .bind(self.now())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| refresh_row(&r)).transpose()
    }

    pub async fn revoke_refresh_family(&self, pool: &str, family: &str) -> Result<()> {
        sqlx::query("UPDATE refresh_tokens SET revoked = 1 WHERE pool_id = $1 AND family = $2")
            .bind(pool)
            .bind(family)
            .execute(&self.pool)
            .await?;
        // Announced like any revocation, and so on disk when this returns.
        self.bump("revocations").await.map(drop)
    }

    /// Forgets refresh tokens that expired before `before`.
    pub async fn prune_refresh(&self, before: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM refresh_tokens WHERE expires_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}

fn refresh_row(r: &sqlx::any::AnyRow) -> Result<RefreshRecord> {
    let offline: i32 = r.try_get("offline")?;
    Ok(RefreshRecord {
        family: r.try_get("family")?,
        client_id: r.try_get("client_id")?,
        body: r.try_get("body")?,
        sso_sid: r.try_get("sso_sid")?,
        offline: offline != 0,
        expires_at: r.try_get("expires_at")?,
    })
}

/// Secrets are 32 random bytes: a hash bound to pool and client is enough (no slow hash
/// is needed for a value nobody chose).
fn secret_hash(pool: &str, client: &str, secret: &str) -> String {
    sha256_hex(&[pool.as_bytes(), client.as_bytes(), secret.as_bytes()])
}
