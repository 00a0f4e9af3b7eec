//! The gateway's own answers (421, 502, 504, redirects…): short, honest, and never an
//! echo of anything the client sent. HTML for browsers, plain text for everything else.

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;

/// Writes a complete response with a small page explaining `status`.
pub async fn respond(session: &mut Session, status: u16, title: &str, detail: &str) -> pingora::Result<()> {
    respond_with(session, status, title, detail, &[]).await
}

/// The same, with extra response headers.
pub async fn respond_with(
    session: &mut Session,
    status: u16,
    title: &str,
    detail: &str,
    extra: &[(&str, String)],
) -> pingora::Result<()> {
    let wants_html = session
        .req_header()
        .headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    let (body, content_type) = if wants_html {
        (
            page(status, title, &format!("<p>{}</p>", escape(detail))),
            "text/html; charset=utf-8",
        )
    } else {
        (format!("{status} {title}: {detail}\n"), "text/plain; charset=utf-8")
    };
    send(session, status, content_type, body, extra).await
}

/// 403 for a signed-in user the app's policy turns away, with a way to sign out.
pub async fn denied(session: &mut Session, pool_name: &str, detail: &str) -> pingora::Result<()> {
    let body = page(
        403,
        "Access denied",
        &format!(
            "<p>{}</p><form method=\"get\" action=\"/.poolgate/logout\"><button type=\"submit\">Sign out of {}</button></form>",
            escape(detail),
            escape(pool_name)
        ),
    );
    send(session, 403, "text/html; charset=utf-8", body, &[]).await
}

/// A response with no body (a CORS preflight answer).
pub async fn empty(session: &mut Session, status: u16, headers: &[(&str, String)]) -> pingora::Result<()> {
    let mut resp = ResponseHeader::build(status, Some(headers.len() + 1))?;
    for (name, value) in headers {
        resp.insert_header(name.to_string(), value.as_str())?;
    }
    resp.insert_header(http::header::CONTENT_LENGTH, 0)?;
    write(session, resp, Bytes::new()).await
}

fn page(status: u16, title: &str, body_html: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{status} {title}</title></head>\
         <body><main><h1>{title}</h1>{body_html}<p><small>poolgate</small></p></main></body></html>\n",
        title = escape(title),
    )
}

async fn send(
    session: &mut Session,
    status: u16,
    content_type: &str,
    body: String,
    extra: &[(&str, String)],
) -> pingora::Result<()> {
    let mut resp = ResponseHeader::build(status, Some(4 + extra.len()))?;
    resp.insert_header(http::header::CONTENT_TYPE, content_type)?;
    resp.insert_header(http::header::CONTENT_LENGTH, body.len())?;
    resp.insert_header(http::header::CACHE_CONTROL, "no-store")?;
    for (name, value) in extra {
        resp.insert_header(name.to_string(), value.as_str())?;
    }
    write(session, resp, Bytes::from(body)).await
}

/// A redirect with an empty body.
pub async fn redirect(session: &mut Session, status: u16, location: &str) -> pingora::Result<()> {
    let mut resp = ResponseHeader::build(status, Some(6))?;
    resp.insert_header(http::header::LOCATION, location)?;
    resp.insert_header(http::header::CACHE_CONTROL, "no-store")?;
    resp.insert_header(http::header::CONTENT_LENGTH, 0)?;
    write(session, resp, Bytes::new()).await
}

async fn write(session: &mut Session, mut resp: ResponseHeader, body: Bytes) -> pingora::Result<()> {
    // Every answer of the gateway's own: not to be sniffed into another type, nor framed
    // by another site (a page with a sign-out button included).
    resp.insert_header(http::header::X_CONTENT_TYPE_OPTIONS, "nosniff")?;
    resp.insert_header(http::header::X_FRAME_OPTIONS, "DENY")?;
    resp.insert_header(http::header::CONTENT_SECURITY_POLICY, "frame-ancestors 'none'")?;
    let head_only = session.req_header().method == http::Method::HEAD;
    session.write_response_header(Box::new(resp), false).await?;
    session
        .write_response_body(if head_only { None } else { Some(body) }, true)
        .await
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
