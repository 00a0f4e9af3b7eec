//! The Pingora `ProxyHttp` implementation: the hot path of DESIGN.md §2.
//!
//! ```text
//! request_filter           authority::request_host → registry snapshot → Route
//!   ├─ unknown host        421, no default pool
//!   ├─ Portal(pool)        served in-process (portal page)
//!   └─ App(pool, app)      https redirect if asked, else forward
//! upstream_peer            app's upstream: round-robin over healthy servers, timeouts
//! upstream_request_filter  strip identity + untrusted X-Forwarded-*, then set ours, X-Request-Id
//! response_filter          X-Request-Id back to the client
//! fail_to_proxy            502 (refused / no healthy server), 504 (too slow)
//! logging                  access log line + metrics
//! ```
//! The hot path reads one snapshot and touches no database.

mod authority;
mod headers;
mod pages;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::HttpPeer;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::{Error, ErrorSource, ErrorType};

use crate::admin::metrics::{Metrics, NONE};
use crate::registry::{Registry, Route};
use crate::tls::Sni;

pub use headers::{StripSet, header_key};

/// The gateway's proxy logic, shared by every listener.
pub struct Gateway {
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
}

impl Gateway {
    pub fn new(registry: Arc<Registry>, metrics: Arc<Metrics>) -> Gateway {
        Gateway { registry, metrics }
    }
}

/// What one request learns on its way through the phases.
pub struct RequestCtx {
    request_id: String,
    started: Instant,
    route: Option<Route>,
    host: Option<String>,
    tls: bool,
    trusted_peer: bool,
    counted_active: bool,
    upstream_started: Option<Instant>,
    upstream_time: Option<Duration>,
}

fn peer_ip(session: &Session) -> Option<IpAddr> {
    session.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip())
}

