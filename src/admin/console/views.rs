//! The console's pages: pools, and inside a pool its tabs (users, groups, apps, sources
//! and links, sessions, signing keys, audit log) and each app's page; a user's own page is
//! in `users`. Each change is a plain form post (its CSRF token checked first) that calls
//! the same `admin::ops` operation the API calls, then shows where it landed.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::{Value, context};
use serde::Deserialize;
use serde_json::json;

use super::{Confirm, Posted, Signed};
use crate::admin::AdminState;
use crate::admin::ops::live_pool;
use crate::admin::refusal::Refusal;
use crate::config::{Origin, PlanLimits, Pool, SourceKind};
use crate::store::{AuditFilter, FragmentKind, ImportReport, Page};
use crate::web::pages;

/// Rows on a page of users, sessions or audit events.
pub(super) const PAGE: i64 = 50;

/// A change the console could not make, said as the API says it.
pub(super) fn failed(signed: &Signed, back: &str, status: StatusCode, why: &str) -> Response {
    let text = format!("{} Nothing was changed.", pages::sentence(why));
    let view = context! { title => "That did not work", message => text, back => Some(back).filter(|b| !b.is_empty()) };
    pages::render_with(
        status,
        None,
        "console_message.html",
        context! { ..signed.page(), ..view },
    )
}

/// An operation refused: its status and reason, as the API gives them.
pub(super) fn refused(signed: &Signed, back: &str, why: impl Into<Refusal>) -> Response {
    let r = why.into();
    failed(signed, back, r.status, &r.message)
}

/// After a change: back to where it was made, or the reason it was not made.
pub(super) fn landed<T>(signed: &Signed, back: &str, done: Result<T, impl Into<Refusal>>) -> Response {
    match done {
        Ok(_) => Redirect::to(back).into_response(),
        Err(e) => refused(signed, back, e),
    }
}

/// Where a read-only object is declared ("config file, line 12"); `None` for one made at
/// run time, which the console may change.
fn declared(origin: Origin) -> Option<String> {
    match origin {
        Origin::File { line } => Some(format!("config file, line {line}")),
        Origin::Gateway => Some("made by poolgate".into()),
        Origin::Runtime => None,
    }
}

/// Where a pool is declared: as the gateway serves it, or (not served, say while a reload
/// is refused) as the store remembers it.
fn pool_declared(in_file: bool, live: Option<&Pool>) -> Option<String> {
    live.map_or(in_file.then(|| "config file".to_owned()), |p| declared(p.origin))
}

/// "3 of 3 apps on the free plan": where a plan's limit bites.
fn usage(count: usize, limit: Option<u64>, what: &str, plan: &str) -> String {
    match limit {
        Some(max) => format!("{count} of {max} {what} on the {plan} plan"),
        None => format!("{count} {what} (no limit on the {plan} plan)"),
    }
}

pub(super) async fn pools(State(state): State<AdminState>, signed: Signed) -> Response {
    pools_page(&state, &signed, StatusCode::OK, None).await
}

async fn pools_page(state: &AdminState, signed: &Signed, status: StatusCode, error: Option<String>) -> Response {
    let store = state.registry.store();
    let records = match store.pools().await {
        Ok(r) => r,
        Err(e) => return refused(signed, "/console", e),
    };
    let snapshot = state.registry.snapshot_full();
    let mut rows = Vec::new();
    for r in records {
        let live = live_pool(&snapshot.config, &r.id);
        let users = store.count_users(&r.id).await.unwrap_or_default();
        let apps = live.map_or(0, |p| p.apps.len());
        let limits: PlanLimits = r.plan.limits();
        rows.push(context! {
            id => r.id,
            name => r.name,
            plan => r.plan.as_str(),
            portal => live.map(|p| p.portal.to_string()),
            users => usage(users as usize, limits.max_users, "users", r.plan.as_str()),
            apps => usage(apps, limits.max_apps, "apps", r.plan.as_str()),
            declared => pool_declared(r.config_managed, live),
        });
    }
    let config_file = state.registry.config_path().display().to_string();
    pages::render_with(
        status,
        None,
        "console_pools.html",
        context! { ..signed.page(), ..context! { pools => rows, error => error, config_file => config_file } },
    )
}

#[derive(Deserialize)]
pub(super) struct PoolForm {
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    portal: String,
    #[serde(default)]
    plan: String,
}

