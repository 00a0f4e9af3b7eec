//! The UserInfo endpoint.

use axum::Json;
use axum::extract::rejection::FormRejection;
use axum::extract::{Extension, Form, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use serde::Deserialize;

use super::AccessClaims;
use super::error::no_store;
use super::token::released_claims;
use crate::web::context::Ctx;
use crate::web::state::WebState;

/// The access token's audience, read before verification so the right app is checked.
pub fn unverified_audience(token: &str) -> Option<String> {
    let claims = crate::crypto::jwt::unverified_claims(token)?;
    claims.get("aud")?.as_str().map(str::to_owned)
}

/// `GET` or `POST /oidc/userinfo` (OpenID Connect Core §5.3): the access token in the
/// `Authorization` header (scheme in any case) or, on a POST, the form body (RFC 6750
/// §2.2); the claims its scope released, absent ones omitted.
pub async fn userinfo(
    State(state): State<WebState>,
    Extension(ctx): Extension<Ctx>,
    method: Method,
    headers: HeaderMap,
    body: Result<Form<TokenBody>, FormRejection>,
) -> Response {
    let realm = format!("Bearer realm=\"{}\"", ctx.pool.id);
    let refuse = |error: Option<&str>| {
        // No token at all gets the bare challenge; a bad one says so (RFC 6750 §3.1).
        let challenge = match error {
            Some(e) => format!("{realm}, error=\"{e}\""),
            None => realm.clone(),
        };
        let mut resp = (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, challenge)]).into_response();
        no_store(&mut resp);
        resp
    };
    let from_header = crate::wire::credentials(&headers, "Bearer").map(str::to_owned);
    // Only a POST body: a token in a URL ends up in logs.
    let from_body = body
        .ok()
        .filter(|_| method == Method::POST)
        .and_then(|Form(b)| b.access_token);
    let token = match (from_header, from_body) {
        (Some(_), Some(_)) => return refuse(Some("invalid_request")),
        (Some(t), None) | (None, Some(t)) => t,
        (None, None) => return refuse(None),
    };
    let Some(aud) = unverified_audience(&token).filter(|a| super::clients::Client::find(&ctx.pool, a).is_some()) else {
        return refuse(Some("invalid_token"));
    };
    let claims: AccessClaims = match ctx.pool.keys.verifier.verify(&token, &ctx.pool.issuer, &aud) {
        Ok(c) => c,
        Err(_) => return refuse(Some("invalid_token")),
    };
    if claims.revoked(&state.sessions.revocations) {
        return refuse(Some("invalid_token"));
    }
    let mut out = serde_json::Map::new();
    out.insert("sub".into(), json!(claims.sub));
    out.extend(released_claims(
        &claims.scope,
        &claims.preferred_username,
        &claims.name,
        claims.email.as_deref(),
        claims.email_verified,
        &claims.groups,
    ));
    let mut resp = Json(out).into_response();
    no_store(&mut resp);
    resp
}

#[derive(Deserialize)]
pub struct TokenBody {
    access_token: Option<String>,
}
