//! The live snapshot: host → route, certificates, upstreams; swapped whole on reload.
//!
//! The proxy reads one immutable [`Snapshot`] per request (an `ArcSwap` load, one hash
//! lookup). A reload builds a complete new snapshot first and swaps it in only when every
//! part of it is valid, so a bad file never disturbs the routes in force.

mod upstream;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;

use crate::config::{
    AccessPolicy, Branding, Claim, Config, ConfigErrors, Cors, Extra, HealthCheck, IdentityHeaders, LockoutPolicy,
    MfaPolicy, SessionPolicy,
};
use crate::crypto::jwt::{Signer, Verifier};
use crate::crypto::signing::PublicJwk;
use crate::crypto::{MasterKey, Sealer};
use crate::ids::{AppId, Host, PoolId, Serial};
use crate::metrics::AppMetrics;
use crate::store::{Fragment, FragmentKind, Store, StoreError};
use crate::tls::CertStore;
use crate::wire::StripSet;

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
    /// The pool's OpenID Provider issuer: `scheme://portal[:port]`.
    pub issuer: String,
    pub mfa: MfaPolicy,
    pub sessions: SessionPolicy,
    pub lockout: LockoutPolicy,
    pub branding: Branding,
    /// Shared with the previous snapshot while the pool's published keys are unchanged.
    pub keys: Arc<PoolKeys>,
    /// The pool's apps by id (the portal's OIDC clients).
    pub apps: HashMap<String, Arc<AppRoute>>,
    /// The OP's registered clients that are not apps, by id.
    pub clients: HashMap<String, Arc<crate::config::Client>>,
    /// The pools that take this pool's users in through a `kind = "pool"` source, as
    /// clients of this pool's OP, by client id.
    pub federated: HashMap<String, Arc<FederatedPool>>,
    /// The pool's identity sources, in the config's order.
    pub sources: Vec<Arc<crate::config::Source>>,
}

/// Pool `E`'s source `src` naming this pool, seen from here: a confidential client the
/// gateway registers by itself and keeps in step with `E`'s portal. Its secret is derived
/// from the master key on both sides ([`FederatedPool::secret`]) and never stored.
#[derive(Debug)]
pub struct FederatedPool {
    /// `pool.E.src`: dots keep it apart from every app and client id.
    pub client_id: String,
    pub pool: PoolId,
    pub pool_name: String,
    pub source: crate::ids::SourceId,
    /// `E`'s portal where people reach it, each with the source's callback path.
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub backchannel_logout_uri: String,
}

impl FederatedPool {
    pub fn client_id(pool: &PoolId, source: &crate::ids::SourceId) -> String {
        format!("pool.{pool}.{source}")
    }

    /// The client secret of `pool`'s source `source` at `issuer_pool`'s OP.
    pub fn secret(master: &MasterKey, issuer_pool: &PoolId, pool: &PoolId, source: &crate::ids::SourceId) -> String {
        use base64::Engine;
        let key = master.derive("federation-client", &format!("{issuer_pool}\0{pool}\0{source}"));
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key)
    }
}

/// Paths on a pool's portal that belong to its source `src`.
pub fn source_path(source: &crate::ids::SourceId, leaf: &str) -> String {
    format!("/federation/{source}/{leaf}")
}

/// A pool's key material in memory: the cookie key, the signing key, published keys.
pub struct PoolKeys {
    pub cookies: Sealer,
    pub signer: Option<Signer>,
    /// The RS256 signer, for the ID tokens of clients that ask for RS256.
    pub rsa: Option<Signer>,
    pub verifier: Verifier,
    pub jwks: Vec<PublicJwk>,
    /// The published keys as (kid, active), as [`Store::published_kids`] lists them: what a
    /// reload compares to decide whether these keys can be kept.
    published: Vec<(String, bool)>,
}

impl PoolKeys {
    /// The signer of an algorithm, if the pool has a key for it.
    pub fn signer_for(&self, alg: crate::config::SigningAlg) -> Option<&Signer> {
        match alg {
            crate::config::SigningAlg::ES256 => self.signer.as_ref(),
            crate::config::SigningAlg::RS256 => self.rsa.as_ref(),
        }
    }

    /// Keys made in memory, not stored: for benchmarks and tests.
    pub fn generate(master: &MasterKey, pool: &str) -> Option<PoolKeys> {
        let key = crate::crypto::signing::generate_es256().ok()?;
        let jwks = vec![key.jwk.clone()];
        Some(PoolKeys {
            cookies: Sealer::new(master, "cookie", pool),
            signer: Signer::from_pkcs8(&key.jwk.kid, &key.pkcs8).ok(),
            rsa: None,
            verifier: Verifier::new(&jwks),
            published: vec![(key.jwk.kid.clone(), true)],
            jwks,
        })
    }

