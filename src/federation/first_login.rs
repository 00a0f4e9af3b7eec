//! Who an upstream identity is in this pool. A returning person is found by their link
//! `(source, issuer, subject)` and by nothing else — never by email, which an upstream
//! may let anyone set. Without a link, the source's `first_login` decides: `create` a
//! user and its link (a `challenge` when the username or email is taken here), link the
//! one local user with that verified email (`link_verified_email`, only for a source
//! trusted for email and only on a boolean `email_verified: true`), ask the person to prove
//! an existing local account (`challenge`, see [`super::challenge`]), or `deny`. Every
//! decision is audited with what it was made from.

use serde_json::Value;

use super::FederationError;
use super::upstream::Upstream;
use crate::config::{ClaimNames, FirstLogin, SyncMode};
use crate::store::{NewUser, StoreError, User, UserPatch};
use crate::web::context::Ctx;
use crate::web::state::{WebState, audit};

/// What the issuer says about the person, read through the source's claim names.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Upstreamed {
    pub issuer: String,
    pub subject: String,
    pub email: Option<String>,
    /// `Some(true)` only for a JSON boolean `true` (`"true"` is no boolean).
    pub email_verified: Option<bool>,
    pub name: Option<String>,
    pub username: Option<String>,
    /// `None` when the upstream sent no groups claim (not the same as none).
    pub groups: Option<Vec<String>>,
    pub acr: Option<String>,
    pub amr: Vec<String>,
}

impl Upstreamed {
    /// From a verified ID token's (or UserInfo's) claims as sent.
    pub fn from_claims(issuer: &str, subject: &str, claims: &Value, names: &ClaimNames) -> Upstreamed {
        let text = |n: &str| claims.get(n).and_then(Value::as_str).map(str::to_owned);
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                .unwrap_or_default()
        };
        // `email_verified` vouches for the `email` claim: for an address read from another
        // claim (`mail`, `upn`, often editable by the person) it says nothing, unless that
        // is the same address.
        let email = text(&names.email);
        let email_verified = claims
            .get("email_verified")
            .and_then(Value::as_bool)
            .filter(|_| names.email == "email" || (email.is_some() && email == text("email")));
        Upstreamed {
            issuer: issuer.to_owned(),
            subject: subject.to_owned(),
            email,
            email_verified,
            name: text(&names.name),
            username: text(&names.username),
            groups: claims.get(&names.groups).map(strings),
            acr: text("acr"),
            amr: claims.get("amr").map(strings).unwrap_or_default(),
        }
    }

    /// UserInfo fills in what the ID token left out (its `sub` was checked to match).
    pub fn add_userinfo(&mut self, info: &Value, names: &ClaimNames) {
        let other = Upstreamed::from_claims(&self.issuer, &self.subject, info, names);
        if other.email.is_some() {
            self.email = other.email;
            self.email_verified = other.email_verified;
        }
        self.name = other.name.or(self.name.take());
        self.username = other.username.or(self.username.take());
        self.groups = other.groups.or(self.groups.take());
    }

    /// Whether the upstream's second factor counts here: one of the source's `trust_mfa`
    /// values as the `acr` or among the `amr`. Nothing counts by default.
    pub fn trusted_mfa(&self, trusted: &[String]) -> bool {
        trusted
            .iter()
            .any(|t| self.acr.as_deref() == Some(t.as_str()) || self.amr.iter().any(|a| a == t))
    }

    /// The local groups the upstream groups map to, and the upstream groups no mapping
    /// names (dropped).
    pub fn mapped_groups(&self, map: &[(String, String)]) -> (Vec<String>, Vec<String>) {
        let mut mapped = Vec::new();
        let mut dropped = Vec::new();
        for g in self.groups.iter().flatten() {
            let targets: Vec<&String> = map.iter().filter(|(up, _)| up == g).map(|(_, local)| local).collect();
            if targets.is_empty() {
                dropped.push(g.clone());
            }
            for t in targets {
                if !mapped.contains(t) {
                    mapped.push(t.clone());
                }
            }
        }
        (mapped, dropped)
    }

    /// A username for a new user: the upstream's preferred one, else the email's local
    /// part, else one made from the subject.
    fn username(&self) -> String {
        let from_email = self.email.as_deref().and_then(|e| e.split('@').next());
        self.username
            .as_deref()
            .or(from_email)
            .filter(|u| crate::store::normalize_username(u).is_ok())
            .map(str::to_owned)
            .unwrap_or_else(|| {
                let digest = ring::digest::digest(&ring::digest::SHA256, self.subject.as_bytes());
                let hex: String = digest.as_ref()[..5].iter().map(|b| format!("{b:02x}")).collect();
                format!("user-{hex}")
            })
    }
}

