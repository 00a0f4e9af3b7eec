//! Sign-out at the source reaches this pool: `POST /federation/{source}/backchannel-logout`
//! takes the source's logout token (OpenID Connect Back-Channel Logout 1.0 §2.6) and ends
//! every SSO session that came from that upstream session (`sid`), or from that upstream
//! person (`sub`) when it names no session. The token must verify against the source's
//! keys with its algorithms, come from its issuer to this client, carry the back-channel
//! logout event and no `nonce` (an ID token is not a logout token), and its `jti` is
//! spent: a replay ends nothing.

use axum::Json;
use axum::extract::{Extension, Form, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use jsonwebtoken::Validation;
use serde::Deserialize;
use serde_json::{Value, json};

use super::upstream::Upstream;
use crate::session::SessionId;
use crate::web::context::Ctx;
use crate::web::state::{WebState, audit};

const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

#[derive(Deserialize)]
pub(super) struct LogoutForm {
    #[serde(default)]
    logout_token: String,
}

pub(super) async fn backchannel(
    State(state): State<WebState>,
    Extension(ctx): Extension<Ctx>,
    Path(source): Path<String>,
    Form(f): Form<LogoutForm>,
) -> Response {
    let no_store = [(header::CACHE_CONTROL, "no-store")];
    match receive(&state, &ctx, &source, &f.logout_token).await {
        Ok(()) => (StatusCode::OK, no_store).into_response(),
        Err(why) => {
            tracing::info!(code = "PG0706", pool = %ctx.pool.id, source, why, "back-channel logout refused");
            audit(
                &state,
                &ctx,
                "anonymous",
                "federation.logout",
                &source,
                "denied",
                format!("reason={why}"),
            )
            .await;
            (
                StatusCode::BAD_REQUEST,
                no_store,
                Json(json!({ "error": "invalid_request", "error_description": why })),
            )
                .into_response()
        }
    }
}

async fn receive(state: &WebState, ctx: &Ctx, source: &str, token: &str) -> Result<(), String> {
    if token.is_empty() {
        return Err("no logout_token".into());
    }
    let up = Upstream::resolve(state, &ctx.pool, source).map_err(|e| e.to_string())?;
    let claims = verify(state, &up, token).await?;
    let str_claim = |n: &str| claims.get(n).and_then(Value::as_str).map(str::to_owned);
    if !claims
        .get("events")
        .and_then(|e| e.get(EVENT))
        .is_some_and(Value::is_object)
    {
        return Err("not a back-channel logout token (no logout event)".into());
    }
    if claims.get("nonce").is_some() {
        return Err("a logout token carries no nonce".into());
    }
    let jti = str_claim("jti").ok_or("no jti")?;
    let (sub, sid) = (str_claim("sub"), str_claim("sid"));
    if sub.is_none() && sid.is_none() {
        return Err("names neither sub nor sid".into());
    }
    let store = state.registry.store();
    let pool = ctx.pool.id.as_str();
    let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(store.now() + 600);
    let fresh = store
        .spend(pool, &format!("logout-jti:{source}"), &jti, exp)
        .await
        .map_err(|_| "the store is unavailable".to_owned())?;
    if !fresh {
        return Err("this logout token was already used".into());
    }
    let sessions = store
        .sso_sessions_from_upstream(pool, source, &up.issuer, sub.as_deref(), sid.as_deref())
        .await
        .map_err(|_| "the store is unavailable".to_owned())?;
    for (id, _, expires) in &sessions {
        if let Some(sid) = SessionId::from_hex(id) {
            state.sessions.revocations.revoke(sid, *expires);
        }
        if let Err(e) = store.revoke_sso_session(pool, id).await {
            tracing::error!(code = "PG0505", error = %e, "could not end a session on the source's logout");
            return Err("the store is unavailable".into());
        }
    }
    let users: Vec<&str> = sessions.iter().map(|(_, u, _)| u.as_str()).collect();
    audit(
        state,
        ctx,
        "system",
        "federation.logout",
        source,
        "ok",
        format!(
            "sub={} sid={} sessions={} users={}",
            sub.as_deref().unwrap_or("-"),
            sid.as_deref().unwrap_or("-"),
            sessions.len(),
            users.join(",")
        ),
    )
    .await;
    Ok(())
}

/// The token's claims, once its signature, algorithm, issuer, audience and times check out.
async fn verify(state: &WebState, up: &Upstream, token: &str) -> Result<Value, String> {
    let provider = state.federation.of(up);
    let metadata = provider.metadata().await.map_err(|e| e.to_string())?;
    let (key, alg) = provider.signing_key(token, &up.algorithms, metadata.jwks_uri()).await?;
    let mut validation = Validation::new(alg);
    validation.set_issuer(&[&up.issuer]);
    validation.set_audience(&[&up.client_id]);
    validation.set_required_spec_claims(&["iss", "aud", "iat", "exp"]);
    validation.leeway = 60;
    let data = jsonwebtoken::decode::<Value>(token, &key, &validation).map_err(|e| format!("refused: {e}"))?;
    let now = state.registry.store().now();
    if data
        .claims
        .get("iat")
        .and_then(Value::as_i64)
        .is_none_or(|iat| iat > now + 60)
    {
        return Err("issued in the future".into());
    }
    Ok(data.claims)
}
