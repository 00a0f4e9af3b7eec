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

use crate::config::{App, Config, ConfigErrors, Extra, IdentityHeaders};
use crate::crypto::MasterKey;
use crate::ids::{AppId, Host, PoolId};
use crate::proxy::StripSet;
use crate::store::{Fragment, FragmentKind, Store, StoreError};
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
                    routes.insert(host.clone(), Route::App(pool_route.clone(), app_route.clone()));
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
    Upstream { pool: PoolId, app: AppId, reason: String },
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

/// The live configuration of a running gateway: the file, the run-time objects of the
/// store, and the snapshot built from both.
pub struct Registry {
    path: PathBuf,
    store: Store,
    master: MasterKey,
    current: ArcSwap<Snapshot>,
    /// One reload at a time, so two triggers cannot interleave their swaps.
    reloading: tokio::sync::Mutex<()>,
}

/// Run-time objects as config fragments for [`Config::load_with`].
fn extras(fragments: Vec<Fragment>) -> Vec<Extra> {
    fragments
        .into_iter()
        .map(|f| Extra {
            label: match f.kind {
                FragmentKind::Pool => format!("pool `{}` (created at run time)", f.pool_id),
                FragmentKind::App => format!("app `{}/{}` (created at run time)", f.pool_id, f.id),
                FragmentKind::Source => format!("source `{}/{}` (created at run time)", f.pool_id, f.id),
            },
            is_pool: f.kind == FragmentKind::Pool,
            pool: f.pool_id,
            text: f.body,
        })
        .collect()
}

impl Registry {
    pub async fn load(path: &Path, store: Store, master: MasterKey) -> Result<Registry, ReloadError> {
        let config = Config::load_with(path, &extras(store.fragments().await?))?;
        let snapshot = Snapshot::build(config, None)?;
        let registry = Registry {
            path: path.to_owned(),
            store,
            master,
            current: ArcSwap::from_pointee(snapshot),
            reloading: tokio::sync::Mutex::new(()),
        };
        registry.sync_store().await?;
        Ok(registry)
    }

    /// The snapshot in force. Cheap: one atomic load.
    pub fn snapshot(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.current.load()
    }

    /// The snapshot in force, as an owned handle.
    pub fn snapshot_full(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn master_key(&self) -> &MasterKey {
        &self.master
    }

    /// Validates the file and the run-time objects with one more, changing nothing.
    pub async fn trial(&self, extra: Extra) -> Result<Config, ReloadError> {
        let mut all = extras(self.store.fragments().await?);
        all.push(extra);
        let config = Config::load_with(&self.path, &all)?;
        crate::tls::CertStore::load(&config).map_err(ReloadError::Tls)?;
        Ok(config)
    }

    /// Re-reads the file and the run-time objects. A valid whole replaces the snapshot
    /// atomically; an invalid one is refused and the snapshot in force stays.
    pub async fn reload(&self) -> Result<(), ReloadError> {
        let _one_at_a_time = self.reloading.lock().await;
        let config = Config::load_with(&self.path, &extras(self.store.fragments().await?))?;
        let old = self.current.load_full();
        if config.listen != old.config.listen || config.admin.listen != old.config.admin.listen {
            tracing::warn!(
                code = "PG0102",
                "listener addresses changed; they take effect at the next restart"
            );
        }
        let snapshot = Snapshot::build(config, Some(&old))?;
        self.current.store(Arc::new(snapshot));
        self.sync_store().await?;
        Ok(())
    }

    /// Reloads and logs the outcome; the shape every trigger wants.
    pub async fn reload_logged(&self, trigger: &str) -> Result<(), ReloadError> {
        match self.reload().await {
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

    /// Records the file's pools in the store and gives every pool a signing key.
    async fn sync_store(&self) -> Result<(), ReloadError> {
        let snapshot = self.snapshot_full();
        let file_pools: Vec<_> = snapshot
            .config
            .pools
            .iter()
            .filter(|p| p.config_managed)
            .cloned()
            .collect();
        self.store.sync_config_pools(&file_pools).await?;
        for pool in &snapshot.config.pools {
            self.store.ensure_key(pool.id.as_str(), &self.master).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
