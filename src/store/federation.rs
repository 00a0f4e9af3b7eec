//! What federation writes: links resolved by `(source, issuer, subject)` only, a linked
//! user created in one transaction with its link, and single-use values (a login's `state`).

use sqlx::Row;

use super::users::{NewUser, USER_COLUMNS, link_row, user_with_groups};
use super::{Link, Result, Store, StoreError, User, conflict, finish, new_id};

impl Store {
    /// The local user an upstream identity is linked to. Never by email: only the link.
    pub async fn user_by_link(&self, pool: &str, source: &str, issuer: &str, subject: &str) -> Result<Option<User>> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS}, {} AS group_list FROM users WHERE pool_id = $1 AND id = \
             (SELECT user_id FROM links WHERE pool_id = $1 AND source_id = $2 AND issuer = $3 AND subject = $4)",
            self.group_list()
        ))
        .bind(pool)
        .bind(source)
        .bind(issuer)
        .bind(subject)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(user_with_groups).transpose()
    }

    /// Links `user_id` to an upstream identity only if no identity of `source` is linked
    /// to them yet, in one step: two different upstream people with one address, arriving
    /// together, never both become the user (`link_verified_email`). `None` when the user
    /// already has a link from the source; `Conflict` when this identity is linked already.
    pub async fn link_first_of_source(
        &self,
        pool: &str,
        source: &str,
        issuer: &str,
        subject: &str,
        user_id: &str,
    ) -> Result<Option<Link>> {
        let link = self.new_link(source, issuer, subject, user_id);
        let insert = sqlx::query(
            "INSERT INTO links (pool_id, id, source_id, issuer, subject, user_id, created_at) \
             SELECT $1, $2, $3, $4, $5, $6, $7 WHERE NOT EXISTS \
             (SELECT 1 FROM links WHERE pool_id = $1 AND source_id = $3 AND user_id = $6)",
        )
        .bind(pool)
        .bind(&link.id)
        .bind(source)
        .bind(issuer)
        .bind(subject)
        .bind(user_id)
        .bind(link.created_at);
        const LINKED: &str = "this identity is already linked";
        let inserted = match self.backend {
            // One writer at a time: the statement is the check and the write.
            super::Backend::Sqlite => insert
                .execute(&self.pool)
                .await
                .map_err(|e| conflict(e, LINKED))?
                .rows_affected(),
            // Concurrent transactions would each see no link: the user's row is locked
            // first, so links to one user are made one after the other.
            super::Backend::Postgres => {
                let mut tx = self.begin().await?;
                let outcome = async {
                    sqlx::query("SELECT id FROM users WHERE pool_id = $1 AND id = $2 FOR UPDATE")
                        .bind(pool)
                        .bind(user_id)
                        .fetch_optional(&mut *tx)
                        .await?
                        .ok_or(StoreError::NotFound)?;
                    let done = insert.execute(&mut *tx).await.map_err(|e| conflict(e, LINKED))?;
                    Ok(done.rows_affected())
                }
                .await;
                finish(tx, outcome).await?
            }
        };
        Ok((inserted == 1).then_some(link))
    }

    /// A new user and its link in one transaction. When another sign-in with the same
    /// upstream identity got there first (the link's unique index), the user it made is
    /// returned and nothing of this attempt is written: two first logins make one user.
    pub async fn create_linked_user(
        &self,
        pool: &str,
        user: NewUser,
        source: &str,
        issuer: &str,
        subject: &str,
    ) -> Result<(User, bool)> {
        let mut tx = self.begin().await?;
        let outcome = async {
            let id = self.insert_user(&mut tx, pool, user).await?;
            sqlx::query(
                "INSERT INTO links (pool_id, id, source_id, issuer, subject, user_id, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(pool)
            .bind(new_id())
            .bind(source)
            .bind(issuer)
            .bind(subject)
            .bind(&id)
            .bind(self.now())
            .execute(&mut *tx)
            .await
            .map_err(|e| conflict(e, "this identity is already linked"))?;
            Ok(id)
        }
        .await;
        match finish(tx, outcome).await {
            Ok(id) => Ok((self.user(pool, &id).await?, true)),
            Err(e @ (StoreError::Conflict(_) | StoreError::Db(_))) => {
                match self.user_by_link(pool, source, issuer, subject).await? {
                    Some(u) => Ok((u, false)),
                    None => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Links an upstream identity to an existing user; `Conflict` when it is linked already.
    pub async fn link(&self, pool: &str, source: &str, issuer: &str, subject: &str, user_id: &str) -> Result<Link> {
        self.create_link(pool, source, issuer, subject, user_id).await
    }

    /// Spends a single-use value: `true` the first time, `false` for a replay.
    pub async fn spend(&self, pool: &str, kind: &str, id: &str, expires_at: i64) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO spent (pool_id, kind, id, expires_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(pool)
        .bind(kind)
        .bind(id)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

/// A live SSO session that came through a source: `(id, user, expires_at)`.
pub type UpstreamSession = (String, String, i64);

impl Store {
    /// The live SSO sessions that came from an upstream session (`sid`), or, without one,
    /// from any session of that upstream person (`sub`).
    pub async fn sso_sessions_from_upstream(
        &self,
        pool: &str,
        source: &str,
        issuer: &str,
        subject: Option<&str>,
        sid: Option<&str>,
    ) -> Result<Vec<UpstreamSession>> {
        let now = self.now();
        let rows = match sid {
            Some(sid) => {
                sqlx::query(
                    "SELECT id, user_id, expires_at FROM sso_sessions WHERE pool_id = $1 AND source = $2 \
                     AND upstream_iss = $3 AND upstream_sid = $4 AND ($5 = '' OR upstream_sub = $5) \
                     AND revoked_at IS NULL AND expires_at > $6",
                )
                .bind(pool)
                .bind(source)
                .bind(issuer)
                .bind(sid)
                .bind(subject.unwrap_or_default())
                .bind(now)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(
                    "SELECT id, user_id, expires_at FROM sso_sessions WHERE pool_id = $1 AND source = $2 \
                     AND upstream_iss = $3 AND upstream_sub = $4 AND revoked_at IS NULL AND expires_at > $5",
                )
                .bind(pool)
                .bind(source)
                .bind(issuer)
                .bind(subject.unwrap_or_default())
                .bind(now)
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("user_id")?, r.try_get("expires_at")?)))
            .collect()
    }
}

impl Store {
    /// The source's ID token an SSO session came with: the hint of a sign-out sent on to
    /// the source.
    pub async fn sso_upstream_id_token(&self, pool: &str, sso: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT upstream_id_token FROM sso_sessions WHERE pool_id = $1 AND id = $2")
            .bind(pool)
            .bind(sso)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => r.try_get("upstream_id_token")?,
            None => None,
        })
    }
}

impl Store {
    /// A user's links, oldest first.
    pub async fn links_of_user(&self, pool: &str, user_id: &str) -> Result<Vec<Link>> {
        let rows = sqlx::query("SELECT * FROM links WHERE pool_id = $1 AND user_id = $2 ORDER BY created_at, id")
            .bind(pool)
            .bind(user_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(link_row).collect()
    }

    /// Gives a link to another user of the pool (an administrator fixing a mix-up), and
    /// ends the sessions the user it leaves opened through it: returns them.
    pub async fn move_link(&self, pool: &str, id: &str, user_id: &str) -> Result<Vec<(String, i64)>> {
        self.user(pool, user_id).await?;
        let ended = self.end_sessions_through_link(pool, id).await?;
        let done = sqlx::query("UPDATE links SET user_id = $1 WHERE pool_id = $2 AND id = $3")
            .bind(user_id)
            .bind(pool)
            .bind(id)
            .execute(&self.pool)
            .await?;
        super::found(&done)?;
        Ok(ended)
    }

    /// Ends the live SSO sessions (and the app sessions they started) that the link's user
    /// opened through its upstream identity: a link removed or moved because it let the
    /// wrong person in stops letting them in now, not when those sessions expire. Returns
    /// each one's id and end, for this node's revocation cache. Run before the link
    /// changes: if it fails, the link stays as it was.
    pub(super) async fn end_sessions_through_link(&self, pool: &str, id: &str) -> Result<Vec<(String, i64)>> {
        let link = sqlx::query("SELECT source_id, issuer, subject, user_id FROM links WHERE pool_id = $1 AND id = $2")
            .bind(pool)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        let rows = sqlx::query(
            "SELECT id, expires_at FROM sso_sessions WHERE pool_id = $1 AND source = $2 AND upstream_iss = $3 \
             AND upstream_sub = $4 AND user_id = $5 AND revoked_at IS NULL AND expires_at > $6",
        )
        .bind(pool)
        .bind(link.try_get::<String, _>("source_id")?)
        .bind(link.try_get::<String, _>("issuer")?)
        .bind(link.try_get::<String, _>("subject")?)
        .bind(link.try_get::<String, _>("user_id")?)
        .bind(self.now())
        .fetch_all(&self.pool)
        .await?;
        let mut ended = Vec::with_capacity(rows.len());
        for r in &rows {
            let (sso, expires): (String, i64) = (r.try_get("id")?, r.try_get("expires_at")?);
            match self.revoke_sso_session(pool, &sso).await {
                // Ended meanwhile by someone else: ended all the same.
                Ok(()) | Err(StoreError::NotFound) => ended.push((sso, expires)),
                Err(e) => return Err(e),
            }
        }
        Ok(ended)
    }
}
