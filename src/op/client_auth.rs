//! Who is calling the token, revocation or introspection endpoint: the client named by
//! HTTP Basic (RFC 6749 §2.3.1, each part form-encoded) or the body, authenticated exactly
//! as it is registered to (a public client with no secret; a confidential one with its
//! secret, by its one method). Anything else is `401 invalid_client`.

use axum::http::HeaderMap;
use base64::Engine;

use super::clients::Client;
use super::error::OAuthError;
use crate::config::ClientAuthMethod;
use crate::registry::FederatedPool;
use crate::web::context::Ctx;
use crate::web::state::WebState;

/// The client fields a body may carry.
pub struct Presented<'a> {
    pub client_id: Option<&'a str>,
    pub client_secret: Option<&'a str>,
}

/// Reads and checks the caller's credentials.
pub async fn authenticate(
    state: &WebState,
    ctx: &Ctx,
    headers: &HeaderMap,
    body: Presented<'_>,
) -> Result<Client, OAuthError> {
    let realm = ctx.pool.id.as_str();
    let basic = basic_credentials(headers)?;
    let (id, secret, method) = match (basic, body.client_id) {
        (Some((id, _)), Some(body_id)) if id != body_id => {
            return Err(OAuthError::invalid_request(
                "client_id differs from the authenticated client",
            ));
        }
        (Some(_), _) if body.client_secret.is_some() => {
            return Err(OAuthError::invalid_request(
                "one client authentication method at a time",
            ));
        }
        (Some((id, secret)), _) => (id, Some(secret), ClientAuthMethod::ClientSecretBasic),
        (None, Some(id)) => match body.client_secret {
            Some(s) => (id.to_owned(), Some(s.to_owned()), ClientAuthMethod::ClientSecretPost),
            None => (id.to_owned(), None, ClientAuthMethod::None),
        },
        (None, None) => return Err(OAuthError::invalid_client("no client credentials", realm)),
    };
    let Some(client) = Client::find(&ctx.pool, &id) else {
        return Err(OAuthError::invalid_client("unknown client", realm));
    };
    if method != client.auth_method() {
        return Err(OAuthError::invalid_client(
            format!("this client authenticates with {}", client.auth_method().as_str()),
            realm,
        ));
    }
    if let (Some(secret), Client::Federated(f)) = (&secret, &client) {
        let expected = FederatedPool::secret(state.registry.master_key(), &ctx.pool.id, &f.pool, &f.source);
        if !bool::from(subtle::ConstantTimeEq::ct_eq(secret.as_bytes(), expected.as_bytes())) {
            return Err(OAuthError::invalid_client("wrong client secret", realm));
        }
        return Ok(client);
    }
    if let Some(secret) = secret {
        let store = state.registry.store();
        let now = store.now();
        let key = SecretKey::of(realm, client.id(), &secret);
        if state.secrets.get(&key).is_none_or(|until| *until <= now) {
            let valid = store
                .client_secret_valid(realm, client.id(), &secret)
                .await
                .map_err(|e| {
                    tracing::error!(code = "PG0509", error = %e, "could not check a client secret");
                    OAuthError::server_error("the store is unavailable")
                })?;
            let Some(ends) = valid else {
                return Err(OAuthError::invalid_client("wrong client secret", realm));
            };
            // Only a secret the store just vouched for is remembered, so guesses never
            // fill this; a rotation's overlap ends it on every node in time.
            let until = ends.map_or(now + SECRET_MEMORY_SECS, |e| e.min(now + SECRET_MEMORY_SECS));
            state.secrets.insert(key, until);
        }
    }
    Ok(client)
}

/// How long a checked client secret is taken on its word (the token endpoint reads no
/// secret from the store on every grant).
const SECRET_MEMORY_SECS: i64 = 60;

/// A client secret as a cache key: its SHA-256 with the pool and client, never the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SecretKey([u8; 32]);

impl SecretKey {
    fn of(pool: &str, client: &str, secret: &str) -> SecretKey {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        for part in [pool, "\0", client, "\0", secret] {
            ctx.update(part.as_bytes());
        }
        let mut key = [0u8; 32];
        key.copy_from_slice(ctx.finish().as_ref());
        SecretKey(key)
    }
}

/// `Authorization: Basic` credentials, when sent.
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, OAuthError> {
    let Some(b64) = crate::wire::credentials(headers, "Basic") else {
        return Ok(None);
    };
    let unreadable = || OAuthError::invalid_request("the Basic credentials cannot be read");
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(unreadable)?;
    let (id, secret) = decoded.split_once(':').ok_or_else(unreadable)?;
    let unform = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Ok(Some((unform(id), unform(secret))))
}
