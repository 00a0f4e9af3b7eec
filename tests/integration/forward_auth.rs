//! Forward-auth: poolgate deciding for a front proxy. Real nginx (`auth_request`) and real
//! Caddy (`forward_auth`) run the snippets of `config/forward-auth/` in front of a whoami
//! upstream; Traefik's and Envoy's checks are sent as those proxies send them.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::header::{ACCEPT, COOKIE, LOCATION};
use serde_json::Value;

use crate::browser::Browser;
use crate::signin::{PASSWORD, add_user, pools, sign_in};
use crate::support::*;

const WIKI: &str = "wiki.employees.localhost";
const CRM: &str = "crm.employees.localhost";
const PORTAL: &str = "login.employees.localhost";
const IDENTITY: [&str; 8] = [
    "x-poolgate-user",
    "x-poolgate-username",
    "x-poolgate-email",
    "x-poolgate-name",
    "x-poolgate-groups",
    "x-poolgate-pool",
    "x-poolgate-source",
    "x-poolgate-assertion",
];

/// A gateway trusting proxies on 127.0.0.0/8, reached (when `public` is given) at a front
/// proxy's scheme and port. crm admits the `sales` group only.
async fn gateway(up: &Whoami, public: Option<u16>, preamble: &str) -> Gateway {
    let opts = Options {
        preamble: format!("[proxy]\ntrusted_proxies = [\"127.0.0.0/8\"]\n{preamble}"),
        public: public.map(|port| format!("http:{port}")),
        ..Options::default()
    };
    Gateway::start_with(&pools(up, "", "allowed_groups = [\"sales\"]"), opts).await
}

/// The app session cookie of a browser that signed in to `host` through the gateway.
async fn session_cookie(gw: &Gateway, host: &str) -> String {
    let b = Browser::new(gw);
    sign_in(&b, &gw.url(host, "/"), "alice", PASSWORD).await;
    format!(
        "poolgate={}",
        b.cookie(&gw.url(host, "/"), "poolgate").expect("signed in")
    )
}

/// A check as `dialect` sends it, straight to the gateway.
fn check(gw: &Gateway, from: [u8; 4], dialect: &str, path: &str) -> reqwest::RequestBuilder {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .local_address(std::net::IpAddr::from(from))
        .no_proxy()
        .build()
        .unwrap();
    client.get(format!("http://{}/.poolgate/auth/{dialect}{path}", gw.http))
}

fn header(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers().get(name).map(|v| v.to_str().unwrap().to_owned())
}

