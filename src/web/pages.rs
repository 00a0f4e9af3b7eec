//! Server-rendered pages (minijinja, HTML auto-escaped): they work without JavaScript,
//! show the pool's name, logo and colour, and never say whether a username exists.

use std::sync::OnceLock;

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use minijinja::{Environment, Value, context};

use crate::registry::PoolRoute;

fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.add_filter("datetime", datetime);
        for (name, text) in [
            ("base.html", include_str!("templates/base.html")),
            ("login.html", include_str!("templates/login.html")),
            ("mfa.html", include_str!("templates/mfa.html")),
            ("enroll.html", include_str!("templates/enroll.html")),
            ("recovery.html", include_str!("templates/recovery.html")),
            ("message.html", include_str!("templates/message.html")),
            ("signout.html", include_str!("templates/signout.html")),
            ("notice.html", include_str!("templates/notice.html")),
            ("form_post.html", include_str!("templates/form_post.html")),
            ("link.html", include_str!("templates/link.html")),
            ("account.html", include_str!("templates/account.html")),
            ("console.html", include_str!("templates/console.html")),
            ("console_pools.html", include_str!("templates/console_pools.html")),
            ("console_pool.html", include_str!("templates/console_pool.html")),
            ("console_user.html", include_str!("templates/console_user.html")),
            ("console_app.html", include_str!("templates/console_app.html")),
            ("console_message.html", include_str!("templates/console_message.html")),
        ] {
            if let Err(e) = env.add_template(name, text) {
                tracing::error!(code = "PG0502", template = name, error = %e, "a page template does not parse");
            }
        }
        env
    })
}

/// Unix seconds as a date and time a person reads, in UTC.
fn datetime(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0).map_or_else(String::new, |d| d.format("%Y-%m-%d %H:%M UTC").to_string())
}

/// What every page may load: its own inline style, the pool's logo; no script; forms
/// post to the gateway (or to an app host, for a sign-out's way back); never framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src https: 'self' data:; form-action 'self' https: http:; frame-ancestors 'none'";

/// The page's look: the pool's name, logo and colour, or the gateway's own where no pool
/// is known (a host no pool serves).
fn branding(pool: Option<&PoolRoute>) -> Value {
    match pool {
        Some(pool) => context! {
            pool_name => pool.name,
            color => pool.branding.color,
            logo => pool.branding.logo,
        },
        None => context! {},
    }
}

fn html(pool: Option<&PoolRoute>, template: &str, ctx: Value) -> Result<String, minijinja::Error> {
    let merged = context! { ..ctx, ..branding(pool) };
    env().get_template(template).and_then(|t| t.render(merged))
}

/// Renders a page with the pool's branding merged into `ctx`.
pub fn render(status: StatusCode, pool: &PoolRoute, template: &str, ctx: Value) -> Response {
    render_with(status, Some(pool), template, ctx)
}

/// Renders a page in the pool's look, or the gateway's own (the admin console).
pub fn render_with(status: StatusCode, pool: Option<&PoolRoute>, template: &str, ctx: Value) -> Response {
    match html(pool, template, ctx) {
        Ok(html) => {
            let mut resp = (status, Html(html)).into_response();
            let h = resp.headers_mut();
            h.insert("cache-control", "no-store".parse().unwrap_or_else(|_| unreachable!()));
            h.insert(
                "content-security-policy",
                CONTENT_SECURITY_POLICY.parse().unwrap_or_else(|_| unreachable!()),
            );
            h.insert("x-frame-options", "DENY".parse().unwrap_or_else(|_| unreachable!()));
            resp
        }
        Err(e) => {
            tracing::error!(code = "PG0503", template, error = %e, "a page failed to render");
            (StatusCode::INTERNAL_SERVER_ERROR, "the page could not be shown").into_response()
        }
    }
}

/// `the app did not answer in time` as a sentence on a page: `The app did not answer in time.`
pub fn sentence(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(1)
        .flat_map(char::to_uppercase)
        .chain(s.chars().skip(1))
        .collect();
    if !out.ends_with(['.', '!', '?']) {
        out.push('.');
    }
    out
}

/// The next step a page of the proxy's own offers.
#[derive(Clone, Copy)]
pub enum Next {
    /// Load the same address again (a 502 or 504: the app may be back).
    TryAgain,
    /// Sign out of the pool, to come back as someone else (a 403).
    SignOut,
    /// Nothing the gateway can offer (a host no pool serves, a malformed request).
    CheckAddress,
}

/// A page of the proxy's own (an error, a refusal): the pool's look where the request
/// reached a pool, a next step, and nothing the client sent echoed back.
pub fn notice(
    pool: Option<&PoolRoute>,
    app: Option<&str>,
    status: u16,
    title: &str,
    message: &str,
    next: Next,
) -> String {
    let ctx = context! {
        status => status,
        title => title,
        message => sentence(message),
        app_name => app,
        next => match next {
            Next::TryAgain => "try_again",
            Next::SignOut => "sign_out",
            Next::CheckAddress => "check_address",
        },
    };
    html(pool, "notice.html", ctx).unwrap_or_else(|e| {
        tracing::error!(code = "PG0503", template = "notice.html", error = %e, "a page failed to render");
        format!("<!doctype html><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{status}</title><p>{status}</p>\n")
    })
}

/// A short page with a title, a sentence and optional actions.
pub fn message(
    status: StatusCode,
    pool: &PoolRoute,
    title: &str,
    message: &str,
    link: Option<(&str, &str)>,
) -> Response {
    render(
        status,
        pool,
        "message.html",
        context! {
            title => title,
            message => message,
            link => link.map(|l| l.0),
            link_text => link.map(|l| l.1),
        },
    )
}

/// An otpauth URL as an inline SVG QR code.
pub fn qr_svg(text: &str) -> String {
    let Ok(qr) = qrcodegen::QrCode::encode_text(text, qrcodegen::QrCodeEcc::Medium) else {
        return String::new();
    };
    let size = qr.size();
    let border = 2;
    let mut path = String::new();
    for y in 0..size {
        for x in 0..size {
            if qr.get_module(x, y) {
                path.push_str(&format!("M{},{}h1v1h-1z", x + border, y + border));
            }
        }
    }
    let dim = size + 2 * border;
    format!(
        "<svg class=\"qr\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {dim} {dim}\" role=\"img\" aria-label=\"QR code for your authenticator app\"><rect width=\"100%\" height=\"100%\" fill=\"#fff\"/><path d=\"{path}\" fill=\"#000\"/></svg>"
    )
}