    /// Loads the pool's keys from the store (the private half opened with the master key).
    pub async fn load(store: &Store, master: &MasterKey, pool: &str) -> Result<PoolKeys, StoreError> {
        let published = store.keys(pool).await?;
        let signer = match store.active_private_key(pool, master, "ES256").await {
            Ok((kid, pkcs8)) => Some(Signer::from_pkcs8(&kid, &pkcs8).map_err(|e| StoreError::Crypto(e.to_string()))?),
            Err(StoreError::NotFound) => None,
            Err(e) => return Err(e),
        };
        let rsa = match store.active_private_key(pool, master, "RS256").await {
            Ok((kid, der)) => Some(Signer::from_rsa_der(&kid, &der).map_err(|e| StoreError::Crypto(e.to_string()))?),
            Err(StoreError::NotFound) => None,
            Err(e) => return Err(e),
        };
        let kids = published
            .iter()
            .map(|k| (k.kid.clone(), k.status == "active"))
            .collect();
        let jwks: Vec<PublicJwk> = published.into_iter().map(|k| k.public_jwk).collect();
        Ok(PoolKeys {
            cookies: Sealer::new(master, "cookie", pool),
            signer,
            rsa,
            verifier: Verifier::new(&jwks),
            jwks,
            published: kids,
        })
    }
}

pub struct AppRoute {
    pub id: AppId,
    /// The app's display name (its id when the config gives none).
    pub name: String,
    /// This snapshot's instance of the app: caches of what it is told key on it, so a
    /// reload (new header names, say) takes effect at once.
    pub serial: Serial,
    pub pool: PoolId,
    pub hosts: Vec<Host>,
    pub policy: AccessPolicy,
    pub cors: Option<Cors>,
    pub redirect_uris: Vec<String>,
    pub upstream: Arc<Upstream>,
    pub public_paths: Vec<String>,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub https_redirect: bool,
    pub cache_private: bool,
    /// The identity headers the app is told (names, then aliases) with the claim each
    /// carries; names as they go on the wire, made once and shared by every user's copy.
    pub identity_headers: Vec<(Claim, Bytes)>,
    /// What to strip from client requests, built once per snapshot.
    pub strip: StripSet,
    /// What the app's session cookies are sealed to (`session::app_binding`).
    pub cookie_binding: String,
    /// The app's metric handles, resolved by its first request.
    pub metrics: OnceLock<AppMetrics>,
}

fn wire_names(headers: &IdentityHeaders) -> Vec<(Claim, Bytes)> {
    let name = |h: &http::HeaderName| Bytes::copy_from_slice(h.as_str().as_bytes());
    headers
        .names
        .iter()
        .map(|(c, h)| (*c, name(h)))
        .chain(headers.aliases.iter().map(|(h, c)| (*c, name(h))))
        .collect()
}

/// One consistent view of the configuration, as the hot path needs it.
pub struct Snapshot {
    routes: HashMap<Host, Route>,
    pools: HashMap<PoolId, Arc<PoolRoute>>,
    pub config: Arc<Config>,
    pub certs: CertStore,
}

pub use crate::config::CONSOLE_CLIENT;

/// The admin console's registration at the console pool's OP, made by the gateway: a
/// public client (PKCE) whose callbacks are the admin listener under each name it
/// answers to.
fn console_client(config: &Config) -> Option<(PoolId, crate::config::Client)> {
    let access = config.admin.console.as_ref()?;
    let port = config.admin.listen.port();
    let ip = match config.admin.listen.ip() {
        std::net::IpAddr::V4(a) if a.is_unspecified() => "127.0.0.1".to_owned(),
        std::net::IpAddr::V4(a) => a.to_string(),
        std::net::IpAddr::V6(a) if a.is_unspecified() => "[::1]".to_owned(),
        std::net::IpAddr::V6(a) => format!("[{a}]"),
    };
    let names = [ip, "localhost".to_owned()]
        .into_iter()
        .chain(config.admin.hosts.iter().map(|h| h.to_string()));
    let client = crate::config::Client {
        id: crate::ids::ClientId::parse(CONSOLE_CLIENT).ok()?,
        origin: crate::config::Origin::Gateway,
        name: "poolgate console".into(),
        auth_method: crate::config::ClientAuthMethod::None,
        redirect_uris: names.map(|n| format!("http://{n}:{port}/console/callback")).collect(),
        post_logout_redirect_uris: Vec::new(),
        backchannel_logout_uri: None,
        grant_types: vec![crate::config::GrantType::AuthorizationCode],
        scopes: ["openid", "profile", "email", "groups"].map(str::to_owned).to_vec(),
        id_token_alg: crate::config::SigningAlg::ES256,
        access_token_lifetime: crate::config::Written::parse("5m")?,
        refresh_token_lifetime: crate::config::Written::parse("5m")?,
    };
    Some((access.pool.clone(), client))
}

