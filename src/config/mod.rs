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

use crate::ids::{AppId, ClientId, Host, PoolId, SourceId};

pub use duration::{Written, parse_duration};

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
    /// Seals cookies and private keys at rest.
    pub master_key: SecretSource,
    /// Directory of per-host certificates: `<certs>/<host>/cert.pem` and `key.pem`.
    pub certs_dir: PathBuf,
    pub proxy: ProxySettings,
    pub log: Log,
    pub server: ServerSettings,
    pub pools: Vec<Pool>,
}

/// The process (`[server]`): how one gateway process hands over to the next.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// The running process's id, for `serve --upgrade` to find it.
    pub pid_file: PathBuf,
    /// Where `serve --upgrade` takes the listening sockets from the running process.
    pub upgrade_socket: PathBuf,
    /// How long a stopping process (upgraded, or `SIGTERM`) finishes requests in flight.
    pub drain_timeout: Duration,
}

/// How the gateway logs (`[log]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Log {
    pub format: LogFormat,
    /// Where the access log goes; `None`: the default for the format (see `logging`).
    pub access: Option<AccessLog>,
}

/// The format of the gateway's own log lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human on a terminal, JSON lines otherwise.
    #[default]
    Auto,
    Json,
    Human,
}

/// Where the access log (JSON lines, one per request) goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLog {
    Stdout,
    File(PathBuf),
    Off,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    pub http: Option<SocketAddr>,
    pub https: Option<SocketAddr>,
    /// Where people reach the gateway's hosts when a front proxy or load balancer stands
    /// before it (TLS ended there, another port): the addresses poolgate makes — issuers,
    /// the apps' sign-in callbacks — use this instead of its listeners.
    pub public: Option<PublicOrigin>,
}

impl Listen {
    /// Where this host reaches each proxy listener: its address, with a wildcard one
    /// (`0.0.0.0`, `::`) as loopback. What readiness is checked at.
    pub fn local_addrs(&self) -> impl Iterator<Item = SocketAddr> {
        [self.http, self.https].into_iter().flatten().map(|addr| match addr {
            SocketAddr::V4(a) if a.ip().is_unspecified() => SocketAddr::from(([127, 0, 0, 1], a.port())),
            SocketAddr::V6(a) if a.ip().is_unspecified() => SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, a.port())),
            other => other,
        })
    }
}

/// A scheme and port (`https:443`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicOrigin {
    pub https: bool,
    pub port: u16,
}

impl PublicOrigin {
    /// `https:8443`, `http:80`, or just the scheme for its default port.
    pub fn parse(s: &str) -> Option<PublicOrigin> {
        let (scheme, port) = match s.split_once(':') {
            Some((scheme, port)) => (scheme, Some(port.parse::<u16>().ok().filter(|p| *p > 0)?)),
            None => (s, None),
        };
        let https = match scheme {
            "https" => true,
            "http" => false,
            _ => return None,
        };
        Some(PublicOrigin {
            https,
            port: port.unwrap_or(if https { 443 } else { 80 }),
        })
    }

    /// `scheme://host[:port]`, the port left out when it is the scheme's default.
    pub fn origin(&self, host: &str) -> String {
        let scheme = if self.https { "https" } else { "http" };
        match (self.https, self.port) {
            (true, 443) | (false, 80) => format!("{scheme}://{host}"),
            (_, port) => format!("{scheme}://{host}:{port}"),
        }
    }
}

impl Listen {
    /// Where people reach the gateway: `public`, or each listener (HTTPS first).
    pub fn reached_at(&self) -> Vec<PublicOrigin> {
        if let Some(p) = self.public {
            return vec![p];
        }
        let mut out = Vec::new();
        if let Some(a) = self.https {
            out.push(PublicOrigin {
                https: true,
                port: a.port(),
            });
        }
        if let Some(a) = self.http {
            out.push(PublicOrigin {
                https: false,
                port: a.port(),
            });
        }
        out
    }
}

