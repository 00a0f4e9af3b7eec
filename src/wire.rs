//! What travels in HTTP headers that several rooms read the same way: credentials, the
//! proxy's word to the portal, and the names no client may send upstream (DESIGN.md §7, a
//! leaf: it imports nothing of the crate).

use std::borrow::Cow;
use std::collections::HashMap;

use http::HeaderMap;

/// The credentials of an `Authorization` header of `scheme` (`Bearer`, `Basic`): the
/// scheme compared without case (RFC 7235 §2.1), the credentials trimmed.
pub fn credentials<'h>(headers: &'h HeaderMap, scheme: &str) -> Option<&'h str> {
    let (given, credentials) = headers
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .split_once(' ')?;
    given.eq_ignore_ascii_case(scheme).then(|| credentials.trim())
}

/// The proxy's word to the portal: the key that vouches for a request it forwards…
pub const KEY_HEADER: &str = "x-poolgate-internal";
/// …and the route (pool, app) it was for.
pub const ROUTE_HEADER: &str = "x-poolgate-route";

/// The form an app framework may fold a header name into: lower-case, `_` read as `-`
/// (CGI-style frameworks turn both into `HTTP_X_POOLGATE_USER`).
pub fn header_key(name: &str) -> String {
    name.bytes()
        .map(|b| if b == b'_' { '-' } else { b.to_ascii_lowercase() as char })
        .collect()
}

/// What a client may not tell the upstream, as `StripSet` sorts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strip {
    /// Never from anyone: the gateway's own word.
    Always,
    /// Only a trusted proxy's copy is kept: it is that proxy's word.
    Untrusted,
}

/// Where the request came from, as proxies say it.
const FORWARDED: [&str; 5] = [
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-real-ip",
    "forwarded",
];

/// Names that apps and auth proxies conventionally read as "who is signed in" (Apache's
/// `REMOTE_USER`, oauth2-proxy, Authelia, Grafana…): a legacy app may trust them even
/// when it was never configured with them, so a client's copy never reaches it.
const CONVENTIONAL: [&str; 14] = [
    "remote-user",
    "remote-email",
    "remote-groups",
    "remote-name",
    "x-remote-user",
    "x-remote-email",
    "x-remote-groups",
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-preferred-username",
    "x-forwarded-groups",
    "x-forwarded-access-token",
    "x-authenticated-user",
    "x-authenticated-email",
];

/// Families of such names (`X-Auth-Request-User`, `X-WEBAUTH-USER`, …).
const CONVENTIONAL_PREFIXES: [&str; 2] = ["x-auth-request-", "x-webauth-"];

/// Headers some servers take as the request's real path (IIS, Symfony): a public path
/// with one of these could reach any page. Never from anyone.
const PATH_OVERRIDES: [&str; 2] = ["x-original-url", "x-rewrite-url"];

/// Header keys no client may send upstream on a route: the identity headers the app is
/// configured with, plus poolgate's defaults (so renaming a header never reopens the old
/// name), the request id, the proxy's word to the portal and path overrides; and, unless
/// the peer is a trusted proxy, the `X-Forwarded-*` family and the conventional identity
/// names.
pub struct StripSet {
    names: HashMap<String, Strip>,
}

impl StripSet {
    /// `identity`: every identity header name an app could be sent (its own and
    /// poolgate's defaults).
    pub fn new<'a>(identity: impl IntoIterator<Item = &'a str>) -> StripSet {
        let untrusted = FORWARDED
            .iter()
            .chain(&CONVENTIONAL)
            .map(|n| ((*n).to_owned(), Strip::Untrusted));
        let always = identity
            .into_iter()
            .map(header_key)
            .chain(
                ["x-request-id", KEY_HEADER, ROUTE_HEADER]
                    .iter()
                    .chain(&PATH_OVERRIDES)
                    .map(|n| (*n).to_owned()),
            )
            .map(|n| (n, Strip::Always));
        // Later entries win: a conventional name the app uses as an alias is always ours.
        StripSet {
            names: untrusted.chain(always).collect(),
        }
    }

    /// Whether a client's header (or `Connection` token) of this name is removed.
    pub fn matches(&self, name: &str, trusted_peer: bool) -> bool {
        // Header names arrive lower-cased; only a `_` or a `Connection` token needs folding.
        let key: Cow<str> = if name.bytes().any(|b| b == b'_' || b.is_ascii_uppercase()) {
            Cow::Owned(header_key(name))
        } else {
            Cow::Borrowed(name)
        };
        match self.names.get(key.as_ref()) {
            Some(Strip::Always) => true,
            Some(Strip::Untrusted) => !trusted_peer,
            None => !trusted_peer && CONVENTIONAL_PREFIXES.iter().any(|p| key.starts_with(p)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheme_is_compared_without_case() {
        let mut h = HeaderMap::new();
        h.insert(http::header::AUTHORIZATION, "bEaReR  abc ".parse().unwrap());
        assert_eq!(credentials(&h, "Bearer"), Some("abc"));
        assert_eq!(credentials(&h, "Basic"), None);
        assert_eq!(credentials(&HeaderMap::new(), "Bearer"), None);
    }
}
