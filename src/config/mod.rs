//! The config file and its validation: one TOML file (`version = 1`) is lowered into the
//! validated [`Config`] model that the rest of poolgate uses. Every error carries its line.

mod duration;
mod file;
mod lower;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::HeaderName;
use ipnet::IpNet;

use crate::ids::{AppId, Host, PoolId, SourceId};

pub use duration::parse_duration;

impl Plan {
    pub fn as_str(self) -> &'static str {
        match self {
            Plan::Free => "free",
            Plan::Basic => "basic",
            Plan::Premium => "premium",
            Plan::Enterprise => "enterprise",
        }
    }

    pub fn parse(s: &str) -> Option<Plan> {
        [Plan::Free, Plan::Basic, Plan::Premium, Plan::Enterprise]
            .into_iter()
            .find(|p| p.as_str() == s)
    }

    /// What the plan allows. `None` is no limit.
    pub fn limits(self) -> PlanLimits {
        match self {
            Plan::Free => PlanLimits {
                max_users: Some(50),
                max_apps: Some(3),
                federation: false,
                mfa: false,
            },
            Plan::Basic => PlanLimits {
                max_users: Some(1_000),
                max_apps: Some(10),
                federation: false,
                mfa: true,
            },
            Plan::Premium => PlanLimits {
                max_users: Some(50_000),
                max_apps: Some(100),
                federation: true,
                mfa: true,
            },
            Plan::Enterprise => PlanLimits {
                max_users: None,
                max_apps: None,
                federation: true,
                mfa: true,
            },
        }
    }
}

/// The limits of a plan, enforced by the config validation (apps, federation) and the
/// store (users).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PlanLimits {
    pub max_users: Option<u64>,
    pub max_apps: Option<u64>,
    pub federation: bool,
    pub mfa: bool,
}

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: Listen,
    pub admin: Admin,
    pub store: StoreUrl,
    pub master_key: MasterKeySource,
    /// Directory of per-host certificates: `<certs>/<host>/cert.pem` and `key.pem`.
    pub certs_dir: PathBuf,
    pub proxy: ProxySettings,
    pub pools: Vec<Pool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    pub http: Option<SocketAddr>,
    pub https: Option<SocketAddr>,
}

#[derive(Debug, Clone)]
pub struct Admin {
    /// Loopback by default: the admin plane is not for the open network.
    pub listen: SocketAddr,
}

/// Where state lives: `sqlite:<path>` (embedded, the default) or `postgres://…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreUrl(pub String);

/// Where the master key (which seals cookies and private keys) comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MasterKeySource {
    File(PathBuf),
    Env(String),
}

#[derive(Debug, Clone)]
pub struct ProxySettings {
    /// Peers whose `X-Forwarded-*` headers are believed. Empty by default: nobody's.
    pub trusted_proxies: Vec<IpNet>,
    /// Worker threads of the proxy.
    pub threads: usize,
}

/// Edition of a pool; its limits arrive with the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Plan {
    Free,
    Basic,
    Premium,
    Enterprise,
}

#[derive(Debug, Clone)]
pub struct Pool {
    pub id: PoolId,
    pub name: String,
    pub portal: Host,
    /// Custom domains: further hosts of the pool's portal.
    pub domains: Vec<Host>,
    pub plan: Plan,
    pub apps: Vec<App>,
    pub sources: Vec<Source>,
}

#[derive(Debug, Clone)]
pub struct App {
    pub id: AppId,
    pub hosts: Vec<Host>,
    /// `host:port` of each upstream server, balanced round-robin.
    pub upstreams: Vec<String>,
    /// Path prefixes served without sign-in.
    pub public_paths: Vec<String>,
    /// How long the upstream may take to answer (each read and write).
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Redirect plain-HTTP requests to HTTPS.
    pub https_redirect: bool,
    pub health_check: HealthCheck,
    pub headers: IdentityHeaders,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// `None`: a TCP connect. `Some(path)`: `GET path` must answer 2xx.
    pub http_path: Option<String>,
    pub interval: Duration,
}

/// The claims an identity header can carry (DESIGN.md §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Claim {
    User,
    Username,
    Email,
    Name,
    Groups,
    Pool,
    Source,
    Assertion,
}

