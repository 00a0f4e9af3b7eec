//! Each pool's OpenID Provider: discovery and keys, the authorization endpoint's rules,
//! codes, the token and userinfo endpoints. It shows no page: where a person must act (sign
//! in, confirm), the portal does, and comes back through [`authorize::issue_code`].

pub mod authorize;
pub mod backchannel;
pub mod client_auth;
pub mod clients;
pub mod code;
pub mod discovery;
pub mod error;
pub mod logout;
pub mod revoke;
pub mod signin;
pub mod token;
pub mod userinfo;

use serde::{Deserialize, Serialize};

pub use code::{InvalidGrant, Redeemed, redeem};
pub use token::{ACCESS_TOKEN_SECS, AccessClaims};
pub use userinfo::unverified_audience;

/// The S256 PKCE challenge of a verifier.
pub fn pkce_challenge(verifier: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()))
}

/// An authorization request, carried sealed through the login pages.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthRequest {
    pub client_id: String,
    pub redirect_uri: String,
    /// Returned exactly as sent, and only if sent.
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: String,
    pub scope: String,
    pub exp: i64,
    /// `response_mode=form_post`: the answer is posted, not put in the query.
    #[serde(default)]
    pub form_post: bool,
    /// `acr_values=mfa`: the client asks for a second factor (step-up).
    #[serde(default)]
    pub mfa: bool,
    /// False for `prompt=none`: no page may be shown, an error goes back instead.
    #[serde(default = "yes")]
    pub interactive: bool,
}

fn yes() -> bool {
    true
}

impl AuthRequest {
    /// Whether a session must have a second factor to answer this request: the client
    /// asks for one (`acr_values=mfa`), its app requires one, or the pool does.
    pub fn needs_mfa(&self, pool: &crate::registry::PoolRoute) -> bool {
        self.mfa
            || pool.mfa == crate::config::MfaPolicy::Required
            || pool.apps.get(&self.client_id).is_some_and(|a| a.policy.require_mfa)
    }

    /// The authorize URL that starts this request again (after MFA setup, say). What the
    /// sign-in just satisfied (`prompt=login`, `max_age`) is not asked again.
    pub fn url(&self) -> String {
        let mut u = url::Url::parse("http://x/oidc/authorize").unwrap_or_else(|_| unreachable!());
        {
            let mut q = u.query_pairs_mut();
            q.append_pair("client_id", &self.client_id)
                .append_pair("redirect_uri", &self.redirect_uri)
                .append_pair("response_type", "code")
                .append_pair("scope", &self.scope)
                .append_pair("code_challenge", &self.code_challenge)
                .append_pair("code_challenge_method", "S256");
            if let Some(s) = &self.state {
                q.append_pair("state", s);
            }
            if let Some(n) = &self.nonce {
                q.append_pair("nonce", n);
            }
            if self.form_post {
                q.append_pair("response_mode", "form_post");
            }
            if self.mfa {
                q.append_pair("acr_values", authorize::ACR_MFA);
            }
        }
        format!("{}?{}", u.path(), u.query().unwrap_or_default())
    }
}

/// What an authorization code grants, stored (by hash) until redeemed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Grant {
    pub client_id: String,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub nonce: Option<String>,
    pub uid: String,
    pub sso: String,
    pub sso_expires: i64,
    pub auth_time: i64,
    pub amr: Vec<String>,
    pub source: String,
    pub mfa: bool,
    /// The scope asked for: which claims the tokens release.
    #[serde(default)]
    pub scope: String,
}
