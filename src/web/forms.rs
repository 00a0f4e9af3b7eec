//! What makes a form post trustworthy: a CSRF token the server can verify, and the
//! origin the browser says the post came from.
//!
//! A token is a random value sealed with the pool's key for this host, carried both in a
//! cookie (`SameSite=Strict`) and in the form; it is accepted only when the two match and
//! it opens with the key, so a value the client makes up is never one.

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use minijinja::context;

use super::sealed::{equal, open, random_token, seal};
use crate::session::cookie::Cookie;
use crate::web::context::Ctx;
use crate::web::pages;

fn purpose(ctx: &Ctx) -> String {
    format!("csrf\0{}", ctx.authority.to_ascii_lowercase())
}

fn genuine(ctx: &Ctx, token: &str) -> bool {
    open::<String>(&ctx.pool, &purpose(ctx), token).is_some()
}

/// This browser's CSRF token for forms on this host, and a `Set-Cookie` when it had no
/// genuine one.
pub fn csrf_token(ctx: &Ctx, headers: &HeaderMap) -> (String, Option<String>) {
    match Cookie::Csrf.values(headers, ctx.tls).find(|t| genuine(ctx, t)) {
        Some(t) => (t.to_owned(), None),
        _ => {
            let t = seal(&ctx.pool, &purpose(ctx), &random_token(16));
            let set = Cookie::Csrf.set(ctx.tls, &t, None);
            (t, Some(set))
        }
    }
}

/// A page with a form: the browser's CSRF token goes in as `csrf`, and a CSRF cookie is set
/// if it had none.
pub fn form_page(
    ctx: &Ctx,
    headers: &HeaderMap,
    status: StatusCode,
    template: &str,
    values: minijinja::Value,
) -> Response {
    let (token, set) = csrf_token(ctx, headers);
    let page = pages::render(status, &ctx.pool, template, context! { csrf => token, ..values });
    with_cookie(page, set)
}

fn with_cookie(resp: Response, set: Option<String>) -> Response {
    match set {
        Some(c) => ([(header::SET_COOKIE, c)], resp).into_response(),
        None => resp,
    }
}

/// The token posted with a form is this browser's, and was made by this server.
pub fn csrf_ok(ctx: &Ctx, headers: &HeaderMap, presented: &str) -> bool {
    Cookie::Csrf
        .values(headers, ctx.tls)
        .any(|c| equal(c, presented) && genuine(ctx, c))
}

/// A post that changes what a person is signed in to (signing out): its token is genuine
/// and the browser says it came from this very origin.
pub fn same_origin_post(ctx: &Ctx, headers: &HeaderMap, csrf: &str) -> bool {
    provenance(ctx, headers) == Provenance::SameOrigin && csrf_ok(ctx, headers, csrf)
}

/// A form post to act on: its token is genuine, and the browser does not say it came
/// from elsewhere.
pub fn post_ok(ctx: &Ctx, headers: &HeaderMap, csrf: &str) -> bool {
    provenance(ctx, headers) != Provenance::CrossOrigin && csrf_ok(ctx, headers, csrf)
}

/// Where a browser says a request came from (`Origin`, or `Sec-Fetch-Site`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provenance {
    /// A page of this very origin.
    SameOrigin,
    /// Another site, or another host of ours.
    CrossOrigin,
    /// The client did not say (not a browser, or an old one).
    Unsaid,
}

/// `Origin: null` says nothing by itself: browsers send it for a form posted from a page
/// with `Referrer-Policy: no-referrer` (as the portal's pages are), and from sandboxed or
/// opaque origins; `Sec-Fetch-Site`, sent beside it, tells those apart.
pub fn provenance(ctx: &Ctx, headers: &HeaderMap) -> Provenance {
    if let Some(origin) = headers.get(header::ORIGIN).filter(|o| o.as_bytes() != b"null") {
        let own = format!("{}://{}", ctx.scheme(), ctx.authority);
        return match origin.to_str() {
            Ok(o) if o.eq_ignore_ascii_case(&own) => Provenance::SameOrigin,
            _ => Provenance::CrossOrigin,
        };
    }
    match headers.get("sec-fetch-site").map(|v| v.as_bytes()) {
        Some(b"same-origin") => Provenance::SameOrigin,
        Some(b"none") | None => Provenance::Unsaid,
        Some(_) => Provenance::CrossOrigin,
    }
}

/// A URL or path fit to send back in `Location`: printable ASCII (no control character,
/// no space, nothing past ASCII) and no backslash, which a browser reads as a slash.
pub fn printable_url(raw: &str) -> bool {
    raw.bytes().all(|b| b.is_ascii_graphic() && b != b'\\')
}

