//! Pools as the store knows them, and the pools, apps and sources created at run time.
//!
//! A run-time object is kept as a fragment of config file (`[pools.x.apps.y] …`): the
//! registry lowers the file and the fragments together, so an object made through the API
//! passes exactly the validation a file does and lives in the same model.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Result, Store, StoreError, finish, flag, found};
use crate::config::{Plan, Pool};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PoolRecord {
    pub id: String,
    pub name: String,
    pub plan: Plan,
    /// Declared in the config file: read-only through the API.
    pub config_managed: bool,
    pub created_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FragmentKind {
    Pool,
    App,
    Source,
    Client,
}

impl FragmentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FragmentKind::Pool => "pool",
            FragmentKind::App => "app",
            FragmentKind::Source => "source",
            FragmentKind::Client => "client",
        }
    }

    fn parse(s: &str) -> Option<FragmentKind> {
        [
            FragmentKind::Pool,
            FragmentKind::App,
            FragmentKind::Source,
            FragmentKind::Client,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// One run-time object as config text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fragment {
    pub pool_id: String,
    pub kind: FragmentKind,
    pub id: String,
    pub body: String,
}

fn pool_record(row: &AnyRow) -> Result<PoolRecord> {
    let plan: String = row.try_get("plan")?;
    Ok(PoolRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        plan: Plan::parse(&plan).unwrap_or(Plan::Free),
        config_managed: flag(row, "config_managed")?,
        created_at: row.try_get("created_at")?,
    })
}

impl Store {
    /// Upserts the config file's pools, marking them config-managed. Only pools that
    /// differ from their stored record are written, so a reload of a file with many pools
    /// costs one read when nothing changed.
    pub async fn sync_config_pools(&self, pools: &[Pool]) -> Result<()> {
        let stored: std::collections::HashMap<String, PoolRecord> =
            self.pools().await?.into_iter().map(|p| (p.id.clone(), p)).collect();
        let changed: Vec<&Pool> = pools
            .iter()
            .filter(|p| {
                stored
                    .get(p.id.as_str())
                    .is_none_or(|s| s.name != p.name || s.plan != p.plan || !s.config_managed)
            })
            .collect();
        if changed.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        for p in changed {
            sqlx::query(
                "INSERT INTO pools (id, name, plan, config_managed, created_at) VALUES ($1, $2, $3, 1, $4) \
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name, plan = excluded.plan, config_managed = 1",
            )
            .bind(p.id.as_str())
            .bind(&p.name)
            .bind(p.plan.as_str())
            .bind(self.now())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn pools(&self) -> Result<Vec<PoolRecord>> {
        let rows = sqlx::query("SELECT * FROM pools ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(pool_record).collect()
    }

    pub async fn pool(&self, id: &str) -> Result<PoolRecord> {
        let row = sqlx::query("SELECT * FROM pools WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        pool_record(&row)
    }

    pub async fn fragments(&self) -> Result<Vec<Fragment>> {
        let rows = sqlx::query("SELECT pool_id, kind, id, body FROM fragments ORDER BY created_at, pool_id, kind, id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let kind: String = r.try_get("kind")?;
                Ok(Fragment {
                    pool_id: r.try_get("pool_id")?,
                    kind: FragmentKind::parse(&kind)
                        .ok_or_else(|| StoreError::Invalid(format!("unknown fragment kind {kind}")))?,
                    id: r.try_get("id")?,
                    body: r.try_get("body")?,
                })
            })
            .collect()
    }

    /// Stores a run-time object; a pool also gets its pool record. Both or neither.
    pub async fn put_fragment(&self, fragment: &Fragment, pool: Option<(&str, Plan)>) -> Result<()> {
        let mut tx = self.begin().await?;
        let outcome = async {
            if let Some((name, plan)) = pool {
                sqlx::query(
                    "INSERT INTO pools (id, name, plan, config_managed, created_at) VALUES ($1, $2, $3, 0, $4)",
                )
                .bind(&fragment.pool_id)
                .bind(name)
                .bind(plan.as_str())
                .bind(self.now())
                .execute(&mut *tx)
                .await
                .map_err(|e| super::conflict(e, format!("pool `{}` already exists", fragment.pool_id)))?;
            }
            sqlx::query("INSERT INTO fragments (pool_id, kind, id, body, created_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(&fragment.pool_id)
                .bind(fragment.kind.as_str())
                .bind(&fragment.id)
                .bind(&fragment.body)
                .bind(self.now())
                .execute(&mut *tx)
                .await
                .map_err(|e| {
                    super::conflict(
                        e,
                        format!("{} `{}` already exists", fragment.kind.as_str(), fragment.id),
                    )
                })?;
            Ok(())
        }
        .await;
        finish(tx, outcome).await?;
        self.bump("routes").await?;
        Ok(())
    }

    /// Changes a run-time object's config text; the text it had is returned, to put back
    /// if the gateway then refuses the change.
    pub async fn replace_fragment(&self, fragment: &Fragment) -> Result<String> {
        let mut tx = self.begin().await?;
        let outcome = async {
            let previous: String =
                sqlx::query("SELECT body FROM fragments WHERE pool_id = $1 AND kind = $2 AND id = $3")
                    .bind(&fragment.pool_id)
                    .bind(fragment.kind.as_str())
                    .bind(&fragment.id)
                    .fetch_optional(&mut *tx)
                    .await?
                    .ok_or(StoreError::NotFound)?
                    .try_get("body")?;
            sqlx::query("UPDATE fragments SET body = $1 WHERE pool_id = $2 AND kind = $3 AND id = $4")
                .bind(&fragment.body)
                .bind(&fragment.pool_id)
                .bind(fragment.kind.as_str())
                .bind(&fragment.id)
                .execute(&mut *tx)
                .await?;
            Ok(previous)
        }
        .await;
        let previous = finish(tx, outcome).await?;
        self.bump("routes").await?;
        Ok(previous)
    }

    /// Deletes a run-time object. Deleting a pool takes its apps and sources with it, and
    /// is refused while it still has users.
    pub async fn delete_fragment(&self, pool_id: &str, kind: FragmentKind, id: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        let outcome = async {
            if kind == FragmentKind::Pool {
                let users: i64 = sqlx::query("SELECT COUNT(*) AS n FROM users WHERE pool_id = $1")
                    .bind(pool_id)
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get("n")?;
                if users > 0 {
                    return Err(StoreError::Conflict(format!(
                        "pool `{pool_id}` still has {users} users; delete them first"
                    )));
                }
                sqlx::query("DELETE FROM fragments WHERE pool_id = $1 AND kind <> 'pool'")
                    .bind(pool_id)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("DELETE FROM pools WHERE id = $1 AND config_managed = 0")
                    .bind(pool_id)
                    .execute(&mut *tx)
                    .await?;
            }
            let done = sqlx::query("DELETE FROM fragments WHERE pool_id = $1 AND kind = $2 AND id = $3")
                .bind(pool_id)
                .bind(kind.as_str())
                .bind(id)
                .execute(&mut *tx)
                .await?;
            found(&done)
        }
        .await;
        finish(tx, outcome).await?;
        self.bump("routes").await?;
        Ok(())
    }
}
