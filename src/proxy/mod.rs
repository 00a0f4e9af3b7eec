//! The Pingora `ProxyHttp` implementation: the hot path of DESIGN.md §2.
//!
//! ```text
//! request_filter           authority::request_host → registry snapshot → Route
//!   ├─ unknown host        421, no default pool
//!   ├─ Portal(pool)        → the portal (internal listener)
//!   └─ App(pool, app)      https redirect if asked; then gate::Gate::decide renders:
//!        ├─ Portal         → the portal (/.poolgate/…: sign-in callback, logout)
//!        ├─ Preflight      answered from the app's config
//!        ├─ Forward        to the upstream, anonymously (public path) or as the principal
//!        ├─ SignIn         browser 302 to sign-in, API 401
//!        └─ Forbidden      403
//! upstream_peer            the portal, or the app's upstream (round-robin, healthy, timeouts)
//! upstream_request_filter  strip identity, gateway cookies, untrusted X-Forwarded-*;
//!                          then set ours: identity headers + assertion, X-Forwarded-*, X-Request-Id
//! response_filter          X-Request-Id, a slid session cookie, CORS on actual requests
//! fail_to_proxy            502 (refused / no healthy server), 504 (too slow)
//! logging                  access log line + metrics
//! ```
//! The hot path reads one snapshot and the session caches; it touches no database.

mod authority;
mod headers;
mod pages;
use pages::{Answer, Next};

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use http::HeaderValue;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::HttpPeer;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::{Error, ErrorSource, ErrorType};

use crate::forward_auth;
use crate::gate::{self, Verdict};
use crate::ids::Host;
use crate::metrics::{AppMetrics, Metrics, NONE};
use crate::portal::InternalKey;
use crate::registry::{AppRoute, PoolRoute, Registry, Route};
use crate::session::{Principal, ProfileSource, Sessions};
use crate::tls::Sni;

pub use headers::strip;

/// Copies prepared identity headers into the upstream request.
pub fn apply_identity(req: &mut RequestHeader, headers: &[(Bytes, HeaderValue)]) {
    for (name, value) in headers {
        let _ = req.insert_header(name.clone(), value.clone());
    }
}

/// The gateway's proxy logic, shared by every listener.
pub struct Gateway {
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
    sessions: Arc<Sessions>,
    portal: PortalLink,
    /// Who a user is, on a profile-cache miss (the store, on the control plane's runtime).
    profiles: Arc<dyn ProfileSource>,
    drain: Arc<Drain>,
}

/// Where this process is in its life, as the proxy sees it.
#[derive(Default)]
pub struct Drain {
    /// Handing over or stopping: no connection is kept alive, so keep-alive clients move
    /// to the new process before this one stops reading.
    pub stopping: AtomicBool,
    /// Requests being served; a stopping process exits once none is left.
    pub in_flight: AtomicUsize,
}

/// One request counted in flight, from its making to its dropping (whatever ends the
/// request, a panic included).
pub struct InFlight(Arc<Drain>);

