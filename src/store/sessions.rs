//! SSO sessions (a person signed in at a pool's portal) and the app sessions derived from
//! them. Revoking an SSO session revokes every app session made from it; other nodes learn
//! of revocations by polling the `revocations` generation.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Page, Result, Store, StoreError, finish, found};

/// Who the person of an SSO session is at the identity source it came through.
#[derive(Debug, Clone, Copy, Default)]
pub struct UpstreamRef<'a> {
    pub issuer: Option<&'a str>,
    pub subject: Option<&'a str>,
    pub sid: Option<&'a str>,
    pub id_token: Option<&'a str>,
    /// The sign-in attempt's `state` and when it expires, spent in the commit that opens
    /// the session: a replay opens nothing (`Conflict`).
    pub spend_state: Option<(&'a str, i64)>,
}

/// What a sign-in commits with its SSO session.
#[derive(Debug, Default)]
pub struct SsoExtras<'a> {
    pub upstream: Option<UpstreamRef<'a>>,
    pub audit: Option<super::NewAuditEvent>,
    pub code: Option<NewCode<'a>>,
}

/// An authorization code to store (by hash) with what it grants.
#[derive(Debug, Clone, Copy)]
pub struct NewCode<'a> {
    pub code: &'a str,
    pub body: &'a str,
    pub expires_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SsoSessionRecord {
    pub id: String,
    pub user_id: String,
    pub auth_time: i64,
    pub methods: Vec<String>,
    pub source: String,
    pub client: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AppSessionRecord {
    pub id: String,
    pub app: String,
    pub sso_id: String,
    pub user_id: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
}

/// Revokes every live session (SSO and app) of one user: `$1` now, `$2` pool, `$3` user.
pub(super) const REVOKE_USER_SESSIONS: [&str; 2] = [
    "UPDATE sso_sessions SET revoked_at = $1 WHERE pool_id = $2 AND user_id = $3 AND revoked_at IS NULL",
    "UPDATE app_sessions SET revoked_at = $1 WHERE pool_id = $2 AND user_id = $3 AND revoked_at IS NULL",
];

fn sso_row(r: &AnyRow) -> Result<SsoSessionRecord> {
    let methods: String = r.try_get("methods")?;
    Ok(SsoSessionRecord {
        id: r.try_get("id")?,
        user_id: r.try_get("user_id")?,
        auth_time: r.try_get("auth_time")?,
        methods: methods
            .split(' ')
            .filter(|m| !m.is_empty())
            .map(str::to_owned)
            .collect(),
        source: r.try_get("source")?,
        client: r.try_get("client")?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
        revoked_at: r.try_get("revoked_at")?,
    })
}

impl Store {
    #[allow(clippy::too_many_arguments)]
    /// An SSO session and what its sign-in commits with it: the person's identity at the
    /// source it came through (its attempt's `state` spent first: a replay opens nothing,
    /// `Conflict`), the sign-in's audit line, and the authorization code for the app that
    /// asked. One commit.
    #[allow(clippy::too_many_arguments)]
    pub async fn create_sso_session(
        &self,
        pool: &str,
        id: &str,
        user_id: &str,
        methods: &[&str],
        source: &str,
        client: &str,
        expires_at: i64,
        with: SsoExtras<'_>,
    ) -> Result<()> {
        let now = self.now();
        let up = with.upstream.unwrap_or_default();
        let mut tx = self.begin().await?;
        let outcome = async {
            if let Some((state, state_expires)) = up.spend_state {
                let spent = sqlx::query(
                    "INSERT INTO spent (pool_id, kind, id, expires_at) VALUES ($1, 'federation-state', $2, $3) \
                     ON CONFLICT DO NOTHING",
                )
                .bind(pool)
                .bind(state)
                .bind(state_expires)
                .execute(&mut *tx)
                .await?;
                if spent.rows_affected() != 1 {
                    return Err(StoreError::Conflict("this sign-in was already used".into()));
                }
            }
            sqlx::query(
                "INSERT INTO sso_sessions (pool_id, id, user_id, auth_time, methods, source, client, created_at, expires_at, \
                 upstream_iss, upstream_sub, upstream_sid, upstream_id_token) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            )
            .bind(pool)
            .bind(id)
            .bind(user_id)
            .bind(now)
            .bind(methods.join(" "))
            .bind(source)
            .bind(client)
            .bind(now)
            .bind(expires_at)
            .bind(up.issuer)
            .bind(up.subject)
            .bind(up.sid)
            .bind(up.id_token)
            .execute(&mut *tx)
            .await?;
            if let Some(event) = with.audit {
                self.insert_audit(&mut tx, event).await?;
            }
            if let Some(code) = with.code {
                sqlx::query("INSERT INTO oidc_codes (code_hash, pool_id, body, expires_at) VALUES ($1, $2, $3, $4)")
                    .bind(super::signin::sha256_hex(&[code.code.as_bytes()]))
                    .bind(pool)
                    .bind(code.body)
                    .bind(code.expires_at)
                    .execute(&mut *tx)
                    .await?;
            }
            Ok(())
        }
        .await;
        finish(tx, outcome).await
    }

    /// An app session (a cookie's, or a grant's tokens'); `notify_logout`: its client is to
    /// be told by back-channel logout when it ends.
    #[allow(clippy::too_many_arguments)]
    pub async fn create_app_session(
        &self,
        pool: &str,
        id: &str,
        app: &str,
        sso_id: &str,
        user_id: &str,
        expires_at: i64,
        notify_logout: bool,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO app_sessions (pool_id, id, app_id, sso_id, user_id, created_at, expires_at, logout_state) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(pool)
        .bind(id)
        .bind(app)
        .bind(sso_id)
        .bind(user_id)
        .bind(self.now())
        .bind(expires_at)
        .bind(if notify_logout { 0 } else { 2 })
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records the methods an SSO session has been authenticated with (after a step-up).
    pub async fn set_sso_methods(&self, pool: &str, id: &str, methods: &[&str]) -> Result<()> {
        sqlx::query("UPDATE sso_sessions SET methods = $1 WHERE pool_id = $2 AND id = $3")
            .bind(methods.join(" "))
            .bind(pool)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Live (unrevoked, unexpired) SSO sessions of a pool, newest first.
    pub async fn sso_sessions(&self, pool: &str, page: Page) -> Result<Vec<SsoSessionRecord>> {
        let (limit, offset) = page.clamped();
        let rows = sqlx::query(
            "SELECT * FROM sso_sessions WHERE pool_id = $1 AND revoked_at IS NULL AND expires_at > $2 \
             ORDER BY created_at DESC, id LIMIT $3 OFFSET $4",
        )
        .bind(pool)
        .bind(self.now())
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(sso_row).collect()
    }

    pub async fn sso_session(&self, pool: &str, id: &str) -> Result<SsoSessionRecord> {
        let row = sqlx::query("SELECT * FROM sso_sessions WHERE pool_id = $1 AND id = $2")
            .bind(pool)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        sso_row(&row)
    }

    pub async fn app_sessions_of(&self, pool: &str, sso_id: &str) -> Result<Vec<AppSessionRecord>> {
        let rows = sqlx::query("SELECT * FROM app_sessions WHERE pool_id = $1 AND sso_id = $2 ORDER BY created_at")
            .bind(pool)
            .bind(sso_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(AppSessionRecord {
                    id: r.try_get("id")?,
                    app: r.try_get("app_id")?,
                    sso_id: r.try_get("sso_id")?,
                    user_id: r.try_get("user_id")?,
                    created_at: r.try_get("created_at")?,
                    expires_at: r.try_get("expires_at")?,
                    revoked_at: r.try_get("revoked_at")?,
                })
            })
            .collect()
    }

    /// Revokes an SSO session and every app session derived from it.
    pub async fn revoke_sso_session(&self, pool: &str, id: &str) -> Result<()> {
        let now = self.now();
        let mut tx = self.begin().await?;
        let outcome = async {
            let done = sqlx::query(
                "UPDATE sso_sessions SET revoked_at = $1 WHERE pool_id = $2 AND id = $3 AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(pool)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            found(&done)?;
            sqlx::query(
                "UPDATE app_sessions SET revoked_at = $1 WHERE pool_id = $2 AND sso_id = $3 AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(pool)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            Ok(())
        }
        .await;
        finish(tx, outcome).await?;
        self.bump("revocations").await?;
        Ok(())
    }

    /// Revokes one app session (the tokens of a replayed code's first redemption, say).
    pub async fn revoke_app_session(&self, pool: &str, id: &str) -> Result<()> {
        let done = sqlx::query(
            "UPDATE app_sessions SET revoked_at = $1 WHERE pool_id = $2 AND id = $3 AND revoked_at IS NULL",
        )
        .bind(self.now())
        .bind(pool)
        .bind(id)
        .execute(&self.pool)
        .await?;
        found(&done)?;
        self.bump("revocations").await?;
        Ok(())
    }

    /// Revokes every live session of a user: after a password change, say.
    pub(super) async fn revoke_user_sessions(&self, pool: &str, user_id: &str) -> Result<()> {
        let now = self.now();
        for sql in REVOKE_USER_SESSIONS {
            sqlx::query(sql)
                .bind(now)
                .bind(pool)
                .bind(user_id)
                .execute(&self.pool)
                .await?;
        }
        self.bump("revocations").await?;
        Ok(())
    }

    /// SSO and app sessions revoked at or after `since` and not yet expired, as
    /// `(pool, id, expires_at)`: what a node's revocation cache needs.
    pub async fn revoked_since(&self, since: i64) -> Result<Vec<(String, String, i64)>> {
        let mut out = Vec::new();
        for table in ["sso_sessions", "app_sessions"] {
            let sql = format!("SELECT pool_id, id, expires_at FROM {table} WHERE revoked_at >= $1 AND expires_at > $2");
            let rows = sqlx::query(&sql)
                .bind(since)
                .bind(self.now())
                .fetch_all(&self.pool)
                .await?;
            for r in rows {
                out.push((r.try_get("pool_id")?, r.try_get("id")?, r.try_get("expires_at")?));
            }
        }
        Ok(out)
    }

    /// Forgets sessions that ended (expired) before `before`, but not an app session whose
    /// client is still to be told it was revoked (back-channel logout). An expired session
    /// needs no revocation (its cookie or tokens end with it), so nothing is lost: without
    /// this, every sign-in ever made stayed in the store. Returns how many went.
    pub async fn prune_sessions(&self, before: i64) -> Result<u64> {
        let apps = sqlx::query(
            "DELETE FROM app_sessions WHERE expires_at < $1 \
             AND NOT (logout_state = 0 AND revoked_at IS NOT NULL)",
        )
        .bind(before)
        .execute(&self.pool)
        .await?;
        let ssos = sqlx::query("DELETE FROM sso_sessions WHERE expires_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await?;
        let spent = sqlx::query("DELETE FROM spent WHERE expires_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(apps.rows_affected() + ssos.rows_affected() + spent.rows_affected())
    }

    /// Revoked app sessions whose client is still to be told (back-channel logout), due
    /// now: `(pool, id, client, sso, user, attempts)`.
    pub async fn pending_logouts(&self, limit: i64) -> Result<Vec<PendingLogout>> {
        let rows = sqlx::query(
            "SELECT pool_id, id, app_id, sso_id, user_id, logout_attempts FROM app_sessions \
             WHERE logout_state = 0 AND revoked_at IS NOT NULL AND logout_next_at <= $1 LIMIT $2",
        )
        .bind(self.now())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(PendingLogout {
                    pool: r.try_get("pool_id")?,
                    id: r.try_get("id")?,
                    client: r.try_get("app_id")?,
                    sso: r.try_get("sso_id")?,
                    user: r.try_get("user_id")?,
                    attempts: r.try_get("logout_attempts")?,
                })
            })
            .collect()
    }

    /// Claims one delivery attempt (of several nodes, one wins) and schedules the next
    /// one `retry_in` seconds on, should this one fail.
    pub async fn claim_logout(&self, p: &PendingLogout, retry_in: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE app_sessions SET logout_attempts = logout_attempts + 1, logout_next_at = $1 \
             WHERE pool_id = $2 AND id = $3 AND logout_state = 0 AND logout_attempts = $4",
        )
        .bind(self.now() + retry_in)
        .bind(&p.pool)
        .bind(&p.id)
        .bind(p.attempts)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// No more attempts: delivered, given up, or nothing to deliver to.
    pub async fn finish_logout(&self, pool: &str, id: &str) -> Result<()> {
        sqlx::query("UPDATE app_sessions SET logout_state = 2 WHERE pool_id = $1 AND id = $2")
            .bind(pool)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// A back-channel logout still to deliver.
#[derive(Debug, Clone)]
pub struct PendingLogout {
    pub pool: String,
    pub id: String,
    pub client: String,
    pub sso: String,
    pub user: String,
    pub attempts: i32,
}
