//! Back-channel logout out (OpenID Connect Back-Channel Logout 1.0): when an SSO session
//! ends — a sign-out, an admin revoking it, a user disabled or given a new password — every
//! client that had a session in it and registered a `backchannel_logout_uri` is sent a
//! logout token. Deliveries come from the store (any node may send; one claims each), are
//! retried with backoff a few times, and each outcome is audited.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::clients::Client;
use crate::registry::Registry;
use crate::session::SessionId;
use crate::store::{NewAuditEvent, PendingLogout};

/// Attempts per logout before it is given up (and audited as failed).
const ATTEMPTS: i32 = 4;

/// Runs for the life of the process.
pub async fn deliver_forever(registry: Arc<Registry>) {
    let http = crate::outbound::client();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tick.tick().await;
        let pending = match registry.store().pending_logouts(50).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(code = "PG0511", error = %e, "cannot read pending back-channel logouts");
                continue;
            }
        };
        for p in pending {
            deliver(&registry, &http, p).await;
        }
    }
}

async fn deliver(registry: &Registry, http: &reqwest::Client, p: PendingLogout) {
    let store = registry.store();
    let snapshot = registry.snapshot_full();
    let pool = snapshot.pool(&p.pool);
    let client = pool.as_ref().and_then(|pool| Client::find(pool, &p.client));
    let (Some(pool), Some(client), Some(uri)) = (
        pool.as_ref(),
        client.as_ref(),
        client
            .as_ref()
            .and_then(|c| c.backchannel_logout_uri().map(str::to_owned)),
    ) else {
        // The client is gone, or no longer asks to be told.
        let _ = store.finish_logout(&p.pool, &p.id).await;
        return;
    };
    // The next attempt, should this one fail: 1 s, 2 s, 4 s…
    let retry_in = 1i64 << p.attempts.clamp(0, 6);
    match store.claim_logout(&p, retry_in).await {
        Ok(true) => {}
        Ok(false) => return, // another node took it
        Err(e) => {
            tracing::warn!(code = "PG0511", error = %e, "cannot claim a back-channel logout");
            return;
        }
    }
    let now = store.now();
    let claims = json!({
        "iss": pool.issuer,
        "aud": client.id(),
        "iat": now,
        "exp": now + 120,
        "jti": SessionId::random().hex(),
        "sub": p.user,
        "sid": p.sso,
        "events": { "http://schemas.openid.net/event/backchannel-logout": {} },
    });
    let token = pool
        .keys
        .signer_for(client.id_token_alg())
        .map(|s| s.sign_typed("logout+jwt", &claims));
    let outcome = match token {
        Some(Ok(token)) => match http.post(&uri).form(&[("logout_token", token)]).send().await {
            Ok(resp) if resp.status().is_success() => Ok(()),
            Ok(resp) => Err(format!("the client answered {}", resp.status())),
            Err(e) => Err(format!("could not reach the client: {e}")),
        },
        _ => Err("no key for the client's algorithm".to_owned()),
    };
    let last = p.attempts + 1 >= ATTEMPTS;
    let (result, detail) = match &outcome {
        Ok(()) => ("ok", String::new()),
        Err(why) if last => ("failed", format!("gave up after {ATTEMPTS} attempts: {why}")),
        Err(why) => {
            tracing::info!(code = "PG0512", client = client.id(), error = %why, "back-channel logout failed; will retry");
            return;
        }
    };
    if outcome.is_err() {
        tracing::warn!(
            code = "PG0512",
            client = client.id(),
            detail,
            "back-channel logout given up"
        );
    }
    let _ = store.finish_logout(&p.pool, &p.id).await;
    let event = NewAuditEvent {
        pool: Some(p.pool.clone()),
        actor: "system".into(),
        action: "backchannel.logout".into(),
        target: client.id().to_owned(),
        outcome: result.into(),
        client: String::new(),
        detail,
    };
    if let Err(e) = store.audit(event).await {
        tracing::error!(code = "PG0405", error = %e, "could not write the audit log");
    }
}
