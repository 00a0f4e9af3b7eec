//! Users, groups and federation links of a pool. Usernames and emails are unique per pool
//! (stored lower-case): the same address may live in two pools as two people.

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::{Page, Result, Store, StoreError, conflict, finish, flag, found, new_id};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct User {
    pub id: String,
    pub pool: String,
    pub username: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: String,
    pub disabled: bool,
    pub locked_until: Option<i64>,
    pub failed_logins: i64,
    pub has_password: bool,
    pub mfa_enrolled: bool,
    pub groups: Vec<String>,
    pub created_at: i64,
    pub updated_at: i64,
    #[serde(skip)]
    pub password_hash: Option<String>,
}

/// A user to create. The password, if any, is already hashed (see `crypto::password`).
#[derive(Debug, Clone, Default)]
pub struct NewUser {
    pub username: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: String,
    pub password_hash: Option<String>,
    pub groups: Vec<String>,
}

/// Changes to a user; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    pub username: Option<String>,
    #[serde(default, with = "double_option")]
    pub email: Option<Option<String>>,
    pub email_verified: Option<bool>,
    pub name: Option<String>,
    pub groups: Option<Vec<String>>,
}

/// `"email": null` clears the address; a missing key leaves it.
mod double_option {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
        Ok(Some(Option::<String>::deserialize(d)?))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Group {
    pub name: String,
    pub members: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Link {
    pub id: String,
    pub source: String,
    pub issuer: String,
    pub subject: String,
    pub user_id: String,
    pub created_at: i64,
}

/// Normalises and checks a username: Unicode NFKC and lower case (so a full-width
/// `ａｌｉｃｅ` is `alice`), letters, digits and printable ASCII only (no space, control,
/// invisible or symbol character), and letters of one script, or of the script mixes
/// UTS #39 calls highly restrictive (Latin with Han and kana, say): `аlice`, with a
/// Cyrillic `а`, cannot sit beside `alice` unnoticed.
pub fn normalize_username(raw: &str) -> Result<String> {
    use unicode_normalization::UnicodeNormalization;
    use unicode_security::{RestrictionLevel, RestrictionLevelDetection};
    let u: String = raw.trim().nfkc().collect::<String>().to_lowercase().nfkc().collect();
    let plain = u
        .chars()
        .all(|c| c.is_alphabetic() || c.is_numeric() || c.is_ascii_graphic());
    let letters: String = u.chars().filter(|c| c.is_alphabetic()).collect();
    let one_script = letters
        .as_str()
        .check_restriction_level(RestrictionLevel::HighlyRestrictive);
    if !u.is_empty() && u.chars().count() <= 64 && plain && one_script {
        Ok(u)
    } else {
        Err(StoreError::Invalid(format!(
            "`{}` is not a valid username: 1-64 letters, digits or punctuation, no spaces or \
             invisible characters, letters of one script",
            raw.escape_debug()
        )))
    }
}

/// Lower-cases and checks an email address (shape only: local@domain).
pub fn normalize_email(raw: &str) -> Result<String> {
    let e = raw.trim().to_lowercase();
    let ok = e.len() <= 254
        && !e.chars().any(|c| c.is_whitespace() || c.is_control())
        && e.split_once('@').is_some_and(|(l, d)| {
            !l.is_empty() && d.contains('.') && !d.contains('@') && !d.starts_with('.') && !d.ends_with('.')
        });
    if ok {
        Ok(e)
    } else {
        Err(StoreError::Invalid(format!("`{raw}` is not a valid email address")))
    }
}

/// The columns a `User` is read from. Named, not `*`: a later migration adding a column
/// must not change what an old prepared statement returns.
pub(super) const USER_COLUMNS: &str = "pool_id, id, username, email, email_verified, name, disabled, failed_logins, locked_until, \
                            password_hash, totp_secret, created_at, updated_at";

fn group_name(raw: &str) -> Result<String> {
    crate::ids::AppId::parse(raw)
        .map(|g| g.as_str().to_owned())
        .map_err(|_| StoreError::Invalid(format!("`{raw}` is not a valid group name: a-z, 0-9, `-`, `_`")))
}

pub(super) fn link_row(r: &AnyRow) -> Result<Link> {
    Ok(Link {
        id: r.try_get("id")?,
        source: r.try_get("source_id")?,
        issuer: r.try_get("issuer")?,
        subject: r.try_get("subject")?,
        user_id: r.try_get("user_id")?,
        created_at: r.try_get("created_at")?,
    })
}

/// A user read with its `group_list` column (see [`Store::group_list`]).
pub(super) fn user_with_groups(row: &AnyRow) -> Result<User> {
    let joined: Option<String> = row.try_get("group_list")?;
    let groups = joined
        .map(|j| j.split('\u{1f}').map(str::to_owned).collect())
        .unwrap_or_default();
    user_row(row, groups)
}

fn user_row(row: &AnyRow, groups: Vec<String>) -> Result<User> {
    let hash: Option<String> = row.try_get("password_hash")?;
    let totp: Option<String> = row.try_get("totp_secret")?;
    Ok(User {
        id: row.try_get("id")?,
        pool: row.try_get("pool_id")?,
        username: row.try_get("username")?,
        email: row.try_get("email")?,
        email_verified: flag(row, "email_verified")?,
        name: row.try_get("name")?,
        disabled: flag(row, "disabled")?,
        locked_until: row.try_get("locked_until")?,
        failed_logins: row.try_get("failed_logins")?,
        has_password: hash.is_some(),
        mfa_enrolled: totp.is_some(),
        groups,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        password_hash: hash,
    })
}

impl Store {
    pub async fn count_users(&self, pool: &str) -> Result<i64> {
        Ok(sqlx::query("SELECT COUNT(*) AS n FROM users WHERE pool_id = $1")
            .bind(pool)
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?)
    }

    /// Creates a user, checking the pool's plan; nothing is written if any check fails.
    pub async fn create_user(&self, pool: &str, user: NewUser) -> Result<User> {
        let mut tx = self.begin().await?;
        let outcome = self.insert_user(&mut tx, pool, user).await;
        let id = finish(tx, outcome).await?;
        self.user(pool, &id).await
    }

    /// Inserts within a caller's transaction (imports use one for all rows).
    pub(super) async fn insert_user(
        &self,
        tx: &mut Transaction<'static, Any>,
        pool: &str,
        user: NewUser,
    ) -> Result<String> {
        let record = sqlx::query("SELECT plan FROM pools WHERE id = $1")
            .bind(pool)
            .fetch_optional(&mut **tx)
            .await?
            .ok_or(StoreError::NotFound)?;
        let plan: String = record.try_get("plan")?;
        let plan = crate::config::Plan::parse(&plan).unwrap_or(crate::config::Plan::Free);
        if let Some(max) = plan.limits().max_users {
            let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM users WHERE pool_id = $1")
                .bind(pool)
                .fetch_one(&mut **tx)
                .await?
                .try_get("n")?;
            if n as u64 >= max {
                return Err(StoreError::Limit(format!(
                    "the {} plan of pool `{pool}` allows {max} users",
                    plan.as_str()
                )));
            }
        }
        let username = normalize_username(&user.username)?;
        let email = user.email.as_deref().map(normalize_email).transpose()?;
        let groups = user.groups.iter().map(|g| group_name(g)).collect::<Result<Vec<_>>>()?;
        let id = new_id();
        let now = self.now();
        sqlx::query(
            "INSERT INTO users (pool_id, id, username, email, email_verified, name, password_hash, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(pool)
        .bind(&id)
        .bind(&username)
        .bind(email.clone())
        .bind(user.email_verified as i64)
        .bind(user.name.trim())
        .bind(user.password_hash)
        .bind(now)
        .bind(now)
        .execute(&mut **tx)
        .await
        .map_err(|e| conflict(e, format!("username `{username}` or email is already taken in pool `{pool}`")))?;
        for g in groups {
            Self::join_group(tx, pool, &g, &id, now).await?;
        }
        Ok(id)
    }

    async fn join_group(
        tx: &mut Transaction<'static, Any>,
        pool: &str,
        group: &str,
        user_id: &str,
        now: i64,
    ) -> Result<()> {
        sqlx::query("INSERT INTO user_groups (pool_id, name, created_at) VALUES ($1, $2, $3) ON CONFLICT (pool_id, name) DO NOTHING")
            .bind(pool)
            .bind(group)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        sqlx::query(
            "INSERT INTO memberships (pool_id, group_name, user_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(pool)
        .bind(group)
        .bind(user_id)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// A user with their groups, in one round trip (every token grant reads one).
    pub async fn user(&self, pool: &str, id: &str) -> Result<User> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS}, {} AS group_list FROM users WHERE pool_id = $1 AND id = $2",
            self.group_list()
        ))
        .bind(pool)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        user_with_groups(&row)
    }

    /// The SQL of a user's groups in one column, joined by U+001F (which no group name
    /// holds): one query reads a user whole.
    pub(super) fn group_list(&self) -> &'static str {
        match self.backend() {
            super::Backend::Sqlite => {
                "(SELECT group_concat(group_name, char(31)) FROM (SELECT group_name FROM memberships m \
                 WHERE m.pool_id = users.pool_id AND m.user_id = users.id ORDER BY group_name))"
            }
            super::Backend::Postgres => {
                "(SELECT string_agg(group_name, chr(31) ORDER BY group_name) FROM memberships m \
                 WHERE m.pool_id = users.pool_id AND m.user_id = users.id)"
            }
        }
    }

