//! Pools, apps and identity sources. Those of the config file are listed but read-only;
//! those created here are kept as config fragments in the store, validated together with
//! the file before they are written, and served by the running gateway at once.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::Value;

use super::{ApiError, ApiResult, Caller, PoolIdPath, PoolPath, known_pool};
use crate::admin::AdminState;
use crate::admin::ops::live_pool;
use crate::config::{App, Origin, Plan, PlanLimits, Source, SourceKind};
use crate::registry::Snapshot;
use crate::store::FragmentKind;

#[derive(Serialize)]
pub(super) struct PoolView {
    id: String,
    name: String,
    plan: Plan,
    limits: PlanLimits,
    portal: Option<String>,
    domains: Vec<String>,
    apps: Vec<String>,
    sources: Vec<String>,
    users: i64,
    config_managed: bool,
    /// Where it is declared: the config file's line, the gateway, or run time.
    origin: Origin,
}

#[derive(Serialize)]
pub(super) struct AppView {
    id: String,
    name: String,
    hosts: Vec<String>,
    upstreams: Vec<String>,
    public_paths: Vec<String>,
    timeout: String,
    connect_timeout: String,
    https_redirect: bool,
    /// Each upstream server as the last health check found it.
    health: Vec<ServerHealth>,
    config_managed: bool,
    /// Where it is declared: the config file's line, the gateway, or run time.
    origin: Origin,
}

#[derive(Serialize)]
struct ServerHealth {
    server: String,
    up: bool,
}

impl AppView {
    fn new(a: &App, snapshot: &Snapshot, pool: &str) -> AppView {
        let health = snapshot.upstream_health(pool, a.id.as_str());
        AppView {
            health: health
                .into_iter()
                .map(|(server, up)| ServerHealth { server, up })
                .collect(),
            id: a.id.to_string(),
            hosts: a.hosts.iter().map(|h| h.to_string()).collect(),
            upstreams: a.upstreams.clone(),
            public_paths: a.public_paths.clone(),
            name: a.name.clone(),
            timeout: a.timeout.to_string(),
            connect_timeout: a.connect_timeout.to_string(),
            https_redirect: a.https_redirect,
            config_managed: a.origin.managed(),
            origin: a.origin,
        }
    }
}

#[derive(Serialize)]
pub(super) struct SourceView {
    id: String,
    name: String,
    kind: &'static str,
    pool: Option<String>,
    issuer: Option<String>,
    first_login: &'static str,
    domains: Vec<String>,
    config_managed: bool,
    /// Where it is declared: the config file's line, the gateway, or run time.
    origin: Origin,
}

impl From<&Source> for SourceView {
    fn from(s: &Source) -> SourceView {
        let (kind, pool, issuer) = match &s.kind {
            SourceKind::Pool(p) => ("pool", Some(p.to_string()), None),
            SourceKind::Oidc { issuer, .. } => ("oidc", None, Some(issuer.clone())),
        };
        SourceView {
            id: s.id.to_string(),
            name: s.name.clone(),
            kind,
            pool,
            issuer,
            first_login: s.first_login.as_str(),
            domains: s.domains.clone(),
            config_managed: s.origin.managed(),
            origin: s.origin,
        }
    }
}

async fn pool_view(state: &AdminState, record: crate::store::PoolRecord) -> ApiResult<PoolView> {
    let snapshot = state.registry.snapshot_full();
    let live = live_pool(&snapshot.config, &record.id);
    Ok(PoolView {
        users: state.registry.store().count_users(&record.id).await?,
        portal: live.map(|p| p.portal.to_string()),
        domains: live
            .map(|p| p.domains.iter().map(|d| d.to_string()).collect())
            .unwrap_or_default(),
        apps: live
            .map(|p| p.apps.iter().map(|a| a.id.to_string()).collect())
            .unwrap_or_default(),
        sources: live
            .map(|p| p.sources.iter().map(|s| s.id.to_string()).collect())
            .unwrap_or_default(),
        limits: record.plan.limits(),
        id: record.id,
        name: record.name,
        plan: record.plan,
        config_managed: record.config_managed,
        origin: live.map_or(Origin::Runtime, |p| p.origin),
    })
}

pub(super) async fn list_pools(State(state): State<AdminState>) -> ApiResult<Json<Vec<PoolView>>> {
    let mut out = Vec::new();
    for record in state.registry.store().pools().await? {
        out.push(pool_view(&state, record).await?);
    }
    Ok(Json(out))
}

pub(super) async fn show_pool(State(state): State<AdminState>, Path(pool): PoolPath) -> ApiResult<Json<PoolView>> {
    let record = known_pool(&state, &pool).await?;
    Ok(Json(pool_view(&state, record).await?))
}

pub(super) async fn create_pool(
    State(state): State<AdminState>,
    caller: Caller,
    Json(body): Json<Value>,
) -> ApiResult<(StatusCode, Json<PoolView>)> {
    let id = caller.ops(&state).create_pool(&state.registry, body).await?;
    let record = known_pool(&state, &id).await?;
    Ok((StatusCode::CREATED, Json(pool_view(&state, record).await?)))
}

