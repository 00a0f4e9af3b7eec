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
        for (name, text) in [
            ("base.html", include_str!("templates/base.html")),
            ("login.html", include_str!("templates/login.html")),
            ("mfa.html", include_str!("templates/mfa.html")),
            ("enroll.html", include_str!("templates/enroll.html")),
            ("recovery.html", include_str!("templates/recovery.html")),
            ("message.html", include_str!("templates/message.html")),
            ("signout.html", include_str!("templates/signout.html")),
        ] {
            if let Err(e) = env.add_template(name, text) {
                tracing::error!(code = "PG0502", template = name, error = %e, "a page template does not parse");
            }
        }
        env
    })
}

/// Renders a page with the pool's branding merged into `ctx`.
pub fn render(status: StatusCode, pool: &PoolRoute, template: &str, ctx: Value) -> Response {
    let base = context! {
        pool_name => pool.name,
        color => pool.branding.color,
        logo => pool.branding.logo,
    };
    let merged = context! { ..ctx, ..base };
    match env().get_template(template).and_then(|t| t.render(merged)) {
        Ok(html) => {
            let mut resp = (status, Html(html)).into_response();
            let h = resp.headers_mut();
            h.insert("cache-control", "no-store".parse().unwrap_or_else(|_| unreachable!()));
            h.insert(
                "content-security-policy",
                "default-src 'none'; style-src 'unsafe-inline'; img-src https: 'self' data:; form-action 'self' https: http:; frame-ancestors 'none'"
                    .parse()
                    .unwrap_or_else(|_| unreachable!()),
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
