//! The operator's commands on the configured store: pools, users, keys. They use the same
//! library as the admin API; passwords come from a prompt or stdin, never from argv.

use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Subcommand;

use crate::admin::ops::{Operator, Ops, UserInput};
use crate::clock;
use crate::config::Config;
use crate::crypto::MasterKey;
use crate::store::{ImportFormat, Page, Store};

#[derive(Subcommand)]
pub enum PoolCommand {
    /// List the pools the store knows.
    List,
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Add a user. The password is prompted for (or read from stdin with --password-stdin).
    Add {
        #[arg(long)]
        pool: String,
        username: String,
        #[arg(long)]
        email: Option<String>,
        /// Mark the email address as verified.
        #[arg(long)]
        email_verified: bool,
        #[arg(long, default_value = "")]
        name: String,
        #[arg(long = "group")]
        groups: Vec<String>,
        /// Read the password from the first line of stdin.
        #[arg(long)]
        password_stdin: bool,
        /// Create the user without a password: they can sign in only through an identity
        /// source of the pool.
        #[arg(long, conflicts_with = "password_stdin")]
        no_password: bool,
    },
    /// List a pool's users.
    List {
        #[arg(long)]
        pool: String,
        #[arg(long, default_value_t = 100)]
        limit: i64,
        #[arg(long, default_value_t = 0)]
        offset: i64,
    },
    /// Disable a user: sign-in refused, sessions revoked.
    Disable {
        #[arg(long)]
        pool: String,
        username: String,
    },
    /// Enable a disabled user.
    Enable {
        #[arg(long)]
        pool: String,
        username: String,
    },
    /// Clear a lockout after failed sign-ins.
    Unlock {
        #[arg(long)]
        pool: String,
        username: String,
    },
    /// Forget a user's second factor (a lost device): they enroll a new one at their next
    /// sign-in.
    ResetMfa {
        #[arg(long)]
        pool: String,
        username: String,
    },
    /// Set a user's password (prompted, or --password-stdin).
    Passwd {
        #[arg(long)]
        pool: String,
        username: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Import users from JSON lines or CSV; every bad row is reported with its line.
    Import {
        #[arg(long)]
        pool: String,
        file: PathBuf,
        /// jsonl or csv; by default from the file's extension.
        #[arg(long)]
        format: Option<String>,
        /// All rows or none.
        #[arg(long)]
        atomic: bool,
    },
}

#[derive(Subcommand)]
pub enum ClientCommand {
    /// List a pool's registered clients (apps are clients too, of their own).
    List {
        #[arg(long)]
        pool: String,
    },
    /// Make a new secret for a confidential client and print it, once. Its previous
    /// secrets keep working for a day, so the client can be redeployed without an outage.
    Secret {
        #[arg(long)]
        pool: String,
        client: String,
    },
}

#[derive(Subcommand)]
pub enum KeysCommand {
    /// List a pool's published signing keys.
    List {
        #[arg(long)]
        pool: String,
    },
    /// Make a new signing key; the old one stays published for a day.
    Rotate {
        #[arg(long)]
        pool: String,
    },
}

/// The configured store, with the file's pools recorded in it.
async fn open(config_path: &Path) -> anyhow::Result<(Config, Store)> {
    let config = Config::load(config_path)?;
    let store = Store::connect(&config.store, clock::system())
        .await
        .with_context(|| format!("opening the store {}", config.store.0))?;
    store.sync_config_pools(&config.pools).await?;
    Ok((config, store))
}

/// The admin operations, done as whoever runs the CLI.
fn ops(store: &Store) -> Ops<'_> {
    Ops::new(store, Operator::cli())
}

/// A password from stdin (first line) or an interactive prompt. Without a terminal and
/// without `--password-stdin` there is no way to ask: that is an error, never a user
/// quietly made without a password.
fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        let p = line.trim_end_matches(['\r', '\n']).to_owned();
        if p.is_empty() {
            bail!("no password on stdin");
        }
        return Ok(p);
    }
    if !std::io::stdin().is_terminal() {
        bail!(
            "no password given: type it at a terminal, or pass --password-stdin and send it on stdin \
             (--no-password makes a user who can sign in only through an identity source)"
        );
    }
    let first = rpassword::prompt_password("Password: ")?;
    let second = rpassword::prompt_password("Again: ")?;
    if first != second {
        bail!("the passwords differ");
    }
    Ok(first)
}

pub async fn pool(config: &Path, cmd: PoolCommand) -> anyhow::Result<()> {
    let (_, store) = open(config).await?;
    match cmd {
        PoolCommand::List => {
            println!("{:<20} {:<12} {:>7}  NAME", "POOL", "PLAN", "USERS");
            for p in store.pools().await? {
                let managed = if p.config_managed { "" } else { "  (run-time)" };
                println!(
                    "{:<20} {:<12} {:>7}  {}{managed}",
                    p.id,
                    p.plan.as_str(),
                    store.count_users(&p.id).await?,
                    p.name
                );
            }
        }
    }
    Ok(())
}

