//! The UserInfo endpoint.

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;

use super::AccessClaims;
use crate::session::SessionId;
use crate::web::context::Ctx;
use crate::web::state::WebState;

/// The access token's audience, read before verification so the right app is checked.
pub fn unverified_audience(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v.get("aud")?.as_str().map(str::to_owned)
}

pub async fn userinfo(State(state): State<WebState>, Extension(ctx): Extension<Ctx>, headers: HeaderMap) -> Response {
    let unauthorized = || {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer error=\"invalid_token\"")],
        )
            .into_response()
    };
    let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return unauthorized();
    };
    let Some(aud) = unverified_audience(token).filter(|a| ctx.pool.apps.contains_key(a)) else {
        return unauthorized();
    };
    let claims: AccessClaims = match ctx.pool.keys.verifier.verify(token, &ctx.pool.issuer, &aud) {
        Ok(c) => c,
        Err(_) => return unauthorized(),
    };
    let revoked = [&claims.sid, &claims.jti]
        .into_iter()
        .filter_map(|id| SessionId::from_hex(id))
        .any(|s| state.sessions.revocations.is_revoked(&s));
    if revoked {
        return unauthorized();
    }
    Json(json!({
        "sub": claims.sub,
        "preferred_username": claims.preferred_username,
        "name": claims.name,
        "email": claims.email,
        "groups": claims.groups,
    }))
    .into_response()
}
