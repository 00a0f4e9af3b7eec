//! An identity source as the gateway talks to it: its settings resolved against the live
//! snapshot (a pool source becomes that pool's issuer and the client the gateway made for
//! it there), and the issuer's discovery document and keys, cached per source.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use openidconnect::core::{
    CoreAuthDisplay, CoreClaimName, CoreClaimType, CoreClientAuthMethod, CoreGrantType, CoreJsonWebKey,
    CoreJsonWebKeySet, CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm, CoreJwsSigningAlgorithm,
    CoreResponseMode, CoreResponseType, CoreSubjectIdentifierType,
};
use openidconnect::{AdditionalProviderMetadata, IssuerUrl, JsonWebKey, JsonWebKeySetUrl, ProviderMetadata};
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, RwLock};

use super::FederationError;
use crate::config::{ClaimNames, FirstLogin, SecretSource, Source, SourceKind, SyncMode};
use crate::ids::{PoolId, SourceId};
use crate::registry::{FederatedPool, PoolRoute, source_path};
use crate::web::state::WebState;

/// Discovery is fetched again after this long (the last good copy serves meanwhile, and
/// while the issuer is down).
const METADATA_TTL: Duration = Duration::from_secs(3600);
/// An unknown `kid` fetches the issuer's keys at most once per this long, per source.
const KEY_REFETCH_COOLDOWN: Duration = Duration::from_secs(60);

/// What discovery tells beyond the core fields.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct Extra {
    /// RFC 9207: the issuer names itself in every authorization response.
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: Option<bool>,
    #[serde(default)]
    pub end_session_endpoint: Option<String>,
}
impl AdditionalProviderMetadata for Extra {}

pub type Metadata = ProviderMetadata<
    Extra,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// A source's settings, ready to talk to its issuer.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub pool: PoolId,
    pub id: SourceId,
    pub name: String,
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Option<String>,
    pub scopes: Vec<String>,
    pub algorithms: Vec<CoreJwsSigningAlgorithm>,
    pub authorize_params: Vec<(String, String)>,
    pub first_login: FirstLogin,
    pub trust_email: bool,
    pub claims: ClaimNames,
    pub group_map: Vec<(String, String)>,
    pub sync: SyncMode,
    pub trust_mfa: Vec<String>,
    pub upstream_logout: bool,
    /// This source's callback on the pool's portal.
    pub redirect_uri: String,
}

impl Upstream {
    /// The source `id` of `pool` as it stands in the live snapshot.
    pub fn resolve(state: &WebState, pool: &PoolRoute, id: &str) -> Result<Upstream, FederationError> {
        let source: &Arc<Source> = pool
            .sources
            .iter()
            .find(|s| s.id.as_str() == id)
            .ok_or(FederationError::UnknownSource)?;
        let (issuer, client_id, client_secret) = match &source.kind {
            SourceKind::Pool(issuer_pool) => {
                let other = state
                    .registry
                    .snapshot()
                    .pool(issuer_pool.as_str())
                    .ok_or_else(|| FederationError::Unavailable(format!("pool `{issuer_pool}` is not served")))?;
                (
                    other.issuer.clone(),
                    FederatedPool::client_id(&pool.id, &source.id),
                    Some(FederatedPool::secret(
                        state.registry.master_key(),
                        issuer_pool,
                        &pool.id,
                        &source.id,
                    )),
                )
            }
            SourceKind::Oidc {
                issuer,
                client_id,
                client_secret,
            } => (
                issuer.clone(),
                client_id.clone(),
                client_secret.as_ref().map(read_secret).transpose()?,
            ),
        };
        let algorithms = source.algorithms.iter().filter_map(|a| serde_plain_alg(a)).collect();
        Ok(Upstream {
            pool: pool.id.clone(),
            id: source.id.clone(),
            name: source.name.clone(),
            issuer,
            client_id,
            client_secret,
            scopes: source.scopes.clone(),
            algorithms,
            authorize_params: source.authorize_params.clone(),
            first_login: source.first_login,
            trust_email: source.trust_email,
            claims: source.claims.clone(),
            group_map: source.group_map.clone(),
            sync: source.sync,
            trust_mfa: source.trust_mfa.clone(),
            upstream_logout: source.upstream_logout,
            redirect_uri: format!("{}{}", pool.issuer, source_path(&source.id, "callback")),
        })
    }
}

