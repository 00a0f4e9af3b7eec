//! Assembles a running gateway: the Pingora server with the proxy on its listeners, and
//! beside it the admin listener, the upstream health checker and reload on SIGHUP.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use async_trait::async_trait;
use pingora::apps::HttpServerOptions;
use pingora::server::configuration::ServerConf;
use pingora::server::{Server, ShutdownWatch};
use pingora::services::background::{BackgroundService, background_service};

use crate::admin::{AdminService, metrics::Metrics};
use crate::proxy::Gateway;
use crate::registry::Registry;
use crate::tls;

/// Runs the gateway on `config` until the process is told to stop. Never returns on success.
pub fn serve(config: &Path) -> anyhow::Result<()> {
    let registry =
        Arc::new(Registry::load(config).with_context(|| format!("loading {}", config.display()))?);
    let snapshot = registry.snapshot_full();
    let settings = &snapshot.config;

    let conf = ServerConf {
        threads: settings.proxy.threads,
        // Stop promptly: finish in-flight requests for up to 5 s, no extra grace period.
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(5),
        ..ServerConf::default()
    };
    ignore_early_hangups()?;
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    let metrics = Arc::new(Metrics::new());
    let mut proxy = pingora::proxy::http_proxy_service_with_name(
        &server.configuration,
        Gateway::new(registry.clone(), metrics.clone()),
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
    server.add_service(background_service(
        "admin",
        AdminService {
            listen: settings.admin.listen,
            registry: registry.clone(),
            metrics: metrics.clone(),
        },
    ));
    server.add_service(background_service(
        "health checks",
        HealthChecker(registry.clone()),
    ));
    server.add_service(background_service(
        "reload on SIGHUP",
        ReloadOnHangup { registry, metrics },
    ));

    tracing::info!(
        code = "PG0001",
        http = ?settings.listen.http,
        https = ?settings.listen.https,
        admin = %settings.admin.listen,
        pools = settings.pools.len(),
        "poolgate is starting"
    );
    server.run_forever()
}

/// SIGHUP's default action ends the process. Installing tokio's handler now (it stays
/// for the life of the process) turns a SIGHUP that arrives before the reload service
/// listens into a no-op instead of a crash.
fn ignore_early_hangups() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).map(drop)
    })?;
    Ok(())
}

/// Probes each app's upstream servers on its configured interval, for the snapshot in force.
struct HealthChecker(Arc<Registry>);

#[async_trait]
impl BackgroundService for HealthChecker {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tick.tick() => {}
            }
            let now = Instant::now();
            for upstream in self.0.snapshot().upstreams() {
                tokio::spawn(async move { upstream.check_if_due(now).await });
            }
        }
    }
}

/// `kill -HUP` re-reads the config file; a bad file is refused and logged.
struct ReloadOnHangup {
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
}

#[async_trait]
impl BackgroundService for ReloadOnHangup {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(code = "PG0103", error = %e, "cannot listen for SIGHUP; reload through the admin API");
                return;
            }
        };
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = hangups.recv() => {
                    let registry = self.registry.clone();
                    let ok = tokio::task::spawn_blocking(move || registry.reload_logged("SIGHUP").is_ok()).await.unwrap_or(false);
                    self.metrics.reloaded(ok);
                }
            }
        }
    }
}
