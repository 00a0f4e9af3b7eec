//! Mints app-session cookies for a load run: `count` distinct live sessions of one user,
//! or, with `--every-user`, spread over every user of the pool in turn, sealed exactly as
//! the gateway seals them (same master key, pool and app binding). Sessions are stateless
//! on the gateway, so this is what a million signed-in browsers look like to it.
//!
//! cargo run --release --example mint_cookies -- CONFIG POOL APP (USERNAME | --every-user) COUNT

use std::io::Write;
use std::path::Path;

use poolgate::clock::{self, Clock};
use poolgate::config::Config;
use poolgate::crypto::{MasterKey, Sealer};
use poolgate::session::{SessionId, Ticket, app_binding};
use poolgate::store::{Page, Store};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [config, pool, app, username, count] = args.as_slice() else {
        anyhow::bail!("usage: mint_cookies CONFIG POOL APP USERNAME COUNT");
    };
    let config = Config::load(Path::new(config))?;
    let master = MasterKey::load(&config.master_key)?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let users = rt.block_on(async {
        let store = Store::connect(&config.store, clock::system()).await?;
        if username != "--every-user" {
            return anyhow::Ok(vec![store.user_by_username(pool, username).await?]);
        }
        let mut all = Vec::new();
        loop {
            let page = Page {
                limit: 1000,
                offset: all.len() as i64,
            };
            let batch = store.users(pool, page).await?;
            if batch.is_empty() {
                break;
            }
            all.extend(batch);
        }
        anyhow::Ok(all)
    })?;
    let uids = users
        .iter()
        .map(|u| uuid::Uuid::parse_str(&u.id))
        .collect::<Result<Vec<_>, _>>()?;
    anyhow::ensure!(!uids.is_empty(), "pool {pool} has no users");
    let sealer = Sealer::new(&master, "cookie", pool);
    let binding = app_binding(pool, app);
    let now = clock::SystemClock.now();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for i in 0..count.parse::<usize>()? {
        let sid = SessionId::random();
        let ticket = Ticket {
            sid,
            sso: sid,
            uid: uids[i % uids.len()],
            issued: now,
            expires: now + 36_000,
            idle_until: now + 36_000,
            mfa: false,
            source: "local".into(),
        };
        writeln!(out, "poolgate={}", ticket.seal(&sealer, &binding).unwrap_or_default())?;
    }
    Ok(())
}
