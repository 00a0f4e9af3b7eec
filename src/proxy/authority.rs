//! Which host a request is for. `Host`, an absolute-form target (or HTTP/2 `:authority`)
//! and the TLS SNI must all name the same host; a request that disagrees with itself is
//! refused rather than routed by whichever name suits the attacker.

use http::header::HOST;
use pingora::http::RequestHeader;
use pingora::http::authority::{RawTargetAuthority, raw_target_authority};

use crate::ids::Host;

/// Why a request's host could not be settled.
#[derive(Debug, PartialEq, Eq)]
pub enum Reject {
    /// 400: missing, malformed or contradictory host names.
    BadRequest(&'static str),
    /// 421: the request names a host other than the one this TLS connection was opened for.
    Misdirected,
}

pub fn request_host(req: &RequestHeader, sni: Option<&str>) -> Result<Host, Reject> {
    let mut host_headers = req.headers.get_all(HOST).iter();
    let header = host_headers.next();
    if host_headers.next().is_some() {
        return Err(Reject::BadRequest("more than one Host header"));
    }
    let from_header = header
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|s| Host::from_authority(s).ok())
                .ok_or(Reject::BadRequest("malformed Host header"))
        })
        .transpose()?;
    let from_target = target_authority(req)?
        .map(|a| Host::from_authority(&a).map_err(|_| Reject::BadRequest("malformed request target")))
        .transpose()?;
    let host = match (from_header, from_target) {
        (Some(h), Some(t)) if h != t => {
            return Err(Reject::BadRequest("Host and the request target name different hosts"));
        }
        (Some(h), _) => h,
        (None, Some(t)) => t,
        (None, None) => return Err(Reject::BadRequest("no Host header")),
    };
    if let Some(sni) = sni
        && Host::parse(sni).ok().as_ref() != Some(&host)
    {
        return Err(Reject::Misdirected);
    }
    Ok(host)
}

/// The authority a request target carries: HTTP/2 `:authority` (in the URI), or an HTTP/1
/// absolute-form target, read with the same classifier Pingora forwards by. A target whose
/// authority a parser could read two ways is refused.
fn target_authority(req: &RequestHeader) -> Result<Option<String>, Reject> {
    if let Some(a) = req.uri.authority() {
        return Ok(Some(a.as_str().to_owned()));
    }
    match raw_target_authority(req.raw_path()) {
        RawTargetAuthority::None => Ok(None),
        RawTargetAuthority::AmbiguousAuthority => Err(Reject::BadRequest("ambiguous request target")),
        RawTargetAuthority::Absolute { authority, .. } => std::str::from_utf8(authority)
            .map(|a| Some(a.to_owned()))
            .map_err(|_| Reject::BadRequest("malformed request target")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(target: &str, hosts: &[&str]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", target.as_bytes(), None).unwrap();
        for h in hosts {
            r.append_header("Host", *h).unwrap();
        }
        r
    }

    #[test]
    fn settles_on_one_host() {
        assert_eq!(
            request_host(&req("/", &["Wiki.Localhost:8080"]), None)
                .unwrap()
                .as_str(),
            "wiki.localhost"
        );
        assert_eq!(
            request_host(&req("http://wiki.localhost/x", &["wiki.localhost"]), None)
                .unwrap()
                .as_str(),
            "wiki.localhost"
        );
        assert_eq!(
            request_host(&req("http://wiki.localhost/x", &[]), None)
                .unwrap()
                .as_str(),
            "wiki.localhost"
        );
        assert_eq!(
            request_host(&req("/", &["wiki.localhost"]), Some("WIKI.localhost"))
                .unwrap()
                .as_str(),
            "wiki.localhost"
        );
    }

    #[test]
    fn refuses_contradictions() {
        assert_eq!(
            request_host(&req("/", &[]), None),
            Err(Reject::BadRequest("no Host header"))
        );
        assert!(matches!(
            request_host(&req("/", &["a.localhost", "b.localhost"]), None),
            Err(Reject::BadRequest(_))
        ));
        assert!(matches!(
            request_host(&req("http://evil.localhost/", &["wiki.localhost"]), None),
            Err(Reject::BadRequest(_))
        ));
        assert!(matches!(
            request_host(&req("/", &["wiki.localhost/../x"]), None),
            Err(Reject::BadRequest(_))
        ));
        assert_eq!(
            request_host(&req("/", &["wiki.localhost"]), Some("other.localhost")),
            Err(Reject::Misdirected)
        );
    }
}