pub(super) async fn create_pool(State(state): State<AdminState>, Posted(signed, f): Posted<PoolForm>) -> Response {
    let mut body = json!({ "id": f.id.trim(), "portal": f.portal.trim() });
    for (key, value) in [("name", f.name.trim()), ("plan", f.plan.trim())] {
        if !value.is_empty() {
            body[key] = json!(value);
        }
    }
    match signed.ops(&state).create_pool(&state.registry, body).await {
        Ok(id) => Redirect::to(&format!("/console/pools/{id}")).into_response(),
        Err(e) => {
            let r = Refusal::from(e);
            pools_page(&state, &signed, r.status, Some(pages::sentence(&r.message))).await
        }
    }
}

#[derive(Deserialize, Default)]
pub(super) struct PoolQuery {
    #[serde(default)]
    tab: String,
    #[serde(default)]
    q: String,
    #[serde(default)]
    offset: i64,
    #[serde(default)]
    action: String,
    #[serde(default)]
    actor: String,
    /// Audit events of the last this many hours.
    #[serde(default)]
    hours: Option<i64>,
}

impl PoolQuery {
    /// The first page of one tab.
    pub(super) fn tab(tab: &str) -> PoolQuery {
        PoolQuery {
            tab: tab.into(),
            ..PoolQuery::default()
        }
    }
}

pub(super) async fn pool(
    State(state): State<AdminState>,
    signed: Signed,
    Path(pool): Path<String>,
    Query(q): Query<PoolQuery>,
) -> Response {
    pool_page(&state, &signed, &pool, q, None).await
}

/// One pool, on one of its tabs. `import` is the report of a file just imported.
pub(super) async fn pool_page(
    state: &AdminState,
    signed: &Signed,
    pool: &str,
    q: PoolQuery,
    import: Option<(StatusCode, ImportReport)>,
) -> Response {
    let store = state.registry.store();
    let record = match store.pool(pool).await {
        Ok(r) => r,
        Err(e) => return refused(signed, "/console", e),
    };
    let snapshot = state.registry.snapshot_full();
    let live = live_pool(&snapshot.config, pool);
    let limits = record.plan.limits();
    let plan = record.plan.as_str();
    let user_count = store.count_users(pool).await.unwrap_or_default() as usize;
    let app_count = live.map_or(0, |p| p.apps.len());
    let tab = match q.tab.as_str() {
        "apps" | "groups" | "sources" | "sessions" | "keys" | "audit" => q.tab.clone(),
        _ => "users".to_owned(),
    };
    let page = Page {
        limit: PAGE,
        offset: q.offset.max(0),
    };
    let mut view = context! {
        tab => tab,
        pool => context! {
            id => record.id, name => record.name, plan => plan,
            declared => pool_declared(record.config_managed, live),
            portal => live.map(|p| p.portal.to_string()),
        },
        config_file => state.registry.config_path().display().to_string(),
        users_usage => usage(user_count, limits.max_users, "users", plan),
        apps_usage => usage(app_count, limits.max_apps, "apps", plan),
        federation => limits.federation,
        offset => page.offset,
        q => q.q,
    };
    let listed = match tab.as_str() {
        "users" => {
            let users = store.find_users(pool, &q.q, page).await;
            let report = import.as_ref().map(|(_, r)| r.clone());
            users.map(|u| context! { more => u.len() as i64 == PAGE, users => u, import => report })
        }
        "apps" => {
            let health = |id: &str| {
                let servers = snapshot.upstream_health(pool, id).into_iter();
                servers
                    .map(|(server, up)| context! { server => server, up => up })
                    .collect::<Vec<_>>()
            };
            let apps: Vec<_> = live
                .map(|p| {
                    p.apps
                        .iter()
                        .map(|a| {
                            context! {
                                id => a.id.to_string(), name => a.name,
                                hosts => a.hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>(),
                                upstreams => health(a.id.as_str()), declared => declared(a.origin),
                            }
                        })
                        .collect()
                })
                .unwrap_or_default();
            Ok(context! { apps => apps })
        }
        "groups" => store
            .groups(pool, page)
            .await
            .map(|g| context! { more => g.len() as i64 == PAGE, groups => g }),
        "sources" => {
            let sources: Vec<_> = live
                .map(|p| {
                    p.sources
                        .iter()
                        .map(|s| {
                            let (kind, from) = match &s.kind {
                                SourceKind::Pool(p) => ("pool", p.to_string()),
                                SourceKind::Oidc { issuer, .. } => ("OpenID Connect", issuer.clone()),
                            };
                            context! {
                                id => s.id.to_string(), name => s.name, kind => kind, from => from,
                                first_login => s.first_login.as_str(), domains => s.domains,
                                declared => declared(s.origin),
                            }
                        })
                        .collect()
                })
                .unwrap_or_default();
            match store.links(pool, page).await {
                Ok(links) => named(store, pool, &links, |l| &l.user_id)
                    .await
                    .map(|rows| context! { sources => sources, more => links.len() as i64 == PAGE, links => rows }),
                Err(e) => Err(e),
            }
        }
        "sessions" => match store.sso_sessions(pool, page).await {
            Ok(sessions) => named(store, pool, &sessions, |s| &s.user_id)
                .await
                .map(|rows| context! { more => sessions.len() as i64 == PAGE, sessions => rows }),
            Err(e) => Err(e),
        },
        "keys" => store.keys(pool).await.map(|k| context! { keys => k }),
        _ => {
            let filter = AuditFilter {
                action: Some(q.action.trim().to_owned()).filter(|a| !a.is_empty()),
                actor: Some(q.actor.trim().to_owned()).filter(|a| !a.is_empty()),
                since: q.hours.filter(|h| *h > 0).map(|h| store.now() - h * 3600),
                until: None,
            };
            store.audit_events(Some(pool), &filter, page).await.map(|e| {
                context! {
                    more => e.len() as i64 == PAGE, events => e,
                    action => q.action, actor => q.actor, hours => q.hours,
                }
            })
        }
    };
    match listed {
        Ok(rows) => view = context! { ..view, ..rows },
        Err(e) => return refused(signed, "/console", e),
    }
    let status = import.map_or(StatusCode::OK, |(s, _)| s);
    pages::render_with(status, None, "console_pool.html", context! { ..signed.page(), ..view })
}

