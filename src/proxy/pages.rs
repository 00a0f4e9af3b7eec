//! The gateway's own answers (403, 421, 502, 504, redirects…): short, honest, and never an
//! echo of anything the client sent. For browsers a page of the portal's templates in the
//! pool's look (`web::pages`), plain text for everything else.

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;

use crate::registry::{AppRoute, PoolRoute};
pub use crate::web::pages::Next;
use crate::web::pages::{CONTENT_SECURITY_POLICY, notice};

/// An answer of the gateway's own: a status, a title and a sentence; for a browser, a page
/// in the look of the pool the request reached (the gateway's own before routing), with
/// the next step a person can take.
pub struct Answer<'a> {
    status: u16,
    title: &'a str,
    detail: &'a str,
    next: Next,
    pool: Option<&'a PoolRoute>,
    app: Option<&'a AppRoute>,
}

impl<'a> Answer<'a> {
    pub fn new(status: u16, title: &'a str, detail: &'a str) -> Answer<'a> {
        let next = if matches!(status, 502..=504) {
            Next::TryAgain
        } else {
            Next::CheckAddress
        };
        Answer {
            status,
            title,
            detail,
            next,
            pool: None,
            app: None,
        }
    }

    /// Worn in the look of the pool (and named for the app) the request reached.
    pub fn at(mut self, pool: &'a PoolRoute, app: Option<&'a AppRoute>) -> Answer<'a> {
        self.pool = Some(pool);
        self.app = app;
        self
    }

    pub fn next(mut self, next: Next) -> Answer<'a> {
        self.next = next;
        self
    }
}

/// Writes a complete response: a page for a browser, a line of text for anything else.
pub async fn respond(session: &mut Session, answer: Answer<'_>) -> pingora::Result<()> {
    respond_with(session, answer, &[]).await
}

/// The same, with extra response headers.
pub async fn respond_with(session: &mut Session, answer: Answer<'_>, extra: &[(&str, String)]) -> pingora::Result<()> {
    let wants_html = session
        .req_header()
        .headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    let Answer {
        status,
        title,
        detail,
        next,
        pool,
        app,
    } = answer;
    let (body, content_type) = if wants_html {
        let app = app.map(|a| a.name.as_str());
        (
            notice(pool, app, status, title, detail, next),
            "text/html; charset=utf-8",
        )
    } else {
        (format!("{status} {title}: {detail}\n"), "text/plain; charset=utf-8")
    };
    send(session, status, content_type, body, extra).await
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

/// A bodiless answer to a machine (a front proxy's check): status and headers as given,
/// none of the page headers.
pub async fn bare(session: &mut Session, status: u16, headers: Vec<(Bytes, http::HeaderValue)>) -> pingora::Result<()> {
    let mut resp = ResponseHeader::build(status, Some(headers.len() + 2))?;
    for (name, value) in headers {
        resp.append_header(name, value)?;
    }
    resp.insert_header(http::header::CONTENT_LENGTH, 0)?;
    resp.insert_header(http::header::X_CONTENT_TYPE_OPTIONS, "nosniff")?;
    session.write_response_header(Box::new(resp), true).await
}

async fn write(session: &mut Session, mut resp: ResponseHeader, body: Bytes) -> pingora::Result<()> {
    // Every answer of the gateway's own: not to be sniffed into another type, nor framed
    // by another site (a page with a sign-out button included).
    resp.insert_header(http::header::X_CONTENT_TYPE_OPTIONS, "nosniff")?;
    resp.insert_header(http::header::X_FRAME_OPTIONS, "DENY")?;
    resp.insert_header(http::header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY)?;
    let head_only = session.req_header().method == http::Method::HEAD;
    session.write_response_header(Box::new(resp), false).await?;
    session
        .write_response_body(if head_only { None } else { Some(body) }, true)
        .await
}
