//! Each pool's OpenID Provider: discovery, JWKS, the authorization endpoint (single sign-on
//! when a session exists, the login page otherwise), the token and userinfo endpoints, and
//! RP-initiated logout. Codes are single use, bound to client, redirect URI and PKCE (S256
//! required).

use axum::Json;
use axum::extract::{Extension, Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SecureRandom;
use serde::{Deserialize, Serialize};
use serde_json::json;
use subtle::ConstantTimeEq;

use super::PortalState;
use super::context::Ctx;
use super::login;
use crate::registry::{AppRoute, PoolRoute};
use crate::session::cookie::Cookie;
use crate::session::{SessionId, Ticket, sso_binding};
use crate::store::{CodeUse, NewAuditEvent, StoreError};
use crate::web::pages;

/// Random bytes as base64url: codes, states, verifiers, CSRF tokens.
pub(super) fn random_token(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    let _ = ring::rand::SystemRandom::new().fill(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

/// Seals a value for the browser to carry (a hidden field, a cookie), bound to a purpose
/// and the pool.
pub(super) fn seal<T: Serialize>(pool: &PoolRoute, purpose: &str, value: &T) -> String {
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    let binding = format!("{purpose}\0{}", pool.id);
    pool.keys
        .cookies
        .seal(&bytes, binding.as_bytes())
        .map(|s| URL_SAFE_NO_PAD.encode(s))
        .unwrap_or_default()
}

pub(super) fn open<T: for<'de> Deserialize<'de>>(pool: &PoolRoute, purpose: &str, text: &str) -> Option<T> {
    let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
    let binding = format!("{purpose}\0{}", pool.id);
    let plain = pool.keys.cookies.open(&bytes, binding.as_bytes()).ok()?;
    serde_json::from_slice(&plain).ok()
}

pub(super) fn equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

pub(super) fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()))
}

/// An authorization request, carried sealed through the login pages.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct AuthRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub state: String,
    pub nonce: Option<String>,
    pub code_challenge: String,
    pub scope: String,
    pub exp: i64,
}

impl AuthRequest {
    /// The authorize URL that starts this request again (after MFA setup, say).
    pub fn url(&self) -> String {
        let mut u = url::Url::parse("http://x/oidc/authorize").unwrap_or_else(|_| unreachable!());
        {
            let mut q = u.query_pairs_mut();
            q.append_pair("client_id", &self.client_id)
                .append_pair("redirect_uri", &self.redirect_uri)
                .append_pair("response_type", "code")
                .append_pair("scope", &self.scope)
                .append_pair("state", &self.state)
                .append_pair("code_challenge", &self.code_challenge)
                .append_pair("code_challenge_method", "S256");
            if let Some(n) = &self.nonce {
                q.append_pair("nonce", n);
            }
        }
        format!("{}?{}", u.path(), u.query().unwrap_or_default())
    }
}

/// What an authorization code grants, stored (by hash) until redeemed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Grant {
    pub client_id: String,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub nonce: Option<String>,
    pub uid: String,
    pub sso: String,
    pub sso_expires: i64,
    pub auth_time: i64,
    pub amr: Vec<String>,
    pub source: String,
    pub mfa: bool,
}

/// Whether `uri` is this app's callback on one of its hosts, on a port we listen on, or
/// one of the redirect URIs registered for it (compared exactly).
pub(super) fn valid_redirect(state: &PortalState, app: &AppRoute, uri: &str) -> bool {
    if app.redirect_uris.iter().any(|r| r == uri) {
        return true;
    }
    let Ok(u) = url::Url::parse(uri) else { return false };
    let listen = state.registry.snapshot().config.listen.clone();
    let port_ok = match u.scheme() {
        "https" => listen
            .https
            .is_some_and(|a| u.port_or_known_default() == Some(a.port()) || u.port().is_none()),
        "http" => listen
            .http
            .is_some_and(|a| u.port_or_known_default() == Some(a.port()) || u.port().is_none()),
        _ => false,
    };
    port_ok
        && u.path() == "/.poolgate/callback"
        && u.query().is_none()
        && u.fragment().is_none()
        && u.username().is_empty()
        && u.password().is_none()
        && u.host_str().is_some_and(|h| app.hosts.iter().any(|a| a.as_str() == h))
}

/// The live SSO session of this browser at the portal, if any.
pub(super) fn current_sso(state: &PortalState, ctx: &Ctx, headers: &HeaderMap) -> Option<Ticket> {
    let binding = sso_binding(ctx.pool.id.as_str());
    let now = state.registry.store().now();
    Ticket::in_cookies(Cookie::Sso, headers, ctx.tls, &ctx.pool.keys.cookies, &binding)
        .find(|t| t.live_at(now) && !state.sessions.revocations.is_revoked(&t.sso))
}

