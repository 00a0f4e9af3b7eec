//! The pool's OAuth clients, as the OP sees them: every gateway app (a public client with
//! PKCE, its callbacks registered by the gateway itself) and the registered clients of
//! `[pools.P.clients]` (public or confidential, with their own URIs, grants and scopes),
//! and the pools that federate with this one (confidential, made by the gateway).

use std::sync::Arc;

use crate::config::{self, ClientAuthMethod, GrantType, SigningAlg};
use crate::registry::{AppRoute, FederatedPool, PoolRoute};
use crate::web::state::WebState;

/// Scopes a gateway app may be granted.
const APP_SCOPES: [&str; 4] = ["openid", "profile", "email", "groups"];

#[derive(Clone)]
pub enum Client {
    App(Arc<AppRoute>),
    Registered(Arc<config::Client>),
    /// Another pool of this deployment signing its people in through this one.
    Federated(Arc<FederatedPool>),
}

impl Client {
    /// The client `id` of the pool, app or registered.
    pub fn find(pool: &PoolRoute, id: &str) -> Option<Client> {
        pool.apps
            .get(id)
            .map(|a| Client::App(a.clone()))
            .or_else(|| pool.clients.get(id).map(|c| Client::Registered(c.clone())))
            .or_else(|| pool.federated.get(id).map(|f| Client::Federated(f.clone())))
    }

    pub fn id(&self) -> &str {
        match self {
            Client::App(a) => a.id.as_str(),
            Client::Registered(c) => c.id.as_str(),
            Client::Federated(f) => &f.client_id,
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Client::App(a) => &a.name,
            Client::Registered(c) => &c.name,
            Client::Federated(f) => &f.pool_name,
        }
    }

    /// The redirect URIs registered for it, compared byte for byte.
    pub fn redirect_uris(&self, state: &WebState) -> Vec<String> {
        match self {
            Client::App(a) => super::authorize::registered_redirects(state, a),
            Client::Registered(c) => c.redirect_uris.clone(),
            Client::Federated(f) => f.redirect_uris.clone(),
        }
    }

    /// Where a sign-out it asks for may return, compared byte for byte: for an app, its
    /// root on each of its hosts.
    pub fn post_logout_redirect_uris(&self, state: &WebState) -> Vec<String> {
        match self {
            Client::App(a) => super::authorize::app_origins(state, a)
                .into_iter()
                .map(|o| format!("{o}/"))
                .collect(),
            Client::Registered(c) => c.post_logout_redirect_uris.clone(),
            Client::Federated(f) => f.post_logout_redirect_uris.clone(),
        }
    }

    pub fn backchannel_logout_uri(&self) -> Option<&str> {
        match self {
            Client::App(_) => None,
            Client::Registered(c) => c.backchannel_logout_uri.as_deref(),
            Client::Federated(f) => Some(&f.backchannel_logout_uri),
        }
    }

    pub fn auth_method(&self) -> ClientAuthMethod {
        match self {
            Client::App(_) => ClientAuthMethod::None,
            Client::Registered(c) => c.auth_method,
            Client::Federated(_) => ClientAuthMethod::ClientSecretBasic,
        }
    }

    /// A public client has no secret: PKCE is what binds its code to it.
    pub fn is_public(&self) -> bool {
        self.auth_method() == ClientAuthMethod::None
    }

    pub fn allows(&self, grant: GrantType) -> bool {
        match self {
            Client::App(_) | Client::Federated(_) => grant == GrantType::AuthorizationCode,
            Client::Registered(c) => c.grant_types.contains(&grant),
        }
    }

    /// The scopes granted of those asked: known to the OP and allowed to this client, in
    /// a fixed order.
    pub fn grant_scope(&self, asked: &str) -> String {
        let asked: Vec<&str> = asked.split_whitespace().collect();
        let allowed: Vec<&str> = match self {
            Client::App(_) | Client::Federated(_) => APP_SCOPES.to_vec(),
            Client::Registered(c) => c.scopes.iter().map(String::as_str).collect(),
        };
        let mut offline = self.allows(GrantType::RefreshToken);
        if let Client::Registered(c) = self {
            offline &= c.scopes.iter().any(|s| s == "offline_access");
        }
        config::SCOPES
            .into_iter()
            .filter(|s| asked.contains(s) && allowed.contains(s))
            .filter(|s| *s != "offline_access" || offline)
            .collect::<Vec<_>>()
            .join(" ")
    }

    pub fn id_token_alg(&self) -> SigningAlg {
        match self {
            Client::App(_) | Client::Federated(_) => SigningAlg::ES256,
            Client::Registered(c) => c.id_token_alg,
        }
    }

    pub fn access_token_secs(&self) -> i64 {
        match self {
            Client::App(_) | Client::Federated(_) => super::ACCESS_TOKEN_SECS,
            Client::Registered(c) => c.access_token_lifetime.get().as_secs() as i64,
        }
    }

    pub fn refresh_token_secs(&self) -> i64 {
        match self {
            Client::App(_) | Client::Federated(_) => 0,
            Client::Registered(c) => c.refresh_token_lifetime.get().as_secs() as i64,
        }
    }
}