/// Rows for a page, each with the username of the user it names (`None` for one gone).
async fn named<T: serde::Serialize>(
    store: &crate::store::Store,
    pool: &str,
    rows: &[T],
    user: impl Fn(&T) -> &String,
) -> Result<Vec<Value>, crate::store::StoreError> {
    let ids: Vec<&str> = rows.iter().map(|r| user(r).as_str()).collect();
    let names = store.usernames(pool, &ids).await?;
    let row = |r: &T| context! { ..Value::from_serialize(r), ..context! { username => names.get(user(r)) } };
    Ok(rows.iter().map(row).collect())
}

pub(super) async fn delete_pool(
    State(state): State<AdminState>,
    Path(pool): Path<String>,
    Posted(signed, f): Posted<Confirm>,
) -> Response {
    let back = format!("/console/pools/{pool}");
    if f.confirm.trim() != pool {
        let why = format!("type the pool's id, {pool}, to confirm that it is to be deleted with all it holds");
        return failed(&signed, &back, StatusCode::BAD_REQUEST, &why);
    }
    match signed
        .ops(&state)
        .delete_object(&state.registry, &pool, FragmentKind::Pool, &pool)
        .await
    {
        Ok(()) => Redirect::to("/console").into_response(),
        Err(e) => refused(&signed, &back, e),
    }
}

#[derive(Deserialize)]
pub(super) struct AppForm {
    /// Only when making one: an app's id does not change.
    #[serde(default)]
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    hosts: String,
    #[serde(default)]
    upstreams: String,
}

