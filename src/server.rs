//! Assembles a running gateway. Two halves, on separate runtimes:
//!
//! - the **proxy** (Pingora's threads): the hot path, reading only the registry snapshot;
//! - the **control plane** (one small tokio runtime of its own): the store, the admin
//!   listener, upstream health checks, reloads on SIGHUP, and polling the store for
//!   changes other nodes made. Store connections live and die with this runtime.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use pingora::apps::HttpServerOptions;
use pingora::server::Server;
use pingora::server::configuration::ServerConf;

use crate::admin::{self, AdminState, metrics::Metrics};
use crate::clock;
use crate::config::Config;
use crate::crypto::MasterKey;
use crate::portal::{self, InternalKey, WebState};
use crate::proxy::{Gateway, PortalLink};
use crate::registry::Registry;
use crate::session::Sessions;
use crate::store::Store;
use crate::tls;

/// Runs the gateway on `config` until the process is told to stop. Never returns on success.
pub fn serve(config_path: &Path) -> anyhow::Result<()> {
    let config = Config::load(config_path)?;
    let control = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("poolgate-control")
        .enable_all()
        .build()?;
    let (registry, token) = control.block_on(async {
        let master = MasterKey::load(&config.master_key)?;
        let token = admin::AdminToken::load(&config.admin.token)?;
        let store = Store::connect(&config.store, clock::system())
            .await
            .with_context(|| format!("opening the store {}", config.store.0))?;
        let registry = Registry::load(config_path, store, master)
            .await
            .with_context(|| format!("loading {}", config_path.display()))?;
        anyhow::Ok((Arc::new(registry), token))
    })?;
    let snapshot = registry.snapshot_full();
    let settings = &snapshot.config;
    let metrics = Arc::new(Metrics::new());

    let sessions = Arc::new(Sessions::default());
    let key = Arc::new(InternalKey::generate());
    let portal_addr = control
        .block_on(portal::start(WebState::new(
            registry.clone(),
            sessions.clone(),
            key.clone(),
        )))
        .context("starting the portal's internal listener")?;
    control.block_on(load_revocations(&registry, &sessions))?;

    let state = AdminState::new(registry.clone(), metrics.clone(), token, sessions.clone());
    let listen = settings.admin.listen;
    // Bound before anything is served: a port already taken stops the start, rather than
    // leaving a gateway whose admin address answers for another process.
    let admin_listener = control
        .block_on(tokio::net::TcpListener::bind(listen))
        .with_context(|| format!("binding the admin listener {listen}"))?;
    control.spawn(async move {
        if let Err(e) = admin::serve(admin_listener, state).await {
            tracing::error!(code = "PG0201", %listen, error = %e, "admin listener stopped");
        }
    });
    control.spawn(check_health(registry.clone()));
    control.spawn(reload_on_hangup(registry.clone(), metrics.clone()));
    control.spawn(follow_store(registry.clone(), metrics.clone(), sessions.clone()));
    control.spawn(prune_caches(registry.clone(), sessions.clone()));
    control.spawn(crate::op::backchannel::deliver_forever(registry.clone()));

    let conf = ServerConf {
        threads: settings.proxy.threads,
        // Stop promptly: finish in-flight requests for up to 5 s, no extra grace period.
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(5),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy = pingora::proxy::http_proxy_service_with_name(
        &server.configuration,
        Gateway::new(
            registry.clone(),
            metrics.clone(),
            sessions,
            PortalLink { addr: portal_addr, key },
            control.handle().clone(),
        ),
        "poolgate proxy",
    );
    if let Some(logic) = proxy.app_logic_mut() {
        let mut options = HttpServerOptions::default();
        options.h2c = true;
        logic.server_options = Some(options);
    }
    if let Some(addr) = settings.listen.http {
        proxy.add_tcp(&addr.to_string());
    }
    if let Some(addr) = settings.listen.https {
        let tls = tls::listener_settings(registry.clone()).context("TLS listener settings")?;
        proxy.add_tls_with_settings(&addr.to_string(), None, tls);
    }
    server.add_service(proxy);

    tracing::info!(
        code = "PG0001",
        http = ?settings.listen.http,
        https = ?settings.listen.https,
        admin = %settings.admin.listen,
        store = ?registry.store().backend(),
        pools = settings.pools.len(),
        "poolgate is starting"
    );
    // `control` lives on this stack frame for as long as the process: run_forever never returns.
    server.run_forever()
}

/// Probes each app's upstream servers on its configured interval, for the snapshot in force.
async fn check_health(registry: Arc<Registry>) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tick.tick().await;
        let now = Instant::now();
        for upstream in registry.snapshot().upstreams() {
            tokio::spawn(async move { upstream.check_if_due(now).await });
        }
    }
}

