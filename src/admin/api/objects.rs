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
use crate::config::{App, Config, Extra, Plan, PlanLimits, Pool, Source, SourceKind};
use crate::ids::{AppId, PoolId, SourceId};
use crate::store::{Fragment, FragmentKind};

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
    config_managed: bool,
}

impl From<&App> for AppView {
    fn from(a: &App) -> AppView {
        AppView {
            id: a.id.to_string(),
            hosts: a.hosts.iter().map(|h| h.to_string()).collect(),
            upstreams: a.upstreams.clone(),
            public_paths: a.public_paths.clone(),
            name: a.name.clone(),
            timeout: a.timeout.to_string(),
            connect_timeout: a.connect_timeout.to_string(),
            https_redirect: a.https_redirect,
            config_managed: a.config_managed,
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
    config_managed: bool,
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
            config_managed: s.config_managed,
        }
    }
}

fn live_pool<'a>(config: &'a Config, id: &str) -> Option<&'a Pool> {
    config.pools.iter().find(|p| p.id.as_str() == id)
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

/// Splits `id` off a JSON object body and renders the rest as the TOML table at `path`.
fn fragment_body(body: Value, path: &[&str]) -> ApiResult<(String, String)> {
    let Value::Object(mut fields) = body else {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    };
    let id = match fields.remove("id") {
        Some(Value::String(id)) => id,
        _ => return Err(ApiError::bad_request("`id` (a string) is required")),
    };
    let mut value = toml::Value::try_from(Value::Object(fields))
        .map_err(|e| ApiError::bad_request(format!("cannot be config: {e}")))?;
    for key in path.iter().copied().chain([id.as_str()]).rev() {
        let mut table = toml::Table::new();
        table.insert(key.to_owned(), value);
        value = toml::Value::Table(table);
    }
    let text = toml::to_string(&value).map_err(|e| ApiError::bad_request(format!("cannot be config: {e}")))?;
    Ok((id, text))
}

/// Validates with the file and every run-time object, stores, and reloads the gateway.
async fn put_object(
    state: &AdminState,
    fragment: Fragment,
    label: String,
    pool_record: Option<(&str, Plan)>,
) -> ApiResult<()> {
    let extra = Extra {
        label,
        pool: fragment.pool_id.clone(),
        is_pool: fragment.kind == FragmentKind::Pool,
        text: fragment.body.clone(),
    };
    state.registry.trial(extra).await?;
    state.registry.store().put_fragment(&fragment, pool_record).await?;
    if let Err(e) = state.registry.reload_logged("admin api").await {
        // The trial passed, so this is rare (a file edited meanwhile): undo, report.
        let _ = state
            .registry
            .store()
            .delete_fragment(&fragment.pool_id, fragment.kind, &fragment.id)
            .await;
        return Err(e.into());
    }
    Ok(())
}

async fn delete_object(state: &AdminState, pool: &str, kind: FragmentKind, id: &str) -> ApiResult<()> {
    state.registry.store().delete_fragment(pool, kind, id).await?;
    state.registry.reload_logged("admin api").await?;
    Ok(())
}

pub(super) async fn create_pool(
    State(state): State<AdminState>,
    caller: Caller,
    Json(body): Json<Value>,
) -> ApiResult<(StatusCode, Json<PoolView>)> {
    if body.get("apps").is_some() || body.get("sources").is_some() {
        return Err(ApiError::bad_request(
            "create the pool first, then its apps and sources",
        ));
    }
    let name = body.get("name").and_then(Value::as_str).unwrap_or_default().to_owned();
    let plan = match body.get("plan").and_then(Value::as_str) {
        None => Plan::Free,
        Some(p) => Plan::parse(p).ok_or_else(|| ApiError::bad_request(format!("unknown plan `{p}`")))?,
    };
    let (id, text) = fragment_body(body, &["pools"])?;
    PoolId::parse(&id).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let fragment = Fragment {
        pool_id: id.clone(),
        kind: FragmentKind::Pool,
        id: id.clone(),
        body: text,
    };
    put_object(&state, fragment, format!("pool `{id}`"), Some((&name, plan))).await?;
    caller.audit(&state, Some(&id), "pool.create", &id, String::new()).await;
    let record = known_pool(&state, &id).await?;
    Ok((StatusCode::CREATED, Json(pool_view(&state, record).await?)))
}

