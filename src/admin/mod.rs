//! The admin listener (loopback by default): health, readiness, Prometheus metrics and
//! configuration reload. The store's admin API joins it here.

pub mod metrics;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::registry::Registry;
use metrics::Metrics;

#[derive(Clone)]
struct AdminState {
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
}

fn router(state: AdminState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/api/reload", post(reload))
        .with_state(state)
}

/// Ready when every proxy listener accepts connections.
async fn readyz(State(state): State<AdminState>) -> impl IntoResponse {
    let listen = state.registry.snapshot().config.listen.clone();
    for addr in [listen.http, listen.https].into_iter().flatten() {
        let target = loopback_for(addr);
        let ok = tokio::time::timeout(
            Duration::from_millis(500),
            tokio::net::TcpStream::connect(target),
        )
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

/// A wildcard listen address is probed on loopback.
fn loopback_for(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(a) if a.ip().is_unspecified() => {
            SocketAddr::from(([127, 0, 0, 1], a.port()))
        }
        SocketAddr::V6(a) if a.ip().is_unspecified() => {
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, a.port()))
        }
        other => other,
    }
}

async fn metrics_text(State(state): State<AdminState>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        state.metrics.render(),
    )
}

async fn reload(State(state): State<AdminState>) -> impl IntoResponse {
    let registry = state.registry.clone();
    let outcome = tokio::task::spawn_blocking(move || registry.reload_logged("admin api")).await;
    match outcome {
        Ok(Ok(())) => {
            state.metrics.reloaded(true);
            (
                StatusCode::OK,
                Json(serde_json::json!({ "status": "reloaded" })),
            )
        }
        Ok(Err(e)) => {
            state.metrics.reloaded(false);
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(serde_json::json!({ "status": "refused", "error": e.to_string() })),
            )
        }
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(serde_json::json!({ "status": "failed" })),
        ),
    }
}

/// Runs the admin router on its own listener inside the Pingora server.
pub struct AdminService {
    pub listen: SocketAddr,
    pub registry: Arc<Registry>,
    pub metrics: Arc<Metrics>,
}

#[async_trait]
impl BackgroundService for AdminService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let listener = match tokio::net::TcpListener::bind(self.listen).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(code = "PG0201", listen = %self.listen, error = %e, "admin listener could not bind");
                return;
            }
        };
        let app = router(AdminState {
            registry: self.registry.clone(),
            metrics: self.metrics.clone(),
        });
        let served = axum::serve(listener, app).with_graceful_shutdown(async move {
            let _ = shutdown.changed().await;
        });
        if let Err(e) = served.await {
            tracing::error!(code = "PG0202", error = %e, "admin listener stopped");
        }
    }
}