/// A client secret from the environment or a file, read when it is needed (a rotated
/// file is picked up without a reload).
fn read_secret(source: &SecretSource) -> Result<String, FederationError> {
    let text = match source {
        SecretSource::Env(var) => std::env::var(var)
            .map_err(|_| FederationError::Unavailable(format!("the client secret variable `{var}` is not set")))?,
        SecretSource::File(path) => std::fs::read_to_string(path).map_err(|e| {
            FederationError::Unavailable(format!("the client secret file {} cannot be read: {e}", path.display()))
        })?,
    };
    Ok(text.trim().to_owned())
}

fn serde_plain_alg(name: &str) -> Option<CoreJwsSigningAlgorithm> {
    serde_json::from_value(serde_json::Value::String(name.to_owned())).ok()
}

/// The issuers the gateway has talked to, one entry per (pool, source).
#[derive(Default)]
pub struct Providers {
    by_source: DashMap<(PoolId, SourceId), Arc<Provider>>,
}

impl Providers {
    /// The cache for a source; a new one when the source now names another issuer.
    pub fn of(&self, up: &Upstream) -> Arc<Provider> {
        let key = (up.pool.clone(), up.id.clone());
        if let Some(p) = self.by_source.get(&key)
            && p.issuer == up.issuer
        {
            return p.clone();
        }
        let fresh = Arc::new(Provider::new(&up.issuer));
        self.by_source.insert(key, fresh.clone());
        fresh
    }
}

/// One issuer's discovery document and keys.
pub struct Provider {
    issuer: String,
    http: reqwest::Client,
    metadata: RwLock<Option<(Arc<Metadata>, Instant)>>,
    keys: RwLock<Arc<CoreJsonWebKeySet>>,
    /// Bumped at each new key set: a waiter that sees it moved knows its miss was served.
    keys_version: AtomicU64,
    refetch: Mutex<Refetch>,
}

#[derive(Default)]
struct Refetch {
    last: Option<Instant>,
    /// Key ids still unknown after the last fetch: asked again, they fail at once.
    unknown: HashSet<String>,
}

