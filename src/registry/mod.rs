//! The live snapshot: host → route, certificates, upstreams; swapped whole on reload.
//!
//! The proxy reads one immutable [`Snapshot`] per request (an `ArcSwap` load, one hash
//! lookup). A reload builds a complete new snapshot first and swaps it in only when every
//! part of it is valid, so a bad file never disturbs the routes in force.

mod upstream;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::config::{App, Config, ConfigErrors, IdentityHeaders};
use crate::ids::{AppId, Host, PoolId};
use crate::proxy::StripSet;
use crate::tls::CertStore;

pub use upstream::Upstream;

/// What a host is for.
#[derive(Clone)]
pub enum Route {
    /// The pool's portal: login, its OpenID Provider, federation callbacks.
    Portal(Arc<PoolRoute>),
    /// A protected app of the pool.
    App(Arc<PoolRoute>, Arc<AppRoute>),
}

impl Route {
    pub fn pool(&self) -> &PoolRoute {
        match self {
            Route::Portal(p) | Route::App(p, _) => p,
        }
    }
}

pub struct PoolRoute {
    pub id: PoolId,
    pub name: String,
    pub portal: Host,
}

pub struct AppRoute {
    pub id: AppId,
    pub upstream: Arc<Upstream>,
    pub public_paths: Vec<String>,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub https_redirect: bool,
    pub headers: IdentityHeaders,
    /// What to strip from client requests, built once per snapshot.
    pub strip: StripSet,
}

/// One consistent view of the configuration, as the hot path needs it.
pub struct Snapshot {
    routes: HashMap<Host, Route>,
    pub config: Arc<Config>,
    pub certs: CertStore,
}

impl Snapshot {
    /// Builds every part of a snapshot; `previous` lends its upstreams (and their health)
    /// to apps whose upstream settings did not change.
    pub fn build(config: Config, previous: Option<&Snapshot>) -> Result<Snapshot, ReloadError> {
        let certs = CertStore::load(&config).map_err(ReloadError::Tls)?;
        let mut routes = HashMap::new();
        for pool in &config.pools {
            let pool_route = Arc::new(PoolRoute {
                id: pool.id.clone(),
                name: pool.name.clone(),
                portal: pool.portal.clone(),
            });
            for host in std::iter::once(&pool.portal).chain(&pool.domains) {
                routes.insert(host.clone(), Route::Portal(pool_route.clone()));
            }
            for app in &pool.apps {
                let upstream = match previous.and_then(|p| p.reusable_upstream(app)) {
                    Some(u) => u,
                    None => Arc::new(Upstream::new(app).map_err(|e| ReloadError::Upstream {
                        pool: pool.id.clone(),
                        app: app.id.clone(),
                        reason: e.to_string(),
                    })?),
                };
                let app_route = Arc::new(AppRoute {
                    id: app.id.clone(),
                    upstream,
                    public_paths: app.public_paths.clone(),
                    timeout: app.timeout,
                    connect_timeout: app.connect_timeout,
                    https_redirect: app.https_redirect,
                    headers: app.headers.clone(),
                    strip: StripSet::new(&app.headers),
                });
                for host in &app.hosts {
                    routes.insert(
                        host.clone(),
                        Route::App(pool_route.clone(), app_route.clone()),
                    );
                }
            }
        }
        Ok(Snapshot {
            routes,
            config: Arc::new(config),
            certs,
        })
    }

    /// The route of a normalised host; `None` means no pool serves it.
    pub fn resolve(&self, host: &str) -> Option<&Route> {
        self.routes.get(host)
    }

    /// Every distinct upstream in this snapshot, for the health checker.
    pub fn upstreams(&self) -> Vec<Arc<Upstream>> {
        let mut seen = Vec::<Arc<Upstream>>::new();
        for route in self.routes.values() {
            if let Route::App(_, app) = route
                && !seen.iter().any(|u| Arc::ptr_eq(u, &app.upstream))
            {
                seen.push(app.upstream.clone());
            }
        }
        seen
    }

    fn reusable_upstream(&self, app: &App) -> Option<Arc<Upstream>> {
        self.routes.values().find_map(|r| match r {
            Route::App(_, a) if a.upstream.serves(app) => Some(a.upstream.clone()),
            _ => None,
        })
    }
}

/// Why a new configuration was not put in force.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(transparent)]
    Config(#[from] ConfigErrors),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("app {pool}/{app}: upstream: {reason}")]
    Upstream {
        pool: PoolId,
        app: AppId,
        reason: String,
    },
}

/// The live configuration of a running gateway, and the file it came from.
pub struct Registry {
    path: PathBuf,
    current: ArcSwap<Snapshot>,
}

impl Registry {
    pub fn load(path: &Path) -> Result<Registry, ReloadError> {
        let config = Config::load(path)?;
        let snapshot = Snapshot::build(config, None)?;
        Ok(Registry {
            path: path.to_owned(),
            current: ArcSwap::from_pointee(snapshot),
        })
    }

    /// The snapshot in force. Cheap: one atomic load.
    pub fn snapshot(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.current.load()
    }

    /// The snapshot in force, as an owned handle.
    pub fn snapshot_full(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Re-reads the file. A valid file replaces the snapshot atomically; an invalid one
    /// is refused and the snapshot in force stays.
    pub fn reload(&self) -> Result<(), ReloadError> {
        let config = Config::load(&self.path)?;
        let old = self.current.load_full();
        if config.listen != old.config.listen || config.admin.listen != old.config.admin.listen {
            tracing::warn!(
                code = "PG0102",
                "listener addresses changed; they take effect at the next restart"
            );
        }
        let snapshot = Snapshot::build(config, Some(&old))?;
        self.current.store(Arc::new(snapshot));
        Ok(())
    }

    /// Reloads and logs the outcome; the shape both SIGHUP and the admin API want.
    pub fn reload_logged(&self, trigger: &str) -> Result<(), ReloadError> {
        match self.reload() {
            Ok(()) => {
                tracing::info!(code = "PG0100", trigger, "configuration reloaded");
                Ok(())
            }
            Err(e) => {
                tracing::error!(code = "PG0101", trigger, error = %e, "configuration refused; the previous one stays in force");
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests;
