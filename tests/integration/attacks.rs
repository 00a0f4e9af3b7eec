//! Each defect found by attacking sign-in, sent as the attack: what the client gets back
//! and what reaches the app (the whoami echo), and that the gateway holds under the load
//! that broke it.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::browser::Browser;
use crate::signin::{PASSWORD, add_user, api_get, http, pools, sign_in, wiki_url};
use crate::support::*;

/// An access token for the wiki, from the code flow a third-party client runs with the
/// browser's single sign-on.
async fn wiki_token(gw: &Gateway, b: &Browser) -> String {
    let code = crate::op::code(gw, b, "&state=s&nonce=n").await;
    let tokens = crate::op::wiki_tokens(gw, &code).await;
    tokens["access_token"].as_str().expect("an access token").to_owned()
}

async fn with_bearer(gw: &Gateway, token: &str) -> u16 {
    gw.client()
        .get(wiki_url(gw, "/api"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Defect 1: a cached bearer token died only with its cache entry (300 s). Each way a
/// session ends now ends its tokens at once, though each was used (and cached) first.
#[tokio::test]
async fn a_bearer_token_ends_with_its_session() {
    let up = Whoami::start().await;
    let gw = Gateway::start(&pools(&up, "", "")).await;
    let alice = add_user(&gw, "employees", "alice", PASSWORD, &[]).await;

    type End = for<'a> fn(&'a Gateway, &'a Browser, &'a str) -> futures_util::future::BoxFuture<'a, ()>;
    let ends: [(&str, End); 4] = [
        ("sign-out", |gw, b, _| {
            Box::pin(async move {
                b.sign_out(&wiki_url(gw, "/.poolgate/logout")).await;
            })
        }),
        ("admin revokes the session", |gw, _, _| {
            Box::pin(async move {
                let sessions = api_get(gw, "/pools/employees/sessions").await;
                for s in sessions["items"].as_array().unwrap() {
                    let id = s["id"].as_str().unwrap();
                    let r = gw
                        .api(Method::DELETE, &format!("/pools/employees/sessions/{id}"))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 204);
                }
            })
        }),
        ("admin resets the password", |gw, _, alice| {
            Box::pin(async move {
                let r = gw
                    .api(Method::PUT, &format!("/pools/employees/users/{alice}/password"))
                    .json(&json!({"password": PASSWORD}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 204);
            })
        }),
        ("admin disables the user", |gw, _, alice| {
            Box::pin(async move {
                let r = gw
                    .api(Method::POST, &format!("/pools/employees/users/{alice}/disable"))
                    .send()
                    .await
                    .unwrap();
                assert!(r.status().is_success());
            })
        }),
    ];
    for (what, end) in ends {
        let b = Browser::new(&gw);
        assert_eq!(sign_in(&b, &wiki_url(&gw, "/"), "alice", PASSWORD).await.status, 200);
        let token = wiki_token(&gw, &b).await;
        assert_eq!(
            with_bearer(&gw, &token).await,
            200,
            "{what}: the token works (and is now cached)"
        );
        assert_eq!(with_bearer(&gw, &token).await, 200);
        let hits = up.hits();
        end(&gw, &b, &alice).await;
        assert_eq!(
            with_bearer(&gw, &token).await,
            401,
            "{what}: refused at once on this node"
        );
        assert_eq!(up.hits(), hits, "{what}: nothing reached the app");
    }
}

/// Defect 1, across nodes: a token cached on one node is refused there within the store
/// poll after the session ends on another.
#[tokio::test]
async fn a_bearer_token_ends_on_every_node() {
    let dir = tempfile::tempdir().unwrap();
    let shared = shared_deployment(dir.path()).await;
    let up = Whoami::start().await;
    // One port on two loopback addresses: one issuer, as two nodes behind a balancer.
    let port = free_port();
    let node = |ip: [u8; 4]| Options {
        http: Some(SocketAddr::from((ip, port))),
        ..shared()
    };
    let one = Gateway::start_with(&pools(&up, "", ""), node([127, 0, 0, 1])).await;
    let two = Gateway::start_with(&pools(&up, "", ""), node([127, 0, 0, 2])).await;
    add_user(&one, "employees", "alice", PASSWORD, &[]).await;
    let b = Browser::new(&one);
    sign_in(&b, &wiki_url(&one, "/"), "alice", PASSWORD).await;
    let token = wiki_token(&one, &b).await;
    let at_two = reqwest::Client::builder()
        .resolve("wiki.employees.localhost", two.http)
        .no_proxy()
        .build()
        .unwrap();
    let via_two = || {
        let req = at_two.get(wiki_url(&two, "/api")).bearer_auth(&token).send();
        async move { req.await.unwrap().status().as_u16() }
    };
    assert_eq!(via_two().await, 200, "served, and cached, by node two");
    b.sign_out(&wiki_url(&one, "/.poolgate/logout")).await;
    assert_eq!(with_bearer(&one, &token).await, 401);
    let deadline = Instant::now() + Duration::from_secs(5);
    while via_two().await != 401 {
        assert!(Instant::now() < deadline, "node two still honours the token after 5 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Defect 2: concurrent sign-ins lost their code redemptions on SQLite ("the store is
/// unavailable"). Eight browsers sign in at once, four times over, on a SQLite file and
/// (when the suite has one) on PostgreSQL: every one lands.
#[tokio::test]
async fn concurrent_sign_ins_all_land_on_sqlite_and_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let mut stores = vec![format!("sqlite:{}", dir.path().join("concurrent.db").display())];
    stores.extend(fresh_postgres_database().await);
    for store in stores {
        let up = Whoami::start().await;
        let opts = Options {
            store: Some(store.clone()),
            ..Options::default()
        };
        let gw = Gateway::start_with(&pools(&up, "", ""), opts).await;
        let users: Vec<String> = (0..8).map(|i| format!("user{i}")).collect();
        for u in &users {
            add_user(&gw, "employees", u, PASSWORD, &[]).await;
        }
        let mut failures = Vec::new();
        for round in 0..4 {
            let runs = users.iter().map(|u| {
                let gw = &gw;
                async move {
                    let b = Browser::new(gw);
                    let page = sign_in(&b, &wiki_url(gw, "/"), u, PASSWORD).await;
                    let echo = b.fetch(&wiki_url(gw, "/")).await;
                    (page.status, echo.status, page.body)
                }
            });
            for (i, (landed, app, body)) in futures_util::future::join_all(runs).await.into_iter().enumerate() {
                if (landed, app) != (200, 200) {
                    failures.push(format!(
                        "round {round} user{i}: {landed}/{app} {}",
                        &body[..body.len().min(200)]
                    ));
                }
            }
        }
        assert!(failures.is_empty(), "{store}: {failures:#?}");
        assert!(
            !gw.log().contains("PG0509"),
            "{store}: a redemption failed in the store"
        );
    }
}

/// A client from a given loopback address (127.0.0.0/8 is all ours).
fn client_from(ip: IpAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .no_proxy()
        .build()
        .unwrap()
}

/// The gateway's peak resident memory so far (`VmHWM`), in MiB.
fn peak_rss_mib(gw: &Gateway) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", gw.pid())).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kib / 1024
}

/// Defect 3: 200 concurrent bad logins hashed 200 passwords at once (1.4 GB). Now the
/// checks are bounded: some are told to come back (503 with `Retry-After`), memory stays
/// within the bound, and a real person signs in during the flood.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_of_bad_logins_is_bounded() {
    let up = Whoami::start().await;
    let gw = Gateway::start(&pools(&up, "address_lockout_attempts = 1000", "")).await;
    add_user(&gw, "employees", "alice", PASSWORD, &[]).await;
    add_user(&gw, "employees", "victim", PASSWORD, &[]).await;
    let portal = http(&gw, "login.employees.localhost", "/");
    // One login form, its CSRF cookie and token, posted by every attacker.
    let form = gw.client().get(&portal).send().await.unwrap();
    let cookie = form.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let page = form.text().await.unwrap();
    let csrf = crate::browser::html_unescape(
        page.split("name=\"csrf\" value=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap(),
    );
    let baseline = peak_rss_mib(&gw);
    let port = gw.http.port();
    let attack = (0..200u32).map(|i| {
        let (cookie, csrf) = (cookie.clone(), csrf.clone());
        async move {
            let ip: IpAddr = [127, 0, 1 + (i / 250) as u8, 2 + (i % 250) as u8].into();
            let resp = client_from(ip)
                .post(format!("http://127.0.0.1:{port}/login"))
                .header("host", format!("login.employees.localhost:{port}"))
                .header("cookie", cookie)
                .header("origin", format!("http://login.employees.localhost:{port}"))
                .form(&[
                    ("csrf", csrf.as_str()),
                    ("username", "victim"),
                    ("password", "wrong guess"),
                ])
                .send()
                .await
                .unwrap();
            (resp.status().as_u16(), resp.headers().contains_key("retry-after"))
        }
    });
    let flood = tokio::spawn(futures_util::future::join_all(attack));
    tokio::time::sleep(Duration::from_millis(150)).await;
    // A real person signs in meanwhile, trying again when asked to.
    let started = Instant::now();
    let b = Browser::new(&gw);
    let mut landed = sign_in(&b, &wiki_url(&gw, "/"), "alice", PASSWORD).await;
    while landed.status == 503 {
        assert!(landed.headers.contains_key("retry-after"));
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the real sign-in never got through"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        landed = sign_in(&b, &wiki_url(&gw, "/"), "alice", PASSWORD).await;
    }
    assert_eq!(landed.status, 200, "the real sign-in went through during the flood");
    let results = flood.await.unwrap();
    let refused = results.iter().filter(|(s, _)| *s == 503).count();
    let checked = results.iter().filter(|(s, _)| *s == 401).count();
    assert_eq!(refused + checked, 200, "every bad login got 401 or 503: {results:?}");
    assert!(refused > 0, "some were told to come back");
    assert!(
        results.iter().all(|(s, retry)| *s != 503 || *retry),
        "every 503 says when to retry"
    );
    let grown = peak_rss_mib(&gw).saturating_sub(baseline);
    // Unbounded, 200 checks at 19 MiB each is 3.8 GiB; bounded, a handful at a time.
    assert!(grown < 400, "memory grew by {grown} MiB under the flood");
}

/// Defect 4: anything a client sends is capped before any work, and no audit row or
/// page grows with what was sent.
#[tokio::test]
async fn oversized_fields_are_refused_and_the_audit_log_stays_small() {
    let up = Whoami::start().await;
    let gw = Gateway::start(&pools(&up, "address_lockout_attempts = 1", "")).await;
    add_user(&gw, "employees", "alice", PASSWORD, &[]).await;
    let b = Browser::new(&gw);
    let login = b.open(&wiki_url(&gw, "/")).await;
    let long = "a".repeat(300);
    let huge = "b".repeat(60_000);
    for (user, pass, what) in [
        (long.as_str(), "x", "a 300-byte username"),
        (huge.as_str(), "x", "a 60 kB username"),
        ("alice", &"p".repeat(1025) as &str, "a password past 1 KiB"),
    ] {
        let page = b
            .submit(&login, "/login", &[("username", user), ("password", pass)])
            .await;
        assert_eq!(page.status, 400, "{what}");
    }
    let too_big = b
        .submit(
            &login,
            "/login",
            &[("username", &"c".repeat(100_000)), ("password", "x")],
        )
        .await;
    assert!(
        matches!(too_big.status, 400 | 413),
        "a body past the limit: {}",
        too_big.status
    );
    // Throttled (one failure is the limit here), then the long usernames again: refused
    // before the throttle's audit row is written.
    b.submit(&login, "/login", &[("username", "alice"), ("password", "wrong")])
        .await;
    for _ in 0..20 {
        let page = b
            .submit(&login, "/login", &[("username", &long), ("password", "x")])
            .await;
        assert_eq!(page.status, 400);
        let page = b
            .submit(&login, "/login", &[("username", "mallory"), ("password", "x")])
            .await;
        assert_eq!(page.status, 429);
    }
    let audit = gw
        .api(Method::GET, "/pools/employees/audit?limit=1000")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(audit.len() < 64 * 1024, "the audit page is {} bytes", audit.len());
    assert!(!audit.contains(&long), "no oversized username reached the audit log");
    let rows: Value = serde_json::from_str(&audit).unwrap();
    for row in rows["items"].as_array().unwrap() {
        assert!(row["target"].as_str().unwrap().len() <= 256, "{row}");
    }
}

/// An upstream that answers every request with cookies of the gateway's names.
async fn cookie_planting_upstream() -> std::net::SocketAddr {
    use axum::response::AppendHeaders;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(|| async {
        (
            AppendHeaders([
                ("set-cookie", "poolgate=planted; Path=/"),
                ("set-cookie", "POOLGATE-SSO=planted; Domain=employees.localhost; Path=/"),
                ("set-cookie", "__Host-poolgate=planted; Path=/; Secure"),
                ("set-cookie", "poolgate-login=planted; Path=/.poolgate"),
                ("set-cookie", "theme=dark; Path=/"),
            ]),
            "ok",
        )
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// Defect 5: an app's `Set-Cookie` with a gateway cookie name (any case, any `Domain`)
/// reached the browser. Now only the app's own cookies do.
#[tokio::test]
async fn an_upstream_cannot_plant_the_gateways_cookies() {
    let planter = cookie_planting_upstream().await;
    let config = format!(
        "[pools.employees]\nname = \"Employees\"\nportal = \"login.employees.localhost\"\n\n\
         [pools.employees.apps.wiki]\nhosts = [\"wiki.employees.localhost\"]\nupstreams = [\"{planter}\"]\npublic_paths = [\"/public/\"]\n"
    );
    let gw = Gateway::start(&config).await;
    add_user(&gw, "employees", "alice", PASSWORD, &[]).await;
    let b = Browser::new(&gw);
    let anonymous = gw.client().get(wiki_url(&gw, "/public/x")).send().await.unwrap();
    let cookies: Vec<&str> = anonymous
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(cookies, ["theme=dark; Path=/"], "a public path");
    assert_eq!(sign_in(&b, &wiki_url(&gw, "/"), "alice", PASSWORD).await.status, 200);
    let signed_in = b.client.get(wiki_url(&gw, "/page")).send().await.unwrap();
    assert_eq!(signed_in.status(), 200);
    let cookies: Vec<&str> = signed_in
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(cookies, ["theme=dark; Path=/"], "a signed-in request");
    assert!(
        b.cookie(&wiki_url(&gw, "/"), "poolgate")
            .is_some_and(|c| c != "planted")
    );
}

/// Defect 6: a cross-site GET or POST signed people out. Now a GET only asks, and a
/// post needs this very origin and a token the server made.
#[tokio::test]
async fn sign_out_needs_a_same_origin_post_with_a_genuine_token() {
    let up = Whoami::start().await;
    let gw = Gateway::start(&pools(&up, "", "")).await;
    add_user(&gw, "employees", "alice", PASSWORD, &[]).await;
    let b = Browser::new(&gw);
    sign_in(&b, &wiki_url(&gw, "/"), "alice", PASSWORD).await;
    let signed_in = |b: &Browser| {
        let url = wiki_url(&gw, "/");
        let b = b.client.clone();
        async move { b.get(url).send().await.unwrap().status() == 200 }
    };
    let portal = |path: &str| http(&gw, "login.employees.localhost", path);

    // A link or image on another site: a page that asks, nothing ended.
    for url in [
        wiki_url(&gw, "/.poolgate/logout"),
        portal("/logout"),
        portal("/oidc/logout"),
    ] {
        let page = b
            .client
            .get(&url)
            .header("sec-fetch-site", "cross-site")
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200, "{url}");
        assert!(page.text().await.unwrap().contains("Sign out of Employees?"));
        assert!(signed_in(&b).await, "a GET of {url} signed no one out");
    }
    // Posts from elsewhere, or with a token the client made up, are refused.
    let confirm = b.open(&wiki_url(&gw, "/.poolgate/logout")).await;
    let csrf = confirm.input("csrf").unwrap();
    let own_origin = format!("http://wiki.employees.localhost:{}", gw.http.port());
    let made_up = "A".repeat(43);
    for (origin, token, cookie, what) in [
        (Some("https://evil.example"), csrf.as_str(), None, "another origin"),
        (None, csrf.as_str(), None, "no Origin nor Sec-Fetch-Site"),
        (Some(own_origin.as_str()), "", None, "no token"),
        (
            Some(own_origin.as_str()),
            made_up.as_str(),
            Some(made_up.as_str()),
            "a token the client chose",
        ),
    ] {
        let mut post = b
            .client
            .post(wiki_url(&gw, "/.poolgate/logout"))
            .form(&[("csrf", token)]);
        if let Some(o) = origin {
            post = post.header("origin", o);
        }
        if let Some(c) = cookie {
            post = post.header("cookie", format!("poolgate-csrf={c}"));
        }
        let resp = post.send().await.unwrap();
        assert_eq!(resp.status(), 403, "{what}");
        assert!(signed_in(&b).await, "{what}: still signed in");
    }
    // The button on the page.
    let out = b.submit(&confirm, "/.poolgate/logout", &[]).await;
    assert_eq!(out.status, 200);
    assert!(out.body.contains("You are signed out"), "{}", out.body);
    assert!(!signed_in(&b).await);
}

/// Defect 7: control characters in `return_to` or `post_logout_redirect_uri` gave 500s
/// (with the session cookie set) or were echoed into `Location`. Now: 400 with a page,
/// no cookie.
#[tokio::test]
async fn control_characters_are_refused_with_a_page_and_no_cookie() {
    let up = Whoami::start().await;
    let gw = Gateway::start(&pools(&up, "", "")).await;
    for bad in ["%01", "%00", "%7f", "%0b", "%0d%0aSet-Cookie:%20x=y"] {
        let resp = gw
            .client()
            .get(wiki_url(&gw, &format!("/.poolgate/login?return_to=/{bad}")))
            .header("accept", "text/html")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "return_to=/{bad}");
        assert!(resp.headers().get("set-cookie").is_none(), "no cookie with an error");
        assert!(resp.text().await.unwrap().contains("<h1>"), "a page");
    }
    let app = format!("http://wiki.employees.localhost:{}", gw.http.port());
    let encoded = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    for bad in [
        "/a\r\nx: y",
        "/a\0",
        "/a\x7f",
        "/a\x0b",
        "\\\\evil.example/",
        "/\\evil.example",
    ] {
        let uri = format!("{app}{bad}");
        let resp = gw
            .client()
            .get(http(
                &gw,
                "login.employees.localhost",
                &format!("/oidc/logout?post_logout_redirect_uri={}", encoded(&uri)),
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{uri:?}");
        assert!(resp.headers().get("location").is_none(), "{uri:?} not echoed");
    }
}

/// Defect 8: a Host with port 0 or 99999 was routed and passed upstream as it was.
#[tokio::test]
async fn hosts_with_impossible_ports_are_refused() {
    let up = Whoami::start().await;
    let gw = Gateway::start(&two_pools(&up, &up)).await;
    for host in [
        "wiki.employees.localhost:0",
        "wiki.employees.localhost:99999",
        "wiki.employees.localhost:65536",
    ] {
        let (status, _) = raw_request(
            gw.http,
            &format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert_eq!(status, 400, "{host}");
    }
    assert_eq!(up.hits(), 0, "nothing reached the app");
    let (status, _) = raw_request(
        gw.http,
        "GET / HTTP/1.1\r\nHost: wiki.employees.localhost:65535\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200);
}

/// Defect 9: the names legacy apps read as "who is signed in" passed through from any
/// client. Now they are stripped on every route, unless a trusted proxy sent them; path
/// overrides never pass.
#[tokio::test]
async fn conventional_identity_headers_never_reach_the_app() {
    let up = Whoami::start().await;
    let spoofed = [
        "Remote-User",
        "X-Remote-User",
        "X-Forwarded-User",
        "X-Forwarded-Email",
        "X-Forwarded-Preferred-Username",
        "X-Forwarded-Groups",
        "X-Auth-Request-User",
        "X-Auth-Request-Email",
        "X-Authenticated-User",
        "X-WEBAUTH-USER",
        "x_webauth_user",
        "X-Original-URL",
        "X-Rewrite-URL",
    ];
    let send = |gw: &Gateway| {
        let mut req = gw.client().get(gw.url("wiki.employees.localhost", "/anything"));
        for h in spoofed {
            req = req.header(h, "admin");
        }
        req.send()
    };
    let gw = Gateway::start(&two_pools(&up, &up)).await;
    let echo: Value = send(&gw).await.unwrap().json().await.unwrap();
    for h in spoofed {
        assert!(
            seen(&echo, &h.to_ascii_lowercase()).is_empty(),
            "{h} reached the app: {echo}"
        );
    }
    drop(gw);
    // From a trusted proxy, its word on who is signed in passes; a path override never.
    let opts = Options {
        preamble: "[proxy]\ntrusted_proxies = [\"127.0.0.1/32\"]".into(),
        ..Options::default()
    };
    let gw = Gateway::start_with(&two_pools(&up, &up), opts).await;
    let echo: Value = send(&gw).await.unwrap().json().await.unwrap();
    assert_eq!(seen(&echo, "x-forwarded-user"), ["admin"]);
    assert!(seen(&echo, "x-original-url").is_empty() && seen(&echo, "x-rewrite-url").is_empty());
}

/// Defect 10: under a public prefix, paths a lenient backend decodes into `/secret`
/// (double decoding, NUL, overlong UTF-8, `%u`, dot look-alikes) were forwarded without a
/// session. Now they need one like any other path.
#[tokio::test]
async fn lenient_path_readings_are_never_public() {
    let up = Whoami::start().await;
    let config = format!(
        "[pools.employees]\nname = \"Employees\"\nportal = \"login.employees.localhost\"\n\n\
         [pools.employees.apps.wiki]\nhosts = [\"wiki.employees.localhost\"]\nupstreams = [\"{}\"]\npublic_paths = [\"/static/\"]\n",
        up.addr
    );
    let gw = Gateway::start(&config).await;
    let (open, _) = raw_request(
        gw.http,
        "GET /static/app.js HTTP/1.1\r\nHost: wiki.employees.localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(open, 200, "a plain public path is served");
    let hits = up.hits();
    for path in [
        "/static/%252e%252e/secret",
        "/static/%252E%252E%252Fsecret",
        "/static/%00/../secret",
        "/static/..%00/secret",
        "/static/%c0%ae%c0%ae/secret",
        "/static/%u002e%u002e/secret",
        "/static/%e2%80%a5/secret",
        "/static/%ef%bc%8e%ef%bc%8e/secret",
        "/static/\u{2025}/secret",
        "/static/\u{ff0e}\u{ff0e}/secret",
    ] {
        let (status, _) = raw_request(
            gw.http,
            &format!("GET {path} HTTP/1.1\r\nHost: wiki.employees.localhost\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert!(matches!(status, 400 | 401), "{path}: {status}");
    }
    assert_eq!(up.hits(), hits, "none reached the app anonymously");
}

/// Hardening: pipelined HTTP/1.1 requests are all answered, in order.
#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let up = Whoami::start().await;
    let gw = Gateway::start(&two_pools(&up, &up)).await;
    let mut batch = String::new();
    for i in 0..50 {
        batch.push_str(&format!(
            "GET /n/{i} HTTP/1.1\r\nHost: wiki.employees.localhost\r\n\r\n"
        ));
    }
    batch.push_str("GET /n/last HTTP/1.1\r\nHost: wiki.employees.localhost\r\nConnection: close\r\n\r\n");
    let mut stream = tokio::net::TcpStream::connect(gw.http).await.unwrap();
    stream.write_all(batch.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut buf))
        .await
        .expect("the connection is answered and closed, never left hanging")
        .unwrap();
    let text = String::from_utf8_lossy(&buf);
    assert_eq!(text.matches("HTTP/1.1 200").count(), 51, "every request answered");
    let order: Vec<usize> = (0..50).map(|i| text.find(&format!("\"/n/{i}\"")).unwrap()).collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "in order");
}

/// Hardening: what the gateway says about caching, sniffing and framing; two cookies of
/// one name; the admin listener's host check and exact token; look-alike usernames.
#[tokio::test]
async fn response_hardening_and_admin_guards() {
    let up = Whoami::start().await;
    let gw = Gateway::start(&pools(&up, "", "")).await;
    add_user(&gw, "employees", "alice", PASSWORD, &[]).await;
    let b = Browser::new(&gw);
    sign_in(&b, &wiki_url(&gw, "/"), "alice", PASSWORD).await;

    let app = b.client.get(wiki_url(&gw, "/")).send().await.unwrap();
    assert_eq!(
        app.headers()["cache-control"],
        "private",
        "a signed-in page is not for shared caches"
    );
    let unknown = gw.client().get(gw.url("nobody.localhost", "/")).send().await.unwrap();
    assert_eq!(unknown.status(), 421);
    assert_eq!(unknown.headers()["x-content-type-options"], "nosniff");
    assert_eq!(unknown.headers()["x-frame-options"], "DENY");
    let redirect = gw
        .client()
        .get(wiki_url(&gw, "/"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(redirect.headers()["cache-control"], "no-store");
    let userinfo = gw
        .client()
        .get(http(&gw, "login.employees.localhost", "/oidc/userinfo"))
        .send()
        .await
        .unwrap();
    assert_eq!(userinfo.headers()["cache-control"], "no-store");
    assert_eq!(userinfo.headers()["x-content-type-options"], "nosniff");

    // A cookie planted beside the real one does not shadow it, first or last.
    let real = b.cookie(&wiki_url(&gw, "/"), "poolgate").unwrap();
    for cookies in [
        format!("poolgate=junk; poolgate={real}"),
        format!("poolgate={real}; poolgate=junk"),
    ] {
        let resp = gw
            .client()
            .get(wiki_url(&gw, "/"))
            .header("cookie", cookies)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }

    // DNS rebinding: a browser calling the admin address under another name.
    let rebound = gw
        .client()
        .get(format!("http://{}/api/pools", gw.admin))
        .header("host", "evil.example")
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(rebound.status(), 421);
    let padded = gw
        .client()
        .get(format!("http://{}/api/pools", gw.admin))
        .header("authorization", format!("Bearer  {ADMIN_TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(padded.status(), 401, "the token is compared exactly");

    // A look-alike of alice (Cyrillic а) cannot be created beside her.
    let twin = gw
        .api(Method::POST, "/pools/employees/users")
        .json(&json!({"username": "\u{430}lice", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert!(twin.status().is_client_error(), "{}", twin.status());
    let wide = gw
        .api(Method::POST, "/pools/employees/users")
        .json(&json!({"username": "\u{ff41}lice", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(wide.status(), 409, "full-width ａlice is alice");
}
