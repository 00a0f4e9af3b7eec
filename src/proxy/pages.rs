//! The gateway's own answers (421, 502, 504, redirects…): short, honest, and never an
//! echo of anything the client sent. HTML for browsers, plain text for everything else.

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;

/// Writes a complete response with a small page explaining `status`.
pub async fn respond(session: &mut Session, status: u16, title: &str, detail: &str) -> pingora::Result<()> {
    let wants_html = session
        .req_header()
        .headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    let (body, content_type) = if wants_html {
        (
            format!(
                "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{status} {title}</title></head>\
                 <body><main><h1>{title}</h1><p>{detail}</p><p><small>poolgate</small></p></main></body></html>\n",
                title = escape(title),
                detail = escape(detail)
            ),
            "text/html; charset=utf-8",
        )
    } else {
        (format!("{status} {title}: {detail}\n"), "text/plain; charset=utf-8")
    };
    let mut resp = ResponseHeader::build(status, Some(4))?;
    resp.insert_header(http::header::CONTENT_TYPE, content_type)?;
    resp.insert_header(http::header::CONTENT_LENGTH, body.len())?;
    resp.insert_header(http::header::CACHE_CONTROL, "no-store")?;
    write(session, resp, Bytes::from(body)).await
}

/// A redirect with an empty body.
pub async fn redirect(session: &mut Session, status: u16, location: &str) -> pingora::Result<()> {
    let mut resp = ResponseHeader::build(status, Some(3))?;
    resp.insert_header(http::header::LOCATION, location)?;
    resp.insert_header(http::header::CONTENT_LENGTH, 0)?;
    write(session, resp, Bytes::new()).await
}

async fn write(session: &mut Session, resp: ResponseHeader, body: Bytes) -> pingora::Result<()> {
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
