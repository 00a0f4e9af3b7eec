//! The one way a person becomes signed in to a pool: a new SSO session (a new id at every
//! sign-in: no fixation) or a step-up of the current one, its cookie and its audit line,
//! then on to the app that asked or the portal's home. The hosted login and federation
//! both end here.

use axum::http::{StatusCode, header};
use axum::response::{AppendHeaders, IntoResponse, Redirect, Response};

use totp_rs::{Algorithm, TOTP};

use super::AuthRequest;
use super::authorize::issue_code;
use crate::crypto::password;
use crate::session::cookie::Cookie;
use crate::session::{SessionId, Ticket, sso_binding};
use crate::store::{NewAuditEvent, NewCode, SsoExtras, StoreError, UpstreamRef, User};
use crate::web::context::Ctx;
use crate::web::hashing::Busy;
use crate::web::pages;
use crate::web::sealed::equal;
use crate::web::state::{WebState, audit};

/// How the person proved who they are.
#[derive(Debug, Clone, Copy)]
pub enum Proof<'a> {
    /// This pool's password, with a second factor or not.
    Password { second_factor: bool },
    /// An identity source of the pool; `mfa` when the source's second factor is trusted.
    Source {
        id: &'a str,
        mfa: bool,
        upstream: &'a UpstreamIdentity,
    },
}

/// Who the person is at the source they came through: what that source's back-channel
/// logout names (`sid`, else `sub`), and the ID token a sign-out sends back as a hint.
#[derive(Debug, Clone)]
pub struct UpstreamIdentity {
    pub issuer: String,
    pub subject: String,
    pub sid: Option<String>,
    /// The source's ID token, sealed to the pool (`federation::signout::ID_TOKEN`): it is
    /// kept with the session only to be sent back as the hint of a sign-out there.
    pub id_token: Option<String>,
    /// The attempt's `state` (and its expiry) when it is still to be spent: it is, in the
    /// commit that opens the session.
    pub spend_state: Option<(String, i64)>,
}

impl Proof<'_> {
    fn methods(&self) -> &'static [&'static str] {
        match self {
            Proof::Password { second_factor: false } => &["pwd"],
            Proof::Password { second_factor: true } => &["pwd", "otp"],
            Proof::Source { mfa: false, .. } => &["fed"],
            Proof::Source { mfa: true, .. } => &["fed", "mfa"],
        }
    }

    fn mfa(&self) -> bool {
        match self {
            Proof::Password { second_factor } => *second_factor,
            Proof::Source { mfa, .. } => *mfa,
        }
    }

    /// Who the person is at the source, for the session record.
    fn upstream(&self) -> Option<UpstreamRef<'_>> {
        match self {
            Proof::Password { .. } => None,
            Proof::Source { upstream, .. } => Some(UpstreamRef {
                issuer: Some(&upstream.issuer),
                subject: Some(&upstream.subject),
                sid: upstream.sid.as_deref(),
                id_token: upstream.id_token.as_deref(),
                spend_state: upstream.spend_state.as_ref().map(|(s, e)| (s.as_str(), *e)),
            }),
        }
    }

    /// `local`, or the source's id: what sessions, tickets and identity headers record.
    pub fn source(&self) -> &str {
        match self {
            Proof::Password { .. } => "local",
            Proof::Source { id, .. } => id,
        }
    }
}

