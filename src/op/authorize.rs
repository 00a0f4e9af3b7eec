//! The authorization endpoint (OpenID Connect Core §3.1.2): which client, which redirect
//! URI (compared byte for byte with the registered ones), what the request asks (`prompt`,
//! `max_age`, hints, step-up), and how the answer goes back (`query` or `form_post`,
//! `state` exactly as sent and only if sent, `iss` always). It shows no page of its own but
//! a refusal: signing in is the portal's, which comes back through [`issue_code`].

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::Deserialize;

use super::clients::Client;
use super::{AuthRequest, Grant};
use crate::config::GrantType;
use crate::registry::AppRoute;
use crate::session::Ticket;
use crate::web::context::Ctx;
use crate::web::pages;
use crate::web::sealed::random_token;
use crate::web::state::{WebState, current_sso};

/// The parameters of an authorization request, from the query (GET) or the form (POST).
/// Unknown parameters are ignored.
#[derive(Deserialize, Default)]
pub struct AuthorizeParams {
    client_id: Option<String>,
    redirect_uri: Option<String>,
    response_type: Option<String>,
    response_mode: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    prompt: Option<String>,
    max_age: Option<String>,
    login_hint: Option<String>,
    /// A source to sign in with at once (`kc_idp_hint` is Keycloak's name for it).
    idp_hint: Option<String>,
    kc_idp_hint: Option<String>,
    id_token_hint: Option<String>,
    acr_values: Option<String>,
    request: Option<String>,
    request_uri: Option<String>,
}

/// The `acr_values` entry that asks for a second factor (step-up).
pub const ACR_MFA: &str = "mfa";

/// What the portal is to do with a valid request.
pub enum Start {
    /// Sign the person in (the login page, pre-filled with `login_hint`; or straight to
    /// the identity source `idp_hint` names).
    Login {
        request: AuthRequest,
        login_hint: String,
        idp_hint: Option<String>,
    },
    /// A live SSO session may answer (the portal may still ask for a second factor).
    Session { sso: Ticket, request: AuthRequest },
    /// Already answered: an error for the client, or a page refusing the link.
    Answered(Response),
}

/// The redirect URIs registered for an app, exactly: its callback on each of its hosts,
/// where people reach them (`listen.public`, or each listener; the port written unless it
/// is the scheme's default), and the ones the config adds.
pub fn registered_redirects(state: &WebState, app: &AppRoute) -> Vec<String> {
    let mut out: Vec<String> = app_origins(state, app)
        .into_iter()
        .map(|o| format!("{o}/.poolgate/callback"))
        .collect();
    out.extend(app.redirect_uris.iter().cloned());
    out
}

/// `scheme://host[:port]` of an app on each of its hosts, where people reach them
/// (`listen.public`, or each listener), the port written unless it is the scheme's default.
pub fn app_origins(state: &WebState, app: &AppRoute) -> Vec<String> {
    let reached = state.registry.snapshot().config.listen.reached_at();
    app.hosts
        .iter()
        .flat_map(|host| reached.iter().map(move |o| o.origin(host.as_str())))
        .collect()
}

/// Validates a request and says what happens next. Until client and redirect URI are
/// known good, a refusal is a page (never a redirect); after, an OAuth error to the client.
pub async fn start(state: &WebState, ctx: &Ctx, headers: &HeaderMap, p: AuthorizeParams) -> Start {
    let bad = |why: &str| {
        Start::Answered(pages::message(
            StatusCode::BAD_REQUEST,
            &ctx.pool,
            "This sign-in link is not valid",
            why,
            None,
        ))
    };
    let Some(client) = p.client_id.as_deref().and_then(|c| Client::find(&ctx.pool, c)) else {
        return bad("It names no application of this pool.");
    };
    let registered = client.redirect_uris(state);
    let Some(redirect_uri) = p.redirect_uri.clone().filter(|r| registered.contains(r)) else {
        return bad("It would send you to an address this application has not registered.");
    };
    let form_post = match p.response_mode.as_deref() {
        None | Some("query") => false,
        Some("form_post") => true,
        Some(_) => {
            return bad("It asks for its answer in a way this sign-in does not support.");
        }
    };
    let now = state.registry.store().now();
    let mut request = AuthRequest {
        client_id: client.id().to_owned(),
        redirect_uri,
        state: p.state.clone(),
        nonce: p.nonce.clone(),
        code_challenge: String::new(),
        scope: p.scope.clone().unwrap_or_else(|| "openid".into()),
        exp: now + 900,
        form_post,
        mfa: p
            .acr_values
            .as_deref()
            .is_some_and(|a| a.split_whitespace().any(|v| v == ACR_MFA)),
        interactive: true,
    };
    let refuse = |request: &AuthRequest, error: &str| Start::Answered(to_client(ctx, request, &[("error", error)]));
    if p.request.is_some() {
        return refuse(&request, "request_not_supported");
    }
    if p.request_uri.is_some() {
        return refuse(&request, "request_uri_not_supported");
    }
    if p.response_type.as_deref() != Some("code") {
        return refuse(&request, "unsupported_response_type");
    }
    if !client.allows(GrantType::AuthorizationCode) {
        return refuse(&request, "unauthorized_client");
    }
    // PKCE (S256 only): required of a public client, honoured when a confidential one sends it.
    let challenge_ok = |c: &String| {
        (43..=128).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
    };
    match (&p.code_challenge, p.code_challenge_method.as_deref()) {
        (None, None) if !client.is_public() => {}
        (Some(c), Some("S256")) if challenge_ok(c) => request.code_challenge = c.clone(),
        _ => return refuse(&request, "invalid_request"),
    }
    let prompt: Vec<&str> = p.prompt.as_deref().unwrap_or("").split_whitespace().collect();
    let none = prompt.contains(&"none");
    if none && prompt.len() > 1 {
        return refuse(&request, "invalid_request");
    }
    request.interactive = !none;
    let max_age = match p.max_age.as_deref().map(str::parse::<i64>) {
        None => None,
        Some(Ok(n)) if n >= 0 => Some(n),
        Some(_) => return refuse(&request, "invalid_request"),
    };
    // A hint must be an ID token of this pool, for one of its clients; it names who the
    // client expects to be signed in.
    let hinted = match p.id_token_hint.as_deref() {
        None => None,
        Some(hint) => match ctx.pool.keys.verifier.verify_hint(hint, &ctx.pool.issuer) {
            Ok(claims)
                if claims["aud"]
                    .as_str()
                    .is_some_and(|a| Client::find(&ctx.pool, a).is_some()) =>
            {
                claims["sub"].as_str().map(str::to_owned)
            }
            _ => return refuse(&request, "invalid_request"),
        },
    };

    let session = current_sso(state, ctx, headers).filter(|sso| {
        // max_age=0 asks for a sign-in now, whatever the session's age.
        let fresh = max_age.is_none_or(|m| m > 0 && now - sso.issued <= m);
        let same = hinted.as_deref().is_none_or(|sub| sub == sso.uid.to_string());
        fresh && same && !prompt.contains(&"login")
    });
    match session {
        Some(sso) => Start::Session { sso, request },
        None if none => refuse(&request, "login_required"),
        None => Start::Login {
            request,
            login_hint: p.login_hint.unwrap_or_default(),
            idp_hint: p.idp_hint.or(p.kc_idp_hint),
        },
    }
}