/// A list typed in one field: separated by spaces, commas or new lines.
pub(super) fn words(s: &str) -> Vec<String> {
    s.split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

pub(super) async fn create_app(
    State(state): State<AdminState>,
    Path(pool): Path<String>,
    Posted(signed, f): Posted<AppForm>,
) -> Response {
    let mut body = json!({ "id": f.id.trim(), "hosts": words(&f.hosts), "upstreams": words(&f.upstreams) });
    if !f.name.trim().is_empty() {
        body["name"] = json!(f.name.trim());
    }
    let back = format!("/console/pools/{pool}?tab=apps");
    let done = signed
        .ops(&state)
        .create_object(&state.registry, &pool, FragmentKind::App, body)
        .await;
    landed(&signed, &back, done)
}

/// One app, to change its name, hosts and upstreams (what else it has stays as it is).
pub(super) async fn app(
    State(state): State<AdminState>,
    signed: Signed,
    Path((pool, id)): Path<(String, String)>,
) -> Response {
    let back = format!("/console/pools/{pool}?tab=apps");
    let snapshot = state.registry.snapshot_full();
    let Some(app) = live_pool(&snapshot.config, &pool).and_then(|p| p.apps.iter().find(|a| a.id.as_str() == id)) else {
        return refused(&signed, &back, crate::store::StoreError::NotFound);
    };
    let view = context! {
        pool => pool, id => id, name => app.name, declared => declared(app.origin),
        hosts => app.hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>().join(", "),
        upstreams => app.upstreams.join(", "),
        public_paths => app.public_paths,
    };
    pages::render_with(
        StatusCode::OK,
        None,
        "console_app.html",
        context! { ..signed.page(), ..view },
    )
}

/// Changes a run-time app's name, hosts and upstreams, as `PATCH /apps/{id}` does.
pub(super) async fn change_app(
    State(state): State<AdminState>,
    Path((pool, id)): Path<(String, String)>,
    Posted(signed, f): Posted<AppForm>,
) -> Response {
    let name = Some(f.name.trim()).filter(|n| !n.is_empty());
    let patch = json!({ "name": name, "hosts": words(&f.hosts), "upstreams": words(&f.upstreams) });
    let done = signed
        .ops(&state)
        .change_object(&state.registry, &pool, FragmentKind::App, &id, patch)
        .await;
    let back = format!("/console/pools/{pool}/apps/{id}");
    match done {
        Ok(()) => Redirect::to(&format!("/console/pools/{pool}?tab=apps")).into_response(),
        Err(e) => refused(&signed, &back, e),
    }
}

pub(super) async fn delete_app(
    State(state): State<AdminState>,
    Path((pool, id)): Path<(String, String)>,
    Posted(signed, _): Posted<Confirm>,
) -> Response {
    let back = format!("/console/pools/{pool}?tab=apps");
    let done = signed
        .ops(&state)
        .delete_object(&state.registry, &pool, FragmentKind::App, &id)
        .await;
    landed(&signed, &back, done)
}

#[derive(Deserialize)]
pub(super) struct SourceForm {
    id: String,
    #[serde(default)]
    name: String,
    kind: String,
    /// `kind = "pool"`: the pool whose people may come in.
    #[serde(default)]
    pool: String,
    #[serde(default)]
    issuer: String,
    #[serde(default)]
    client_id: String,
    /// The environment variable that holds the client secret on the gateway's host (a
    /// secret is never typed into the console, nor stored).
    #[serde(default)]
    client_secret_env: String,
    #[serde(default)]
    first_login: String,
    #[serde(default)]
    domains: String,
    /// A checkbox: sent only when ticked.
    #[serde(default)]
    trust_email: Option<String>,
}

/// A new identity source, from the fields a person fills in (the API takes every setting).
pub(super) async fn create_source(
    State(state): State<AdminState>,
    Path(pool): Path<String>,
    Posted(signed, f): Posted<SourceForm>,
) -> Response {
    let mut body = json!({ "id": f.id.trim(), "kind": f.kind.trim() });
    let given = [
        ("name", f.name),
        ("pool", f.pool),
        ("issuer", f.issuer),
        ("client_id", f.client_id),
        ("client_secret_env", f.client_secret_env),
        ("first_login", f.first_login),
    ];
    for (key, value) in given {
        if !value.trim().is_empty() {
            body[key] = json!(value.trim());
        }
    }
    let domains = words(&f.domains);
    if !domains.is_empty() {
        body["domains"] = json!(domains);
    }
    if f.trust_email.is_some() {
        body["trust_email"] = json!(true);
    }
    let back = format!("/console/pools/{pool}?tab=sources");
    let done = signed
        .ops(&state)
        .create_object(&state.registry, &pool, FragmentKind::Source, body)
        .await;
    landed(&signed, &back, done)
}

/// Deletes an identity source made at run time; its links stay until it comes back or
/// they are removed.
pub(super) async fn delete_source(
    State(state): State<AdminState>,
    Path((pool, id)): Path<(String, String)>,
    Posted(signed, _): Posted<Confirm>,
) -> Response {
    let back = format!("/console/pools/{pool}?tab=sources");
    let done = signed
        .ops(&state)
        .delete_object(&state.registry, &pool, FragmentKind::Source, &id)
        .await;
    landed(&signed, &back, done)
}

pub(super) async fn revoke_session(
    State(state): State<AdminState>,
    Path((pool, id)): Path<(String, String)>,
    Posted(signed, _): Posted<Confirm>,
) -> Response {
    let back = format!("/console/pools/{pool}?tab=sessions");
    let done = state.ended(signed.ops(&state).revoke_session(&pool, &id).await).await;
    landed(&signed, &back, done)
}

pub(super) async fn rotate_key(
    State(state): State<AdminState>,
    Path(pool): Path<String>,
    Posted(signed, _): Posted<Confirm>,
) -> Response {
    let back = format!("/console/pools/{pool}?tab=keys");
    let done = state
        .rotated(signed.ops(&state).rotate_key(&pool, state.registry.master_key()).await)
        .await;
    landed(&signed, &back, done)
}
