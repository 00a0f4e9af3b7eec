//! The token endpoint (RFC 6749 §3.2): a code redeemed once, a refresh token rotated on
//! every use, client credentials for a service; every answer `no-store`, every error
//! RFC 6749 §5.2 JSON.

use axum::Json;
use axum::extract::rejection::FormRejection;
use axum::extract::{Extension, Form, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::Grant;
use super::client_auth::{Presented, authenticate};
use super::clients::Client;
use super::code::{InvalidGrant, Redeemed, redeem};
use super::error::{OAuthError, no_store};
use crate::config::{GrantType, SigningAlg};
use crate::session::{Revocations, SessionId};
use crate::store::{RefreshRecord, RefreshUse, User};
use crate::web::context::Ctx;
use crate::web::sealed::random_token;
use crate::web::state::WebState;

/// Claims of an access token of this pool (RFC 9068, `typ: at+jwt`), also what the
/// gateway's apps identify a bearer-token request by.
#[derive(Debug, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    /// The SSO session the token was issued in (empty for a service's own token).
    pub sid: String,
    /// The grant (app session) this token was issued in: a replayed code, a revoked
    /// refresh family or RFC 7009 revocation ends it.
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

impl AccessClaims {
    /// What the token lives by: the SSO session it was issued in and its grant. Ending
    /// either ends the token.
    pub fn sessions(&self) -> [Option<SessionId>; 2] {
        [SessionId::from_hex(&self.sid), SessionId::from_hex(&self.jti)]
    }

    pub fn revoked(&self, revocations: &Revocations) -> bool {
        self.sessions().iter().flatten().any(|s| revocations.is_revoked(s))
    }
}

/// How long an access token of a gateway app lives.
pub const ACCESS_TOKEN_SECS: i64 = 600;
const ID_TOKEN_SECS: i64 = 300;

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
    refresh_token: Option<String>,
    scope: Option<String>,
    /// RFC 8707: the app a service's token is for (its id, or a URL on one of its hosts).
    resource: Option<String>,
}

/// `POST /oidc/token`.
pub async fn token(
    State(state): State<WebState>,
    Extension(ctx): Extension<Ctx>,
    headers: HeaderMap,
    form: Result<Form<TokenForm>, FormRejection>,
) -> Response {
    let answer = async {
        let Form(f) = form
            .map_err(|_| OAuthError::invalid_request("the body must be a form (application/x-www-form-urlencoded)"))?;
        let presented = Presented {
            client_id: f.client_id.as_deref(),
            client_secret: f.client_secret.as_deref(),
        };
        let client = authenticate(&state, &ctx, &headers, presented).await?;
        let grant = match f.grant_type.as_str() {
            "" => return Err(OAuthError::invalid_request("grant_type is required")),
            other => GrantType::parse(other).ok_or_else(|| {
                OAuthError::unsupported_grant_type("authorization_code, refresh_token or client_credentials")
            })?,
        };
        if !client.allows(grant) {
            return Err(OAuthError::unauthorized_client(format!(
                "this client may not use {}",
                f.grant_type
            )));
        }
        match grant {
            GrantType::AuthorizationCode => authorization_code(&state, &ctx, &client, f).await,
            GrantType::RefreshToken => refresh(&state, &ctx, &client, f).await,
            GrantType::ClientCredentials => client_credentials(&state, &ctx, &client, f),
        }
    };
    match answer.await {
        Ok(body) => {
            let mut resp = Json(body).into_response();
            no_store(&mut resp);
            resp
        }
        Err(e) => e.into_response(),
    }
}

async fn authorization_code(state: &WebState, ctx: &Ctx, client: &Client, f: TokenForm) -> Result<Value, OAuthError> {
    let (Some(code), Some(redirect_uri)) = (f.code, f.redirect_uri) else {
        return Err(OAuthError::invalid_request("code and redirect_uri are required"));
    };
    let Redeemed { grant, sid, .. } = redeem(
        state,
        &ctx.pool,
        &code,
        client.id(),
        &redirect_uri,
        f.code_verifier.as_deref(),
        |g| has_offline(&client.grant_scope(&g.scope)),
    )
    .await
    .map_err(|InvalidGrant(why)| OAuthError::invalid_grant(why))?;
    let user = live_user(state, ctx, &grant.uid).await?;
    let now = state.registry.store().now();
    let scope = client.grant_scope(&grant.scope);
    let offline = has_offline(&scope);
    let issue = Issue {
        client,
        user: &user,
        grant: &grant,
        jti: &sid.hex(),
        scope: &scope,
        offline,
    };
    let mut body = issue.tokens(ctx, now)?;
    if client.allows(GrantType::RefreshToken) {
        let mut expires = now + client.refresh_token_secs();
        if !offline {
            expires = expires.min(grant.sso_expires);
        }
        let record = RefreshRecord {
            family: sid.hex(),
            client_id: client.id().to_owned(),
            sso_sid: grant.sso.clone(),
            body: serde_json::to_string(&Grant {
                scope: scope.clone(),
                ..grant
            })
            .unwrap_or_default(),
            offline,
            expires_at: expires,
        };
        body["refresh_token"] = json!(new_refresh(state, ctx, &record).await?);
    }
    Ok(body)
}

