//! Signing in to the console: the authorization code flow with PKCE at the console pool's
//! OpenID Provider, over HTTP like any relying party, asking for a second factor
//! (`acr_values=mfa`) and refusing an ID token that does not say one was used.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{AppendHeaders, IntoResponse, Redirect, Response};
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreIdTokenVerifier, CoreJwsSigningAlgorithm, CoreProviderMetadata,
};
use openidconnect::{
    AuthUrl, AuthorizationCode, ClientId, CsrfToken, IssuerUrl, Nonce, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, Scope, TokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};

use super::{Client, Confirm, Posted, SESSION_SECS, Session, console_pool, message, not_set_up, refused};
use crate::admin::AdminState;
use crate::admin::ops::{Operator, Ops};
use crate::op::authorize::ACR_MFA;
use crate::registry::CONSOLE_CLIENT;
use crate::session::cookie::Cookie;
use crate::web::sealed;

/// A sign-in may take this long, second factor included.
const ATTEMPT_SECS: i64 = 600;

#[derive(Serialize, Deserialize)]
struct Attempt {
    state: String,
    nonce: String,
    verifier: String,
    redirect_uri: String,
    exp: i64,
}

/// Where the OP sends the operator back: this listener, under the name they used (one of
/// the registered callbacks; `known_host` has already refused any other).
fn callback_uri(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}/console/callback")
}

async fn discover(issuer: &str) -> Result<CoreProviderMetadata, String> {
    let issuer = IssuerUrl::new(issuer.to_owned()).map_err(|e| e.to_string())?;
    CoreProviderMetadata::discover_async(issuer, &crate::outbound::client())
        .await
        .map_err(|e| e.to_string())
}

fn unavailable(why: &str) -> Response {
    tracing::warn!(
        code = "PG0420",
        error = why,
        "console sign-in could not reach its pool's OpenID Provider"
    );
    message(
        StatusCode::BAD_GATEWAY,
        "Sign-in is not available",
        "The console could not reach its pool's sign-in page. Check that the gateway's listener is up, then try again.",
        None,
    )
}

pub(super) async fn start(State(state): State<AdminState>, headers: HeaderMap) -> Response {
    let Some((_, pool)) = console_pool(&state) else {
        return not_set_up();
    };
    let redirect_uri = callback_uri(&headers);
    let registered = pool
        .clients
        .get(CONSOLE_CLIENT)
        .is_some_and(|c| c.redirect_uris.contains(&redirect_uri));
    if !registered {
        return message(
            StatusCode::BAD_REQUEST,
            "Open the console at its own address",
            "The console signs in only at the addresses of the admin listener: its IP address, localhost, or a name of [admin] hosts.",
            None,
        );
    }
    let metadata = match discover(&pool.issuer).await {
        Ok(m) => m,
        Err(e) => return unavailable(&e),
    };
    let Ok(redirect) = RedirectUrl::new(redirect_uri.clone()) else {
        return unavailable("the callback address is not a URL");
    };
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let client = CoreClient::new(
        ClientId::new(CONSOLE_CLIENT.into()),
        metadata.issuer().clone(),
        metadata.jwks().clone(),
    )
    .set_auth_uri(AuthUrl::from_url(metadata.authorization_endpoint().url().clone()))
    .set_redirect_uri(redirect);
    let (url, csrf, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("groups".into()))
        .add_extra_param("acr_values", ACR_MFA)
        .set_pkce_challenge(challenge)
        .url();
    let attempt = Attempt {
        state: csrf.secret().clone(),
        nonce: nonce.secret().clone(),
        verifier: verifier.secret().clone(),
        redirect_uri,
        exp: state.registry.store().now() + ATTEMPT_SECS,
    };
    let cookie = Cookie::ConsoleLogin.set(
        false,
        &sealed::seal(&pool, "console-login", &attempt),
        Some(ATTEMPT_SECS),
    );
    ([(header::SET_COOKIE, cookie)], Redirect::to(url.as_str())).into_response()
}

#[derive(Deserialize)]
pub(super) struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    iss: Option<String>,
}