impl Provider {
    fn new(issuer: &str) -> Provider {
        Provider {
            issuer: issuer.to_owned(),
            http: crate::outbound::client(),
            metadata: RwLock::new(None),
            keys: RwLock::new(Arc::new(CoreJsonWebKeySet::new(Vec::new()))),
            keys_version: AtomicU64::new(0),
            refetch: Mutex::new(Refetch::default()),
        }
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The discovery document: cached, fetched when old, and the last good copy kept
    /// when the issuer cannot be reached or answers garbage.
    pub async fn metadata(&self) -> Result<Arc<Metadata>, FederationError> {
        if let Some((m, at)) = self.metadata.read().await.as_ref()
            && at.elapsed() < METADATA_TTL
        {
            return Ok(m.clone());
        }
        let mut slot = self.metadata.write().await;
        if let Some((m, at)) = slot.as_ref()
            && at.elapsed() < METADATA_TTL
        {
            return Ok(m.clone());
        }
        let issuer = IssuerUrl::new(self.issuer.clone())
            .map_err(|e| FederationError::Unavailable(format!("the issuer URL is not valid: {e}")))?;
        match Metadata::discover_async(issuer, &self.http).await {
            Ok(m) => {
                *self.keys.write().await = Arc::new(m.jwks().clone());
                self.keys_version.fetch_add(1, Ordering::SeqCst);
                let m = Arc::new(m);
                *slot = Some((m.clone(), Instant::now()));
                Ok(m)
            }
            Err(e) => {
                tracing::warn!(code = "PG0701", issuer = %self.issuer, error = %e, "identity source discovery failed");
                match slot.as_mut() {
                    // Keep serving the last good copy; try again after a cooldown.
                    Some((m, at)) => {
                        *at = Instant::now() - METADATA_TTL + KEY_REFETCH_COOLDOWN;
                        Ok(m.clone())
                    }
                    None => Err(FederationError::Unavailable(format!("its discovery document: {e}"))),
                }
            }
        }
    }

    pub async fn keys(&self) -> Arc<CoreJsonWebKeySet> {
        self.keys.read().await.clone()
    }

    /// Fetches the keys again for an unknown `kid`: at most once per cooldown, misses that
    /// arrive together wait for one fetch, and a kid still unknown after it is remembered.
    /// `true` when there is a new key set to try.
    pub async fn refetch_keys(&self, kid: Option<&str>, jwks_uri: &JsonWebKeySetUrl) -> bool {
        let seen = self.keys_version.load(Ordering::SeqCst);
        let mut r = self.refetch.lock().await;
        if self.keys_version.load(Ordering::SeqCst) != seen {
            return true;
        }
        if kid.is_some_and(|k| r.unknown.contains(k)) && r.last.is_some_and(|t| t.elapsed() < KEY_REFETCH_COOLDOWN) {
            return false;
        }
        if r.last.is_some_and(|t| t.elapsed() < KEY_REFETCH_COOLDOWN) {
            if let Some(k) = kid {
                r.unknown.insert(k.to_owned());
            }
            return false;
        }
        r.last = Some(Instant::now());
        match CoreJsonWebKeySet::fetch_async(jwks_uri, &self.http).await {
            Ok(set) => {
                r.unknown.clear();
                if let Some(k) = kid
                    && !set
                        .keys()
                        .iter()
                        .any(|key| key.key_id().is_some_and(|id| id.as_str() == k))
                {
                    r.unknown.insert(k.to_owned());
                }
                *self.keys.write().await = Arc::new(set);
                self.keys_version.fetch_add(1, Ordering::SeqCst);
                true
            }
            Err(e) => {
                tracing::warn!(code = "PG0702", issuer = %self.issuer, error = %e, "identity source keys could not be fetched; the cached ones keep serving");
                false
            }
        }
    }
}

impl Provider {
    /// The key and algorithm a JWT of this issuer is to be verified with: its `alg` one of
    /// the source's (asymmetric only: never `none`, never an HMAC keyed with whatever the
    /// token names), its key this issuer's by `kid` — fetched again, within the cooldown,
    /// for a kid not yet known. The signature itself is then checked with ring.
    pub async fn signing_key(
        &self,
        token: &str,
        algorithms: &[CoreJwsSigningAlgorithm],
        jwks_uri: &JsonWebKeySetUrl,
    ) -> Result<(jsonwebtoken::DecodingKey, jsonwebtoken::Algorithm), String> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| format!("unreadable: {e}"))?;
        let name = serde_json::to_value(header.alg)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let accepted = algorithms.iter().any(|a| {
            serde_json::to_value(a)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .as_deref()
                == Some(&name)
        });
        if !accepted || name.starts_with("HS") {
            return Err(format!("algorithm {name} is not accepted from this source"));
        }
        let kid = header.kid.as_deref();
        let mut key = find_key(&*self.keys().await, kid, &name);
        if key.is_none() && self.refetch_keys(kid, jwks_uri).await {
            key = find_key(&*self.keys().await, kid, &name);
        }
        let key = key.ok_or("no key of the issuer verifies it")?;
        Ok((key, header.alg))
    }
}

/// The key for this `kid` (or the only key of the algorithm's type, without one).
fn find_key(set: &CoreJsonWebKeySet, kid: Option<&str>, alg: &str) -> Option<jsonwebtoken::DecodingKey> {
    use jsonwebtoken::jwk::{AlgorithmParameters, Jwk};
    let keys: Vec<_> = set
        .keys()
        .iter()
        .filter(|k| kid.is_none_or(|kid| k.key_id().is_some_and(|id| id.as_str() == kid)))
        .filter_map(|k| {
            let jwk: Jwk = serde_json::from_value(serde_json::to_value(k).ok()?).ok()?;
            let family_ok = match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => alg.starts_with("RS") || alg.starts_with("PS"),
                AlgorithmParameters::EllipticCurve(_) => alg.starts_with("ES"),
                AlgorithmParameters::OctetKeyPair(_) => alg == "EdDSA",
                AlgorithmParameters::OctetKey(_) => false,
            };
            family_ok
                .then(|| jsonwebtoken::DecodingKey::from_jwk(&jwk).ok())
                .flatten()
        })
        .collect();
    match keys.len() {
        1 => keys.into_iter().next(),
        _ => None,
    }
}
