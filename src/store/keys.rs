//! Pools' signing keys. Private halves are sealed under a key derived from the master key
//! for that pool (the kid as associated data) before they reach the database.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sqlx::Row;

use super::{Result, Store, StoreError};
use crate::crypto::signing::{PublicJwk, generate_es256, generate_rs256};
use crate::crypto::{MasterKey, Sealer};

/// Retired keys stay published this long, so tokens signed just before a rotation verify.
pub const RETIRED_KEY_GRACE_SECS: i64 = 24 * 3600;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KeyRecord {
    pub kid: String,
    pub alg: String,
    pub status: String,
    pub public_jwk: PublicJwk,
    pub created_at: i64,
    pub retired_at: Option<i64>,
}

fn sealer(master: &MasterKey, pool: &str) -> Sealer {
    Sealer::new(master, "signing-key", pool)
}

impl Store {
    /// Keys still published (active, or retired within the grace period): the active one first.
    pub async fn keys(&self, pool: &str) -> Result<Vec<KeyRecord>> {
        let rows = sqlx::query(
            "SELECT kid, alg, status, public_jwk, created_at, retired_at FROM signing_keys \
             WHERE pool_id = $1 AND (retired_at IS NULL OR retired_at > $2) ORDER BY CASE status WHEN 'active' THEN 0 ELSE 1 END, created_at DESC, kid",
        )
        .bind(pool)
        .bind(self.now() - RETIRED_KEY_GRACE_SECS)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let jwk: String = r.try_get("public_jwk")?;
                Ok(KeyRecord {
                    kid: r.try_get("kid")?,
                    alg: r.try_get("alg")?,
                    status: r.try_get("status")?,
                    public_jwk: serde_json::from_str(&jwk).map_err(|e| StoreError::Crypto(e.to_string()))?,
                    created_at: r.try_get("created_at")?,
                    retired_at: r.try_get("retired_at")?,
                })
            })
            .collect()
    }

    /// Every pool's published keys as (kid, active), in the order of [`Store::keys`]: one
    /// query that tells a reload which pools' keys changed.
    pub async fn published_kids(&self) -> Result<HashMap<String, Vec<(String, bool)>>> {
        let rows = sqlx::query(
            "SELECT pool_id, kid, status FROM signing_keys WHERE retired_at IS NULL OR retired_at > $1 \
             ORDER BY pool_id, CASE status WHEN 'active' THEN 0 ELSE 1 END, created_at DESC, kid",
        )
        .bind(self.now() - RETIRED_KEY_GRACE_SECS)
        .fetch_all(&self.pool)
        .await?;
        let mut kids: HashMap<String, Vec<(String, bool)>> = HashMap::new();
        for r in rows {
            let status: String = r.try_get("status")?;
            kids.entry(r.try_get("pool_id")?)
                .or_default()
                .push((r.try_get("kid")?, status == "active"));
        }
        Ok(kids)
    }

    /// Makes a new active key of each algorithm the pool signs with and retires the
    /// previous ones (they stay published for a day, longer than anything they signed
    /// lives). Returns the new ES256 key.
    pub async fn rotate_key(&self, pool: &str, master: &MasterKey) -> Result<KeyRecord> {
        if self.has_active(pool, "RS256").await? {
            self.rotate_alg(pool, master, "RS256").await?;
        }
        self.rotate_alg(pool, master, "ES256").await
    }

    async fn has_active(&self, pool: &str, alg: &str) -> Result<bool> {
        let row = sqlx::query("SELECT kid FROM signing_keys WHERE pool_id = $1 AND alg = $2 AND status = 'active'")
            .bind(pool)
            .bind(alg)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    /// The pool's RS256 key, made on first need (a client that wants RS256 ID tokens);
    /// true when it was made now.
    pub async fn ensure_rsa_key(&self, pool: &str, master: &MasterKey) -> Result<bool> {
        if self.has_active(pool, "RS256").await? {
            return Ok(false);
        }
        self.rotate_alg(pool, master, "RS256").await?;
        Ok(true)
    }

    async fn rotate_alg(&self, pool: &str, master: &MasterKey, alg: &str) -> Result<KeyRecord> {
        self.pool(pool).await?;
        let key = if alg == "RS256" {
            tokio::task::spawn_blocking(generate_rs256)
                .await
                .map_err(|e| StoreError::Crypto(e.to_string()))?
        } else {
            generate_es256()
        }
        .map_err(|e| StoreError::Crypto(e.to_string()))?;
        let sealed = sealer(master, pool)
            .seal(&key.pkcs8, key.jwk.kid.as_bytes())
            .map_err(|e| StoreError::Crypto(e.to_string()))?;
        let jwk = serde_json::to_string(&key.jwk).map_err(|e| StoreError::Crypto(e.to_string()))?;
        let now = self.now();
        let mut tx = self.begin().await?;
        sqlx::query(
            "UPDATE signing_keys SET status = 'retired', retired_at = $1 WHERE pool_id = $2 AND alg = $3 AND status = 'active'",
        )
        .bind(now)
        .bind(pool)
        .bind(alg)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO signing_keys (pool_id, kid, alg, public_jwk, sealed_private, status, created_at) VALUES ($1, $2, $3, $4, $5, 'active', $6)",
        )
        .bind(pool)
        .bind(&key.jwk.kid)
        .bind(alg)
        .bind(jwk)
        .bind(STANDARD.encode(sealed))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.bump("keys").await?;
        Ok(KeyRecord {
            kid: key.jwk.kid.clone(),
            alg: alg.into(),
            status: "active".into(),
            public_jwk: key.jwk,
            created_at: now,
            retired_at: None,
        })
    }

    /// The pool's active ES256 key, made on first use.
    pub async fn ensure_key(&self, pool: &str, master: &MasterKey) -> Result<KeyRecord> {
        match self
            .keys(pool)
            .await?
            .into_iter()
            .find(|k| k.status == "active" && k.alg == "ES256")
        {
            Some(k) => Ok(k),
            None => self.rotate_alg(pool, master, "ES256").await,
        }
    }

    /// The active key's private half of an algorithm (PKCS#8 for ES256, PKCS#1 for RS256),
    /// opened with the master key.
    pub async fn active_private_key(&self, pool: &str, master: &MasterKey, alg: &str) -> Result<(String, Vec<u8>)> {
        let row = sqlx::query(
            "SELECT kid, sealed_private FROM signing_keys WHERE pool_id = $1 AND alg = $2 AND status = 'active'",
        )
        .bind(pool)
        .bind(alg)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        let kid: String = row.try_get("kid")?;
        let sealed: String = row.try_get("sealed_private")?;
        let sealed = STANDARD.decode(sealed).map_err(|e| StoreError::Crypto(e.to_string()))?;
        let pkcs8 = sealer(master, pool).open(&sealed, kid.as_bytes()).map_err(|_| {
            StoreError::Crypto(format!(
                "the key {kid} of pool {pool} cannot be opened with this master key"
            ))
        })?;
        Ok((kid, pkcs8))
    }
}
