//! `GET /federation/{source}/start`: the login page's "Sign in with …" button. Checks the
//! app accepts the source, then sends the person to the issuer's authorization endpoint.

use axum::extract::{Extension, Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use openidconnect::core::{CoreAuthenticationFlow, CoreClient};
use openidconnect::{
    AuthUrl, ClientId, CsrfToken, IssuerUrl, Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
};
use serde::Deserialize;

use super::attempt::{ATTEMPT_SECS, Attempt};
use super::upstream::Upstream;
use super::{FederationError, source_name};
use crate::op::AuthRequest;
use crate::web::context::Ctx;
use crate::web::sealed::{open, random_token};
use crate::web::state::WebState;

#[derive(Deserialize)]
pub(super) struct StartQuery {
    /// The application's authorization request, sealed by the login page.
    #[serde(default)]
    request: String,
}

pub(super) async fn start(
    State(state): State<WebState>,
    Extension(ctx): Extension<Ctx>,
    Path(source): Path<String>,
    Query(q): Query<StartQuery>,
) -> Response {
    let now = state.registry.store().now();
    let request = (!q.request.is_empty())
        .then(|| open::<AuthRequest>(&ctx.pool, "authreq", &q.request))
        .flatten()
        .filter(|r| r.exp > now);
    if !q.request.is_empty() && request.is_none() {
        return FederationError::Attempt.page(&ctx, &source_name(&ctx, &source));
    }
    sign_in_with(&state, &ctx, &source, request).await
}

/// Sends the person to `source` for this request (the login page's button, an
/// `idp_hint`, home-realm discovery), or shows why not.
pub async fn sign_in_with(state: &WebState, ctx: &Ctx, source: &str, request: Option<AuthRequest>) -> Response {
    match begin(state, ctx, source, request).await {
        Ok(resp) => resp,
        Err(e) => {
            tracing::info!(code = "PG0703", pool = %ctx.pool.id, source, error = %e, "federated sign-in not started");
            e.page(ctx, &source_name(ctx, source))
        }
    }
}

async fn begin(
    state: &WebState,
    ctx: &Ctx,
    source: &str,
    request: Option<AuthRequest>,
) -> Result<Response, FederationError> {
    let now = state.registry.store().now();
    let up = Upstream::resolve(state, &ctx.pool, source)?;
    super::callback::admitted(state, ctx, &up, request.as_ref())?;
    let provider = state.federation.of(&up);
    let metadata = provider.metadata().await?;

    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let issuer = IssuerUrl::new(up.issuer.clone()).map_err(|e| FederationError::Unavailable(e.to_string()))?;
    let redirect =
        RedirectUrl::new(up.redirect_uri.clone()).map_err(|e| FederationError::Unavailable(e.to_string()))?;
    let client = CoreClient::new(
        ClientId::new(up.client_id.clone()),
        issuer,
        provider.keys().await.as_ref().clone(),
    )
    .set_auth_uri(AuthUrl::from_url(metadata.authorization_endpoint().url().clone()))
    .set_redirect_uri(redirect);
    let (csrf, nonce) = (random_token(32), random_token(32));
    let (csrf2, nonce2) = (csrf.clone(), nonce.clone());
    let mut auth = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            move || CsrfToken::new(csrf2),
            move || Nonce::new(nonce2),
        )
        .set_pkce_challenge(challenge);
    for s in up.scopes.iter().filter(|s| *s != "openid") {
        auth = auth.add_scope(Scope::new(s.clone()));
    }
    for (k, v) in &up.authorize_params {
        auth = auth.add_extra_param(k.clone(), v.clone());
    }
    let (url, _, _) = auth.url();
    let attempt = Attempt {
        source: up.id.to_string(),
        issuer: up.issuer.clone(),
        state: csrf,
        nonce,
        verifier: PkceCodeVerifier::secret(&verifier).clone(),
        request,
        exp: now + ATTEMPT_SECS,
    };
    Ok(([(header::SET_COOKIE, attempt.cookie(ctx))], Redirect::to(url.as_str())).into_response())
}
