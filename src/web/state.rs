//! What the handlers of portal hosts share: the registry, the session caches, the sign-in
//! throttle and password-check gate; and the questions every room asks of them.

use std::sync::Arc;

use axum::http::HeaderMap;

use super::context::{Ctx, InternalKey};
use super::hashing::HashGate;
use super::throttle::Throttle;
use crate::registry::Registry;
use crate::session::cookie::Cookie;
use crate::session::{Sessions, Ticket, sso_binding};
use crate::store::NewAuditEvent;

/// What the portal's and the OP's handlers share.
#[derive(Clone)]
pub struct WebState {
    pub registry: Arc<Registry>,
    pub sessions: Arc<Sessions>,
    pub key: Arc<InternalKey>,
    pub throttle: Arc<Throttle>,
    pub hashing: Arc<HashGate>,
    /// Client secrets the store vouched for lately, until when (see `op::client_auth`).
    pub secrets: Arc<dashmap::DashMap<crate::op::client_auth::SecretKey, i64>>,
    /// Identity sources' discovery documents and keys.
    pub federation: Arc<crate::federation::Providers>,
}

impl WebState {
    pub fn new(registry: Arc<Registry>, sessions: Arc<Sessions>, key: Arc<InternalKey>) -> WebState {
        WebState {
            registry,
            sessions,
            key,
            throttle: Arc::new(Throttle::default()),
            hashing: Arc::new(HashGate::default()),
            secrets: Arc::default(),
            federation: Arc::default(),
        }
    }
}

/// The live SSO session of this browser at the portal, if any.
pub fn current_sso(state: &WebState, ctx: &Ctx, headers: &HeaderMap) -> Option<Ticket> {
    let binding = sso_binding(ctx.pool.id.as_str());
    let now = state.registry.store().now();
    Ticket::in_cookies(Cookie::Sso, headers, ctx.tls, &ctx.pool.keys.cookies, &binding)
        .find(|t| t.live_at(now) && !state.sessions.revocations.is_revoked(&t.sso))
}

pub async fn audit(
    state: &WebState,
    ctx: &Ctx,
    actor: &str,
    action: &str,
    target: &str,
    outcome: &str,
    detail: String,
) {
    let event = NewAuditEvent {
        pool: Some(ctx.pool.id.to_string()),
        actor: actor.into(),
        action: action.into(),
        target: target.into(),
        outcome: outcome.into(),
        client: ctx.client_text(),
        detail,
    };
    if let Err(e) = state.registry.store().audit(event).await {
        tracing::error!(code = "PG0405", error = %e, action, "could not write the audit log");
    }
}
