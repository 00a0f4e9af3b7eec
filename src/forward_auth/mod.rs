//! Forward-auth: a front proxy (nginx, Traefik, Caddy, Envoy) keeps the traffic and asks
//! poolgate, per request, whether to let it through. Each dialect reads the original
//! request its own way and renders the one [`gate`](crate::gate) verdict in the answers
//! that proxy understands:
//!
//! | dialect  | path                        | original request from                        | sign-in needed              |
//! |----------|-----------------------------|----------------------------------------------|-----------------------------|
//! | nginx    | `/.poolgate/auth/nginx`     | `X-Original-URL`, `X-Original-Method`        | 401, sign-in URL in `Location` |
//! | Traefik  | `/.poolgate/auth/traefik`   | `X-Forwarded-Method/-Proto/-Host/-Uri`       | browser 302 (303 not GET/HEAD), else 401 |
//! | Caddy    | `/.poolgate/auth/caddy`     | as Traefik                                   | as Traefik                  |
//! | Envoy    | `/.poolgate/auth/envoy/<path>` | the request itself (`ext_authz` `path_prefix`) | as Traefik               |
//!
//! A let-through is 200 and carries every identity header the app can receive, empty when
//! there is no value, so the front proxy overwrites a client's copy rather than passing it
//! on. nginx never gets a 3xx (it would turn it into a 500). Only a peer of
//! `proxy.trusted_proxies` is believed, and only about a host of an app: anything else is
//! 400. Every answer is `no-store`.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};

use crate::gate::{Asked, Verdict};
use crate::ids::Host;
use crate::registry::{AppRoute, PoolRoute};
use crate::session::PreparedHeaders;

/// Where the endpoints live, on every host of the gateway's listeners.
pub const PREFIX: &str = "/.poolgate/auth/";

/// oauth2-proxy's names for the same facts, sent too when `proxy.oauth2_proxy_headers`
/// is on, so a front-proxy config written for oauth2-proxy works unchanged.
const OAUTH2_PROXY: [(&str, crate::config::Claim); 4] = [
    ("x-auth-request-user", crate::config::Claim::Username),
    ("x-auth-request-email", crate::config::Claim::Email),
    ("x-auth-request-groups", crate::config::Claim::Groups),
    ("x-auth-request-preferred-username", crate::config::Claim::Username),
];

/// The front proxy asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Nginx,
    Traefik,
    Caddy,
    Envoy,
}

impl Dialect {
    /// The dialect a path asks in, and (Envoy) the original target after the prefix.
    pub fn of(target: &str) -> Option<(Dialect, &str)> {
        let rest = target.strip_prefix(PREFIX)?;
        let (name, tail) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let dialect = match name {
            "nginx" => Dialect::Nginx,
            "traefik" => Dialect::Traefik,
            "caddy" => Dialect::Caddy,
            "envoy" => Dialect::Envoy,
            _ => return None,
        };
        // Exactly the endpoint, with any query (Caddy keeps the original one); Envoy's
        // also with a path any server reads alike. `/.poolgate/auth/nginx/../../x` is no
        // check: a front proxy that cleans the path would route it to poolgate as
        // `/.poolgate/x`, past the block on the checks.
        let exact = tail.is_empty()
            || tail.starts_with('?')
            || (dialect == Dialect::Envoy && tail.starts_with('/') && crate::gate::policy::plain_target(tail));
        exact.then_some((dialect, tail))
    }
}

/// The request the front proxy is deciding, as it says it was.
#[derive(Debug, PartialEq, Eq)]
pub struct Original {
    pub method: Method,
    pub host: Host,
    /// Path and query.
    pub target: String,
    pub tls: bool,
}

