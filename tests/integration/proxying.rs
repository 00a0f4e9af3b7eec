//! What crosses the gateway: failures as 502/504, WebSockets, forwarding headers the
//! upstream can believe, identity headers no client can forge, balancing and health.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::support::*;

fn one_app(upstreams: &[String], extra: &str) -> String {
    let list = upstreams
        .iter()
        .map(|u| format!("\"{u}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "[pools.employees]\nname = \"Employees\"\nportal = \"login.employees.localhost\"\n\
         [pools.employees.apps.wiki]\nhosts = [\"wiki.employees.localhost\"]\nupstreams = [{list}]\npublic_paths = [\"/\"]\n{extra}\n"
    )
}

#[tokio::test]
async fn upstream_refusing_connections_gives_502() {
    let dead = format!("127.0.0.1:{}", free_port());
    let gw = Gateway::start(&one_app(&[dead], "")).await;
    let resp = gw
        .client()
        .get(gw.url("wiki.employees.localhost", "/"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    let body = resp.text().await.unwrap();
    assert!(body.contains("Bad gateway"), "{body}");
    assert!(body.starts_with("<!doctype html>"), "browsers get a page: {body}");
}

#[tokio::test]
async fn upstream_slower_than_the_app_timeout_gives_504() {
    let up = Whoami::start().await;
    let gw = Gateway::start(&one_app(&[up.addr.to_string()], "timeout = \"300ms\"")).await;
    let started = Instant::now();
    let (status, body) = gw.get("wiki.employees.localhost", "/?delay_ms=3000").await;
    assert_eq!(status, 504, "{body}");
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "answered after the app timeout, not the upstream"
    );
    let (status, _) = gw.get("wiki.employees.localhost", "/?delay_ms=50").await;
    assert_eq!(status, 200, "a quick answer is still served");
}

#[tokio::test]
async fn websocket_echo_through_the_gateway() {
    let up = Whoami::start().await;
    // The app's timeout bounds each write to the upstream too: 3 s, not less, so a write
    // on a loaded machine (the whole suite at once on two cores) is not cut short.
    let gw = Gateway::start(&one_app(&[up.addr.to_string()], "timeout = \"3s\"")).await;
    let mut req = format!("ws://{}/socket", gw.http).into_client_request().unwrap();
    req.headers_mut()
        .insert("host", "wiki.employees.localhost".parse().unwrap());
    let (mut ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(resp.status(), 101);
    for msg in ["hello", "through poolgate"] {
        ws.send(Message::text(msg)).await.unwrap();
        let back = ws.next().await.unwrap().unwrap();
        assert_eq!(back.into_text().unwrap().as_str(), msg);
    }
    // Quiet for longer than the app's read timeout: an upgraded connection stays open.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap().into_data().as_ref(), &[1u8, 2, 3]);
    ws.close(None).await.unwrap();
}

#[tokio::test]
async fn untrusted_forwarding_and_identity_headers_are_replaced() {
    let up = Whoami::start().await;
    let gw = Gateway::start(&one_app(&[up.addr.to_string()], "")).await;
    let resp = gw
        .client()
        .get(gw.url("wiki.employees.localhost", "/"))
        .header("X-Forwarded-For", "6.6.6.6")
        .header("X_Forwarded_For", "6.6.6.7")
        .header("X-Forwarded-Proto", "https")
        .header("X-Forwarded-Host", "bank.example")
        .header("X-Real-IP", "6.6.6.6")
        .header("Forwarded", "for=6.6.6.6;proto=https")
        .header("X-Poolgate-User", "admin")
        .header("x-poolgate-groups", "admins")
        .header("X_POOLGATE_EMAIL", "ceo@example.com")
        .header("X-Poolgate-Assertion", "eyJhbGciOiJub25lIn0.e30.")
        .header("X-Request-Id", "forged")
        .header("Connection", "keep-alive, X-Poolgate-Pool")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let request_id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    let echo: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(seen(&echo, "x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(seen(&echo, "x-forwarded-proto"), ["http"]);
    assert_eq!(seen(&echo, "x-forwarded-host"), ["wiki.employees.localhost"]);
    assert_eq!(seen(&echo, "x-request-id"), [request_id.as_str()]);
    assert_ne!(request_id, "forged");
    for name in [
        "x_forwarded_for",
        "x-real-ip",
        "forwarded",
        "x-poolgate-user",
        "x-poolgate-groups",
        "x_poolgate_email",
        "x-poolgate-assertion",
    ] {
        assert!(seen(&echo, name).is_empty(), "{name} reached the upstream: {echo}");
    }
    for (name, values) in echo["headers"].as_object().unwrap() {
        assert!(!name.replace('_', "-").starts_with("x-poolgate-"), "{name}: {values}");
        assert!(
            !values.to_string().to_ascii_lowercase().contains("x-poolgate"),
            "{name}: {values}"
        );
    }

    // The access log has the request, under the id the upstream saw (written just after the response).
    wait_until(|| gw.log().contains(&request_id)).await;
    let line = gw
        .log()
        .lines()
        .find(|l| l.contains(&request_id) && l.contains("\"access\""))
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("no access log line for {request_id}:\n{}", gw.log()));
    let entry: serde_json::Value = serde_json::from_str(&line).unwrap();
    let fields = &entry["fields"];
    assert_eq!(fields["pool"], "employees");
    assert_eq!(fields["app"], "wiki");
    assert_eq!(fields["status"], 200);
    assert_eq!(fields["host"], "wiki.employees.localhost");
    assert!(fields["upstream_ms"].as_f64().is_some());

    let metrics = gw.metrics().await;
    assert!(
        metrics.contains(r#"poolgate_requests_total{app="wiki",pool="employees",status="2xx"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"poolgate_upstream_seconds_count{app="wiki",pool="employees"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_trusted_proxy_extends_the_forwarding_chain() {
    let up = Whoami::start().await;
    let gw = Gateway::start_with(
        &one_app(&[up.addr.to_string()], ""),
        Options {
            preamble: "[proxy]\ntrusted_proxies = [\"127.0.0.0/8\"]".into(),
            ..Options::default()
        },
    )
    .await;
    let resp = gw
        .client()
        .get(gw.url("wiki.employees.localhost", "/"))
        .header("X-Forwarded-For", "203.0.113.9")
        .header("X-Forwarded-Proto", "https")
        .header("X-Poolgate-User", "admin")
        .send()
        .await
        .unwrap();
    let echo: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(seen(&echo, "x-forwarded-for"), ["203.0.113.9, 127.0.0.1"]);
    assert_eq!(seen(&echo, "x-forwarded-proto"), ["https"]);
    assert!(
        seen(&echo, "x-poolgate-user").is_empty(),
        "identity headers are never trusted, even from a proxy"
    );
}

#[tokio::test]
async fn requests_are_balanced_and_a_dead_server_is_taken_out() {
    let a = Whoami::start().await;
    let b = Whoami::start().await;
    let dead = format!("127.0.0.1:{}", free_port());
    let gw = Gateway::start(&one_app(
        &[a.addr.to_string(), b.addr.to_string(), dead],
        "[pools.employees.apps.wiki.health_check]\ninterval = \"1s\"",
    ))
    .await;
    // The first health check runs at start; give it a moment to mark the dead server down.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    for _ in 0..20 {
        let (status, _) = gw.get("wiki.employees.localhost", "/").await;
        assert_eq!(status, 200, "the dead server is skipped");
    }
    assert!(
        a.hits() >= 8 && b.hits() >= 8,
        "round-robin: {} and {}",
        a.hits(),
        b.hits()
    );
}
