//! The test harness: whoami upstreams in-process, gateways as child processes.
//!
//! ```ignore
//! let up = Whoami::start().await;
//! let gw = Gateway::start(&two_pools(&up, &up)).await;
//! let echo = gw.get("wiki.employees.localhost", "/").await;
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const BIN: &str = env!("CARGO_BIN_EXE_poolgate");

/// The admin token every test gateway is given.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// Runs the CLI on `config` with `stdin` (closed after it), to the end.
pub fn run_cli(config: &Path, args: &[&str], stdin: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new(BIN)
        .args(args)
        .arg("--config")
        .arg(config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A whoami upstream in this process, counting the requests that reach it.
pub struct Whoami {
    pub addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Whoami {
    pub async fn start() -> Whoami {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        let app = poolgate::whoami::router(addr).layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                let counter = counter.clone();
                async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    next.run(req).await
                }
            },
        ));
        let task = tokio::spawn(async move {
            axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
                .await
                .unwrap();
        });
        Whoami { addr, hits, task }
    }

    /// Requests that reached this upstream so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for Whoami {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Two pools, one app each: employees/wiki → `wiki`, suppliers/orders → `orders`. Every path
/// is public (no sign-in), for tests of routing and proxying; sign-in tests use their own.
pub fn two_pools(wiki: &Whoami, orders: &Whoami) -> String {
    format!(
        r#"
[pools.employees]
name = "Employees"
portal = "login.employees.localhost"

[pools.employees.apps.wiki]
hosts = ["wiki.employees.localhost"]
upstreams = ["{}"]
public_paths = ["/"]
timeout = "2s"

[pools.suppliers]
name = "Suppliers"
portal = "login.suppliers.localhost"

[pools.suppliers.apps.orders]
hosts = ["orders.suppliers.localhost"]
upstreams = ["{}"]
public_paths = ["/"]
"#,
        wiki.addr, orders.addr
    )
}

/// Options for a gateway beyond its pools.
#[derive(Default)]
pub struct Options {
    pub https: bool,
    /// Extra top-level TOML placed before the pools (e.g. a `[proxy]` table).
    pub preamble: String,
    /// The store URL; an in-memory SQLite database by default.
    pub store: Option<String>,
    /// The plain-HTTP listener; a free port on 127.0.0.1 by default. Two nodes of one
    /// deployment share a port (so an issuer) on two loopback addresses.
    pub http: Option<SocketAddr>,
    /// Certificate directories (under `certs/`) removed after `certs dev`: hosts that
    /// start without a certificate.
    pub without_certs: Vec<&'static str>,
    /// `[listen] public`: where people reach the gateway, when a front proxy stands before it.
    pub public: Option<String>,
    /// More keys of the `[admin]` table (e.g. `console_pool`).
    pub admin: String,
}

/// What a test adds to the config file around the listeners: `[listen] public`, top-level
/// TOML, more keys of `[admin]`.
pub struct Extras<'a> {
    public: Option<&'a str>,
    preamble: &'a str,
    admin: &'a str,
}

/// A `poolgate serve` child process with its own config file, ports and log.
pub struct Gateway {
    pub http: SocketAddr,
    pub https: Option<SocketAddr>,
    pub admin: SocketAddr,
    store: String,
    public: Option<String>,
    admin_extra: String,
    pub dir: tempfile::TempDir,
    child: Child,
    client: reqwest::Client,
}

impl Gateway {
    pub async fn start(pools: &str) -> Gateway {
        Gateway::start_with(pools, Options::default()).await
    }

    pub async fn start_with(pools: &str, opts: Options) -> Gateway {
        // A port picked free may be taken by a concurrent test before the gateway binds it:
        // the gateway then refuses to start, and is started again on new ports.
        for _ in 0..3 {
            if let Some(gw) = Gateway::try_start(pools, &opts).await {
                return gw;
            }
        }
        panic!("the gateway did not start in three tries");
    }

