//! The sign-in endpoints every app host has under `/.poolgate/`: start a sign-in, take the
//! portal's code back (the code exchange runs in-process), and sign out everywhere.

use axum::extract::{Extension, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{AppendHeaders, IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};

use crate::op::{self, pkce_challenge};
use crate::session::cookie::Cookie;
use crate::session::{SessionId, Ticket};
use crate::web::context::Ctx;
use crate::web::forms::printable_url;
use crate::web::pages;
use crate::web::sealed::{equal, open, random_token, seal};
use crate::web::state::WebState;
use crate::web::state::audit;

/// A sign-in in progress, kept sealed in a cookie on the app host between leaving for the
/// portal and coming back: it binds the callback to this browser.
#[derive(Serialize, Deserialize)]
struct LoginState {
    state: String,
    nonce: String,
    verifier: String,
    return_to: String,
    exp: i64,
}

/// Where to go after sign-in: a path of this same app, never anywhere else.
pub fn safe_return_to(raw: Option<&str>) -> String {
    let Some(raw) = raw else { return "/".into() };
    // What arrives here was percent-decoded: it must still be fit for a `Location`.
    let ok = printable_url(raw)
        && raw.starts_with('/')
        && !raw.starts_with("//")
        && !raw.starts_with("/.poolgate/")
        && raw.len() <= 2048;
    if ok { raw.to_owned() } else { "/".into() }
}

fn login_purpose(ctx: &Ctx, app: &str) -> String {
    format!("login\0{app}\0{}", ctx.pool.id)
}

fn callback_url(ctx: &Ctx) -> String {
    format!("{}://{}/.poolgate/callback", ctx.scheme(), ctx.authority)
}

#[derive(Deserialize)]
pub(super) struct StartParams {
    return_to: Option<String>,
    /// An identity source to sign in with at once (a "supplier sign-in" link of the app);
    /// `kc_idp_hint` is Keycloak's name for it.
    idp_hint: Option<String>,
    kc_idp_hint: Option<String>,
}

/// `/.poolgate/login?return_to=/path[&idp_hint=<source>]`: off to the pool's portal, with
/// state, nonce and a PKCE verifier kept in a sealed cookie for the way back.
pub(super) async fn start(
    State(state): State<WebState>,
    Extension(ctx): Extension<Ctx>,
    Query(p): Query<StartParams>,
) -> Response {
    let app = match ctx.app() {
        Ok(a) => a.clone(),
        Err(r) => return r.into_response(),
    };
    if p.return_to
        .as_deref()
        .is_some_and(|r| r.bytes().any(|b| b.is_ascii_control()))
    {
        return pages::message(
            StatusCode::BAD_REQUEST,
            &ctx.pool,
            "This sign-in link is not valid",
            "The address to return to holds characters no address can.",
            Some(("/", "Go to the application")),
        );
    }
    let login = LoginState {
        state: random_token(16),
        nonce: random_token(16),
        verifier: random_token(32),
        return_to: safe_return_to(p.return_to.as_deref()),
        exp: state.registry.store().now() + 600,
    };
    let mut u = match url::Url::parse(&format!("{}/oidc/authorize", ctx.pool.issuer)) {
        Ok(u) => u,
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    u.query_pairs_mut()
        .append_pair("client_id", app.id.as_str())
        .append_pair("redirect_uri", &callback_url(&ctx))
        .append_pair("response_type", "code")
        .append_pair("scope", "openid profile email groups")
        .append_pair("state", &login.state)
        .append_pair("nonce", &login.nonce)
        .append_pair("code_challenge", &pkce_challenge(&login.verifier))
        .append_pair("code_challenge_method", "S256");
    if let Some(hint) = p.idp_hint.or(p.kc_idp_hint).filter(|h| h.len() <= 64) {
        u.query_pairs_mut().append_pair("idp_hint", &hint);
    }
    let sealed = seal(&ctx.pool, &login_purpose(&ctx, app.id.as_str()), &login);
    (
        [(header::SET_COOKIE, Cookie::Login.set(ctx.tls, &sealed, Some(600)))],
        Redirect::to(u.as_str()),
    )
        .into_response()
}

#[derive(Deserialize)]
pub(super) struct CallbackParams {
    code: Option<String>,
    state: Option<String>,
    iss: Option<String>,
    error: Option<String>,
}

/// `/.poolgate/callback`: checks state against this browser's cookie and `iss` (RFC 9207),
/// redeems the code in-process, and opens the app session.
pub(super) async fn callback(
    State(state): State<WebState>,
    Extension(ctx): Extension<Ctx>,
    headers: HeaderMap,
    Query(p): Query<CallbackParams>,
) -> Response {
    let app = match ctx.app() {
        Ok(a) => a.clone(),
        Err(r) => return r.into_response(),
    };
    let failed = |why: &str| {
        (
            [(header::SET_COOKIE, Cookie::Login.clear(ctx.tls))],
            pages::message(
                StatusCode::BAD_REQUEST,
                &ctx.pool,
                "Sign-in did not complete",
                why,
                Some(("/", "Try again")),
            ),
        )
            .into_response()
    };
    let store = state.registry.store();
    let now = store.now();
    let purpose = login_purpose(&ctx, app.id.as_str());
    let login = Cookie::Login
        .values(&headers, ctx.tls)
        .filter_map(|v| open::<LoginState>(&ctx.pool, &purpose, v))
        .filter(|l| l.exp > now)
        .collect::<Vec<_>>();
    if login.is_empty() {
        return failed("This sign-in was not started in this browser, or it took too long.");
    }
    // Of several sign-ins in progress (two tabs), the one this answer is for.
    let Some(login) = login
        .into_iter()
        .find(|l| p.state.as_deref().is_some_and(|s| equal(s, &l.state)))
    else {
        return failed("The sign-in answer does not belong to this sign-in.");
    };
    if p.iss.as_deref().is_some_and(|i| i != ctx.pool.issuer) {
        return failed("The sign-in answer came from another issuer.");
    }
    if p.error.is_some() {
        return failed("The sign-in was refused.");
    }
    let Some(code) = p.code else {
        return failed("The sign-in answer has no code.");
    };
    let redeemed = match op::redeem(
        &state,
        &ctx.pool,
        &code,
        app.id.as_str(),
        &callback_url(&ctx),
        Some(&login.verifier),
        |_| false,
    )
    .await
    {
        Ok(r) => r,
        Err(op::InvalidGrant(why)) => return failed(why),
    };
    let op::Redeemed { grant, sid, expires } = redeemed;
    if grant.nonce.as_deref() != Some(login.nonce.as_str()) {
        return failed("The sign-in answer does not belong to this sign-in.");
    }
    let (Ok(uid), Some(sso)) = (uuid::Uuid::parse_str(&grant.uid), SessionId::from_hex(&grant.sso)) else {
        return failed("The sign-in answer is damaged.");
    };
    let policy = ctx.pool.sessions;
    let ticket = Ticket {
        sid,
        sso,
        uid,
        issued: now,
        expires,
        idle_until: (now + policy.idle.as_secs() as i64).min(expires),
        mfa: grant.mfa,
        source: grant.source.clone(),
    };
    let value = ticket
        .seal(&ctx.pool.keys.cookies, &app.cookie_binding)
        .unwrap_or_default();
    audit(
        &state,
        &ctx,
        &format!("user:{}", grant.uid),
        "app.signin",
        app.id.as_str(),
        "ok",
        String::new(),
    )
    .await;
    (
        AppendHeaders([
            (
                header::SET_COOKIE,
                Cookie::App.set(ctx.tls, &value, Some(expires - now)),
            ),
            (header::SET_COOKIE, Cookie::Login.clear(ctx.tls)),
        ]),
        Redirect::to(&safe_return_to(Some(&login.return_to))),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::safe_return_to;

    #[test]
    fn only_paths_of_this_app() {
        for ok in ["/", "/reports?q=1", "/a/b#frag"] {
            assert_eq!(safe_return_to(Some(ok)), ok);
        }
        for bad in [
            "//evil.example",
            "https://evil.example/",
            "/\\evil.example",
            "evil",
            "/\\/evil",
            "/.poolgate/logout",
            "/a\r\nSet-Cookie: x",
            "",
        ] {
            assert_eq!(safe_return_to(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(safe_return_to(None), "/");
    }
}
