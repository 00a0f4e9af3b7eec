//! What the upstream may believe: identity headers are stripped from every client request
//! (in every spelling an app could read as one of them), and `X-Forwarded-*` is the
//! gateway's own unless the peer is a trusted proxy.

use std::io::Write;
use std::net::IpAddr;
use std::sync::LazyLock;

use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use ipnet::IpNet;
use pingora::OrErr;
use pingora::http::{RequestHeader, ResponseHeader};

use crate::config::IdentityHeaders;
use crate::wire::StripSet;

/// Walks the request's headers once and removes every name `set` matches, then cleans
/// `Connection` of any token naming a header we set (a client could otherwise ask the next
/// hop to drop them).
pub fn strip(set: &StripSet, req: &mut RequestHeader, trusted_peer: bool) {
    let doomed: Vec<http::HeaderName> = req
        .headers
        .keys()
        .filter(|name| set.matches(name.as_str(), trusted_peer))
        .cloned()
        .collect();
    for name in doomed {
        req.remove_header(&name);
    }
    if !req.headers.contains_key(http::header::CONNECTION) {
        return;
    }
    let connection: Vec<String> = req
        .headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty() && !set.matches(t, trusted_peer))
        .map(str::to_owned)
        .collect();
    req.remove_header(&http::header::CONNECTION);
    if let Ok(v) = HeaderValue::from_str(&connection.join(", "))
        && !connection.is_empty()
    {
        let _ = req.insert_header(http::header::CONNECTION, v);
    }
}

/// What no client may send to the portal: poolgate's identity headers and the headers the
/// proxy uses to vouch for a portal request.
pub fn portal_strip_set() -> &'static StripSet {
    static SET: LazyLock<StripSet> = LazyLock::new(|| IdentityHeaders::default().strip_set());
    &SET
}

/// Removes every `Set-Cookie` of an upstream's response that names one of the gateway's
/// cookies, in any case and with any attributes: an app cannot sign its users in or out,
/// nor plant a cookie on the portal or a sibling app through a parent `Domain`.
pub fn drop_gateway_set_cookies(resp: &mut ResponseHeader) {
    let ours = |v: &HeaderValue| {
        let name = v.as_bytes().split(|b| *b == b'=').next().unwrap_or_default();
        std::str::from_utf8(name).is_ok_and(|n| crate::session::cookie::is_gateway_cookie(n.trim()))
    };
    if !resp.headers.get_all(http::header::SET_COOKIE).iter().any(ours) {
        return;
    }
    let kept: Vec<HeaderValue> = resp
        .headers
        .get_all(http::header::SET_COOKIE)
        .iter()
        .filter(|v| !ours(v))
        .cloned()
        .collect();
    resp.remove_header(&http::header::SET_COOKIE);
    for v in kept {
        let _ = resp.append_header(http::header::SET_COOKIE, v);
    }
}

/// Whether the peer's own forwarding headers are believed.
pub fn is_trusted(peer: Option<IpAddr>, trusted: &[IpNet]) -> bool {
    peer.is_some_and(|ip| trusted.iter().any(|net| net.contains(&ip)))
}