/// The longest value each kind of form field may hold. Checked before any work is done
/// (no lookup, no password hash, no audit row), so an oversized field costs nothing.
pub mod limits {
    /// A username or an email address.
    pub const LOGIN: usize = 256;
    pub const PASSWORD: usize = 1024;
    /// A TOTP code (six digits) or a recovery code (`xxxxx-xxxxx`), with some spacing.
    pub const CODE: usize = 32;
    pub const CSRF: usize = 256;
    /// A sealed value the page carries (the authorization request, a pending sign-in).
    pub const SEALED: usize = 8 * 1024;
    /// A URL (a post-logout redirect URI) or an OAuth `state`.
    pub const URL: usize = 2048;
}

/// 400 when any field is longer than its limit: `(value, limit)` pairs.
pub fn refuse_oversized(ctx: &Ctx, fields: &[(&str, usize)]) -> Option<Response> {
    fields
        .iter()
        .any(|(value, max)| value.len() > *max)
        .then(|| unreadable_form(ctx))
}

/// 400: a form that cannot be what it claims to be.
pub fn unreadable_form(ctx: &Ctx) -> Response {
    pages::message(
        StatusCode::BAD_REQUEST,
        &ctx.pool,
        "This form could not be read",
        "A field was longer than this form allows, or not of its kind. Go back and try again.",
        None,
    )
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use axum::http::HeaderValue;

    use super::*;
    use crate::config::Config;
    use crate::crypto::MasterKey;
    use crate::ids::PoolId;
    use crate::registry::{PoolKeys, Snapshot};

    fn pool() -> Arc<crate::registry::PoolRoute> {
        let text = "version = 1\n[listen]\nhttp = \"127.0.0.1:8080\"\n[pools.p]\nname = \"P\"\nportal = \"login.p.localhost\"\n";
        let config = Config::parse(text, std::path::Path::new(".")).unwrap();
        let master = MasterKey::generate().unwrap();
        let keys = PoolKeys::generate(&master, "p").unwrap();
        let keys = HashMap::from([(PoolId::parse("p").unwrap(), Arc::new(keys))]);
        Snapshot::build(config, None, keys).unwrap().pool("p").unwrap()
    }

    fn ctx(pool: &Arc<crate::registry::PoolRoute>, authority: &str) -> Ctx {
        Ctx {
            pool: pool.clone(),
            app: None,
            tls: false,
            authority: authority.into(),
            client: None,
        }
    }

    fn with_cookie(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("poolgate-csrf={token}")).unwrap(),
        );
        h
    }

    #[test]
    fn only_tokens_this_server_made_for_this_host_pass() {
        let pool = pool();
        let here = ctx(&pool, "login.p.localhost:8080");
        let (token, set) = csrf_token(&here, &HeaderMap::new());
        assert!(set.is_some());
        assert!(csrf_ok(&here, &with_cookie(&token), &token));
        let chosen = "a".repeat(40);
        assert!(
            !csrf_ok(&here, &with_cookie(&chosen), &chosen),
            "a value the client chose"
        );
        assert!(!csrf_ok(&here, &with_cookie(&token), "other"), "cookie and form differ");
        let elsewhere = ctx(&pool, "wiki.p.localhost:8080");
        assert!(
            !csrf_ok(&elsewhere, &with_cookie(&token), &token),
            "another host's token"
        );
    }

    #[test]
    fn printable_urls_only() {
        assert!(printable_url("https://wiki.p.localhost/a?b=c%20d"));
        for bad in [
            "http://a/\u{1}",
            "http://a/\\x",
            "http://a/ b",
            "http://a/\u{7f}",
            "/caf\u{e9}",
            "/a\r\n",
        ] {
            assert!(!printable_url(bad), "{bad:?}");
        }
    }

    #[test]
    fn provenance_follows_origin_then_fetch_metadata() {
        let here = ctx(&pool(), "login.p.localhost:8080");
        let mut h = HeaderMap::new();
        assert_eq!(provenance(&here, &h), Provenance::Unsaid);
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert_eq!(provenance(&here, &h), Provenance::CrossOrigin);
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://LOGIN.p.localhost:8080"),
        );
        assert_eq!(provenance(&here, &h), Provenance::SameOrigin);
        h.insert(header::ORIGIN, HeaderValue::from_static("http://evil.localhost:8080"));
        assert_eq!(provenance(&here, &h), Provenance::CrossOrigin);
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert_eq!(
            provenance(&here, &h),
            Provenance::CrossOrigin,
            "null, from another site"
        );
        h.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert_eq!(
            provenance(&here, &h),
            Provenance::SameOrigin,
            "null under no-referrer, from this site"
        );
        h.remove("sec-fetch-site");
        assert_eq!(provenance(&here, &h), Provenance::Unsaid);
    }
}