/// For each pool, the pools whose `kind = "pool"` sources name it.
fn federated_pools(config: &Config) -> HashMap<PoolId, HashMap<String, Arc<FederatedPool>>> {
    let reached = config.listen.reached_at();
    let mut out: HashMap<PoolId, HashMap<String, Arc<FederatedPool>>> = HashMap::new();
    for pool in &config.pools {
        for source in &pool.sources {
            let crate::config::SourceKind::Pool(issuer_pool) = &source.kind else {
                continue;
            };
            let at = |leaf: &str| -> Vec<String> {
                reached
                    .iter()
                    .map(|o| format!("{}{}", o.origin(pool.portal.as_str()), source_path(&source.id, leaf)))
                    .collect()
            };
            let client_id = FederatedPool::client_id(&pool.id, &source.id);
            let client = FederatedPool {
                client_id: client_id.clone(),
                pool: pool.id.clone(),
                pool_name: pool.name.clone(),
                source: source.id.clone(),
                redirect_uris: at("callback"),
                post_logout_redirect_uris: at("signed-out"),
                backchannel_logout_uri: at("backchannel-logout").into_iter().next().unwrap_or_default(),
            };
            out.entry(issuer_pool.clone())
                .or_default()
                .insert(client_id, Arc::new(client));
        }
    }
    out
}

impl Snapshot {
    /// Builds every part of a snapshot; `previous` lends its upstreams (and their health)
    /// to apps whose upstream settings did not change.
    pub fn build(
        config: Config,
        previous: Option<&Snapshot>,
        mut keys: HashMap<PoolId, Arc<PoolKeys>>,
    ) -> Result<Snapshot, ReloadError> {
        let (certs, missing) = CertStore::load(&config, previous.map(|p| &p.certs));
        for m in &missing {
            tracing::warn!(
                code = "PG0104",
                host = %m.host,
                reason = %m.reason,
                "no usable certificate: this host is not served over HTTPS until one is added and the config reloaded"
            );
        }
        // The issuer is where people reach the portal: the public origin, or a listener
        // (HTTPS first).
        let reached = config.listen.reached_at().first().copied();

        let mut routes = HashMap::new();
        let mut pools = HashMap::new();
        let mut federated = federated_pools(&config);
        let console = console_client(&config);
        // Apps with the same servers and checks share one upstream (and its health state),
        // kept from the previous snapshot when unchanged.
        let mut upstreams: HashMap<(Vec<String>, HealthCheck), Arc<Upstream>> = previous
            .map(|p| p.upstreams().into_iter().map(|u| (u.key(), u)).collect())
            .unwrap_or_default();
        for pool in &config.pools {
            let mut apps = HashMap::new();
            for app in &pool.apps {
                let key = (app.upstreams.clone(), app.health_check.clone());
                let upstream = match upstreams.get(&key) {
                    Some(u) => u.clone(),
                    None => {
                        let u = Arc::new(Upstream::new(app).map_err(|e| ReloadError::Upstream {
                            pool: pool.id.clone(),
                            app: app.id.clone(),
                            reason: e.to_string(),
                        })?);
                        upstreams.insert(key, u.clone());
                        u
                    }
                };
                let app_route = Arc::new(AppRoute {
                    id: app.id.clone(),
                    serial: Serial::next(),
                    pool: pool.id.clone(),
                    hosts: app.hosts.clone(),
                    policy: app.policy.clone(),
                    cors: app.cors.clone(),
                    redirect_uris: app.redirect_uris.clone(),
                    upstream,
                    public_paths: app.public_paths.clone(),
                    name: app.name.clone(),
                    timeout: app.timeout.get(),
                    connect_timeout: app.connect_timeout.get(),
                    https_redirect: app.https_redirect,
                    cache_private: app.cache_private,
                    identity_headers: wire_names(&app.headers),
                    strip: app.headers.strip_set(),
                    metrics: OnceLock::new(),
                    cookie_binding: crate::session::app_binding(pool.id.as_str(), app.id.as_str()),
                });
                apps.insert(app.id.to_string(), app_route);
            }
            let pool_keys = keys.remove(&pool.id).ok_or_else(|| {
                ReloadError::Store(StoreError::Invalid(format!("no keys loaded for pool {}", pool.id)))
            })?;
            let pool_route = Arc::new(PoolRoute {
                id: pool.id.clone(),
                name: pool.name.clone(),
                portal: pool.portal.clone(),
                issuer: match reached {
                    Some(origin) => origin.origin(pool.portal.as_str()),
                    None => format!("http://{}", pool.portal),
                },
                mfa: pool.mfa,
                sessions: pool.sessions,
                lockout: pool.lockout,
                branding: pool.branding.clone(),
                keys: pool_keys,
                apps: apps.clone(),
                clients: pool
                    .clients
                    .iter()
                    .chain(console.iter().filter(|(p, _)| *p == pool.id).map(|(_, c)| c))
                    .map(|c| (c.id.to_string(), Arc::new(c.clone())))
                    .collect(),
                federated: federated.remove(&pool.id).unwrap_or_default(),
                sources: pool.sources.iter().cloned().map(Arc::new).collect(),
            });
            pools.insert(pool.id.clone(), pool_route.clone());
            for host in std::iter::once(&pool.portal).chain(&pool.domains) {
                routes.insert(host.clone(), Route::Portal(pool_route.clone()));
            }
            for app in apps.values() {
                for host in &app.hosts {
                    routes.insert(host.clone(), Route::App(pool_route.clone(), app.clone()));
                }
            }
        }
        Ok(Snapshot {
            routes,
            pools,
            config: Arc::new(config),
            certs,
        })
    }