#[derive(Debug, Clone)]
pub struct Admin {
    /// Loopback by default: the admin plane is not for the open network.
    pub listen: SocketAddr,
    /// The bearer token of the admin API.
    pub token: SecretSource,
    /// Host names the listener answers to, beyond IP literals and `localhost`: any other
    /// `Host` is refused, so a web page whose name was rebound to the admin address
    /// (DNS rebinding) cannot call the API from a browser on the same machine.
    pub hosts: Vec<Host>,
    /// Who may sign in to the admin console, if anyone.
    pub console: Option<ConsoleAccess>,
}

/// The console's operators: the people of one pool in one of its groups, signed in
/// through that pool's OpenID Provider with a second factor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleAccess {
    pub pool: PoolId,
    pub group: String,
}

/// The console's group when `[admin] console_group` is not set.
pub const DEFAULT_CONSOLE_GROUP: &str = "console_admins";

/// The admin console's client id at its pool's OP: the gateway registers it, so the
/// console pool may not name an app or a client so.
pub const CONSOLE_CLIENT: &str = "poolgate-console";

/// Where state lives: `sqlite:<path>` (embedded, the default) or `postgres://…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreUrl(pub String);

/// Where a secret (the master key, the admin token) comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    File(PathBuf),
    Env(String),
}

#[derive(Debug, Clone)]
pub struct ProxySettings {
    /// Peers whose `X-Forwarded-*` headers are believed. Empty by default: nobody's.
    pub trusted_proxies: Vec<IpNet>,
    /// Worker threads of the proxy.
    pub threads: usize,
    /// Forward-auth answers also carry oauth2-proxy's `X-Auth-Request-*` names.
    pub oauth2_proxy_headers: bool,
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

/// Where an object was declared: what the console and the API may change, and where to
/// look for what they may not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Origin {
    /// In the config file, at this line: changed by editing the file.
    File { line: usize },
    /// Made by the gateway itself (the console's own client).
    Gateway,
    /// Made at run time through the admin API, the CLI or the console.
    Runtime,
}

impl Origin {
    /// Read-only through the admin API and the console.
    pub fn managed(self) -> bool {
        self != Origin::Runtime
    }
}

#[derive(Debug, Clone)]
pub struct Pool {
    pub id: PoolId,
    pub origin: Origin,
    pub name: String,
    pub portal: Host,
    /// Custom domains: further hosts of the pool's portal.
    pub domains: Vec<Host>,
    pub plan: Plan,
    pub mfa: MfaPolicy,
    pub sessions: SessionPolicy,
    pub lockout: LockoutPolicy,
    pub branding: Branding,
    pub apps: Vec<App>,
    pub sources: Vec<Source>,
    pub clients: Vec<Client>,
}

/// A relying party of the pool's OP that is not a gateway app (`[pools.P.clients.C]`).
#[derive(Debug, Clone)]
pub struct Client {
    pub id: ClientId,
    pub origin: Origin,
    pub name: String,
    pub auth_method: ClientAuthMethod,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub backchannel_logout_uri: Option<String>,
    pub grant_types: Vec<GrantType>,
    pub scopes: Vec<String>,
    pub id_token_alg: SigningAlg,
    pub access_token_lifetime: Written,
    pub refresh_token_lifetime: Written,
}

/// How a client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuthMethod {
    /// A public client: no secret, PKCE required.
    None,
    ClientSecretBasic,
    ClientSecretPost,
}

impl ClientAuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientAuthMethod::None => "none",
            ClientAuthMethod::ClientSecretBasic => "client_secret_basic",
            ClientAuthMethod::ClientSecretPost => "client_secret_post",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    AuthorizationCode,
    RefreshToken,
    ClientCredentials,
}

impl GrantType {
    pub fn parse(s: &str) -> Option<GrantType> {
        match s {
            "authorization_code" => Some(GrantType::AuthorizationCode),
            "refresh_token" => Some(GrantType::RefreshToken),
            "client_credentials" => Some(GrantType::ClientCredentials),
            _ => None,
        }
    }
}

