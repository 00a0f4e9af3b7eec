//! Who is calling the token, revocation or introspection endpoint: the client named by
//! HTTP Basic (RFC 6749 §2.3.1, each part form-encoded) or the body, authenticated exactly
//! as it is registered to (a public client with no secret; a confidential one with its
//! secret, by its one method). Anything else is `401 invalid_client`.

use axum::http::HeaderMap;
use base64::Engine;

use super::clients::Client;
use super::error::OAuthError;
use crate::config::ClientAuthMethod;
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
    if let Some(secret) = secret {
        let ok = state
            .registry
            .store()
            .client_secret_ok(ctx.pool.id.as_str(), client.id(), &secret)
            .await
            .map_err(|e| {
                tracing::error!(code = "PG0509", error = %e, "could not check a client secret");
                OAuthError::server_error("the store is unavailable")
            })?;
        if !ok {
            return Err(OAuthError::invalid_client("wrong client secret", realm));
        }
    }
    Ok(client)
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
