//! What the gateway records about a pool: federation links, sessions, signing keys, and the
//! audit log.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;

use super::{ApiResult, Caller, List, PoolIdPath, PoolPath, known_pool};
use crate::admin::AdminState;
use crate::store::{AuditEvent, AuditFilter, KeyRecord, Link, Page, SsoSessionRecord};

pub(super) async fn list_links(
    State(state): State<AdminState>,
    Path(pool): PoolPath,
    Query(page): Query<Page>,
) -> ApiResult<Json<List<Link>>> {
    known_pool(&state, &pool).await?;
    Ok(List::new(state.registry.store().links(&pool, page).await?, page))
}

pub(super) async fn delete_link(
    State(state): State<AdminState>,
    caller: Caller,
    Path((pool, id)): PoolIdPath,
) -> ApiResult<StatusCode> {
    state.ended(caller.ops(&state).delete_link(&pool, &id).await).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MoveLink {
    user_id: String,
}

/// `PATCH /links/{id}` `{"user_id": …}`: the link belongs to another user of the pool.
pub(super) async fn move_link(
    State(state): State<AdminState>,
    caller: Caller,
    Path((pool, id)): PoolIdPath,
    Json(body): Json<MoveLink>,
) -> ApiResult<StatusCode> {
    state
        .ended(caller.ops(&state).move_link(&pool, &id, &body.user_id).await)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn list_sessions(
    State(state): State<AdminState>,
    Path(pool): PoolPath,
    Query(page): Query<Page>,
) -> ApiResult<Json<List<SsoSessionRecord>>> {
    known_pool(&state, &pool).await?;
    Ok(List::new(state.registry.store().sso_sessions(&pool, page).await?, page))
}

/// Revokes an SSO session and every app session made from it, on every node.
pub(super) async fn revoke_session(
    State(state): State<AdminState>,
    caller: Caller,
    Path((pool, id)): PoolIdPath,
) -> ApiResult<StatusCode> {
    state.ended(caller.ops(&state).revoke_session(&pool, &id).await).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn list_keys(
    State(state): State<AdminState>,
    Path(pool): PoolPath,
) -> ApiResult<Json<Vec<KeyRecord>>> {
    known_pool(&state, &pool).await?;
    Ok(Json(state.registry.store().keys(&pool).await?))
}

pub(super) async fn rotate_key(
    State(state): State<AdminState>,
    caller: Caller,
    Path(pool): PoolPath,
) -> ApiResult<(StatusCode, Json<KeyRecord>)> {
    let done = caller.ops(&state).rotate_key(&pool, state.registry.master_key()).await;
    let key = state.rotated(done).await?;
    Ok((StatusCode::CREATED, Json(key)))
}

pub(super) async fn audit_pool(
    State(state): State<AdminState>,
    Path(pool): PoolPath,
    Query(page): Query<Page>,
    Query(filter): Query<AuditFilter>,
) -> ApiResult<Json<List<AuditEvent>>> {
    known_pool(&state, &pool).await?;
    Ok(List::new(
        state.registry.store().audit_events(Some(&pool), &filter, page).await?,
        page,
    ))
}

pub(super) async fn audit_all(
    State(state): State<AdminState>,
    Query(page): Query<Page>,
    Query(filter): Query<AuditFilter>,
) -> ApiResult<Json<List<AuditEvent>>> {
    Ok(List::new(
        state.registry.store().audit_events(None, &filter, page).await?,
        page,
    ))
}