/// The algorithm an ID token is signed with, per client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum SigningAlg {
    ES256,
    RS256,
}

/// The scopes the pools' OPs know.
pub const SCOPES: [&str; 5] = ["openid", "profile", "email", "groups", "offline_access"];

/// Whether the pool's users use a second factor (TOTP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MfaPolicy {
    Off,
    Optional,
    Required,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    /// A session unused this long ends.
    pub idle: Duration,
    /// A session ends this long after sign-in, used or not.
    pub max: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Failed sign-ins in a row that lock the account…
    pub attempts: u32,
    /// …for this long (or until an admin unlocks it).
    pub duration: Duration,
    /// Failed sign-ins from one client address, to any account of the pool, within
    /// `address_window` that make the address wait out the rest of the window: guessing
    /// across many usernames meets a limit the per-account lockout does not set.
    pub address_attempts: u32,
    pub address_window: Duration,
}

/// How the pool's hosted pages look.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Branding {
    pub logo: Option<String>,
    /// `#rrggbb`.
    pub color: Option<String>,
}

/// Who may use an app, beyond being a signed-in user of its pool.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessPolicy {
    pub require_mfa: bool,
    /// Empty: any group (or none).
    pub allowed_groups: Vec<String>,
    /// `local` or source ids; empty: any.
    pub allowed_sources: Vec<String>,
}

/// How CORS preflights to the app's protected routes are answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cors {
    pub origins: Vec<String>,
    pub methods: Vec<String>,
    pub headers: Vec<String>,
    pub credentials: bool,
    pub max_age: Duration,
}

#[derive(Debug, Clone)]
pub struct App {
    pub id: AppId,
    /// What people are shown (the login page, error pages); the id when not set.
    pub name: String,
    pub origin: Origin,
    pub hosts: Vec<Host>,
    /// `host:port` of each upstream server, balanced round-robin.
    pub upstreams: Vec<String>,
    /// Path prefixes served without sign-in.
    pub public_paths: Vec<String>,
    /// How long the upstream may take to answer (each read and write).
    pub timeout: Written,
    pub connect_timeout: Written,
    /// Redirect plain-HTTP requests to HTTPS.
    pub https_redirect: bool,
    /// Mark signed-in responses that set no `Cache-Control` as `private`, so no shared
    /// cache keeps one person's page for another.
    pub cache_private: bool,
    pub health_check: HealthCheck,
    pub headers: IdentityHeaders,
    pub policy: AccessPolicy,
    pub cors: Option<Cors>,
    /// Redirect URIs registered beyond the app's own `/.poolgate/callback` (for a
    /// third-party relying party that uses this app as its OIDC client).
    pub redirect_uris: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
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
    /// The names no client may send an app with these headers: its own and poolgate's
    /// defaults (so renaming a header never reopens the old name), and the rest `StripSet`
    /// always removes.
    pub fn strip_set(&self) -> crate::wire::StripSet {
        let defaults = IdentityHeaders::default();
        crate::wire::StripSet::new(self.all_names().chain(defaults.all_names()).map(HeaderName::as_str))
    }

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
    pub origin: Origin,
    pub name: String,
    pub kind: SourceKind,
    /// Scopes asked of the issuer, `openid` first.
    pub scopes: Vec<String>,
    /// ID token algorithms accepted, from [`SOURCE_ALGORITHMS`].
    pub algorithms: Vec<String>,
    /// Extra parameters of the authorization request.
    pub authorize_params: Vec<(String, String)>,
    pub first_login: FirstLogin,
    pub trust_email: bool,
    /// Email domains sent here by the login page, lower-case; `*.` leads a wildcard.
    pub domains: Vec<String>,
    pub claims: ClaimNames,
    /// Upstream group → local group, explicitly; nothing upstream grants anything else.
    pub group_map: Vec<(String, String)>,
    pub sync: SyncMode,
    /// `acr`/`amr` values that count as a second factor; empty: none does.
    pub trust_mfa: Vec<String>,
    /// Signing out here goes on to sign out at the source.
    pub upstream_logout: bool,
}