/// Sends an authorization response (a code, or an error) to the client's registered
/// redirect URI, with `state` if the client sent one and `iss` (RFC 9207): in the query,
/// or as a form the browser posts (`response_mode=form_post`).
pub fn to_client(ctx: &Ctx, request: &AuthRequest, params: &[(&str, &str)]) -> Response {
    let mut all: Vec<(&str, &str)> = params.to_vec();
    if let Some(s) = &request.state {
        all.push(("state", s));
    }
    all.push(("iss", &ctx.pool.issuer));
    if request.form_post {
        return form_post(ctx, &request.redirect_uri, &all);
    }
    let Ok(mut u) = url::Url::parse(&request.redirect_uri) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    u.query_pairs_mut().extend_pairs(all);
    Redirect::to(u.as_str()).into_response()
}

/// The script that posts the form at once; the page's policy allows this script only.
const SUBMIT: &str = "document.forms[0].submit()";

/// OAuth 2.0 Form Post Response Mode: a page whose form posts the answer to the client.
/// Without JavaScript, its button does the same.
fn form_post(ctx: &Ctx, action: &str, fields: &[(&str, &str)]) -> Response {
    let fields: Vec<_> = fields.iter().map(|(k, v)| context! { name => k, value => v }).collect();
    let mut resp = pages::render(
        StatusCode::OK,
        &ctx.pool,
        "form_post.html",
        context! { action => action, fields => fields, script => SUBMIT },
    );
    use base64::Engine;
    let hash = base64::engine::general_purpose::STANDARD
        .encode(ring::digest::digest(&ring::digest::SHA256, SUBMIT.as_bytes()));
    let csp = format!(
        "default-src 'none'; script-src 'sha256-{hash}'; style-src 'unsafe-inline'; form-action {}; frame-ancestors 'none'",
        origin_of(action)
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        resp.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
    }
    resp
}

/// `scheme://host[:port]` of a URL, for a policy naming exactly where a form may post.
fn origin_of(url: &str) -> String {
    url::Url::parse(url)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_else(|_| "'none'".into())
}

/// Issues a single-use code for `request` and sends the browser back to the app with it.
pub async fn issue_code(state: &WebState, ctx: &Ctx, request: &AuthRequest, sso: &Ticket) -> Response {
    let (code, body) = new_code(request, sso);
    let expires = state.registry.store().now() + CODE_SECS;
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
    to_client(ctx, request, &[("code", &code)])
}

/// How long a code may wait to be redeemed.
pub const CODE_SECS: i64 = 60;

/// A new code for this request and session, and what it grants (stored by its hash).
pub fn new_code(request: &AuthRequest, sso: &Ticket) -> (String, String) {
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
        // How the person signed in (RFC 8176; `fed`, as some providers write it, for a
        // sign-in through an identity source).
        amr: match (sso.source.as_str(), sso.mfa) {
            ("local", false) => vec!["pwd".into()],
            ("local", true) => vec!["pwd".into(), "otp".into()],
            (_, false) => vec!["fed".into()],
            (_, true) => vec!["fed".into(), "mfa".into()],
        },
        source: sso.source.clone(),
        mfa: sso.mfa,
        scope: request.scope.clone(),
    };
    let body = serde_json::to_string(&grant).unwrap_or_default();
    (code, body)
}
