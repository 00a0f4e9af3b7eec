//! Assembles a running gateway. Two halves, on separate runtimes:
//!
//! - the **proxy** (Pingora's threads): the hot path, reading only the registry snapshot;
//! - the **control plane** (one small tokio runtime of its own): the store, the admin
//!   listener, upstream health checks, reloads on SIGHUP, and polling the store for
//!   changes other nodes made. Store connections live and die with this runtime.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use pingora::apps::HttpServerOptions;
use pingora::server::Server;
use pingora::server::configuration::ServerConf;

use crate::admin::{self, AdminState};
use crate::clock;
use crate::config::Config;
use crate::crypto::MasterKey;
use crate::metrics::Metrics;
use crate::portal::{self, InternalKey, WebState};
use crate::proxy::{Drain, Gateway, PortalLink};
use crate::registry::Registry;
use crate::session::{Sessions, StoreProfiles};
use crate::store::Store;
use crate::tls;

mod upgrade;

/// Runs the gateway on `config` until the process is told to stop. Never returns on success.
///
/// With `upgrade`, takes over from the running process (`[server] pid_file`): once this one
/// is ready, the old one hands over its listening sockets through `[server] upgrade_socket`
/// and then finishes its requests in flight (`drain_timeout`) and exits. No connection
/// is refused in between: both accept on the same sockets for a few seconds.
pub fn serve(config_path: &Path, upgrade: bool) -> anyhow::Result<()> {
    upgrade::ignore_hand_over_until_running();
    let config = Config::load(config_path)?;
    let predecessor = match upgrade {
        true => Some(upgrade::running(&config.server.pid_file)?),
        false => None,
    };
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
    // leaving a gateway whose admin address answers for another process. An upgrade takes
    // it once the old process lets it go, which it does as soon as it is told to hand over.
    let admin_listener = match predecessor {
        Some(_) => None,
        None => Some(
            control
                .block_on(tokio::net::TcpListener::bind(listen))
                .with_context(|| format!("binding the admin listener {listen}"))?,
        ),
    };
    // Pingora binds the proxy's listeners later, in its own threads, and a port taken there
    // would leave a gateway up without them: each is tried here first, so a taken port
    // stops the start with its address. (An upgrade takes them over instead.)
    if predecessor.is_none() {
        for addr in [settings.listen.http, settings.listen.https].into_iter().flatten() {
            std::net::TcpListener::bind(addr).with_context(|| format!("binding the proxy listener {addr}"))?;
        }
    }
    let drain = Arc::new(Drain::default());
    let admin_drain = drain.clone();
    control.spawn(async move {
        let listener = match admin_listener {
            Some(l) => l,
            None => match upgrade::bind_when_free(listen).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::error!(code = "PG0201", %listen, error = %e, "the admin listener was never freed");
                    return;
                }
            },
        };
        tokio::select! {
            served = admin::serve(listener, state, admin_drain) => if let Err(e) = served {
                tracing::error!(code = "PG0201", %listen, error = %e, "admin listener stopped");
            },
            _ = upgrade::stopping() => {}
        }
    });
    // Told to stop: every answer from then on closes its connection, so keep-alive clients
    // move to the new process before this one stops reading.
    let stopping = drain.clone();
    control.spawn(async move {
        let why = upgrade::stopping().await;
        stopping.stopping.store(true, Ordering::Release);
        // Handing over, the service goes on (the new process is its main process now).
        if why == upgrade::Stop::Terminate {
            upgrade::notify_stopping();
        }
        tracing::info!(code = "PG0004", "draining: finishing requests in flight, then exiting");
    });
    control.spawn(check_health(registry.clone()));
    control.spawn(reload_on_hangup(registry.clone(), metrics.clone()));
    control.spawn(follow_store(registry.clone(), metrics.clone(), sessions.clone()));
    control.spawn(prune_caches(registry.clone(), sessions.clone()));
    control.spawn(crate::op::backchannel::deliver_forever(registry.clone()));

    let conf = ServerConf {
        threads: settings.proxy.threads,
        // Stopping (an upgrade or SIGTERM): no new connections; requests in flight have the
        // drain timeout to finish (the grace period: Pingora's runtimes are then shut down,
        // which drops whatever is still running).
        grace_period_seconds: Some(settings.server.drain_timeout.as_millis().div_ceil(1000) as u64),
        graceful_shutdown_timeout_seconds: Some(1),
        upgrade_sock: settings.server.upgrade_socket.display().to_string(),
        upgrade_sock_connect_accept_max_retries: Some(upgrade::HAND_OVER_WITHIN.as_secs() as usize),
        ..ServerConf::default()
    };
    let handed_over = Arc::new(AtomicBool::new(false));
    if let Some(old) = predecessor {
        upgrade::ask_to_hand_over(old, &settings.server.upgrade_socket, handed_over.clone())?;
    }
    let opt = pingora::server::configuration::Opt {
        upgrade: predecessor.is_some(),
        ..Default::default()
    };
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    // With `upgrade`, this returns once the old process handed its sockets over.
    server.bootstrap();
    handed_over.store(true, Ordering::Release);
    upgrade::write_pid_file(&settings.server.pid_file)?;
    let mut proxy = pingora::proxy::http_proxy_service_with_name(
        &server.configuration,
        Gateway::new(
            registry.clone(),
            metrics.clone(),
            sessions,
            PortalLink { addr: portal_addr, key },
            Arc::new(StoreProfiles {
                store: registry.store().clone(),
                control: control.handle().clone(),
            }),
            drain.clone(),
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
        let current = registry.clone();
        let certs = Box::new(move |host: &str| current.snapshot().certs.get(host));
        let tls = tls::listener_settings(certs).context("TLS listener settings")?;
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
    control.spawn(upgrade::listen_for_stop(server.watch_execution_phase()));
    control.spawn(upgrade::exit_when_drained(server.watch_execution_phase(), drain));
    control.spawn(upgrade::notify_ready_once_accepting(settings.listen.clone()));
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

/// How long an expired session stays in the store (the admin API no longer lists it).
const SESSION_MEMORY_SECS: i64 = 3600;

/// Every half minute, drops cached profiles, identity headers and bearer tokens that
/// have expired: a node's memory follows its recently active users. Expired
/// authorization codes, refresh tokens and sessions go from the store.
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
        if let Err(e) = registry.store().prune_sessions(now - SESSION_MEMORY_SECS).await {
            tracing::warn!(code = "PG0406", error = %e, "cannot prune ended sessions");
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
