//! A first sign-in that must prove an existing local account before its link is written:
//! the source's `first_login = "challenge"`, or `create` meeting a username or email that
//! is taken. The pending link — this attempt's `(source, issuer, subject)` — lives sealed
//! in this browser's login cookie (never in the form, so a page of someone else's cannot
//! plant their upstream identity for a victim to link to their own account), expires, and
//! is spent once the proof succeeds. The page names the upstream identity being linked.
//! Abandoned, it writes nothing. Once proven, the sign-in is what every later one through
//! the link will be: the upstream's claims synced and its trusted second factor counted.

use axum::extract::{Extension, Form, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{AppendHeaders, IntoResponse, Response};
use minijinja::context;
use serde::{Deserialize, Serialize};

use super::attempt::ATTEMPT_SECS;
use super::first_login::{self, Upstreamed};
use super::upstream::Upstream;
use crate::op::AuthRequest;
use crate::op::signin::{self, Proof, UpstreamIdentity, check_second_factor, complete};
use crate::session::cookie::Cookie;
use crate::store::StoreError;
use crate::web::context::Ctx;
use crate::web::forms::{form_page, limits, post_ok, refuse_oversized};
use crate::web::pages;
use crate::web::sealed::{open, random_token, seal};
use crate::web::state::{WebState, audit};

const PURPOSE: &str = "federation-link";
const WRONG: &str = "The username, password or code is not right, or this account cannot be linked now.";

/// A link waiting for its proof.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingLink {
    id: String,
    source: String,
    source_name: String,
    /// What the issuer said of the person: the link's `(issuer, subject)`, and what the
    /// sign-in that follows the proof syncs and trusts.
    claims: Upstreamed,
    sid: Option<String>,
    id_token: Option<String>,
    /// How the upstream names the person, to show them whose sign-in is being linked.
    shown_as: String,
    collision: bool,
    request: Option<AuthRequest>,
    exp: i64,
}

impl PendingLink {
    pub fn new(
        source: &Upstream,
        claims: Upstreamed,
        upstream: &UpstreamIdentity,
        collision: bool,
        request: Option<AuthRequest>,
        now: i64,
    ) -> PendingLink {
        let shown_as = claims
            .email
            .clone()
            .or_else(|| claims.username.clone())
            .unwrap_or_else(|| claims.subject.clone());
        PendingLink {
            id: random_token(16),
            source: source.id.to_string(),
            source_name: source.name.clone(),
            claims,
            sid: upstream.sid.clone(),
            id_token: upstream.id_token.clone(),
            shown_as,
            collision,
            request,
            exp: now + ATTEMPT_SECS,
        }
    }

    /// The challenge page, with the pending link set in this browser's login cookie.
    pub fn page(&self, ctx: &Ctx, headers: &HeaderMap) -> Response {
        let cookie = Cookie::Login.set(ctx.tls, &seal(&ctx.pool, PURPOSE, self), Some(ATTEMPT_SECS));
        (
            [(header::SET_COOKIE, cookie)],
            self.render(ctx, headers, "", None, StatusCode::OK),
        )
            .into_response()
    }

    fn render(
        &self,
        ctx: &Ctx,
        headers: &HeaderMap,
        username: &str,
        error: Option<&str>,
        status: StatusCode,
    ) -> Response {
        form_page(
            ctx,
            headers,
            status,
            "link.html",
            context! {
                source => self.source_name, upstream => self.shown_as, collision => self.collision,
                username => username, error => error,
            },
        )
    }

    fn upstream(&self) -> UpstreamIdentity {
        UpstreamIdentity {
            issuer: self.claims.issuer.clone(),
            subject: self.claims.subject.clone(),
            sid: self.sid.clone(),
            id_token: self.id_token.clone(),
            spend_state: None,
        }
    }
}

#[derive(Deserialize)]
pub(super) struct LinkForm {
    csrf: String,
    username: String,
    password: String,
    #[serde(default)]
    code: String,
}

