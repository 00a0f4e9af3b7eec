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

/// Which audit events to list: all of them, or those of one action, one actor, a time
/// span (Unix seconds, `since` inclusive, `until` exclusive).
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct AuditFilter {
    pub action: Option<String>,
    pub actor: Option<String>,
    pub since: Option<i64>,
    pub until: Option<i64>,
}

/// The most one field of an audit row holds, in bytes: what a client sends (a username
/// typed at the login page, say) cannot grow the log, and a page of `Page`'s largest size
/// (1,000 rows) stays under 2 MB.
const FIELD_MAX: usize = 256;
const DETAIL_MAX: usize = 1024;

/// `s` cut to at most `max` bytes, on a character boundary, marked when cut.
fn bounded(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max - '…'.len_utf8();
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

impl Store {
    pub async fn audit(&self, e: NewAuditEvent) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        self.insert_audit(&mut conn, e).await
    }

    /// Writes an event on this connection (inside a caller's transaction, say: a change
    /// and its audit line committed together).
    pub(super) async fn insert_audit(&self, conn: &mut sqlx::AnyConnection, e: NewAuditEvent) -> Result<()> {
        let e = NewAuditEvent {
            pool: e.pool,
            actor: bounded(e.actor, FIELD_MAX),
            action: bounded(e.action, FIELD_MAX),
            target: bounded(e.target, FIELD_MAX),
            outcome: bounded(e.outcome, FIELD_MAX),
            client: bounded(e.client, FIELD_MAX),
            detail: bounded(e.detail, DETAIL_MAX),
        };
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
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Newest first (ids are time-ordered UUIDv7); `pool = None` lists every pool's events
    /// and the global ones. Only those `filter` lets through.
    pub async fn audit_events(&self, pool: Option<&str>, filter: &AuditFilter, page: Page) -> Result<Vec<AuditEvent>> {
        let (limit, offset) = page.clamped();
        let mut sql = String::from("SELECT * FROM audit_events WHERE 1 = 1");
        let mut texts: Vec<&str> = Vec::new();
        let mut n = 0;
        let mut next = || {
            n += 1;
            n
        };
        for (column, value) in [
            ("pool_id", pool),
            ("action", filter.action.as_deref()),
            ("actor", filter.actor.as_deref()),
        ] {
            if let Some(v) = value.filter(|v| !v.is_empty()) {
                sql.push_str(&format!(" AND {column} = ${}", next()));
                texts.push(v);
            }
        }
        let mut numbers = Vec::new();
        if let Some(since) = filter.since {
            sql.push_str(&format!(" AND at >= ${}", next()));
            numbers.push(since);
        }
        if let Some(until) = filter.until {
            sql.push_str(&format!(" AND at < ${}", next()));
            numbers.push(until);
        }
        sql.push_str(&format!(" ORDER BY id DESC LIMIT ${} OFFSET ${}", next(), next()));
        let mut query = sqlx::query(&sql);
        for t in texts {
            query = query.bind(t);
        }
        for v in numbers.into_iter().chain([limit, offset]) {
            query = query.bind(v);
        }
        let rows = query.fetch_all(&self.pool).await?;
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

#[cfg(test)]
mod tests {
    use super::bounded;

    #[test]
    fn fields_are_cut_on_a_character_boundary() {
        assert_eq!(bounded("short".into(), 256), "short");
        let long = "é".repeat(1000);
        let cut = bounded(long, 256);
        assert!(cut.len() <= 256 && cut.ends_with('…'), "{}", cut.len());
    }
}
