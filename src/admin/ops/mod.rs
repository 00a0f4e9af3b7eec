//! Every admin operation, written once: checked, written to the store, audited with who
//! did it. The admin API and the CLI (and the console, when it comes) call these, so a
//! rule lives in one place and the ways in cannot disagree. What only a running node has
//! to do afterwards (drop its cached sessions, reload its keys) stays with the API.

mod objects;

pub use objects::{ObjectError, live_pool};

use crate::crypto::{MasterKey, password};
use crate::store::{
    Group, ImportFormat, ImportReport, KeyRecord, NewAuditEvent, NewUser, Store, StoreError, User, UserPatch,
};

/// Who makes a change, as the audit log records it.
#[derive(Debug, Clone)]
pub struct Operator {
    /// `admin-api`, `cli:<login>`, `console:<username>`.
    pub actor: String,
    /// Where from: an address, or `local`.
    pub client: String,
}

impl Operator {
    /// The admin API's token holder, calling from `client`.
    pub fn api(client: std::net::IpAddr) -> Operator {
        Operator {
            actor: "admin-api".into(),
            client: client.to_string(),
        }
    }

    /// An operator signed in to the console.
    pub fn console(username: &str, client: std::net::IpAddr) -> Operator {
        Operator {
            actor: format!("console:{username}"),
            client: client.to_string(),
        }
    }

    /// Whoever runs the CLI on this machine.
    pub fn cli() -> Operator {
        Operator {
            actor: format!("cli:{}", std::env::var("USER").unwrap_or_else(|_| "unknown".into())),
            client: "local".into(),
        }
    }
}

/// A user to create, with a password in clear (hashed here) or none.
pub struct UserInput {
    pub username: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: String,
    pub password: Option<String>,
    pub groups: Vec<String>,
}

/// The operations, on one store, by one operator.
pub struct Ops<'a> {
    store: &'a Store,
    by: Operator,
}

type Result<T> = std::result::Result<T, StoreError>;

