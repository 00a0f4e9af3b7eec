//! `GET /federation/{source}/callback`: the issuer sends the person back. The attempt must
//! be this browser's, for this source, with this `state`, and not spent; the issuer must
//! name itself (RFC 9207) when it says it does; the code is redeemed with the PKCE
//! verifier; the ID token must verify against this issuer's keys only, with the source's
//! algorithms, this client as audience and authorised party, the attempt's `nonce`, and a
//! sane `iat`/`exp`. Then the person is found by their link, or [`first_login`] decides.

use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{AppendHeaders, IntoResponse, Response};
use openidconnect::core::{CoreClient, CoreIdToken, CoreIdTokenClaims, CoreIdTokenVerifier, CoreJsonWebKeySet};
use openidconnect::{
    AccessToken, AuthType, AuthorizationCode, ClientId, ClientSecret, IssuerUrl, Nonce, OAuth2TokenResponse,
    PkceCodeVerifier, RedirectUrl, TokenUrl, UserInfoUrl,
};
use serde::Deserialize;

use super::attempt::{ATTEMPT_SECS, Attempt};
use super::challenge::PendingLink;
use super::first_login::{self, Resolved, Upstreamed};
use super::upstream::{Metadata, Provider, Upstream};
use super::{FederationError, source_name};
use crate::op::AuthRequest;
use crate::op::signin::{Proof, UpstreamIdentity, complete};
use crate::session::cookie::Cookie;
use crate::web::context::Ctx;
use crate::web::state::{WebState, audit};

/// How far an ID token's `iat` may be in the future (clock skew), or in the past.
const IAT_SKEW_SECS: i64 = 60;
const IAT_MAX_AGE_SECS: i64 = ATTEMPT_SECS;

