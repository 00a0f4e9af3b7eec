//! Token revocation (RFC 7009) and introspection (RFC 7662). A client revokes only its own
//! tokens; introspection answers authenticated confidential clients only, and a token of
//! another pool, or meant for another client, is `active: false`.

use axum::Json;
use axum::extract::rejection::FormRejection;
use axum::extract::{Extension, Form, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AccessClaims;
use super::client_auth::{Presented, authenticate};
use super::clients::Client;
use super::error::{OAuthError, no_store};
use crate::session::SessionId;
use crate::web::context::Ctx;
use crate::web::state::WebState;

/// The form of both endpoints. `token_type_hint` is not needed (a JWT is an access token,
/// anything else is looked up as a refresh token) and, like any unknown field, ignored.
#[derive(Deserialize)]
pub struct TokenParams {
    token: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

/// What a presented token turned out to be, for the calling client.
enum Found {
    /// An access token of this pool, live.
    Access(Box<AccessClaims>),
    /// A refresh token of this pool, live.
    Refresh {
        family: String,
        client_id: String,
        exp: i64,
    },
    Nothing,
}

async fn find(state: &WebState, ctx: &Ctx, token: &str) -> Result<Found, OAuthError> {
    if token.split('.').count() == 3 {
        let aud = super::unverified_audience(token).unwrap_or_default();
        let Ok(claims) = ctx
            .pool
            .keys
            .verifier
            .verify::<AccessClaims>(token, &ctx.pool.issuer, &aud)
        else {
            return Ok(Found::Nothing);
        };
        return Ok(if claims.revoked(&state.sessions.revocations) {
            Found::Nothing
        } else {
            Found::Access(Box::new(claims))
        });
    }
    let store = state.registry.store();
    match store.find_refresh(ctx.pool.id.as_str(), token).await {
        // As the refresh grant would judge it: a token whose sign-in ended is not active.
        Ok(Some(r))
            if serde_json::from_str::<super::Grant>(&r.body)
                .is_ok_and(|g| super::token::refresh_alive(state, &r, &g, store.now())) =>
        {
            Ok(Found::Refresh {
                family: r.family,
                client_id: r.client_id,
                exp: r.expires_at,
            })
        }
        Ok(_) => Ok(Found::Nothing),
        Err(e) => {
            tracing::error!(code = "PG0509", error = %e, "could not look up a refresh token");
            Err(OAuthError::server_error("the store is unavailable"))
        }
    }
}

async fn caller(
    state: &WebState,
    ctx: &Ctx,
    headers: &HeaderMap,
    form: Result<Form<TokenParams>, FormRejection>,
) -> Result<(Client, String), OAuthError> {
    let Form(p) =
        form.map_err(|_| OAuthError::invalid_request("the body must be a form (application/x-www-form-urlencoded)"))?;
    let presented = Presented {
        client_id: p.client_id.as_deref(),
        client_secret: p.client_secret.as_deref(),
    };
    let client = authenticate(state, ctx, headers, presented).await?;
    let token = p
        .token
        .ok_or_else(|| OAuthError::invalid_request("token is required"))?;
    Ok((client, token))
}

/// `POST /oidc/revoke`: 200 whether or not the token was known (RFC 7009 §2.2). Revoking
/// an access token ends its grant; a refresh token, its family and that grant's tokens.
pub async fn revoke(
    State(state): State<WebState>,
    Extension(ctx): Extension<Ctx>,
    headers: HeaderMap,
    form: Result<Form<TokenParams>, FormRejection>,
) -> Response {
    let (client, token) = match caller(&state, &ctx, &headers, form).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let store = state.registry.store();
    let pool = ctx.pool.id.as_str();
    let grant = match find(&state, &ctx, &token).await {
        Ok(Found::Access(c)) if c.client_id == client.id() => Some((c.jti, c.exp)),
        Ok(Found::Refresh { family, client_id, exp }) if client_id == client.id() => {
            if let Err(e) = store.revoke_refresh_family(pool, &family).await {
                tracing::error!(code = "PG0505", error = %e, "could not revoke a refresh token");
                return OAuthError::server_error("the store is unavailable").into_response();
            }
            Some((family, exp))
        }
        Ok(_) => None,
        Err(e) => return e.into_response(),
    };
    if let Some((grant, exp)) = grant
        && let Some(sid) = SessionId::from_hex(&grant)
    {
        state.sessions.revocations.revoke(sid, exp.max(store.now() + 600));
        // The client asked for this itself: no back-channel logout to tell it so.
        let _ = store.finish_logout(pool, &grant).await;
        let _ = store.revoke_app_session(pool, &grant).await;
    }
    let mut resp = StatusCode::OK.into_response();
    no_store(&mut resp);
    resp
}

/// `POST /oidc/introspect`.
pub async fn introspect(
    State(state): State<WebState>,
    Extension(ctx): Extension<Ctx>,
    headers: HeaderMap,
    form: Result<Form<TokenParams>, FormRejection>,
) -> Response {
    let (client, token) = match caller(&state, &ctx, &headers, form).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    if client.is_public() {
        return OAuthError::invalid_client("introspection is for confidential clients", ctx.pool.id.as_str())
            .into_response();
    }
    let inactive = json!({ "active": false });
    let body: Value = match find(&state, &ctx, &token).await {
        Ok(Found::Access(c)) if c.aud == client.id() || c.client_id == client.id() => json!({
            "active": true,
            "token_type": "Bearer",
            "scope": c.scope,
            "client_id": c.client_id,
            "username": c.preferred_username,
            "sub": c.sub,
            "aud": c.aud,
            "iss": c.iss,
            "exp": c.exp,
            "iat": c.iat,
            "jti": c.jti,
        }),
        Ok(Found::Refresh { client_id, exp, .. }) if client_id == client.id() => json!({
            "active": true,
            "token_type": "refresh_token",
            "client_id": client_id,
            "iss": ctx.pool.issuer,
            "exp": exp,
        }),
        Ok(_) => inactive,
        Err(e) => return e.into_response(),
    };
    let mut resp = Json(body).into_response();
    no_store(&mut resp);
    resp
}