#[tokio::test]
async fn traefik_and_envoy_checks_get_the_gates_verdict_in_their_dialect() {
    let up = Whoami::start().await;
    let gw = gateway(&up, None, "oauth2_proxy_headers = true").await;
    add_user(&gw, "employees", "alice", PASSWORD, &["staff"]).await;
    let wiki = session_cookie(&gw, WIKI).await;
    let crm = session_cookie(&gw, CRM).await;
    let hits = up.hits();
    let traefik = |method: &str, host: &str, uri: &str| {
        check(&gw, [127, 0, 0, 1], "traefik", "")
            .header("x-forwarded-method", method)
            .header("x-forwarded-proto", "http")
            .header("x-forwarded-host", format!("{host}:{}", gw.http.port()))
            .header("x-forwarded-uri", uri)
    };

    // A browser without a session: sent to sign in on the app's host, and back to the page.
    let resp = traefik("GET", WIKI, "/docs?page=2")
        .header(ACCEPT, "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    assert_eq!(
        header(&resp, "location").unwrap(),
        format!(
            "http://{WIKI}:{}/.poolgate/login?return_to=%2Fdocs%3Fpage%3D2",
            gw.http.port()
        )
    );
    assert_eq!(header(&resp, "cache-control").as_deref(), Some("no-store"));
    // A form post is sent there with 303; an API client gets 401, never a redirect.
    let resp = traefik("POST", WIKI, "/save")
        .header(ACCEPT, "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    let resp = traefik("GET", WIKI, "/api")
        .header(ACCEPT, "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert!(header(&resp, "www-authenticate").unwrap().starts_with("Bearer"));
    assert!(header(&resp, "location").is_none());

    // Signed in: 200 with every identity header, and oauth2-proxy's names when asked for.
    let resp = traefik("GET", WIKI, "/docs")
        .header(COOKIE, &wiki)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-poolgate-username").as_deref(), Some("alice"));
    assert_eq!(header(&resp, "x-poolgate-email").as_deref(), Some("alice@example.com"));
    assert_eq!(header(&resp, "x-poolgate-pool").as_deref(), Some("employees"));
    assert_eq!(header(&resp, "x-auth-request-user").as_deref(), Some("alice"));
    assert_eq!(header(&resp, "x-auth-request-groups").as_deref(), Some("staff"));
    assert!(header(&resp, "x-poolgate-assertion").is_some_and(|a| a.split('.').count() == 3));
    assert_eq!(header(&resp, "cache-control").as_deref(), Some("no-store"));
    // A public path: through, every identity header present and empty.
    let resp = traefik("GET", WIKI, "/health").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    for name in IDENTITY.iter().chain(&["x-auth-request-user", "x-auth-request-email"]) {
        assert_eq!(header(&resp, name).as_deref(), Some(""), "{name}");
    }
    // Signed in, but crm's policy admits `sales` only: 403, not 401 (which would loop).
    let resp = traefik("GET", CRM, "/")
        .header(ACCEPT, "text/html")
        .header(COOKIE, &crm)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    // The wiki's cookie says nothing about crm.
    let resp = traefik("GET", CRM, "/").header(COOKIE, &wiki).send().await.unwrap();
    assert_eq!(resp.status(), 401);

    // Envoy: the original method and path after the prefix, the host as sent.
    let envoy =
        |path: &str| check(&gw, [127, 0, 0, 1], "envoy", path).header("host", format!("{WIKI}:{}", gw.http.port()));
    let resp = envoy("/docs").header(COOKIE, &wiki).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "x-poolgate-username").as_deref(), Some("alice"));
    let removed = header(&resp, "x-envoy-auth-headers-to-remove").unwrap();
    for name in IDENTITY {
        assert!(removed.split(',').any(|n| n == name), "{name} not in {removed}");
    }
    let resp = envoy("/docs").header(ACCEPT, "text/html").send().await.unwrap();
    assert_eq!(resp.status(), 302);
    assert!(
        header(&resp, "location")
            .unwrap()
            .ends_with("/.poolgate/login?return_to=%2Fdocs")
    );
    let resp = envoy("/api").send().await.unwrap();
    assert_eq!(resp.status(), 401);

    // A path the check and the app could read differently never passes as public, and a
    // check for poolgate's own paths (which the front proxy routes to poolgate, not the
    // app) is refused: `/.poolgate/../secret` cleaned for routing, raw for the check.
    let nginx_check = |url: String| {
        check(&gw, [127, 0, 0, 1], "nginx", "")
            .header("x-original-url", url)
            .header("x-original-method", "GET")
    };
    let port = gw.http.port();
    let resp = nginx_check(format!("http://{WIKI}:{port}/secret/%2e%2e/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        401,
        "an encoded dot segment passed as the public /health"
    );
    let resp = traefik("GET", WIKI, "/.poolgate/../secret").send().await.unwrap();
    assert_eq!(resp.status(), 403);
    // Only the exact endpoint is a check: this one is a path of no host.
    let resp = check(&gw, [127, 0, 0, 1], "nginx", "/../../x")
        .header("x-original-url", format!("http://{WIKI}/health"))
        .send()
        .await
        .unwrap();
    assert_ne!(resp.status(), 200);

    // Refused with 400: a peer that is not a trusted proxy (127.0.0.0/8 is, so the gateway
    // is given a narrower list), a host of no app, a portal host, a doubled header.
    let resp = traefik("GET", "unknown.localhost", "/").send().await.unwrap();
    assert_eq!(resp.status(), 400);
    let resp = traefik("GET", "login.employees.localhost", "/").send().await.unwrap();
    assert_eq!(resp.status(), 400);
    let resp = traefik("GET", WIKI, "/")
        .header("x-forwarded-host", "evil.localhost")
        .header(COOKIE, &wiki)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    // Nothing was forwarded anywhere: a check never reaches the app.
    assert_eq!(up.hits(), hits, "a check reached the upstream");
}

#[tokio::test]
async fn a_check_from_a_peer_that_is_not_a_trusted_proxy_is_refused() {
    let up = Whoami::start().await;
    let opts = Options {
        preamble: "[proxy]\ntrusted_proxies = [\"127.0.0.1\"]\n".into(),
        ..Options::default()
    };
    let gw = Gateway::start_with(&pools(&up, "", ""), opts).await;
    let nginx = |from: [u8; 4]| {
        check(&gw, from, "nginx", "")
            .header("x-original-url", format!("http://{WIKI}/health"))
            .header("x-original-method", "GET")
    };
    // The same check, from a trusted proxy and from another address.
    assert_eq!(nginx([127, 0, 0, 1]).send().await.unwrap().status(), 200);
    let resp = nginx([127, 0, 0, 9]).send().await.unwrap();
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("trusted_proxies"));
}