/// The upstream claim names a source's attributes are read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimNames {
    pub email: String,
    pub name: String,
    pub username: String,
    pub groups: String,
}

impl Default for ClaimNames {
    fn default() -> ClaimNames {
        ClaimNames {
            email: "email".into(),
            name: "name".into(),
            username: "preferred_username".into(),
            groups: "groups".into(),
        }
    }
}

/// When a linked user's attributes and mapped groups are taken from the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncMode {
    /// Once, when the user is made.
    Import,
    /// At every sign-in; what the upstream did not send is left as it is.
    Force,
}

impl Source {
    /// How well this source claims an email's domain: exact beats wildcard.
    pub fn claims_domain(&self, domain: &str) -> Option<DomainMatch> {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        self.domains
            .iter()
            .filter_map(|d| match d.strip_prefix("*.") {
                None if *d == domain => Some(DomainMatch::Exact),
                Some(parent) if domain.len() > parent.len() + 1 && domain.ends_with(&format!(".{parent}")) => {
                    Some(DomainMatch::Wildcard)
                }
                _ => None,
            })
            .min()
    }
}

/// How a source claimed a domain; `Exact` sorts first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DomainMatch {
    Exact,
    Wildcard,
}

#[derive(Debug, Clone)]
pub enum SourceKind {
    /// Another pool of this deployment: its client registration there is made by the
    /// gateway (secret derived from the master key on both sides, never stored).
    Pool(PoolId),
    /// Any OpenID Connect provider.
    Oidc {
        issuer: String,
        client_id: String,
        client_secret: Option<SecretSource>,
    },
}

/// The asymmetric signature algorithms a source may be trusted with. No `HS*` (a shared
/// secret is no proof of the issuer) and never `none`.
pub const SOURCE_ALGORITHMS: [&str; 9] = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

/// Parameters the gateway sets itself on an authorization request to a source.
pub const RESERVED_AUTHORIZE_PARAMS: [&str; 9] = [
    "client_id",
    "redirect_uri",
    "response_type",
    "response_mode",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
];

/// What the first sign-in through a source does when no link exists yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FirstLogin {
    /// A new local user and its link (a challenge when the username or email is taken).
    Create,
    /// The one local user with that verified email, when the source is trusted for email.
    LinkVerifiedEmail,
    /// The person proves an existing local account (password, and a second factor when
    /// they have one) before the link is written.
    Challenge,
    /// Nobody without a link gets in.
    Deny,
}

impl FirstLogin {
    pub fn as_str(self) -> &'static str {
        match self {
            FirstLogin::Create => "create",
            FirstLogin::LinkVerifiedEmail => "link_verified_email",
            FirstLogin::Challenge => "challenge",
            FirstLogin::Deny => "deny",
        }
    }
}

/// The pools a config file itself declares: run-time objects of other pools are left out.
fn file_pools(text: &str) -> std::collections::HashSet<String> {
    let table = text.parse::<toml::Table>().unwrap_or_default();
    let pools = table.get("pools").and_then(|p| p.as_table());
    pools.map(|p| p.keys().cloned().collect()).unwrap_or_default()
}

/// The parent domain a wildcard for `host` would name, if the wildcard would be valid.
pub fn wildcard_parent(host: &Host) -> Option<&str> {
    let (_, parent) = host.as_str().split_once('.')?;
    (parent.contains('.') && !host.as_str().starts_with('[')).then_some(parent)
}

