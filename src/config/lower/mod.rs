//! Lowering: the file format → the validated model, collecting every error with its line.
//! The deployment-wide settings are here; a pool and what it holds (apps, clients,
//! sources) are lowered in the files named after them.

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

mod app;
mod client;
mod pool;
mod source;

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
}
