//! Federation: a pool's people sign in through an identity source — another pool of this
//! deployment or any OpenID Provider — and the pool keeps its own record of each of them,
//! linked to the upstream identity by `(source, issuer, subject)`.
//!
//! One code path for both kinds, on the `openidconnect` crate over real HTTP (a pool of
//! this same gateway is reached through its public address like any issuer):
//! [`start`] sends the person to the issuer with `state`, `nonce` and PKCE bound to this
//! attempt and this source; [`callback`] checks what comes back, validates the ID token
//! against that issuer's keys only, finds or makes the local user ([`first_login`]) and
//! completes the sign-in through [`crate::op::signin`].

mod account;
mod attempt;
mod callback;
mod challenge;
mod first_login;
mod logout;
mod signout;
mod start;
mod upstream;

use axum::Router;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;

pub use signout::{AfterSignOut, upstream_logout};
pub use start::sign_in_with;
pub use upstream::Providers;

use std::sync::Arc;

use crate::config::Source;
use crate::op::AuthRequest;
use crate::registry::PoolRoute;
use crate::web::context::Ctx;
use crate::web::pages;
use crate::web::state::WebState;

/// The portal's routes of every source of the pool.
pub fn routes() -> Router<WebState> {
    Router::new()
        .route("/federation/{source}/start", get(start::start))
        .route("/federation/{source}/callback", get(callback::callback))
        .route(
            "/federation/{source}/backchannel-logout",
            axum::routing::post(logout::backchannel),
        )
        .route("/federation/link", axum::routing::post(challenge::prove))
        .route("/federation/{source}/signed-out", get(signout::signed_out))
        .route("/account", get(account::page))
        .route("/account/links/remove", axum::routing::post(account::remove))
}

/// Why a federated sign-in stopped. Each is shown to the person as a page naming the
/// source, with a way back; none is a 500.
#[derive(Debug, thiserror::Error)]
pub enum FederationError {
    #[error("this pool has no such identity source")]
    UnknownSource,
    #[error("the application does not accept this identity source")]
    NotAllowed,
    #[error("the identity provider cannot be used right now ({0})")]
    Unavailable(String),
    #[error("this sign-in was not started in this browser, has expired, or was already used")]
    Attempt,
    #[error("the identity provider refused: {0}")]
    Refused(String),
    #[error("the identity provider's answer was not accepted ({0})")]
    Invalid(String),
    #[error("{0}")]
    NoAccount(String),
    #[error("sign-in is unavailable; please try again in a moment")]
    Store,
}

impl FederationError {
    fn status(&self) -> StatusCode {
        match self {
            FederationError::UnknownSource => StatusCode::NOT_FOUND,
            FederationError::NotAllowed | FederationError::NoAccount(_) => StatusCode::FORBIDDEN,
            FederationError::Unavailable(_) => StatusCode::BAD_GATEWAY,
            FederationError::Store => StatusCode::SERVICE_UNAVAILABLE,
            FederationError::Attempt | FederationError::Refused(_) | FederationError::Invalid(_) => {
                StatusCode::BAD_REQUEST
            }
        }
    }

    /// The page a person sees: which source, what happened, the way back.
    fn page(&self, ctx: &Ctx, source_name: &str) -> Response {
        pages::message(
            self.status(),
            &ctx.pool,
            &format!("Signing in with {source_name} did not work"),
            &pages::sentence(&self.to_string()),
            Some(("/", "Back to sign-in")),
        )
    }
}

/// The name a person knows a source by, or its id when the pool has no such source.
fn source_name(ctx: &Ctx, source: &str) -> String {
    ctx.pool
        .sources
        .iter()
        .find(|s| s.id.as_str() == source)
        .map_or_else(|| source.to_owned(), |s| s.name.clone())
}

/// The sources an authorization request may sign in with: those its app accepts
/// (`allowed_sources`), or all of the pool's for a client that is not an app.
pub fn offered(pool: &PoolRoute, request: Option<&AuthRequest>) -> Vec<Arc<Source>> {
    pool.sources
        .iter()
        .filter(|s| accepts(pool, request, s.id.as_str()))
        .cloned()
        .collect()
}

/// Whether the request's app accepts `way` in (`local`, or a source id).
pub fn accepts(pool: &PoolRoute, request: Option<&AuthRequest>, way: &str) -> bool {
    let app = request.and_then(|r| pool.apps.get(&r.client_id));
    app.is_none_or(|a| a.policy.allowed_sources.is_empty() || a.policy.allowed_sources.iter().any(|s| s == way))
}

/// Home-realm discovery: the offered source that claims the email's domain, exact before
/// wildcard. Decided by the domain alone, so it tells nothing of who has an account here.
pub fn home_realm(pool: &PoolRoute, request: Option<&AuthRequest>, login: &str) -> Option<Arc<Source>> {
    let (_, domain) = login.trim().rsplit_once('@')?;
    offered(pool, request)
        .into_iter()
        .filter_map(|s| s.claims_domain(domain).map(|m| (m, s)))
        .min_by_key(|(m, _)| *m)
        .map(|(_, s)| s)
}

/// Where the login page sends a person to sign in with `source`, the app's request sealed.
pub fn start_path(source: &str, sealed_request: &str) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("request", sealed_request)
        .finish();
    format!("/federation/{source}/start?{query}")
}