pub(super) async fn audit(
    state: &PortalState,
    ctx: &Ctx,
    actor: &str,
    action: &str,
    target: &str,
    outcome: &str,
    detail: String,
) {
    let event = NewAuditEvent {
        pool: Some(ctx.pool.id.to_string()),
        actor: actor.into(),
        action: action.into(),
        target: target.into(),
        outcome: outcome.into(),
        client: ctx.client_text(),
        detail,
    };
    if let Err(e) = state.registry.store().audit(event).await {
        tracing::error!(code = "PG0405", error = %e, action, "could not write the audit log");
    }
}

pub(super) async fn discovery(Extension(ctx): Extension<Ctx>) -> Response {
    let iss = &ctx.pool.issuer;
    Json(json!({
        "issuer": iss,
        "authorization_endpoint": format!("{iss}/oidc/authorize"),
        "token_endpoint": format!("{iss}/oidc/token"),
        "userinfo_endpoint": format!("{iss}/oidc/userinfo"),
        "jwks_uri": format!("{iss}/oidc/jwks"),
        "end_session_endpoint": format!("{iss}/oidc/logout"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none"],
        "scopes_supported": ["openid", "profile", "email", "groups"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "sid", "amr",
                             "preferred_username", "name", "email", "email_verified", "groups"],
        "authorization_response_iss_parameter_supported": true,
    }))
    .into_response()
}

pub(super) async fn jwks(Extension(ctx): Extension<Ctx>) -> Response {
    (
        [(header::CACHE_CONTROL, "max-age=300")],
        Json(json!({ "keys": ctx.pool.keys.jwks })),
    )
        .into_response()
}

#[derive(Deserialize)]
pub(super) struct AuthorizeParams {
    client_id: Option<String>,
    redirect_uri: Option<String>,
    response_type: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    prompt: Option<String>,
}

/// Redirects an OAuth error to a validated redirect URI.
fn error_redirect(redirect_uri: &str, error: &str, state: Option<&str>, issuer: &str) -> Response {
    let mut u = match url::Url::parse(redirect_uri) {
        Ok(u) => u,
        Err(_) => return StatusCode::BAD_REQUEST.into_response(),
    };
    {
        let mut q = u.query_pairs_mut();
        q.append_pair("error", error);
        if let Some(s) = state {
            q.append_pair("state", s);
        }
        q.append_pair("iss", issuer);
    }
    Redirect::to(u.as_str()).into_response()
}

pub(super) async fn authorize(
    State(state): State<PortalState>,
    Extension(ctx): Extension<Ctx>,
    headers: HeaderMap,
    Query(p): Query<AuthorizeParams>,
) -> Response {
    let bad = |why: &str| {
        pages::message(
            StatusCode::BAD_REQUEST,
            &ctx.pool,
            "This sign-in link is not valid",
            why,
            None,
        )
    };
    let Some(app) = p.client_id.as_deref().and_then(|c| ctx.pool.apps.get(c)).cloned() else {
        return bad("It names no application of this pool.");
    };
    let Some(redirect_uri) = p.redirect_uri.filter(|r| valid_redirect(&state, &app, r)) else {
        return bad("It would send you to an address this application does not own.");
    };
    let issuer = ctx.pool.issuer.clone();
    if p.response_type.as_deref() != Some("code") {
        return error_redirect(&redirect_uri, "unsupported_response_type", p.state.as_deref(), &issuer);
    }
    let Some(challenge) = p.code_challenge.filter(|c| (43..=128).contains(&c.len())) else {
        return error_redirect(&redirect_uri, "invalid_request", p.state.as_deref(), &issuer);
    };
    if p.code_challenge_method.as_deref() != Some("S256") {
        return error_redirect(&redirect_uri, "invalid_request", p.state.as_deref(), &issuer);
    }
    let now = state.registry.store().now();
    let request = AuthRequest {
        client_id: app.id.to_string(),
        redirect_uri,
        state: p.state.unwrap_or_default(),
        nonce: p.nonce,
        code_challenge: challenge,
        scope: p.scope.unwrap_or_else(|| "openid".into()),
        exp: now + 900,
    };
    match current_sso(&state, &ctx, &headers) {
        Some(sso) if p.prompt.as_deref() != Some("login") => {
            login::continue_with_session(&state, &ctx, &headers, sso, request).await
        }
        _ if p.prompt.as_deref() == Some("none") => {
            error_redirect(&request.redirect_uri, "login_required", Some(&request.state), &issuer)
        }
        _ => login::login_page(&ctx, &headers, Some(&request), "", None, StatusCode::OK),
    }
}

/// Issues a single-use code for `request` and sends the browser back to the app with it.
pub(super) async fn issue_code(state: &PortalState, ctx: &Ctx, request: &AuthRequest, sso: &Ticket) -> Response {
    let code = random_token(32);
    let grant = Grant {
        client_id: request.client_id.clone(),
        redirect_uri: request.redirect_uri.clone(),
        code_challenge: request.code_challenge.clone(),
        nonce: request.nonce.clone(),
        uid: sso.uid.to_string(),
        sso: sso.sso.hex(),
        sso_expires: sso.expires,
        auth_time: sso.issued,
        amr: if sso.mfa {
            vec!["pwd".into(), "otp".into()]
        } else {
            vec!["pwd".into()]
        },
        source: sso.source.clone(),
        mfa: sso.mfa,
    };
    let body = serde_json::to_string(&grant).unwrap_or_default();
    let expires = state.registry.store().now() + 60;
    if let Err(e) = state
        .registry
        .store()
        .put_code(ctx.pool.id.as_str(), &code, &body, expires)
        .await
    {
        tracing::error!(code = "PG0504", error = %e, "could not store an authorization code");
        return pages::message(
            StatusCode::SERVICE_UNAVAILABLE,
            &ctx.pool,
            "Sign-in is unavailable",
            "Please try again in a moment.",
            None,
        );
    }
    let mut u = match url::Url::parse(&request.redirect_uri) {
        Ok(u) => u,
        Err(_) => return StatusCode::BAD_REQUEST.into_response(),
    };
    u.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &request.state)
        .append_pair("iss", &ctx.pool.issuer);
    Redirect::to(u.as_str()).into_response()
}