pub(super) async fn delete_pool(
    State(state): State<AdminState>,
    caller: Caller,
    Path(pool): PoolPath,
) -> ApiResult<StatusCode> {
    let ops = caller.ops(&state);
    ops.delete_object(&state.registry, &pool, FragmentKind::Pool, &pool)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn list_apps(State(state): State<AdminState>, Path(pool): PoolPath) -> ApiResult<Json<Vec<AppView>>> {
    known_pool(&state, &pool).await?;
    let snapshot = state.registry.snapshot_full();
    let apps = live_pool(&snapshot.config, &pool)
        .map(|p| p.apps.iter().map(|a| AppView::new(a, &snapshot, &pool)).collect())
        .unwrap_or_default();
    Ok(Json(apps))
}

pub(super) async fn show_app(
    State(state): State<AdminState>,
    Path((pool, id)): PoolIdPath,
) -> ApiResult<Json<AppView>> {
    known_pool(&state, &pool).await?;
    let snapshot = state.registry.snapshot_full();
    live_pool(&snapshot.config, &pool)
        .and_then(|p| p.apps.iter().find(|a| a.id.as_str() == id))
        .map(|a| Json(AppView::new(a, &snapshot, &pool)))
        .ok_or_else(ApiError::not_found)
}

pub(super) async fn create_app(
    State(state): State<AdminState>,
    caller: Caller,
    Path(pool): PoolPath,
    Json(body): Json<Value>,
) -> ApiResult<(StatusCode, Json<AppView>)> {
    let ops = caller.ops(&state);
    let id = ops
        .create_object(&state.registry, &pool, FragmentKind::App, body)
        .await?;
    show_app(State(state), Path((pool, id)))
        .await
        .map(|app| (StatusCode::CREATED, app))
}

/// `PATCH /apps/{id}`: a JSON merge patch on a run-time app's config.
pub(super) async fn change_app(
    State(state): State<AdminState>,
    caller: Caller,
    Path((pool, id)): PoolIdPath,
    Json(patch): Json<Value>,
) -> ApiResult<Json<AppView>> {
    let ops = caller.ops(&state);
    ops.change_object(&state.registry, &pool, FragmentKind::App, &id, patch)
        .await?;
    show_app(State(state), Path((pool, id))).await
}

pub(super) async fn delete_app(
    State(state): State<AdminState>,
    caller: Caller,
    Path((pool, id)): PoolIdPath,
) -> ApiResult<StatusCode> {
    let ops = caller.ops(&state);
    ops.delete_object(&state.registry, &pool, FragmentKind::App, &id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn list_sources(
    State(state): State<AdminState>,
    Path(pool): PoolPath,
) -> ApiResult<Json<Vec<SourceView>>> {
    known_pool(&state, &pool).await?;
    let snapshot = state.registry.snapshot_full();
    let sources = live_pool(&snapshot.config, &pool)
        .map(|p| p.sources.iter().map(SourceView::from).collect())
        .unwrap_or_default();
    Ok(Json(sources))
}

pub(super) async fn create_source(
    State(state): State<AdminState>,
    caller: Caller,
    Path(pool): PoolPath,
    Json(body): Json<Value>,
) -> ApiResult<(StatusCode, Json<SourceView>)> {
    let ops = caller.ops(&state);
    let id = ops
        .create_object(&state.registry, &pool, FragmentKind::Source, body)
        .await?;
    let snapshot = state.registry.snapshot_full();
    live_pool(&snapshot.config, &pool)
        .and_then(|p| p.sources.iter().find(|s| s.id.as_str() == id))
        .map(|s| (StatusCode::CREATED, Json(SourceView::from(s))))
        .ok_or_else(ApiError::not_found)
}

#[derive(Serialize)]
pub(super) struct ClientView {
    id: String,
    name: String,
    auth_method: &'static str,
    redirect_uris: Vec<String>,
    post_logout_redirect_uris: Vec<String>,
    backchannel_logout_uri: Option<String>,
    grant_types: Vec<crate::config::GrantType>,
    scopes: Vec<String>,
    id_token_signed_response_alg: crate::config::SigningAlg,
    access_token_lifetime: String,
    refresh_token_lifetime: String,
    config_managed: bool,
    /// Where it is declared: the config file's line, the gateway, or run time.
    origin: Origin,
    /// Only in the answer that made it: the client's secret, shown once.
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret: Option<String>,
}

impl From<&crate::config::Client> for ClientView {
    fn from(c: &crate::config::Client) -> ClientView {
        ClientView {
            id: c.id.to_string(),
            name: c.name.clone(),
            auth_method: c.auth_method.as_str(),
            redirect_uris: c.redirect_uris.clone(),
            post_logout_redirect_uris: c.post_logout_redirect_uris.clone(),
            backchannel_logout_uri: c.backchannel_logout_uri.clone(),
            grant_types: c.grant_types.clone(),
            scopes: c.scopes.clone(),
            id_token_signed_response_alg: c.id_token_alg,
            access_token_lifetime: c.access_token_lifetime.to_string(),
            refresh_token_lifetime: c.refresh_token_lifetime.to_string(),
            config_managed: c.origin.managed(),
            origin: c.origin,
            client_secret: None,
        }
    }
}

fn live_client(state: &AdminState, pool: &str, id: &str) -> ApiResult<ClientView> {
    live_client_config(state, pool, id).map(|c| ClientView::from(&c))
}

/// A client as the running gateway has it (from the file or made through the API).
fn live_client_config(state: &AdminState, pool: &str, id: &str) -> ApiResult<crate::config::Client> {
    let snapshot = state.registry.snapshot_full();
    live_pool(&snapshot.config, pool)
        .and_then(|p| p.clients.iter().find(|c| c.id.as_str() == id))
        .cloned()
        .ok_or_else(ApiError::not_found)
}

pub(super) async fn list_clients(
    State(state): State<AdminState>,
    Path(pool): PoolPath,
) -> ApiResult<Json<Vec<ClientView>>> {
    known_pool(&state, &pool).await?;
    let snapshot = state.registry.snapshot_full();
    let clients = live_pool(&snapshot.config, &pool)
        .map(|p| p.clients.iter().map(ClientView::from).collect())
        .unwrap_or_default();
    Ok(Json(clients))
}

pub(super) async fn show_client(
    State(state): State<AdminState>,
    Path((pool, id)): PoolIdPath,
) -> ApiResult<Json<ClientView>> {
    known_pool(&state, &pool).await?;
    live_client(&state, &pool, &id).map(Json)
}

/// `PATCH /sources/{id}`: a JSON merge patch on a run-time source's config.
pub(super) async fn change_source(
    State(state): State<AdminState>,
    caller: Caller,
    Path((pool, id)): PoolIdPath,
    Json(patch): Json<Value>,
) -> ApiResult<Json<SourceView>> {
    let ops = caller.ops(&state);
    ops.change_object(&state.registry, &pool, FragmentKind::Source, &id, patch)
        .await?;
    let snapshot = state.registry.snapshot_full();
    live_pool(&snapshot.config, &pool)
        .and_then(|p| p.sources.iter().find(|s| s.id.as_str() == id))
        .map(|s| Json(SourceView::from(s)))
        .ok_or_else(ApiError::not_found)
}

/// `PATCH /clients/{id}`: a JSON merge patch on a run-time client's config (its secret
/// is rotated on its own, with `POST /clients/{id}/secret`).
pub(super) async fn change_client(
    State(state): State<AdminState>,
    caller: Caller,
    Path((pool, id)): PoolIdPath,
    Json(patch): Json<Value>,
) -> ApiResult<Json<ClientView>> {
    let ops = caller.ops(&state);
    ops.change_object(&state.registry, &pool, FragmentKind::Client, &id, patch)
        .await?;
    live_client(&state, &pool, &id).map(Json)
}

/// Registers a client; a confidential one gets its first secret in this answer only.
pub(super) async fn create_client(
    State(state): State<AdminState>,
    caller: Caller,
    Path(pool): PoolPath,
    Json(body): Json<Value>,
) -> ApiResult<(StatusCode, Json<ClientView>)> {
    let ops = caller.ops(&state);
    let id = ops
        .create_object(&state.registry, &pool, FragmentKind::Client, body)
        .await?;
    let client = live_client_config(&state, &pool, &id)?;
    let mut view = ClientView::from(&client);
    if client.auth_method != crate::config::ClientAuthMethod::None {
        view.client_secret = Some(ops.new_client_secret(&pool, &client).await?);
    }
    Ok((StatusCode::CREATED, Json(view)))
}

/// A new secret for a client, shown once; the previous ones keep working for a day.
pub(super) async fn rotate_client_secret(
    State(state): State<AdminState>,
    caller: Caller,
    Path((pool, id)): PoolIdPath,
) -> ApiResult<(StatusCode, Json<Value>)> {
    known_pool(&state, &pool).await?;
    let client = live_client_config(&state, &pool, &id)?;
    let secret = caller.ops(&state).new_client_secret(&pool, &client).await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({
            "client_id": id,
            "client_secret": secret,
            "previous_secrets_end_in_secs": crate::store::SECRET_OVERLAP_SECS,
        })),
    ))
}

pub(super) async fn delete_client(
    State(state): State<AdminState>,
    caller: Caller,
    Path((pool, id)): PoolIdPath,
) -> ApiResult<StatusCode> {
    let ops = caller.ops(&state);
    ops.delete_object(&state.registry, &pool, FragmentKind::Client, &id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn delete_source(
    State(state): State<AdminState>,
    caller: Caller,
    Path((pool, id)): PoolIdPath,
) -> ApiResult<StatusCode> {
    let ops = caller.ops(&state);
    ops.delete_object(&state.registry, &pool, FragmentKind::Source, &id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
