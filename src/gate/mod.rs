//! The access decision (DESIGN.md §2), without Pingora: for a request to one of a pool's
//! apps, who is asking and whether they may, as a [`Verdict`]. The inline proxy and every
//! forward-auth dialect render the same verdict, so a rule is written once.

pub mod authn;
pub mod identity;
pub mod policy;

use std::sync::Arc;

use http::{HeaderMap, Method};

use crate::registry::{AppRoute, PoolRoute};
use crate::session::{Principal, ProfileSource, Sessions};

/// The request being decided: what the client asked, as the gateway (or a trusted front
/// proxy) saw it.
pub struct Asked<'a> {
    pub method: &'a Method,
    /// The path and query, as sent.
    pub target: &'a str,
    pub headers: &'a HeaderMap,
    pub tls: bool,
}

impl Asked<'_> {
    pub fn path(&self) -> &str {
        self.target.split_once('?').map_or(self.target, |(p, _)| p)
    }
}

/// What happens to a request for an app.
pub enum Verdict {
    /// `/.poolgate/…` on an app host: the portal's (sign-in callback, sign-out).
    Portal,
    /// A CORS preflight, answered from the app's config: the headers to allow it, or why not.
    Preflight(Result<Vec<(&'static str, String)>, &'static str>),
    /// Let through: anonymously (a public path) or as a signed-in principal; `set_cookie`
    /// renews a session whose idle window slid.
    Forward {
        who: Option<Arc<Principal>>,
        set_cookie: Option<String>,
    },
    /// No valid session or token. A browser goes to `/.poolgate/login?return_to=…` on the
    /// app's host (`login`, relative); anything else is told to authenticate.
    SignIn { login: String },
    /// Signed in, but the app's policy turns this user away.
    Forbidden { username: String },
}

/// Where the decision looks things up: the caches, and on a cache miss the profile source.
pub struct Gate<'a> {
    pub sessions: &'a Sessions,
    pub profiles: &'a dyn ProfileSource,
}

impl Gate<'_> {
    /// Decides a request for `app` of `pool`.
    pub async fn decide(&self, pool: &PoolRoute, app: &AppRoute, asked: &Asked<'_>, now: i64) -> Verdict {
        let path = asked.path();
        if path.starts_with("/.poolgate/") {
            return Verdict::Portal;
        }
        if policy::is_preflight(asked.method, asked.headers) {
            return Verdict::Preflight(preflight(app, asked.headers));
        }
        if policy::is_public(path, &app.public_paths) {
            return Verdict::Forward {
                who: None,
                set_cookie: None,
            };
        }
        let lookups = authn::Lookups {
            sessions: self.sessions,
            profiles: self.profiles,
        };
        let mut found = authn::from_cookie(asked.headers, asked.tls, pool, app, &lookups, now).await;
        if matches!(found, authn::Authn::None) {
            found = authn::from_bearer(asked.headers, pool, app, self.sessions, now);
        }
        let (principal, set_cookie, browser_session) = match found {
            authn::Authn::Session { principal, refresh } => (principal, refresh, true),
            authn::Authn::Bearer { principal } => (principal, None, false),
            authn::Authn::None => return sign_in(asked),
        };
        match policy::authorize(app, &principal) {
            Ok(()) => Verdict::Forward {
                who: Some(principal),
                set_cookie,
            },
            // A browser signed in without MFA steps up; nothing else can.
            Err(policy::Denied::NeedsMfa) if browser_session && policy::is_browser(asked.method, asked.headers) => {
                sign_in(asked)
            }
            Err(_) => Verdict::Forbidden {
                username: principal.username.clone(),
            },
        }
    }
}

fn sign_in(asked: &Asked<'_>) -> Verdict {
    let encoded: String = url::form_urlencoded::byte_serialize(asked.target.as_bytes()).collect();
    Verdict::SignIn {
        login: format!("/.poolgate/login?return_to={encoded}"),
    }
}

/// The headers that allow a preflight, from the app's CORS config.
fn preflight(app: &AppRoute, headers: &HeaderMap) -> Result<Vec<(&'static str, String)>, &'static str> {
    let cors = app
        .cors
        .as_ref()
        .ok_or("this application takes no cross-origin requests")?;
    let origin = policy::allowed_origin(headers, cors)
        .ok_or("this origin may not call this application")?
        .to_owned();
    let mut out = vec![
        ("access-control-allow-origin", origin),
        ("access-control-allow-methods", cors.methods.join(", ")),
        ("access-control-max-age", cors.max_age.as_secs().to_string()),
        ("vary", "Origin".to_owned()),
    ];
    if !cors.headers.is_empty() {
        out.push(("access-control-allow-headers", cors.headers.join(", ")));
    }
    if cors.credentials {
        out.push(("access-control-allow-credentials", "true".to_owned()));
    }
    Ok(out)
}
