//! The audit log: every admin change and every sign-in outcome — who, pool, what, when,
//! from where.

use sqlx::Row;

use super::{Page, Result, Store};

#[derive(Debug, Clone, Default)]
pub struct NewAuditEvent {
    pub pool: Option<String>,
    /// `admin-api`, `cli:<user>`, `user:<id>`…
    pub actor: String,
    /// `user.create`, `signin.failure`…
    pub action: String,
    pub target: String,
    /// `ok`, `denied`, `error`…
    pub outcome: String,
    /// The client address, or `local` for the CLI.
    pub client: String,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuditEvent {
    pub id: String,
    pub at: i64,
    pub pool: Option<String>,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
    pub client: String,
    pub detail: String,
}

impl Store {
    pub async fn audit(&self, e: NewAuditEvent) -> Result<()> {
        sqlx::query(
            "INSERT INTO audit_events (id, at, pool_id, actor, action, target, outcome, client, detail) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(self.now())
        .bind(e.pool)
        .bind(e.actor)
        .bind(e.action)
        .bind(e.target)
        .bind(e.outcome)
        .bind(e.client)
        .bind(e.detail)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Newest first (ids are time-ordered UUIDv7); `pool = None` lists every pool's events and the global ones.
    pub async fn audit_events(&self, pool: Option<&str>, page: Page) -> Result<Vec<AuditEvent>> {
        let (limit, offset) = page.clamped();
        let rows = match pool {
            Some(p) => {
                sqlx::query("SELECT * FROM audit_events WHERE pool_id = $1 ORDER BY id DESC LIMIT $2 OFFSET $3")
                    .bind(p)
                    .bind(limit)
                    .bind(offset)
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                sqlx::query("SELECT * FROM audit_events ORDER BY id DESC LIMIT $1 OFFSET $2")
                    .bind(limit)
                    .bind(offset)
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter()
            .map(|r| {
                Ok(AuditEvent {
                    id: r.try_get("id")?,
                    at: r.try_get("at")?,
                    pool: r.try_get("pool_id")?,
                    actor: r.try_get("actor")?,
                    action: r.try_get("action")?,
                    target: r.try_get("target")?,
                    outcome: r.try_get("outcome")?,
                    client: r.try_get("client")?,
                    detail: r.try_get("detail")?,
                })
            })
            .collect()
    }
}
