//! Which pool (and app) a portal request is for, as the proxy resolved it. The proxy signs
//! its word with a per-process key; a request without it (anything reaching the loopback
//! listener some other way) is refused.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ring::rand::SecureRandom;
use subtle::ConstantTimeEq;

use crate::registry::{AppRoute, PoolRoute};
use crate::web::state::WebState;

pub use crate::wire::{KEY_HEADER, ROUTE_HEADER};

/// The proxy's key for talking to the portal: random per process, never leaves it.
pub struct InternalKey(String);

impl InternalKey {
    pub fn generate() -> InternalKey {
        let mut b = [0u8; 24];
        let _ = ring::rand::SystemRandom::new().fill(&mut b);
        InternalKey(b.iter().map(|x| format!("{x:02x}")).collect())
    }

    pub fn value(&self) -> &str {
        &self.0
    }

    fn matches(&self, presented: &str) -> bool {
        presented.len() == self.0.len() && bool::from(presented.as_bytes().ct_eq(self.0.as_bytes()))
    }
}

/// The route of a portal request.
#[derive(Clone)]
pub struct Ctx {
    pub pool: Arc<PoolRoute>,
    /// Set on app hosts (`/.poolgate/…`); `None` on the portal host.
    pub app: Option<Arc<AppRoute>>,
    /// The connection to the client was TLS: cookies get `Secure` and `__Host-`.
    pub tls: bool,
    /// The host the client asked for, with its port (for URLs back to it).
    pub authority: String,
    pub client: Option<IpAddr>,
}

impl Ctx {
    pub fn scheme(&self) -> &'static str {
        if self.tls { "https" } else { "http" }
    }

    /// The app this request is for, or a 404 on the portal host.
    pub fn app(&self) -> Result<&Arc<AppRoute>, StatusCode> {
        self.app.as_ref().ok_or(StatusCode::NOT_FOUND)
    }

    pub fn client_text(&self) -> String {
        self.client.map(|c| c.to_string()).unwrap_or_default()
    }
}

pub async fn resolve(State(state): State<WebState>, mut req: Request, next: Next) -> Response {
    match route(&state, &req) {
        Ok(ctx) => {
            req.extensions_mut().insert(ctx);
            next.run(req).await
        }
        Err(status) => status.into_response(),
    }
}

fn route(state: &WebState, req: &Request) -> Result<Ctx, StatusCode> {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    if !header(KEY_HEADER).is_some_and(|k| state.key.matches(&k)) {
        return Err(StatusCode::FORBIDDEN);
    }
    let route = header(ROUTE_HEADER).ok_or(StatusCode::FORBIDDEN)?;
    let snapshot = state.registry.snapshot_full();
    let mut parts = route.splitn(3, '/');
    let (kind, pool_id, app_id) = (parts.next(), parts.next(), parts.next());
    let pool = pool_id
        .and_then(|p| snapshot.pool(p))
        .ok_or(StatusCode::MISDIRECTED_REQUEST)?;
    let app = match (kind, app_id) {
        (Some("portal"), None) => None,
        (Some("app"), Some(a)) => Some(pool.apps.get(a).cloned().ok_or(StatusCode::MISDIRECTED_REQUEST)?),
        _ => return Err(StatusCode::FORBIDDEN),
    };
    // App hosts own `/.poolgate/…` and nothing else here; portal hosts everything else.
    // Checked once, so no handler serves on the other kind of host.
    if app.is_some() != req.uri().path().starts_with("/.poolgate/") {
        return Err(StatusCode::NOT_FOUND);
    }
    Ok(Ctx {
        tls: header("x-forwarded-proto").as_deref() == Some("https"),
        authority: header("host").unwrap_or_else(|| pool.portal.to_string()),
        client: header("x-forwarded-for").and_then(|v| v.rsplit(',').next().and_then(|ip| ip.trim().parse().ok())),
        pool,
        app,
    })
}
