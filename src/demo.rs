//! `poolgate demo`: the gateway on `config/demo.toml` with a whoami upstream in the same
//! process, development certificates and two demo users made on first run. Nothing to
//! install.

use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};

use anyhow::Context;

use crate::config::{AccessLog, Config, LogFormat, SecretSource};
use crate::crypto::password;
use crate::store::{NewUser, Store};
use crate::{clock, logging, server, tls, whoami};

/// The demo's people: (pool, username, password). Local demo only.
pub const DEMO_USERS: [(&str, &str, &str); 2] = [
    ("employees", "alice", "wonderland"),
    ("suppliers", "bob", "the-builder"),
];

pub fn run(config_path: &Path, log_format: Option<LogFormat>) -> anyhow::Result<()> {
    let config = Config::load(config_path)?;
    // At a terminal the banner must not drown: the access log goes to a file beside the
    // store, and the banner says where. Elsewhere (a script, CI) it stays on stdout.
    let human = logging::is_human(log_format.unwrap_or(config.log.format));
    let access = match (&config.log.access, &config.admin.token) {
        (Some(a), _) => a.clone(),
        (None, SecretSource::File(token)) if human => AccessLog::File(token.with_file_name("access.log")),
        (None, _) => AccessLog::Stdout,
    };
    logging::init_gateway(human, &access)?;
    if config.listen.https.is_some() && !tls::dev::present(&config) {
        let made = tls::dev::issue(&config)?;
        println!(
            "Made development certificates for {} hosts, signed by {}",
            made.hosts,
            made.ca_cert.display()
        );
    }

    add_demo_users(&config)?;

    // The whoami upstream listens where the demo's apps send their requests.
    let addr: SocketAddr = config
        .pools
        .iter()
        .flat_map(|p| p.apps.iter())
        .find_map(|a| a.upstreams.first())
        .context("the demo config has no app")?
        .parse()
        .context("the demo's upstream must be an ip:port")?;
    let listener =
        std::net::TcpListener::bind(addr).with_context(|| format!("the demo's whoami upstream needs {addr}"))?;
    listener.set_nonblocking(true)?;
    std::thread::Builder::new().name("whoami".into()).spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build();
        match rt {
            Ok(rt) => rt.block_on(async move {
                match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => {
                        if let Err(e) = whoami::serve(l).await {
                            tracing::error!(error = %e, "whoami stopped");
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "whoami could not listen"),
                }
            }),
            Err(e) => tracing::error!(error = %e, "whoami could not start"),
        }
    })?;

    print_welcome(&config, addr, &access);
    server::serve(config_path, false)
}

/// Creates the demo's users on first run (the embedded store keeps them after).
fn add_demo_users(config: &Config) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let store = Store::connect(&config.store, clock::system()).await?;
        store.sync_config_pools(&config.pools).await?;
        for (pool, username, password) in DEMO_USERS {
            if store.user_by_username(pool, username).await.is_ok() {
                continue;
            }
            let user = NewUser {
                username: username.into(),
                email: Some(format!("{username}@{pool}.example")),
                email_verified: true,
                name: format!("{}{} (demo)", username[..1].to_uppercase(), &username[1..]),
                password_hash: Some(password::hash(password)?),
                // alice runs the demo's console too (a second factor is set up at her
                // first console sign-in).
                groups: if pool == "employees" {
                    vec!["staff".into(), crate::config::DEFAULT_CONSOLE_GROUP.into()]
                } else {
                    vec!["staff".into()]
                },
            };
            store.create_user(pool, user).await?;
        }
        anyhow::Ok(())
    })
}

fn print_welcome(config: &Config, whoami: SocketAddr, access: &AccessLog) {
    let http_port = config.listen.http.map(|a| a.port());
    let https_port = config.listen.https.map(|a| a.port());
    println!("\npoolgate demo — two pools and their apps, a whoami upstream on {whoami}\n");
    for pool in &config.pools {
        println!("pool {} ({})", pool.id, pool.name);
        let mut hosts = vec![("portal", &pool.portal)];
        hosts.extend(
            pool.apps
                .iter()
                .flat_map(|a| a.hosts.iter().map(move |h| (a.id.as_str(), h))),
        );
        for (what, host) in hosts {
            if let Some(p) = http_port {
                println!("  {what:<8} http://{host}:{p}/");
            }
            if let Some(p) = https_port {
                println!("  {what:<8} https://{host}:{p}/");
            }
        }
    }
    println!();
    for (pool, username, password) in DEMO_USERS {
        println!("sign in to {pool} as {username} / {password}");
    }
    if let Some(console) = &config.admin.console {
        println!(
            "console  http://{}/console — {} people in the {} group (alice), with a second factor",
            config.admin.listen, console.pool, console.group
        );
    }
    for pool in &config.pools {
        for source in &pool.sources {
            let apps: Vec<&str> = pool
                .apps
                .iter()
                .filter(|a| a.policy.allowed_sources.iter().any(|s| s == source.id.as_str()))
                .map(|a| a.name.as_str())
                .collect();
            if !apps.is_empty() {
                println!(
                    "federation: {} people sign in to {} of {} with \"Sign in with {}\"",
                    source.name,
                    apps.join(", "),
                    pool.id,
                    source.name
                );
            }
        }
    }
    if https_port.is_some() {
        println!(
            "\nFor https, trust {}/dev-ca.pem (or pass it to curl with --cacert).",
            config.certs_dir.display()
        );
    }
    let admin = config.admin.listen;
    print!("\nAdmin API on http://{admin}/api, with the token ");
    match &config.admin.token {
        SecretSource::File(path) => {
            let path = shown(path);
            println!("in {path} (made on first start):");
            println!("  curl -H \"Authorization: Bearer $(cat {path})\" http://{admin}/api/pools");
        }
        SecretSource::Env(var) => {
            println!("in ${var}:");
            println!("  curl -H \"Authorization: Bearer ${var}\" http://{admin}/api/pools");
        }
    }
    println!("Metrics: http://{admin}/metrics");
    match access {
        AccessLog::File(path) => println!("Access log (JSON lines): {}", shown(path)),
        AccessLog::Stdout => println!("Access log: JSON lines on stdout"),
        AccessLog::Off => println!("Access log: off"),
    }
    println!("Stop: Ctrl-C\n");
}

/// A path as a person would type it from here: `config/../data/x` is `data/x`.
fn shown(path: &Path) -> String {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir if matches!(out.components().next_back(), Some(Component::Normal(_))) => {
                out.pop();
            }
            Component::CurDir => {}
            c => out.push(c),
        }
    }
    let cwd = std::env::current_dir().unwrap_or_default();
    out.strip_prefix(&cwd).unwrap_or(&out).display().to_string()
}