/// Why a code was not honoured (OAuth `invalid_grant`).
#[derive(Debug)]
pub(super) struct InvalidGrant(pub &'static str);

/// A redeemed code: what it grants, and the app session its tokens (or cookie) belong to.
pub(super) struct Redeemed {
    pub grant: Grant,
    pub sid: SessionId,
    pub expires: i64,
}

/// Redeems a code once, checking client, redirect URI, PKCE and that the SSO session it
/// came from still stands, and records the app session it opens. A code presented again
/// revokes what its first redemption gave (RFC 6749 §4.1.2).
pub(super) async fn redeem(
    state: &PortalState,
    pool: &PoolRoute,
    code: &str,
    client_id: &str,
    redirect_uri: &str,
    verifier: &str,
) -> Result<Redeemed, InvalidGrant> {
    let store = state.registry.store();
    let sid = SessionId::random();
    let body = match store.take_code(pool.id.as_str(), code, &sid.hex()).await {
        Ok(CodeUse::Redeemed(b)) => b,
        Ok(CodeUse::Unknown) => return Err(InvalidGrant("unknown, used or expired code")),
        Ok(CodeUse::Replayed(first)) => {
            if let Some(first) = first.as_deref().and_then(SessionId::from_hex) {
                revoke_replayed(state, pool, first).await;
            }
            return Err(InvalidGrant("unknown, used or expired code"));
        }
        Err(e) => {
            tracing::error!(code = "PG0509", error = %e, pool = %pool.id, "could not redeem an authorization code");
            return Err(InvalidGrant("the store is unavailable"));
        }
    };
    let grant: Grant = serde_json::from_str(&body).map_err(|_| InvalidGrant("damaged code"))?;
    if grant.client_id != client_id || grant.redirect_uri != redirect_uri {
        return Err(InvalidGrant("the code was issued to another client or redirect URI"));
    }
    if !equal(&pkce_challenge(verifier), &grant.code_challenge) {
        return Err(InvalidGrant("PKCE verification failed"));
    }
    let sso = SessionId::from_hex(&grant.sso).ok_or(InvalidGrant("damaged code"))?;
    if state.sessions.revocations.is_revoked(&sso) {
        return Err(InvalidGrant("the session has ended"));
    }
    let expires = (store.now() + pool.sessions.max.as_secs() as i64).min(grant.sso_expires);
    if let Err(e) = store
        .create_app_session(pool.id.as_str(), &sid.hex(), client_id, &grant.sso, &grant.uid, expires)
        .await
    {
        tracing::error!(code = "PG0508", error = %e, pool = %pool.id, "could not store an app session");
        return Err(InvalidGrant("the store is unavailable"));
    }
    Ok(Redeemed { grant, sid, expires })
}

/// A code was replayed: the app session (cookie or tokens) of its first redemption ends,
/// here at once and on every node within the store poll.
async fn revoke_replayed(state: &PortalState, pool: &PoolRoute, first: SessionId) {
    let store = state.registry.store();
    state
        .sessions
        .revocations
        .revoke(first, store.now() + pool.sessions.max.as_secs() as i64);
    match store.revoke_app_session(pool.id.as_str(), &first.hex()).await {
        Ok(()) | Err(StoreError::NotFound) => {}
        Err(e) => {
            tracing::error!(code = "PG0505", error = %e, pool = %pool.id, "could not revoke a replayed code's session")
        }
    }
}

#[derive(Serialize)]
struct IdClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: i64,
    iat: i64,
    auth_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
    sid: &'a str,
    amr: &'a [String],
    preferred_username: &'a str,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    email_verified: bool,
    groups: &'a [String],
}