pub(super) async fn delete_pool(
    State(state): State<AdminState>,
    caller: Caller,
    Path(pool): PoolPath,
) -> ApiResult<StatusCode> {
    if known_pool(&state, &pool).await?.config_managed {
        return Err(ApiError::config_managed(&format!("pool `{pool}`")));
    }
    delete_object(&state, &pool, FragmentKind::Pool, &pool).await?;
    caller
        .audit(&state, Some(&pool), "pool.delete", &pool, String::new())
        .await;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn list_apps(State(state): State<AdminState>, Path(pool): PoolPath) -> ApiResult<Json<Vec<AppView>>> {
    known_pool(&state, &pool).await?;
    let snapshot = state.registry.snapshot_full();
    let apps = live_pool(&snapshot.config, &pool)
        .map(|p| p.apps.iter().map(AppView::from).collect())
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
        .map(|a| Json(AppView::from(a)))
        .ok_or_else(ApiError::not_found)
}

pub(super) async fn create_app(
    State(state): State<AdminState>,
    caller: Caller,
    Path(pool): PoolPath,
    Json(body): Json<Value>,
) -> ApiResult<(StatusCode, Json<AppView>)> {
    known_pool(&state, &pool).await?;
    let (id, text) = fragment_body(body, &["pools", &pool, "apps"])?;
    AppId::parse(&id).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let fragment = Fragment {
        pool_id: pool.clone(),
        kind: FragmentKind::App,
        id: id.clone(),
        body: text,
    };
    put_object(&state, fragment, format!("app `{pool}/{id}`"), None).await?;
    caller
        .audit(&state, Some(&pool), "app.create", &id, String::new())
        .await;
    show_app(State(state), Path((pool, id)))
        .await
        .map(|app| (StatusCode::CREATED, app))
}

pub(super) async fn delete_app(
    State(state): State<AdminState>,
    caller: Caller,
    Path((pool, id)): PoolIdPath,
) -> ApiResult<StatusCode> {
    let Json(app) = show_app(State(state.clone()), Path((pool.clone(), id.clone()))).await?;
    if app.config_managed {
        return Err(ApiError::config_managed(&format!("app `{pool}/{id}`")));
    }
    delete_object(&state, &pool, FragmentKind::App, &id).await?;
    caller
        .audit(&state, Some(&pool), "app.delete", &id, String::new())
        .await;
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
    known_pool(&state, &pool).await?;
    let (id, text) = fragment_body(body, &["pools", &pool, "sources"])?;
    SourceId::parse(&id).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let fragment = Fragment {
        pool_id: pool.clone(),
        kind: FragmentKind::Source,
        id: id.clone(),
        body: text,
    };
    put_object(&state, fragment, format!("source `{pool}/{id}`"), None).await?;
    caller
        .audit(&state, Some(&pool), "source.create", &id, String::new())
        .await;
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
            config_managed: c.config_managed,
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

/// Registers a client; a confidential one gets its first secret in this answer only.
pub(super) async fn create_client(
    State(state): State<AdminState>,
    caller: Caller,
    Path(pool): PoolPath,
    Json(body): Json<Value>,
) -> ApiResult<(StatusCode, Json<ClientView>)> {
    known_pool(&state, &pool).await?;
    let (id, text) = fragment_body(body, &["pools", &pool, "clients"])?;
    crate::ids::ClientId::parse(&id).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let fragment = Fragment {
        pool_id: pool.clone(),
        kind: FragmentKind::Client,
        id: id.clone(),
        body: text,
    };
    put_object(&state, fragment, format!("client `{pool}/{id}`"), None).await?;
    caller
        .audit(&state, Some(&pool), "client.create", &id, String::new())
        .await;
    let client = live_client_config(&state, &pool, &id)?;
    let mut view = ClientView::from(&client);
    if client.auth_method != crate::config::ClientAuthMethod::None {
        view.client_secret = Some(caller.ops(&state).new_client_secret(&pool, &client).await?);
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
    known_pool(&state, &pool).await?;
    let view = live_client(&state, &pool, &id)?;
    if view.config_managed {
        return Err(ApiError::config_managed(&format!("client `{pool}/{id}`")));
    }
    delete_object(&state, &pool, FragmentKind::Client, &id).await?;
    caller
        .audit(&state, Some(&pool), "client.delete", &id, String::new())
        .await;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn delete_source(
    State(state): State<AdminState>,
    caller: Caller,
    Path((pool, id)): PoolIdPath,
) -> ApiResult<StatusCode> {
    known_pool(&state, &pool).await?;
    let snapshot = state.registry.snapshot_full();
    let source = live_pool(&snapshot.config, &pool)
        .and_then(|p| p.sources.iter().find(|s| s.id.as_str() == id))
        .ok_or_else(ApiError::not_found)?;
    if source.config_managed {
        return Err(ApiError::config_managed(&format!("source `{pool}/{id}`")));
    }
    delete_object(&state, &pool, FragmentKind::Source, &id).await?;
    caller
        .audit(&state, Some(&pool), "source.delete", &id, String::new())
        .await;
    Ok(StatusCode::NO_CONTENT)
}