    async fn try_start(pools: &str, opts: &Options) -> Option<Gateway> {
        let dir = tempfile::tempdir().unwrap();
        let http: SocketAddr = opts
            .http
            .unwrap_or_else(|| format!("127.0.0.1:{}", free_port()).parse().unwrap());
        let https: Option<SocketAddr> = opts
            .https
            .then(|| format!("127.0.0.1:{}", free_port()).parse().unwrap());
        let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let store = opts.store.clone().unwrap_or_else(|| "sqlite::memory:".into());
        let config = Gateway::config_text(
            http,
            https,
            admin,
            &store,
            Extras {
                public: opts.public.as_deref(),
                preamble: &opts.preamble,
                admin: &opts.admin,
            },
            pools,
        );
        let path = dir.path().join("poolgate.toml");
        std::fs::write(dir.path().join("admin.token"), ADMIN_TOKEN).unwrap();
        std::fs::write(&path, &config).unwrap();
        if https.is_some() {
            let out = Command::new(BIN)
                .args(["certs", "dev", "--config"])
                .arg(&path)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "certs dev: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            for gone in &opts.without_certs {
                std::fs::remove_dir_all(dir.path().join("certs").join(gone)).unwrap();
            }
        }
        let log = std::fs::File::create(dir.path().join("gateway.log")).unwrap();
        let child = Command::new(BIN)
            .args(["serve", "--config"])
            .arg(&path)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let client = client_for(dir.path(), https.is_some());
        let mut gw = Gateway {
            http,
            https,
            admin,
            store,
            public: opts.public.clone(),
            admin_extra: opts.admin.clone(),
            dir,
            child,
            client,
        };
        gw.wait_ready().await.then_some(gw)
    }

    pub fn config_text(
        http: SocketAddr,
        https: Option<SocketAddr>,
        admin: SocketAddr,
        store: &str,
        extras: Extras,
        pools: &str,
    ) -> String {
        let Extras {
            public,
            preamble,
            admin: admin_extra,
        } = extras;
        let mut https_line = https.map(|a| format!("https = \"{a}\"\n")).unwrap_or_default();
        if let Some(public) = public {
            https_line.push_str(&format!("public = \"{public}\"\n"));
        }
        format!(
            "version = 1\n{preamble}\n[listen]\nhttp = \"{http}\"\n{https_line}\n[admin]\nlisten = \"{admin}\"\ntoken_file = \"admin.token\"\n{admin_extra}\n\n[store]\nurl = \"{store}\"\n{pools}"
        )
    }

    /// Whether the gateway came up; false when a port it was given was taken meanwhile.
    async fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let log = self.log();
                assert!(
                    log.contains("in use"),
                    "gateway exited with {status} before it was ready:\n{log}"
                );
                return false;
            }
            let ready = reqwest::get(format!("http://{}/readyz", self.admin)).await;
            // Ready, and this gateway's own listener (not another test's on a reused port).
            // (its log says it started, which it does once its admin listener is bound).
            if ready.is_ok_and(|r| r.status() == 200)
                && self.log().contains("PG0001")
                && self.child.try_wait().unwrap().is_none()
            {
                return true;
            }
            assert!(Instant::now() < deadline, "gateway not ready in 30 s:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every host of this gateway's config file.
    pub fn hosts(&self) -> Vec<String> {
        let text = std::fs::read_to_string(self.config_path()).unwrap();
        poolgate::config::Config::parse(&text, self.dir.path())
            .unwrap()
            .hosts()
            .map(|h| h.to_string())
            .collect()
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("poolgate.toml")
    }

    /// Rewrites the config file with new pools (same listeners).
    pub fn rewrite_pools(&self, pools: &str, preamble: &str) {
        let text = Gateway::config_text(
            self.http,
            self.https,
            self.admin,
            &self.store,
            Extras {
                public: self.public.as_deref(),
                preamble,
                admin: &self.admin_extra,
            },
            pools,
        );
        std::fs::write(self.config_path(), text).unwrap();
    }

    pub fn sighup(&self) {
        let ok = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// The gateway process's id (to read its memory from `/proc`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Everything the gateway has logged (JSON lines).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("gateway.log")).unwrap_or_default()
    }

    /// A client that resolves every configured host to this gateway (and trusts its dev CA).
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    pub fn url(&self, host: &str, path: &str) -> String {
        format!("http://{host}:{}{path}", self.http.port())
    }

    pub fn https_url(&self, host: &str, path: &str) -> String {
        format!("https://{host}:{}{path}", self.https.expect("https listener").port())
    }

    /// GET through the gateway; returns the status and the body as JSON when it is JSON.
    pub async fn get(&self, host: &str, path: &str) -> (u16, Value) {
        let resp = self.client.get(self.url(host, path)).send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// A request to the admin API, with the admin token.
    pub fn api(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("http://{}/api{path}", self.admin))
            .bearer_auth(ADMIN_TOKEN)
    }

    pub async fn metrics(&self) -> String {
        reqwest::get(format!("http://{}/metrics", self.admin))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client_for(dir: &Path, https: bool) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .dns_resolver(Arc::new(Loopback))
        .no_proxy();
    if https {
        let pem = std::fs::read(dir.join("certs/dev-ca.pem")).unwrap();
        builder = builder
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
            .tls_built_in_root_certs(false);
    }
    builder.build().unwrap()
}

/// Resolves every `*.localhost` name to 127.0.0.1, as browsers do (RFC 6761).
struct Loopback;

impl reqwest::dns::Resolve for Loopback {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let local = name.as_str() == "localhost" || name.as_str().ends_with(".localhost");
        Box::pin(async move {
            if local {
                let addrs: reqwest::dns::Addrs = Box::new(std::iter::once(SocketAddr::from(([127, 0, 0, 1], 0))));
                Ok(addrs)
            } else {
                Err(format!("{} is not a loopback name", name.as_str()).into())
            }
        })
    }
}

