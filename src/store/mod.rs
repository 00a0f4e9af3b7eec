//! The store: pools, users, groups, links, sessions, keys and the audit log, in SQLite
//! (embedded, one node) or PostgreSQL (several nodes sharing state).
//!
//! Both run the same SQL through sqlx's `Any` driver, so there is one schema
//! (`migrations/`) and one implementation; what differs between the two (how to connect)
//! lives in [`Store::connect`]. Every query that touches pool data names the pool: an id of
//! another pool finds nothing.

mod audit;
mod clients;
mod federation;
mod import;
mod keys;
mod objects;
mod sessions;
mod signin;
mod users;

use std::sync::Arc;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

use crate::clock::{Clock, UnixTime};
use crate::config::StoreUrl;

pub use audit::{AuditEvent, AuditFilter, NewAuditEvent};
pub use clients::{RefreshRecord, RefreshUse, SECRET_OVERLAP_SECS};
pub use import::{ImportFormat, ImportReport, ImportRowError};
pub use keys::KeyRecord;
pub use objects::{Fragment, FragmentKind, PoolRecord};
pub use sessions::{AppSessionRecord, NewCode, PendingLogout, SsoExtras, SsoSessionRecord, UpstreamRef};
pub use signin::CodeUse;
pub use users::{Group, Link, NewUser, User, UserPatch, normalize_email, normalize_username};

/// Why a store operation did not happen. Nothing is half-written in any case.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error("plan limit: {0}")]
    Limit(String),
    #[error("PG0401 database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("PG0402 {0}")]
    Crypto(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Which database is behind the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A page of a list: `limit` items from `offset`.
#[derive(Debug, Clone, Copy, serde::Deserialize)]
pub struct Page {
    #[serde(default = "Page::default_limit")]
    pub limit: i64,
    #[serde(default)]
    pub offset: i64,
}

impl Page {
    fn default_limit() -> i64 {
        50
    }

    pub fn first(limit: i64) -> Page {
        Page { limit, offset: 0 }
    }

    fn clamped(self) -> (i64, i64) {
        (self.limit.clamp(1, 1000), self.offset.max(0))
    }
}

impl Default for Page {
    fn default() -> Self {
        Page::first(50)
    }
}

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/0001_init.sql")),
    (2, include_str!("../../migrations/0002_signin.sql")),
    (3, include_str!("../../migrations/0003_code_reuse.sql")),
    (4, include_str!("../../migrations/0004_clients_and_refresh.sql")),
    (5, include_str!("../../migrations/0005_backchannel.sql")),
    (6, include_str!("../../migrations/0006_backchannel_index.sql")),
    (7, include_str!("../../migrations/0007_federation.sql")),
    (8, include_str!("../../migrations/0008_drop_unused_index.sql")),
];

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({:?})", self.backend)
    }
}

