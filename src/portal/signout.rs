//! Signing out: of a pool at its portal (`/logout`, and OpenID Connect's `/oidc/logout`),
//! or from an app host (`/.poolgate/logout`). A GET only asks, with a page whose button
//! posts, so a link or an image on another site signs no one out; a post is honoured only
//! from this very origin with this browser's CSRF token.

use axum::extract::{Extension, Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::Deserialize;

use crate::federation;
use crate::op;
use crate::session::Ticket;
use crate::session::cookie::Cookie;
use crate::store::StoreError;
use crate::web::context::Ctx;
use crate::web::forms::{form_page, limits, printable_url, same_origin_post};
use crate::web::pages;
use crate::web::state::WebState;
use crate::web::state::{audit, current_sso};

#[derive(Deserialize, Default)]
pub(super) struct SignOutParams {
    #[serde(default)]
    csrf: String,
    post_logout_redirect_uri: Option<String>,
    state: Option<String>,
    id_token_hint: Option<String>,
    client_id: Option<String>,
    /// The app a sign-out started from (`/.poolgate/logout` on its host): the signed-out
    /// page links back to it.
    back: Option<String>,
}

/// What the OP makes of the request (hint, client, where to return): anything it cannot
/// honour is refused (with the reason), never followed nor echoed.
fn end_session(state: &WebState, ctx: &Ctx, p: &SignOutParams) -> Result<op::logout::EndSession, &'static str> {
    let too_long = [&p.state, &p.id_token_hint, &p.post_logout_redirect_uri, &p.client_id]
        .into_iter()
        .any(|v| v.as_ref().is_some_and(|s| s.len() > limits::URL));
    if too_long {
        return Err("It is too long.");
    }
    if p.post_logout_redirect_uri.as_deref().is_some_and(|u| !printable_url(u)) {
        return Err("Its return address is not a plain address.");
    }
    op::logout::end_session(
        state,
        ctx,
        op::logout::Asked {
            id_token_hint: p.id_token_hint.as_deref(),
            client_id: p.client_id.as_deref(),
            post_logout_redirect_uri: p.post_logout_redirect_uri.as_deref(),
            state: p.state.as_deref(),
        },
    )
}

/// 400 for a sign-out link that names a place it may not go.
fn invalid_link(ctx: &Ctx, why: &str) -> Response {
    pages::message(
        StatusCode::BAD_REQUEST,
        &ctx.pool,
        "This sign-out link is not valid",
        why,
        None,
    )
}

/// The signed-out page's next step: back to the app the sign-out started from — `back`
/// must be, byte for byte, one of an app's registered post-logout addresses (its root on
/// one of its hosts), as a client's `post_logout_redirect_uri` must — or to sign in again.
fn way_back(state: &WebState, ctx: &Ctx, p: &SignOutParams) -> (String, String) {
    let back = p.back.as_deref().and_then(|back| {
        let app = ctx.pool.apps.values().find(|a| {
            op::clients::Client::App((*a).clone())
                .post_logout_redirect_uris(state)
                .iter()
                .any(|u| u == back)
        })?;
        Some((back.to_owned(), format!("Back to {}", app.name)))
    });
    back.unwrap_or_else(|| ("/".to_owned(), "Sign in again".to_owned()))
}

/// The page that asks, with the button that posts.
fn confirm(ctx: &Ctx, headers: &HeaderMap, action: &str, message: &str, p: &SignOutParams) -> Response {
    let values = context! {
        title => format!("Sign out of {}?", ctx.pool.name),
        message => message,
        action => action,
        post_logout_redirect_uri => p.post_logout_redirect_uri,
        state => p.state,
        back => p.back,
        client_id => p.client_id,
        id_token_hint => p.id_token_hint,
    };
    form_page(ctx, headers, StatusCode::OK, "signout.html", values)
}

/// 403 for a sign-out posted from elsewhere, or without this browser's token.
fn refused(ctx: &Ctx, retry: &str) -> Response {
    pages::message(
        StatusCode::FORBIDDEN,
        &ctx.pool,
        "Sign-out not confirmed",
        "This sign-out did not come from this site's own page. Use the button on the sign-out page.",
        Some((retry, "Sign out")),
    )
}

/// The portal clears its cookie and says so, with a way back, or returns to the app that
/// asked.
fn signed_out(state: &WebState, ctx: &Ctx, target: Option<url::Url>, p: &SignOutParams) -> Response {
    let clear = [(header::SET_COOKIE, Cookie::Sso.clear(ctx.tls))];
    match target {
        Some(u) => (clear, Redirect::to(u.as_str())).into_response(),
        None => {
            let (href, text) = way_back(state, ctx, p);
            let message = format!("You are signed out of every application of {}.", ctx.pool.name);
            let page = pages::message(
                StatusCode::OK,
                &ctx.pool,
                "You are signed out",
                &message,
                Some((&href, &text)),
            );
            (clear, page).into_response()
        }
    }
}

/// `GET /logout`, `GET /oidc/logout`.
pub(super) async fn portal_page(
    State(state): State<WebState>,
    Extension(ctx): Extension<Ctx>,
    headers: HeaderMap,
    Query(p): Query<SignOutParams>,
) -> Response {
    portal_logout(&state, &ctx, &headers, p, false).await
}

/// `POST /logout`, `POST /oidc/logout`.
pub(super) async fn portal_submit(
    State(state): State<WebState>,
    Extension(ctx): Extension<Ctx>,
    headers: HeaderMap,
    Form(p): Form<SignOutParams>,
) -> Response {
    portal_logout(&state, &ctx, &headers, p, true).await
}