/// A refresh token is spent and replaced (rotation); a spent one presented again revokes
/// its family and the access tokens of its grant.
async fn refresh(state: &WebState, ctx: &Ctx, client: &Client, f: TokenForm) -> Result<Value, OAuthError> {
    let Some(token) = f.refresh_token else {
        return Err(OAuthError::invalid_request("refresh_token is required"));
    };
    let store = state.registry.store();
    let pool = ctx.pool.id.as_str();
    let record = match store.take_refresh(pool, &token).await {
        Ok(RefreshUse::Fresh(r)) if r.client_id == client.id() => r,
        Ok(RefreshUse::Fresh(_)) => return Err(OAuthError::invalid_grant("the token was issued to another client")),
        Ok(RefreshUse::Replayed { family, .. }) => {
            if let Some(grant) = SessionId::from_hex(&family) {
                state
                    .sessions
                    .revocations
                    .revoke(grant, store.now() + client.access_token_secs());
                let _ = store.revoke_app_session(pool, &family).await;
            }
            tracing::warn!(
                code = "PG0510",
                pool,
                client = client.id(),
                "a spent refresh token was presented again; its family is revoked"
            );
            return Err(OAuthError::invalid_grant("unknown, used or expired refresh token"));
        }
        Ok(RefreshUse::Unknown) => return Err(OAuthError::invalid_grant("unknown, used or expired refresh token")),
        Err(e) => {
            tracing::error!(code = "PG0509", error = %e, "could not use a refresh token");
            return Err(OAuthError::server_error("the store is unavailable"));
        }
    };
    let grant: Grant =
        serde_json::from_str(&record.body).map_err(|_| OAuthError::invalid_grant("damaged refresh token"))?;
    let now = store.now();
    if !refresh_alive(state, &record, &grant, now) {
        return Err(OAuthError::invalid_grant("the session has ended"));
    }
    let user = live_user(state, ctx, &grant.uid).await?;
    let scope = match f.scope.as_deref() {
        None => grant.scope.clone(),
        Some(asked) => {
            let had: Vec<&str> = grant.scope.split_whitespace().collect();
            if !asked.split_whitespace().all(|s| had.contains(&s)) {
                return Err(OAuthError::invalid_scope("more than was granted"));
            }
            client.grant_scope(asked)
        }
    };
    let issue = Issue {
        client,
        user: &user,
        grant: &grant,
        jti: &record.family,
        scope: &scope,
        offline: record.offline,
    };
    let mut body = issue.tokens(ctx, now)?;
    let next = RefreshRecord { ..record };
    body["refresh_token"] = json!(new_refresh(state, ctx, &next).await?);
    Ok(body)
}

/// Whether a stored refresh token still stands: its family not revoked, and — an ordinary
/// one ends with the sign-in it came from, an offline one does not — its SSO session live.
pub(super) fn refresh_alive(state: &WebState, record: &RefreshRecord, grant: &Grant, now: i64) -> bool {
    let revoked = |id: &str| SessionId::from_hex(id).is_some_and(|s| state.sessions.revocations.is_revoked(&s));
    !revoked(&record.family) && (record.offline || (!revoked(&grant.sso) && grant.sso_expires > now))
}

