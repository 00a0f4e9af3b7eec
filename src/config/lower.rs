//! Lowering: the file format → the validated model, collecting every error with its line.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use http::HeaderName;
use ipnet::IpNet;
use toml::Spanned;

use super::file::{self, File};
use super::*;

const DEFAULT_ADMIN: &str = "127.0.0.1:9090";
const DEFAULT_STORE: &str = "sqlite:data/poolgate.db";
const DEFAULT_MASTER_KEY: &str = "data/master.key";
const DEFAULT_ADMIN_TOKEN: &str = "data/admin.token";
const DEFAULT_PID_FILE: &str = "data/poolgate.pid";
const DEFAULT_UPGRADE_SOCKET: &str = "data/upgrade.sock";
const DEFAULT_TIMEOUT: &str = "60s";
const DEFAULT_CONNECT_TIMEOUT: &str = "5s";
const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(5);
const DEFAULT_SESSION_IDLE: Duration = Duration::from_secs(30 * 60);
const DEFAULT_SESSION_MAX: Duration = Duration::from_secs(10 * 3600);
const DEFAULT_LOCKOUT_ATTEMPTS: u32 = 5;
const DEFAULT_LOCKOUT: Duration = Duration::from_secs(15 * 60);
const DEFAULT_ADDRESS_ATTEMPTS: u32 = 20;
const DEFAULT_ADDRESS_WINDOW: Duration = Duration::from_secs(5 * 60);

pub(super) fn lower(text: &str, base: &Path) -> Result<Config, Vec<ConfigError>> {
    let mut lw = Lowering {
        text,
        base,
        errors: Vec::new(),
    };
    let file: File = match toml::from_str(text) {
        Ok(f) => f,
        Err(e) => {
            let line = e.span().map(|s| lw.line(s.start));
            let message = e.message().trim().to_owned();
            return Err(vec![ConfigError { line, message }]);
        }
    };
    let config = lw.config(file, base);
    if lw.errors.is_empty() {
        Ok(config)
    } else {
        lw.errors.sort_by_key(|e| e.line);
        Err(lw.errors)
    }
}

struct Lowering<'a> {
    text: &'a str,
    /// The config file's folder: relative paths in it are relative to this.
    base: &'a Path,
    errors: Vec<ConfigError>,
}

/// Who claimed a host first, to name it in a duplicate error.
struct HostOwner {
    what: String,
    is_portal: bool,
    span: Range<usize>,
}