#[derive(Deserialize)]
pub(super) struct CallbackQuery {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

pub(super) async fn callback(
    State(state): State<WebState>,
    Extension(ctx): Extension<Ctx>,
    Path(source): Path<String>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let name = source_name(&ctx, &source);
    let clear = AppendHeaders([(header::SET_COOKIE, Cookie::Login.clear(ctx.tls))]);
    match finish(&state, &ctx, &headers, &source, q).await {
        // The challenge page sets the login cookie anew (the pending link).
        Ok(Finished::Challenge(resp)) => resp,
        Ok(Finished::SignedIn(resp)) => (clear, resp).into_response(),
        Err(e) => {
            tracing::info!(code = "PG0704", pool = %ctx.pool.id, source, error = %e, "federated sign-in refused");
            audit(
                &state,
                &ctx,
                "anonymous",
                "federation.signin",
                &source,
                "denied",
                format!("reason={e}"),
            )
            .await;
            (clear, e.page(&ctx, &name)).into_response()
        }
    }
}

enum Finished {
    SignedIn(Response),
    Challenge(Response),
}

async fn finish(
    state: &WebState,
    ctx: &Ctx,
    headers: &HeaderMap,
    source: &str,
    q: CallbackQuery,
) -> Result<Finished, FederationError> {
    let store = state.registry.store();
    let now = store.now();
    let given_state = q.state.as_deref().unwrap_or_default();
    let attempt = Attempt::find(ctx, headers, source, given_state, now).ok_or(FederationError::Attempt)?;
    let (up, claims, mut upstream) = checked_redeem(state, ctx, source, &attempt, q).await?;
    // Single use on every node, and nothing of this pool written before the state is
    // spent: a returning person's state is spent in the commit that opens their session;
    // a first login spends it now, before it writes a user or a link. (A replay's code
    // is already spent at the issuer, too.)
    let linked = store
        .user_by_link(ctx.pool.id.as_str(), up.id.as_str(), &claims.issuer, &claims.subject)
        .await
        .map_err(|_| FederationError::Store)?;
    if linked.is_some() {
        upstream.spend_state = Some((attempt.state.clone(), attempt.exp));
    } else if !store
        .spend(ctx.pool.id.as_str(), "federation-state", &attempt.state, attempt.exp)
        .await
        .map_err(|_| FederationError::Store)?
    {
        return Err(FederationError::Attempt);
    }
    let request = attempt.request.filter(|r| r.exp > now);
    let resolved = match linked {
        Some(user) => Resolved::User(Box::new(user)),
        None => first_login::resolve(state, ctx, &up, &claims).await?,
    };
    let (user, made) = match resolved {
        Resolved::User(user) => (*user, false),
        Resolved::Made(user) => (*user, true),
        Resolved::Challenge { collision } => {
            let pending = PendingLink::new(&up, claims, &upstream, collision, request, now);
            return Ok(Finished::Challenge(pending.page(ctx, headers)));
        }
    };
    if user.disabled {
        return Err(FederationError::NoAccount("this account is disabled".into()));
    }
    let user = first_login::sync(state, ctx, &up, &claims, user, made).await;
    Ok(Finished::SignedIn(
        complete(
            state,
            ctx,
            &user,
            Proof::Source {
                id: up.id.as_str(),
                mfa: claims.trusted_mfa(&up.trust_mfa),
                upstream: &upstream,
            },
            request,
            None,
        )
        .await,
    ))
}

/// The response checked (issuer, error, code), the source still admitting this request,
/// and the code redeemed.
async fn checked_redeem(
    state: &WebState,
    ctx: &Ctx,
    source: &str,
    attempt: &Attempt,
    q: CallbackQuery,
) -> Result<(Upstream, Upstreamed, UpstreamIdentity), FederationError> {
    let up = Upstream::resolve(state, &ctx.pool, source)?;
    if up.issuer != attempt.issuer {
        return Err(FederationError::Attempt);
    }
    let provider = state.federation.of(&up);
    let metadata = provider.metadata().await?;
    // RFC 9207: an issuer that names itself must name itself right; one that says it
    // always does must have.
    match q.iss.as_deref() {
        Some(iss) if iss != up.issuer => {
            return Err(FederationError::Invalid(format!(
                "the response came from issuer `{iss}`"
            )));
        }
        None if metadata
            .additional_metadata()
            .authorization_response_iss_parameter_supported
            == Some(true) =>
        {
            return Err(FederationError::Invalid("the response did not name its issuer".into()));
        }
        _ => {}
    }
    if let Some(error) = q.error {
        return Err(FederationError::Refused(error.chars().take(100).collect()));
    }
    let code = q.code.ok_or_else(|| FederationError::Invalid("no code".into()))?;
    admitted(state, ctx, &up, attempt.request.as_ref())?;
    let now = state.registry.store().now();
    let (claims, mut upstream) = redeem(&up, &provider, &metadata, code, attempt, now).await?;
    upstream.id_token = upstream
        .id_token
        .map(|token| crate::web::sealed::seal(&ctx.pool, super::signout::ID_TOKEN, &token));
    Ok((up, claims, upstream))
}

/// Whether the pool may federate (its plan) and the application asked for accepts this
/// source. Checked when the person leaves and again when they come back.
pub(super) fn admitted(
    state: &WebState,
    ctx: &Ctx,
    up: &Upstream,
    request: Option<&AuthRequest>,
) -> Result<(), FederationError> {
    let snapshot = state.registry.snapshot();
    let plan_ok = snapshot
        .config
        .pools
        .iter()
        .find(|p| p.id == ctx.pool.id)
        .is_some_and(|p| p.plan.limits().federation);
    if !plan_ok {
        return Err(FederationError::NotAllowed);
    }
    if !super::accepts(&ctx.pool, request, up.id.as_str()) {
        return Err(FederationError::NotAllowed);
    }
    Ok(())
}

/// Redeems the code and validates the ID token; adds what UserInfo says when the issuer
/// has it (the token's `sub` must match).
async fn redeem(
    up: &Upstream,
    provider: &Provider,
    metadata: &Metadata,
    code: String,
    attempt: &Attempt,
    now: i64,
) -> Result<(Upstreamed, UpstreamIdentity), FederationError> {
    let invalid = |e: &dyn std::fmt::Display| FederationError::Invalid(e.to_string());
    let issuer = IssuerUrl::new(up.issuer.clone()).map_err(|e| invalid(&e))?;
    let token_url = metadata
        .token_endpoint()
        .cloned()
        .ok_or_else(|| FederationError::Unavailable("it has no token endpoint".into()))?;
    let mut client = CoreClient::new(
        ClientId::new(up.client_id.clone()),
        issuer.clone(),
        provider.keys().await.as_ref().clone(),
    )
    .set_token_uri(TokenUrl::from_url(token_url.url().clone()))
    .set_redirect_uri(RedirectUrl::new(up.redirect_uri.clone()).map_err(|e| invalid(&e))?);
    if let Some(secret) = &up.client_secret {
        client = client.set_client_secret(ClientSecret::new(secret.clone()));
        let methods = metadata.token_endpoint_auth_methods_supported();
        let basic = methods.is_none_or(|m| m.iter().any(|x| x.as_ref() == "client_secret_basic"));
        if !basic {
            client = client.set_auth_type(AuthType::RequestBody);
        }
    }
    let response = client
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(PkceCodeVerifier::new(attempt.verifier.clone()))
        .request_async(provider.http())
        .await
        .map_err(|e| FederationError::Refused(format!("the code was not redeemed: {}", describe(&e))))?;
    let id_token: &CoreIdToken = response
        .extra_fields()
        .id_token()
        .ok_or_else(|| FederationError::Invalid("no ID token".into()))?;
    let nonce = Nonce::new(attempt.nonce.clone());
    let claims = verify(up, &issuer, provider, metadata, id_token, &nonce, now).await?;
    // The claims are read from the verified token as sent: a JSON boolean is a boolean,
    // and nothing else is (`"true"` is not the provider vouching for an address).
    let payload = verified_payload(id_token);
    let mut found = Upstreamed::from_claims(&up.issuer, claims.subject().as_str(), &payload, &up.claims);
    // UserInfo only when the ID token carries none of the person's claims (an OP that
    // releases them only there, as oidc-provider does by default), or no groups the map
    // needs; an OP that puts them in the ID token puts there all it releases.
    let names = &up.claims;
    let carried = [&names.email, &names.name, &names.username, &names.groups]
        .iter()
        .any(|n| payload.get(n.as_str()).is_some());
    let missing = !carried || (!up.group_map.is_empty() && found.groups.is_none());
    if missing && let Some(endpoint) = metadata.userinfo_endpoint() {
        match userinfo(provider, endpoint, response.access_token(), claims.subject().as_str()).await {
            Ok(info) => found.add_userinfo(&info, &up.claims),
            Err(e) => {
                tracing::info!(code = "PG0705", source = %up.id, error = %e, "userinfo not read; the ID token's claims are used")
            }
        }
    }
    let upstream = UpstreamIdentity {
        issuer: up.issuer.clone(),
        subject: found.subject.clone(),
        sid: payload.get("sid").and_then(|v| v.as_str()).map(str::to_owned),
        id_token: Some(id_token.to_string()),
        spend_state: None,
    };
    Ok((found, upstream))
}

/// The payload of a token that has just been verified, as JSON.
fn verified_payload(id_token: &CoreIdToken) -> serde_json::Value {
    crate::crypto::jwt::unverified_claims(&id_token.to_string()).unwrap_or_default()
}

/// The ID token, verified: its signature with ring against this issuer's keys and the
/// source's algorithms ([`Provider::signing_key`]), then every claim by openidconnect —
/// `iss`, `aud` (this client, and no untrusted other), `azp`, `exp`, `iat` (not ahead, not
/// old) and the attempt's `nonce`. The crate is told not to check the signature only
/// because it was just checked, and a token whose signature fails never reaches it.
async fn verify(
    up: &Upstream,
    issuer: &IssuerUrl,
    provider: &Provider,
    metadata: &Metadata,
    id_token: &CoreIdToken,
    nonce: &Nonce,
    now: i64,
) -> Result<CoreIdTokenClaims, FederationError> {
    let text = id_token.to_string();
    let (key, alg) = provider
        .signing_key(&text, &up.algorithms, metadata.jwks_uri())
        .await
        .map_err(FederationError::Invalid)?;
    let mut signature_only = jsonwebtoken::Validation::new(alg);
    signature_only.validate_exp = false;
    signature_only.validate_aud = false;
    signature_only.required_spec_claims.clear();
    jsonwebtoken::decode::<serde_json::Value>(&text, &key, &signature_only)
        .map_err(|e| FederationError::Invalid(format!("its signature: {e}")))?;
    let verifier = CoreIdTokenVerifier::new_public_client(
        ClientId::new(up.client_id.clone()),
        issuer.clone(),
        CoreJsonWebKeySet::new(Vec::new()),
    )
    .set_allowed_algs(up.algorithms.clone())
    .insecure_disable_signature_check()
    .set_issue_time_verifier_fn(move |iat| {
        let iat = iat.timestamp();
        if iat > now + IAT_SKEW_SECS {
            Err(format!("issued {}s in the future", iat - now))
        } else if iat < now - IAT_MAX_AGE_SECS {
            Err(format!("issued {}s ago", now - iat))
        } else {
            Ok(())
        }
    });
    id_token
        .claims(&verifier, nonce)
        .cloned()
        .map_err(|e| FederationError::Invalid(e.to_string()))
}

/// The issuer's UserInfo for this token, as JSON: its `sub` must be the ID token's.
async fn userinfo(
    provider: &Provider,
    endpoint: &UserInfoUrl,
    token: &AccessToken,
    subject: &str,
) -> Result<serde_json::Value, String> {
    let resp = provider
        .http()
        .get(endpoint.url().clone())
        .bearer_auth(token.secret())
        .header(header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| describe(&e))?;
    if !resp.status().is_success() {
        return Err(format!("it answered {}", resp.status()));
    }
    let body = resp.bytes().await.map_err(|e| describe(&e))?;
    let info: serde_json::Value = serde_json::from_slice(&body).map_err(|e| format!("not JSON: {e}"))?;
    if info.get("sub").and_then(|s| s.as_str()) != Some(subject) {
        return Err("its sub is not the ID token's".into());
    }
    Ok(info)
}

fn describe<E: std::error::Error>(e: &E) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out.chars().take(300).collect()
}