impl Claim {
    pub const ALL: [Claim; 8] = [
        Claim::User,
        Claim::Username,
        Claim::Email,
        Claim::Name,
        Claim::Groups,
        Claim::Pool,
        Claim::Source,
        Claim::Assertion,
    ];

    pub fn key(self) -> &'static str {
        match self {
            Claim::User => "user",
            Claim::Username => "username",
            Claim::Email => "email",
            Claim::Name => "name",
            Claim::Groups => "groups",
            Claim::Pool => "pool",
            Claim::Source => "source",
            Claim::Assertion => "assertion",
        }
    }

    fn default_header(self) -> &'static str {
        match self {
            Claim::User => "x-poolgate-user",
            Claim::Username => "x-poolgate-username",
            Claim::Email => "x-poolgate-email",
            Claim::Name => "x-poolgate-name",
            Claim::Groups => "x-poolgate-groups",
            Claim::Pool => "x-poolgate-pool",
            Claim::Source => "x-poolgate-source",
            Claim::Assertion => "x-poolgate-assertion",
        }
    }

    fn from_key(key: &str) -> Option<Claim> {
        Claim::ALL.into_iter().find(|c| c.key() == key)
    }
}

/// The identity header names an app receives: one per claim, plus aliases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityHeaders {
    pub names: Vec<(Claim, HeaderName)>,
    pub aliases: Vec<(HeaderName, Claim)>,
}

impl Default for IdentityHeaders {
    fn default() -> Self {
        Self {
            names: Claim::ALL
                .into_iter()
                .map(|c| (c, HeaderName::from_static(c.default_header())))
                .collect(),
            aliases: Vec::new(),
        }
    }
}

impl IdentityHeaders {
    /// Every header name the gateway sets for this app.
    pub fn all_names(&self) -> impl Iterator<Item = &HeaderName> {
        self.names
            .iter()
            .map(|(_, h)| h)
            .chain(self.aliases.iter().map(|(h, _)| h))
    }
}

#[derive(Debug, Clone)]
pub struct Source {
    pub id: SourceId,
    pub name: String,
    pub kind: SourceKind,
}

#[derive(Debug, Clone)]
pub enum SourceKind {
    /// Another pool of this deployment.
    Pool(PoolId),
    /// Any OpenID Connect provider.
    Oidc {
        issuer: String,
        client_id: String,
        client_secret_env: Option<String>,
    },
}

/// One problem in a config file, at a line when it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub line: Option<usize>,
    pub message: String,
}

/// Everything wrong with a config file; the file is refused as a whole.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", render(.file, .errors))]
pub struct ConfigErrors {
    pub file: PathBuf,
    pub errors: Vec<ConfigError>,
}

fn render(file: &Path, errors: &[ConfigError]) -> String {
    let mut out = format!("{} has {} error(s):", file.display(), errors.len());
    for e in errors {
        match e.line {
            Some(line) => out.push_str(&format!("\n  {}:{line}: {}", file.display(), e.message)),
            None => out.push_str(&format!("\n  {}: {}", file.display(), e.message)),
        }
    }
    out
}

impl Config {
    /// Reads and validates a config file. Relative paths in it are taken relative to the
    /// file's own directory, so the result does not depend on the working directory.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let fail = |message: String| ConfigErrors {
            file: path.to_owned(),
            errors: vec![ConfigError {
                line: None,
                message,
            }],
        };
        let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        };
        let base = dir.canonicalize().unwrap_or(dir);
        Config::parse(&text, &base).map_err(|errors| ConfigErrors {
            file: path.to_owned(),
            errors,
        })
    }

    /// Validates config text; `base` anchors relative paths.
    pub fn parse(text: &str, base: &Path) -> Result<Config, Vec<ConfigError>> {
        lower::lower(text, base)
    }

    /// Every host any route answers to, with what it is for.
    pub fn hosts(&self) -> impl Iterator<Item = &Host> {
        self.pools.iter().flat_map(|p| {
            std::iter::once(&p.portal)
                .chain(p.domains.iter())
                .chain(p.apps.iter().flat_map(|a| a.hosts.iter()))
        })
    }

    /// The directory holding `host`'s certificate and key.
    pub fn cert_paths(&self, host: &Host) -> (PathBuf, PathBuf) {
        let dir = self.certs_dir.join(host.as_str());
        (dir.join("cert.pem"), dir.join("key.pem"))
    }
}