/// Ends the SSO session and every app session made from it, on every node, when the
/// person confirmed on our own page (same origin, with its token) or a valid ID token
/// hint of a client names the person signed in; otherwise asks. A post from elsewhere
/// that carries a token it could not have is refused.
async fn portal_logout(state: &WebState, ctx: &Ctx, headers: &HeaderMap, p: SignOutParams, posted: bool) -> Response {
    let end = match end_session(state, ctx, &p) {
        Ok(e) => e,
        Err(why) => return invalid_link(ctx, why),
    };
    let Some(sso) = current_sso(state, ctx, headers) else {
        return signed_out(state, ctx, end.target, &p);
    };
    let hinted = end.hinted_sub.as_deref() == Some(sso.uid.to_string().as_str());
    let confirmed = posted && same_origin_post(ctx, headers, &p.csrf);
    if hinted || confirmed {
        // A session from a source that asks for it: on to the source's sign-out first.
        let (back_href, back_text) = way_back(state, ctx, &p);
        let after = federation::AfterSignOut {
            target: end.target.as_ref().map(|u| u.to_string()),
            back_href,
            back_text,
            exp: 0,
        };
        let upstream = federation::upstream_logout(state, ctx, &sso, after).await;
        end_sso_session(state, ctx, &sso).await;
        if let Some(url) = upstream {
            return ([(header::SET_COOKIE, Cookie::Sso.clear(ctx.tls))], Redirect::to(&url)).into_response();
        }
        return signed_out(state, ctx, end.target, &p);
    }
    if posted && !p.csrf.is_empty() {
        return refused(ctx, "/logout");
    }
    let name = state
        .registry
        .store()
        .user(ctx.pool.id.as_str(), &sso.uid.to_string())
        .await
        .map(|u| u.username)
        .unwrap_or_default();
    let message = format!(
        "You are signed in as {name}. Signing out ends your session in every application of {}.",
        ctx.pool.name
    );
    confirm(ctx, headers, "/logout", &message, &p)
}

/// `GET /.poolgate/logout` on an app host: asks, when this app has a session; otherwise
/// on to the portal, which asks about the pool's.
pub(super) async fn app_page(
    State(state): State<WebState>,
    Extension(ctx): Extension<Ctx>,
    headers: HeaderMap,
) -> Response {
    let app = match ctx.app() {
        Ok(a) => a.clone(),
        Err(r) => return r.into_response(),
    };
    let now = state.registry.store().now();
    let live = Ticket::in_cookies(
        Cookie::App,
        &headers,
        ctx.tls,
        &ctx.pool.keys.cookies,
        &app.cookie_binding,
    )
    .any(|t| t.live_at(now) && !state.sessions.revocations.is_revoked(&t.sso));
    if !live {
        return to_portal(&ctx);
    }
    let message = format!(
        "Signing out ends your session here and in every other application of {}.",
        ctx.pool.name
    );
    confirm(&ctx, &headers, "/.poolgate/logout", &message, &SignOutParams::default())
}

/// `POST /.poolgate/logout`: ends the SSO session this app session came from, and with
/// it every app session of it, here and on every node; then the portal clears its cookie.
pub(super) async fn app_submit(
    State(state): State<WebState>,
    Extension(ctx): Extension<Ctx>,
    headers: HeaderMap,
    Form(p): Form<SignOutParams>,
) -> Response {
    let app = match ctx.app() {
        Ok(a) => a.clone(),
        Err(r) => return r.into_response(),
    };
    if !same_origin_post(&ctx, &headers, &p.csrf) {
        return refused(&ctx, "/.poolgate/logout");
    }
    let ticket = Ticket::in_cookies(
        Cookie::App,
        &headers,
        ctx.tls,
        &ctx.pool.keys.cookies,
        &app.cookie_binding,
    )
    .next();
    if let Some(t) = ticket {
        state.sessions.revocations.revoke(t.sid, t.expires);
        // A session from a source that asks for it: on to the source's sign-out, which
        // comes back to the portal's signed-out page with the way back to this app.
        let after = federation::AfterSignOut {
            target: None,
            back_href: format!("{}://{}/", ctx.scheme(), ctx.authority),
            back_text: format!("Back to {}", app.name),
            exp: 0,
        };
        let upstream = federation::upstream_logout(&state, &ctx, &t, after).await;
        end_sso_session(&state, &ctx, &t).await;
        if let Some(url) = upstream {
            return ([(header::SET_COOKIE, Cookie::App.clear(ctx.tls))], Redirect::to(&url)).into_response();
        }
    }
    to_portal(&ctx)
}

/// Clears the app cookie and sends the browser to the portal's sign-out, which links back
/// to this app once signed out.
fn to_portal(ctx: &Ctx) -> Response {
    let back = format!("{}://{}/", ctx.scheme(), ctx.authority);
    let back: String = url::form_urlencoded::byte_serialize(back.as_bytes()).collect();
    (
        [(header::SET_COOKIE, Cookie::App.clear(ctx.tls))],
        Redirect::to(&format!("{}/logout?back={back}", ctx.pool.issuer)),
    )
        .into_response()
}

/// Revokes an SSO session in the store and in this node's cache; other nodes follow.
async fn end_sso_session(state: &WebState, ctx: &Ctx, t: &Ticket) {
    state.sessions.revocations.revoke(t.sso, t.expires);
    match state
        .registry
        .store()
        .revoke_sso_session(ctx.pool.id.as_str(), &t.sso.hex())
        .await
    {
        Ok(()) | Err(StoreError::NotFound) => {}
        Err(e) => tracing::error!(code = "PG0505", error = %e, "could not record a sign-out"),
    }
    audit(
        state,
        ctx,
        &format!("user:{}", t.uid),
        "signout",
        &t.sso.hex()[..8],
        "ok",
        String::new(),
    )
    .await;
}
