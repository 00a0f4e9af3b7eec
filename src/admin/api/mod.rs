//! The admin REST API: JSON under `/api`, a bearer token on every call, and every call on
//! pool data scoped by the pool in its path, so an id of another pool is simply not found.
//! Its contract is `openapi.json` beside this file, served at `/openapi.json`.

mod objects;
mod records;
mod users;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post, put};
use serde::Serialize;
use serde_json::json;

use super::AdminState;
use super::refusal::Refusal;
use crate::registry::ReloadError;
use crate::store::StoreError;

pub(super) fn router(state: AdminState) -> Router<AdminState> {
    Router::new()
        .route("/reload", post(reload))
        .route("/audit", get(records::audit_all))
        .route("/pools", get(objects::list_pools).post(objects::create_pool))
        .route("/pools/{pool}", get(objects::show_pool).delete(objects::delete_pool))
        .route("/pools/{pool}/apps", get(objects::list_apps).post(objects::create_app))
        .route(
            "/pools/{pool}/apps/{id}",
            get(objects::show_app)
                .patch(objects::change_app)
                .delete(objects::delete_app),
        )
        .route(
            "/pools/{pool}/sources",
            get(objects::list_sources).post(objects::create_source),
        )
        .route(
            "/pools/{pool}/sources/{id}",
            patch(objects::change_source).delete(objects::delete_source),
        )
        .route(
            "/pools/{pool}/clients",
            get(objects::list_clients).post(objects::create_client),
        )
        .route(
            "/pools/{pool}/clients/{id}",
            get(objects::show_client)
                .patch(objects::change_client)
                .delete(objects::delete_client),
        )
        .route("/pools/{pool}/clients/{id}/secret", post(objects::rotate_client_secret))
        .route("/pools/{pool}/users", get(users::list).post(users::create))
        .route("/pools/{pool}/users/import", post(users::import))
        .route(
            "/pools/{pool}/users/{id}",
            get(users::show).patch(users::update).delete(users::remove),
        )
        .route("/pools/{pool}/users/{id}/password", put(users::set_password))
        .route("/pools/{pool}/users/{id}/disable", post(users::disable))
        .route("/pools/{pool}/users/{id}/enable", post(users::enable))
        .route("/pools/{pool}/users/{id}/unlock", post(users::unlock))
        .route("/pools/{pool}/users/{id}/mfa", delete(users::reset_mfa))
        .route(
            "/pools/{pool}/groups",
            get(users::list_groups).post(users::create_group),
        )
        .route("/pools/{pool}/groups/{group}", delete(users::delete_group))
        .route(
            "/pools/{pool}/groups/{group}/members/{user}",
            put(users::add_member).delete(users::remove_member),
        )
        .route("/pools/{pool}/links", get(records::list_links))
        .route(
            "/pools/{pool}/links/{id}",
            delete(records::delete_link).patch(records::move_link),
        )
        .route("/pools/{pool}/sessions", get(records::list_sessions))
        .route("/pools/{pool}/sessions/{id}", delete(records::revoke_session))
        .route("/pools/{pool}/keys", get(records::list_keys))
        .route("/pools/{pool}/keys/rotate", post(records::rotate_key))
        .route("/pools/{pool}/audit", get(records::audit_pool))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no_such_endpoint", "no such endpoint") })
        .layer(middleware::from_fn_with_state(state, require_token))
}

pub(super) async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("openapi.json"),
    )
}

/// Refuses any call without the admin token, before it reaches a handler.
async fn require_token(State(state): State<AdminState>, req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match presented {
        // Exactly the token: no trimming, no second spelling.
        Some(t) if state.token.matches(t) => next.run(req).await,
        _ => {
            let mut resp = ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a valid admin token is required",
            )
            .into_response();
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"poolgate admin\""),
            );
            resp
        }
    }
}

/// An error as the API reports it: `{"error": {"code": …, "message": …}}`.
#[derive(Debug)]
pub(super) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    pub(super) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub(super) fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub(super) fn not_found() -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", "not found")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({ "error": { "code": self.code, "message": self.message } })),
        )
            .into_response()
    }
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> ApiError {
        ApiError::new(r.status, r.code, r.message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        Refusal::from(e).into()
    }
}

impl From<ReloadError> for ApiError {
    fn from(e: ReloadError) -> ApiError {
        Refusal::from(e).into()
    }
}

impl From<crate::admin::ops::ObjectError> for ApiError {
    fn from(e: crate::admin::ops::ObjectError) -> ApiError {
        Refusal::from(e).into()
    }
}

pub(super) type ApiResult<T> = Result<T, ApiError>;

/// A page of a list.
#[derive(Serialize)]
pub(super) struct List<T> {
    items: Vec<T>,
    limit: i64,
    offset: i64,
}

impl<T> List<T> {
    pub(super) fn new(items: Vec<T>, page: crate::store::Page) -> Json<List<T>> {
        Json(List {
            items,
            limit: page.limit,
            offset: page.offset,
        })
    }
}

/// Who made a change and from where, for the audit log.
pub(super) use super::Client as Caller;

impl Caller {
    /// The admin operations, done as this caller.
    pub(super) fn ops<'a>(&self, state: &'a AdminState) -> crate::admin::ops::Ops<'a> {
        crate::admin::ops::Ops::new(state.registry.store(), crate::admin::ops::Operator::api(self.0))
    }
}

/// 404 unless the pool exists: every pool-scoped call starts here.
pub(super) async fn known_pool(state: &AdminState, pool: &str) -> ApiResult<crate::store::PoolRecord> {
    Ok(state.registry.store().pool(pool).await?)
}

async fn reload(State(state): State<AdminState>, caller: Caller) -> ApiResult<Json<serde_json::Value>> {
    let outcome = state.registry.reload_logged("admin api").await;
    state.metrics.reloaded(outcome.is_ok());
    match outcome {
        Ok(()) => {
            caller.ops(&state).audit_deployment("config.reload", "config").await;
            Ok(Json(json!({ "status": "reloaded" })))
        }
        Err(e) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "refused",
            e.to_string(),
        )),
    }
}

pub(super) type PoolPath = Path<String>;
pub(super) type PoolIdPath = Path<(String, String)>;
