//! The gateway's cookies, and their attributes, in exactly one place. Every cookie is
//! host-only (no `Domain`), `HttpOnly`, `Path=/`, `SameSite` set; under TLS it is `Secure`
//! and `__Host-` prefixed, so no sibling host can plant or read it.

use http::HeaderMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cookie {
    /// An app session, on an app host.
    App,
    /// The SSO session, on the portal host.
    Sso,
    /// A sign-in in progress (state, nonce, PKCE verifier), on an app host.
    Login,
    /// The portal's CSRF token (double-submit).
    Csrf,
    /// An operator's session at the admin console, on the admin listener.
    Console,
    /// A console sign-in in progress (state, nonce, PKCE verifier).
    ConsoleLogin,
}

/// Cookies carry no port: the admin listener's are stripped from proxied requests too.
const ALL: [Cookie; 6] = [
    Cookie::App,
    Cookie::Sso,
    Cookie::Login,
    Cookie::Csrf,
    Cookie::Console,
    Cookie::ConsoleLogin,
];

impl Cookie {
    pub fn name(self, tls: bool) -> &'static str {
        match (self, tls) {
            (Cookie::App, true) => "__Host-poolgate",
            (Cookie::App, false) => "poolgate",
            (Cookie::Sso, true) => "__Host-poolgate-sso",
            (Cookie::Sso, false) => "poolgate-sso",
            (Cookie::Login, true) => "__Host-poolgate-login",
            (Cookie::Login, false) => "poolgate-login",
            (Cookie::Csrf, true) => "__Host-poolgate-csrf",
            (Cookie::Csrf, false) => "poolgate-csrf",
            (Cookie::Console, true) => "__Host-poolgate-console",
            (Cookie::Console, false) => "poolgate-console",
            (Cookie::ConsoleLogin, true) => "__Host-poolgate-console-login",
            (Cookie::ConsoleLogin, false) => "poolgate-console-login",
        }
    }

    fn same_site(self) -> &'static str {
        match self {
            Cookie::Csrf => "Strict",
            _ => "Lax",
        }
    }

    /// A `Set-Cookie` value. `max_age` none: a browser-session cookie.
    pub fn set(self, tls: bool, value: &str, max_age: Option<i64>) -> String {
        let mut s = format!(
            "{}={value}; Path=/; HttpOnly; SameSite={}",
            self.name(tls),
            self.same_site()
        );
        if tls {
            s.push_str("; Secure");
        }
        if let Some(age) = max_age {
            s.push_str(&format!("; Max-Age={}", age.max(0)));
        }
        s
    }

    pub fn clear(self, tls: bool) -> String {
        self.set(tls, "", Some(0))
    }

    /// This cookie's values in a request, under the name for this connection's scheme. A
    /// request may carry several (one planted for a parent domain, say): a caller takes the
    /// one that opens for it, never simply the first.
    pub fn values(self, headers: &HeaderMap, tls: bool) -> impl Iterator<Item = &str> {
        let name = self.name(tls);
        headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .filter(move |(n, _)| *n == name)
            .map(|(_, v)| v)
    }
}

/// Whether a cookie name is one of the gateway's (either spelling), in any case: some
/// clients and servers read cookie names without regard to case, so neither a client's
/// copy (to the upstream) nor an upstream's (to the browser) passes in any spelling.
pub fn is_gateway_cookie(name: &str) -> bool {
    ALL.iter()
        .any(|c| c.name(true).eq_ignore_ascii_case(name) || c.name(false).eq_ignore_ascii_case(name))
}

/// A `Cookie` header value without the gateway's cookies; `None` when nothing is left.
pub fn without_gateway_cookies(value: &str) -> Option<String> {
    let kept: Vec<&str> = value
        .split(';')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .filter(|pair| !is_gateway_cookie(pair.split_once('=').map_or(*pair, |(n, _)| n.trim())))
        .collect();
    (!kept.is_empty()).then(|| kept.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_strict() {
        assert_eq!(
            Cookie::App.set(true, "v", Some(60)),
            "__Host-poolgate=v; Path=/; HttpOnly; SameSite=Lax; Secure; Max-Age=60"
        );
        assert_eq!(
            Cookie::Csrf.set(false, "t", None),
            "poolgate-csrf=t; Path=/; HttpOnly; SameSite=Strict"
        );
        assert!(!Cookie::Sso.set(true, "v", None).contains("Domain"));
    }

    #[test]
    fn gateway_cookies_are_removed_and_others_kept() {
        assert_eq!(
            without_gateway_cookies("a=1; poolgate=x; __Host-poolgate-sso=y;b=2; poolgate-login=z").as_deref(),
            Some("a=1; b=2")
        );
        assert_eq!(without_gateway_cookies("__Host-poolgate=x"), None);
        assert_eq!(without_gateway_cookies("PoolGate=x; a=1").as_deref(), Some("a=1"));
    }
}