/// How long a used authorization code is remembered after it expired: a replay within
/// this time revokes the tokens of its first redemption.
const CODE_REPLAY_MEMORY_SECS: i64 = 600;

/// Every half minute, drops cached profiles, identity headers and bearer tokens that
/// have expired: a node's memory follows its recently active users. Expired
/// authorization codes go from the store.
async fn prune_caches(registry: Arc<Registry>, sessions: Arc<Sessions>) {
    let mut tick = tokio::time::interval(Duration::from_secs(30));
    loop {
        tick.tick().await;
        let now = registry.store().now();
        sessions.prune(now);
        // Used codes stay a while past their expiry, so a late replay is still seen as one.
        if let Err(e) = registry.store().prune_codes(now - CODE_REPLAY_MEMORY_SECS).await {
            tracing::warn!(code = "PG0406", error = %e, "cannot prune expired authorization codes");
        }
        if let Err(e) = registry.store().prune_refresh(now).await {
            tracing::warn!(code = "PG0406", error = %e, "cannot prune expired refresh tokens");
        }
    }
}

/// `kill -HUP` re-reads the config file; a bad file is refused and logged.
async fn reload_on_hangup(registry: Arc<Registry>, metrics: Arc<Metrics>) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(code = "PG0103", error = %e, "cannot listen for SIGHUP; reload through the admin API");
            return;
        }
    };
    while hangups.recv().await.is_some() {
        metrics.reloaded(registry.reload_logged("SIGHUP").await.is_ok());
    }
}

/// Sessions revoked in the store that have not expired yet, into this node's cache.
async fn load_revocations(registry: &Registry, sessions: &Sessions) -> anyhow::Result<()> {
    Ok(sessions.revocations.pull(registry.store(), 0).await?)
}

/// Other nodes sharing the store announce changes by bumping generations: `routes` and
/// `keys` (this node reloads, unless its snapshot already reflects them), `revocations`
/// (this node learns which sessions ended).
async fn follow_store(registry: Arc<Registry>, metrics: Arc<Metrics>, sessions: Arc<Sessions>) {
    let store = registry.store().clone();
    let mut seen_config = store.config_generation().await.unwrap_or(0);
    let mut seen_revocations = store.generation("revocations").await.unwrap_or(0);
    let mut since = store.now() - 5;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tick.tick().await;
        // Each generation is tried once: a refused reload waits for the next change.
        if let Ok(generation) = store.config_generation().await {
            if generation != seen_config && generation != registry.reflects() {
                metrics.reloaded(registry.reload_logged("store change").await.is_ok());
            }
            seen_config = generation;
        }
        if let Ok(revocations) = store.generation("revocations").await
            && revocations != seen_revocations
        {
            seen_revocations = revocations;
            // A little overlap: a revocation stamped in the same second is read twice, never missed.
            let from = since - 2;
            since = store.now();
            if let Err(e) = sessions.revocations.pull(&store, from).await {
                tracing::warn!(code = "PG0403", error = %e, "cannot read revocations from the store");
            }
        }
    }
}
