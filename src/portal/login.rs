//! The hosted login: password, then a second factor when the user has one or the pool or
//! app asks for it (with enrollment on the spot), then a fresh SSO session. Every failure
//! says the same thing, so the page never tells whether a username exists.

use axum::extract::{Extension, Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::{Deserialize, Serialize};
use totp_rs::Secret;

use crate::config::MfaPolicy;
use crate::federation;
use crate::op::AuthRequest;
use crate::op::authorize::{self, issue_code};
use crate::op::signin::{self, Proof, busy_page, check_second_factor, complete, open_session, retry_later, totp};
use crate::session::Ticket;
use crate::store::{StoreError, User};
use crate::web::context::Ctx;
use crate::web::forms::{form_page, limits, post_ok, refuse_oversized, unreadable_form};
use crate::web::pages;
use crate::web::sealed::{equal, open, random_token, seal};
use crate::web::state::WebState;
use crate::web::state::{audit, current_sso};

const WRONG: &str = "The username or password is not right, or this account cannot sign in now.";

pub(super) fn login_page(
    ctx: &Ctx,
    headers: &HeaderMap,
    request: Option<&AuthRequest>,
    username: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let sealed = request.map(|r| seal(&ctx.pool, "authreq", r)).unwrap_or_default();
    // The app's display name; a third-party client (no app of the pool) is not named.
    let app = request
        .and_then(|r| ctx.pool.apps.get(&r.client_id))
        .map(|a| a.name.clone());
    let offered = federation::offered(&ctx.pool, request);
    // With email domains mapped to sources, typing an address of one is enough.
    let discovery = offered.iter().any(|s| !s.domains.is_empty());
    let sources: Vec<_> = offered
        .iter()
        .map(|s| context! { name => s.name, href => federation::start_path(s.id.as_str(), &sealed) })
        .collect();
    let local = federation::accepts(&ctx.pool, request, "local");
    form_page(
        ctx,
        headers,
        status,
        "login.html",
        context! {
            request => sealed, username => username, error => error, app => app,
            sources => sources, local => local, discovery => discovery,
        },
    )
}

/// A second-factor form answered wrongly is a 401; shown fresh, a 200.
fn status_for(error: Option<&str>) -> StatusCode {
    if error.is_some() {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    }
}

/// 429 for an address past its failure limit, saying how long to wait (to a person, and
/// in `Retry-After` to a script).
fn throttled(ctx: &Ctx, wait_secs: i64) -> Response {
    let msg = format!(
        "Too many failed sign-ins from your network. Try again in {} minutes.",
        (wait_secs + 59) / 60
    );
    retry_later(
        ctx,
        StatusCode::TOO_MANY_REQUESTS,
        "Please wait",
        &msg,
        wait_secs.max(1),
    )
}

/// A sign-in between its password and its second factor.
#[derive(Serialize, Deserialize)]
struct Pending {
    uid: String,
    request: Option<AuthRequest>,
    /// Set when an existing SSO session is stepping up to MFA.
    sso: Option<String>,
    exp: i64,
}

/// A second factor being set up: the new secret travels sealed until it is confirmed.
#[derive(Serialize, Deserialize)]
struct Enrollment {
    uid: String,
    secret: String,
    request: Option<AuthRequest>,
    sso: Option<String>,
    exp: i64,
}

/// Whether this sign-in (for this request) needs a second factor now.
fn needs_second_factor(ctx: &Ctx, user: &User, request: Option<&AuthRequest>) -> bool {
    if ctx.pool.mfa == MfaPolicy::Off {
        return false;
    }
    let app_requires = request.is_some_and(|r| r.mfa)
        || request
            .and_then(|r| ctx.pool.apps.get(&r.client_id))
            .is_some_and(|a| a.policy.require_mfa);
    user.mfa_enrolled || ctx.pool.mfa == MfaPolicy::Required || app_requires
}

/// The second-factor form: an authenticator code (a numeric keypad on a phone), or, after
/// "Use a recovery code", a text field for a recovery code (which has letters).
fn mfa_page(ctx: &Ctx, headers: &HeaderMap, pending: &Pending, mode: CodeMode, error: Option<&str>) -> Response {
    let values = context! {
        pending => seal(&ctx.pool, "pending", pending),
        error => error,
        recovery => mode == CodeMode::Recovery,
    };
    form_page(ctx, headers, status_for(error), "mfa.html", values)
}

fn enroll_page(ctx: &Ctx, headers: &HeaderMap, user: &User, enrollment: &Enrollment, error: Option<&str>) -> Response {
    let secret = Secret::Encoded(enrollment.secret.clone())
        .to_bytes()
        .unwrap_or_default();
    let url = totp(&ctx.pool.name, &user.username, secret)
        .map(|t| t.get_url())
        .unwrap_or_default();
    let values = context! {
        pending => seal(&ctx.pool, "enroll", enrollment),
        qr => pages::qr_svg(&url),
        secret => enrollment.secret,
        error => error,
    };
    form_page(ctx, headers, status_for(error), "enroll.html", values)
}

fn new_enrollment(uid: &str, request: Option<AuthRequest>, sso: Option<String>, now: i64) -> Enrollment {
    Enrollment {
        uid: uid.to_owned(),
        secret: Secret::generate_secret().to_encoded().to_string(),
        request,
        sso,
        exp: now + 900,
    }
}

/// The second step of an authorization with an SSO session: a code at once (single
/// sign-on), or a step-up to MFA when the app asks for it and the session has none.
/// `GET /oidc/authorize`.
pub(super) async fn authorize_get(
    State(state): State<WebState>,
    Extension(ctx): Extension<Ctx>,
    headers: HeaderMap,
    Query(p): Query<authorize::AuthorizeParams>,
) -> Response {
    authorize(&state, &ctx, &headers, p).await
}

/// `POST /oidc/authorize` (OpenID Connect Core §3.1.2.1: both methods).
pub(super) async fn authorize_post(
    State(state): State<WebState>,
    Extension(ctx): Extension<Ctx>,
    headers: HeaderMap,
    Form(p): Form<authorize::AuthorizeParams>,
) -> Response {
    authorize(&state, &ctx, &headers, p).await
}

/// The OP decides what the request asks; the portal signs the person in when it must.
async fn authorize(state: &WebState, ctx: &Ctx, headers: &HeaderMap, p: authorize::AuthorizeParams) -> Response {
    match authorize::start(state, ctx, headers, p).await {
        authorize::Start::Answered(resp) => resp,
        authorize::Start::Session { sso, request } => continue_with_session(state, ctx, headers, sso, request).await,
        authorize::Start::Login {
            request,
            login_hint,
            idp_hint,
        } => {
            // `idp_hint` (Keycloak's `kc_idp_hint`) names a source to go to at once.
            let hinted = idp_hint.and_then(|h| {
                federation::offered(&ctx.pool, Some(&request))
                    .into_iter()
                    .find(|s| s.id.as_str() == h)
            });
            match hinted {
                Some(s) => federation::sign_in_with(state, ctx, s.id.as_str(), Some(request)).await,
                None => login_page(ctx, headers, Some(&request), &login_hint, None, StatusCode::OK),
            }
        }
    }
}

pub(super) async fn continue_with_session(
    state: &WebState,
    ctx: &Ctx,
    headers: &HeaderMap,
    sso: Ticket,
    request: AuthRequest,
) -> Response {
    if request.needs_mfa(&ctx.pool) && !sso.mfa {
        // `prompt=none`: no page may be shown, so the client is told it would take one.
        if !request.interactive {
            return authorize::to_client(ctx, &request, &[("error", "interaction_required")]);
        }
        let user = match state
            .registry
            .store()
            .user(ctx.pool.id.as_str(), &sso.uid.to_string())
            .await
        {
            Ok(u) => u,
            Err(_) => return login_page(ctx, headers, Some(&request), "", None, StatusCode::OK),
        };
        let now = state.registry.store().now();
        if user.mfa_enrolled {
            let pending = Pending {
                uid: user.id.clone(),
                request: Some(request),
                sso: Some(sso.sso.hex()),
                exp: now + 300,
            };
            return mfa_page(ctx, headers, &pending, CodeMode::Totp, None);
        }
        let enrollment = new_enrollment(&user.id, Some(request), Some(sso.sso.hex()), now);
        return enroll_page(ctx, headers, &user, &enrollment, None);
    }
    // The app may accept only some ways in (`allowed_sources`): a session that came
    // another way signs in again, with a way the app accepts.
    if let Some(app) = ctx.pool.apps.get(&request.client_id)
        && !app.policy.allowed_sources.is_empty()
        && !app.policy.allowed_sources.contains(&sso.source)
    {
        if !request.interactive {
            return authorize::to_client(ctx, &request, &[("error", "login_required")]);
        }
        return login_page(ctx, headers, Some(&request), "", None, StatusCode::OK);
    }
    issue_code(state, ctx, &request, &sso).await
}

#[derive(Deserialize)]
pub(super) struct PasswordForm {
    csrf: String,
    #[serde(default)]
    request: String,
    username: String,
    password: String,
}

pub(super) async fn password(
    State(state): State<WebState>,
    Extension(ctx): Extension<Ctx>,
    headers: HeaderMap,
    Form(f): Form<PasswordForm>,
) -> Response {
    if let Some(refused) = refuse_oversized(
        &ctx,
        &[
            (&f.username, limits::LOGIN),
            (&f.password, limits::PASSWORD),
            (&f.csrf, limits::CSRF),
            (&f.request, limits::SEALED),
        ],
    ) {
        return refused;
    }
    let store = state.registry.store();
    let now = store.now();
    let request: Option<AuthRequest> = (!f.request.is_empty())
        .then(|| open::<AuthRequest>(&ctx.pool, "authreq", &f.request))
        .flatten()
        .filter(|r| r.exp > now);
    if !f.request.is_empty() && request.is_none() {
        return pages::message(
            StatusCode::BAD_REQUEST,
            &ctx.pool,
            "This sign-in has expired",
            "Go back to the application and try again.",
            None,
        );
    }
    if !post_ok(&ctx, &headers, &f.csrf) {
        return login_page(
            &ctx,
            &headers,
            request.as_ref(),
            &f.username,
            Some("The form had expired. Please sign in again."),
            StatusCode::BAD_REQUEST,
        );
    }
    // Home-realm discovery: an address whose domain a source claims goes there, whatever
    // was typed as a password (which is not looked at).
    if let Some(source) = federation::home_realm(&ctx.pool, request.as_ref(), &f.username) {
        return federation::sign_in_with(&state, &ctx, source.id.as_str(), request).await;
    }
    // An app that takes no password sign-in: nothing to check (the gate would refuse it).
    if !federation::accepts(&ctx.pool, request.as_ref(), "local") {
        return login_page(
            &ctx,
            &headers,
            request.as_ref(),
            &f.username,
            Some("There is no sign-in here for that address. Use one of the ways below."),
            StatusCode::UNAUTHORIZED,
        );
    }
    if let Some(wait) = state.throttle.blocked(&ctx.pool.id, &ctx.pool.lockout, ctx.client, now) {
        audit(
            &state,
            &ctx,
            "anonymous",
            "signin.throttled",
            &f.username,
            "denied",
            String::new(),
        )
        .await;
        return throttled(&ctx, wait);
    }
    let check = match signin::check_password(&state, &ctx, &f.username, &f.password).await {
        Ok(c) => c,
        Err(busy) => return busy_page(&ctx, busy),
    };
    let user = match (check.refused, &check.user) {
        (None, Some(u)) => u.clone(),
        (refused, _) => {
            let reason = refused.unwrap_or("unknown user");
            check
                .count_failure(
                    &state,
                    &ctx,
                    &f.username,
                    reason,
                    "signin.failure",
                    format!("reason={reason}"),
                )
                .await;
            return login_page(
                &ctx,
                &headers,
                request.as_ref(),
                &f.username,
                Some(WRONG),
                StatusCode::UNAUTHORIZED,
            );
        }
    };
    let pool = ctx.pool.id.as_str();
    let _ = store.record_login_success(pool, &user.id).await;
    if let Some(h) = check.rehash {
        let _ = store.set_password_hash(pool, &user.id, Some(h)).await;
    }
    if needs_second_factor(&ctx, &user, request.as_ref()) {
        if user.mfa_enrolled {
            let pending = Pending {
                uid: user.id.clone(),
                request,
                sso: None,
                exp: now + 300,
            };
            return mfa_page(&ctx, &headers, &pending, CodeMode::Totp, None);
        }
        let enrollment = new_enrollment(&user.id, request, None, now);
        return enroll_page(&ctx, &headers, &user, &enrollment, None);
    }
    complete(
        &state,
        &ctx,
        &user,
        Proof::Password { second_factor: false },
        request,
        None,
    )
    .await
}

#[derive(Deserialize)]
pub(super) struct CodeForm {
    csrf: String,
    pending: String,
    #[serde(default)]
    code: String,
    /// Which field the page showed; kept when the page is shown again.
    #[serde(default)]
    mode: CodeMode,
    /// Set by the "Use a recovery code" / "Use your authenticator app" buttons: show the
    /// other field, check nothing.
    switch: Option<CodeMode>,
}

#[derive(Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(super) enum CodeMode {
    #[default]
    Totp,
    Recovery,
}