pub async fn user(config: &Path, cmd: UserCommand) -> anyhow::Result<()> {
    let (_, store) = open(config).await?;
    match cmd {
        UserCommand::Add {
            pool,
            username,
            email,
            email_verified,
            name,
            groups,
            password_stdin,
            no_password,
        } => {
            let password = if no_password {
                None
            } else {
                Some(read_password(password_stdin)?)
            };
            let new = UserInput {
                username,
                email,
                email_verified,
                name,
                password,
                groups,
            };
            let user = ops(&store)
                .create_user(&pool, new)
                .await
                .with_context(|| format!("pool {pool}"))?;
            println!("added {} to pool {pool} (id {})", user.username, user.id);
            if no_password {
                println!(
                    "{} has no password: they can sign in only through an identity source of the pool",
                    user.username
                );
            }
        }
        UserCommand::List { pool, limit, offset } => {
            store.pool(&pool).await.with_context(|| format!("pool {pool}"))?;
            println!("{:<36} {:<24} {:<32} {:<9} GROUPS", "ID", "USERNAME", "EMAIL", "STATUS");
            for u in store.users(&pool, Page { limit, offset }).await? {
                let status = if u.disabled {
                    "disabled"
                } else if u.locked_until.is_some_and(|t| t > store.now()) {
                    "locked"
                } else {
                    "active"
                };
                println!(
                    "{:<36} {:<24} {:<32} {:<9} {}",
                    u.id,
                    u.username,
                    u.email.unwrap_or_default(),
                    status,
                    u.groups.join(",")
                );
            }
        }
        UserCommand::Disable { pool, username } => {
            let u = store.user_by_username(&pool, &username).await?;
            ops(&store).set_disabled(&pool, &u.id, true).await?;
            println!("disabled {username}; their sessions are revoked");
        }
        UserCommand::Enable { pool, username } => {
            let u = store.user_by_username(&pool, &username).await?;
            ops(&store).set_disabled(&pool, &u.id, false).await?;
            println!("enabled {username}");
        }
        UserCommand::Unlock { pool, username } => {
            let u = store.user_by_username(&pool, &username).await?;
            ops(&store).unlock(&pool, &u.id).await?;
            println!("unlocked {username}");
        }
        UserCommand::ResetMfa { pool, username } => {
            let u = store.user_by_username(&pool, &username).await?;
            ops(&store).reset_mfa(&pool, &u.id).await?;
            println!("{username}'s second factor is forgotten: they enroll a new one at their next sign-in");
        }
        UserCommand::Passwd {
            pool,
            username,
            password_stdin,
        } => {
            let u = store.user_by_username(&pool, &username).await?;
            let p = read_password(password_stdin)?;
            ops(&store).set_password(&pool, &u.id, Some(p)).await?;
            println!("password set for {username}");
        }
        UserCommand::Import {
            pool,
            file,
            format,
            atomic,
        } => {
            let format = match format.as_deref().or_else(|| file.extension().and_then(|e| e.to_str())) {
                Some("csv") => ImportFormat::Csv,
                Some("jsonl" | "json" | "ndjson") => ImportFormat::Jsonl,
                other => bail!(
                    "cannot tell the format of {} ({other:?}): pass --format jsonl or csv",
                    file.display()
                ),
            };
            let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            let report = ops(&store)
                .import_users(&pool, &text, format, atomic)
                .await
                .with_context(|| format!("pool {pool}"))?;
            for e in &report.errors {
                eprintln!("{}:{}: {}", file.display(), e.line, e.message);
            }
            println!("imported {} users into {pool}", report.imported);
            if !report.errors.is_empty() {
                if atomic {
                    bail!("{} bad rows: nothing was imported (--atomic)", report.errors.len());
                }
                bail!("{} rows were not imported", report.errors.len());
            }
        }
    }
    Ok(())
}

pub async fn client(config_path: &Path, cmd: ClientCommand) -> anyhow::Result<()> {
    let (_, store) = open(config_path).await?;
    // The file's clients and those created through the API, as the gateway sees them.
    let extras = crate::registry::extras(store.fragments().await?);
    let config = Config::load_with(config_path, &extras)?;
    let pool_of = |pool: &str| {
        config
            .pools
            .iter()
            .find(|p| p.id.as_str() == pool)
            .with_context(|| format!("pool {pool}"))
    };
    match cmd {
        ClientCommand::List { pool } => {
            println!("{:<24} {:<20} {:<40} NAME", "CLIENT", "AUTH", "REDIRECT URIS");
            for c in &pool_of(&pool)?.clients {
                println!(
                    "{:<24} {:<20} {:<40} {}",
                    c.id,
                    c.auth_method.as_str(),
                    c.redirect_uris.join(" "),
                    c.name
                );
            }
        }
        ClientCommand::Secret { pool, client } => {
            let c = pool_of(&pool)?
                .clients
                .iter()
                .find(|c| c.id.as_str() == client)
                .with_context(|| format!("pool {pool} has no client {client}"))?;
            let secret = ops(&store).new_client_secret(&pool, c).await?;
            println!("{secret}");
            eprintln!(
                "The secret of {pool}/{client}, shown this once. Its previous secrets end in {} hours.",
                crate::store::SECRET_OVERLAP_SECS / 3600
            );
        }
    }
    Ok(())
}

pub async fn keys(config: &Path, cmd: KeysCommand) -> anyhow::Result<()> {
    let (config, store) = open(config).await?;
    match cmd {
        KeysCommand::List { pool } => {
            store.pool(&pool).await.with_context(|| format!("pool {pool}"))?;
            for k in store.keys(&pool).await? {
                println!("{}  {}  {}", k.kid, k.alg, k.status);
            }
        }
        KeysCommand::Rotate { pool } => {
            let master = MasterKey::load(&config.master_key)?;
            let key = ops(&store)
                .rotate_key(&pool, &master)
                .await
                .with_context(|| format!("pool {pool}"))?;
            println!(
                "pool {pool} now signs with {}; the previous key stays published for a day",
                key.kid
            );
        }
    }
    Ok(())
}
