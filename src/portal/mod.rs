//! The portal: each pool's hosted sign-in pages and OpenID Provider, and the sign-in
//! endpoints of app hosts (`/.poolgate/…`). Ordinary axum handlers on an internal loopback
//! listener of the control plane; the proxy forwards portal hosts and `/.poolgate/` paths
//! to it, naming the route in headers it signs with a per-process key.

mod app;
mod context;
mod forms;
mod hashing;
mod login;
mod oidc;
mod signout;
mod throttle;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

use crate::registry::Registry;
use crate::session::Sessions;

pub use app::safe_return_to;
pub use context::{InternalKey, KEY_HEADER, ROUTE_HEADER};
pub use oidc::{ACCESS_TOKEN_SECS, AccessClaims};

/// The largest request body the portal reads (its forms hold a few short fields).
const FORM_BODY_LIMIT: usize = 64 * 1024;

/// What the portal's handlers share.
#[derive(Clone)]
pub struct PortalState {
    registry: Arc<Registry>,
    sessions: Arc<Sessions>,
    key: Arc<InternalKey>,
    throttle: Arc<throttle::Throttle>,
    hashing: Arc<hashing::HashGate>,
}

impl PortalState {
    pub fn new(registry: Arc<Registry>, sessions: Arc<Sessions>, key: Arc<InternalKey>) -> PortalState {
        PortalState {
            registry,
            sessions,
            key,
            throttle: Arc::new(throttle::Throttle::default()),
            hashing: Arc::new(hashing::HashGate::default()),
        }
    }
}

fn router(state: PortalState) -> Router {
    Router::new()
        // The pool's portal host.
        .route("/", get(login::home))
        .route("/.well-known/openid-configuration", get(oidc::discovery))
        .route("/oidc/jwks", get(oidc::jwks))
        .route("/oidc/authorize", get(oidc::authorize))
        .route("/oidc/token", post(oidc::token))
        .route("/oidc/userinfo", get(oidc::userinfo))
        .route("/oidc/logout", get(signout::portal_page).post(signout::portal_submit))
        .route("/logout", get(signout::portal_page).post(signout::portal_submit))
        .route("/login", post(login::password))
        .route("/login/mfa", post(login::second_factor))
        .route("/login/enroll", post(login::enroll))
        .route("/mfa", get(login::start_enrollment))
        // Every app host.
        .route("/.poolgate/login", get(app::start))
        .route("/.poolgate/callback", get(app::callback))
        .route("/.poolgate/logout", get(signout::app_page).post(signout::app_submit))
        .layer(axum::middleware::from_fn_with_state(state.clone(), context::resolve))
        // Every portal form is small: a larger body is refused before it is read.
        .layer(axum::extract::DefaultBodyLimit::max(FORM_BODY_LIMIT))
        .with_state(state)
}

/// Binds the internal listener (loopback, an ephemeral port) and serves the portal on it.
pub async fn start(state: PortalState) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(code = "PG0501", error = %e, "the portal listener stopped");
        }
    });
    Ok(addr)
}
