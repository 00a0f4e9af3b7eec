//! The app's rules, read without Pingora: who its policy lets in, which paths are public,
//! which requests are a browser's, and what CORS allows.

use http::{HeaderMap, Method};

use crate::config::Cors;
use crate::registry::AppRoute;
use crate::session::Principal;

/// Why the app's policy turned a signed-in user away.
pub enum Denied {
    /// The app needs MFA and this session has none: a browser can step up.
    NeedsMfa,
    Forbidden,
}

pub fn authorize(app: &AppRoute, p: &Principal) -> Result<(), Denied> {
    let policy = &app.policy;
    if !policy.allowed_groups.is_empty() && !p.groups.iter().any(|g| policy.allowed_groups.contains(g)) {
        return Err(Denied::Forbidden);
    }
    if !policy.allowed_sources.is_empty() && !policy.allowed_sources.contains(&p.source) {
        return Err(Denied::Forbidden);
    }
    if policy.require_mfa && !p.mfa {
        return Err(Denied::NeedsMfa);
    }
    Ok(())
}

/// A browser navigation (which gets the portal) rather than an API call (which gets 401).
pub fn is_browser(method: &Method, headers: &HeaderMap) -> bool {
    (method == Method::GET || method == Method::HEAD) && wants_page(headers)
}

/// A person's browser (it takes HTML and is not a script), whatever the method.
pub fn wants_page(headers: &HeaderMap) -> bool {
    let html = headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    html && !headers.contains_key("x-requested-with")
}

/// A CORS preflight: `OPTIONS` with `Origin` and `Access-Control-Request-Method`.
pub fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::OPTIONS
        && headers.contains_key(http::header::ORIGIN)
        && headers.contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// The origin of a request if the app's CORS config allows it.
pub fn allowed_origin<'a>(headers: &'a HeaderMap, cors: &Cors) -> Option<&'a str> {
    let origin = headers.get(http::header::ORIGIN)?.to_str().ok()?;
    let lower = origin.to_ascii_lowercase();
    cors.origins.iter().any(|o| o == "*" || *o == lower).then_some(origin)
}

/// Whether `path` is under one of the app's public paths. A path a server could read
/// differently than we do is never public: dot segments, doubled or encoded slashes,
/// backslashes, `;` parameters, and any escape that decodes to something other than a
/// plain printable ASCII character (`%25` for a second decoding, `%00`, bytes of UTF-8
/// that a lenient backend might fold — overlong forms, dot look-alikes — or `%u` escapes),
/// and any raw byte outside printable ASCII.
pub fn is_public(path: &str, public: &[String]) -> bool {
    if public.is_empty() || !plain_path(path) {
        return false;
    }
    public.iter().any(|p| {
        if p.ends_with('/') {
            path.starts_with(p.as_str())
        } else {
            path == p || path.strip_prefix(p.as_str()).is_some_and(|rest| rest.starts_with('/'))
        }
    })
}

/// A path (with its query) that every server reads the same way.
pub fn plain_target(target: &str) -> bool {
    plain_path(target.split_once('?').map_or(target, |(p, _)| p))
}

/// A path that every server reads the same way.
fn plain_path(path: &str) -> bool {
    let b = path.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = |c: u8| (c as char).to_digit(16);
                let (Some(hi), Some(lo)) = (b.get(i + 1).and_then(|c| hex(*c)), b.get(i + 2).and_then(|c| hex(*c)))
                else {
                    return false; // `%u002e`, a lone `%`
                };
                let decoded = (hi * 16 + lo) as u8;
                if (!decoded.is_ascii_graphic() && decoded != b' ') || b"%./\\;".contains(&decoded) {
                    return false;
                }
                i += 3;
            }
            b'\\' | b';' => return false,
            c if !c.is_ascii_graphic() => return false,
            _ => i += 1,
        }
    }
    !(path.contains("//")
        || path.contains("/./")
        || path.contains("/../")
        || path.ends_with("/.")
        || path.ends_with("/.."))
}

#[cfg(test)]
mod tests {
    use super::is_public;

    #[test]
    fn public_paths_match_whole_segments_and_refuse_tricks() {
        let public = vec!["/health".to_owned(), "/static/".to_owned()];
        for yes in [
            "/health",
            "/health/deep",
            "/static/app.js",
            "/static/my%20file.css",
            "/static/%41.js",
        ] {
            assert!(is_public(yes, &public), "{yes}");
        }
        for no in [
            "/healthz",
            "/static",
            "/health/../admin",
            "/static/..%2fadmin",
            "/static/%2e%2e/admin",
            "//health",
            "/static/./x",
            "/health;x",
            "/admin",
            "/static/%252e%252e/secret",
            "/static/%25",
            "/static/%00/../secret",
            "/static/%00",
            "/static/x%01",
            "/static/%7f",
            "/static/%c0%ae%c0%ae/secret",
            "/static/%e2%80%a5/secret",
            "/static/%ef%bc%8e%ef%bc%8e/secret",
            "/static/%u002e%u002e/secret",
            "/static/%zz",
            "/static/%",
            "/static/\u{2025}/secret",
            "/static/\u{ff0e}\u{ff0e}/secret",
            "/static/caf\u{e9}",
        ] {
            assert!(!is_public(no, &public), "{no}");
        }
    }
}
