//! Who a request on a protected route speaks for: an app session cookie (opened with the
//! pool's key, checked against the revocation cache) or a bearer access token of the pool
//! for this app (verified once, then cached). No database on this path but a principal's
//! first fetch on a node.

use std::sync::Arc;

use http::HeaderMap;

use crate::ids::{PoolId, Serial};
use crate::portal::AccessClaims;
use crate::registry::{AppRoute, PoolRoute};
use crate::session::cookie::Cookie;
use crate::session::{Bearer, PROFILE_SECS, Principal, ProfileSource, Sessions, Ticket};

/// What authentication found.
pub enum Authn {
    /// A live app session; `refresh` is a new cookie when the idle window slid.
    Session {
        principal: Arc<Principal>,
        refresh: Option<String>,
    },
    Bearer {
        principal: Arc<Principal>,
    },
    /// Nothing (or nothing valid): sign in.
    None,
}

/// Where authentication looks things up: the caches, and on a profile-cache miss the
/// profile source.
#[derive(Clone, Copy)]
pub struct Lookups<'a> {
    pub sessions: &'a Sessions,
    pub profiles: &'a dyn ProfileSource,
}

/// Opens the app cookie, checks it is live and not revoked, and finds its principal.
pub async fn from_cookie(
    headers: &HeaderMap,
    tls: bool,
    pool: &PoolRoute,
    app: &AppRoute,
    state: &Lookups<'_>,
    now: i64,
) -> Authn {
    let Lookups { sessions, profiles } = *state;
    let ticket = Ticket::in_cookies(Cookie::App, headers, tls, &pool.keys.cookies, &app.cookie_binding).next();
    let Some(ticket) = ticket else {
        return Authn::None;
    };
    if !ticket.live_at(now)
        || sessions.revocations.is_revoked(&ticket.sid)
        || sessions.revocations.is_revoked(&ticket.sso)
    {
        return Authn::None;
    }
    let key = principal_key(&pool.id, &ticket);
    let principal = match sessions.principal(&key, now) {
        Some(p) => p,
        None => {
            let Some(user) = profiles.profile(pool.id.as_str(), &ticket.uid.to_string()).await else {
                return Authn::None;
            };
            let p = Arc::new(Principal {
                sub: user.sub,
                username: user.username,
                email: user.email,
                name: user.name,
                groups: user.groups,
                source: ticket.source.clone(),
                mfa: ticket.mfa,
                serial: Serial::next(),
            });
            sessions.remember_principal(key, p.clone(), now + PROFILE_SECS);
            p
        }
    };
    let idle = pool.sessions.idle.as_secs() as i64;
    let refresh = (ticket.idle_until - now < idle / 2).then(|| {
        let renewed = Ticket {
            idle_until: (now + idle).min(ticket.expires),
            ..ticket.clone()
        };
        let value = renewed
            .seal(&pool.keys.cookies, &app.cookie_binding)
            .unwrap_or_default();
        Cookie::App.set(tls, &value, Some(ticket.expires - now))
    });
    Authn::Session { principal, refresh }
}

/// The profile cache's key: who, as which source, with or without MFA.
fn principal_key(pool: &PoolId, t: &Ticket) -> String {
    let mut uid = uuid::Uuid::encode_buffer();
    let uid = t.uid.hyphenated().encode_lower(&mut uid);
    let mut key = String::with_capacity(pool.as_str().len() + uid.len() + t.source.len() + 8);
    for part in [
        pool.as_str(),
        "/",
        uid,
        "/",
        &t.source,
        if t.mfa { "/true" } else { "/false" },
    ] {
        key.push_str(part);
    }
    key
}

/// Verifies `Authorization: Bearer` as an access token of this pool for this app.
pub fn from_bearer(headers: &HeaderMap, pool: &PoolRoute, app: &AppRoute, sessions: &Sessions, now: i64) -> Authn {
    let Some(token) = crate::wire::credentials(headers, "Bearer") else {
        return Authn::None;
    };
    // Cached per app: a token verified for one app says nothing about another.
    let cache_key = format!("{}\0{}\0{token}", pool.id, app.id);
    if let Some(p) = sessions.bearer(&cache_key, now) {
        return Authn::Bearer { principal: p };
    }
    let Ok(claims) = pool
        .keys
        .verifier
        .verify::<AccessClaims>(token, &pool.issuer, app.id.as_str())
    else {
        return Authn::None;
    };
    let lives_by = claims.sessions();
    let p = Arc::new(Principal {
        sub: claims.sub,
        username: claims.preferred_username,
        email: claims.email,
        name: claims.name,
        groups: claims.groups,
        source: claims.src,
        mfa: claims.mfa,
        serial: Serial::next(),
    });
    let bearer = Bearer {
        principal: p.clone(),
        sessions: lives_by,
    };
    if bearer.revoked(&sessions.revocations) {
        return Authn::None;
    }
    // Served from the cache from now on, still checked against revocations at every use.
    sessions.remember_bearer(&cache_key, bearer, claims.exp.min(now + 300));
    Authn::Bearer { principal: p }
}
