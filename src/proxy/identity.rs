//! The identity headers an app receives (DESIGN.md §5), set after every client copy was
//! stripped, and the signed assertion, signed once per user and app and cached.

use std::sync::Arc;

use http::HeaderValue;
use pingora::http::RequestHeader;
use serde::Serialize;

use crate::config::Claim;
use crate::registry::{AppRoute, PoolRoute};
use crate::session::{Principal, Sessions};

/// Assertions live this long; a fresh one is signed when less than a minute is left.
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

/// The assertion JWT for `p` at `app`, from the cache or freshly signed. It says who the
/// user is (not which session), so every session of one user shares it.
pub fn assertion(pool: &PoolRoute, app: &AppRoute, p: &Principal, sessions: &Sessions, now: i64) -> Option<Arc<str>> {
    let key = format!("{}\0{}\0{}\0{}\0{}", pool.id, app.id, p.sub, p.source, p.mfa);
    if let Some(jwt) = sessions.assertion(&key, now + 60) {
        return Some(jwt);
    }
    let signer = pool.keys.signer.as_ref()?;
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
    let jwt: Arc<str> = signer.sign(&claims).ok()?.into();
    sessions.remember_assertion(&key, jwt.clone(), now + ASSERTION_SECS);
    Some(jwt)
}

/// Sets the app's identity headers (and aliases) for `p`.
pub fn apply(req: &mut RequestHeader, pool: &PoolRoute, app: &AppRoute, p: &Principal, assertion: Option<&str>) {
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
    let pairs = app
        .headers
        .names
        .iter()
        .map(|(c, h)| (h, *c))
        .chain(app.headers.aliases.iter().map(|(h, c)| (h, *c)));
    for (header, claim) in pairs {
        if let Some(v) = value(claim).and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok()) {
            let _ = req.insert_header(header.clone(), v);
        }
    }
}
