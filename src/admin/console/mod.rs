//! The admin console: every pool managed in the browser, on the admin listener.
//! Server-rendered and script-free. Operators are people of the console pool
//! (`[admin] console_pool`) in its console group, signed in through that pool's OpenID
//! Provider with a second factor. Every change goes through `admin::ops`, as the API's
//! and the CLI's do, and is audited as `console:<username>`.

mod signin;
mod users;
mod views;

use std::net::IpAddr;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use minijinja::{Value, context};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::ops::{Operator, Ops};
use super::{AdminState, Client};
use crate::config::ConsoleAccess;
use crate::registry::PoolRoute;
use crate::session::cookie::Cookie;
use crate::web::{pages, sealed};

/// An operator stays signed in this long (then signs in again, second factor included).
const SESSION_SECS: i64 = 8 * 3600;

pub(super) fn router() -> Router<AdminState> {
    Router::new()
        .route("/console", get(views::pools).post(views::create_pool))
        .route("/console/signin", get(signin::start))
        .route("/console/callback", get(signin::callback))
        .route("/console/signout", post(signin::signout))
        .route("/console/pools/{pool}", get(views::pool))
        .route("/console/pools/{pool}/delete", post(views::delete_pool))
        .route("/console/pools/{pool}/apps", post(views::create_app))
        .route(
            "/console/pools/{pool}/apps/{id}",
            get(views::app).post(views::change_app),
        )
        .route("/console/pools/{pool}/apps/{id}/delete", post(views::delete_app))
        .route("/console/pools/{pool}/users", post(users::create_user))
        .route("/console/pools/{pool}/users/import", post(users::import_users))
        .route(
            "/console/pools/{pool}/users/{id}",
            get(users::user).post(users::update_user),
        )
        .route("/console/pools/{pool}/users/{id}/password", post(users::set_password))
        .route("/console/pools/{pool}/users/{id}/{action}", post(users::user_action))
        .route("/console/pools/{pool}/links/{id}", post(users::link_action))
        .route("/console/pools/{pool}/groups", post(users::create_group))
        .route("/console/pools/{pool}/groups/{name}/delete", post(users::delete_group))
        .route("/console/pools/{pool}/groups/{name}/members", post(users::set_member))
        .route("/console/pools/{pool}/sources", post(views::create_source))
        .route("/console/pools/{pool}/sources/{id}/delete", post(views::delete_source))
        .route(
            "/console/pools/{pool}/sessions/{id}/revoke",
            post(views::revoke_session),
        )
        .route("/console/pools/{pool}/keys/rotate", post(views::rotate_key))
}

/// What the console cookie carries, sealed with the console pool's key.
#[derive(Serialize, Deserialize)]
struct Session {
    user: String,
    username: String,
    exp: i64,
    /// Every form carries it back; a post without it changes nothing.
    csrf: String,
    /// The operator's session at the console pool, ended with this one.
    #[serde(default)]
    sso: Option<String>,
}

/// A signed-in operator, checked against the store on every request: disabled, taken out
/// of the console group, or their session at the pool ended, they are out at once.
pub(super) struct Signed {
    pub username: String,
    csrf: String,
    client: IpAddr,
    sso: Option<String>,
}

impl Signed {
    pub fn ops<'a>(&self, state: &'a AdminState) -> Ops<'a> {
        Ops::new(state.registry.store(), Operator::console(&self.username, self.client))
    }

    /// Whether a form's token is this session's.
    pub fn csrf_ok(&self, presented: &str) -> bool {
        sealed::equal(&self.csrf, presented)
    }

    /// What every console page shows: who is signed in, the token for its forms.
    fn page(&self) -> Value {
        context! { operator => self.username, csrf => self.csrf }
    }
}

/// A console page's operator: who is signed in, checked against the store on every
/// request. The rejection is the answer they get instead (sign in, set up, refused).
impl FromRequestParts<AdminState> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AdminState) -> Result<Signed, Response> {
        let Ok(Client(client)) = Client::from_request_parts(parts, state).await;
        signed_in(state, &parts.headers, client).await
    }
}

/// A form posted from a console page: its operator, and the form, once the token it
/// carries is this session's and it came from no other origin.
pub(super) struct Posted<F>(pub Signed, pub F);