// === real front proxies ===

/// A front proxy process, stopped on drop.
struct Front {
    child: Child,
    dir: tempfile::TempDir,
}

impl Drop for Front {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Front {
    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }
}

/// The snippet `config/forward-auth/<name>` with its example addresses made this test's.
fn snippet(name: &str, gw: &Gateway, front: SocketAddr, up: &Whoami) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("config/forward-auth")
        .join(name);
    // Both apps of the employees, and their portal, behind the one front proxy.
    let text = std::fs::read_to_string(path)
        .unwrap()
        .replace("server_name wiki.example.com;", &format!("server_name {WIKI} {CRM};"))
        .replace("server_name login.example.com;", &format!("server_name {PORTAL};"))
        .replace(
            "http://wiki.example.com",
            &format!("http://{WIKI}:{p}, http://{CRM}:{p}", p = front.port()),
        )
        .replace("http://login.example.com", &format!("http://{PORTAL}:{}", front.port()))
        .replace("127.0.0.1:8080", &gw.http.to_string())
        .replace("127.0.0.1:3000", &up.addr.to_string());
    assert!(
        !text.contains("example.com"),
        "{name} names a host the test does not replace"
    );
    text
}

fn installed(program: &str) -> bool {
    Command::new(program)
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
        || Command::new(program)
            .arg("version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
}

async fn wait_listening(addr: SocketAddr, front: &mut Front, log: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        if let Some(status) = front.child.try_wait().unwrap() {
            panic!("the front proxy exited with {status}:\n{}", front.log(log));
        }
        assert!(
            Instant::now() < deadline,
            "the front proxy did not listen:\n{}",
            front.log(log)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn start_nginx(gw: &Gateway, front: SocketAddr, up: &Whoami) -> Front {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let server = snippet("nginx.conf", gw, front, up).replace("listen 80", &format!("listen {front}"));
    let conf = format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\nerror_log {d}/error.log info;\npid {d}/nginx.pid;\n\
         events {{ worker_connections 256; }}\nhttp {{\naccess_log off;\nclient_body_temp_path {d}/body;\n\
         proxy_temp_path {d}/proxy;\nfastcgi_temp_path {d}/fastcgi;\nuwsgi_temp_path {d}/uwsgi;\nscgi_temp_path {d}/scgi;\n{server}\n}}\n"
    );
    std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
    let child = Command::new("nginx")
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(dir.path().join("nginx.conf"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("stderr.log")).unwrap())
        .spawn()
        .unwrap();
    let mut f = Front { child, dir };
    wait_listening(front, &mut f, "error.log").await;
    f
}

async fn start_caddy(gw: &Gateway, front: SocketAddr, up: &Whoami) -> Front {
    let dir = tempfile::tempdir().unwrap();
    // Each site listens on the front proxy's own loopback address.
    let site: String = snippet("Caddyfile", gw, front, up)
        .lines()
        .map(|line| match line.starts_with("http://") {
            true => format!("{line}\n\tbind {}\n", front.ip()),
            false => format!("{line}\n"),
        })
        .collect();
    let conf = format!("{{\n\tadmin off\n\tauto_https off\n}}\n{site}");
    std::fs::write(dir.path().join("Caddyfile"), conf).unwrap();
    let child = Command::new("caddy")
        .args(["run", "--adapter", "caddyfile", "--config"])
        .arg(dir.path().join("Caddyfile"))
        .env("HOME", dir.path())
        .env("XDG_DATA_HOME", dir.path())
        .env("XDG_CONFIG_HOME", dir.path())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("caddy.log")).unwrap())
        .spawn()
        .unwrap();
    let mut f = Front { child, dir };
    wait_listening(front, &mut f, "caddy.log").await;
    f
}