/// Waits up to 5 s for `cond`.
pub async fn wait_until(mut cond: impl FnMut() -> bool) {
    for _ in 0..200 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("condition not met in 5 s");
}

/// The header values whoami saw under `name` (lower-case).
pub fn seen(echo: &Value, name: &str) -> Vec<String> {
    echo["headers"][name]
        .as_array()
        .map(|vs| vs.iter().map(|v| v.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

/// Sends raw bytes to `addr` and returns the status code of the reply and the whole reply.
pub async fn raw_request(addr: SocketAddr, bytes: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}

/// The PostgreSQL server of `POOLGATE_TEST_POSTGRES`, if set (under CI it must be).
pub fn postgres_url() -> Option<String> {
    match std::env::var("POOLGATE_TEST_POSTGRES") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            const WHAT: &str = "the PostgreSQL runs of the store and multi-node tests (set \
                POOLGATE_TEST_POSTGRES=postgres://user@host/db to run them) and the headless-chromium \
                page tests (tests/browser); .ci/run runs both";
            static ONCE: std::sync::Once = std::sync::Once::new();
            // Under CI the first call fails the test (and the later ones, on the poisoned `Once`).
            ONCE.call_once(|| skip(WHAT));
            None
        }
    }
}

fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// A suite that cannot run here. Under CI that fails the run (CI runs everything);
/// elsewhere it is skipped with one line straight to stderr, past the test harness's
/// capture, so that a green `cargo test` does not hide it.
pub fn skip(what: &str) {
    assert!(!under_ci(), "CI=true, but it would skip {what}");
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "\nnote: skipped {what}.\n");
}

/// A new, empty database on that server, as a URL; `None` without a server.
pub async fn fresh_postgres_database() -> Option<String> {
    let admin_url = postgres_url()?;
    let db = format!("pgtest_{}", uuid::Uuid::new_v4().simple());
    let admin = sqlx::PgPool::connect(&admin_url)
        .await
        .expect("POOLGATE_TEST_POSTGRES is reachable");
    sqlx::query(&format!("CREATE DATABASE {db}"))
        .execute(&admin)
        .await
        .unwrap();
    let base = admin_url.rsplit_once('/').map_or(admin_url.as_str(), |(b, _)| b);
    Some(format!("{base}/{db}"))
}

/// The settings several nodes of one deployment share: a store (PostgreSQL when the suite
/// has a server, else a SQLite file in `dir`) and a master key file.
pub async fn shared_deployment(dir: &Path) -> impl Fn() -> Options {
    let store = match fresh_postgres_database().await {
        Some(url) => url,
        None => format!("sqlite:{}", dir.join("shared.db").display()),
    };
    let key = dir.join("master.key");
    move || Options {
        store: Some(store.clone()),
        preamble: format!("[master_key]\nfile = \"{}\"", key.display()),
        ..Options::default()
    }
}