/// Claims of an access token of this pool (also what bearer-token requests are
/// identified by).
#[derive(Debug, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub sid: String,
    /// The grant (app session) this token was issued in: a replayed code revokes it.
    #[serde(default)]
    pub jti: String,
    pub scope: String,
    pub preferred_username: String,
    pub name: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    pub src: String,
    pub mfa: bool,
}

pub const ACCESS_TOKEN_SECS: i64 = 600;

#[derive(Deserialize)]
pub(super) struct TokenForm {
    grant_type: String,
    code: Option<String>,
    redirect_uri: Option<String>,
    client_id: Option<String>,
    code_verifier: Option<String>,
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({ "error": error, "error_description": description })),
    )
        .into_response()
}

pub(super) async fn token(
    State(state): State<PortalState>,
    Extension(ctx): Extension<Ctx>,
    Form(f): Form<TokenForm>,
) -> Response {
    if f.grant_type != "authorization_code" {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "only authorization_code",
        );
    }
    let (Some(code), Some(redirect_uri), Some(client_id), Some(verifier)) =
        (f.code, f.redirect_uri, f.client_id, f.code_verifier)
    else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "code, redirect_uri, client_id and code_verifier are required",
        );
    };
    let Redeemed { grant, sid, .. } = match redeem(&state, &ctx.pool, &code, &client_id, &redirect_uri, &verifier).await
    {
        Ok(r) => r,
        Err(InvalidGrant(why)) => return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", why),
    };
    let user = match state.registry.store().user(ctx.pool.id.as_str(), &grant.uid).await {
        Ok(u) if !u.disabled => u,
        _ => return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "the user cannot sign in"),
    };
    let Some(signer) = &ctx.pool.keys.signer else {
        return oauth_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "the pool has no signing key",
        );
    };
    let now = state.registry.store().now();
    let id = IdClaims {
        iss: &ctx.pool.issuer,
        sub: &user.id,
        aud: &grant.client_id,
        exp: now + 300,
        iat: now,
        auth_time: grant.auth_time,
        nonce: grant.nonce.as_deref(),
        sid: &grant.sso,
        amr: &grant.amr,
        preferred_username: &user.username,
        name: &user.name,
        email: user.email.as_deref(),
        email_verified: user.email_verified,
        groups: &user.groups,
    };
    let access = AccessClaims {
        iss: ctx.pool.issuer.clone(),
        sub: user.id.clone(),
        aud: grant.client_id.clone(),
        exp: now + ACCESS_TOKEN_SECS,
        iat: now,
        sid: grant.sso.clone(),
        jti: sid.hex(),
        scope: "openid profile email groups".into(),
        preferred_username: user.username.clone(),
        name: user.name.clone(),
        email: user.email.clone(),
        groups: user.groups.clone(),
        src: grant.source.clone(),
        mfa: grant.mfa,
    };
    match (signer.sign(&id), signer.sign(&access)) {
        (Ok(id_token), Ok(access_token)) => (
            [(header::CACHE_CONTROL, "no-store")],
            Json(json!({
                "access_token": access_token,
                "token_type": "Bearer",
                "expires_in": ACCESS_TOKEN_SECS,
                "id_token": id_token,
                "scope": access.scope,
            })),
        )
            .into_response(),
        _ => oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "signing failed"),
    }
}

/// The access token's audience, read before verification so the right app is checked.
pub fn unverified_audience(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v.get("aud")?.as_str().map(str::to_owned)
}

pub(super) async fn userinfo(
    State(state): State<PortalState>,
    Extension(ctx): Extension<Ctx>,
    headers: HeaderMap,
) -> Response {
    let unauthorized = || {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer error=\"invalid_token\"")],
        )
            .into_response()
    };
    let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return unauthorized();
    };
    let Some(aud) = unverified_audience(token).filter(|a| ctx.pool.apps.contains_key(a)) else {
        return unauthorized();
    };
    let claims: AccessClaims = match ctx.pool.keys.verifier.verify(token, &ctx.pool.issuer, &aud) {
        Ok(c) => c,
        Err(_) => return unauthorized(),
    };
    let revoked = [&claims.sid, &claims.jti]
        .into_iter()
        .filter_map(|id| SessionId::from_hex(id))
        .any(|s| state.sessions.revocations.is_revoked(&s));
    if revoked {
        return unauthorized();
    }
    Json(json!({
        "sub": claims.sub,
        "preferred_username": claims.preferred_username,
        "name": claims.name,
        "email": claims.email,
        "groups": claims.groups,
    }))
    .into_response()
}