/// A service authenticates as itself and gets an access token for one of the pool's apps
/// (`resource`) or for itself: no user, no ID token, no refresh token.
fn client_credentials(state: &WebState, ctx: &Ctx, client: &Client, f: TokenForm) -> Result<Value, OAuthError> {
    if client.is_public() {
        return Err(OAuthError::unauthorized_client(
            "a public client has no credentials of its own",
        ));
    }
    let aud = match f.resource.as_deref() {
        None => client.id().to_owned(),
        Some(r) => resource_app(ctx, r).ok_or_else(|| OAuthError::invalid_request("unknown resource"))?,
    };
    let now = state.registry.store().now();
    let exp = now + client.access_token_secs();
    let access = AccessClaims {
        iss: ctx.pool.issuer.clone(),
        sub: client.id().to_owned(),
        aud,
        exp,
        iat: now,
        sid: String::new(),
        jti: SessionId::random().hex(),
        client_id: client.id().to_owned(),
        scope: String::new(),
        preferred_username: client.id().to_owned(),
        name: client.name().to_owned(),
        email: None,
        email_verified: false,
        groups: Vec::new(),
        src: "client".into(),
        mfa: false,
    };
    let signer = ctx
        .pool
        .keys
        .signer_for(SigningAlg::ES256)
        .ok_or_else(|| OAuthError::server_error("the pool has no signing key"))?;
    let token = signer
        .sign_typed("at+jwt", &access)
        .map_err(|_| OAuthError::server_error("signing failed"))?;
    Ok(json!({
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": exp - now,
    }))
}

/// The app a `resource` names: its id, or an absolute URL on one of its hosts.
fn resource_app(ctx: &Ctx, resource: &str) -> Option<String> {
    if let Some(app) = ctx.pool.apps.get(resource) {
        return Some(app.id.to_string());
    }
    let host = url::Url::parse(resource).ok()?.host_str()?.to_owned();
    ctx.pool
        .apps
        .values()
        .find(|a| a.hosts.iter().any(|h| h.as_str() == host))
        .map(|a| a.id.to_string())
}

fn has_offline(scope: &str) -> bool {
    scope.split_whitespace().any(|s| s == "offline_access")
}

async fn live_user(state: &WebState, ctx: &Ctx, uid: &str) -> Result<User, OAuthError> {
    match state.registry.store().user(ctx.pool.id.as_str(), uid).await {
        Ok(u) if !u.disabled => Ok(u),
        _ => Err(OAuthError::invalid_grant("the user cannot sign in")),
    }
}

async fn new_refresh(state: &WebState, ctx: &Ctx, record: &RefreshRecord) -> Result<String, OAuthError> {
    let token = random_token(32);
    state
        .registry
        .store()
        .put_refresh(ctx.pool.id.as_str(), &token, record)
        .await
        .map_err(|e| {
            tracing::error!(code = "PG0509", error = %e, "could not store a refresh token");
            OAuthError::server_error("the store is unavailable")
        })?;
    Ok(token)
}

/// One issuance of an ID token and an access token: for whom, under which grant and
/// scope.
struct Issue<'a> {
    client: &'a Client,
    user: &'a User,
    grant: &'a Grant,
    /// The grant's id: what revoking the grant (or its refresh family) ends.
    jti: &'a str,
    scope: &'a str,
    offline: bool,
}

impl Issue<'_> {
    /// The token response.
    fn tokens(&self, ctx: &Ctx, now: i64) -> Result<Value, OAuthError> {
        let Issue {
            client,
            user,
            grant,
            jti,
            scope,
            offline,
        } = *self;
        let released = released_claims(
            scope,
            &user.username,
            &user.name,
            user.email.as_deref(),
            user.email_verified,
            &user.groups,
        );
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
        if let Some(map) = id.as_object_mut() {
            if let Some(nonce) = &grant.nonce {
                map.insert("nonce".into(), json!(nonce));
            }
            if grant.mfa {
                map.insert("acr".into(), json!(super::authorize::ACR_MFA));
            }
            map.extend(released);
        }
        let expires_in = client.access_token_secs();
        let access = AccessClaims {
            iss: ctx.pool.issuer.clone(),
            sub: user.id.clone(),
            aud: grant.client_id.clone(),
            exp: now + expires_in,
            iat: now,
            // An offline grant's access tokens outlive the sign-in: no SSO session to check.
            sid: if offline { String::new() } else { grant.sso.clone() },
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
        let id_signer = ctx.pool.keys.signer_for(client.id_token_alg());
        let access_signer = ctx.pool.keys.signer_for(SigningAlg::ES256);
        let (Some(id_signer), Some(access_signer)) = (id_signer, access_signer) else {
            return Err(OAuthError::server_error(
                "the pool has no key for this client's algorithm",
            ));
        };
        match (id_signer.sign(&id), access_signer.sign_typed("at+jwt", &access)) {
            (Ok(id_token), Ok(access_token)) => Ok(json!({
                "access_token": access_token,
                "token_type": "Bearer",
                "expires_in": expires_in,
                "id_token": id_token,
                "scope": scope,
            })),
            _ => Err(OAuthError::server_error("signing failed")),
        }
    }
}
