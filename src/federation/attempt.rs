//! One federated sign-in in progress, sealed in the portal's login cookie: which source,
//! the `state`, `nonce` and PKCE verifier sent with it, and the application's request to
//! go back to. Bound to this browser (the cookie), this pool (the seal) and this source;
//! spent in the store when its callback comes back, so a replay finds nothing.

use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};

use crate::op::AuthRequest;
use crate::session::cookie::Cookie;
use crate::web::context::Ctx;
use crate::web::sealed::{equal, open, seal};

/// How long a person may take at the identity provider.
pub const ATTEMPT_SECS: i64 = 600;
const PURPOSE: &str = "federation";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attempt {
    pub source: String,
    pub issuer: String,
    pub state: String,
    pub nonce: String,
    pub verifier: String,
    pub request: Option<AuthRequest>,
    pub exp: i64,
}

impl Attempt {
    pub fn cookie(&self, ctx: &Ctx) -> String {
        Cookie::Login.set(ctx.tls, &seal(&ctx.pool, PURPOSE, self), Some(ATTEMPT_SECS))
    }

    /// The attempt of this browser that sent this `state` to this source's callback.
    pub fn find(ctx: &Ctx, headers: &HeaderMap, source: &str, state: &str, now: i64) -> Option<Attempt> {
        Cookie::Login
            .values(headers, ctx.tls)
            .filter_map(|v| open::<Attempt>(&ctx.pool, PURPOSE, v))
            .find(|a| a.exp > now && a.source == source && equal(&a.state, state))
    }
}
