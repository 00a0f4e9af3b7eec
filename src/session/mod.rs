//! SSO and app sessions on the hot path: tickets in sealed cookies, a revocation cache the
//! store keeps current, and caches of what was fetched or signed once (principals, the
//! identity headers an app receives with their assertion, verified bearer tokens).

pub mod cookie;
mod profile;
mod ticket;

use std::sync::Arc;

use bytes::Bytes;
use dashmap::DashMap;
use http::HeaderValue;

use crate::ids::Serial;

pub use profile::{Profile, ProfileSource, StoreProfiles};
pub use ticket::{SessionId, Ticket, app_binding, sso_binding};

/// Who is making a request, as the app will be told.
#[derive(Debug)]
pub struct Principal {
    pub sub: String,
    pub username: String,
    pub email: Option<String>,
    pub name: String,
    pub groups: Vec<String>,
    /// `local` or the identity source id.
    pub source: String,
    pub mfa: bool,
    /// This instance: what apps were told about it is cached under it, so a profile
    /// fetched again (new groups, say) is told afresh.
    pub serial: Serial,
}

/// How long a fetched profile is trusted before it is fetched again; what is prepared
/// from it (identity headers) lives no longer, so an active user holds one or two copies.
pub const PROFILE_SECS: i64 = 30;

/// Header names and values as an app receives them, prepared once.
pub type PreparedHeaders = Arc<[(Bytes, HeaderValue)]>;

/// Revoked session ids (SSO and app), until they would have expired anyway.
#[derive(Default)]
pub struct Revocations {
    revoked: DashMap<[u8; 16], i64>,
}

impl Revocations {
    /// Takes in what the store says was revoked since `from` (other nodes' sign-outs, an
    /// admin's revocation): every node polls this, and the admin API calls it at once.
    pub async fn pull(&self, store: &crate::store::Store, from: i64) -> Result<(), crate::store::StoreError> {
        for (_, id, until) in store.revoked_since(from).await? {
            if let Some(sid) = SessionId::from_hex(&id) {
                self.revoke(sid, until);
            }
        }
        self.prune(store.now());
        Ok(())
    }

    pub fn revoke(&self, id: SessionId, until: i64) {
        self.revoked.insert(id.0, until);
    }

    pub fn is_revoked(&self, id: &SessionId) -> bool {
        self.revoked.contains_key(&id.0)
    }

    /// Forgets revocations of sessions that have expired by `now`.
    pub fn prune(&self, now: i64) {
        self.revoked.retain(|_, until| *until > now);
    }

    pub fn len(&self) -> usize {
        self.revoked.len()
    }

    pub fn is_empty(&self) -> bool {
        self.revoked.is_empty()
    }
}

/// A verified bearer token: who it speaks for, and the sessions it lives by. A cached
/// token is checked against revocations on every use, as a cookie is.
#[derive(Clone)]
pub struct Bearer {
    pub principal: Arc<Principal>,
    /// The SSO session it was issued in, and the grant (app session) of the redemption
    /// that issued it.
    pub sessions: [Option<SessionId>; 2],
}

impl Bearer {
    pub fn revoked(&self, revocations: &Revocations) -> bool {
        self.sessions.iter().flatten().any(|s| revocations.is_revoked(s))
    }
}

/// A value cached until a deadline.
struct Cached<T> {
    value: T,
    until: i64,
}

/// Bounded caches: past `MAX_ENTRIES` a cache is cleared rather than grown.
const MAX_ENTRIES: usize = 200_000;

/// The hot path's session state, shared by every proxy thread.
#[derive(Default)]
pub struct Sessions {
    pub revocations: Revocations,
    /// `pool/uid` → profile, fetched from the store once per user per node.
    principals: DashMap<String, Cached<Arc<Principal>>>,
    /// (principal, app) → the identity headers that app receives, signed assertion
    /// included. Keyed by principal, not by session: a user's many sessions (browsers,
    /// devices) share one signature, and a profile fetched again is told afresh.
    identities: DashMap<(Serial, Serial), Cached<PreparedHeaders>>,
    /// bearer token → who it speaks for, once its signature was checked.
    bearers: DashMap<Box<str>, Cached<Bearer>>,
}

