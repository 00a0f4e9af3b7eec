//! The admin listener (loopback by default): health, readiness, Prometheus metrics, and the
//! admin REST API under `/api` (bearer token). It runs on the control-plane runtime.

mod api;
mod console;
pub mod ops;
mod refusal;
mod token;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::session::Sessions;
pub use token::AdminToken;

/// The address an admin request came from, for the audit log.
struct Client(std::net::IpAddr);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Client, Self::Rejection> {
        let ip = parts
            .extensions
            .get::<axum::extract::ConnectInfo<SocketAddr>>()
            .map_or(std::net::IpAddr::from([0, 0, 0, 0]), |c| c.0.ip());
        Ok(Client(ip))
    }
}

/// What the admin handlers share.
#[derive(Clone)]
pub struct AdminState {
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
    token: Arc<AdminToken>,
    sessions: Arc<Sessions>,
}

impl AdminState {
    pub fn new(
        registry: Arc<Registry>,
        metrics: Arc<Metrics>,
        token: AdminToken,
        sessions: Arc<Sessions>,
    ) -> AdminState {
        AdminState {
            registry,
            metrics,
            token: Arc::new(token),
            sessions,
        }
    }

    /// After an operation that ends sessions (a revoke, a new password, a user disabled or
    /// deleted): once it is `done`, this node stops honouring them (cookies and cached
    /// bearer tokens alike) before the answer goes out; other nodes follow the store.
    async fn ended<T, E>(&self, done: Result<T, E>) -> Result<T, E> {
        if done.is_ok() {
            let store = self.registry.store();
            if let Err(e) = self.sessions.revocations.pull(store, store.now() - 2).await {
                tracing::warn!(code = "PG0403", error = %e, "cannot read revocations from the store");
            }
        }
        done
    }

    /// After a key rotation: once it is `done`, this node signs with the new key before
    /// the answer goes out (other nodes follow the store). A reload refused for a bad file
    /// is logged; the rotation itself stands.
    async fn rotated<T, E>(&self, done: Result<T, E>) -> Result<T, E> {
        if done.is_ok() {
            let _ = self.registry.reload_logged("key rotation").await;
        }
        done
    }
}

pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/openapi.json", get(api::openapi))
        .nest("/api", api::router(state.clone()))
        .merge(console::router())
        .layer(axum::middleware::from_fn_with_state(state.clone(), known_host))
        .with_state(state)
}

/// Answers only requests whose `Host` is an IP literal, `localhost` or a name of
/// `[admin] hosts`: a browser tricked into calling the admin address under another name
/// (DNS rebinding) is refused before any handler runs.
async fn known_host(
    State(state): State<AdminState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let host = req
        .headers()
        .get(axum::http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| crate::ids::Host::from_authority(v).ok());
    let allowed = host.is_some_and(|h| {
        let name = h.as_str();
        name == "localhost"
            || name
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok()
            || state.registry.snapshot().config.admin.hosts.contains(&h)
    });
    if allowed {
        next.run(req).await
    } else {
        (
            StatusCode::MISDIRECTED_REQUEST,
            "this admin listener does not answer to that host name\n",
        )
            .into_response()
    }
}

/// Serves the admin router on a bound listener until the process ends. Its requests are
/// counted in flight with the proxy's, so a draining process finishes an import or a key
/// rotation before it exits.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AdminState,
    drain: Arc<crate::proxy::Drain>,
) -> std::io::Result<()> {
    let app = router(state).layer(axum::middleware::from_fn_with_state(drain, counted));
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await
}

async fn counted(
    State(drain): State<Arc<crate::proxy::Drain>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let _in_flight = crate::proxy::InFlight::new(&drain);
    next.run(req).await
}

/// Ready when every proxy listener accepts connections.
async fn readyz(State(state): State<AdminState>) -> impl IntoResponse {
    let listen = state.registry.snapshot().config.listen.clone();
    for addr in listen.local_addrs() {
        let ok = tokio::time::timeout(Duration::from_millis(500), tokio::net::TcpStream::connect(addr))
            .await
            .is_ok_and(|r| r.is_ok());
        if !ok {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("listener {addr} is not accepting yet\n"),
            );
        }
    }
    (StatusCode::OK, "ready\n".to_owned())
}

async fn metrics_text(State(state): State<AdminState>) -> impl IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}
