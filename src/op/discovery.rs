//! Discovery (OpenID Connect Discovery 1.0) and the pool's published keys.

use axum::Json;
use axum::extract::Extension;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::web::context::Ctx;

/// `/.well-known/openid-configuration`, and the same document as RFC 8414 authorization
/// server metadata at `/.well-known/oauth-authorization-server`.
pub async fn discovery(Extension(ctx): Extension<Ctx>) -> Response {
    let iss = &ctx.pool.issuer;
    Json(json!({
        "issuer": iss,
        "authorization_endpoint": format!("{iss}/oidc/authorize"),
        "token_endpoint": format!("{iss}/oidc/token"),
        "userinfo_endpoint": format!("{iss}/oidc/userinfo"),
        "jwks_uri": format!("{iss}/oidc/jwks"),
        "end_session_endpoint": format!("{iss}/oidc/logout"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "form_post"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "revocation_endpoint": format!("{iss}/oidc/revoke"),
        "revocation_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
        "introspection_endpoint": format!("{iss}/oidc/introspect"),
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "acr_values_supported": [super::authorize::ACR_MFA],
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "claims_parameter_supported": false,
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256", "RS256"],
        "userinfo_signing_alg_values_supported": [],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
        "scopes_supported": crate::config::SCOPES,
        "claims_supported": ["sub", "iss", "aud", "azp", "exp", "iat", "auth_time", "nonce", "sid", "amr", "acr",
                             "preferred_username", "name", "email", "email_verified", "groups"],
        "authorization_response_iss_parameter_supported": true,
    }))
    .into_response()
}

pub async fn jwks(Extension(ctx): Extension<Ctx>) -> Response {
    (
        [(header::CACHE_CONTROL, "max-age=300")],
        Json(json!({ "keys": ctx.pool.keys.jwks })),
    )
        .into_response()
}