/// Sets `X-Forwarded-For/-Proto/-Host`. From a trusted proxy the chain is extended and its
/// proto and host kept; from anyone else they were stripped and are written fresh.
pub fn set_forwarded(req: &mut RequestHeader, peer: Option<IpAddr>, proto: &str, host: &str) -> pingora::Result<()> {
    static FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
    static PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
    static HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
    if let Some(ip) = peer {
        let mut chain = Vec::with_capacity(48);
        for prior in req.headers.get_all(&FOR) {
            chain.extend_from_slice(prior.as_bytes());
            chain.extend_from_slice(b", ");
        }
        let _ = write!(chain, "{ip}");
        let chain = HeaderValue::from_maybe_shared(Bytes::from(chain))
            .or_err(pingora::ErrorType::InvalidHTTPHeader, "forwarding chain")?;
        req.insert_header(FOR.as_str(), chain)?;
    }
    if !req.headers.contains_key(&PROTO) {
        req.insert_header(PROTO.as_str(), proto)?;
    }
    if !req.headers.contains_key(&HOST) {
        req.insert_header(HOST.as_str(), host)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)]) -> RequestHeader {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        for (k, v) in headers {
            req.append_header(k.to_string(), *v).unwrap();
        }
        req
    }

    #[test]
    fn strips_every_spelling_of_identity_headers() {
        let set = IdentityHeaders::default().strip_set();
        let mut req = request(&[
            ("X-Poolgate-User", "admin"),
            ("x-poolgate-user", "admin2"),
            ("X_Poolgate_Groups", "root"),
            ("X-POOLGATE-EMAIL", "a@b"),
            ("X-Forwarded-For", "6.6.6.6"),
            ("Forwarded", "for=6.6.6.6"),
            ("Connection", "keep-alive, X-Poolgate-Pool"),
            ("Accept", "text/html"),
        ]);
        strip(&set, &mut req, false);
        let names: Vec<&str> = req.headers.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, vec!["accept", "connection"]);
        assert_eq!(req.headers["connection"], "keep-alive");
    }

    #[test]
    fn an_upstream_cannot_set_the_gateway_cookies() {
        let mut resp = ResponseHeader::build(200, None).unwrap();
        for v in [
            "poolgate=forged; Path=/",
            "PoolGate-SSO=x; Domain=.employees.localhost",
            " __host-poolgate = y",
            "__Host-poolgate-login=z; Path=/other",
            "app=1; Path=/",
            "poolgatex=2",
        ] {
            resp.append_header("set-cookie", v).unwrap();
        }
        drop_gateway_set_cookies(&mut resp);
        let left: Vec<&str> = resp
            .headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(left, ["app=1; Path=/", "poolgatex=2"]);
    }

    #[test]
    fn conventional_identity_names_and_path_overrides_are_stripped() {
        let set = IdentityHeaders::default().strip_set();
        let spoofed = [
            ("Remote-User", "admin"),
            ("REMOTE_USER", "admin"),
            ("X-Remote-User", "admin"),
            ("X-Forwarded-User", "admin"),
            ("X-Forwarded-Email", "admin@x"),
            ("X-Forwarded-Preferred-Username", "admin"),
            ("X-Forwarded-Groups", "admins"),
            ("X-Auth-Request-User", "admin"),
            ("x_auth_request_email", "admin@x"),
            ("X-Authenticated-User", "admin"),
            ("X-WEBAUTH-USER", "admin"),
            ("X-Original-URL", "/admin"),
            ("X-Rewrite-URL", "/admin"),
            ("Accept", "*/*"),
        ];
        let mut req = request(&spoofed);
        strip(&set, &mut req, false);
        let names: Vec<&str> = req.headers.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, vec!["accept"]);
        // A trusted proxy's word on who is signed in is its own; a path override never is.
        let mut req = request(&spoofed);
        strip(&set, &mut req, true);
        assert!(req.headers.contains_key("x-forwarded-user"));
        assert!(req.headers.contains_key("x-auth-request-user"));
        assert!(!req.headers.contains_key("x-original-url"));
        assert!(!req.headers.contains_key("x-rewrite-url"));
    }

    #[test]
    fn trusted_peer_keeps_forwarding_headers_but_never_identity() {
        let set = IdentityHeaders::default().strip_set();
        let mut req = request(&[("X-Forwarded-For", "10.1.1.1"), ("X-Poolgate-User", "x")]);
        strip(&set, &mut req, true);
        set_forwarded(&mut req, Some("10.0.0.2".parse().unwrap()), "http", "a.localhost").unwrap();
        assert_eq!(req.headers["x-forwarded-for"], "10.1.1.1, 10.0.0.2");
        assert!(!req.headers.contains_key("x-poolgate-user"));
    }
}
