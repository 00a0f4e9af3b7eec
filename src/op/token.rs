//! The token endpoint: a code redeemed once for an ID token and an access token.

use axum::Json;
use axum::extract::rejection::FormRejection;
use axum::extract::{Extension, Form, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::error::{OAuthError, no_store};
use super::{Grant, pkce_challenge};
use crate::registry::PoolRoute;
use crate::session::SessionId;
use crate::store::User;
use crate::store::{CodeUse, StoreError};
use crate::web::context::Ctx;
use crate::web::sealed::equal;
use crate::web::state::WebState;

/// Why a code was not honoured (OAuth `invalid_grant`).
#[derive(Debug)]
pub struct InvalidGrant(pub &'static str);

/// A redeemed code: what it grants, and the app session its tokens (or cookie) belong to.
pub struct Redeemed {
    pub grant: Grant,
    pub sid: SessionId,
    pub expires: i64,
}

/// Redeems a code once, checking client, redirect URI, PKCE and that the SSO session it
/// came from still stands, and records the app session it opens. A code presented again
/// revokes what its first redemption gave (RFC 6749 §4.1.2).
pub async fn redeem(
    state: &WebState,
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
async fn revoke_replayed(state: &WebState, pool: &PoolRoute, first: SessionId) {
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

/// Claims of an access token of this pool (RFC 9068, `typ: at+jwt`), also what the
/// gateway's apps identify a bearer-token request by.
#[derive(Debug, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    /// The SSO session the token was issued in.
    pub sid: String,
    /// The grant (app session) this token was issued in: a replayed code revokes it.
    #[serde(default)]
    pub jti: String,
    #[serde(default)]
    pub client_id: String,
    pub scope: String,
    pub preferred_username: String,
    pub name: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub email_verified: bool,
    #[serde(default)]
    pub groups: Vec<String>,
    pub src: String,
    pub mfa: bool,
}

pub const ACCESS_TOKEN_SECS: i64 = 600;
const ID_TOKEN_SECS: i64 = 300;

/// The scopes this OP knows; others asked for are ignored (OpenID Connect Core §3.1.2.1).
const SCOPES: [&str; 4] = ["openid", "profile", "email", "groups"];

/// The scopes granted for what was asked, in a fixed order.
pub fn granted_scope(asked: &str) -> String {
    let asked: Vec<&str> = asked.split_whitespace().collect();
    SCOPES
        .into_iter()
        .filter(|s| asked.contains(s))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The profile claims a scope releases, absent ones omitted (never `null` or `""`).
pub fn released_claims(
    scope: &str,
    username: &str,
    name: &str,
    email: Option<&str>,
    email_verified: bool,
    groups: &[String],
) -> Map<String, Value> {
    let has = |s: &str| scope.split_whitespace().any(|x| x == s);
    let mut out = Map::new();
    if has("profile") {
        out.insert("preferred_username".into(), json!(username));
        if !name.is_empty() {
            out.insert("name".into(), json!(name));
        }
    }
    if has("email")
        && let Some(email) = email.filter(|e| !e.is_empty())
    {
        out.insert("email".into(), json!(email));
        out.insert("email_verified".into(), json!(email_verified));
    }
    if has("groups") {
        out.insert("groups".into(), json!(groups));
    }
    out
}

#[derive(Deserialize)]
pub struct TokenForm {
    #[serde(default)]
    grant_type: String,
    code: Option<String>,
    redirect_uri: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    code_verifier: Option<String>,
}

/// Who the client says it is: from HTTP Basic (RFC 6749 §2.3.1, each part form-encoded)
/// or the body.
struct ClientAuth {
    id: String,
    secret: Option<String>,
}

fn client_auth(headers: &HeaderMap, form: &TokenForm) -> Result<ClientAuth, OAuthError> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"));
    let from_header = match basic {
        None => None,
        Some((_, b64)) => {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| OAuthError::invalid_request("the Basic credentials cannot be read"))?;
            let (id, secret) = decoded
                .split_once(':')
                .ok_or_else(|| OAuthError::invalid_request("the Basic credentials cannot be read"))?;
            let unform = |s: &str| {
                url::form_urlencoded::parse(format!("x={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            };
            Some(ClientAuth {
                id: unform(id),
                secret: Some(unform(secret)),
            })
        }
    };
    match (from_header, &form.client_id) {
        (Some(h), Some(body)) if &h.id != body => Err(OAuthError::invalid_request(
            "client_id differs from the authenticated client",
        )),
        (Some(_), _) if form.client_secret.is_some() => Err(OAuthError::invalid_request(
            "one client authentication method at a time",
        )),
        (Some(h), _) => Ok(h),
        (None, Some(id)) => Ok(ClientAuth {
            id: id.clone(),
            secret: form.client_secret.clone(),
        }),
        (None, None) => Err(OAuthError::invalid_request("client_id is required")),
    }
}

/// `POST /oidc/token`. Every error is RFC 6749 §5.2 JSON, a malformed body included.
pub async fn token(
    State(state): State<WebState>,
    Extension(ctx): Extension<Ctx>,
    headers: HeaderMap,
    form: Result<Form<TokenForm>, FormRejection>,
) -> Response {
    match token_inner(&state, &ctx, &headers, form).await {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    }
}

async fn token_inner(
    state: &WebState,
    ctx: &Ctx,
    headers: &HeaderMap,
    form: Result<Form<TokenForm>, FormRejection>,
) -> Result<Response, OAuthError> {
    let Form(f) =
        form.map_err(|_| OAuthError::invalid_request("the body must be a form (application/x-www-form-urlencoded)"))?;
    let client = client_auth(headers, &f)?;
    let realm = ctx.pool.id.as_str();
    // The gateway's apps are public clients (PKCE, no secret): a secret offered for one
    // is not how it is registered to authenticate.
    if !ctx.pool.apps.contains_key(&client.id) {
        return Err(OAuthError::invalid_client("unknown client", realm));
    }
    if client.secret.is_some() {
        return Err(OAuthError::invalid_client(
            "this client is public: it authenticates with PKCE, not a secret",
            realm,
        ));
    }
    match f.grant_type.as_str() {
        "authorization_code" => {}
        "" => return Err(OAuthError::invalid_request("grant_type is required")),
        _ => return Err(OAuthError::unsupported_grant_type("only authorization_code")),
    }
    let (Some(code), Some(redirect_uri), Some(verifier)) = (f.code, f.redirect_uri, f.code_verifier) else {
        return Err(OAuthError::invalid_request(
            "code, redirect_uri and code_verifier are required",
        ));
    };
    let Redeemed { grant, sid, .. } = redeem(state, &ctx.pool, &code, &client.id, &redirect_uri, &verifier)
        .await
        .map_err(|InvalidGrant(why)| OAuthError::invalid_grant(why))?;
    let user = match state.registry.store().user(ctx.pool.id.as_str(), &grant.uid).await {
        Ok(u) if !u.disabled => u,
        _ => return Err(OAuthError::invalid_grant("the user cannot sign in")),
    };
    let now = state.registry.store().now();
    let scope = granted_scope(&grant.scope);
    let tokens = Tokens::issue(ctx, &user, &grant, &sid.hex(), &scope, now)?;
    let mut resp = Json(json!({
        "access_token": tokens.access,
        "token_type": "Bearer",
        "expires_in": ACCESS_TOKEN_SECS,
        "id_token": tokens.id,
        "scope": scope,
    }))
    .into_response();
    no_store(&mut resp);
    Ok(resp)
}

/// An ID token and an access token for one grant.
struct Tokens {
    id: String,
    access: String,
}

impl Tokens {
    fn issue(ctx: &Ctx, user: &User, grant: &Grant, jti: &str, scope: &str, now: i64) -> Result<Tokens, OAuthError> {
        let Some(signer) = &ctx.pool.keys.signer else {
            return Err(OAuthError::server_error("the pool has no signing key"));
        };
        let mut id = json!({
            "iss": ctx.pool.issuer,
            "sub": user.id,
            "aud": grant.client_id,
            "azp": grant.client_id,
            "exp": now + ID_TOKEN_SECS,
            "iat": now,
            "auth_time": grant.auth_time,
            "sid": grant.sso,
            "amr": grant.amr,
        });
        if let (Some(nonce), Some(map)) = (&grant.nonce, id.as_object_mut()) {
            map.insert("nonce".into(), json!(nonce));
        }
        if grant.mfa
            && let Some(map) = id.as_object_mut()
        {
            map.insert("acr".into(), json!(super::authorize::ACR_MFA));
        }
        let released = released_claims(
            scope,
            &user.username,
            &user.name,
            user.email.as_deref(),
            user.email_verified,
            &user.groups,
        );
        if let Some(map) = id.as_object_mut() {
            map.extend(released);
        }
        let access = AccessClaims {
            iss: ctx.pool.issuer.clone(),
            sub: user.id.clone(),
            aud: grant.client_id.clone(),
            exp: now + ACCESS_TOKEN_SECS,
            iat: now,
            sid: grant.sso.clone(),
            jti: jti.to_owned(),
            client_id: grant.client_id.clone(),
            scope: scope.to_owned(),
            preferred_username: user.username.clone(),
            name: user.name.clone(),
            email: user.email.clone(),
            email_verified: user.email_verified,
            groups: user.groups.clone(),
            src: grant.source.clone(),
            mfa: grant.mfa,
        };
        match (signer.sign(&id), signer.sign_typed("at+jwt", &access)) {
            (Ok(id), Ok(access)) => Ok(Tokens { id, access }),
            _ => Err(OAuthError::server_error("signing failed")),
        }
    }
}
