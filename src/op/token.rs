//! The token endpoint: a code redeemed once for an ID token and an access token.

use axum::Json;
use axum::extract::{Extension, Form, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Grant, pkce_challenge};
use crate::registry::PoolRoute;
use crate::session::SessionId;
use crate::store::{CodeUse, StoreError};
use crate::web::context::Ctx;
use crate::web::sealed::equal;
use crate::web::state::WebState;

/// Why a code was not honoured (OAuth `invalid_grant`).
#[derive(Debug)]
pub struct InvalidGrant(pub &'static str);

/// A redeemed code: what it grants, and the app session its tokens (or cookie) belong to.
pub struct Redeemed {
    pub grant: Grant,
    pub sid: SessionId,
    pub expires: i64,
}

/// Redeems a code once, checking client, redirect URI, PKCE and that the SSO session it
/// came from still stands, and records the app session it opens. A code presented again
/// revokes what its first redemption gave (RFC 6749 §4.1.2).
pub async fn redeem(
    state: &WebState,
    pool: &PoolRoute,
    code: &str,
    client_id: &str,
    redirect_uri: &str,
    verifier: &str,
) -> Result<Redeemed, InvalidGrant> {
    let store = state.registry.store();
    let sid = SessionId::random();
    let body = match store.take_code(pool.id.as_str(), code, &sid.hex()).await {
        Ok(CodeUse::Redeemed(b)) => b,
        Ok(CodeUse::Unknown) => return Err(InvalidGrant("unknown, used or expired code")),
        Ok(CodeUse::Replayed(first)) => {
            if let Some(first) = first.as_deref().and_then(SessionId::from_hex) {
                revoke_replayed(state, pool, first).await;
            }
            return Err(InvalidGrant("unknown, used or expired code"));
        }
        Err(e) => {
            tracing::error!(code = "PG0509", error = %e, pool = %pool.id, "could not redeem an authorization code");
            return Err(InvalidGrant("the store is unavailable"));
        }
    };
    let grant: Grant = serde_json::from_str(&body).map_err(|_| InvalidGrant("damaged code"))?;
    if grant.client_id != client_id || grant.redirect_uri != redirect_uri {
        return Err(InvalidGrant("the code was issued to another client or redirect URI"));
    }
    if !equal(&pkce_challenge(verifier), &grant.code_challenge) {
        return Err(InvalidGrant("PKCE verification failed"));
    }
    let sso = SessionId::from_hex(&grant.sso).ok_or(InvalidGrant("damaged code"))?;
    if state.sessions.revocations.is_revoked(&sso) {
        return Err(InvalidGrant("the session has ended"));
    }
    let expires = (store.now() + pool.sessions.max.as_secs() as i64).min(grant.sso_expires);
    if let Err(e) = store
        .create_app_session(pool.id.as_str(), &sid.hex(), client_id, &grant.sso, &grant.uid, expires)
        .await
    {
        tracing::error!(code = "PG0508", error = %e, pool = %pool.id, "could not store an app session");
        return Err(InvalidGrant("the store is unavailable"));
    }
    Ok(Redeemed { grant, sid, expires })
}

/// A code was replayed: the app session (cookie or tokens) of its first redemption ends,
/// here at once and on every node within the store poll.
async fn revoke_replayed(state: &WebState, pool: &PoolRoute, first: SessionId) {
    let store = state.registry.store();
    state
        .sessions
        .revocations
        .revoke(first, store.now() + pool.sessions.max.as_secs() as i64);
    match store.revoke_app_session(pool.id.as_str(), &first.hex()).await {
        Ok(()) | Err(StoreError::NotFound) => {}
        Err(e) => {
            tracing::error!(code = "PG0505", error = %e, pool = %pool.id, "could not revoke a replayed code's session")
        }
    }
}

#[derive(Serialize)]
struct IdClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: i64,
    iat: i64,
    auth_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
    sid: &'a str,
    amr: &'a [String],
    preferred_username: &'a str,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    email_verified: bool,
    groups: &'a [String],
}

/// Claims of an access token of this pool (also what bearer-token requests are
/// identified by).
#[derive(Debug, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub sid: String,
    /// The grant (app session) this token was issued in: a replayed code revokes it.
    #[serde(default)]
    pub jti: String,
    pub scope: String,
    pub preferred_username: String,
    pub name: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    pub src: String,
    pub mfa: bool,
}

pub const ACCESS_TOKEN_SECS: i64 = 600;

#[derive(Deserialize)]
pub struct TokenForm {
    grant_type: String,
    code: Option<String>,
    redirect_uri: Option<String>,
    client_id: Option<String>,
    code_verifier: Option<String>,
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({ "error": error, "error_description": description })),
    )
        .into_response()
}

pub async fn token(
    State(state): State<WebState>,
    Extension(ctx): Extension<Ctx>,
    Form(f): Form<TokenForm>,
) -> Response {
    if f.grant_type != "authorization_code" {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "only authorization_code",
        );
    }
    let (Some(code), Some(redirect_uri), Some(client_id), Some(verifier)) =
        (f.code, f.redirect_uri, f.client_id, f.code_verifier)
    else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "code, redirect_uri, client_id and code_verifier are required",
        );
    };
    let Redeemed { grant, sid, .. } = match redeem(&state, &ctx.pool, &code, &client_id, &redirect_uri, &verifier).await
    {
        Ok(r) => r,
        Err(InvalidGrant(why)) => return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", why),
    };
    let user = match state.registry.store().user(ctx.pool.id.as_str(), &grant.uid).await {
        Ok(u) if !u.disabled => u,
        _ => return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "the user cannot sign in"),
    };
    let Some(signer) = &ctx.pool.keys.signer else {
        return oauth_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "the pool has no signing key",
        );
    };
    let now = state.registry.store().now();
    let id = IdClaims {
        iss: &ctx.pool.issuer,
        sub: &user.id,
        aud: &grant.client_id,
        exp: now + 300,
        iat: now,
        auth_time: grant.auth_time,
        nonce: grant.nonce.as_deref(),
        sid: &grant.sso,
        amr: &grant.amr,
        preferred_username: &user.username,
        name: &user.name,
        email: user.email.as_deref(),
        email_verified: user.email_verified,
        groups: &user.groups,
    };
    let access = AccessClaims {
        iss: ctx.pool.issuer.clone(),
        sub: user.id.clone(),
        aud: grant.client_id.clone(),
        exp: now + ACCESS_TOKEN_SECS,
        iat: now,
        sid: grant.sso.clone(),
        jti: sid.hex(),
        scope: "openid profile email groups".into(),
        preferred_username: user.username.clone(),
        name: user.name.clone(),
        email: user.email.clone(),
        groups: user.groups.clone(),
        src: grant.source.clone(),
        mfa: grant.mfa,
    };
    match (signer.sign(&id), signer.sign(&access)) {
        (Ok(id_token), Ok(access_token)) => (
            [(header::CACHE_CONTROL, "no-store")],
            Json(json!({
                "access_token": access_token,
                "token_type": "Bearer",
                "expires_in": ACCESS_TOKEN_SECS,
                "id_token": id_token,
                "scope": access.scope,
            })),
        )
            .into_response(),
        _ => oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "signing failed"),
    }
}