/// Reads the original request of `dialect` from the check's method, target and headers.
pub fn original(dialect: Dialect, method: &Method, tail: &str, headers: &HeaderMap) -> Result<Original, &'static str> {
    let header = |name: &str| -> Result<Option<&str>, &'static str> {
        let mut all = headers.get_all(name).iter();
        let first = all.next();
        if all.next().is_some() {
            return Err("a forwarded header was sent twice");
        }
        first
            .map(|v| v.to_str().map_err(|_| "a forwarded header is not text"))
            .transpose()
    };
    let (method, authority, target, tls) = match dialect {
        Dialect::Nginx => {
            // Read as sent, never normalised: nginx passes the raw `$request_uri` on to the
            // app, so the path judged must be that one (a URL parser would resolve
            // `%2e%2e` and judge a path the app never sees).
            let url = header("x-original-url")?.ok_or("X-Original-URL is required")?;
            let method = header("x-original-method")?.unwrap_or("GET");
            let (authority, target, tls) = split_url(url).ok_or("X-Original-URL is not an http or https URL")?;
            (method.to_owned(), authority.to_owned(), target.to_owned(), tls)
        }
        Dialect::Traefik | Dialect::Caddy => {
            let method = header("x-forwarded-method")?.ok_or("X-Forwarded-Method is required")?;
            let host = header("x-forwarded-host")?.ok_or("X-Forwarded-Host is required")?;
            let uri = header("x-forwarded-uri")?.unwrap_or("/");
            let tls = match header("x-forwarded-proto")?.unwrap_or("http") {
                "https" => true,
                "http" => false,
                _ => return Err("X-Forwarded-Proto is not http or https"),
            };
            (method.to_owned(), host.to_owned(), uri.to_owned(), tls)
        }
        Dialect::Envoy => {
            let host = header("host")?.ok_or("Host is required")?;
            let tls = header("x-forwarded-proto")?.is_some_and(|p| p == "https");
            let target = if tail.is_empty() {
                "/".to_owned()
            } else {
                tail.to_owned()
            };
            (method.as_str().to_owned(), host.to_owned(), target, tls)
        }
    };
    let method = Method::from_bytes(method.as_bytes()).map_err(|_| "the original method is not a method")?;
    let host = Host::from_authority(&authority).map_err(|_| "the original host is not a host name")?;
    if !target.starts_with('/') || target.bytes().any(|b| !b.is_ascii_graphic()) {
        return Err("the original path is not a path");
    }
    Ok(Original {
        method,
        host,
        target,
        tls,
    })
}

/// `scheme://authority/path?query` as `(authority, path and query, https)`, untouched.
fn split_url(url: &str) -> Option<(&str, &str, bool)> {
    let (tls, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (true, rest)
    } else {
        (false, url.strip_prefix("http://")?)
    };
    let slash = rest.find('/')?;
    Some((&rest[..slash], &rest[slash..], tls))
}

impl Original {
    /// The request as the gate reads it, with the check's own headers (cookies, bearer
    /// token, `Accept`, `Origin`), which the front proxy copied from the client's.
    pub fn asked<'a>(&'a self, headers: &'a HeaderMap) -> Asked<'a> {
        Asked {
            method: &self.method,
            target: &self.target,
            headers,
            tls: self.tls,
        }
    }
}

/// The answer to a check: status and headers (the body is a word for a person).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(Bytes, HeaderValue)>,
}

/// What the identity headers say for a let-through: every name the app receives, with
/// this user's value or empty.
pub struct Identity<'a> {
    pub app: &'a AppRoute,
    pub prepared: Option<PreparedHeaders>,
    pub oauth2_proxy_headers: bool,
    pub principal: Option<&'a crate::session::Principal>,
}

