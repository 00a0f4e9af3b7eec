//! Bulk import of users from JSON lines or CSV. Every bad row is reported with its line;
//! with `atomic`, one bad row means nothing is written.
//!
//! Columns (CSV header) / keys (JSON): `username` (required), `email`, `email_verified`,
//! `name`, `password` (plain: hashed with argon2id here), `password_hash` (an argon2 or
//! bcrypt hash, kept as it is), `groups` (JSON array; in CSV separated by `;`).

use std::collections::HashSet;

use serde::Deserialize;

use super::users::{normalize_email, normalize_username};
use super::{NewUser, Result, Store, StoreError};
use crate::crypto::password;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportFormat {
    Jsonl,
    Csv,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ImportRowError {
    pub line: usize,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct ImportReport {
    pub imported: usize,
    pub errors: Vec<ImportRowError>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Row {
    username: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    email_verified: Option<bool>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    password_hash: Option<String>,
    #[serde(default)]
    groups: Option<Vec<String>>,
}

/// CSV cells are all text; empty means absent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CsvRow {
    username: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    email_verified: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    password_hash: String,
    #[serde(default)]
    groups: String,
}

fn some(s: String) -> Option<String> {
    (!s.trim().is_empty()).then_some(s)
}

impl TryFrom<CsvRow> for Row {
    type Error = String;

    fn try_from(c: CsvRow) -> Result<Row, String> {
        let email_verified = match c.email_verified.trim().to_ascii_lowercase().as_str() {
            "" => None,
            "true" | "1" | "yes" => Some(true),
            "false" | "0" | "no" => Some(false),
            other => return Err(format!("email_verified `{other}` is not true or false")),
        };
        Ok(Row {
            username: c.username,
            email: some(c.email),
            email_verified,
            name: some(c.name),
            password: some(c.password),
            password_hash: some(c.password_hash),
            groups: some(c.groups).map(|g| {
                g.split(';')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect()
            }),
        })
    }
}

/// A parsed row still to be written: the password is hashed only once every check passed.
struct Pending {
    line: usize,
    user: NewUser,
    plain_password: Option<String>,
}

fn parse(text: &str, format: ImportFormat) -> Vec<(usize, Result<Row, String>)> {
    match format {
        ImportFormat::Jsonl => text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| (i + 1, serde_json::from_str::<Row>(l).map_err(|e| e.to_string())))
            .collect(),
        ImportFormat::Csv => {
            let mut reader = csv::ReaderBuilder::new()
                .trim(csv::Trim::All)
                .from_reader(text.as_bytes());
            let headers = match reader.headers() {
                Ok(h) => h.clone(),
                Err(e) => return vec![(1, Err(e.to_string()))],
            };
            let mut rows = Vec::new();
            for record in reader.records() {
                match record {
                    Ok(rec) => {
                        let line = rec.position().map_or(0, |p| p.line() as usize);
                        let row = rec
                            .deserialize::<CsvRow>(Some(&headers))
                            .map_err(|e| e.to_string())
                            .and_then(Row::try_from);
                        rows.push((line, row));
                    }
                    Err(e) => {
                        let line = e.position().map_or(0, |p| p.line() as usize);
                        rows.push((line, Err(e.to_string())));
                    }
                }
            }
            rows
        }
    }
}

fn check_row(row: Row) -> Result<(NewUser, Option<String>), String> {
    let username = normalize_username(&row.username).map_err(|e| e.to_string())?;
    let email = row
        .email
        .as_deref()
        .map(normalize_email)
        .transpose()
        .map_err(|e| e.to_string())?;
    let (hash, plain) = match (row.password, row.password_hash) {
        (Some(_), Some(_)) => return Err("give `password` or `password_hash`, not both".into()),
        (Some(p), None) if p.is_empty() => return Err("the password is empty".into()),
        (Some(p), None) => (None, Some(p)),
        (None, Some(h)) if password::kind_of(&h).is_some() => (Some(h), None),
        (None, Some(_)) => {
            return Err("`password_hash` is neither an argon2 nor a bcrypt hash".into());
        }
        (None, None) => (None, None),
    };
    let user = NewUser {
        username,
        email,
        email_verified: row.email_verified.unwrap_or(false),
        name: row.name.unwrap_or_default(),
        password_hash: hash,
        groups: row.groups.unwrap_or_default(),
    };
    Ok((user, plain))
}

impl Store {
    pub async fn import_users(
        &self,
        pool: &str,
        text: &str,
        format: ImportFormat,
        atomic: bool,
    ) -> Result<ImportReport> {
        let record = self.pool(pool).await?;
        let mut report = ImportReport::default();
        let mut pending = Vec::new();
        let (mut usernames, mut emails) = (HashSet::new(), HashSet::new());
        for (line, row) in parse(text, format) {
            let checked = row.and_then(check_row);
            let (user, plain) = match checked {
                Ok(ok) => ok,
                Err(message) => {
                    report.errors.push(ImportRowError { line, message });
                    continue;
                }
            };
            let taken = match self.user_by_username(pool, &user.username).await {
                Ok(_) => true,
                Err(StoreError::NotFound) => false,
                Err(e) => return Err(e),
            };
            if taken || !usernames.insert(user.username.clone()) {
                report.errors.push(ImportRowError {
                    line,
                    message: format!("username `{}` is already taken", user.username),
                });
                continue;
            }
            if let Some(email) = &user.email
                && (!emails.insert(email.clone()) || self.email_taken(pool, email).await?)
            {
                report.errors.push(ImportRowError {
                    line,
                    message: format!("email `{email}` is already taken"),
                });
                continue;
            }
            pending.push(Pending {
                line,
                user,
                plain_password: plain,
            });
        }
        if let Some(max) = record.plan.limits().max_users {
            let room = (max as i64 - self.count_users(pool).await?).max(0) as usize;
            for p in pending.iter().skip(room) {
                report.errors.push(ImportRowError {
                    line: p.line,
                    message: format!("the {} plan allows {max} users", record.plan.as_str()),
                });
            }
            pending.truncate(room);
        }
        report.errors.sort_by_key(|e| e.line);
        if atomic && !report.errors.is_empty() {
            return Ok(report);
        }

        let pending = tokio::task::spawn_blocking(move || {
            pending
                .into_iter()
                .map(|mut p| {
                    if let Some(plain) = p.plain_password.take() {
                        p.user.password_hash = Some(password::hash(&plain).map_err(|e| e.to_string())?);
                    }
                    Ok(p)
                })
                .collect::<Result<Vec<_>, String>>()
        })
        .await
        .map_err(|e| StoreError::Invalid(e.to_string()))?
        .map_err(StoreError::Invalid)?;

        if atomic {
            let mut tx = self.begin().await?;
            for p in &pending {
                if let Err(e) = self.insert_user(&mut tx, pool, p.user.clone()).await {
                    report.errors.push(ImportRowError {
                        line: p.line,
                        message: e.to_string(),
                    });
                    // Roll back before returning: a dropped transaction's lock outlives it.
                    let _ = tx.rollback().await;
                    return Ok(report);
                }
            }
            tx.commit().await?;
            report.imported = pending.len();
        } else {
            for p in pending {
                match self.create_user(pool, p.user).await {
                    Ok(_) => report.imported += 1,
                    Err(e) => report.errors.push(ImportRowError {
                        line: p.line,
                        message: e.to_string(),
                    }),
                }
            }
            report.errors.sort_by_key(|e| e.line);
        }
        Ok(report)
    }

    async fn email_taken(&self, pool: &str, email: &str) -> Result<bool> {
        use sqlx::Row;
        let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM users WHERE pool_id = $1 AND email = $2")
            .bind(pool)
            .bind(email)
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?;
        Ok(n > 0)
    }
}