/// Who the upstream identity is here, or that they must prove a local account first.
pub(super) enum Resolved {
    User(Box<User>),
    /// A user made by this sign-in (`create`).
    Made(Box<User>),
    /// `collision`: a new user could not be made (the username or email is taken).
    Challenge {
        collision: bool,
    },
}

pub(super) async fn resolve(
    state: &WebState,
    ctx: &Ctx,
    up: &Upstream,
    who: &Upstreamed,
) -> Result<Resolved, FederationError> {
    let store = state.registry.store();
    let pool = ctx.pool.id.as_str();
    let source = up.id.as_str();
    let by_link = || async {
        store
            .user_by_link(pool, source, &who.issuer, &who.subject)
            .await
            .map_err(|_| FederationError::Store)
    };
    let seen = format!(
        "source={source} iss={} sub={} email={} email_verified={}",
        who.issuer,
        who.subject,
        who.email.as_deref().unwrap_or("-"),
        who.email_verified.map_or("-", |v| if v { "true" } else { "false" }),
    );
    // A returning person: the sign-in's own audit line (`signin.success`) names the source.
    if let Some(user) = by_link().await? {
        return Ok(Resolved::User(Box::new(user)));
    }
    let decided = |decision: &str| format!("{seen} first_login={} decision={decision}", up.first_login.as_str());
    let refuse = |decision: &'static str, why: &str| {
        let detail = decided(decision);
        let why = why.to_owned();
        async move {
            audit(
                state,
                ctx,
                "anonymous",
                "federation.first_login",
                source,
                "denied",
                detail,
            )
            .await;
            Err(FederationError::NoAccount(why))
        }
    };
    let challenge = |decision: &'static str, collision: bool| {
        let detail = decided(decision);
        async move {
            audit(state, ctx, "anonymous", "federation.first_login", source, "ok", detail).await;
            Ok(Resolved::Challenge { collision })
        }
    };
    match up.first_login {
        FirstLogin::Challenge => challenge("challenge", false).await,
        FirstLogin::Deny => {
            refuse(
                "deny",
                "there is no account here for this identity yet; ask an administrator for access",
            )
            .await
        }
        FirstLogin::LinkVerifiedEmail => {
            let email = who
                .email
                .as_deref()
                .filter(|_| up.trust_email && who.email_verified == Some(true))
                .and_then(|e| crate::store::normalize_email(e).ok());
            let Some(email) = email else {
                return refuse(
                    "no_verified_email",
                    "your identity provider did not vouch for your email address",
                )
                .await;
            };
            let users = store
                .users_by_email(pool, &email)
                .await
                .map_err(|_| FederationError::Store)?;
            let verified: Vec<&User> = users.iter().filter(|u| u.email_verified).collect();
            let [user] = verified.as_slice() else {
                return refuse(
                    "no_single_match",
                    "no account here can be matched to your email address; ask an administrator to link it",
                )
                .await;
            };
            // An upstream that hands the address to someone new (a recycled mailbox, a
            // renamed account, two accounts at once) must not take over a person already
            // linked from there: the check and the link are one step.
            match store
                .link_first_of_source(pool, source, &who.issuer, &who.subject, &user.id)
                .await
            {
                Ok(Some(_)) => {}
                Ok(None) => {
                    return refuse(
                        "already_linked",
                        "the account with your email address is linked to another identity of this provider; ask an administrator",
                    )
                    .await;
                }
                // Another sign-in linked this identity first: to whoever it linked.
                Err(StoreError::Conflict(_)) => {
                    return by_link()
                        .await?
                        .map(|u| Resolved::User(Box::new(u)))
                        .ok_or(FederationError::Store);
                }
                Err(_) => return Err(FederationError::Store),
            }
            audit(
                state,
                ctx,
                "system",
                "link.create",
                &user.id,
                "ok",
                decided("link_verified_email"),
            )
            .await;
            Ok(Resolved::User(Box::new((*user).clone())))
        }
        FirstLogin::Create => {
            let username = who.username();
            let email = who.email.as_deref().and_then(|e| crate::store::normalize_email(e).ok());
            // The login page takes a username or an email: neither may name someone else
            // here as the other (a username that is a local person's address, an address
            // that is a local person's username).
            let taken = |name: String| async move {
                if store.user_by_username(pool, &name).await.is_ok() {
                    return Ok(true);
                }
                match crate::store::normalize_email(&name) {
                    Ok(e) => Ok(!store.users_by_email(pool, &e).await?.is_empty()),
                    Err(_) => Ok::<_, StoreError>(false),
                }
            };
            let taken_name = taken(username.clone()).await.map_err(|_| FederationError::Store)?;
            let taken_email = match &email {
                Some(e) => taken(e.clone()).await.map_err(|_| FederationError::Store)?,
                None => false,
            };
            if taken_name || taken_email {
                // A first login that ran at the same moment may have made this very user.
                if let Some(user) = by_link().await? {
                    return Ok(Resolved::User(Box::new(user)));
                }
                // Never merged by name or email: the person proves the account is theirs.
                return challenge("collision_challenge", true).await;
            }
            let new = NewUser {
                username,
                email,
                email_verified: up.trust_email && who.email_verified == Some(true),
                name: who.name.clone().unwrap_or_default(),
                groups: who.mapped_groups(&up.group_map).0,
                ..NewUser::default()
            };
            match store
                .create_linked_user(pool, new, source, &who.issuer, &who.subject)
                .await
            {
                Ok((user, true)) => {
                    audit(state, ctx, "system", "user.create", &user.id, "ok", decided("create")).await;
                    Ok(Resolved::Made(Box::new(user)))
                }
                Ok((user, false)) => Ok(Resolved::User(Box::new(user))),
                // Taken between the look and the write by someone else: a collision.
                Err(StoreError::Conflict(_)) => challenge("collision_challenge", true).await,
                Err(StoreError::Limit(m)) => Err(FederationError::NoAccount(m)),
                Err(_) => Err(FederationError::Store),
            }
        }
    }
}

