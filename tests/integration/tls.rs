//! HTTPS: one certificate per host chosen by SNI, the SNI held to the Host header, and
//! the per-app redirect from HTTP.

use crate::support::*;

fn https_opts() -> Options {
    Options {
        https: true,
        ..Options::default()
    }
}

#[tokio::test]
async fn each_host_gets_its_own_certificate_by_sni() {
    let wiki = Whoami::start().await;
    let orders = Whoami::start().await;
    let gw = Gateway::start_with(&two_pools(&wiki, &orders), https_opts()).await;
    // Each dev certificate names only its own host, so a verified handshake proves SNI chose it.
    for (host, up) in [
        ("wiki.employees.localhost", &wiki),
        ("orders.suppliers.localhost", &orders),
    ] {
        let resp = gw.client().get(gw.https_url(host, "/")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.version(), reqwest::Version::HTTP_2, "h2 by ALPN");
        let echo: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(echo["served_by"], up.addr.to_string());
        assert_eq!(seen(&echo, "x-forwarded-proto"), ["https"]);
    }
    let resp = gw
        .client()
        .get(gw.https_url("login.employees.localhost", "/"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "portal hosts have certificates too");
}

#[tokio::test]
async fn a_host_other_than_the_sni_is_misdirected() {
    let wiki = Whoami::start().await;
    let orders = Whoami::start().await;
    let gw = Gateway::start_with(&two_pools(&wiki, &orders), https_opts()).await;
    let http1 = reqwest::Client::builder()
        .http1_only()
        .resolve("wiki.employees.localhost", gw.https.unwrap())
        .no_proxy()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(gw.dir.path().join("certs/dev-ca.pem")).unwrap()).unwrap(),
        )
        .build()
        .unwrap();
    let resp = http1
        .get(gw.https_url("wiki.employees.localhost", "/"))
        .header("host", "orders.suppliers.localhost")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 421);
    assert_eq!(orders.hits() + wiki.hits(), 0, "nothing reached an upstream");
}

#[tokio::test]
async fn an_unknown_sni_gets_no_certificate() {
    let up = Whoami::start().await;
    let gw = Gateway::start_with(&two_pools(&up, &up), https_opts()).await;
    let err = gw
        .client()
        .get(gw.https_url("stranger.localhost", "/"))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_connect(), "{err:?}");
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn an_app_can_redirect_http_to_https() {
    let up = Whoami::start().await;
    let pools = two_pools(&up, &up).replace("timeout = \"2s\"", "timeout = \"2s\"\nhttps_redirect = true");
    let gw = Gateway::start_with(&pools, https_opts()).await;
    let resp = gw
        .client()
        .get(gw.url("wiki.employees.localhost", "/a/b?c=d"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 308);
    let location = resp.headers()["location"].to_str().unwrap();
    assert_eq!(location, gw.https_url("wiki.employees.localhost", "/a/b?c=d"));
    assert_eq!(up.hits(), 0);
    // The other app did not ask for it.
    let (status, _) = gw.get("orders.suppliers.localhost", "/").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_wildcard_certificate_covers_hosts_added_at_run_time() {
    let up = Whoami::start().await;
    let pools = two_pools(&up, &up).replace("name = \"Employees\"", "name = \"Employees\"\nplan = \"basic\"");
    let gw = Gateway::start_with(&pools, https_opts()).await;
    let resp = gw
        .api(reqwest::Method::POST, "/pools/employees/apps")
        .json(
            &serde_json::json!({"id": "crm", "hosts": ["crm.employees.localhost"], "upstreams": [up.addr.to_string()], "public_paths": ["/"]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    let resp = gw
        .client()
        .get(gw.https_url("crm.employees.localhost", "/"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // A host under a domain with no certificate is refused before it is stored.
    let resp = gw
        .api(reqwest::Method::POST, "/pools/employees/apps")
        .json(&serde_json::json!({"id": "other", "hosts": ["app.elsewhere.localhost"], "upstreams": [up.addr.to_string()]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    assert!(resp.text().await.unwrap().contains("app.elsewhere.localhost"));
}

#[tokio::test]
async fn a_host_without_a_certificate_does_not_stop_the_others() {
    let up = Whoami::start().await;
    let opts = Options {
        https: true,
        without_certs: vec!["orders.suppliers.localhost", "*.suppliers.localhost"],
        ..Options::default()
    };
    let gw = Gateway::start_with(&two_pools(&up, &up), opts).await;
    // Every host that has a certificate is served over HTTPS…
    let resp = gw
        .client()
        .get(gw.https_url("wiki.employees.localhost", "/"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // …the one without gets no handshake, but plain HTTP still serves it…
    let err = gw
        .client()
        .get(gw.https_url("orders.suppliers.localhost", "/"))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_connect(), "{err:?}");
    let (status, _) = gw.get("orders.suppliers.localhost", "/").await;
    assert_eq!(status, 200);
    // …and it is logged with its code and host.
    let log = gw.log();
    assert!(
        log.lines()
            .any(|l| l.contains("PG0104") && l.contains("orders.suppliers.localhost")),
        "{log}"
    );
    // `poolgate check` reports it as FILE: TLS: host …
    let out = std::process::Command::new(BIN)
        .args(["check", "--config"])
        .arg(gw.config_path())
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(report.contains("TLS: host orders.suppliers.localhost:"), "{report}");
    assert!(!report.contains("wiki.employees.localhost"), "{report}");

    // A certificate added later is served after a reload.
    let made = std::process::Command::new(BIN)
        .args(["certs", "dev", "--config"])
        .arg(gw.config_path())
        .output()
        .unwrap();
    assert!(made.status.success());
    gw.sighup();
    let client = gw.client().clone();
    let url = gw.https_url("orders.suppliers.localhost", "/");
    let mut served = false;
    for _ in 0..100 {
        if client.get(&url).send().await.is_ok_and(|r| r.status() == 200) {
            served = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(served, "{}", gw.log());
}