    /// A pool's route by id.
    pub fn pool(&self, id: &str) -> Option<Arc<PoolRoute>> {
        self.pools.get(id).cloned()
    }

    /// The route of a normalised host; `None` means no pool serves it.
    pub fn resolve(&self, host: &str) -> Option<&Route> {
        self.routes.get(host)
    }

    /// Each upstream server of an app, and whether the last health check found it up.
    pub fn upstream_health(&self, pool: &str, app: &str) -> Vec<(String, bool)> {
        let app = self.pool(pool).and_then(|p| p.apps.get(app).cloned());
        app.map(|a| a.upstream.health()).unwrap_or_default()
    }

    /// Every distinct upstream in this snapshot, for the health checker.
    pub fn upstreams(&self) -> Vec<Arc<Upstream>> {
        let mut seen = std::collections::HashSet::new();
        self.routes
            .values()
            .filter_map(|r| match r {
                Route::App(_, app) if seen.insert(Arc::as_ptr(&app.upstream)) => Some(app.upstream.clone()),
                _ => None,
            })
            .collect()
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
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The live configuration of a running gateway: the file, the run-time objects of the
/// store, and the snapshot built from both.
pub struct Registry {
    path: PathBuf,
    store: Store,
    master: MasterKey,
    current: ArcSwap<Snapshot>,
    /// The store's config generation the snapshot in force was read at (see `reflects`).
    generation: AtomicI64,
    /// One reload at a time, so two triggers cannot interleave their swaps.
    reloading: tokio::sync::Mutex<()>,
}

/// Run-time objects as config fragments for [`Config::load_with`].
pub fn extras(fragments: Vec<Fragment>) -> Vec<Extra> {
    fragments
        .into_iter()
        .map(|f| Extra {
            label: match f.kind {
                FragmentKind::Pool => format!("pool `{}` (created at run time)", f.pool_id),
                FragmentKind::App => format!("app `{}/{}` (created at run time)", f.pool_id, f.id),
                FragmentKind::Source => format!("source `{}/{}` (created at run time)", f.pool_id, f.id),
                FragmentKind::Client => format!("client `{}/{}` (created at run time)", f.pool_id, f.id),
            },
            is_pool: f.kind == FragmentKind::Pool,
            pool: f.pool_id,
            text: f.body,
        })
        .collect()
}

impl Registry {
    pub async fn load(path: &Path, store: Store, master: MasterKey) -> Result<Registry, ReloadError> {
        let generation = store.config_generation().await?;
        let config = Config::load_with(path, &extras(store.fragments().await?))?;
        let keys = Registry::prepare(&store, &master, &config, None).await?;
        let snapshot = Snapshot::build(config, None, keys)?;
        Ok(Registry {
            path: path.to_owned(),
            store,
            master,
            current: ArcSwap::from_pointee(snapshot),
            generation: AtomicI64::new(generation),
            reloading: tokio::sync::Mutex::new(()),
        })
    }

    /// Records the file's pools in the store, gives every pool a signing key, and loads
    /// the keys of every pool: what a snapshot needs from the store. A pool whose published
    /// keys are those of the `previous` snapshot keeps them, so a reload of many pools costs
    /// a few queries, not two per pool.
    async fn prepare(
        store: &Store,
        master: &MasterKey,
        config: &Config,
        previous: Option<&Snapshot>,
    ) -> Result<HashMap<PoolId, Arc<PoolKeys>>, ReloadError> {
        let file_pools: Vec<_> = config.pools.iter().filter(|p| p.origin.managed()).cloned().collect();
        store.sync_config_pools(&file_pools).await?;
        let mut published = store.published_kids().await?;
        // Keys a pool lacks are made first, so what is published below includes them: an
        // ES256 key for every pool, an RS256 key for a pool with a client that wants one.
        let mut made = false;
        for pool in &config.pools {
            let id = pool.id.as_str();
            if !published.get(id).is_some_and(|k| k.iter().any(|(_, active)| *active)) {
                store.ensure_key(id, master).await?;
                made = true;
            }
            if pool
                .clients
                .iter()
                .any(|c| c.id_token_alg == crate::config::SigningAlg::RS256)
            {
                made |= store.ensure_rsa_key(id, master).await?;
            }
        }
        if made {
            published = store.published_kids().await?;
        }
        let mut keys = HashMap::new();
        for pool in &config.pools {
            let id = pool.id.as_str();
            let kids = published.remove(id).unwrap_or_default();
            let kept = previous
                .and_then(|s| s.pools.get(id))
                .filter(|p| p.keys.published == kids)
                .map(|p| p.keys.clone());
            let pool_keys = match kept {
                Some(k) => k,
                None => Arc::new(PoolKeys::load(store, master, id).await?),
            };
            keys.insert(pool.id.clone(), pool_keys);
        }
        Ok(keys)
    }

    /// The snapshot in force. Cheap: one atomic load.
    pub fn snapshot(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.current.load()
    }

    /// The snapshot in force, as an owned handle.
    /// The config file the gateway runs from.
    pub fn config_path(&self) -> &Path {
        &self.path
    }

    pub fn snapshot_full(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn master_key(&self) -> &MasterKey {
        &self.master
    }

    /// Validates the file and the run-time objects with one more (in place of the one it
    /// `replaces`, for a change), changing nothing.
    pub async fn trial(&self, extra: Extra, replaces: Option<&Fragment>) -> Result<Config, ReloadError> {
        let mut fragments = self.store.fragments().await?;
        let before = Config::load_with(&self.path, &extras(fragments.clone())).ok();
        if let Some(old) = replaces {
            fragments.retain(|f| (&f.pool_id, f.kind, &f.id) != (&old.pool_id, old.kind, &old.id));
        }
        let mut all = extras(fragments);
        all.push(extra);
        let config = Config::load_with(&self.path, &all)?;
        // A host the change adds must come with its certificate: refused now, while the
        // operator is there to add one. (Hosts already served without one are only logged.)
        let (_, missing) = crate::tls::CertStore::load(&config, None);
        let known = |h: &Host| before.as_ref().is_some_and(|c| c.hosts().any(|x| x == h));
        let new: Vec<String> = missing
            .iter()
            .filter(|m| !known(&m.host))
            .map(|m| m.to_string())
            .collect();
        if !new.is_empty() {
            return Err(ReloadError::Tls(new.join("; ")));
        }
        Ok(config)
    }

    /// Re-reads the file and the run-time objects. A valid whole replaces the snapshot
    /// atomically; an invalid one is refused and the snapshot in force stays.
    pub async fn reload(&self) -> Result<(), ReloadError> {
        let _one_at_a_time = self.reloading.lock().await;
        // Read before what it stamps: a change landing meanwhile leaves the stamp behind,
        // so the store poll reloads once more rather than never.
        let generation = self.store.config_generation().await?;
        let config = Config::load_with(&self.path, &extras(self.store.fragments().await?))?;
        let old = self.current.load_full();
        if config.listen != old.config.listen || config.admin.listen != old.config.admin.listen {
            tracing::warn!(
                code = "PG0102",
                "listener addresses changed; they take effect at the next restart"
            );
        }
        let keys = Registry::prepare(&self.store, &self.master, &config, Some(&old)).await?;
        let snapshot = Snapshot::build(config, Some(&old), keys)?;
        self.current.store(Arc::new(snapshot));
        self.generation.store(generation, Ordering::Release);
        Ok(())
    }

    /// The store's config generation (`Store::config_generation`) the snapshot in force
    /// reflects: a node that changed the store and reloaded need not reload again when its
    /// poll sees its own change.
    pub fn reflects(&self) -> i64 {
        self.generation.load(Ordering::Acquire)
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
}