/// 400 for a second-factor form whose fields cannot be what they claim: a code is six
/// digits or a recovery code (letters, digits, `-`, spaces), never long.
fn refuse_oversized_code(ctx: &Ctx, f: &CodeForm) -> Option<Response> {
    let shaped = f
        .code
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ' ');
    if !shaped {
        return Some(unreadable_form(ctx));
    }
    refuse_oversized(
        ctx,
        &[
            (&f.code, limits::CODE),
            (&f.csrf, limits::CSRF),
            (&f.pending, limits::SEALED),
        ],
    )
}

pub(super) async fn second_factor(
    State(state): State<WebState>,
    Extension(ctx): Extension<Ctx>,
    headers: HeaderMap,
    Form(f): Form<CodeForm>,
) -> Response {
    if let Some(refused) = refuse_oversized_code(&ctx, &f) {
        return refused;
    }
    let now = state.registry.store().now();
    let Some(pending) = open::<Pending>(&ctx.pool, "pending", &f.pending).filter(|p| p.exp > now) else {
        return pages::message(
            StatusCode::BAD_REQUEST,
            &ctx.pool,
            "This sign-in has expired",
            "Please sign in again.",
            Some(("/", "Sign in")),
        );
    };
    if !post_ok(&ctx, &headers, &f.csrf) {
        return mfa_page(
            &ctx,
            &headers,
            &pending,
            f.mode,
            Some("The form had expired. Please enter a new code."),
        );
    }
    if let Some(mode) = f.switch {
        return mfa_page(&ctx, &headers, &pending, mode, None);
    }
    if let Some(wait) = state.throttle.blocked(&ctx.pool.id, &ctx.pool.lockout, ctx.client, now) {
        return throttled(&ctx, wait);
    }
    let user = match state.registry.store().user(ctx.pool.id.as_str(), &pending.uid).await {
        Ok(u) if !u.disabled => u,
        _ => {
            return login_page(
                &ctx,
                &headers,
                pending.request.as_ref(),
                "",
                Some(WRONG),
                StatusCode::UNAUTHORIZED,
            );
        }
    };
    if !check_second_factor(&state, &ctx, &user, &f.code).await {
        state.throttle.failed(&ctx.pool.id, &ctx.pool.lockout, ctx.client, now);
        let lockout = ctx.pool.lockout;
        let _ = state
            .registry
            .store()
            .record_login_failure(
                ctx.pool.id.as_str(),
                &user.id,
                lockout.attempts as i64,
                lockout.duration.as_secs() as i64,
            )
            .await;
        audit(
            &state,
            &ctx,
            &format!("user:{}", user.id),
            "signin.mfa_failure",
            &user.id,
            "denied",
            String::new(),
        )
        .await;
        let error = match f.mode {
            CodeMode::Totp => "That code is not right. Try the current code.",
            CodeMode::Recovery => "That recovery code is not right, or it was used before.",
        };
        return mfa_page(&ctx, &headers, &pending, f.mode, Some(error));
    }
    complete(
        &state,
        &ctx,
        &user,
        Proof::Password { second_factor: true },
        pending.request,
        pending.sso,
    )
    .await
}