pub(super) async fn callback(
    State(state): State<AdminState>,
    Client(client): Client,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let Some((access, pool)) = console_pool(&state) else {
        return not_set_up();
    };
    let store = state.registry.store();
    let now = store.now();
    let attempt = Cookie::ConsoleLogin
        .values(&headers, false)
        .find_map(|v| sealed::open::<Attempt>(&pool, "console-login", v))
        .filter(|a| a.exp > now && sealed::equal(&a.state, q.state.as_deref().unwrap_or_default()));
    let again = |title: &str, text: &str| {
        message(
            StatusCode::BAD_REQUEST,
            title,
            &format!("{text} Open /console to sign in again."),
            None,
        )
    };
    let Some(attempt) = attempt else {
        return again("This sign-in has expired", "It was not started here, or took too long.");
    };
    if q.iss.as_deref().is_some_and(|iss| iss != pool.issuer) {
        return again("Sign-in did not complete", "The answer came from another issuer.");
    }
    if let Some(error) = q.error {
        let error: String = error.chars().filter(char::is_ascii_graphic).take(60).collect();
        return again("Sign-in did not complete", &format!("The pool answered `{error}`."));
    }
    let Some(code) = q.code else {
        return again("Sign-in did not complete", "The answer had no code.");
    };
    let claims = match redeem(&pool.issuer, &attempt, code).await {
        Ok(c) => c,
        Err(e) => {
            tracing::info!(code = "PG0421", error = %e, "console sign-in refused");
            return again("Sign-in did not complete", "The pool's answer could not be verified.");
        }
    };
    let username = claims.username.clone().unwrap_or_else(|| claims.subject.clone());
    let ops = Ops::new(store, Operator::console(&username, client));
    let user = store.user(pool.id.as_str(), &claims.subject).await;
    let allowed = user
        .as_ref()
        .is_ok_and(|u| !u.disabled && u.groups.contains(&access.group));
    if !claims.mfa || !allowed {
        let why = if claims.mfa {
            "not in the console group"
        } else {
            "no second factor"
        };
        ops.audit_refusal(pool.id.as_str(), "console.signin", &claims.subject, why)
            .await;
        return refused(&access, &username);
    }
    ops.audit(pool.id.as_str(), "console.signin", &claims.subject, String::new())
        .await;
    let session = Session {
        user: claims.subject,
        username,
        exp: now + SESSION_SECS,
        csrf: sealed::random_token(32),
        sso: claims.sso,
    };
    let cookie = Cookie::Console.set(false, &sealed::seal(&pool, "console", &session), Some(SESSION_SECS));
    (
        AppendHeaders([
            (header::SET_COOKIE, Cookie::ConsoleLogin.clear(false)),
            (header::SET_COOKIE, cookie),
        ]),
        Redirect::to("/console"),
    )
        .into_response()
}

/// Who the verified ID token names, and whether it says a second factor was used.
struct Verified {
    subject: String,
    username: Option<String>,
    mfa: bool,
    /// The operator's session at the pool (`sid`), ended when they sign out here.
    sso: Option<String>,
}

/// The `sid` of an ID token already verified (the crate's claims type has no field for it).
fn session_id(jwt: &str) -> Option<String> {
    let claims = crate::crypto::jwt::unverified_claims(jwt)?;
    claims.get("sid")?.as_str().map(str::to_owned)
}

/// Redeems the code (PKCE) and verifies the ID token: signature against the pool's
/// published keys, `iss`, `aud`, `exp`, `nonce`.
async fn redeem(issuer: &str, attempt: &Attempt, code: String) -> Result<Verified, String> {
    let metadata = discover(issuer).await?;
    let token_url = metadata
        .token_endpoint()
        .cloned()
        .ok_or("the OP has no token endpoint")?;
    let client = CoreClient::new(
        ClientId::new(CONSOLE_CLIENT.into()),
        metadata.issuer().clone(),
        metadata.jwks().clone(),
    )
    .set_token_uri(TokenUrl::from_url(token_url.url().clone()))
    .set_redirect_uri(RedirectUrl::new(attempt.redirect_uri.clone()).map_err(|e| e.to_string())?);
    let http = crate::outbound::client();
    let response = client
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(PkceCodeVerifier::new(attempt.verifier.clone()))
        .request_async(&http)
        .await
        .map_err(|e| format!("the code was not redeemed: {e}"))?;
    let id_token = response.id_token().ok_or("no ID token")?;
    let verifier: CoreIdTokenVerifier = client.id_token_verifier().set_allowed_algs([
        CoreJwsSigningAlgorithm::EcdsaP256Sha256,
        CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    ]);
    let claims = id_token
        .claims(&verifier, &Nonce::new(attempt.nonce.clone()))
        .map_err(|e| e.to_string())?;
    Ok(Verified {
        subject: claims.subject().to_string(),
        username: claims.preferred_username().map(|u| u.to_string()),
        mfa: claims.auth_context_ref().is_some_and(|a| a.as_str() == ACR_MFA),
        sso: session_id(&id_token.to_string()),
    })
}

/// Ends the console session and the operator's session at the console pool with it (as
/// signing out of an app through the pool's end-session endpoint would), on every node:
/// signing out of the console is not left half done in a shared browser.
pub(super) async fn signout(State(state): State<AdminState>, Posted(signed, _): Posted<Confirm>) -> Response {
    if let (Some(sso), Some((access, _))) = (&signed.sso, console_pool(&state)) {
        // Already ended (expired, or revoked elsewhere) is as good as ended here.
        let _ = state
            .ended(signed.ops(&state).revoke_session(access.pool.as_str(), sso).await)
            .await;
    }
    (
        [(header::SET_COOKIE, Cookie::Console.clear(false))],
        message(
            StatusCode::OK,
            "Signed out of the console",
            "Open /console to sign in again.",
            None,
        ),
    )
        .into_response()
}