impl Lowering<'_> {
    fn line(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end].iter().filter(|b| **b == b'\n').count() + 1
    }

    fn err(&mut self, span: Range<usize>, message: impl Into<String>) {
        let line = Some(self.line(span.start));
        self.errors.push(ConfigError {
            line,
            message: message.into(),
        });
    }

    fn config(&mut self, f: File, base: &Path) -> Config {
        if *f.version.get_ref() != 1 {
            self.err(
                f.version.span(),
                format!(
                    "unsupported version {}: this poolgate reads version 1",
                    f.version.get_ref()
                ),
            );
        }

        let listen_span = f.listen.span();
        let listen = f.listen.into_inner();
        let listen = Listen {
            http: listen.http.as_ref().and_then(|a| self.socket_addr(a, "listen.http")),
            https: listen.https.as_ref().and_then(|a| self.socket_addr(a, "listen.https")),
            public: listen.public.as_ref().and_then(|p| {
                let parsed = PublicOrigin::parse(p.get_ref());
                if parsed.is_none() {
                    self.err(
                        p.span(),
                        format!(
                            "listen.public: `{}` is not a scheme and port: write https, https:8443 or http:8080",
                            p.get_ref()
                        ),
                    );
                }
                parsed
            }),
        };
        if listen.http.is_none() && listen.https.is_none() && self.errors.is_empty() {
            self.err(listen_span.clone(), "[listen] needs `http`, `https` or both");
        }

        let admin_listen = match f.admin.as_ref().and_then(|a| a.get_ref().listen.as_ref()) {
            Some(a) => self.socket_addr(a, "admin.listen"),
            None => DEFAULT_ADMIN.parse().ok(),
        };

        let admin_token = match f
            .admin
            .as_ref()
            .map(|a| (a.span(), &a.get_ref().token_file, &a.get_ref().token_env))
        {
            Some((_, Some(file), None)) => SecretSource::File(base.join(file.get_ref())),
            Some((_, None, Some(env))) => SecretSource::Env(env.get_ref().clone()),
            Some((span, Some(_), Some(_))) => {
                self.err(span, "[admin] takes `token_file` or `token_env`, not both");
                SecretSource::File(base.join(DEFAULT_ADMIN_TOKEN))
            }
            _ => SecretSource::File(base.join(DEFAULT_ADMIN_TOKEN)),
        };

        let admin_hosts = f
            .admin
            .as_ref()
            .map(|a| {
                a.get_ref()
                    .hosts
                    .iter()
                    .filter_map(|h| match Host::parse(h.get_ref()) {
                        Ok(host) => Some(host),
                        Err(e) => {
                            self.err(h.span(), format!("admin.hosts: {e}"));
                            None
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();

        let store = match &f.store {
            Some(s) => self.store_url(&s.get_ref().url, base),
            None => StoreUrl(format!(
                "sqlite:{}",
                base.join(&DEFAULT_STORE["sqlite:".len()..]).display()
            )),
        };

        let master_key = self.master_key(f.master_key.as_ref(), base);

        let certs_dir = match &f.tls {
            Some(t) => base.join(t.get_ref().certs.get_ref()),
            None => base.join("certs"),
        };

        let proxy = self.proxy(f.proxy.as_ref());
        let server = f.server.as_ref().map(|s| s.get_ref());
        let path = |v: Option<&Spanned<String>>, default: &str| base.join(v.map_or(default, |p| p.get_ref().as_str()));
        let server = ServerSettings {
            pid_file: path(server.and_then(|s| s.pid_file.as_ref()), DEFAULT_PID_FILE),
            upgrade_socket: path(server.and_then(|s| s.upgrade_socket.as_ref()), DEFAULT_UPGRADE_SOCKET),
            drain_timeout: self.duration(
                server.and_then(|s| s.drain_timeout.as_ref()),
                "server",
                "drain_timeout",
                Duration::from_secs(30),
            ),
        };
        let log = f.log.as_ref().map_or_else(Log::default, |l| {
            let l = l.get_ref();
            Log {
                format: l.format,
                access: l.access.as_ref().map(|a| match a.get_ref().as_str() {
                    "stdout" => AccessLog::Stdout,
                    "off" => AccessLog::Off,
                    path => AccessLog::File(base.join(path)),
                }),
            }
        });

        let mut hosts: HashMap<Host, HostOwner> = HashMap::new();
        let mut pools = Vec::new();
        for (id, pool) in &f.pools {
            if let Some(p) = self.pool(id, pool, &mut hosts) {
                pools.push(p);
            }
        }
        self.check_sources(&f.pools, &pools);
        let console = self.console(f.admin.as_ref().map(|a| a.get_ref()), &pools);

        Config {
            listen,
            admin: Admin {
                listen: admin_listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 9090))),
                token: admin_token,
                hosts: admin_hosts,
                console,
            },
            store,
            master_key,
            certs_dir,
            proxy,
            log,
            server,
            pools,
        }
    }

    /// `[admin] console_pool`: a pool that exists and can ask its people for a second
    /// factor (the console requires one).
    fn console(&mut self, admin: Option<&file::Admin>, pools: &[Pool]) -> Option<ConsoleAccess> {
        let admin = admin?;
        let Some(named) = &admin.console_pool else {
            if let Some(g) = &admin.console_group {
                self.err(
                    g.span(),
                    "admin.console_group: set `console_pool` too (the pool whose group it is)",
                );
            }
            return None;
        };
        let Some(pool) = pools.iter().find(|p| p.id.as_str() == named.get_ref()) else {
            self.err(
                named.span(),
                format!("admin.console_pool: there is no pool `{}`", named.get_ref()),
            );
            return None;
        };
        if pool.mfa == MfaPolicy::Off {
            self.err(
                named.span(),
                format!(
                    "admin.console_pool: pool `{}` has mfa = \"off\", and the console requires a second factor",
                    pool.id
                ),
            );
            return None;
        }
        let taken = pool.clients.iter().map(|c| (c.id.as_str(), c.origin));
        let taken = taken
            .chain(pool.apps.iter().map(|a| (a.id.as_str(), a.origin)))
            .find(|(id, _)| *id == CONSOLE_CLIENT);
        if let Some((_, origin)) = taken {
            // Lowered objects are all at a line (a run-time one's is past the file's end,
            // and `Config::load_with` names it instead).
            let line = match origin {
                Origin::File { line } => Some(line),
                _ => None,
            };
            self.errors.push(ConfigError {
                line,
                message: format!(
                    "`{CONSOLE_CLIENT}` is the console's own client at pool `{}`: give this one another id",
                    pool.id
                ),
            });
            return None;
        }
        let group = admin
            .console_group
            .as_ref()
            .map_or(DEFAULT_CONSOLE_GROUP, |g| g.get_ref().as_str());
        Some(ConsoleAccess {
            pool: pool.id.clone(),
            group: group.to_owned(),
        })
    }

    fn socket_addr(&mut self, s: &Spanned<String>, field: &str) -> Option<SocketAddr> {
        match s.get_ref().parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                self.err(
                    s.span(),
                    format!(
                        "{field}: `{}` is not an address: write ip:port, like 127.0.0.1:8080",
                        s.get_ref()
                    ),
                );
                None
            }
        }
    }

    fn store_url(&mut self, url: &Spanned<String>, base: &Path) -> StoreUrl {
        let raw = url.get_ref();
        if let Some(path) = raw.strip_prefix("sqlite:") {
            let path = path.trim_start_matches("//");
            if path.is_empty() {
                self.err(
                    url.span(),
                    "store.url: `sqlite:` needs a file path, or `sqlite::memory:`",
                );
            }
            if path == ":memory:" {
                return StoreUrl(raw.clone());
            }
            return StoreUrl(format!("sqlite:{}", base.join(path).display()));
        }
        if !(raw.starts_with("postgres://") || raw.starts_with("postgresql://")) {
            self.err(
                url.span(),
                format!("store.url: `{raw}` is neither `sqlite:<path>` nor `postgres://…`"),
            );
        }
        StoreUrl(raw.clone())
    }

    fn master_key(&mut self, mk: Option<&Spanned<file::MasterKey>>, base: &Path) -> SecretSource {
        let Some(mk) = mk else {
            return SecretSource::File(base.join(DEFAULT_MASTER_KEY));
        };
        match (&mk.get_ref().file, &mk.get_ref().env) {
            (Some(f), None) => SecretSource::File(base.join(f.get_ref())),
            (None, Some(e)) => SecretSource::Env(e.get_ref().clone()),
            _ => {
                self.err(mk.span(), "[master_key] needs exactly one of `file` or `env`");
                SecretSource::File(base.join(DEFAULT_MASTER_KEY))
            }
        }
    }

    fn proxy(&mut self, p: Option<&Spanned<file::Proxy>>) -> ProxySettings {
        let default_threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let Some(p) = p.map(|p| p.get_ref()) else {
            return ProxySettings {
                trusted_proxies: Vec::new(),
                threads: default_threads,
                oauth2_proxy_headers: false,
            };
        };
        let mut trusted = Vec::new();
        for cidr in &p.trusted_proxies {
            let raw = cidr.get_ref();
            let parsed = raw
                .parse::<IpNet>()
                .or_else(|_| raw.parse::<std::net::IpAddr>().map(IpNet::from));
            match parsed {
                Ok(net) => trusted.push(net),
                Err(_) => self.err(
                    cidr.span(),
                    format!("proxy.trusted_proxies: `{raw}` is not an address or CIDR"),
                ),
            }
        }
        let threads = match &p.threads {
            Some(t) if (1..=1024).contains(t.get_ref()) => *t.get_ref() as usize,
            Some(t) => {
                self.err(t.span(), "proxy.threads must be between 1 and 1024");
                default_threads
            }
            None => default_threads,
        };
        ProxySettings {
            trusted_proxies: trusted,
            threads,
            oauth2_proxy_headers: p.oauth2_proxy_headers,
        }
    }

    fn claim_host(
        &mut self,
        hosts: &mut HashMap<Host, HostOwner>,
        raw: &Spanned<String>,
        what: String,
        is_portal: bool,
    ) -> Option<Host> {
        let host = match Host::parse(raw.get_ref()) {
            Ok(h) => h,
            Err(e) => {
                self.err(raw.span(), format!("{what}: {e}"));
                return None;
            }
        };
        if let Some(other) = hosts.get(&host) {
            // Report at the later of the two places, naming the earlier one's line. Lines
            // are only counted for errors: a file of 100,000 hosts must load in linear time.
            let (first_what, first_span, later_what, later_span) = if other.span.start <= raw.span().start {
                (other.what.clone(), other.span.clone(), what, raw.span())
            } else {
                (what, raw.span(), other.what.clone(), other.span.clone())
            };
            let first_line = self.line(first_span.start);
            let message = if other.is_portal != is_portal {
                format!(
                    "host `{host}` is both a portal host and an app host: {later_what} here, {first_what} at line {first_line}"
                )
            } else {
                format!("duplicate host `{host}`: {later_what} here, {first_what} at line {first_line}")
            };
            self.err(later_span, message);
            return None;
        }
        hosts.insert(
            host.clone(),
            HostOwner {
                what,
                is_portal,
                span: raw.span(),
            },
        );
        Some(host)
    }

    fn pool(
        &mut self,
        id: &Spanned<String>,
        pool: &Spanned<file::Pool>,
        hosts: &mut HashMap<Host, HostOwner>,
    ) -> Option<Pool> {
        let pool_id = match PoolId::parse(id.get_ref()) {
            Ok(p) => Some(p),
            Err(e) => {
                self.err(id.span(), format!("pool: {e}"));
                None
            }
        };
        let p = pool.get_ref();
        if p.name.get_ref().trim().is_empty() {
            self.err(
                p.name.span(),
                format!("pool `{}`: `name` must not be empty", id.get_ref()),
            );
        }
        let portal = self.claim_host(hosts, &p.portal, format!("portal of pool `{}`", id.get_ref()), true);
        let mut domains = Vec::new();
        for d in &p.domains {
            if let Some(h) = self.claim_host(hosts, d, format!("custom domain of pool `{}`", id.get_ref()), true) {
                domains.push(h);
            }
        }
        let plan = match p
            .plan
            .as_ref()
            .map(|s| (Plan::parse(s.get_ref()), s.get_ref().as_str(), s.span()))
        {
            None => Plan::Free,
            Some((Some(plan), _, _)) => plan,
            Some((None, other, span)) => {
                self.err(
                    span,
                    format!(
                        "pool `{}`: unknown plan `{other}`: use free, basic, premium or enterprise",
                        id.get_ref()
                    ),
                );
                Plan::Free
            }
        };
        let mut apps = Vec::new();
        for (app_id, app) in &p.apps {
            if let Some(a) = self.app(id.get_ref(), app_id, app, hosts) {
                apps.push(a);
            }
        }
        let mut sources = Vec::new();
        for (src_id, src) in &p.sources {
            if let Some(s) = self.source(id.get_ref(), src_id, src) {
                sources.push(s);
            }
        }
        let mut clients = Vec::new();
        for (client_id, client) in &p.clients {
            if p.apps.keys().any(|a| a.get_ref() == client_id.get_ref()) {
                self.err(
                    client_id.span(),
                    format!(
                        "client `{}/{}`: an app of the pool has this id (apps and clients share `client_id`)",
                        id.get_ref(),
                        client_id.get_ref()
                    ),
                );
                continue;
            }
            if let Some(c) = self.client(id.get_ref(), client_id, client) {
                clients.push(c);
            }
        }
        // One source per email domain in a pool (home-realm discovery must not guess).
        let mut claimed: std::collections::HashMap<String, &str> = std::collections::HashMap::new();
        for (src_id, src) in &p.sources {
            for d in &src.get_ref().domains {
                let v = d.get_ref().trim().to_ascii_lowercase();
                if let Some(other) = claimed.insert(v.clone(), src_id.get_ref()) {
                    self.err(
                        d.span(),
                        format!(
                            "source `{}/{}`: domain `{v}` is already source `{other}`'s (one source per domain)",
                            id.get_ref(),
                            src_id.get_ref()
                        ),
                    );
                }
            }
        }
        // An app may only admit sources its pool has (or `local`).
        for (app_id, app) in &p.apps {
            for allowed in &app.get_ref().allowed_sources {
                let name = allowed.get_ref();
                if name != "local" && name != "client" && !p.sources.keys().any(|k| k.get_ref() == name) {
                    self.err(
                        allowed.span(),
                        format!(
                            "app `{}/{}`: allowed source `{name}` is not `local`, `client` or a source of the pool",
                            id.get_ref(),
                            app_id.get_ref()
                        ),
                    );
                }
            }
        }
        let limits = plan.limits();
        if let Some(max) = limits.max_apps
            && p.apps.len() as u64 > max
            && let Some((app_id, _)) = p.apps.iter().nth(max as usize)
        {
            self.err(
                app_id.span(),
                format!(
                    "pool `{}`: the {} plan allows {max} apps; this is app {}",
                    id.get_ref(),
                    plan.as_str(),
                    max + 1
                ),
            );
        }
        if !limits.federation
            && let Some((src_id, _)) = p.sources.iter().next()
        {
            self.err(
                src_id.span(),
                format!(
                    "pool `{}`: the {} plan does not include federation (identity sources)",
                    id.get_ref(),
                    plan.as_str()
                ),
            );
        }
        let what = format!("pool `{}`", id.get_ref());
        let mfa = match p.mfa.as_ref().map(|m| (m.get_ref().as_str(), m.span())) {
            None if limits.mfa => MfaPolicy::Optional,
            None => MfaPolicy::Off,
            Some(("off", _)) => MfaPolicy::Off,
            Some((m @ ("optional" | "required"), span)) => {
                if !limits.mfa {
                    self.err(span, format!("{what}: the {} plan does not include MFA", plan.as_str()));
                }
                if m == "optional" {
                    MfaPolicy::Optional
                } else {
                    MfaPolicy::Required
                }
            }
            Some((other, span)) => {
                self.err(
                    span,
                    format!("{what}: mfa `{other}`: use \"off\", \"optional\" or \"required\""),
                );
                MfaPolicy::Off
            }
        };
        let sessions = SessionPolicy {
            idle: self.duration(p.session_idle.as_ref(), &what, "session_idle", DEFAULT_SESSION_IDLE),
            max: self.duration(p.session_max.as_ref(), &what, "session_max", DEFAULT_SESSION_MAX),
        };
        let lockout = LockoutPolicy {
            attempts: self.count(
                p.lockout_attempts.as_ref(),
                &what,
                "lockout_attempts",
                DEFAULT_LOCKOUT_ATTEMPTS,
            ),
            duration: self.duration(p.lockout_duration.as_ref(), &what, "lockout_duration", DEFAULT_LOCKOUT),
            address_attempts: self.count(
                p.address_lockout_attempts.as_ref(),
                &what,
                "address_lockout_attempts",
                DEFAULT_ADDRESS_ATTEMPTS,
            ),
            address_window: self.duration(
                p.address_lockout_window.as_ref(),
                &what,
                "address_lockout_window",
                DEFAULT_ADDRESS_WINDOW,
            ),
        };
        let branding = p
            .branding
            .as_ref()
            .map(|b| self.branding(b.get_ref(), &what))
            .unwrap_or_default();
        if apps.iter().any(|a| a.policy.require_mfa) && mfa == MfaPolicy::Off && limits.mfa {
            // An app that requires MFA in a pool with MFA off could never be entered.
            if let Some((app_id, _)) = p.apps.iter().find(|(_, a)| a.get_ref().require_mfa) {
                self.err(
                    app_id.span(),
                    format!("{what}: an app requires MFA but the pool has `mfa = \"off\"`"),
                );
            }
        }
        if apps.iter().any(|a| a.policy.require_mfa)
            && !limits.mfa
            && let Some((app_id, _)) = p.apps.iter().find(|(_, a)| a.get_ref().require_mfa)
        {
            self.err(
                app_id.span(),
                format!("{what}: the {} plan does not include MFA", plan.as_str()),
            );
        }
        Some(Pool {
            id: pool_id?,
            origin: Origin::File {
                line: self.line(id.span().start),
            },
            mfa,
            sessions,
            lockout,
            branding,
            name: p.name.get_ref().clone(),
            portal: portal?,
            domains,
            plan,
            apps,
            sources,
            clients,
        })
    }

    fn app(
        &mut self,
        pool: &str,
        id: &Spanned<String>,
        app: &Spanned<file::App>,
        hosts: &mut HashMap<Host, HostOwner>,
    ) -> Option<App> {
        let what = format!("app `{pool}/{}`", id.get_ref());
        let app_id = match AppId::parse(id.get_ref()) {
            Ok(a) => Some(a),
            Err(e) => {
                self.err(id.span(), format!("{what}: {e}"));
                None
            }
        };
        let a = app.get_ref();
        if a.hosts.is_empty() {
            self.err(app.span(), format!("{what}: `hosts` must list at least one host"));
        }
        let mut app_hosts = Vec::new();
        for h in &a.hosts {
            if let Some(h) = self.claim_host(hosts, h, format!("host of {what}"), false) {
                app_hosts.push(h);
            }
        }
        if a.upstreams.is_empty() {
            self.err(
                app.span(),
                format!("{what}: `upstreams` must list at least one host:port"),
            );
        }
        let mut upstreams = Vec::new();
        for u in &a.upstreams {
            if upstream_ok(u.get_ref()) {
                upstreams.push(u.get_ref().clone());
            } else {
                self.err(
                    u.span(),
                    format!(
                        "{what}: upstream `{}` is not an address: write host:port, like 127.0.0.1:3000",
                        u.get_ref()
                    ),
                );
            }
        }
        let mut public_paths = Vec::new();
        for p in &a.public_paths {
            if p.get_ref().starts_with('/') && !p.get_ref().contains(['?', '#']) {
                public_paths.push(p.get_ref().clone());
            } else {
                self.err(
                    p.span(),
                    format!(
                        "{what}: public path `{}` must start with `/` and hold no query",
                        p.get_ref()
                    ),
                );
            }
        }
        let timeout = self.written(a.timeout.as_ref(), &what, "timeout", DEFAULT_TIMEOUT);
        let connect_timeout = self.written(
            a.connect_timeout.as_ref(),
            &what,
            "connect_timeout",
            DEFAULT_CONNECT_TIMEOUT,
        );
        let health_check = match &a.health_check {
            None => HealthCheck {
                http_path: None,
                interval: DEFAULT_HEALTH_INTERVAL,
            },
            Some(hc) => {
                let hc = hc.get_ref();
                let http_path = hc.path.as_ref().map(|p| {
                    if !p.get_ref().starts_with('/') {
                        self.err(p.span(), format!("{what}: health_check.path must start with `/`"));
                    }
                    p.get_ref().clone()
                });
                HealthCheck {
                    http_path,
                    interval: self.duration(
                        hc.interval.as_ref(),
                        &what,
                        "health_check.interval",
                        DEFAULT_HEALTH_INTERVAL,
                    ),
                }
            }
        };
        let headers = self.headers(a.headers.as_ref(), &what);
        let mut policy = AccessPolicy {
            require_mfa: a.require_mfa,
            ..AccessPolicy::default()
        };
        for g in &a.allowed_groups {
            policy.allowed_groups.push(g.get_ref().clone());
        }
        for s in &a.allowed_sources {
            policy.allowed_sources.push(s.get_ref().clone());
        }
        let cors = a.cors.as_ref().map(|c| self.cors(c.get_ref(), &what));
        let mut redirect_uris = Vec::new();
        for r in &a.redirect_uris {
            let ok = url::Url::parse(r.get_ref()).is_ok_and(|u| {
                matches!(u.scheme(), "http" | "https")
                    && u.fragment().is_none()
                    && u.host_str().is_some()
                    && u.username().is_empty()
            });
            if ok {
                redirect_uris.push(r.get_ref().clone());
            } else {
                self.err(
                    r.span(),
                    format!(
                        "{what}: redirect URI `{}` must be an absolute http(s) URL without fragment",
                        r.get_ref()
                    ),
                );
            }
        }
        let app_id = app_id?;
        Some(App {
            name: a
                .name
                .as_ref()
                .map_or_else(|| app_id.to_string(), |n| n.get_ref().clone()),
            id: app_id,
            origin: Origin::File {
                line: self.line(id.span().start),
            },
            hosts: app_hosts,
            upstreams,
            public_paths,
            timeout,
            connect_timeout,
            https_redirect: a.https_redirect,
            cache_private: a.cache_private,
            health_check,
            headers,
            policy,
            cors,
            redirect_uris,
        })
    }

    fn branding(&mut self, b: &file::Branding, what: &str) -> Branding {
        let color = b.color.as_ref().and_then(|c| {
            let v = c.get_ref();
            let ok = v.len() == 7 && v.starts_with('#') && v[1..].bytes().all(|x| x.is_ascii_hexdigit());
            if !ok {
                self.err(
                    c.span(),
                    format!("{what}: branding.color `{v}` is not a colour like #1f6feb"),
                );
            }
            ok.then(|| v.to_ascii_lowercase())
        });
        let logo = b.logo.as_ref().and_then(|l| {
            let v = l.get_ref();
            let ok = (v.starts_with("https://") || v.starts_with('/')) && !v.contains(['"', '<', '>', ' ']);
            if !ok {
                self.err(
                    l.span(),
                    format!("{what}: branding.logo must be an https:// URL or a path"),
                );
            }
            ok.then(|| v.clone())
        });
        Branding { logo, color }
    }

    fn cors(&mut self, c: &file::Cors, what: &str) -> Cors {
        let mut origins = Vec::new();
        for o in &c.origins {
            let v = o.get_ref();
            let ok = v == "*"
                || ((v.starts_with("https://") || v.starts_with("http://"))
                    && !v.ends_with('/')
                    && v.matches('/').count() == 2);
            if ok {
                origins.push(v.to_ascii_lowercase());
            } else {
                self.err(
                    o.span(),
                    format!("{what}: cors origin `{v}` must be scheme://host[:port] (or \"*\")"),
                );
            }
        }
        if c.credentials && origins.iter().any(|o| o == "*") {
            self.err(
                c.origins[0].span(),
                format!("{what}: cors with credentials cannot allow every origin"),
            );
        }
        let methods = if c.methods.is_empty() {
            vec!["GET".into(), "HEAD".into(), "POST".into()]
        } else {
            c.methods.iter().map(|m| m.get_ref().to_ascii_uppercase()).collect()
        };
        Cors {
            origins,
            methods,
            headers: c.headers.iter().map(|h| h.get_ref().to_ascii_lowercase()).collect(),
            credentials: c.credentials,
            max_age: self.duration(c.max_age.as_ref(), what, "cors.max_age", Duration::from_secs(600)),
        }
    }

    fn duration(&mut self, d: Option<&Spanned<String>>, what: &str, field: &str, default: Duration) -> Duration {
        let Some(d) = d else { return default };
        parse_duration(d.get_ref()).unwrap_or_else(|| {
            self.err(
                d.span(),
                format!(
                    "{what}: {field} `{}` is not a duration: write 500ms, 30s, 5m or 1h",
                    d.get_ref()
                ),
            );
            default
        })
    }

    /// A duration that keeps its text, for what is echoed back as written.
    fn written(&mut self, d: Option<&Spanned<String>>, what: &str, field: &str, default: &str) -> Written {
        let default = Written::parse(default).unwrap_or_else(|| unreachable!("a default duration parses"));
        let Some(d) = d else { return default };
        Written::parse(d.get_ref()).unwrap_or_else(|| {
            self.duration(Some(d), what, field, default.get());
            default
        })
    }

    /// A count of failed attempts: 1 to 1000.
    fn count(&mut self, n: Option<&Spanned<i64>>, what: &str, field: &str, default: u32) -> u32 {
        let Some(n) = n else { return default };
        match u32::try_from(*n.get_ref()) {
            Ok(v) if (1..=1000).contains(&v) => v,
            _ => {
                self.err(n.span(), format!("{what}: {field} must be between 1 and 1000"));
                default
            }
        }
    }

    fn headers(&mut self, h: Option<&Spanned<file::Headers>>, what: &str) -> IdentityHeaders {
        let mut out = IdentityHeaders::default();
        let Some(spanned) = h else { return out };
        let h = spanned.get_ref();
        let given = [
            (Claim::User, &h.user),
            (Claim::Username, &h.username),
            (Claim::Email, &h.email),
            (Claim::Name, &h.name),
            (Claim::Groups, &h.groups),
            (Claim::Pool, &h.pool),
            (Claim::Source, &h.source),
            (Claim::Assertion, &h.assertion),
        ];
        for (claim, name) in given {
            let Some(name) = name else { continue };
            if let Some(header) = self.header_name(name, what)
                && let Some(slot) = out.names.iter_mut().find(|(c, _)| *c == claim)
            {
                slot.1 = header;
            }
        }
        for (alias, claim) in &h.aliases {
            let Some(header) = self.header_name(alias, what) else {
                continue;
            };
            match Claim::from_key(claim.get_ref()) {
                Some(c) => out.aliases.push((header, c)),
                None => self.err(
                    claim.span(),
                    format!(
                        "{what}: alias `{}` names unknown claim `{}`",
                        alias.get_ref(),
                        claim.get_ref()
                    ),
                ),
            }
        }
        let mut seen = std::collections::HashSet::new();
        let doubled: Vec<String> = out
            .all_names()
            .filter(|name| !seen.insert(crate::wire::header_key(name.as_str())))
            .map(|name| name.to_string())
            .collect();
        for name in doubled {
            self.err(
                spanned.span(),
                format!("{what}: header `{name}` is used for two claims"),
            );
        }
        out
    }

    fn header_name(&mut self, name: &Spanned<String>, what: &str) -> Option<HeaderName> {
        let forbidden = [
            "host",
            "cookie",
            "authorization",
            "connection",
            "content-length",
            "transfer-encoding",
        ];
        match HeaderName::from_bytes(name.get_ref().as_bytes()) {
            Ok(h) if !forbidden.contains(&h.as_str()) => Some(h),
            _ => {
                self.err(
                    name.span(),
                    format!("{what}: `{}` cannot be an identity header name", name.get_ref()),
                );
                None
            }
        }
    }

    fn client(&mut self, pool: &str, id: &Spanned<String>, c: &Spanned<file::Client>) -> Option<Client> {
        let what = format!("client `{pool}/{}`", id.get_ref());
        let client_id = match ClientId::parse(id.get_ref()) {
            Ok(c) => Some(c),
            Err(e) => {
                self.err(id.span(), format!("{what}: {e}"));
                None
            }
        };
        let f = c.get_ref();
        let auth_method = match f.auth_method.as_ref().map(|m| (m, m.get_ref().as_str())) {
            None | Some((_, "client_secret_basic")) => ClientAuthMethod::ClientSecretBasic,
            Some((_, "client_secret_post")) => ClientAuthMethod::ClientSecretPost,
            Some((_, "none")) => ClientAuthMethod::None,
            Some((m, other)) => {
                self.err(
                    m.span(),
                    format!("{what}: auth_method `{other}`: use client_secret_basic, client_secret_post or none"),
                );
                ClientAuthMethod::ClientSecretBasic
            }
        };
        let mut uris = |list: &[Spanned<String>], field: &str| -> Vec<String> {
            let mut out = Vec::new();
            for u in list {
                let ok = url::Url::parse(u.get_ref()).is_ok_and(|x| {
                    matches!(x.scheme(), "http" | "https")
                        && x.fragment().is_none()
                        && x.host_str().is_some()
                        && x.username().is_empty()
                });
                if ok {
                    out.push(u.get_ref().clone());
                } else {
                    self.err(
                        u.span(),
                        format!(
                            "{what}: {field} `{}` must be an absolute http(s) URL without fragment",
                            u.get_ref()
                        ),
                    );
                }
            }
            out
        };
        let redirect_uris = uris(&f.redirect_uris, "redirect URI");
        let post_logout_redirect_uris = uris(&f.post_logout_redirect_uris, "post-logout redirect URI");
        let backchannel_logout_uri = uris(f.backchannel_logout_uri.as_slice(), "back-channel logout URI")
            .into_iter()
            .next();
        let mut grant_types = Vec::new();
        match &f.grant_types {
            None => grant_types.extend([GrantType::AuthorizationCode, GrantType::RefreshToken]),
            Some(list) => {
                for g in list {
                    match GrantType::parse(g.get_ref()) {
                        Some(GrantType::ClientCredentials) if auth_method == ClientAuthMethod::None => self.err(
                            g.span(),
                            format!("{what}: a public client (auth_method none) cannot use client_credentials"),
                        ),
                        Some(t) => grant_types.push(t),
                        None => self.err(
                            g.span(),
                            format!(
                                "{what}: grant type `{}`: use authorization_code, refresh_token or client_credentials",
                                g.get_ref()
                            ),
                        ),
                    }
                }
            }
        }
        let scopes = match &f.scopes {
            None => SCOPES.iter().map(|s| s.to_string()).collect(),
            Some(list) => {
                let mut out = Vec::new();
                for s in list {
                    if SCOPES.contains(&s.get_ref().as_str()) {
                        out.push(s.get_ref().clone());
                    } else {
                        self.err(
                            s.span(),
                            format!("{what}: unknown scope `{}`: use {}", s.get_ref(), SCOPES.join(", ")),
                        );
                    }
                }
                out
            }
        };
        let id_token_alg = match f
            .id_token_signed_response_alg
            .as_ref()
            .map(|a| (a, a.get_ref().as_str()))
        {
            None | Some((_, "RS256")) => SigningAlg::RS256,
            Some((_, "ES256")) => SigningAlg::ES256,
            Some((a, other)) => {
                self.err(
                    a.span(),
                    format!("{what}: id_token_signed_response_alg `{other}`: use RS256 or ES256"),
                );
                SigningAlg::RS256
            }
        };
        let access_token_lifetime =
            self.written(f.access_token_lifetime.as_ref(), &what, "access_token_lifetime", "10m");
        let refresh_token_lifetime = self.written(
            f.refresh_token_lifetime.as_ref(),
            &what,
            "refresh_token_lifetime",
            "30d",
        );
        Some(Client {
            id: client_id?,
            origin: Origin::File {
                line: self.line(id.span().start),
            },
            name: f
                .name
                .as_ref()
                .map_or_else(|| id.get_ref().clone(), |n| n.get_ref().clone()),
            auth_method,
            redirect_uris,
            post_logout_redirect_uris,
            backchannel_logout_uri,
            grant_types,
            scopes,
            id_token_alg,
            access_token_lifetime,
            refresh_token_lifetime,
        })
    }

    fn source(&mut self, pool: &str, id: &Spanned<String>, src: &Spanned<file::Source>) -> Option<Source> {
        let what = format!("source `{pool}/{}`", id.get_ref());
        let source_id = match SourceId::parse(id.get_ref()) {
            Ok(s) => Some(s),
            Err(e) => {
                self.err(id.span(), format!("{what}: {e}"));
                None
            }
        };
        let s = src.get_ref();
        let name = s
            .name
            .as_ref()
            .map_or_else(|| id.get_ref().clone(), |n| n.get_ref().clone());
        let kind = match s.kind.get_ref().as_str() {
            "pool" => match &s.pool {
                Some(p) => PoolId::parse(p.get_ref()).ok().map(SourceKind::Pool),
                None => {
                    self.err(
                        src.span(),
                        format!("{what}: kind \"pool\" needs `pool = \"<pool id>\"`"),
                    );
                    None
                }
            },
            "oidc" => match (&s.issuer, &s.client_id) {
                (Some(issuer), Some(client_id)) => {
                    let i = issuer.get_ref();
                    if !issuer_ok(i) {
                        self.err(
                            issuer.span(),
                            format!(
                                "{what}: issuer `{i}` must be an https:// URL (http only on loopback or *.localhost)"
                            ),
                        );
                    }
                    let client_secret = match (&s.client_secret_env, &s.client_secret_file) {
                        (Some(_), Some(f)) => {
                            self.err(
                                f.span(),
                                format!("{what}: give `client_secret_env` or `client_secret_file`, not both"),
                            );
                            None
                        }
                        (Some(e), None) => Some(SecretSource::Env(e.get_ref().clone())),
                        (None, Some(f)) => Some(SecretSource::File(self.base.join(f.get_ref()))),
                        (None, None) => None,
                    };
                    Some(SourceKind::Oidc {
                        issuer: i.trim_end_matches('/').to_owned(),
                        client_id: client_id.get_ref().clone(),
                        client_secret,
                    })
                }
                _ => {
                    self.err(
                        src.span(),
                        format!("{what}: kind \"oidc\" needs `issuer` and `client_id`"),
                    );
                    None
                }
            },
            other => {
                self.err(
                    s.kind.span(),
                    format!("{what}: unknown kind `{other}`: use \"pool\" or \"oidc\""),
                );
                None
            }
        };
        if matches!(kind, Some(SourceKind::Pool(_))) {
            for (field, set) in [
                ("issuer", s.issuer.as_ref().map(|v| v.span())),
                ("client_id", s.client_id.as_ref().map(|v| v.span())),
                ("client_secret_env", s.client_secret_env.as_ref().map(|v| v.span())),
                ("client_secret_file", s.client_secret_file.as_ref().map(|v| v.span())),
            ] {
                if let Some(span) = set {
                    self.err(
                        span,
                        format!("{what}: `{field}` is made by the gateway for a pool source; remove it"),
                    );
                }
            }
        }
        let mut scopes = vec!["openid".to_owned()];
        for sc in s.scopes.iter().flatten() {
            let v = sc.get_ref();
            if v.is_empty() || !v.chars().all(|c| c.is_ascii_graphic() && c != '"' && c != '\\') {
                self.err(sc.span(), format!("{what}: `{v}` is not a scope"));
            } else if !scopes.contains(v) {
                scopes.push(v.clone());
            }
        }
        if s.scopes.is_none() {
            scopes.extend(["profile".to_owned(), "email".to_owned()]);
        }
        let algorithms = match &s.algorithms {
            None => vec!["RS256".to_owned(), "ES256".to_owned()],
            Some(list) => {
                let mut out = Vec::new();
                for a in list {
                    if SOURCE_ALGORITHMS.contains(&a.get_ref().as_str()) {
                        out.push(a.get_ref().clone());
                    } else {
                        self.err(
                            a.span(),
                            format!(
                                "{what}: algorithm `{}` is not accepted; use some of {}",
                                a.get_ref(),
                                SOURCE_ALGORITHMS.join(", ")
                            ),
                        );
                    }
                }
                if list.is_empty() {
                    self.err(src.span(), format!("{what}: `algorithms` cannot be empty"));
                }
                out
            }
        };
        let mut authorize_params = Vec::new();
        for (k, v) in &s.authorize_params {
            if RESERVED_AUTHORIZE_PARAMS.contains(&k.get_ref().as_str()) {
                self.err(
                    k.span(),
                    format!(
                        "{what}: `{}` is set by the gateway and cannot be configured",
                        k.get_ref()
                    ),
                );
            } else {
                authorize_params.push((k.get_ref().clone(), v.get_ref().clone()));
            }
        }
        let trust_email = s.trust_email.as_ref().is_some_and(|t| *t.get_ref());
        let first_login = match s.first_login.as_ref().map(|f| (f, f.get_ref().as_str())) {
            None | Some((_, "create")) => FirstLogin::Create,
            Some((f, "link_verified_email")) => {
                if !trust_email {
                    self.err(
                        f.span(),
                        format!("{what}: `link_verified_email` needs `trust_email = true`"),
                    );
                }
                FirstLogin::LinkVerifiedEmail
            }
            Some((_, "deny")) => FirstLogin::Deny,
            Some((_, "challenge")) => FirstLogin::Challenge,
            Some((f, other)) => {
                self.err(
                    f.span(),
                    format!(
                        "{what}: unknown first_login `{other}`: use \"create\", \"link_verified_email\" or \"deny\""
                    ),
                );
                FirstLogin::Create
            }
        };
        let mut domains = Vec::new();
        for d in &s.domains {
            let v = d.get_ref().trim().to_ascii_lowercase();
            let bare = v.strip_prefix("*.").unwrap_or(&v);
            if !bare.contains('.') || Host::parse(bare).is_err() {
                self.err(
                    d.span(),
                    format!(
                        "{what}: `{}` is not an email domain (`example.com` or `*.example.com`)",
                        d.get_ref()
                    ),
                );
            } else {
                domains.push(v);
            }
        }
        let mut claims = ClaimNames::default();
        if let Some(c) = &s.claims {
            for (slot, given) in [
                (&mut claims.email, &c.email),
                (&mut claims.name, &c.name),
                (&mut claims.username, &c.username),
                (&mut claims.groups, &c.groups),
            ] {
                if let Some(g) = given {
                    if g.get_ref().is_empty() {
                        self.err(g.span(), format!("{what}: a claim name cannot be empty"));
                    } else {
                        *slot = g.get_ref().clone();
                    }
                }
            }
        }
        let mut group_map = Vec::new();
        for (upstream, local) in &s.groups {
            let l = local.get_ref();
            if l.is_empty() || l.chars().count() > 64 || l.chars().any(|c| c.is_control() || c.is_whitespace()) {
                self.err(local.span(), format!("{what}: `{l}` is not a group name"));
            } else {
                group_map.push((upstream.get_ref().clone(), l.to_lowercase()));
            }
        }
        let sync = match s.sync.as_ref().map(|v| (v, v.get_ref().as_str())) {
            None | Some((_, "import")) => SyncMode::Import,
            Some((_, "force")) => SyncMode::Force,
            Some((v, other)) => {
                self.err(
                    v.span(),
                    format!("{what}: unknown sync `{other}`: use \"import\" or \"force\""),
                );
                SyncMode::Import
            }
        };
        let upstream_logout = match s.upstream_logout.as_ref().map(|v| (v, v.get_ref().as_str())) {
            None | Some((_, "never")) => false,
            Some((_, "always")) => true,
            Some((v, other)) => {
                self.err(
                    v.span(),
                    format!("{what}: unknown upstream_logout `{other}`: use \"always\" or \"never\""),
                );
                false
            }
        };
        let trust_mfa = s.trust_mfa.iter().map(|v| v.get_ref().clone()).collect();
        Some(Source {
            id: source_id?,
            origin: Origin::File {
                line: self.line(id.span().start),
            },
            name,
            kind: kind?,
            domains,
            claims,
            group_map,
            sync,
            trust_mfa,
            upstream_logout,
            scopes,
            algorithms,
            authorize_params,
            first_login,
            trust_email,
        })
    }

    /// A `kind = "pool"` source must name another pool that exists.
    fn check_sources(
        &mut self,
        file_pools: &std::collections::BTreeMap<Spanned<String>, Spanned<file::Pool>>,
        pools: &[Pool],
    ) {
        for (pool_id, pool) in file_pools {
            for (src_id, src) in &pool.get_ref().sources {
                let Some(target) = &src.get_ref().pool else {
                    continue;
                };
                let what = format!("source `{}/{}`", pool_id.get_ref(), src_id.get_ref());
                if target.get_ref() == pool_id.get_ref() {
                    self.err(
                        target.span(),
                        format!("{what}: a pool cannot be its own identity source"),
                    );
                } else if !pools.iter().any(|p| p.id.as_str() == target.get_ref()) {
                    self.err(
                        target.span(),
                        format!("{what}: no pool `{}` is defined", target.get_ref()),
                    );
                }
            }
        }
    }
}

/// An issuer is `https://`, or `http://` on loopback (`127.0.0.1`, `[::1]`, `localhost`
/// and names under `.localhost`, which the gateway resolves to loopback itself).
fn issuer_ok(issuer: &str) -> bool {
    let Ok(url) = url::Url::parse(issuer) else {
        return false;
    };
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return false;
    }
    match (url.scheme(), url.host()) {
        ("https", Some(_)) => true,
        ("http", Some(url::Host::Ipv4(ip))) => ip.is_loopback(),
        ("http", Some(url::Host::Ipv6(ip))) => ip.is_loopback(),
        ("http", Some(url::Host::Domain(d))) => d == "localhost" || d.ends_with(".localhost"),
        _ => false,
    }
}

/// `host:port` with a real port; the host is an IP literal or a DNS name.
fn upstream_ok(s: &str) -> bool {
    if s.parse::<SocketAddr>().is_ok() {
        return true;
    }
    match s.rsplit_once(':') {
        Some((host, port)) => port.parse::<u16>().is_ok_and(|p| p != 0) && Host::parse(host).is_ok(),
        None => false,
    }
}