/// `POST /federation/link`: the proof. A wrong one counts toward the account's lockout
/// and the address's throttle, as at the login page, and says as little.
pub(super) async fn prove(
    State(state): State<WebState>,
    Extension(ctx): Extension<Ctx>,
    headers: HeaderMap,
    Form(f): Form<LinkForm>,
) -> Response {
    if let Some(refused) = refuse_oversized(
        &ctx,
        &[
            (&f.username, limits::LOGIN),
            (&f.password, limits::PASSWORD),
            (&f.code, limits::CODE),
            (&f.csrf, limits::CSRF),
        ],
    ) {
        return refused;
    }
    let store = state.registry.store();
    let now = store.now();
    let Some(pending) = Cookie::Login
        .values(&headers, ctx.tls)
        .filter_map(|v| open::<PendingLink>(&ctx.pool, PURPOSE, v))
        .find(|p| p.exp > now)
    else {
        return pages::message(
            StatusCode::BAD_REQUEST,
            &ctx.pool,
            "This link has expired",
            "Go back to the application and sign in again.",
            Some(("/", "Back to sign-in")),
        );
    };
    if !post_ok(&ctx, &headers, &f.csrf) {
        return pending.render(
            &ctx,
            &headers,
            &f.username,
            Some("The form had expired. Please try again."),
            StatusCode::BAD_REQUEST,
        );
    }
    let pool = ctx.pool.id.as_str();
    if state
        .throttle
        .blocked(&ctx.pool.id, &ctx.pool.lockout, ctx.client, now)
        .is_some()
    {
        return pending.render(&ctx, &headers, &f.username, Some(WRONG), StatusCode::TOO_MANY_REQUESTS);
    }
    let check = match signin::check_password(&state, &ctx, &f.username, &f.password).await {
        Ok(c) => c,
        Err(busy) => return signin::busy_page(&ctx, busy),
    };
    let proven = match (check.refused, &check.user) {
        (None, Some(u)) => !u.mfa_enrolled || check_second_factor(&state, &ctx, u, &f.code).await,
        _ => false,
    };
    let detail = format!(
        "source={} iss={} sub={}",
        pending.source, pending.claims.issuer, pending.claims.subject
    );
    let user = match (proven, &check.user) {
        (true, Some(u)) => u.clone(),
        _ => {
            let reason = check.refused.unwrap_or("wrong second factor");
            check
                .count_failure(&state, &ctx, &f.username, reason, "federation.challenge", detail)
                .await;
            return pending.render(&ctx, &headers, &f.username, Some(WRONG), StatusCode::UNAUTHORIZED);
        }
    };
    // The proof is a password sign-in here, under its rules: in a pool that requires a
    // second factor, an account without one sets it up first (at the login page).
    if ctx.pool.mfa == crate::config::MfaPolicy::Required && !user.mfa_enrolled {
        audit(
            &state,
            &ctx,
            &format!("user:{}", user.id),
            "federation.challenge",
            &user.id,
            "denied",
            format!("{detail} reason=no_second_factor"),
        )
        .await;
        let why = format!(
            "This account must set up a second factor first: sign in to {} with your password, \
             then sign in with {} again.",
            ctx.pool.name, pending.source_name
        );
        return pending.render(&ctx, &headers, &f.username, Some(&why), StatusCode::FORBIDDEN);
    }
    // The source as it is now: one removed since the person left links nothing.
    let Ok(up) = Upstream::resolve(&state, &ctx.pool, &pending.source) else {
        return expired(&ctx);
    };
    // Once: a second proof with the same pending link (a replayed form) writes nothing.
    match store.spend(pool, "federation-link", &pending.id, pending.exp).await {
        Ok(true) => {}
        Ok(false) => return expired(&ctx),
        Err(_) => return unavailable(&ctx),
    }
    match store
        .create_link(
            pool,
            &pending.source,
            &pending.claims.issuer,
            &pending.claims.subject,
            &user.id,
        )
        .await
    {
        Ok(_) => {}
        Err(StoreError::Conflict(_)) => {
            return pages::message(
                StatusCode::CONFLICT,
                &ctx.pool,
                "Already linked",
                &format!(
                    "This {} sign-in is already linked to an account here.",
                    pending.source_name
                ),
                Some(("/", "Back to sign-in")),
            );
        }
        Err(_) => return unavailable(&ctx),
    }
    let _ = store.record_login_success(pool, &user.id).await;
    audit(
        &state,
        &ctx,
        &format!("user:{}", user.id),
        "link.create",
        &user.id,
        "ok",
        format!("{detail} decision=challenge_passed"),
    )
    .await;
    // The proof was the account's own second factor when it has one; else the upstream's
    // counts as it would at any sign-in through the link.
    let mfa = user.mfa_enrolled || pending.claims.trusted_mfa(&up.trust_mfa);
    let user = first_login::sync(&state, &ctx, &up, &pending.claims, user, false).await;
    let upstream = pending.upstream();
    let request = pending.request.clone().filter(|r| r.exp > now);
    let next = complete(
        &state,
        &ctx,
        &user,
        Proof::Source {
            id: &pending.source,
            mfa,
            upstream: &upstream,
        },
        request,
        None,
    )
    .await;
    (
        AppendHeaders([(header::SET_COOKIE, Cookie::Login.clear(ctx.tls))]),
        next,
    )
        .into_response()
}

fn expired(ctx: &Ctx) -> Response {
    pages::message(
        StatusCode::BAD_REQUEST,
        &ctx.pool,
        "This link has expired",
        "Go back to the application and sign in again.",
        Some(("/", "Back to sign-in")),
    )
}

fn unavailable(ctx: &Ctx) -> Response {
    pages::message(
        StatusCode::SERVICE_UNAVAILABLE,
        &ctx.pool,
        "Sign-in is unavailable",
        "Please try again in a moment.",
        None,
    )
}