fn get<K, Q, T: Clone>(map: &DashMap<K, Cached<T>>, key: &Q, now: i64) -> Option<T>
where
    K: std::hash::Hash + Eq + std::borrow::Borrow<Q>,
    Q: std::hash::Hash + Eq + ?Sized,
{
    map.get(key).filter(|c| c.until > now).map(|c| c.value.clone())
}

fn put<K: std::hash::Hash + Eq, T>(map: &DashMap<K, Cached<T>>, key: K, value: T, until: i64) {
    if map.len() >= MAX_ENTRIES {
        map.clear();
    }
    map.insert(key, Cached { value, until });
}

impl Sessions {
    /// Drops what has expired, so memory follows the users active lately rather than
    /// every user seen since start. The control plane calls it every half minute.
    pub fn prune(&self, now: i64) {
        fn prune<K: std::hash::Hash + Eq, T>(map: &DashMap<K, Cached<T>>, now: i64) {
            map.retain(|_, c| c.until > now);
            map.shrink_to_fit();
        }
        prune(&self.principals, now);
        prune(&self.identities, now);
        prune(&self.bearers, now);
    }

    pub fn principal(&self, key: &str, now: i64) -> Option<Arc<Principal>> {
        get(&self.principals, key, now)
    }

    pub fn remember_principal(&self, key: String, p: Arc<Principal>, until: i64) {
        put(&self.principals, key, p, until);
    }

    pub fn identity(&self, principal: Serial, app: Serial, now: i64) -> Option<PreparedHeaders> {
        get(&self.identities, &(principal, app), now)
    }

    pub fn remember_identity(&self, principal: Serial, app: Serial, headers: PreparedHeaders, until: i64) {
        put(&self.identities, (principal, app), headers, until);
    }

    /// A token verified before, unless a session it lives by has been revoked since.
    pub fn bearer(&self, token: &str, now: i64) -> Option<Arc<Principal>> {
        get(&self.bearers, token, now)
            .filter(|b| !b.revoked(&self.revocations))
            .map(|b| b.principal)
    }

    pub fn remember_bearer(&self, token: &str, bearer: Bearer, until: i64) {
        put(&self.bearers, token.into(), bearer, until);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal() -> Arc<Principal> {
        Arc::new(Principal {
            sub: "u".into(),
            username: "alice".into(),
            email: None,
            name: String::new(),
            groups: vec![],
            source: "local".into(),
            mfa: false,
            serial: Serial::next(),
        })
    }

    fn cached(s: &Sessions) -> usize {
        s.principals.len() + s.identities.len() + s.bearers.len()
    }

    #[test]
    fn pruning_keeps_only_what_is_still_fresh() {
        let s = Sessions::default();
        s.remember_principal("pool/old".into(), principal(), 100);
        s.remember_principal("pool/fresh".into(), principal(), 200);
        s.remember_identity(Serial::next(), Serial::next(), Vec::new().into(), 100);
        let bearer = Bearer {
            principal: principal(),
            sessions: [Some(SessionId::random()), None],
        };
        s.remember_bearer("token", bearer.clone(), 300);
        assert_eq!(cached(&s), 4);
        s.prune(150);
        assert_eq!(cached(&s), 2);
        assert!(s.principal("pool/fresh", 150).is_some());
        assert!(s.principal("pool/old", 50).is_none(), "pruned, not merely hidden");
        assert!(s.bearer("token", 150).is_some());
        s.revocations.revoke(bearer.sessions[0].unwrap(), 1000);
        assert!(
            s.bearer("token", 150).is_none(),
            "a revoked session's token is not served from the cache"
        );
    }
}
