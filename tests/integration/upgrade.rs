//! Replacing the running gateway under load: `serve --upgrade` takes the listening sockets,
//! the old process drains and exits, and no client notices.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::header::COOKIE;

use crate::browser::Browser;
use crate::signin::{PASSWORD, add_user, pools, sign_in};
use crate::support::*;

const WIKI: &str = "wiki.employees.localhost";
const UPGRADES: usize = 20;
const CLIENTS: usize = 6;

/// Processes this test started, stopped however it ends.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_upgrades_under_load_drop_no_request() {
    let up = Whoami::start().await;
    let db = tempfile::tempdir().unwrap();
    let opts = Options {
        store: Some(format!("sqlite:{}/store.db", db.path().display())),
        preamble: "[server]\ndrain_timeout = \"5s\"\n[log]\naccess = \"off\"\n".into(),
        ..Options::default()
    };
    let mut gw = Gateway::start_with(&pools(&up, "", ""), opts).await;
    add_user(&gw, "employees", "alice", PASSWORD, &["staff"]).await;
    let b = Browser::new(&gw);
    sign_in(&b, &gw.url(WIKI, "/"), "alice", PASSWORD).await;
    let cookie = format!("poolgate={}", b.cookie(&gw.url(WIKI, "/"), "poolgate").unwrap());

    // Steady load: clients on keep-alive connections, public and signed-in pages in turn.
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let mut load = Vec::new();
    for n in 0..CLIENTS {
        let client = reqwest::Client::builder()
            .resolve(WIKI, gw.http)
            .no_proxy()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        let (stop, ok, cookie) = (stop.clone(), ok.clone(), cookie.clone());
        let url = gw.url(WIKI, "");
        load.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let req = if (i + n).is_multiple_of(2) {
                    client.get(format!("{url}/health"))
                } else {
                    client.get(format!("{url}/me")).header(COOKIE, &cookie)
                };
                match req.send().await {
                    Ok(r) if r.status() == 200 => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => failures.push(format!("status {}", r.status())),
                    Err(e) => failures.push(format!("{e:?}")),
                }
            }
            failures
        }));
    }

    let pid_file = gw.dir.path().join("data/poolgate.pid");
    let mut children = Children(Vec::new());
    // Where a service manager (systemd, Type=notify) hears which process is the service.
    let notify_path = gw.dir.path().join("notify.sock");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).unwrap();
    notify.set_nonblocking(true).unwrap();
    for n in 0..UPGRADES {
        let served_before = ok.load(Ordering::Relaxed);
        let log = gw.dir.path().join(format!("upgrade-{n}.log"));
        let child = Command::new(BIN)
            .args(["serve", "--upgrade", "--log-format", "json", "--config"])
            .arg(gw.config_path())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(gw.dir.path().join(format!("upgrade-{n}.err"))).unwrap())
            .stdin(Stdio::null())
            .env("NOTIFY_SOCKET", &notify_path)
            .spawn()
            .unwrap();
        let pid = child.id();
        children.0.push(child);
        // Serving: it took the sockets (and wrote its pid) and started its services.
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            let running = std::fs::read_to_string(&pid_file).unwrap_or_default();
            let started = std::fs::read_to_string(&log).unwrap_or_default().contains("PG0001");
            if running.trim() == pid.to_string() && started {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "upgrade {n} did not take over:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The service manager was told: ready, and this is the main process now.
        let mut said = String::new();
        let mut buf = [0u8; 256];
        let deadline = Instant::now() + Duration::from_secs(5);
        while !said.contains(&format!("MAINPID={pid}\n")) && Instant::now() < deadline {
            match notify.recv(&mut buf) {
                Ok(n) => said.push_str(&String::from_utf8_lossy(&buf[..n])),
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
        assert!(
            said.contains(&format!("READY=1\nMAINPID={pid}\n")),
            "upgrade {n} told the service manager {said:?}"
        );
        assert!(!said.contains("STOPPING=1"), "handing over is not stopping: {said:?}");
        // The load went on meanwhile.
        wait_until(|| ok.load(Ordering::Relaxed) > served_before + 20).await;
    }

    // Every process but the last drains and exits by itself.
    let deadline = Instant::now() + Duration::from_secs(30);
    while gw.is_running()
        || children.0[..UPGRADES - 1]
            .iter_mut()
            .any(|c| c.try_wait().unwrap().is_none())
    {
        assert!(Instant::now() < deadline, "an old process did not exit after draining");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for (n, c) in children.0[..UPGRADES - 1].iter_mut().enumerate() {
        assert!(
            c.try_wait().unwrap().unwrap().success(),
            "process of upgrade {n} failed"
        );
    }
    assert!(
        children.0[UPGRADES - 1].try_wait().unwrap().is_none(),
        "the last one serves"
    );

    stop.store(true, Ordering::Relaxed);
    let mut failures = Vec::new();
    for task in load {
        failures.extend(task.await.unwrap());
    }
    let served = ok.load(Ordering::Relaxed);
    assert!(
        failures.is_empty(),
        "{} of {} requests failed: {:?}",
        failures.len(),
        served + failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(served > UPGRADES * 20, "only {served} requests were served");

    // The session signed in before the first upgrade is still good after the last.
    let me = b.fetch(&gw.url(WIKI, "/me")).await;
    assert_eq!(me.status, 200);
    assert_eq!(seen(&me.json(), "x-poolgate-username"), ["alice"]);
}

/// A gateway with a drain timeout far longer than any test waits.
async fn draining_gateway(up: &Whoami) -> Gateway {
    let opts = Options {
        preamble: "[server]\ndrain_timeout = \"20s\"\n".into(),
        ..Options::default()
    };
    Gateway::start_with(&crate::support::two_pools(up, up), opts).await
}

/// Sends the gateway `SIGTERM`; when.
fn sigterm(gw: &Gateway) -> Instant {
    let asked = Instant::now();
    let sent = Command::new("kill").args(["-TERM", &gw.pid().to_string()]).status();
    assert!(sent.unwrap().success());
    asked
}

/// The gateway exits well before its drain timeout once nothing is in flight.
async fn exits_soon(gw: &mut Gateway, asked: Instant) {
    while gw.is_running() {
        assert!(
            asked.elapsed() < Duration::from_secs(10),
            "still running {:?} after SIGTERM",
            asked.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `SIGTERM`: no new connections, the requests in flight finish, and the process exits as
/// soon as they have, well before the drain timeout.
#[tokio::test]
async fn sigterm_finishes_the_requests_in_flight_then_exits() {
    let up = Whoami::start().await;
    let mut gw = draining_gateway(&up).await;
    let client = reqwest::Client::builder()
        .resolve(WIKI, gw.http)
        .no_proxy()
        .build()
        .unwrap();
    let slow = tokio::spawn({
        let (client, url) = (client.clone(), gw.url(WIKI, "/slow?delay_ms=1500"));
        async move { client.get(url).send().await.map(|r| r.status().as_u16()) }
    });
    wait_until(|| up.hits() >= 1).await;
    let asked = sigterm(&gw);
    // The request in flight is answered in full.
    assert_eq!(slow.await.unwrap().unwrap(), 200);
    // Nothing new is taken meanwhile.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let fresh = reqwest::Client::builder()
        .resolve(WIKI, gw.http)
        .no_proxy()
        .build()
        .unwrap();
    assert!(
        fresh.get(gw.url(WIKI, "/")).send().await.is_err(),
        "a stopping gateway took a new connection"
    );
    // And it is gone once nothing is in flight: not 20 s later.
    exits_soon(&mut gw, asked).await;
}

/// An admin request in flight counts like a proxied one: an import still hashing its
/// passwords when `SIGTERM` comes is finished and answered before the process exits.
#[tokio::test]
async fn sigterm_lets_an_admin_import_in_flight_finish() {
    let up = Whoami::start().await;
    let mut gw = draining_gateway(&up).await;
    // Forty-eight passwords to hash (argon2id, 19 MiB each; the free plan takes 50 users):
    // the import takes a while.
    let mut csv = String::from("username,password\n");
    for i in 0..48 {
        csv.push_str(&format!("user{i},a long enough password {i}\n"));
    }
    let import = gw
        .api(reqwest::Method::POST, "/pools/employees/users/import?format=csv")
        .body(csv)
        .send();
    let import = tokio::spawn(async move {
        let resp = import.await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let body: serde_json::Value = resp.json().await.map_err(|e| e.to_string())?;
        Ok::<_, String>((status, body))
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(!import.is_finished(), "the import was over before the signal");
    let asked = sigterm(&gw);
    let (status, report) = import.await.unwrap().expect("the import was cut off");
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["imported"], 48, "{report}");
    exits_soon(&mut gw, asked).await;
}

/// A pid file that names some other program (a stale one, its pid reused) is not
/// signalled: `--upgrade` refuses and says so.
#[test]
fn an_upgrade_never_signals_a_process_that_is_not_poolgate() {
    let dir = tempfile::tempdir().unwrap();
    let mut other = Command::new("sleep").arg("30").spawn().unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("data/poolgate.pid"), format!("{}\n", other.id())).unwrap();
    std::fs::write(
        dir.path().join("poolgate.toml"),
        format!("version = 1\n[listen]\nhttp = \"127.0.0.1:{}\"\n", free_port()),
    )
    .unwrap();
    let out = run_cli(&dir.path().join("poolgate.toml"), &["serve", "--upgrade"], "");
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success());
    assert!(said.contains("is `sleep`, not `poolgate`"), "{said}");
    assert!(other.try_wait().unwrap().is_none(), "the other program was signalled");
    let _ = other.kill();
    let _ = other.wait();
}

/// A service manager is told READY only once the proxy's listeners accept, so whatever
/// starts after poolgate (systemd's `After=`) finds it serving, not refusing connections.
#[tokio::test]
async fn ready_is_told_once_the_listeners_accept() {
    let up = Whoami::start().await;
    let mut gw = Gateway::start(&crate::support::two_pools(&up, &up)).await;
    // The same config, started again by hand under a service manager's socket.
    assert!(
        Command::new("kill")
            .args(["-KILL", &gw.pid().to_string()])
            .status()
            .unwrap()
            .success()
    );
    while gw.is_running() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for _ in 0..5 {
        let notify_path = gw.dir.path().join("notify.sock");
        let _ = std::fs::remove_file(&notify_path);
        let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).unwrap();
        notify.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let child = Command::new(BIN)
            .args(["serve", "--config"])
            .arg(gw.config_path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .stdin(Stdio::null())
            .env("NOTIFY_SOCKET", &notify_path)
            .spawn()
            .unwrap();
        let _stop = Children(vec![child]);
        // At READY, at once: a connection is taken and a request answered.
        let addr = gw.http;
        let answered = tokio::task::spawn_blocking(move || {
            let mut buf = [0u8; 256];
            let n = notify.recv(&mut buf).expect("READY within 30 s");
            let said = String::from_utf8_lossy(&buf[..n]).into_owned();
            assert!(said.contains("READY=1"), "{said:?}");
            use std::io::{Read, Write};
            let mut conn = std::net::TcpStream::connect(addr).map_err(|e| format!("refused at READY: {e}"))?;
            conn.write_all(b"GET / HTTP/1.1\r\nHost: nowhere.localhost\r\nConnection: close\r\n\r\n")
                .unwrap();
            let mut answer = String::new();
            conn.read_to_string(&mut answer).unwrap();
            Ok::<_, String>(answer)
        })
        .await
        .unwrap();
        let answer = answered.unwrap();
        assert!(answer.starts_with("HTTP/1.1 421"), "{answer}");
    }
}
