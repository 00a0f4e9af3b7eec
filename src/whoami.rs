//! `poolgate whoami`: an upstream that answers every request with what it received —
//! method, path, query and every header — as JSON, or as a small page for browsers.
//! Operators use it to see what an app behind poolgate gets; the tests use it as their app.
//! It echoes WebSocket messages, and `?delay_ms=N` (at most 60 s) makes it answer late.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use serde::Serialize;

/// What whoami saw.
#[derive(Serialize)]
pub struct Echo {
    pub method: String,
    pub path: String,
    pub query: String,
    /// Header names (lower-case) to every value sent, in order.
    pub headers: BTreeMap<String, Vec<String>>,
    pub remote_addr: String,
    /// The address this whoami listens on: which of several upstreams answered.
    pub served_by: String,
}

/// whoami's routes; `served_by` is the address it reports as its own.
pub fn router(served_by: SocketAddr) -> Router {
    Router::new().fallback(answer).with_state(served_by)
}

/// Serves whoami on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener) -> std::io::Result<()> {
    let app = router(listener.local_addr()?);
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await
}

async fn answer(
    State(served_by): State<SocketAddr>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    let wants_ws = req
        .headers()
        .get(header::UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
    if wants_ws {
        let (mut parts, _) = req.into_parts();
        return match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
            Ok(ws) => ws.on_upgrade(echo_socket).into_response(),
            Err(rejection) => rejection.into_response(),
        };
    }
    let query = req.uri().query().unwrap_or("").to_owned();
    if let Some(ms) = delay(&query) {
        tokio::time::sleep(ms).await;
    }
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in req.headers() {
        headers
            .entry(name.as_str().to_owned())
            .or_default()
            .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    let wants_html = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    let echo = Echo {
        method: req.method().to_string(),
        path: req.uri().path().to_owned(),
        query,
        headers,
        remote_addr: remote.to_string(),
        served_by: served_by.to_string(),
    };
    if wants_html {
        Html(page(&echo)).into_response()
    } else {
        axum::Json(echo).into_response()
    }
}

fn delay(query: &str) -> Option<Duration> {
    let ms: u64 = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("delay_ms="))?
        .parse()
        .ok()?;
    Some(Duration::from_millis(ms.min(60_000)))
}

async fn echo_socket(mut socket: WebSocket) {
    while let Some(Ok(msg)) = socket.recv().await {
        let reply = match msg {
            Message::Text(_) | Message::Binary(_) => msg,
            Message::Close(_) => return,
            _ => continue,
        };
        if socket.send(reply).await.is_err() {
            return;
        }
    }
}

fn page(echo: &Echo) -> String {
    let esc = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    let rows: String = echo
        .headers
        .iter()
        .flat_map(|(k, vs)| vs.iter().map(move |v| (k, v)))
        .map(|(k, v)| {
            let class = if k.starts_with("x-poolgate-") {
                " class=\"identity\""
            } else {
                ""
            };
            format!("<tr{class}><th scope=\"row\">{}</th><td>{}</td></tr>", esc(k), esc(v))
        })
        .collect();
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>whoami</title>\
         <style>body{{font-family:system-ui,sans-serif;margin:2rem}}th{{text-align:left;padding-right:1rem;white-space:nowrap;vertical-align:top}}td{{word-break:break-all}}\
         tr.identity{{background:#eef6ee}}td,th{{font-family:monospace}}</style></head><body><main>\
         <h1>What the app received</h1><p><code>{} {}{}</code> from <code>{}</code>, answered by <code>{}</code></p>\
         <table><caption>Request headers</caption>{rows}</table></main></body></html>\n",
        esc(&echo.method),
        esc(&echo.path),
        if echo.query.is_empty() {
            String::new()
        } else {
            format!("?{}", esc(&echo.query))
        },
        esc(&echo.remote_addr),
        esc(&echo.served_by),
    )
}
