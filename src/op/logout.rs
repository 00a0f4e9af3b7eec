//! RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0): who asks (an ID token
//! hint must be this pool's, for one of its clients), where to go after (only a
//! post-logout redirect URI registered for that client, byte for byte), and `state` back.
//! Whether to ask the person first is the portal's: it does unless a valid hint names the
//! person signed in.

use super::clients::Client;
use crate::web::context::Ctx;
use crate::web::state::WebState;

/// A logout request that may be honoured.
pub struct EndSession {
    /// The user the hint names, when there was a (valid) hint.
    pub hinted_sub: Option<String>,
    /// Where to send the browser once signed out, `state` appended.
    pub target: Option<url::Url>,
}

/// The parameters of a logout request.
pub struct Asked<'a> {
    pub id_token_hint: Option<&'a str>,
    pub client_id: Option<&'a str>,
    pub post_logout_redirect_uri: Option<&'a str>,
    pub state: Option<&'a str>,
}

/// Checks a logout request; the error says why it cannot be honoured.
pub fn end_session(state: &WebState, ctx: &Ctx, asked: Asked<'_>) -> Result<EndSession, &'static str> {
    let mut hinted_sub = None;
    let mut client_id = asked.client_id.map(str::to_owned);
    if let Some(hint) = asked.id_token_hint {
        let claims = ctx
            .pool
            .keys
            .verifier
            .verify_hint(hint, &ctx.pool.issuer)
            .map_err(|_| "Its ID token hint was not issued here.")?;
        let aud = claims["aud"].as_str().ok_or("Its ID token hint was not issued here.")?;
        if client_id.as_deref().is_some_and(|c| c != aud) {
            return Err("Its ID token hint was issued to another application.");
        }
        client_id = Some(aud.to_owned());
        hinted_sub = claims["sub"].as_str().map(str::to_owned);
    }
    let client = match client_id.as_deref() {
        Some(id) => Some(Client::find(&ctx.pool, id).ok_or("It names no application of this pool.")?),
        None => None,
    };
    let target = match asked.post_logout_redirect_uri {
        None => None,
        Some(uri) => {
            let client = client.ok_or("It names no application to return to.")?;
            if !client.post_logout_redirect_uris(state).iter().any(|r| r == uri) {
                return Err("It would send you to an address this application has not registered.");
            }
            let mut u = url::Url::parse(uri).map_err(|_| "Its return address cannot be read.")?;
            if let Some(s) = asked.state {
                u.query_pairs_mut().append_pair("state", s);
            }
            Some(u)
        }
    };
    Ok(EndSession { hinted_sub, target })
}
