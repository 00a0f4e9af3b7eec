//! Authorization codes: single use, bound to client, redirect URI and PKCE verifier; a
//! replay revokes everything the first redemption gave (RFC 6749 §4.1.2).

use super::{Grant, pkce_challenge};
use crate::registry::PoolRoute;
use crate::session::SessionId;
use crate::store::{CodeUse, StoreError};
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
    verifier: Option<&str>,
    offline: impl FnOnce(&Grant) -> bool,
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
    // A code asked for with PKCE needs its verifier; one asked for without (a confidential
    // client's choice) must not get one (RFC 9700 §4.8.2: no PKCE downgrade).
    let pkce_ok = match (grant.code_challenge.is_empty(), verifier) {
        (false, Some(v)) => equal(&pkce_challenge(v), &grant.code_challenge),
        (true, None) => true,
        _ => false,
    };
    if !pkce_ok {
        return Err(InvalidGrant("PKCE verification failed"));
    }
    let sso = SessionId::from_hex(&grant.sso).ok_or(InvalidGrant("damaged code"))?;
    if state.sessions.revocations.is_revoked(&sso) {
        return Err(InvalidGrant("the session has ended"));
    }
    // A client with a back-channel logout URI is told when this session ends.
    let notify = super::clients::Client::find(pool, client_id).is_some_and(|c| c.backchannel_logout_uri().is_some());
    // An offline grant (`offline_access`) is not tied to the sign-in: ending the SSO
    // session does not end it, so it is recorded apart from it.
    let (link, expires) = if offline(&grant) {
        (format!("offline:{}", grant.sso), i64::MAX / 2)
    } else {
        let expires = (store.now() + pool.sessions.max.as_secs() as i64).min(grant.sso_expires);
        (grant.sso.clone(), expires)
    };
    if let Err(e) = store
        .create_app_session(
            pool.id.as_str(),
            &sid.hex(),
            client_id,
            &link,
            &grant.uid,
            expires,
            notify,
        )
        .await
    {
        tracing::error!(code = "PG0508", error = %e, pool = %pool.id, "could not store an app session");
        return Err(InvalidGrant("the store is unavailable"));
    }
    Ok(Redeemed { grant, sid, expires })
}

/// A code was replayed: the app session (cookie or tokens) of its first redemption ends,
/// here at once and on every node within the store poll.
pub(super) async fn revoke_replayed(state: &WebState, pool: &PoolRoute, first: SessionId) {
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
    // Its refresh tokens too: the family is the grant.
    if let Err(e) = store.revoke_refresh_family(pool.id.as_str(), &first.hex()).await {
        tracing::error!(code = "PG0505", error = %e, pool = %pool.id, "could not revoke a replayed code's refresh tokens");
    }
}
