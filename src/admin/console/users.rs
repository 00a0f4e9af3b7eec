//! The console's users: added one by one or imported from a file, and each one's page,
//! where an operator edits them, sets or removes their password, forgets their second
//! factor, disables, unlocks or deletes them, and removes a link to an identity source.

use axum::extract::{Multipart, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::Deserialize;

use super::views::{PoolQuery, failed, landed, pool_page, refused, words};
use super::{Confirm, Posted, Signed, forged};
use crate::admin::AdminState;
use crate::admin::ops::UserInput;
use crate::store::{ImportFormat, StoreError, UserPatch};
use crate::web::pages;

#[derive(Deserialize)]
pub(super) struct UserForm {
    username: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    groups: String,
}

pub(super) async fn create_user(
    State(state): State<AdminState>,
    Path(pool): Path<String>,
    Posted(signed, f): Posted<UserForm>,
) -> Response {
    let input = UserInput {
        username: f.username.trim().to_owned(),
        email: Some(f.email.trim().to_owned()).filter(|e| !e.is_empty()),
        email_verified: false,
        name: f.name.trim().to_owned(),
        password: Some(f.password).filter(|p| !p.is_empty()),
        groups: words(&f.groups),
    };
    let back = format!("/console/pools/{pool}");
    match signed.ops(&state).create_user(&pool, input).await {
        Ok(u) => Redirect::to(&format!("{back}?q={}", u.username)).into_response(),
        Err(e) => refused(&signed, &back, e),
    }
}

/// A CSV or JSONL file of users, sent as a multipart form; its report is shown on the
/// users tab, each bad row with its line.
/// The token is checked here, once the multipart form is read (`Posted` reads only
/// URL-encoded forms).
pub(super) async fn import_users(
    State(state): State<AdminState>,
    signed: Signed,
    headers: HeaderMap,
    Path(pool): Path<String>,
    mut form: Multipart,
) -> Response {
    let (mut csrf, mut format, mut atomic, mut file) = (String::new(), String::new(), false, None::<String>);
    loop {
        match form.next_field().await {
            Ok(Some(field)) => {
                let name = field.name().unwrap_or_default().to_owned();
                let Ok(text) = field.text().await else {
                    return failed(&signed, "", StatusCode::BAD_REQUEST, "the file is not text (UTF-8)");
                };
                match name.as_str() {
                    "csrf" => csrf = text,
                    "format" => format = text,
                    "atomic" => atomic = !text.is_empty(),
                    "file" => file = Some(text),
                    _ => {}
                }
            }
            Ok(None) => break,
            Err(e) => {
                return failed(
                    &signed,
                    "",
                    StatusCode::BAD_REQUEST,
                    &format!("the form could not be read: {e}"),
                );
            }
        }
    }
    if let Some(refusal) = forged(&headers, &signed, &csrf) {
        return refusal;
    }
    let back = format!("/console/pools/{pool}");
    let Some(text) = file.filter(|t| !t.trim().is_empty()) else {
        return failed(&signed, &back, StatusCode::BAD_REQUEST, "choose a file to import");
    };
    let format = if format == "jsonl" {
        ImportFormat::Jsonl
    } else {
        ImportFormat::Csv
    };
    match signed.ops(&state).import_users(&pool, &text, format, atomic).await {
        Ok(report) => {
            let status = if report.errors.is_empty() {
                StatusCode::OK
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            };
            pool_page(&state, &signed, &pool, PoolQuery::tab("users"), Some((status, report))).await
        }
        Err(e) => refused(&signed, &back, e),
    }
}

/// Where a user's changes come back to: their page.
fn user_page_path(pool: &str, id: &str) -> String {
    format!("/console/pools/{pool}/users/{id}")
}

pub(super) async fn user(
    State(state): State<AdminState>,
    signed: Signed,
    Path((pool, id)): Path<(String, String)>,
) -> Response {
    let store = state.registry.store();
    let back = format!("/console/pools/{pool}");
    let user = match store.user(&pool, &id).await {
        Ok(u) => u,
        Err(e) => return refused(&signed, &back, e),
    };
    let links = store.links_of_user(&pool, &id).await.unwrap_or_default();
    let groups = store
        .groups(&pool, crate::store::Page::first(500))
        .await
        .unwrap_or_default();
    let view = context! { pool => pool, user => user, links => links, known_groups => groups };
    pages::render_with(
        StatusCode::OK,
        None,
        "console_user.html",
        context! { ..signed.page(), ..view },
    )
}

#[derive(Deserialize)]
pub(super) struct EditForm {
    username: String,
    #[serde(default)]
    email: String,
    /// A checkbox: sent (as `on`) only when ticked.
    #[serde(default)]
    email_verified: Option<String>,
    #[serde(default)]
    name: String,
    #[serde(default)]
    groups: String,
}

/// The user's details and groups, as one edit (the API's `PATCH /users/{id}`).
pub(super) async fn update_user(
    State(state): State<AdminState>,
    Path((pool, id)): Path<(String, String)>,
    Posted(signed, f): Posted<EditForm>,
) -> Response {
    let patch = UserPatch {
        username: Some(f.username.trim().to_owned()),
        email: Some(Some(f.email.trim().to_owned()).filter(|e| !e.is_empty())),
        email_verified: Some(f.email_verified.is_some()),
        name: Some(f.name.trim().to_owned()),
        groups: Some(words(&f.groups)),
    };
    let back = user_page_path(&pool, &id);
    let done = signed.ops(&state).update_user(&pool, &id, patch).await;
    landed(&signed, &back, done)
}

#[derive(Deserialize)]
pub(super) struct PasswordForm {
    #[serde(default)]
    password: String,
    /// Ticked: the user keeps no password (they sign in through an identity source).
    #[serde(default)]
    remove: Option<String>,
}

/// Sets a new password (ending the user's sessions, as the API does), or removes it.
pub(super) async fn set_password(
    State(state): State<AdminState>,
    Path((pool, id)): Path<(String, String)>,
    Posted(signed, f): Posted<PasswordForm>,
) -> Response {
    let back = user_page_path(&pool, &id);
    let password = match (f.remove.is_some(), f.password.is_empty()) {
        (true, true) => None,
        (false, false) => Some(f.password),
        (true, false) => {
            let why = "either type a new password or remove the password, not both";
            return failed(&signed, &back, StatusCode::BAD_REQUEST, why);
        }
        (false, true) => return failed(&signed, &back, StatusCode::BAD_REQUEST, "type the new password"),
    };
    let done = state
        .ended(signed.ops(&state).set_password(&pool, &id, password).await)
        .await;
    landed(&signed, &back, done)
}

pub(super) async fn user_action(
    State(state): State<AdminState>,
    Path((pool, id, action)): Path<(String, String, String)>,
    Posted(signed, f): Posted<Confirm>,
) -> Response {
    let ops = signed.ops(&state);
    let back = user_page_path(&pool, &id);
    let done = match action.as_str() {
        "disable" => state.ended(ops.set_disabled(&pool, &id, true).await).await,
        "enable" => ops.set_disabled(&pool, &id, false).await,
        "unlock" => ops.unlock(&pool, &id).await,
        "reset-mfa" => ops.reset_mfa(&pool, &id).await,
        "delete" => return delete_user(&state, &signed, &pool, &id, &f.confirm).await,
        _ => Err(StoreError::NotFound),
    };
    landed(&signed, &back, done)
}

/// Deletes a user once their username is typed to confirm it.
async fn delete_user(state: &AdminState, signed: &super::Signed, pool: &str, id: &str, confirm: &str) -> Response {
    let back = user_page_path(pool, id);
    let user = match state.registry.store().user(pool, id).await {
        Ok(u) => u,
        Err(e) => return refused(signed, &back, e),
    };
    if confirm.trim() != user.username {
        let why = format!(
            "type the username, {}, to confirm that the user is to be deleted",
            user.username
        );
        return failed(signed, &back, StatusCode::BAD_REQUEST, &why);
    }
    let done = state.ended(signed.ops(state).delete_user(pool, id).await).await;
    landed(signed, &format!("/console/pools/{pool}"), done)
}

#[derive(Deserialize)]
pub(super) struct LinkForm {
    /// Move the link to this user (by username); empty: remove the link.
    #[serde(default)]
    to: String,
    /// Set when the form is on a user's page, to come back to it.
    #[serde(default)]
    from_user: String,
}

/// Removes a link to an identity source's account, or gives it to another user.
pub(super) async fn link_action(
    State(state): State<AdminState>,
    Path((pool, id)): Path<(String, String)>,
    Posted(signed, f): Posted<LinkForm>,
) -> Response {
    let from_user = f
        .from_user
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    let back = match from_user && !f.from_user.is_empty() {
        true => user_page_path(&pool, &f.from_user),
        false => format!("/console/pools/{pool}?tab=sources"),
    };
    let ops = signed.ops(&state);
    let done = match f.to.trim() {
        "" => state.ended(ops.delete_link(&pool, &id).await).await,
        to => match state.registry.store().user_by_username(&pool, to).await {
            Ok(user) => state.ended(ops.move_link(&pool, &id, &user.id).await).await,
            Err(e) => Err(e),
        },
    };
    landed(&signed, &back, done)
}

#[derive(Deserialize)]
pub(super) struct GroupForm {
    name: String,
}

pub(super) async fn create_group(
    State(state): State<AdminState>,
    Path(pool): Path<String>,
    Posted(signed, f): Posted<GroupForm>,
) -> Response {
    let done = signed.ops(&state).create_group(&pool, f.name.trim()).await;
    landed(&signed, &format!("/console/pools/{pool}?tab=groups"), done)
}

#[derive(Deserialize)]
pub(super) struct MemberForm {
    username: String,
    /// Which button: `add` or `remove`.
    #[serde(default)]
    member: String,
}

/// Puts a user (by username) in a group or takes them out, as the API's
/// `PUT`/`DELETE /groups/{group}/members/{user}` do.
pub(super) async fn set_member(
    State(state): State<AdminState>,
    Path((pool, group)): Path<(String, String)>,
    Posted(signed, f): Posted<MemberForm>,
) -> Response {
    let back = format!("/console/pools/{pool}?tab=groups");
    let user = match state.registry.store().user_by_username(&pool, f.username.trim()).await {
        Ok(u) => u,
        Err(e) => return refused(&signed, &back, e),
    };
    let done = signed
        .ops(&state)
        .set_member(&pool, &group, &user.id, f.member != "remove")
        .await;
    landed(&signed, &back, done)
}

/// Deletes a group; its members stay, without it.
pub(super) async fn delete_group(
    State(state): State<AdminState>,
    Path((pool, name)): Path<(String, String)>,
    Posted(signed, _): Posted<Confirm>,
) -> Response {
    let done = signed.ops(&state).delete_group(&pool, &name).await;
    landed(&signed, &format!("/console/pools/{pool}?tab=groups"), done)
}