    pub async fn user_by_username(&self, pool: &str, username: &str) -> Result<User> {
        let username = normalize_username(username).map_err(|_| StoreError::NotFound)?;
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS}, {} AS group_list FROM users WHERE pool_id = $1 AND username = $2",
            self.group_list()
        ))
        .bind(pool)
        .bind(&username)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        user_with_groups(&row)
    }

    /// The usernames of these users of the pool, by id, in one query (for a page that lists
    /// sessions or links by who they are). Ids of no user are left out.
    pub async fn usernames(&self, pool: &str, ids: &[&str]) -> Result<std::collections::HashMap<String, String>> {
        if ids.is_empty() {
            return Ok(Default::default());
        }
        let marks: Vec<String> = (2..ids.len() + 2).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT id, username FROM users WHERE pool_id = $1 AND id IN ({})",
            marks.join(", ")
        );
        let mut query = sqlx::query(&sql).bind(pool);
        for id in ids {
            query = query.bind(*id);
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("username")?)))
            .collect()
    }

    pub async fn users(&self, pool: &str, page: Page) -> Result<Vec<User>> {
        let (limit, offset) = page.clamped();
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLUMNS}, {} AS group_list FROM users WHERE pool_id = $1 ORDER BY username LIMIT $2 OFFSET $3",
            self.group_list()
        ))
        .bind(pool)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(user_with_groups).collect()
    }

    /// Users whose username or email starts with `query`, or whose name holds it, in any
    /// case, by username: what a person types into a search box. Nothing typed finds
    /// everyone.
    pub async fn find_users(&self, pool: &str, query: &str, page: Page) -> Result<Vec<User>> {
        if query.trim().is_empty() {
            return self.users(pool, page).await;
        }
        // `%`, `_` and `\` typed are themselves, not patterns.
        let mut typed = String::new();
        for c in query.trim().to_lowercase().chars() {
            if matches!(c, '%' | '_' | '\\') {
                typed.push('\\');
            }
            typed.push(c);
        }
        let (limit, offset) = page.clamped();
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLUMNS}, {} AS group_list FROM users WHERE pool_id = $1 \
             AND (username LIKE $2 ESCAPE '\\' OR email LIKE $3 ESCAPE '\\' OR LOWER(name) LIKE $4 ESCAPE '\\') \
             ORDER BY username LIMIT $5 OFFSET $6",
            self.group_list()
        ))
        .bind(pool)
        .bind(format!("{typed}%"))
        .bind(format!("{typed}%"))
        .bind(format!("%{typed}%"))
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(user_with_groups).collect()
    }

    pub async fn update_user(&self, pool: &str, id: &str, patch: UserPatch) -> Result<User> {
        let current = self.user(pool, id).await?;
        let username = patch
            .username
            .as_deref()
            .map(normalize_username)
            .transpose()?
            .unwrap_or(current.username);
        let email = match patch.email {
            Some(Some(e)) => Some(normalize_email(&e)?),
            Some(None) => None,
            None => current.email,
        };
        let groups = patch
            .groups
            .as_ref()
            .map(|gs| gs.iter().map(|g| group_name(g)).collect::<Result<Vec<_>>>())
            .transpose()?;
        let now = self.now();
        let mut tx = self.begin().await?;
        let outcome = async {
        sqlx::query("UPDATE users SET username = $1, email = $2, email_verified = $3, name = $4, updated_at = $5 WHERE pool_id = $6 AND id = $7")
            .bind(&username)
            .bind(email)
            .bind(patch.email_verified.unwrap_or(current.email_verified) as i64)
            .bind(patch.name.unwrap_or(current.name))
            .bind(now)
            .bind(pool)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(|e| conflict(e, format!("username `{username}` or email is already taken in pool `{pool}`")))?;
        if let Some(groups) = groups {
            sqlx::query("DELETE FROM memberships WHERE pool_id = $1 AND user_id = $2")
                .bind(pool)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            for g in groups {
                Self::join_group(&mut tx, pool, &g, id, now).await?;
            }
        }
        Ok(())
        }
        .await;
        finish(tx, outcome).await?;
        self.user(pool, id).await
    }

    /// Runs `UPDATE users SET <set>` on one user; `set` is a constant of this module.
    async fn update_user_flags(&self, pool: &str, id: &str, set: &'static str) -> Result<()> {
        let sql = format!("UPDATE users SET {set}, updated_at = $1 WHERE pool_id = $2 AND id = $3");
        let done = sqlx::query(&sql)
            .bind(self.now())
            .bind(pool)
            .bind(id)
            .execute(&self.pool)
            .await?;
        found(&done)
    }

    pub async fn set_password_hash(&self, pool: &str, id: &str, hash: Option<String>) -> Result<()> {
        let done = sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE pool_id = $3 AND id = $4")
            .bind(hash)
            .bind(self.now())
            .bind(pool)
            .bind(id)
            .execute(&self.pool)
            .await?;
        found(&done)
    }

    /// A new password set for the user (an admin's reset, `user passwd`): every session
    /// they have ends, so whoever knew the old password is signed out everywhere.
    pub async fn change_password(&self, pool: &str, id: &str, hash: Option<String>) -> Result<()> {
        self.set_password_hash(pool, id, hash).await?;
        self.revoke_user_sessions(pool, id).await
    }

    pub async fn set_disabled(&self, pool: &str, id: &str, disabled: bool) -> Result<()> {
        self.update_user_flags(pool, id, if disabled { "disabled = 1" } else { "disabled = 0" })
            .await?;
        if disabled {
            self.revoke_user_sessions(pool, id).await?;
        }
        Ok(())
    }

    /// Clears a lockout and the failure count.
    pub async fn unlock(&self, pool: &str, id: &str) -> Result<()> {
        self.update_user_flags(pool, id, "locked_until = NULL, failed_logins = 0")
            .await
    }

    /// Forgets a user's second factor (their TOTP secret and recovery codes): their next
    /// sign-in enrolls a new one where the pool or app asks for it.
    pub async fn reset_mfa(&self, pool: &str, id: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE users SET totp_secret = NULL, totp_last_step = 0, updated_at = $1 WHERE pool_id = $2 AND id = $3",
        )
        .bind(self.now())
        .bind(pool)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        found(&done)?;
        sqlx::query("DELETE FROM recovery_codes WHERE pool_id = $1 AND user_id = $2")
            .bind(pool)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Deletes a user with their memberships and links, and revokes their sessions.
    pub async fn delete_user(&self, pool: &str, id: &str) -> Result<()> {
        let now = self.now();
        let mut tx = self.begin().await?;
        let outcome = async {
            for sql in [
                "DELETE FROM memberships WHERE pool_id = $1 AND user_id = $2",
                "DELETE FROM links WHERE pool_id = $1 AND user_id = $2",
            ] {
                sqlx::query(sql).bind(pool).bind(id).execute(&mut *tx).await?;
            }
            for sql in super::sessions::REVOKE_USER_SESSIONS {
                sqlx::query(sql).bind(now).bind(pool).bind(id).execute(&mut *tx).await?;
            }
            let done = sqlx::query("DELETE FROM users WHERE pool_id = $1 AND id = $2")
                .bind(pool)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            found(&done)
        }
        .await;
        finish(tx, outcome).await?;
        self.bump("revocations").await?;
        Ok(())
    }

    pub async fn groups(&self, pool: &str, page: Page) -> Result<Vec<Group>> {
        let (limit, offset) = page.clamped();
        let rows = sqlx::query(
            "SELECT g.name AS name, (SELECT COUNT(*) FROM memberships m WHERE m.pool_id = g.pool_id AND m.group_name = g.name) AS members \
             FROM user_groups g WHERE g.pool_id = $1 ORDER BY g.name LIMIT $2 OFFSET $3",
        )
        .bind(pool)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Group {
                    name: r.try_get("name")?,
                    members: r.try_get("members")?,
                })
            })
            .collect()
    }

    pub async fn create_group(&self, pool: &str, name: &str) -> Result<Group> {
        let name = group_name(name)?;
        self.pool(pool).await?;
        sqlx::query("INSERT INTO user_groups (pool_id, name, created_at) VALUES ($1, $2, $3)")
            .bind(pool)
            .bind(&name)
            .bind(self.now())
            .execute(&self.pool)
            .await
            .map_err(|e| conflict(e, format!("group `{name}` already exists")))?;
        Ok(Group { name, members: 0 })
    }

    pub async fn delete_group(&self, pool: &str, name: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        let outcome = async {
            sqlx::query("DELETE FROM memberships WHERE pool_id = $1 AND group_name = $2")
                .bind(pool)
                .bind(name)
                .execute(&mut *tx)
                .await?;
            let done = sqlx::query("DELETE FROM user_groups WHERE pool_id = $1 AND name = $2")
                .bind(pool)
                .bind(name)
                .execute(&mut *tx)
                .await?;
            found(&done)
        }
        .await;
        finish(tx, outcome).await
    }

    /// Adds a member; both the group and the user must be of this pool.
    pub async fn add_member(&self, pool: &str, group: &str, user_id: &str) -> Result<()> {
        self.user(pool, user_id).await?;
        let exists = sqlx::query("SELECT name FROM user_groups WHERE pool_id = $1 AND name = $2")
            .bind(pool)
            .bind(group)
            .fetch_optional(&self.pool)
            .await?;
        if exists.is_none() {
            return Err(StoreError::NotFound);
        }
        sqlx::query(
            "INSERT INTO memberships (pool_id, group_name, user_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(pool)
        .bind(group)
        .bind(user_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn remove_member(&self, pool: &str, group: &str, user_id: &str) -> Result<()> {
        let done = sqlx::query("DELETE FROM memberships WHERE pool_id = $1 AND group_name = $2 AND user_id = $3")
            .bind(pool)
            .bind(group)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        found(&done)
    }

    /// A link about to be written, with a new id and this moment.
    pub(super) fn new_link(&self, source: &str, issuer: &str, subject: &str, user_id: &str) -> Link {
        Link {
            id: new_id(),
            source: source.to_owned(),
            issuer: issuer.to_owned(),
            subject: subject.to_owned(),
            user_id: user_id.to_owned(),
            created_at: self.now(),
        }
    }

    /// Links a federated identity to a local user (federation writes these).
    pub async fn create_link(
        &self,
        pool: &str,
        source: &str,
        issuer: &str,
        subject: &str,
        user_id: &str,
    ) -> Result<Link> {
        self.user(pool, user_id).await?;
        let link = self.new_link(source, issuer, subject, user_id);
        sqlx::query("INSERT INTO links (pool_id, id, source_id, issuer, subject, user_id, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(pool)
            .bind(&link.id)
            .bind(source)
            .bind(issuer)
            .bind(subject)
            .bind(user_id)
            .bind(link.created_at)
            .execute(&self.pool)
            .await
            .map_err(|e| conflict(e, "this identity is already linked"))?;
        Ok(link)
    }

    pub async fn links(&self, pool: &str, page: Page) -> Result<Vec<Link>> {
        let (limit, offset) = page.clamped();
        let rows = sqlx::query("SELECT * FROM links WHERE pool_id = $1 ORDER BY created_at, id LIMIT $2 OFFSET $3")
            .bind(pool)
            .bind(limit)
            .bind(offset)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(link_row).collect()
    }

    /// Forgets a link, and ends the sessions its user opened through it
    /// ([`Store::end_sessions_through_link`]): returns them.
    pub async fn delete_link(&self, pool: &str, id: &str) -> Result<Vec<(String, i64)>> {
        let ended = self.end_sessions_through_link(pool, id).await?;
        let done = sqlx::query("DELETE FROM links WHERE pool_id = $1 AND id = $2")
            .bind(pool)
            .bind(id)
            .execute(&self.pool)
            .await?;
        found(&done)?;
        Ok(ended)
    }
}

impl Store {
    /// Users of a pool with this (normalised) email: at most one, as emails are unique.
    pub async fn users_by_email(&self, pool: &str, email: &str) -> Result<Vec<User>> {
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLUMNS}, {} AS group_list FROM users WHERE pool_id = $1 AND email = $2",
            self.group_list()
        ))
        .bind(pool)
        .bind(email)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(user_with_groups).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::normalize_username;

    #[test]
    fn usernames_are_normalised_and_confusables_refused() {
        assert_eq!(normalize_username(" Alice ").unwrap(), "alice");
        assert_eq!(
            normalize_username("\u{ff21}\u{ff4c}ice").unwrap(),
            "alice",
            "full-width folds"
        );
        assert_eq!(normalize_username("j.doe@example.com").unwrap(), "j.doe@example.com");
        assert_eq!(normalize_username("José").unwrap(), "josé");
        assert_eq!(normalize_username("Пётр").unwrap(), "пётр");
        assert_eq!(normalize_username("山田taro").unwrap(), "山田taro");
        for bad in [
            "\u{430}lice",   // Cyrillic а + Latin
            "al\u{200b}ice", // zero-width space
            "ali\u{200d}ce", // zero-width joiner
            "\u{202e}ecila", // right-to-left override
            "al ice",
            "al\u{7}ice",
            "alice\u{fe0f}",
            "",
        ] {
            assert!(normalize_username(bad).is_err(), "{bad:?}");
        }
    }
}