/// After a sign-in through the source: under `sync = "force"`, the user's email, name and
/// mapped groups follow the upstream — only what it sent (a claim it left out clears
/// nothing), and only groups the map names (groups given here by hand stay). Upstream
/// groups no mapping names are dropped, and said so in the audit log.
pub(super) async fn sync(
    state: &WebState,
    ctx: &Ctx,
    up: &Upstream,
    who: &Upstreamed,
    user: User,
    made_now: bool,
) -> User {
    let (mapped, dropped) = who.mapped_groups(&up.group_map);
    if !dropped.is_empty() {
        audit(
            state,
            ctx,
            "system",
            "federation.groups",
            &user.id,
            "ok",
            format!("source={} dropped={}", up.id, dropped.join(",")),
        )
        .await;
    }
    if up.sync != SyncMode::Force || made_now {
        return user;
    }
    let mut patch = UserPatch::default();
    let mut changed = Vec::new();
    if let Some(email) = who.email.as_deref().and_then(|e| crate::store::normalize_email(e).ok())
        && user.email.as_deref() != Some(email.as_str())
    {
        patch.email = Some(Some(email));
        patch.email_verified = Some(up.trust_email && who.email_verified == Some(true));
        changed.push("email");
    }
    if let Some(name) = who.name.as_deref()
        && name != user.name
    {
        patch.name = Some(name.to_owned());
        changed.push("name");
    }
    if who.groups.is_some() {
        let targets: Vec<&String> = up.group_map.iter().map(|(_, local)| local).collect();
        let mut groups: Vec<String> = user.groups.iter().filter(|g| !targets.contains(g)).cloned().collect();
        groups.extend(mapped);
        groups.sort();
        groups.dedup();
        let mut current = user.groups.clone();
        current.sort();
        if groups != current {
            patch.groups = Some(groups);
            changed.push("groups");
        }
    }
    if changed.is_empty() {
        return user;
    }
    let store = state.registry.store();
    match store.update_user(ctx.pool.id.as_str(), &user.id, patch).await {
        Ok(updated) => {
            audit(
                state,
                ctx,
                "system",
                "user.sync",
                &user.id,
                "ok",
                format!("source={} changed={}", up.id, changed.join(",")),
            )
            .await;
            updated
        }
        // An address taken by another user here: the rest is not held back by it.
        Err(e) => {
            tracing::warn!(code = "PG0707", user = %user.id, error = %e, "could not sync a federated user");
            user
        }
    }
}
