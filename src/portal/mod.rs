//! The portal: each pool's hosted sign-in pages (its OpenID Provider, `op`, routed here),
//! and the sign-in endpoints of app hosts (`/.poolgate/…`). Ordinary axum handlers on an internal loopback
//! listener of the control plane; the proxy forwards portal hosts and `/.poolgate/` paths
//! to it, naming the route in headers it signs with a per-process key.

mod app;
mod login;
mod signout;

use std::net::SocketAddr;

use axum::Router;
use axum::routing::{get, post};

use crate::op;

pub use crate::op::{ACCESS_TOKEN_SECS, AccessClaims};
pub use crate::web::context::{InternalKey, KEY_HEADER, ROUTE_HEADER};
pub use crate::web::state::WebState;
pub use app::safe_return_to;

/// The largest request body the portal reads (its forms hold a few short fields).
const FORM_BODY_LIMIT: usize = 64 * 1024;

fn router(state: WebState) -> Router {
    Router::new()
        // The pool's portal host.
        .route("/", get(login::home))
        .route("/.well-known/openid-configuration", get(op::discovery::discovery))
        .route("/.well-known/oauth-authorization-server", get(op::discovery::discovery))
        .route("/oidc/jwks", get(op::discovery::jwks))
        .route("/oidc/authorize", get(login::authorize_get).post(login::authorize_post))
        .route("/oidc/token", post(op::token::token))
        .route("/oidc/revoke", post(op::revoke::revoke))
        .route("/oidc/introspect", post(op::revoke::introspect))
        .route(
            "/oidc/userinfo",
            get(op::userinfo::userinfo).post(op::userinfo::userinfo),
        )
        .route("/oidc/logout", get(signout::portal_page).post(signout::portal_submit))
        .route("/logout", get(signout::portal_page).post(signout::portal_submit))
        .route("/login", post(login::password))
        .route("/login/mfa", post(login::second_factor))
        .route("/login/enroll", post(login::enroll))
        .route("/mfa", get(login::start_enrollment))
        .merge(crate::federation::routes())
        // Every app host.
        .route("/.poolgate/login", get(app::start))
        .route("/.poolgate/callback", get(app::callback))
        .route("/.poolgate/logout", get(signout::app_page).post(signout::app_submit))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::web::context::resolve,
        ))
        // Every portal form is small: a larger body is refused before it is read.
        .layer(axum::extract::DefaultBodyLimit::max(FORM_BODY_LIMIT))
        .with_state(state)
}

/// Binds the internal listener (loopback, an ephemeral port) and serves the portal on it.
pub async fn start(state: WebState) -> std::io::Result<SocketAddr> {
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
