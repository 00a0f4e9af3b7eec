//! Pools, apps, identity sources and clients made at run time. Those of the config file
//! are read-only here; the others are kept as config fragments in the store, validated
//! together with the file before they are written, and served by the gateway at once.

use serde_json::Value;

use super::Ops;
use crate::config::{Config, Extra, Plan, Pool};
use crate::ids::{AppId, ClientId, PoolId, SourceId};
use crate::registry::{Registry, ReloadError};
use crate::store::{Fragment, FragmentKind, StoreError};

/// Why an object was not changed.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    /// The input cannot be an object of that kind.
    #[error("{0}")]
    Input(String),
    #[error("{0} is declared in the config file: change it there")]
    ConfigManaged(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The gateway refuses the config the object would make (the file is unchanged).
    #[error(transparent)]
    Refused(#[from] ReloadError),
}

type Result<T> = std::result::Result<T, ObjectError>;

pub fn live_pool<'a>(config: &'a Config, id: &str) -> Option<&'a Pool> {
    config.pools.iter().find(|p| p.id.as_str() == id)
}

/// Whether the object the gateway serves came from the config file; `None` when it
/// serves no such object.
fn config_managed(config: &Config, pool: &str, kind: FragmentKind, id: &str) -> Option<bool> {
    let p = live_pool(config, pool)?;
    match kind {
        FragmentKind::Pool => Some(p.origin.managed()),
        FragmentKind::App => p.apps.iter().find(|a| a.id.as_str() == id).map(|a| a.origin.managed()),
        FragmentKind::Source => p
            .sources
            .iter()
            .find(|s| s.id.as_str() == id)
            .map(|s| s.origin.managed()),
        FragmentKind::Client => p
            .clients
            .iter()
            .find(|c| c.id.as_str() == id)
            .map(|c| c.origin.managed()),
    }
}

/// Splits `id` off a JSON object and renders the rest as the TOML table at `path`.
fn fragment_body(body: Value, path: &[&str]) -> Result<(String, String)> {
    let Value::Object(mut fields) = body else {
        return Err(ObjectError::Input("the body must be a JSON object".into()));
    };
    let id = match fields.remove("id") {
        Some(Value::String(id)) => id,
        _ => return Err(ObjectError::Input("`id` (a string) is required".into())),
    };
    let cannot = |e: &dyn std::fmt::Display| ObjectError::Input(format!("cannot be config: {e}"));
    let mut value = toml::Value::try_from(Value::Object(fields)).map_err(|e| cannot(&e))?;
    for key in path.iter().copied().chain([id.as_str()]).rev() {
        let mut table = toml::Table::new();
        table.insert(key.to_owned(), value);
        value = toml::Value::Table(table);
    }
    let text = toml::to_string(&value).map_err(|e| cannot(&e))?;
    Ok((id, text))
}

impl Ops<'_> {
    /// A new pool (no apps or sources yet: those are made inside it). `body` is the pool's
    /// config as JSON, with its `id`, and optionally `name` and `plan`.
    pub async fn create_pool(&self, registry: &Registry, body: Value) -> Result<String> {
        if body.get("apps").is_some() || body.get("sources").is_some() {
            return Err(ObjectError::Input(
                "create the pool first, then its apps and sources".into(),
            ));
        }
        let name = body.get("name").and_then(Value::as_str).unwrap_or_default().to_owned();
        let plan = match body.get("plan").and_then(Value::as_str) {
            None => Plan::Free,
            Some(p) => Plan::parse(p).ok_or_else(|| ObjectError::Input(format!("unknown plan `{p}`")))?,
        };
        let (id, text) = fragment_body(body, &["pools"])?;
        PoolId::parse(&id).map_err(|e| ObjectError::Input(e.to_string()))?;
        let fragment = Fragment {
            pool_id: id.clone(),
            kind: FragmentKind::Pool,
            id: id.clone(),
            body: text,
        };
        put(registry, fragment, Some((&name, plan))).await?;
        self.audit(&id, "pool.create", &id, String::new()).await;
        Ok(id)
    }

    /// A new app, source or client of `pool`, from its config as JSON (with its `id`).
    pub async fn create_object(
        &self,
        registry: &Registry,
        pool: &str,
        kind: FragmentKind,
        body: Value,
    ) -> Result<String> {
        self.store.pool(pool).await?;
        let table = match kind {
            FragmentKind::App => "apps",
            FragmentKind::Source => "sources",
            FragmentKind::Client => "clients",
            FragmentKind::Pool => return Err(ObjectError::Input("a pool is made with create_pool".into())),
        };
        let (id, text) = fragment_body(body, &["pools", pool, table])?;
        let parsed = match kind {
            FragmentKind::App => AppId::parse(&id).map(drop),
            FragmentKind::Source => SourceId::parse(&id).map(drop),
            _ => ClientId::parse(&id).map(drop),
        };
        parsed.map_err(|e| ObjectError::Input(e.to_string()))?;
        let fragment = Fragment {
            pool_id: pool.to_owned(),
            kind,
            id: id.clone(),
            body: text,
        };
        put(registry, fragment, None).await?;
        self.audit(pool, &format!("{}.create", kind.as_str()), &id, String::new())
            .await;
        Ok(id)
    }

    /// Deletes a pool, app, source or client made at run time (a pool with all it holds).
    pub async fn delete_object(&self, registry: &Registry, pool: &str, kind: FragmentKind, id: &str) -> Result<()> {
        let record = self.store.pool(pool).await?;
        let managed = match kind {
            FragmentKind::Pool => Some(record.config_managed),
            _ => config_managed(&registry.snapshot_full().config, pool, kind, id),
        };
        match managed {
            None => return Err(StoreError::NotFound.into()),
            Some(true) => {
                let what = match kind {
                    FragmentKind::Pool => format!("pool `{pool}`"),
                    _ => format!("{} `{pool}/{id}`", kind.as_str()),
                };
                return Err(ObjectError::ConfigManaged(what));
            }
            Some(false) => {}
        }
        registry.store().delete_fragment(pool, kind, id).await?;
        registry.reload_logged("admin").await?;
        self.audit(pool, &format!("{}.delete", kind.as_str()), id, String::new())
            .await;
        Ok(())
    }
}

/// Validates with the file and every run-time object, stores, and reloads the gateway.
async fn put(registry: &Registry, fragment: Fragment, pool_record: Option<(&str, Plan)>) -> Result<()> {
    let label = match fragment.kind {
        FragmentKind::Pool => format!("pool `{}`", fragment.id),
        kind => format!("{} `{}/{}`", kind.as_str(), fragment.pool_id, fragment.id),
    };
    let extra = Extra {
        label,
        pool: fragment.pool_id.clone(),
        is_pool: fragment.kind == FragmentKind::Pool,
        text: fragment.body.clone(),
    };
    registry.trial(extra).await?;
    registry.store().put_fragment(&fragment, pool_record).await?;
    if let Err(e) = registry.reload_logged("admin").await {
        // The trial passed, so this is rare (a file edited meanwhile): undo, report.
        let _ = registry
            .store()
            .delete_fragment(&fragment.pool_id, fragment.kind, &fragment.id)
            .await;
        return Err(e.into());
    }
    Ok(())
}