impl Store {
    /// Connects and brings the schema up to date.
    pub async fn connect(url: &StoreUrl, clock: Arc<dyn Clock>) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let raw = url.0.as_str();
        let (backend, url, options) = if let Some(path) = raw.strip_prefix("sqlite:") {
            if path == ":memory:" {
                // One connection that never idles out: the in-memory database lives with it.
                let opts = AnyPoolOptions::new()
                    .max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None);
                (Backend::Sqlite, "sqlite::memory:".to_owned(), opts)
            } else {
                if let Some(dir) = std::path::Path::new(path).parent() {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| StoreError::Invalid(format!("creating {}: {e}", dir.display())))?;
                }
                // WAL with `synchronous = NORMAL`: a commit appends to the log without
                // waiting for the disk, which is synced at checkpoints. A crashed gateway
                // loses nothing; a power cut may lose the last grants or sign-ins, never a
                // revocation (see `bump`), and never corrupts the file. FULL (sqlx's
                // default) syncs every commit and made grants wait on the disk, one at a time.
                // No ping before each use: a SQLite connection is a thread of this process
                // that cannot hang up, and the ping was one of a query's three hand-offs to
                // it (sqlx still pings when a connection is given back).
                let opts = AnyPoolOptions::new()
                    .max_connections(8)
                    .test_before_acquire(false)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            sqlx::query("PRAGMA synchronous = NORMAL").execute(conn).await?;
                            Ok(())
                        })
                    });
                (Backend::Sqlite, format!("sqlite://{path}?mode=rwc"), opts)
            }
        } else {
            (
                Backend::Postgres,
                raw.to_owned(),
                AnyPoolOptions::new().max_connections(16),
            )
        };
        let pool = options.connect(&url).await?;
        if backend == Backend::Sqlite && url != "sqlite::memory:" {
            sqlx::query("PRAGMA journal_mode = WAL").execute(&pool).await?;
        }
        let store = Store { pool, backend, clock };
        store.migrate().await?;
        Ok(store)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn now(&self) -> UnixTime {
        self.clock.now()
    }

    /// Begins a transaction that may write. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`), so writers queue on the busy timeout: a deferred transaction
    /// that reads first and then writes cannot upgrade its lock while another writer has
    /// committed, and fails at once with "database is locked" under contention.
    async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    async fn migrate(&self) -> Result<()> {
        sqlx::query("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT PRIMARY KEY)")
            .execute(&self.pool)
            .await?;
        let current: Option<i64> = sqlx::query("SELECT MAX(version) AS v FROM schema_version")
            .fetch_one(&self.pool)
            .await?
            .try_get("v")?;
        for (version, sql) in MIGRATIONS {
            if current.is_some_and(|c| c >= *version) {
                continue;
            }
            let mut tx = self.begin().await?;
            sqlx::raw_sql(sql).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO schema_version (version) VALUES ($1)")
                .bind(*version)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            tracing::info!(code = "PG0400", version, "store schema migrated");
        }
        Ok(())
    }

    /// Bumps a change counter other nodes poll (`routes`, `revocations`). What it announces
    /// is on disk when this returns: on SQLite the bump commits with `synchronous = FULL`,
    /// which syncs the log, and so every commit before it (SQLite otherwise commits without
    /// waiting for the disk, see `connect`: a power cut may undo the last grants, but a
    /// revocation must never come undone). PostgreSQL commits durably anyway.
    pub async fn bump(&self, name: &str) -> Result<i64> {
        let next = self.generation(name).await? + 1;
        let mut conn = self.pool.acquire().await?;
        let sqlite = self.backend == Backend::Sqlite;
        if sqlite {
            sqlx::query("PRAGMA synchronous = FULL").execute(&mut *conn).await?;
        }
        let written = sqlx::query(
            "INSERT INTO generations (name, value) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET value = generations.value + 1",
        )
        .bind(name)
        .bind(next)
        .execute(&mut *conn)
        .await;
        if sqlite {
            sqlx::query("PRAGMA synchronous = NORMAL").execute(&mut *conn).await?;
        }
        written?;
        drop(conn);
        self.generation(name).await
    }

    /// What a snapshot is built from changes with this: run-time objects (`routes`) and
    /// signing keys (`keys`).
    pub async fn config_generation(&self) -> Result<i64> {
        Ok(self.generation("routes").await? + self.generation("keys").await?)
    }

    pub async fn generation(&self, name: &str) -> Result<i64> {
        let row = sqlx::query("SELECT value FROM generations WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => r.try_get("value")?,
            None => 0,
        })
    }
}

fn flag(row: &AnyRow, col: &str) -> Result<bool> {
    Ok(row.try_get::<i64, _>(col)? != 0)
}

/// Maps a unique-constraint violation to a conflict with a message a person can act on.
fn conflict(e: sqlx::Error, what: impl Into<String>) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(what.into()),
        _ => StoreError::Db(e),
    }
}

/// Ends a transaction by its outcome: commit on `Ok`; on `Err`, roll back and wait for it,
/// so no connection goes back to the pool still holding a lock (on SQLite, the next
/// writer would find the database locked).
async fn finish<T>(tx: sqlx::Transaction<'static, sqlx::Any>, outcome: Result<T>) -> Result<T> {
    match outcome {
        Ok(v) => {
            tx.commit().await?;
            Ok(v)
        }
        Err(e) => {
            let _ = tx.rollback().await;
            Err(e)
        }
    }
}

/// `NotFound` when a statement touched no row: the id is not of this pool (or not at all).
fn found(done: &sqlx::any::AnyQueryResult) -> Result<()> {
    if done.rows_affected() == 0 {
        Err(StoreError::NotFound)
    } else {
        Ok(())
    }
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}
