//! One OAuth error for the endpoints that answer clients in JSON (token, userinfo;
//! RFC 6749 §5.2, RFC 6750 §3): a status, a code from the spec, a sentence, and never a
//! cached answer.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug)]
pub struct OAuthError {
    status: StatusCode,
    code: &'static str,
    description: String,
    /// `WWW-Authenticate` for a 401.
    challenge: Option<String>,
}

impl OAuthError {
    fn new(status: StatusCode, code: &'static str, description: impl Into<String>) -> OAuthError {
        OAuthError {
            status,
            code,
            description: description.into(),
            challenge: None,
        }
    }

    pub fn invalid_request(why: impl Into<String>) -> OAuthError {
        OAuthError::new(StatusCode::BAD_REQUEST, "invalid_request", why)
    }

    /// 401: the client is unknown, or did not authenticate as it is registered to.
    pub fn invalid_client(why: impl Into<String>, realm: &str) -> OAuthError {
        let mut e = OAuthError::new(StatusCode::UNAUTHORIZED, "invalid_client", why);
        e.challenge = Some(format!("Basic realm=\"{realm}\""));
        e
    }

    pub fn invalid_grant(why: impl Into<String>) -> OAuthError {
        OAuthError::new(StatusCode::BAD_REQUEST, "invalid_grant", why)
    }

    pub fn unsupported_grant_type(why: impl Into<String>) -> OAuthError {
        OAuthError::new(StatusCode::BAD_REQUEST, "unsupported_grant_type", why)
    }

    pub fn unauthorized_client(why: impl Into<String>) -> OAuthError {
        OAuthError::new(StatusCode::BAD_REQUEST, "unauthorized_client", why)
    }

    pub fn invalid_scope(why: impl Into<String>) -> OAuthError {
        OAuthError::new(StatusCode::BAD_REQUEST, "invalid_scope", why)
    }

    pub fn server_error(why: impl Into<String>) -> OAuthError {
        OAuthError::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", why)
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let mut resp = (
            self.status,
            Json(json!({ "error": self.code, "error_description": self.description })),
        )
            .into_response();
        no_store(&mut resp);
        if let Some(c) = self.challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, c);
        }
        resp
    }
}

/// Token answers are never cached (RFC 6749 §5.1).
pub fn no_store(resp: &mut Response) {
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}
