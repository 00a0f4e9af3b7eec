//! Host → pool routing: each host reaches its own pool's app; unknown hosts reach nothing.

use crate::support::*;

#[tokio::test]
async fn each_host_reaches_its_own_pools_app() {
    let wiki = Whoami::start().await;
    let orders = Whoami::start().await;
    let gw = Gateway::start(&two_pools(&wiki, &orders)).await;

    let (status, echo) = gw.get("wiki.employees.localhost", "/pages/1?x=y").await;
    assert_eq!(status, 200);
    assert_eq!(echo["served_by"], wiki.addr.to_string());
    assert_eq!(echo["path"], "/pages/1");
    assert_eq!(echo["query"], "x=y");

    let (status, echo) = gw.get("orders.suppliers.localhost", "/").await;
    assert_eq!(status, 200);
    assert_eq!(echo["served_by"], orders.addr.to_string());

    // Case, port and a trailing dot do not change the route.
    let resp = gw
        .client()
        .get(gw.url("wiki.employees.localhost", "/"))
        .header("host", format!("WIKI.Employees.LocalHost.:{}", gw.http.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let echo: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(echo["served_by"], wiki.addr.to_string());

    // The portal host is the pool's own, answered by the gateway, not an upstream.
    let before = wiki.hits() + orders.hits();
    let (status, page) = gw.get("login.suppliers.localhost", "/").await;
    assert_eq!(status, 200);
    assert!(page.as_str().unwrap().contains("Suppliers"), "{page}");
    assert_eq!(
        wiki.hits() + orders.hits(),
        before,
        "portal requests never reach an app"
    );
}

#[tokio::test]
async fn unknown_hosts_get_421_and_no_default_pool() {
    let up = Whoami::start().await;
    let gw = Gateway::start(&two_pools(&up, &up)).await;
    for host in [
        "unknown.localhost",
        "127.0.0.1",
        "wiki.employees.localhost.evil.localhost",
        "employees.localhost",
    ] {
        let (status, reply) = raw_request(
            gw.http,
            &format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert_eq!(status, 421, "{host}: {reply}");
        assert!(reply.contains("no pool is served at this host"), "{reply}");
    }
    assert_eq!(up.hits(), 0, "nothing reached an upstream");
}

#[tokio::test]
async fn contradictory_host_names_are_refused() {
    let wiki = Whoami::start().await;
    let orders = Whoami::start().await;
    let gw = Gateway::start(&two_pools(&wiki, &orders)).await;
    let cases = [
        // absolute-form target naming another pool's app than Host
        (
            "GET http://orders.suppliers.localhost/ HTTP/1.1\r\nHost: wiki.employees.localhost\r\n",
            400,
        ),
        // two Host headers
        (
            "GET / HTTP/1.1\r\nHost: wiki.employees.localhost\r\nHost: orders.suppliers.localhost\r\n",
            400,
        ),
        // userinfo smuggled into the target's authority
        (
            "GET http://orders.suppliers.localhost@wiki.employees.localhost/ HTTP/1.1\r\nHost: wiki.employees.localhost\r\n",
            400,
        ),
        // no Host at all
        ("GET / HTTP/1.1\r\n", 400),
        // malformed Host
        ("GET / HTTP/1.1\r\nHost: wiki.employees.localhost/../x\r\n", 400),
    ];
    for (head, want) in cases {
        let (status, reply) = raw_request(gw.http, &format!("{head}Connection: close\r\n\r\n")).await;
        assert_eq!(status, want, "{head:?} → {reply}");
    }
    assert_eq!(
        wiki.hits() + orders.hits(),
        0,
        "no contradictory request reached an upstream"
    );

    // An absolute-form target that agrees with Host is fine.
    let (status, reply) = raw_request(
        gw.http,
        "GET http://wiki.employees.localhost/a HTTP/1.1\r\nHost: wiki.employees.localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(wiki.hits(), 1);
}

/// HTTP/2 (h2c, prior knowledge): `:authority` and a `Host` header must agree.
#[tokio::test]
async fn h2_authority_must_agree_with_host() {
    let wiki = Whoami::start().await;
    let orders = Whoami::start().await;
    let gw = Gateway::start(&two_pools(&wiki, &orders)).await;

    let tcp = tokio::net::TcpStream::connect(gw.http).await.unwrap();
    let (mut client, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(conn);

    let send = |authority: &str, host: Option<&str>| {
        let mut req = http::Request::get(format!("http://{authority}/")).body(()).unwrap();
        if let Some(h) = host {
            req.headers_mut().insert("host", h.parse().unwrap());
        }
        req
    };
    let status = |resp: http::Response<h2::RecvStream>| resp.status().as_u16();

    let (resp, _) = client
        .send_request(send("wiki.employees.localhost", None), true)
        .unwrap();
    assert_eq!(status(resp.await.unwrap()), 200);
    assert_eq!(wiki.hits(), 1);

    let (resp, _) = client
        .send_request(
            send("wiki.employees.localhost", Some("orders.suppliers.localhost")),
            true,
        )
        .unwrap();
    assert_eq!(status(resp.await.unwrap()), 400);
    assert_eq!(orders.hits(), 0, "the contradictory request reached no upstream");
    assert_eq!(wiki.hits(), 1);
}

/// A proxy port another process holds stops the start, naming the address: never a gateway
/// left running without its listener (whose readiness check would then reach the other
/// process).
#[test]
fn a_taken_proxy_port_stops_the_start() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // The admin listener on a port the system picks: it cannot be taken meanwhile.
    let config = format!("version = 1\n[listen]\nhttp = \"{addr}\"\n[admin]\nlisten = \"127.0.0.1:0\"\n");
    std::fs::write(dir.path().join("poolgate.toml"), config).unwrap();
    let mut child = std::process::Command::new(crate::support::BIN)
        .args(["serve", "--log-format", "json", "--config"])
        .arg(dir.path().join("poolgate.toml"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the gateway kept running without its listener {addr}");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let out = child.wait_with_output().unwrap();
    assert!(!status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains(&format!("binding the proxy listener {addr}")) && said.contains("in use"),
        "{said}"
    );
    drop(taken);
}
