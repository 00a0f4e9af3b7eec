//! Users and groups of a pool, and bulk import.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;

use super::{ApiError, ApiResult, Caller, List, PoolIdPath, PoolPath, known_pool};
use crate::admin::AdminState;
use crate::admin::ops::UserInput;
use crate::store::{Group, ImportFormat, ImportReport, Page, User, UserPatch};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateUser {
    username: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    email_verified: bool,
    #[serde(default)]
    name: String,
    /// Hashed (argon2id) before it is stored; never logged.
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    groups: Vec<String>,
}

#[derive(Deserialize)]
pub(super) struct Search {
    /// A username or email prefix, or part of the name (any case).
    #[serde(default)]
    q: String,
}

pub(super) async fn list(
    State(state): State<AdminState>,
    Path(pool): PoolPath,
    Query(page): Query<Page>,
    Query(search): Query<Search>,
) -> ApiResult<Json<List<User>>> {
    known_pool(&state, &pool).await?;
    let users = state.registry.store().find_users(&pool, &search.q, page).await?;
    Ok(List::new(users, page))
}

pub(super) async fn create(
    State(state): State<AdminState>,
    caller: Caller,
    Path(pool): PoolPath,
    Json(body): Json<CreateUser>,
) -> ApiResult<(StatusCode, Json<User>)> {
    let new = UserInput {
        username: body.username,
        email: body.email,
        email_verified: body.email_verified,
        name: body.name,
        password: body.password,
        groups: body.groups,
    };
    let user = caller.ops(&state).create_user(&pool, new).await?;
    Ok((StatusCode::CREATED, Json(user)))
}

pub(super) async fn show(State(state): State<AdminState>, Path((pool, id)): PoolIdPath) -> ApiResult<Json<User>> {
    Ok(Json(state.registry.store().user(&pool, &id).await?))
}

pub(super) async fn update(
    State(state): State<AdminState>,
    caller: Caller,
    Path((pool, id)): PoolIdPath,
    Json(patch): Json<UserPatch>,
) -> ApiResult<Json<User>> {
    Ok(Json(caller.ops(&state).update_user(&pool, &id, patch).await?))
}

pub(super) async fn remove(
    State(state): State<AdminState>,
    caller: Caller,
    Path((pool, id)): PoolIdPath,
) -> ApiResult<StatusCode> {
    state.ended(caller.ops(&state).delete_user(&pool, &id).await).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SetPassword {
    /// `null` removes the password (the user can then only come in through federation).
    password: Option<String>,
}

pub(super) async fn set_password(
    State(state): State<AdminState>,
    caller: Caller,
    Path((pool, id)): PoolIdPath,
    Json(body): Json<SetPassword>,
) -> ApiResult<StatusCode> {
    state
        .ended(caller.ops(&state).set_password(&pool, &id, body.password).await)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn disable(
    State(state): State<AdminState>,
    caller: Caller,
    Path((pool, id)): PoolIdPath,
) -> ApiResult<Json<User>> {
    let user = state
        .ended(caller.ops(&state).set_disabled(&pool, &id, true).await)
        .await?;
    Ok(Json(user))
}

pub(super) async fn enable(
    State(state): State<AdminState>,
    caller: Caller,
    Path((pool, id)): PoolIdPath,
) -> ApiResult<Json<User>> {
    Ok(Json(caller.ops(&state).set_disabled(&pool, &id, false).await?))
}

pub(super) async fn unlock(
    State(state): State<AdminState>,
    caller: Caller,
    Path((pool, id)): PoolIdPath,
) -> ApiResult<Json<User>> {
    Ok(Json(caller.ops(&state).unlock(&pool, &id).await?))
}

/// `DELETE /users/{id}/mfa`: the user's second factor is forgotten.
pub(super) async fn reset_mfa(
    State(state): State<AdminState>,
    caller: Caller,
    Path((pool, id)): PoolIdPath,
) -> ApiResult<Json<User>> {
    Ok(Json(caller.ops(&state).reset_mfa(&pool, &id).await?))
}

#[derive(Deserialize)]
pub(super) struct ImportQuery {
    #[serde(default = "jsonl")]
    format: String,
    #[serde(default)]
    atomic: bool,
}

fn jsonl() -> String {
    "jsonl".into()
}

/// The body is the file itself. 200 with a report; with `atomic=true` and any bad row,
/// 422 and nothing written.
pub(super) async fn import(
    State(state): State<AdminState>,
    caller: Caller,
    Path(pool): PoolPath,
    Query(q): Query<ImportQuery>,
    body: String,
) -> ApiResult<(StatusCode, Json<ImportReport>)> {
    let format = match q.format.as_str() {
        "jsonl" | "json" => ImportFormat::Jsonl,
        "csv" => ImportFormat::Csv,
        other => return Err(ApiError::bad_request(format!("unknown format `{other}`: jsonl or csv"))),
    };
    let report = caller.ops(&state).import_users(&pool, &body, format, q.atomic).await?;
    let status = if q.atomic && !report.errors.is_empty() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    Ok((status, Json(report)))
}

pub(super) async fn list_groups(
    State(state): State<AdminState>,
    Path(pool): PoolPath,
    Query(page): Query<Page>,
) -> ApiResult<Json<List<Group>>> {
    known_pool(&state, &pool).await?;
    Ok(List::new(state.registry.store().groups(&pool, page).await?, page))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateGroup {
    name: String,
}

pub(super) async fn create_group(
    State(state): State<AdminState>,
    caller: Caller,
    Path(pool): PoolPath,
    Json(body): Json<CreateGroup>,
) -> ApiResult<(StatusCode, Json<Group>)> {
    let group = caller.ops(&state).create_group(&pool, &body.name).await?;
    Ok((StatusCode::CREATED, Json(group)))
}

pub(super) async fn delete_group(
    State(state): State<AdminState>,
    caller: Caller,
    Path((pool, group)): PoolIdPath,
) -> ApiResult<StatusCode> {
    caller.ops(&state).delete_group(&pool, &group).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn add_member(
    State(state): State<AdminState>,
    caller: Caller,
    Path((pool, group, user)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    caller.ops(&state).set_member(&pool, &group, &user, true).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn remove_member(
    State(state): State<AdminState>,
    caller: Caller,
    Path((pool, group, user)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    caller.ops(&state).set_member(&pool, &group, &user, false).await?;
    Ok(StatusCode::NO_CONTENT)
}