impl<'a> Ops<'a> {
    pub fn new(store: &'a Store, by: Operator) -> Ops<'a> {
        Ops { store, by }
    }

    pub async fn create_user(&self, pool: &str, new: UserInput) -> Result<User> {
        self.store.pool(pool).await?;
        let password_hash = match new.password {
            Some(p) => Some(hash(p).await?),
            None => None,
        };
        let user = self
            .store
            .create_user(
                pool,
                NewUser {
                    username: new.username,
                    email: new.email,
                    email_verified: new.email_verified,
                    name: new.name,
                    password_hash,
                    groups: new.groups,
                },
            )
            .await?;
        let detail = format!("username={}", user.username);
        self.audit(pool, "user.create", &user.id, detail).await;
        Ok(user)
    }

    /// Disables (ending every session of theirs) or enables a user.
    pub async fn set_disabled(&self, pool: &str, id: &str, disabled: bool) -> Result<User> {
        self.store.set_disabled(pool, id, disabled).await?;
        let action = if disabled { "user.disable" } else { "user.enable" };
        self.audit(pool, action, id, String::new()).await;
        self.store.user(pool, id).await
    }

    /// Lifts a lockout after failed sign-ins.
    pub async fn unlock(&self, pool: &str, id: &str) -> Result<User> {
        self.store.unlock(pool, id).await?;
        self.audit(pool, "user.unlock", id, String::new()).await;
        self.store.user(pool, id).await
    }

    /// Sets a password, or removes it (`None`: the user can then sign in only through an
    /// identity source).
    pub async fn set_password(&self, pool: &str, id: &str, password: Option<String>) -> Result<()> {
        self.store.user(pool, id).await?;
        let hashed = match password {
            Some(p) => Some(hash(p).await?),
            None => None,
        };
        self.store.change_password(pool, id, hashed).await?;
        self.audit(pool, "user.password", id, String::new()).await;
        Ok(())
    }

    /// Forgets a user's second factor, for someone who lost their device: they enroll
    /// a new one at their next sign-in. Their sessions stay open.
    pub async fn reset_mfa(&self, pool: &str, id: &str) -> Result<User> {
        self.store.reset_mfa(pool, id).await?;
        self.audit(pool, "user.mfa_reset", id, String::new()).await;
        self.store.user(pool, id).await
    }

    pub async fn update_user(&self, pool: &str, id: &str, patch: UserPatch) -> Result<User> {
        let user = self.store.update_user(pool, id, patch).await?;
        self.audit(pool, "user.update", id, String::new()).await;
        Ok(user)
    }

    pub async fn delete_user(&self, pool: &str, id: &str) -> Result<()> {
        self.store.delete_user(pool, id).await?;
        self.audit(pool, "user.delete", id, String::new()).await;
        Ok(())
    }

    /// Imports users from a file's text; with `atomic`, one bad row writes nothing.
    pub async fn import_users(
        &self,
        pool: &str,
        text: &str,
        format: ImportFormat,
        atomic: bool,
    ) -> Result<ImportReport> {
        let report = self.store.import_users(pool, text, format, atomic).await?;
        let detail = format!("imported={} errors={}", report.imported, report.errors.len());
        self.audit(pool, "user.import", pool, detail).await;
        Ok(report)
    }

    /// A new signing key; the previous one stays published while what it signed lives.
    pub async fn rotate_key(&self, pool: &str, master: &MasterKey) -> Result<KeyRecord> {
        self.store.pool(pool).await?;
        let key = self.store.rotate_key(pool, master).await?;
        self.audit(pool, "key.rotate", &key.kid, String::new()).await;
        Ok(key)
    }

    pub async fn create_group(&self, pool: &str, name: &str) -> Result<Group> {
        self.store.pool(pool).await?;
        let group = self.store.create_group(pool, name).await?;
        self.audit(pool, "group.create", &group.name, String::new()).await;
        Ok(group)
    }

    pub async fn delete_group(&self, pool: &str, name: &str) -> Result<()> {
        self.store.delete_group(pool, name).await?;
        self.audit(pool, "group.delete", name, String::new()).await;
        Ok(())
    }

    /// Puts a user in a group (`member`) or takes them out.
    pub async fn set_member(&self, pool: &str, group: &str, user: &str, member: bool) -> Result<()> {
        let action = if member {
            self.store.add_member(pool, group, user).await?;
            "group.add_member"
        } else {
            self.store.remove_member(pool, group, user).await?;
            "group.remove_member"
        };
        self.audit(pool, action, group, format!("user={user}")).await;
        Ok(())
    }

    /// Ends a sign-in (SSO session) and the app sessions it started, on every node.
    pub async fn revoke_session(&self, pool: &str, id: &str) -> Result<()> {
        self.store.revoke_sso_session(pool, id).await?;
        self.audit(pool, "session.revoke", id, String::new()).await;
        Ok(())
    }

    /// Forgets a link between a user and an identity source's account; the sessions opened
    /// through it end.
    pub async fn delete_link(&self, pool: &str, id: &str) -> Result<()> {
        let ended = self.store.delete_link(pool, id).await?;
        self.audit(pool, "link.delete", id, format!("sessions_ended={}", ended.len()))
            .await;
        Ok(())
    }

    /// Gives a link to another user of the pool (the person behind the upstream identity
    /// is that user), so their next sign-in through it is theirs; the sessions it opened
    /// as the user it leaves end.
    pub async fn move_link(&self, pool: &str, id: &str, user_id: &str) -> Result<()> {
        let ended = self.store.move_link(pool, id, user_id).await?;
        self.audit(
            pool,
            "link.move",
            id,
            format!("user={user_id} sessions_ended={}", ended.len()),
        )
        .await;
        Ok(())
    }

    /// A new secret for a confidential client (`client`, as the deployment sees it), shown
    /// once and stored as a hash; its earlier secrets end after an overlap.
    pub async fn new_client_secret(&self, pool: &str, client: &crate::config::Client) -> Result<String> {
        if client.auth_method == crate::config::ClientAuthMethod::None {
            return Err(StoreError::Invalid(format!(
                "client {} is public (auth_method none): it has no secret",
                client.id
            )));
        }
        let secret = crate::web::sealed::random_token(32);
        self.store.add_client_secret(pool, client.id.as_str(), &secret).await?;
        self.audit(pool, "client.secret", client.id.as_str(), String::new())
            .await;
        Ok(secret)
    }

    /// Records a change; a failure to record is logged, not hidden, and does not undo it.
    pub(in crate::admin) async fn audit(&self, pool: &str, action: &str, target: &str, detail: String) {
        self.record(Some(pool), action, target, "ok", detail).await;
    }

    /// Records a change to the whole deployment (a reload), not to one pool.
    pub(in crate::admin) async fn audit_deployment(&self, action: &str, target: &str) {
        self.record(None, action, target, "ok", String::new()).await;
    }

    /// Records something refused (a sign-in to the console, say), and why.
    pub(in crate::admin) async fn audit_refusal(&self, pool: &str, action: &str, target: &str, why: &str) {
        self.record(Some(pool), action, target, "refused", why.to_owned()).await;
    }

    async fn record(&self, pool: Option<&str>, action: &str, target: &str, outcome: &str, detail: String) {
        let event = NewAuditEvent {
            pool: pool.map(str::to_owned),
            actor: self.by.actor.clone(),
            action: action.into(),
            target: target.into(),
            outcome: outcome.into(),
            client: self.by.client.clone(),
            detail,
        };
        if let Err(e) = self.store.audit(event).await {
            tracing::error!(code = "PG0405", error = %e, action, "could not write the audit log");
        }
    }
}

/// Argon2id takes ~20 MiB and tens of milliseconds: off the async threads.
async fn hash(plain: String) -> Result<String> {
    tokio::task::spawn_blocking(move || password::hash(&plain))
        .await
        .map_err(|_| StoreError::Invalid("hashing the password failed".into()))?
        .map_err(|e| StoreError::Invalid(e.to_string()))
}