fn sni(session: &Session) -> (bool, Option<String>) {
    match session.digest().and_then(|d| d.ssl_digest.as_ref()) {
        Some(ssl) => (true, ssl.extension.get::<Sni>().map(|s| s.0.clone())),
        None => (false, None),
    }
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            request_id: uuid::Uuid::new_v4().simple().to_string(),
            started: Instant::now(),
            route: None,
            host: None,
            tls: false,
            trusted_peer: false,
            counted_active: false,
            upstream_started: None,
            upstream_time: None,
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> pingora::Result<bool> {
        let (tls, sni) = sni(session);
        ctx.tls = tls;
        let snapshot = self.registry.snapshot();
        ctx.trusted_peer = headers::is_trusted(peer_ip(session), &snapshot.config.proxy.trusted_proxies);
        if ctx.trusted_peer
            && let Some(id) = session
                .req_header()
                .headers
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
            && !id.is_empty()
            && id.len() <= 128
            && id.bytes().all(|b| b.is_ascii_graphic())
        {
            ctx.request_id = id.to_owned();
        }

        let host = match authority::request_host(session.req_header(), sni.as_deref()) {
            Ok(h) => h,
            Err(authority::Reject::BadRequest(why)) => {
                pages::respond(session, 400, "Bad request", why).await?;
                return Ok(true);
            }
            Err(authority::Reject::Misdirected) => {
                pages::respond(
                    session,
                    421,
                    "Misdirected request",
                    "this connection was opened for another host",
                )
                .await?;
                return Ok(true);
            }
        };
        ctx.host = Some(host.as_str().to_owned());

        let Some(route) = snapshot.resolve(host.as_str()).cloned() else {
            pages::respond(session, 421, "Misdirected request", "no pool is served at this host").await?;
            return Ok(true);
        };
        ctx.route = Some(route.clone());

        match &route {
            Route::Portal(pool) => {
                let path = session.req_header().uri.path();
                if path == "/" {
                    let detail = format!("This is the sign-in portal of the pool \u{201c}{}\u{201d}.", pool.name);
                    pages::respond(session, 200, &pool.name, &detail).await?;
                } else {
                    pages::respond(session, 404, "Not found", "the portal has no such page").await?;
                }
                Ok(true)
            }
            Route::App(pool, app) => {
                if app.https_redirect
                    && !tls
                    && let Some(https) = snapshot.config.listen.https
                {
                    let port = if https.port() == 443 {
                        String::new()
                    } else {
                        format!(":{}", https.port())
                    };
                    let target = session.req_header().uri.path_and_query().map_or("/", |pq| pq.as_str());
                    let location = format!("https://{host}{port}{target}");
                    pages::redirect(session, 308, &location).await?;
                    return Ok(true);
                }
                self.metrics.request_started(pool.id.as_str(), app.id.as_str());
                ctx.counted_active = true;
                Ok(false)
            }
        }
    }

    async fn upstream_peer(&self, session: &mut Session, ctx: &mut RequestCtx) -> pingora::Result<Box<HttpPeer>> {
        let Some(Route::App(_, app)) = &ctx.route else {
            return Err(Error::explain(ErrorType::InternalError, "no app route to proxy to"));
        };
        let Some(addr) = app.upstream.select() else {
            return Err(Error::explain(ErrorType::HTTPStatus(502), "no healthy upstream server"));
        };
        let mut peer = HttpPeer::new(addr, false, String::new());
        peer.options.connection_timeout = Some(app.connect_timeout);
        peer.options.write_timeout = Some(app.timeout);
        // An upgraded connection (WebSocket) may sit quiet for long; a plain request must answer in time.
        if !session.is_upgrade_req() {
            peer.options.read_timeout = Some(app.timeout);
        }
        peer.options.idle_timeout = Some(Duration::from_secs(60));
        ctx.upstream_started = Some(Instant::now());
        Ok(Box::new(peer))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()>
    where
        RequestCtx: Send + Sync,
    {
        let Some(Route::App(_, app)) = &ctx.route else {
            return Err(Error::explain(ErrorType::InternalError, "no app route to proxy to"));
        };
        app.strip.strip(upstream, ctx.trusted_peer);
        let host = ctx.host.as_deref().unwrap_or_default();
        headers::set_forwarded(upstream, peer_ip(session), if ctx.tls { "https" } else { "http" }, host)?;
        upstream.insert_header("x-request-id", ctx.request_id.as_str())?;
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()>
    where
        RequestCtx: Send + Sync,
    {
        if let Some(started) = ctx.upstream_started {
            ctx.upstream_time.get_or_insert(started.elapsed());
        }
        resp.insert_header("x-request-id", ctx.request_id.as_str())?;
        Ok(())
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut RequestCtx) -> FailToProxy
    where
        RequestCtx: Send + Sync,
    {
        use ErrorType::*;
        let upstream = e.esource() == &ErrorSource::Upstream;
        let (code, title, detail) = match e.etype() {
            HTTPStatus(502) => (502, "Bad gateway", "the app has no healthy server right now"),
            ConnectTimedout => (502, "Bad gateway", "the app did not accept a connection in time"),
            ConnectRefused | ConnectNoRoute | ConnectError | TLSHandshakeFailure => {
                (502, "Bad gateway", "the app refused the connection")
            }
            ReadTimedout | WriteTimedout if upstream => (504, "Gateway timeout", "the app did not answer in time"),
            HTTPStatus(c) => (*c, "Error", "the request could not be served"),
            _ if upstream => (502, "Bad gateway", "the app's answer was broken"),
            ReadError | WriteError | ConnectionClosed => (0, "", ""),
            _ if e.esource() == &ErrorSource::Downstream => (400, "Bad request", "the request could not be read"),
            _ => (500, "Internal error", "poolgate could not serve this request"),
        };
        if let Some(started) = ctx.upstream_started {
            ctx.upstream_time.get_or_insert(started.elapsed());
        }
        // The connection is not reused after a failure: say so, so the client opens a new one.
        session.set_keepalive(None);
        if code > 0
            && session.response_written().is_none()
            && let Err(err) = pages::respond(session, code, title, detail).await
        {
            tracing::debug!(error = %err, "could not send the error page");
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, error: Option<&Error>, ctx: &mut RequestCtx)
    where
        RequestCtx: Send + Sync,
    {
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let (pool, app) = match &ctx.route {
            Some(Route::App(p, a)) => (p.id.as_str(), a.id.as_str()),
            Some(Route::Portal(p)) => (p.id.as_str(), NONE),
            None => (NONE, NONE),
        };
        if let Some(started) = ctx.upstream_started {
            ctx.upstream_time.get_or_insert(started.elapsed());
        }
        self.metrics
            .request_finished(pool, app, status, ctx.upstream_time, ctx.counted_active);
        let req = session.req_header();
        tracing::info!(
            target: "access",
            pool,
            app,
            host = ctx.host.as_deref().unwrap_or(""),
            method = req.method.as_str(),
            path = req.uri.path(),
            status,
            duration_ms = ctx.started.elapsed().as_secs_f64() * 1000.0,
            upstream_ms = ctx.upstream_time.map(|d| d.as_secs_f64() * 1000.0),
            bytes = session.body_bytes_sent(),
            request_id = ctx.request_id.as_str(),
            client = peer_ip(session).map(|ip| ip.to_string()).unwrap_or_default(),
            error = error.map(|e| e.etype().as_str()),
        );
    }
}
