//! Hot reload: a valid file replaces the routes with no request failing; a broken file
//! is refused and the routes in force keep serving.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crate::support::*;

#[tokio::test]
async fn reload_under_load_loses_no_request() {
    let first = Whoami::start().await;
    let second = Whoami::start().await;
    let gw = Arc::new(Gateway::start(&two_pools(&first, &first)).await);

    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    // Requests each worker has finished, so the test can tell when every request routed
    // by an old snapshot has come back.
    let done: Arc<Vec<AtomicUsize>> = Arc::new((0..4).map(|_| AtomicUsize::new(0)).collect());
    let mut workers = Vec::new();
    for worker in 0..4 {
        let (gw, stop, ok, done) = (gw.clone(), stop.clone(), ok.clone(), done.clone());
        workers.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let (status, body) = gw.get("wiki.employees.localhost", "/").await;
                if status == 200 {
                    ok.fetch_add(1, Ordering::SeqCst);
                } else {
                    failures.push(format!("{status}: {body}"));
                }
                done[worker].fetch_add(1, Ordering::SeqCst);
            }
            failures
        }));
    }

    tokio::time::sleep(Duration::from_millis(300)).await;
    // 1: SIGHUP moves the wiki to the second upstream and adds a pool.
    let moved =
        two_pools(&second, &first) + "[pools.partners]\nname = \"Partners\"\nportal = \"login.partners.localhost\"\n";
    gw.rewrite_pools(&moved, "");
    gw.sighup();
    wait_until(|| second.hits() > 0).await;
    let (status, page) = gw.get("login.partners.localhost", "/").await;
    assert_eq!(status, 200, "{page}");

    // 2: the admin API reloads too, moving it back.
    gw.rewrite_pools(&two_pools(&first, &first), "");
    let resp = gw.api(reqwest::Method::POST, "/reload").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    // A request routed just before the swap may still be on its way to the old upstream.
    // Once every worker has finished two more, each has sent one wholly after the swap.
    let before: Vec<usize> = done.iter().map(|d| d.load(Ordering::SeqCst)).collect();
    wait_until(|| done.iter().zip(&before).all(|(d, b)| d.load(Ordering::SeqCst) >= b + 2)).await;
    let settled = second.hits();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        second.hits(),
        settled,
        "after the reload nothing goes to the old upstream"
    );

    stop.store(true, Ordering::SeqCst);
    for w in workers {
        let failures = w.await.unwrap();
        assert!(failures.is_empty(), "requests failed during reload: {failures:?}");
    }
    assert!(
        ok.load(Ordering::SeqCst) > 50,
        "the load was real: {}",
        ok.load(Ordering::SeqCst)
    );
    let (status, _) = gw.get("login.partners.localhost", "/").await;
    assert_eq!(status, 421, "the pool removed by the last reload is gone");
}

#[tokio::test]
async fn a_broken_file_leaves_the_old_routes_serving() {
    let up = Whoami::start().await;
    let mut gw = Gateway::start(&two_pools(&up, &up)).await;

    // Broken by SIGHUP: a duplicate host. The gateway logs it and keeps going.
    let broken = two_pools(&up, &up).replace("orders.suppliers.localhost", "wiki.employees.localhost");
    gw.rewrite_pools(&broken, "");
    gw.sighup();
    wait_until(|| gw.log().contains("configuration refused")).await;
    assert!(gw.is_running());
    assert!(
        gw.log().contains("duplicate host `wiki.employees.localhost`"),
        "{}",
        gw.log()
    );
    let (status, _) = gw.get("orders.suppliers.localhost", "/").await;
    assert_eq!(status, 200, "the old routes still serve");

    // Broken through the admin API: unparseable. The caller is told why, with the line.
    std::fs::write(gw.config_path(), "version = 1\n[listen\n").unwrap();
    let resp = gw.api(reqwest::Method::POST, "/reload").send().await.unwrap();
    assert_eq!(resp.status(), 422);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "refused");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("poolgate.toml:2:"),
        "{body}"
    );
    let (status, _) = gw.get("wiki.employees.localhost", "/").await;
    assert_eq!(status, 200);

    let metrics = gw.metrics().await;
    assert!(
        metrics.contains(r#"poolgate_config_reloads_total{outcome="refused"} 2"#),
        "{metrics}"
    );
}