impl InFlight {
    pub fn new(drain: &Arc<Drain>) -> InFlight {
        drain.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(drain.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// How the proxy reaches the portal: its internal listener and the key it signs with.
pub struct PortalLink {
    pub addr: SocketAddr,
    pub key: Arc<InternalKey>,
}

impl Gateway {
    pub fn new(
        registry: Arc<Registry>,
        metrics: Arc<Metrics>,
        sessions: Arc<Sessions>,
        portal: PortalLink,
        profiles: Arc<dyn ProfileSource>,
        drain: Arc<Drain>,
    ) -> Gateway {
        Gateway {
            registry,
            metrics,
            sessions,
            portal,
            profiles,
            drain,
        }
    }
}

/// Where a request goes once it is let through.
enum Forward {
    /// The portal, with the route it is told (`portal/<pool>` or `app/<pool>/<app>`).
    Portal(String),
    /// The app's upstream, anonymously (a public path) or as `Who`.
    Upstream(Option<Who>),
}

/// A signed-in caller.
struct Who {
    principal: Arc<Principal>,
}

/// What one request learns on its way through the phases.
pub struct RequestCtx {
    /// Ours, or a trusted proxy's; made once and shared by the upstream request, the
    /// response and the access log.
    request_id: HeaderValue,
    started: Instant,
    route: Option<Route>,
    host: Option<Host>,
    tls: bool,
    trusted_peer: bool,
    counted_active: bool,
    upstream_started: Option<Instant>,
    upstream_time: Option<Duration>,
    forward: Option<Forward>,
    /// A renewed session cookie for the response.
    set_cookie: Option<String>,
    _in_flight: InFlight,
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
            _in_flight: InFlight::new(&self.drain),
            request_id: request_id(),
            started: Instant::now(),
            route: None,
            host: None,
            tls: false,
            trusted_peer: false,
            counted_active: false,
            upstream_started: None,
            upstream_time: None,
            forward: None,
            set_cookie: None,
        }
    }

    async fn early_request_filter(&self, session: &mut Session, _ctx: &mut RequestCtx) -> pingora::Result<()> {
        // HTTP/1.1 pipelining: requests a client sent before reading our answers are kept
        // and answered in order. Without this, Pingora drops the bytes already read past the
        // first request and resets the connection.
        session.set_pipelining_enabled(true);
        // A keep-alive connection waits at most a minute for its next request (Pingora
        // otherwise waits without bound once a client asked for keep-alive).
        if self.drain.stopping.load(Ordering::Acquire) {
            session.set_keepalive(None);
        } else if session.get_keepalive().is_some() {
            session.set_keepalive(Some(60));
        }
        Ok(())
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> pingora::Result<bool> {
        let (tls, sni) = sni(session);
        let snapshot = self.registry.snapshot();
        // People reach us over HTTPS when we are (or when `[listen] public` says a front
        // proxy ends it for us): cookies are then `Secure`, and nothing is sent to https.
        ctx.tls = tls || snapshot.config.listen.public.is_some_and(|p| p.https);
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
            && let Ok(id) = HeaderValue::from_str(id)
        {
            ctx.request_id = id;
        }

        if let Some((dialect, tail)) = session
            .req_header()
            .uri
            .path_and_query()
            .and_then(|pq| forward_auth::Dialect::of(pq.as_str()))
        {
            let tail = tail.to_owned();
            return self.forward_auth(session, ctx, dialect, &tail).await;
        }

        let host = match authority::request_host(session.req_header(), sni.as_deref()) {
            Ok(h) => h,
            Err(authority::Reject::BadRequest(why)) => {
                pages::respond(session, Answer::new(400, "Bad request", why)).await?;
                return Ok(true);
            }
            Err(authority::Reject::Misdirected) => {
                let answer = Answer::new(
                    421,
                    "Misdirected request",
                    "this connection was opened for another host",
                );
                pages::respond(session, answer).await?;
                return Ok(true);
            }
        };
        let route = snapshot.resolve(host.as_str()).cloned();
        let host = ctx.host.insert(host);
        let Some(route) = route else {
            pages::respond(
                session,
                Answer::new(421, "Misdirected request", "no pool is served at this host"),
            )
            .await?;
            return Ok(true);
        };
        ctx.route = Some(route.clone());

        match &route {
            Route::Portal(pool) => {
                ctx.forward = Some(Forward::Portal(format!("portal/{}", pool.id)));
                Ok(false)
            }
            Route::App(pool, app) => {
                if app.https_redirect
                    && !ctx.tls
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
                self.app_metrics(pool, app).started();
                ctx.counted_active = true;
                self.guard_app(session, ctx, pool, app).await
            }
        }
    }

    async fn upstream_peer(&self, session: &mut Session, ctx: &mut RequestCtx) -> pingora::Result<Box<HttpPeer>> {
        if let Some(Forward::Portal(_)) = ctx.forward {
            let mut peer = HttpPeer::new(self.portal.addr, false, String::new());
            peer.options.connection_timeout = Some(Duration::from_secs(5));
            peer.options.read_timeout = Some(Duration::from_secs(30));
            peer.options.idle_timeout = Some(Duration::from_secs(60));
            return Ok(Box::new(peer));
        }
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
        let host = ctx.host.as_ref().map_or("", |h| h.as_str());
        let proto = if ctx.tls { "https" } else { "http" };
        match (&ctx.forward, &ctx.route) {
            (Some(Forward::Portal(route)), Some(r)) => {
                // The portal is ours: it gets its cookies, and our word on the route.
                headers::strip(headers::portal_strip_set(), upstream, false);
                headers::set_forwarded(upstream, peer_ip(session), proto, host)?;
                upstream.insert_header(crate::portal::KEY_HEADER, self.portal.key.value())?;
                upstream.insert_header(crate::portal::ROUTE_HEADER, route.as_str())?;
                let _ = r;
            }
            (Some(Forward::Upstream(who)), Some(Route::App(pool, app))) => {
                headers::strip(&app.strip, upstream, ctx.trusted_peer);
                strip_gateway_cookies(upstream);
                headers::set_forwarded(upstream, peer_ip(session), proto, host)?;
                if let Some(who) = who {
                    let headers = gate::identity::headers(pool, app, &who.principal, &self.sessions, now());
                    apply_identity(upstream, &headers);
                }
            }
            _ => return Err(Error::explain(ErrorType::InternalError, "no route to proxy to")),
        }
        upstream.insert_header(REQUEST_ID, ctx.request_id.clone())?;
        Ok(())
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()>
    where
        RequestCtx: Send + Sync,
    {
        if let Some(started) = ctx.upstream_started {
            ctx.upstream_time.get_or_insert(started.elapsed());
        }
        resp.insert_header(REQUEST_ID, ctx.request_id.clone())?;
        match &ctx.forward {
            // The portal is ours: nothing it says is for a shared cache or for sniffing.
            Some(Forward::Portal(_)) => {
                if !resp.headers.contains_key(http::header::CACHE_CONTROL) {
                    resp.insert_header(http::header::CACHE_CONTROL, "no-store")?;
                }
                resp.insert_header(http::header::X_CONTENT_TYPE_OPTIONS, "nosniff")?;
            }
            Some(Forward::Upstream(who)) => {
                // An app may not set (or overwrite, or plant on a sibling host) our cookies.
                headers::drop_gateway_set_cookies(resp);
                if who.is_some()
                    && let Some(Route::App(_, app)) = &ctx.route
                    && app.cache_private
                    && !resp.headers.contains_key(http::header::CACHE_CONTROL)
                {
                    resp.insert_header(http::header::CACHE_CONTROL, "private")?;
                }
            }
            None => {}
        }
        if let Some(cookie) = ctx.set_cookie.take() {
            resp.append_header(http::header::SET_COOKIE, cookie)?;
        }
        if let (Some(Route::App(_, app)), Some(Forward::Upstream(_))) = (&ctx.route, &ctx.forward)
            && let Some(cors) = &app.cors
            && let Some(origin) = gate::policy::allowed_origin(&session.req_header().headers, cors)
        {
            let origin = origin.to_owned();
            resp.insert_header(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, origin)?;
            resp.append_header(http::header::VARY, "Origin")?;
            if cors.credentials {
                resp.insert_header(http::header::ACCESS_CONTROL_ALLOW_CREDENTIALS, "true")?;
            }
        }
        Ok(())
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut RequestCtx) -> FailToProxy
    where
        RequestCtx: Send + Sync,
    {
        use ErrorType::*;
        let upstream = e.esource() == &ErrorSource::Upstream;
        let downstream = e.esource() == &ErrorSource::Downstream;
        let (code, title, detail) = match e.etype() {
            // The client's side failed (it hung up, or sent what it should not): not the app's.
            ReadError | WriteError | ConnectionClosed | ConnectError if downstream => (0, "", ""),
            _ if downstream => (400, "Bad request", "the request could not be read"),
            HTTPStatus(502) => (502, "Bad gateway", "the app has no healthy server right now"),
            ConnectTimedout => (502, "Bad gateway", "the app did not accept a connection in time"),
            ConnectRefused | ConnectNoRoute | ConnectError | TLSHandshakeFailure => {
                (502, "Bad gateway", "the app refused the connection")
            }
            ReadTimedout | WriteTimedout if upstream => (504, "Gateway timeout", "the app did not answer in time"),
            HTTPStatus(c) => (*c, "Error", "the request could not be served"),
            _ if upstream => (502, "Bad gateway", "the app's answer was broken"),
            ReadError | WriteError | ConnectionClosed => (0, "", ""),
            _ => (500, "Internal error", "poolgate could not serve this request"),
        };
        if let Some(started) = ctx.upstream_started {
            ctx.upstream_time.get_or_insert(started.elapsed());
        }
        // The connection is not reused after a failure: say so, so the client opens a new one.
        session.set_keepalive(None);
        // The id the access log has, for whoever reports the failure.
        let request_id = ctx.request_id.to_str().unwrap_or_default().to_owned();
        let mut answer = Answer::new(code, title, detail);
        if let Some(Route::App(pool, app)) = &ctx.route {
            answer = answer.at(pool, Some(app));
        }
        if code > 0
            && session.response_written().is_none()
            && let Err(err) = pages::respond_with(session, answer, &[(REQUEST_ID, request_id)]).await
        {
            tracing::debug!(error = %err, "could not send the error page");
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    /// An upstream that failed, or a client that hung up, is in the access log (with the
    /// error's kind) and answered with a page: one line per request, not one more.
    fn suppress_error_log(&self, _session: &Session, _ctx: &RequestCtx, error: &Error) -> bool {
        matches!(error.esource(), ErrorSource::Upstream | ErrorSource::Downstream)
            || matches!(error.etype(), ErrorType::HTTPStatus(502))
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
        match &ctx.route {
            Some(Route::App(p, a)) => self
                .app_metrics(p, a)
                .finished(status, ctx.upstream_time, ctx.counted_active),
            _ => self.metrics.request_finished(pool, app, status, ctx.upstream_time),
        }
        let req = session.req_header();
        tracing::info!(
            target: "access",
            pool,
            app,
            host = ctx.host.as_ref().map_or("", |h| h.as_str()),
            method = req.method.as_str(),
            path = req.uri.path(),
            status,
            duration_ms = ctx.started.elapsed().as_secs_f64() * 1000.0,
            upstream_ms = ctx.upstream_time.map(|d| d.as_secs_f64() * 1000.0),
            bytes = session.body_bytes_sent(),
            request_id = ctx.request_id.to_str().unwrap_or_default(),
            client = peer_ip(session).map(|ip| ip.to_string()).unwrap_or_default(),
            error = error.map(|e| e.etype().as_str()),
        );
    }
}

const REQUEST_ID: &str = "x-request-id";

/// A request id: this process's random prefix and a counter, 32 hex digits. Unique per
/// process start, with no system call per request (a v4 UUID costs a `getrandom`).
fn request_id() -> HeaderValue {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static PREFIX: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix =
        PREFIX.get_or_init(|| u64::from_le_bytes(uuid::Uuid::new_v4().as_bytes()[..8].try_into().unwrap_or_default()));
    let id = (u128::from(*prefix) << 64) | u128::from(COUNTER.fetch_add(1, Ordering::Relaxed));
    let mut hex = [0u8; 32];
    for (i, digit) in hex.iter_mut().enumerate() {
        *digit = b"0123456789abcdef"[((id >> (124 - 4 * i)) & 0xf) as usize];
    }
    HeaderValue::from_maybe_shared(Bytes::copy_from_slice(&hex)).expect("hex digits are a valid header value")
}

fn now() -> i64 {
    use crate::clock::Clock;
    crate::clock::SystemClock.now()
}

/// Removes the gateway's own cookies from what the upstream sees.
fn strip_gateway_cookies(req: &mut RequestHeader) {
    let values: Vec<String> = req
        .headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect();
    if values.is_empty() {
        return;
    }
    req.remove_header(&http::header::COOKIE);
    if let Some(kept) = crate::session::cookie::without_gateway_cookies(&values.join("; ")) {
        let _ = req.insert_header(http::header::COOKIE, kept);
    }
}

// === impl Gateway: forward-auth ===

impl Gateway {
    /// A front proxy's check (`forward_auth`): the same decision as `guard_app`, for the
    /// request the proxy describes, answered in its dialect and never forwarded.
    async fn forward_auth(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        dialect: forward_auth::Dialect,
        tail: &str,
    ) -> pingora::Result<bool> {
        let bad = |why: &'static str| Answer::new(400, "Bad request", why);
        if !ctx.trusted_peer {
            let answer = bad("forward-auth answers only a proxy of proxy.trusted_proxies");
            pages::respond(session, answer).await?;
            return Ok(true);
        }
        let snapshot = self.registry.snapshot();
        let req = session.req_header();
        let original = match forward_auth::original(dialect, &req.method, tail, &req.headers) {
            Ok(o) => o,
            Err(why) => {
                pages::respond(session, bad(why)).await?;
                return Ok(true);
            }
        };
        let Some(Route::App(pool, app)) = snapshot.resolve(original.host.as_str()).cloned() else {
            pages::respond(session, bad("the original host is not a host of an app")).await?;
            return Ok(true);
        };
        ctx.route = Some(Route::App(pool.clone(), app.clone()));
        ctx.host = Some(original.host.clone());
        let gate = gate::Gate {
            sessions: &self.sessions,
            profiles: self.profiles.as_ref(),
        };
        let now = now();
        let verdict = gate.decide(&pool, &app, &original.asked(&req.headers), now).await;
        let principal = match &verdict {
            Verdict::Forward { who: Some(p), .. } => Some(p.clone()),
            _ => None,
        };
        let identity = forward_auth::Identity {
            app: &app,
            prepared: principal
                .as_ref()
                .map(|p| gate::identity::headers(&pool, &app, p, &self.sessions, now)),
            oauth2_proxy_headers: snapshot.config.proxy.oauth2_proxy_headers,
            principal: principal.as_deref(),
        };
        let reply = forward_auth::render(dialect, verdict, &original, &req.headers, &pool, &identity);
        pages::bare(session, reply.status, reply.headers).await?;
        Ok(true)
    }
}

// === impl Gateway: the app's guard ===

impl Gateway {
    /// The app's metric handles, resolved on its route's first request.
    fn app_metrics<'a>(&self, pool: &PoolRoute, app: &'a AppRoute) -> &'a AppMetrics {
        app.metrics
            .get_or_init(|| self.metrics.for_app(pool.id.as_str(), app.id.as_str()))
    }

    /// Decides what happens to a request for an app (`gate`), and answers it when the
    /// answer is not the upstream's or the portal's.
    async fn guard_app(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        pool: &Arc<PoolRoute>,
        app: &Arc<AppRoute>,
    ) -> pingora::Result<bool> {
        let req = session.req_header();
        let asked = gate::Asked {
            method: &req.method,
            target: req.uri.path_and_query().map_or("/", |pq| pq.as_str()),
            headers: &req.headers,
            tls: ctx.tls,
        };
        let gate = gate::Gate {
            sessions: &self.sessions,
            profiles: self.profiles.as_ref(),
        };
        let verdict = gate.decide(pool, app, &asked, now()).await;
        let browser = gate::policy::is_browser(&req.method, &req.headers);
        match verdict {
            Verdict::Portal => {
                ctx.forward = Some(Forward::Portal(format!("app/{}/{}", pool.id, app.id)));
                Ok(false)
            }
            Verdict::Forward { who, set_cookie } => {
                ctx.set_cookie = set_cookie;
                ctx.forward = Some(Forward::Upstream(who.map(|principal| Who { principal })));
                Ok(false)
            }
            Verdict::Preflight(Ok(headers)) => {
                pages::empty(session, 204, &headers).await?;
                Ok(true)
            }
            Verdict::Preflight(Err(why)) => {
                pages::respond(session, Answer::new(403, "Forbidden", why)).await?;
                Ok(true)
            }
            Verdict::SignIn { login } if browser => {
                pages::redirect(session, 302, &login).await?;
                Ok(true)
            }
            Verdict::SignIn { .. } => {
                let challenge = format!("Bearer realm=\"{}\"", pool.id);
                let answer =
                    Answer::new(401, "Unauthorized", "sign in, or send a bearer token of this pool").at(pool, None);
                pages::respond_with(session, answer, &[("www-authenticate", challenge)]).await?;
                Ok(true)
            }
            Verdict::Forbidden { username } => {
                let detail = format!(
                    "You are signed in to {} as {username}, but this application is not open to you.",
                    pool.name
                );
                let answer = Answer::new(403, "Access denied", &detail)
                    .at(pool, Some(app))
                    .next(Next::SignOut);
                pages::respond(session, answer).await?;
                Ok(true)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::request_id;

    #[test]
    fn request_ids_are_32_hex_digits_and_never_repeat() {
        let (a, b) = (request_id(), request_id());
        for id in [&a, &b] {
            assert_eq!(id.len(), 32);
            assert!(id.as_bytes().iter().all(u8::is_ascii_hexdigit), "{id:?}");
        }
        assert_ne!(a, b);
        assert_eq!(a.as_bytes()[..16], b.as_bytes()[..16], "one process, one prefix");
    }
}
