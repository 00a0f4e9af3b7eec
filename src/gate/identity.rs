//! The identity headers an app receives (DESIGN.md §5), set after every client copy was
//! stripped. They are prepared once per principal and app, signed assertion included, and
//! cached: a request copies them in, it signs nothing and formats nothing.

use bytes::Bytes;
use http::HeaderValue;
use serde::Serialize;

use crate::config::Claim;
use crate::registry::{AppRoute, PoolRoute};
use crate::session::{PROFILE_SECS, PreparedHeaders, Principal, Sessions};

/// Assertions are valid this long. The headers carrying one are cached for no longer
/// than a profile is trusted, so an assertion is always well inside its validity.
const ASSERTION_SECS: i64 = 300;

#[derive(Serialize)]
struct AssertionClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: i64,
    iat: i64,
    preferred_username: &'a str,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    groups: &'a [String],
    src: &'a str,
    mfa: bool,
}

/// What `app` receives for `p`: from the cache, or prepared (and the assertion signed).
pub fn headers(pool: &PoolRoute, app: &AppRoute, p: &Principal, sessions: &Sessions, now: i64) -> PreparedHeaders {
    if let Some(h) = sessions.identity(p.serial, app.serial, now) {
        return h;
    }
    let prepared = prepare(pool, app, p, sign(pool, app, p, now).as_deref());
    sessions.remember_identity(p.serial, app.serial, prepared.clone(), now + PROFILE_SECS);
    prepared
}

/// The assertion JWT: who the user is (not which session), for this app, signed by the pool.
fn sign(pool: &PoolRoute, app: &AppRoute, p: &Principal, now: i64) -> Option<String> {
    let claims = AssertionClaims {
        iss: &pool.issuer,
        sub: &p.sub,
        aud: app.id.as_str(),
        exp: now + ASSERTION_SECS,
        iat: now,
        preferred_username: &p.username,
        name: &p.name,
        email: p.email.as_deref(),
        groups: &p.groups,
        src: &p.source,
        mfa: p.mfa,
    };
    pool.keys.signer.as_ref()?.sign(&claims).ok()
}

/// The app's identity headers (and aliases) for `p`. Names are the app's shared copies;
/// only the values are this user's.
fn prepare(pool: &PoolRoute, app: &AppRoute, p: &Principal, assertion: Option<&str>) -> PreparedHeaders {
    let value = |claim: Claim| -> Option<String> {
        match claim {
            Claim::User => Some(p.sub.clone()),
            Claim::Username => Some(p.username.clone()),
            Claim::Email => p.email.clone(),
            Claim::Name => (!p.name.is_empty()).then(|| p.name.clone()),
            Claim::Groups => Some(p.groups.join(",")),
            Claim::Pool => Some(pool.id.to_string()),
            Claim::Source => Some(p.source.clone()),
            Claim::Assertion => assertion.map(str::to_owned),
        }
    };
    app.identity_headers
        .iter()
        .filter_map(|(claim, name)| {
            let v = HeaderValue::from_maybe_shared(Bytes::from(value(*claim)?)).ok()?;
            Some((name.clone(), v))
        })
        .collect::<Vec<_>>()
        .into()
}