/// Signs the user in: a new SSO session (a new id at every sign-in: no fixation), then on
/// to the app, or to the portal's home.
pub async fn complete(
    state: &WebState,
    ctx: &Ctx,
    user: &User,
    proof: Proof<'_>,
    request: Option<AuthRequest>,
    stepping_up: Option<String>,
) -> Response {
    // Through a source whose second factor does not count here, for a request that needs
    // one: signed in, then back to the authorization request, which asks for this pool's
    // own second factor (or its set-up) before any code goes out.
    if let (Proof::Source { mfa: false, .. }, Some(r)) = (proof, &request)
        && r.needs_mfa(&ctx.pool)
    {
        return match open_session(state, ctx, user, proof, stepping_up).await {
            Ok((set_cookie, _)) => (
                AppendHeaders([(header::SET_COOKIE, set_cookie)]),
                Redirect::to(&r.url()),
            )
                .into_response(),
            Err(resp) => resp,
        };
    }
    let (set_cookie, ticket, code) = match create_session(state, ctx, user, proof, stepping_up, request.as_ref()).await
    {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let next = match (request, code) {
        // The code for the app was committed with the session.
        (Some(r), Some(code)) => super::authorize::to_client(ctx, &r, &[("code", &code)]),
        (Some(r), None) => issue_code(state, ctx, &r, &ticket).await,
        (None, _) => Redirect::to("/").into_response(),
    };
    (AppendHeaders([(header::SET_COOKIE, set_cookie)]), next).into_response()
}

/// Creates (or, for a step-up, upgrades) the SSO session and its cookie; the sign-in's
/// audit line is committed with the new session.
pub async fn open_session(
    state: &WebState,
    ctx: &Ctx,
    user: &User,
    proof: Proof<'_>,
    stepping_up: Option<String>,
) -> Result<(String, Ticket), Response> {
    let (cookie, ticket, _) = create_session(state, ctx, user, proof, stepping_up, None).await?;
    Ok((cookie, ticket))
}

/// The audit line of a sign-in: who, how, through which source.
fn signin_event(ctx: &Ctx, user: &User, proof: Proof<'_>) -> NewAuditEvent {
    let methods = proof.methods().join("+");
    NewAuditEvent {
        pool: Some(ctx.pool.id.to_string()),
        actor: format!("user:{}", user.id),
        action: "signin.success".into(),
        target: user.id.clone(),
        outcome: "ok".into(),
        client: ctx.client_text(),
        detail: match proof {
            Proof::Password { .. } => format!("methods={methods}"),
            Proof::Source { id, .. } => format!("methods={methods} source={id}"),
        },
    }
}

/// The new SSO session (or, for a step-up, the upgraded one) and its cookie. A new one
/// is committed with the sign-in's audit line and, when an app asked, its code (returned).
async fn create_session(
    state: &WebState,
    ctx: &Ctx,
    user: &User,
    proof: Proof<'_>,
    stepping_up: Option<String>,
    request: Option<&AuthRequest>,
) -> Result<(String, Ticket, Option<String>), Response> {
    let store = state.registry.store();
    let now = store.now();
    let policy = ctx.pool.sessions;
    let methods = proof.methods();
    let uid = uuid::Uuid::parse_str(&user.id).map_err(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())?;
    let ticket = |sid: SessionId, expires: i64| Ticket {
        sid,
        sso: sid,
        uid,
        issued: now,
        expires,
        idle_until: (now + policy.idle.as_secs() as i64).min(expires),
        mfa: proof.mfa(),
        source: proof.source().into(),
    };
    let (ticket, code) = match stepping_up.and_then(|s| SessionId::from_hex(&s)) {
        Some(sid) => {
            let record = store.sso_session(ctx.pool.id.as_str(), &sid.hex()).await;
            let expires = record.map(|r| r.expires_at).unwrap_or(now);
            let _ = store.set_sso_methods(ctx.pool.id.as_str(), &sid.hex(), methods).await;
            if let Err(e) = store.audit(signin_event(ctx, user, proof)).await {
                tracing::error!(code = "PG0405", error = %e, "could not write the audit log");
            }
            (ticket(sid, expires), None)
        }
        None => {
            let sid = SessionId::random();
            let ticket = ticket(sid, now + policy.max.as_secs() as i64);
            let code = request.map(|r| super::authorize::new_code(r, &ticket));
            let with = SsoExtras {
                upstream: proof.upstream(),
                audit: Some(signin_event(ctx, user, proof)),
                code: code.as_ref().map(|(code, body)| NewCode {
                    code,
                    body,
                    expires_at: now + super::authorize::CODE_SECS,
                }),
            };
            if let Err(e) = store
                .create_sso_session(
                    ctx.pool.id.as_str(),
                    &sid.hex(),
                    &user.id,
                    methods,
                    proof.source(),
                    &ctx.client_text(),
                    ticket.expires,
                    with,
                )
                .await
            {
                if let StoreError::Conflict(why) = &e {
                    return Err(pages::message(
                        StatusCode::BAD_REQUEST,
                        &ctx.pool,
                        "This sign-in has expired",
                        &format!("{} Go back to the application and sign in again.", pages::sentence(why)),
                        Some(("/", "Back to sign-in")),
                    ));
                }
                tracing::error!(code = "PG0506", error = %e, "could not store an SSO session");
                return Err(pages::message(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &ctx.pool,
                    "Sign-in is unavailable",
                    "Please try again in a moment.",
                    None,
                ));
            }
            (ticket, code.map(|(code, _)| code))
        }
    };
    let value = ticket
        .seal(&ctx.pool.keys.cookies, &sso_binding(ctx.pool.id.as_str()))
        .unwrap_or_default();
    Ok((
        Cookie::Sso.set(ctx.tls, &value, Some(ticket.expires - now)),
        ticket,
        code,
    ))
}

/// The pool's TOTP settings for a user (SHA-1, 6 digits, 30 s: what authenticator apps read).
pub fn totp(pool_name: &str, account: &str, secret: Vec<u8>) -> Option<TOTP> {
    TOTP::new(
        Algorithm::SHA1,
        6,
        1,
        30,
        secret,
        Some(pool_name.to_owned()),
        account.to_owned(),
    )
    .ok()
}

/// Accepts a TOTP code (each time step once) or a recovery code (each code once).
pub async fn check_second_factor(state: &WebState, ctx: &Ctx, user: &User, code: &str) -> bool {
    let store = state.registry.store();
    let pool = ctx.pool.id.as_str();
    let digits: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if digits.len() == 6 && digits.chars().all(|c| c.is_ascii_digit()) {
        let Ok(Some((secret, last))) = store.totp_secret(pool, &user.id, state.registry.master_key()).await else {
            return false;
        };
        let Some(t) = totp(&ctx.pool.name, &user.username, secret) else {
            return false;
        };
        let now = store.now() as u64;
        for step in [now / 30, now / 30 - 1, now / 30 + 1] {
            if step as i64 > last && equal(&t.generate(step * 30), &digits) {
                return store.use_totp_step(pool, &user.id, step as i64).await.unwrap_or(false);
            }
        }
        return false;
    }
    store.use_recovery_code(pool, &user.id, code).await.unwrap_or(false)
}

/// A password typed for a pool's local account, checked.
pub struct PasswordCheck {
    pub user: Option<User>,
    /// Why it does not sign in: `unknown user`, `disabled`, `locked` or `wrong password`;
    /// `None` when it does.
    pub refused: Option<&'static str>,
    /// The same password hashed anew, when the stored hash's parameters are out of date.
    pub rehash: Option<String>,
}

/// Checks a password for the user a form names, on the hashing pool. An unknown user's
/// check costs what a known one's does (a dummy hash), so timing tells nothing.
pub async fn check_password(state: &WebState, ctx: &Ctx, login: &str, given: &str) -> Result<PasswordCheck, Busy> {
    let now = state.registry.store().now();
    let user = find_user(state, ctx.pool.id.as_str(), login).await;
    let hash = user
        .as_ref()
        .and_then(|u| u.password_hash.clone())
        .unwrap_or_else(|| password::DUMMY_HASH.to_owned());
    let given = given.to_owned();
    let (matches, rehash) = state
        .hashing
        .run(ctx.client, move || {
            let ok = password::verify(&given, &hash);
            let rehash = (ok && password::needs_rehash(&hash))
                .then(|| password::hash(&given).ok())
                .flatten();
            (ok, rehash)
        })
        .await?;
    let refused = match &user {
        None => Some("unknown user"),
        Some(u) if u.disabled => Some("disabled"),
        Some(u) if u.locked_until.is_some_and(|t| t > now) => Some("locked"),
        Some(_) if !matches => Some("wrong password"),
        Some(_) => None,
    };
    Ok(PasswordCheck { user, refused, rehash })
}

impl PasswordCheck {
    /// Counts a refused proof against the address's throttle and, for a wrong password,
    /// the account's lockout; audits it as `action` (and the lock, if this one locked it).
    pub async fn count_failure(
        &self,
        state: &WebState,
        ctx: &Ctx,
        login: &str,
        reason: &str,
        action: &str,
        detail: String,
    ) {
        let store = state.registry.store();
        state
            .throttle
            .failed(&ctx.pool.id, &ctx.pool.lockout, ctx.client, store.now());
        let mut locked_now = false;
        if let Some(u) = &self.user
            && reason == "wrong password"
        {
            let lockout = ctx.pool.lockout;
            locked_now = store
                .record_login_failure(
                    ctx.pool.id.as_str(),
                    &u.id,
                    lockout.attempts as i64,
                    lockout.duration.as_secs() as i64,
                )
                .await
                .unwrap_or(false);
        }
        let target = self.user.as_ref().map_or(login, |u| u.id.as_str());
        audit(state, ctx, "anonymous", action, target, "denied", detail).await;
        if locked_now {
            let detail = format!("after {} failures", ctx.pool.lockout.attempts);
            audit(state, ctx, "system", "user.locked", target, "ok", detail).await;
        }
    }
}

/// 503 when too many passwords are being checked: the person (or script) tries again
/// shortly, and nothing was counted against the account.
pub fn busy_page(ctx: &Ctx, busy: Busy) -> Response {
    retry_later(
        ctx,
        StatusCode::SERVICE_UNAVAILABLE,
        "Please try again",
        "Sign-in is busy right now. Try again in a few seconds.",
        busy.retry_after as i64,
    )
}

/// A page saying to come back, with `Retry-After` for a script.
pub fn retry_later(ctx: &Ctx, status: StatusCode, title: &str, message: &str, secs: i64) -> Response {
    let mut page = pages::message(status, &ctx.pool, title, message, None);
    page.headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
    page
}

/// The user a sign-in form names: by username, or by email when exactly one user of
/// the pool has that address (a shared address signs nobody in, rather than the first).
async fn find_user(state: &WebState, pool: &str, login: &str) -> Option<User> {
    let store = state.registry.store();
    match store.user_by_username(pool, login).await {
        Ok(u) => Some(u),
        Err(_) if login.contains('@') => {
            let email = crate::store::normalize_email(login).ok()?;
            let users = store.users_by_email(pool, &email).await.ok()?;
            match users.as_slice() {
                [one] => Some(one.clone()),
                _ => None,
            }
        }
        Err(_) => None,
    }
}
