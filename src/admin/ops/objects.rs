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
        let (id, text) = fragment_body(body, &["pools", pool, table(kind)?])?;
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

    /// Changes an app, source or client made at run time. `patch` is a JSON merge patch
    /// (RFC 7396) on its config: the fields it names are set, a `null` removes one, the
    /// rest stay. The whole is validated with everything else before it is written. Its
    /// id stays.
    pub async fn change_object(
        &self,
        registry: &Registry,
        pool: &str,
        kind: FragmentKind,
        id: &str,
        patch: Value,
    ) -> Result<()> {
        self.store.pool(pool).await?;
        let table = table(kind)?;
        let managed = config_managed(&registry.snapshot_full().config, pool, kind, id);
        run_time_only(managed, pool, kind, id)?;
        if !patch.is_object() {
            return Err(ObjectError::Input("the change must be a JSON object".into()));
        }
        if patch.get("id").is_some_and(|same| same.as_str() != Some(id)) {
            let why = format!(
                "the id of {} `{id}` cannot change: make a new one, then delete this one",
                kind.as_str()
            );
            return Err(ObjectError::Input(why));
        }
        let fragments = self.store.fragments().await?;
        let current = fragments
            .iter()
            .find(|f| f.pool_id == pool && f.kind == kind && f.id == id)
            .ok_or(StoreError::NotFound)?;
        let mut body = config_of(current, &["pools", pool, table])?;
        merge(&mut body, patch);
        if let Some(fields) = body.as_object_mut() {
            fields.insert("id".into(), Value::from(id));
        }
        let (_, text) = fragment_body(body, &["pools", pool, table])?;
        let fragment = Fragment {
            pool_id: pool.to_owned(),
            kind,
            id: id.to_owned(),
            body: text,
        };
        registry.trial(extra(&fragment), Some(&fragment)).await?;
        let previous = registry.store().replace_fragment(&fragment).await?;
        if let Err(e) = registry.reload_logged("admin").await {
            // As in `put`: rare, and undone.
            let undo = Fragment {
                body: previous,
                ..fragment
            };
            let _ = registry.store().replace_fragment(&undo).await;
            return Err(e.into());
        }
        self.audit(pool, &format!("{}.update", kind.as_str()), id, String::new())
            .await;
        Ok(())
    }

    /// Deletes a pool, app, source or client made at run time (a pool with all it holds).
    pub async fn delete_object(&self, registry: &Registry, pool: &str, kind: FragmentKind, id: &str) -> Result<()> {
        let record = self.store.pool(pool).await?;
        let managed = match kind {
            FragmentKind::Pool => Some(record.config_managed),
            _ => config_managed(&registry.snapshot_full().config, pool, kind, id),
        };
        run_time_only(managed, pool, kind, id)?;
        registry.store().delete_fragment(pool, kind, id).await?;
        registry.reload_logged("admin").await?;
        self.audit(pool, &format!("{}.delete", kind.as_str()), id, String::new())
            .await;
        Ok(())
    }
}

/// Only what was made at run time is changed here: an object the gateway does not serve
/// is not found, and one the config file declares is changed there.
fn run_time_only(managed: Option<bool>, pool: &str, kind: FragmentKind, id: &str) -> Result<()> {
    match managed {
        None => Err(StoreError::NotFound.into()),
        Some(true) => Err(ObjectError::ConfigManaged(match kind {
            FragmentKind::Pool => format!("pool `{pool}`"),
            _ => format!("{} `{pool}/{id}`", kind.as_str()),
        })),
        Some(false) => Ok(()),
    }
}

/// A run-time object's config as JSON, read back from its fragment's TOML.
fn config_of(fragment: &Fragment, path: &[&str]) -> Result<Value> {
    let unreadable = |e: &dyn std::fmt::Display| StoreError::Invalid(format!("stored config is unreadable: {e}"));
    let mut value = toml::Value::Table(fragment.body.parse::<toml::Table>().map_err(|e| unreadable(&e))?);
    for key in path.iter().copied().chain([fragment.id.as_str()]) {
        value = match value {
            toml::Value::Table(mut t) => t.remove(key).ok_or_else(|| unreadable(&format!("no `{key}`")))?,
            _ => return Err(unreadable(&format!("`{key}` is not a table")).into()),
        };
    }
    serde_json::to_value(value).map_err(|e| unreadable(&e).into())
}

/// RFC 7396: `patch`'s fields replace `target`'s, a `null` removes one, objects merge.
fn merge(target: &mut Value, patch: Value) {
    let Value::Object(fields) = patch else {
        *target = patch;
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Default::default());
    }
    if let Value::Object(t) = target {
        for (key, value) in fields {
            if value.is_null() {
                t.remove(&key);
            } else {
                merge(t.entry(key).or_insert(Value::Null), value);
            }
        }
    }
}

/// The table of a pool's config that holds objects of `kind`.
fn table(kind: FragmentKind) -> Result<&'static str> {
    match kind {
        FragmentKind::App => Ok("apps"),
        FragmentKind::Source => Ok("sources"),
        FragmentKind::Client => Ok("clients"),
        FragmentKind::Pool => Err(ObjectError::Input("a pool is made with create_pool".into())),
    }
}

/// A fragment as the config loader takes it, named as messages name it.
fn extra(fragment: &Fragment) -> Extra {
    let label = match fragment.kind {
        FragmentKind::Pool => format!("pool `{}`", fragment.id),
        kind => format!("{} `{}/{}`", kind.as_str(), fragment.pool_id, fragment.id),
    };
    Extra {
        label,
        pool: fragment.pool_id.clone(),
        is_pool: fragment.kind == FragmentKind::Pool,
        text: fragment.body.clone(),
    }
}

/// Validates with the file and every run-time object, stores, and reloads the gateway.
async fn put(registry: &Registry, fragment: Fragment, pool_record: Option<(&str, Plan)>) -> Result<()> {
    registry.trial(extra(&fragment), None).await?;
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_change_merges_into_the_stored_config_and_null_removes_a_field() {
        let made = json!({"id": "crm", "name": "CRM", "hosts": ["crm.example"], "upstreams": ["10.0.0.1:80"],
                          "health_check": {"path": "/healthz", "interval": "5s"}});
        let (id, body) = fragment_body(made, &["pools", "partners", "apps"]).unwrap();
        let fragment = Fragment {
            pool_id: "partners".into(),
            kind: FragmentKind::App,
            id,
            body,
        };
        let mut config = config_of(&fragment, &["pools", "partners", "apps"]).unwrap();
        assert_eq!(config["hosts"], json!(["crm.example"]));
        merge(
            &mut config,
            json!({"name": null, "upstreams": ["10.0.0.2:80"], "health_check": {"interval": "10s"}}),
        );
        assert_eq!(
            config,
            json!({"hosts": ["crm.example"], "upstreams": ["10.0.0.2:80"],
                   "health_check": {"path": "/healthz", "interval": "10s"}})
        );
    }
}