impl<'a> Identity<'a> {
    /// No one: every header present, every value empty.
    pub fn nobody(app: &'a AppRoute, oauth2_proxy_headers: bool) -> Identity<'a> {
        Identity {
            app,
            prepared: None,
            oauth2_proxy_headers,
            principal: None,
        }
    }
}

/// Renders `verdict` in `dialect`.
pub fn render(
    dialect: Dialect,
    verdict: Verdict,
    original: &Original,
    headers: &HeaderMap,
    pool: &PoolRoute,
    id: &Identity<'_>,
) -> Reply {
    let mut out: Vec<(Bytes, HeaderValue)> = Vec::with_capacity(id.app.identity_headers.len() + 6);
    out.push((
        Bytes::from_static(b"cache-control"),
        HeaderValue::from_static("no-store"),
    ));
    let text = |s: String| HeaderValue::try_from(s).unwrap_or_else(|_| HeaderValue::from_static(""));
    let status = match verdict {
        Verdict::Forward { set_cookie, .. } => {
            let names = identity_headers(id, &mut out);
            if dialect == Dialect::Envoy {
                out.push((
                    Bytes::from_static(b"x-envoy-auth-headers-to-remove"),
                    text(names.join(",")),
                ));
            }
            if let Some(cookie) = set_cookie {
                out.push((Bytes::from_static(b"set-cookie"), text(cookie)));
            }
            200
        }
        // The front proxy sends `/.poolgate/` to poolgate itself: a check for such a path
        // means it routed differently than it judged (`/.poolgate/../admin`, cleaned for
        // routing, raw for the check), and nothing behind it may have it.
        Verdict::Portal => 403,
        // The app answers a preflight the gateway allows; it carries no credentials.
        Verdict::Preflight(Ok(_)) => {
            identity_headers(&Identity::nobody(id.app, id.oauth2_proxy_headers), &mut out);
            200
        }
        Verdict::Preflight(Err(_)) | Verdict::Forbidden { .. } => 403,
        Verdict::SignIn { login } => {
            let scheme = if original.tls { "https" } else { "http" };
            let authority = match headers_authority(dialect, headers) {
                Some(a) => a,
                None => original.host.to_string(),
            };
            let location = format!("{scheme}://{authority}{login}");
            let person = crate::gate::policy::wants_page(headers);
            match dialect {
                // nginx makes a 3xx of auth_request a 500: 401 with where to go, which its
                // config turns into the redirect; a script gets a bare 401.
                Dialect::Nginx => {
                    if person {
                        out.push((Bytes::from_static(b"location"), text(location)));
                    } else {
                        out.push((www_authenticate(), text(format!("Bearer realm=\"{}\"", pool.id))));
                    }
                    401
                }
                _ if person => {
                    out.push((Bytes::from_static(b"location"), text(location)));
                    if original.method == Method::GET || original.method == Method::HEAD {
                        302
                    } else {
                        303
                    }
                }
                _ => {
                    out.push((www_authenticate(), text(format!("Bearer realm=\"{}\"", pool.id))));
                    401
                }
            }
        }
    };
    Reply { status, headers: out }
}

fn www_authenticate() -> Bytes {
    Bytes::from_static(b"www-authenticate")
}

/// The authority (with port) the person used, for an absolute sign-in address.
fn headers_authority(dialect: Dialect, headers: &HeaderMap) -> Option<String> {
    let get = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).map(str::to_owned);
    match dialect {
        Dialect::Nginx => get("x-original-url").and_then(|u| split_url(&u).map(|(a, _, _)| a.to_owned())),
        Dialect::Traefik | Dialect::Caddy => get("x-forwarded-host"),
        Dialect::Envoy => get("host"),
    }
}