pub(super) async fn enroll(
    State(state): State<WebState>,
    Extension(ctx): Extension<Ctx>,
    headers: HeaderMap,
    Form(f): Form<CodeForm>,
) -> Response {
    if let Some(refused) = refuse_oversized_code(&ctx, &f) {
        return refused;
    }
    let store = state.registry.store();
    let now = store.now();
    let Some(enrollment) = open::<Enrollment>(&ctx.pool, "enroll", &f.pending).filter(|p| p.exp > now) else {
        return pages::message(
            StatusCode::BAD_REQUEST,
            &ctx.pool,
            "This setup has expired",
            "Please sign in again.",
            Some(("/", "Sign in")),
        );
    };
    let user = match store.user(ctx.pool.id.as_str(), &enrollment.uid).await {
        Ok(u) if !u.disabled => u,
        _ => {
            return login_page(
                &ctx,
                &headers,
                enrollment.request.as_ref(),
                "",
                Some(WRONG),
                StatusCode::UNAUTHORIZED,
            );
        }
    };
    if !post_ok(&ctx, &headers, &f.csrf) {
        return enroll_page(
            &ctx,
            &headers,
            &user,
            &enrollment,
            Some("The form had expired. Please enter a new code."),
        );
    }
    let secret = Secret::Encoded(enrollment.secret.clone())
        .to_bytes()
        .unwrap_or_default();
    let Some(t) = totp(&ctx.pool.name, &user.username, secret.clone()) else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let code: String = f.code.chars().filter(|c| c.is_ascii_digit()).collect();
    let step = now as u64 / 30;
    let valid_step = [step, step - 1, step + 1]
        .into_iter()
        .find(|s| equal(&t.generate(s * 30), &code));
    let Some(valid_step) = valid_step else {
        return enroll_page(
            &ctx,
            &headers,
            &user,
            &enrollment,
            Some("That code is not right. Check the time on your phone and try again."),
        );
    };
    let pool = ctx.pool.id.as_str();
    let codes: Vec<String> = (0..10).map(|_| recovery_code()).collect();
    let stored = async {
        store
            .set_totp_secret(pool, &user.id, &secret, state.registry.master_key())
            .await?;
        store.use_totp_step(pool, &user.id, valid_step as i64).await?;
        store
            .set_recovery_codes(
                pool,
                &user.id,
                &codes.iter().map(|c| c.replace('-', "")).collect::<Vec<_>>(),
            )
            .await?;
        Ok::<_, StoreError>(())
    };
    if let Err(e) = stored.await {
        tracing::error!(code = "PG0507", error = %e, "could not store a TOTP enrollment");
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    audit(
        &state,
        &ctx,
        &format!("user:{}", user.id),
        "mfa.enroll",
        &user.id,
        "ok",
        String::new(),
    )
    .await;
    let (set_cookie, _) = match open_session(
        &state,
        &ctx,
        &user,
        Proof::Password { second_factor: true },
        enrollment.sso,
    )
    .await
    {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let next = enrollment.request.map(|r| r.url()).unwrap_or_else(|| "/".into());
    let page = pages::render(
        StatusCode::OK,
        &ctx.pool,
        "recovery.html",
        context! { codes => codes, next => next },
    );
    ([(header::SET_COOKIE, set_cookie)], page).into_response()
}

/// Ten characters of base32 (50 bits), shown as `xxxxx-xxxxx`.
fn recovery_code() -> String {
    let raw = random_token(16).to_ascii_lowercase().replace(['-', '_'], "");
    let alnum: String = raw.chars().filter(|c| c.is_ascii_alphanumeric()).take(10).collect();
    format!("{}-{}", &alnum[..5], &alnum[5..])
}

/// `/mfa`: a signed-in user sets up a second factor (pools with MFA optional or required).
pub(super) async fn start_enrollment(
    State(state): State<WebState>,
    Extension(ctx): Extension<Ctx>,
    headers: HeaderMap,
) -> Response {
    if ctx.pool.mfa == MfaPolicy::Off {
        return StatusCode::NOT_FOUND.into_response();
    }
    let Some(sso) = current_sso(&state, &ctx, &headers) else {
        return Redirect::to("/").into_response();
    };
    let Ok(user) = state
        .registry
        .store()
        .user(ctx.pool.id.as_str(), &sso.uid.to_string())
        .await
    else {
        return Redirect::to("/").into_response();
    };
    let enrollment = new_enrollment(&user.id, None, Some(sso.sso.hex()), state.registry.store().now());
    enroll_page(&ctx, &headers, &user, &enrollment, None)
}

/// The portal's home: who is signed in (with sign-out), or the login form.
pub(super) async fn home(
    State(state): State<WebState>,
    Extension(ctx): Extension<Ctx>,
    headers: HeaderMap,
) -> Response {
    match current_sso(&state, &ctx, &headers) {
        Some(sso) => {
            let user = state
                .registry
                .store()
                .user(ctx.pool.id.as_str(), &sso.uid.to_string())
                .await;
            let name = user.as_ref().map(|u| u.username.clone()).unwrap_or_default();
            let offer_mfa = ctx.pool.mfa != MfaPolicy::Off && user.as_ref().is_ok_and(|u| !u.mfa_enrolled);
            let link = offer_mfa.then_some("/mfa");
            let values = context! {
                title => "Your account",
                message => format!("You are signed in to {} as {name}.", ctx.pool.name),
                action => "/logout",
                link => link,
                link_text => "Set up two-factor sign-in",
                account => (!ctx.pool.sources.is_empty()).then_some("/account"),
            };
            form_page(&ctx, &headers, StatusCode::OK, "signout.html", values)
        }
        None => login_page(&ctx, &headers, None, "", None, StatusCode::OK),
    }
}