impl<F: DeserializeOwned> FromRequest<AdminState> for Posted<F> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AdminState) -> Result<Posted<F>, Response> {
        let (mut parts, body) = req.into_parts();
        let signed = Signed::from_request_parts(&mut parts, state).await?;
        let bytes = Bytes::from_request(Request::from_parts(parts.clone(), body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        #[derive(Deserialize)]
        struct Token {
            #[serde(default)]
            csrf: String,
        }
        let token = serde_urlencoded::from_bytes::<Token>(&bytes).map_or_else(|_| String::new(), |t| t.csrf);
        if let Some(refusal) = forged(&parts.headers, &signed, &token) {
            return Err(refusal);
        }
        match serde_urlencoded::from_bytes::<F>(&bytes) {
            Ok(form) => Ok(Posted(signed, form)),
            Err(e) => Err(message(
                StatusCode::BAD_REQUEST,
                "That did not work",
                &format!("The form could not be read: {e}. Nothing was changed."),
                Some(&signed),
            )),
        }
    }
}

/// The one field a plain post may carry (most carry none but their token): the object's
/// id, or a user's username, typed again to delete it.
#[derive(Deserialize)]
pub(super) struct Confirm {
    #[serde(default)]
    pub(super) confirm: String,
}

/// The console's settings and its pool as served now; `None` when no console is set up.
fn console_pool(state: &AdminState) -> Option<(ConsoleAccess, std::sync::Arc<PoolRoute>)> {
    let snapshot = state.registry.snapshot();
    let access = snapshot.config.admin.console.clone()?;
    let pool = snapshot.pool(access.pool.as_str())?;
    Some((access, pool))
}

/// The operator of this request, or the answer it gets instead: how to set the console
/// up, the way to sign in, or a refusal.
async fn signed_in(state: &AdminState, headers: &HeaderMap, client: IpAddr) -> Result<Signed, Response> {
    let Some((access, pool)) = console_pool(state) else {
        return Err(not_set_up());
    };
    let session = Cookie::Console
        .values(headers, false)
        .find_map(|v| sealed::open::<Session>(&pool, "console", v))
        .filter(|s| s.exp > state.registry.store().now());
    let Some(session) = session else {
        return Err(Redirect::to("/console/signin").into_response());
    };
    // Signed out at the pool, or revoked there by an operator: out of the console too.
    if let Some(sso) = &session.sso {
        let at_pool = state.registry.store().sso_session(pool.id.as_str(), sso).await;
        if !at_pool.is_ok_and(|s| s.revoked_at.is_none()) {
            return Err(Redirect::to("/console/signin").into_response());
        }
    }
    match state.registry.store().user(pool.id.as_str(), &session.user).await {
        Ok(user) if !user.disabled && user.groups.contains(&access.group) => Ok(Signed {
            username: session.username,
            csrf: session.csrf,
            client,
            sso: session.sso,
        }),
        _ => Err(refused(&access, &session.username)),
    }
}

/// A post that does not come from a console page: no matching token, or another origin.
fn forged(headers: &HeaderMap, signed: &Signed, presented: &str) -> Option<Response> {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    // A page with `no-referrer` (every console page) posts with `Origin: null`: that
    // says nothing, and the token decides.
    let cross_origin = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|o| o != "null" && o != format!("http://{host}") && o != format!("https://{host}"));
    (cross_origin || !signed.csrf_ok(presented)).then(|| {
        message(
            StatusCode::FORBIDDEN,
            "This form has expired",
            "The change was not made: the form did not come from this console session. Go back, reload the page and try again.",
            Some(signed),
        )
    })
}

fn not_set_up() -> Response {
    message(
        StatusCode::OK,
        "The console is not set up",
        "Name the pool whose people run this gateway in the config file, under [admin]: console_pool = \"employees\" (its members of the console_admins group, or of console_group, may sign in, with a second factor). Then reload.",
        None,
    )
}

fn refused(access: &ConsoleAccess, username: &str) -> Response {
    let text = format!(
        "{username} is not in the {} group of the {} pool, or is disabled. Ask an operator to add you, then sign in again.",
        access.group, access.pool
    );
    let mut resp = message(StatusCode::FORBIDDEN, "You cannot use the console", &text, None);
    resp.headers_mut().append(
        header::SET_COOKIE,
        Cookie::Console.clear(false).parse().unwrap_or_else(|_| unreachable!()),
    );
    resp
}

fn message(status: StatusCode, title: &str, text: &str, signed: Option<&Signed>) -> Response {
    let base = signed.map_or_else(|| context! {}, Signed::page);
    pages::render_with(
        status,
        None,
        "console_message.html",
        context! { ..base, ..context! { title => title, message => text } },
    )
}