/// Adds every identity header of the app (and the oauth2-proxy names when asked for),
/// valued or empty; returns their names.
fn identity_headers<'a>(id: &'a Identity<'_>, out: &mut Vec<(Bytes, HeaderValue)>) -> Vec<&'a str> {
    let empty = HeaderValue::from_static("");
    let mut names = Vec::new();
    for (_, name) in &id.app.identity_headers {
        let value = id
            .prepared
            .as_ref()
            .and_then(|p| p.iter().find(|(n, _)| n == name))
            .map_or_else(|| empty.clone(), |(_, v)| v.clone());
        names.push(std::str::from_utf8(name).unwrap_or_default());
        out.push((name.clone(), value));
    }
    if id.oauth2_proxy_headers {
        for (name, claim) in OAUTH2_PROXY {
            let value = id.principal.map_or(String::new(), |p| match claim {
                crate::config::Claim::Email => p.email.clone().unwrap_or_default(),
                crate::config::Claim::Groups => p.groups.join(","),
                _ => p.username.clone(),
            });
            names.push(name);
            out.push((
                Bytes::from_static(name.as_bytes()),
                HeaderValue::try_from(value).unwrap_or_else(|_| empty.clone()),
            ));
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn each_dialect_reads_the_original_request_its_own_way() {
        let nginx = original(
            Dialect::Nginx,
            &Method::GET,
            "",
            &headers(&[
                ("x-original-url", "https://Wiki.Example:8443/a/b?c=d"),
                ("x-original-method", "POST"),
            ]),
        )
        .unwrap();
        assert_eq!(nginx.host.as_str(), "wiki.example");
        assert_eq!(
            (nginx.method.as_str(), nginx.target.as_str(), nginx.tls),
            ("POST", "/a/b?c=d", true)
        );

        let traefik = original(
            Dialect::Traefik,
            &Method::GET,
            "",
            &headers(&[
                ("x-forwarded-method", "DELETE"),
                ("x-forwarded-host", "wiki.example"),
                ("x-forwarded-uri", "/x?y"),
                ("x-forwarded-proto", "http"),
            ]),
        )
        .unwrap();
        assert_eq!(
            (traefik.method.as_str(), traefik.target.as_str(), traefik.tls),
            ("DELETE", "/x?y", false)
        );

        let (dialect, tail) = Dialect::of("/.poolgate/auth/envoy/reports/1?full").unwrap();
        let envoy = original(dialect, &Method::PUT, tail, &headers(&[("host", "wiki.example")])).unwrap();
        assert_eq!(
            (envoy.method.as_str(), envoy.target.as_str()),
            ("PUT", "/reports/1?full")
        );
        assert_eq!(Dialect::of("/.poolgate/auth/envoy"), Some((Dialect::Envoy, "")));
        assert_eq!(Dialect::of("/.poolgate/auth/apache"), None);
        assert_eq!(
            Dialect::of("/.poolgate/auth/caddy?year=2026"),
            Some((Dialect::Caddy, "?year=2026"))
        );
        // Exactly the endpoint: a path a front proxy would clean into another is no check.
        for not_a_check in [
            "/.poolgate/auth/nginx/../../x",
            "/.poolgate/auth/nginx/",
            "/.poolgate/auth/traefik/x?y",
            "/.poolgate/auth/envoy/../../x",
            "/.poolgate/auth/envoy/a/%2e%2e/b",
        ] {
            assert_eq!(Dialect::of(not_a_check), None, "{not_a_check}");
        }

        // nginx's X-Original-URL is read raw: `%2e%2e` is not resolved into another path.
        let raw = original(
            Dialect::Nginx,
            &Method::GET,
            "",
            &headers(&[("x-original-url", "http://wiki.example/secret/%2e%2e/health")]),
        )
        .unwrap();
        assert_eq!(raw.target, "/secret/%2e%2e/health");
    }

    #[test]
    fn an_original_request_that_cannot_be_read_is_refused() {
        for (dialect, h) in [
            (Dialect::Nginx, headers(&[])),
            (Dialect::Nginx, headers(&[("x-original-url", "/relative")])),
            (Dialect::Nginx, headers(&[("x-original-url", "ftp://wiki.example/")])),
            (Dialect::Traefik, headers(&[("x-forwarded-method", "GET")])),
            (
                Dialect::Traefik,
                headers(&[
                    ("x-forwarded-method", "GET"),
                    ("x-forwarded-host", "wiki.example"),
                    ("x-forwarded-host", "evil.example"),
                ]),
            ),
            (
                Dialect::Caddy,
                headers(&[
                    ("x-forwarded-method", "GET"),
                    ("x-forwarded-host", "wiki.example"),
                    ("x-forwarded-uri", "no-slash"),
                ]),
            ),
            (Dialect::Envoy, headers(&[])),
        ] {
            assert!(original(dialect, &Method::GET, "", &h).is_err(), "{dialect:?} {h:?}");
        }
    }
}