/// The whole story through a real front proxy at `front`: anonymous browser → sign-in and
/// back to the page; API client → 401; signed in → identity at the upstream; a spoofed
/// identity header never arrives; forbidden → 403; signed out → 401 again.
async fn through_front_proxy(gw: &Gateway, front: SocketAddr, up: &Whoami) {
    let url = |host: &str, path: &str| format!("http://{host}:{}{path}", front.port());
    let b = Browser::via(gw, &[(WIKI, front), (CRM, front), (PORTAL, front)]);

    // poolgate's check is not for a client to call through the front proxy (which poolgate
    // trusts): it would answer for whatever original request the client describes.
    let direct = b
        .client
        .get(url(WIKI, "/.poolgate/auth/nginx"))
        .header("x-original-url", format!("http://{WIKI}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(direct.status(), 404);

    // An API client: 401, and the app never saw it.
    let before = up.hits();
    let api = b.fetch(&url(WIKI, "/reports")).await;
    assert_eq!(api.status, 401, "{}", api.body);
    assert_eq!(up.hits(), before);

    // An anonymous browser: signs in at the portal and lands back on the page it asked for.
    let page = sign_in(&b, &url(WIKI, "/reports?year=2026"), "alice", PASSWORD).await;
    assert_eq!(page.status, 200, "{:?}\n{}", page.hops, page.body);
    assert_eq!(page.url, url(WIKI, "/reports?year=2026"));
    // The portal was reached through the front proxy too: poolgate's addresses are public.
    assert!(
        page.hops.iter().any(|h| h.starts_with(&url(PORTAL, "/"))),
        "{:?}",
        page.hops
    );
    assert!(page.body.contains("GET /reports?year=2026"), "{}", page.body);
    let echo = b.fetch(&url(WIKI, "/me")).await.json();
    assert_eq!(seen(&echo, "x-poolgate-username"), ["alice"]);
    assert_eq!(seen(&echo, "x-poolgate-pool"), ["employees"]);

    // A signed-in client's own identity headers are replaced, never passed on.
    let spoofed = b
        .client
        .get(url(WIKI, "/me"))
        .header(ACCEPT, "application/json")
        .header("X-Poolgate-Username", "root")
        .header("X-Poolgate-Groups", "admins")
        .header("Remote-User", "root")
        .send()
        .await
        .unwrap();
    assert_eq!(spoofed.status(), 200);
    let echo: Value = spoofed.json().await.unwrap();
    assert_eq!(seen(&echo, "x-poolgate-username"), ["alice"]);
    assert_eq!(seen(&echo, "x-poolgate-groups"), ["staff"]);
    assert!(seen(&echo, "remote-user").iter().all(|v| v.is_empty()), "{echo}");
    // And an anonymous one's never reach the app as anything.
    let anon = reqwest::Client::builder()
        .resolve(WIKI, front)
        .no_proxy()
        .build()
        .unwrap()
        .get(url(WIKI, "/health"))
        .header("X-Poolgate-Username", "root")
        .send()
        .await
        .unwrap();
    assert_eq!(anon.status(), 200);
    let echo: Value = anon.json().await.unwrap();
    assert!(
        seen(&echo, "x-poolgate-username").iter().all(|v| v.is_empty()),
        "{echo}"
    );

    // crm admits `sales` only: alice (SSO) is refused with 403, not sent to sign in again.
    let crm = b.open(&url(CRM, "/")).await;
    assert_eq!(crm.status, 403, "{:?}\n{}", crm.hops, crm.body);

    // Signed out (through the front proxy): the next request is 401 at once.
    let out = b.sign_out(&url(WIKI, "/.poolgate/logout")).await;
    assert!(out.status < 400, "{}", out.body);
    let after = b.fetch(&url(WIKI, "/reports")).await;
    assert_eq!(after.status, 401);
    let login = b
        .client
        .get(url(WIKI, "/reports"))
        .header(ACCEPT, "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 302);
    assert!(
        login.headers()[LOCATION]
            .to_str()
            .unwrap()
            .contains("/.poolgate/login?return_to=%2Freports")
    );
}

#[tokio::test]
async fn nginx_auth_request_in_front_of_an_app() {
    if !installed("nginx") {
        return skip("the nginx forward-auth test (install nginx)");
    }
    let up = Whoami::start().await;
    // nginx on a port of its own: poolgate is told people reach it there.
    let front: SocketAddr = format!("127.0.0.2:{}", free_port()).parse().unwrap();
    let gw = gateway(&up, Some(front.port()), "").await;
    add_user(&gw, "employees", "alice", PASSWORD, &["staff"]).await;
    let nginx = start_nginx(&gw, front, &up).await;
    through_front_proxy(&gw, front, &up).await;
    // nginx turned no answer of poolgate's into a 500.
    assert!(
        !nginx.log("error.log").contains("auth request unexpected status"),
        "{}",
        nginx.log("error.log")
    );
}

#[tokio::test]
async fn caddy_forward_auth_in_front_of_an_app() {
    if !installed("caddy") {
        return skip("the Caddy forward-auth test (install caddy)");
    }
    let up = Whoami::start().await;
    let front: SocketAddr = format!("127.0.0.3:{}", free_port()).parse().unwrap();
    let gw = gateway(&up, Some(front.port()), "").await;
    add_user(&gw, "employees", "alice", PASSWORD, &["staff"]).await;
    let _caddy = start_caddy(&gw, front, &up).await;
    through_front_proxy(&gw, front, &up).await;
}

/// Behind a front proxy that ends TLS (`[listen] public = "https"`), poolgate speaks plain
/// HTTP to it but makes every address https and every cookie `Secure` (`__Host-`): the
/// browser is on https.
#[tokio::test]
async fn behind_a_front_proxy_that_ends_tls_addresses_are_https_and_cookies_secure() {
    let up = Whoami::start().await;
    let opts = Options {
        preamble: "[proxy]\ntrusted_proxies = [\"127.0.0.0/8\"]\n".into(),
        public: Some("https".into()),
        ..Options::default()
    };
    let gw = Gateway::start_with(&pools(&up, "", ""), opts).await;
    let resp = gw
        .client()
        .get(gw.url(WIKI, "/.poolgate/login?return_to=%2Fdocs"))
        // As the front proxy forwards it: the host people asked for, on port 443.
        .header("host", WIKI)
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_redirection(), "{}", resp.status());
    let location = header(&resp, "location").unwrap();
    assert!(
        location.starts_with("https://login.employees.localhost/oidc/authorize?"),
        "{location}"
    );
    assert!(
        location.contains("redirect_uri=https%3A%2F%2Fwiki.employees.localhost%2F.poolgate%2Fcallback"),
        "{location}"
    );
    let cookie = header(&resp, "set-cookie").unwrap();
    assert!(
        cookie.starts_with("__Host-poolgate-login=") && cookie.contains("Secure"),
        "{cookie}"
    );
    // The OP's own addresses are https too.
    let discovery: Value = gw
        .client()
        .get(gw.url(PORTAL, "/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(discovery["issuer"], "https://login.employees.localhost");
}
