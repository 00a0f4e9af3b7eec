//! Signing out here can go on to the source (`upstream_logout = "always"`): the person is
//! sent to the source's end-session endpoint (OpenID Connect RP-Initiated Logout) with the
//! ID token the session came with as a hint, and comes back to this pool's
//! `/federation/{source}/signed-out`, which shows the signed-out page (or goes on to where
//! the sign-out was to end). Where to end travels sealed in `state`.

use axum::extract::{Extension, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};

use super::upstream::Upstream;
use crate::registry::source_path;
use crate::session::Ticket;
use crate::session::cookie::Cookie;
use crate::web::context::Ctx;
use crate::web::pages;
use crate::web::sealed::{open, seal};
use crate::web::state::WebState;

const PURPOSE: &str = "federation-signed-out";
/// The source's ID token as the SSO session keeps it: sealed to the pool, so the store
/// alone does not give away what the upstream said of the person.
pub(super) const ID_TOKEN: &str = "federation-id-token";
/// How long the person may take at the source's sign-out page.
const RETURN_SECS: i64 = 600;

/// Where a sign-out ends once the source is done.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AfterSignOut {
    /// A relying party's post-logout address the OP already accepted; else the page.
    pub target: Option<String>,
    pub back_href: String,
    pub back_text: String,
    #[serde(default)]
    pub exp: i64,
}

/// The source's sign-out URL for this session, when its source asks for it and can.
/// Read before the session ends (the ID token hint is the session's).
pub async fn upstream_logout(state: &WebState, ctx: &Ctx, sso: &Ticket, mut after: AfterSignOut) -> Option<String> {
    if sso.source == "local" || sso.source == "client" {
        return None;
    }
    let up = Upstream::resolve(state, &ctx.pool, &sso.source).ok()?;
    if !up.upstream_logout {
        return None;
    }
    let metadata = state.federation.of(&up).metadata().await.ok()?;
    let endpoint = metadata.additional_metadata().end_session_endpoint.clone()?;
    let store = state.registry.store();
    let hint = store
        .sso_upstream_id_token(ctx.pool.id.as_str(), &sso.sso.hex())
        .await
        .ok()
        .flatten()
        .and_then(|sealed| open::<String>(&ctx.pool, ID_TOKEN, &sealed));
    after.exp = store.now() + RETURN_SECS;
    let mut url = url::Url::parse(&endpoint).ok()?;
    {
        let mut q = url.query_pairs_mut();
        if let Some(h) = &hint {
            q.append_pair("id_token_hint", h);
        }
        q.append_pair("client_id", &up.client_id)
            .append_pair(
                "post_logout_redirect_uri",
                &format!("{}{}", ctx.pool.issuer, source_path(&up.id, "signed-out")),
            )
            .append_pair("state", &seal(&ctx.pool, PURPOSE, &after));
    }
    Some(url.to_string())
}

#[derive(Deserialize)]
pub(super) struct Back {
    #[serde(default)]
    state: String,
}

/// `GET /federation/{source}/signed-out`: back from the source's sign-out, with the state
/// this pool sealed when the session here ended. Without it, nothing was signed out here
/// on the way (a link from anywhere): the portal's home, its cookie left alone.
pub(super) async fn signed_out(
    State(state): State<WebState>,
    Extension(ctx): Extension<Ctx>,
    Path(_source): Path<String>,
    Query(b): Query<Back>,
) -> Response {
    let now = state.registry.store().now();
    let Some(after) = open::<AfterSignOut>(&ctx.pool, PURPOSE, &b.state).filter(|a| a.exp > now) else {
        return Redirect::to("/").into_response();
    };
    // The session here ended before the person left; its cookie goes too.
    let clear = [(header::SET_COOKIE, Cookie::Sso.clear(ctx.tls))];
    if let Some(target) = after.target.clone() {
        return (clear, Redirect::to(&target)).into_response();
    }
    let (href, text) = (after.back_href, after.back_text);
    let page = pages::message(
        StatusCode::OK,
        &ctx.pool,
        "You are signed out",
        &format!("You are signed out of every application of {}.", ctx.pool.name),
        Some((&href, &text)),
    );
    (clear, page).into_response()
}