/// A run-time object lowered with the file (see [`Config::load_with`]).
#[derive(Debug, Clone)]
pub struct Extra {
    /// How messages name it: `app employees/crm (created through the API)`.
    pub label: String,
    pub pool: String,
    /// A pool of its own (rather than an app or source of one).
    pub is_pool: bool,
    /// Its TOML text.
    pub text: String,
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
        Config::load_with(path, &[])
    }

    /// Reads a config file together with run-time objects (pools, apps and sources created
    /// through the admin API), lowered as one document so they pass the same validation.
    /// An app or source of a pool that no longer exists is left out.
    pub fn load_with(path: &Path, extras: &[Extra]) -> Result<Config, ConfigErrors> {
        let fail = |errors: Vec<ConfigError>| ConfigErrors {
            file: path.to_owned(),
            errors,
        };
        let text = std::fs::read_to_string(path).map_err(|e| {
            fail(vec![ConfigError {
                line: None,
                message: format!("cannot read: {e}"),
            }])
        })?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        };
        let base = dir.canonicalize().unwrap_or(dir);

        let file_lines = text.lines().count();
        let mut pools = file_pools(&text);
        pools.extend(extras.iter().filter(|e| e.is_pool).map(|e| e.pool.clone()));
        let mut combined = text;
        if !combined.ends_with('\n') {
            combined.push('\n');
        }
        let mut lines = combined.lines().count();
        let mut ranges = Vec::new();
        for extra in extras.iter().filter(|e| pools.contains(&e.pool)) {
            let start = lines + 1;
            combined.push_str(&extra.text);
            if !extra.text.ends_with('\n') {
                combined.push('\n');
            }
            lines += extra.text.lines().count();
            ranges.push((start, lines, extra.label.as_str()));
        }
        let mut config = Config::parse(&combined, &base).map_err(|errors| {
            let errors = errors
                .into_iter()
                .map(|e| match e.line {
                    Some(line) if line > file_lines => {
                        let label = ranges
                            .iter()
                            .find(|(a, b, _)| (*a..=*b).contains(&line))
                            .map_or("run-time object", |r| r.2);
                        ConfigError {
                            line: None,
                            message: format!("{label}: {}", e.message),
                        }
                    }
                    _ => e,
                })
                .collect();
            fail(errors)
        })?;
        // Objects past the file's last line are the run-time ones appended above.
        let runtime = |origin: &mut Origin| {
            if matches!(*origin, Origin::File { line } if line > file_lines) {
                *origin = Origin::Runtime;
            }
        };
        for pool in &mut config.pools {
            runtime(&mut pool.origin);
            pool.apps.iter_mut().for_each(|a| runtime(&mut a.origin));
            pool.sources.iter_mut().for_each(|s| runtime(&mut s.origin));
            pool.clients.iter_mut().for_each(|c| runtime(&mut c.origin));
        }
        Ok(config)
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

    /// The wildcard certificate that would cover `host` (`*.example.com` for
    /// `app.example.com`); `None` for hosts with fewer than three labels.
    pub fn wildcard_cert_paths(&self, host: &Host) -> Option<(PathBuf, PathBuf)> {
        let parent = wildcard_parent(host)?;
        let dir = self.certs_dir.join(format!("*.{parent}"));
        Some((dir.join("cert.pem"), dir.join("key.pem")))
    }

    /// The directory holding `host`'s certificate and key.
    pub fn cert_paths(&self, host: &Host) -> (PathBuf, PathBuf) {
        let dir = self.certs_dir.join(host.as_str());
        (dir.join("cert.pem"), dir.join("key.pem"))
    }
}

#[cfg(test)]
mod public_origin_tests {
    use super::PublicOrigin;

    #[test]
    fn a_public_origin_is_a_scheme_and_a_port() {
        let https = PublicOrigin::parse("https").unwrap();
        assert_eq!(https.origin("wiki.example"), "https://wiki.example");
        let alt = PublicOrigin::parse("http:8080").unwrap();
        assert_eq!(alt.origin("wiki.example"), "http://wiki.example:8080");
        assert_eq!(PublicOrigin::parse("https:443"), Some(https));
        for bad in ["ftp", "https:", "https:0", "https:65536", "https://x", ":443", ""] {
            assert_eq!(PublicOrigin::parse(bad), None, "{bad}");
        }
    }
}
