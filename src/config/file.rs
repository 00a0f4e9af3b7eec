//! The config file's format: serde types that mirror the TOML, with spans for errors.
//! Nothing outside `config` sees these; `lower` turns them into the validated model.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

type S<T> = Spanned<T>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    pub version: S<i64>,
    pub listen: S<Listen>,
    #[serde(default)]
    pub admin: Option<S<Admin>>,
    #[serde(default)]
    pub store: Option<S<Store>>,
    #[serde(default)]
    pub master_key: Option<S<MasterKey>>,
    #[serde(default)]
    pub tls: Option<S<Tls>>,
    #[serde(default)]
    pub proxy: Option<S<Proxy>>,
    #[serde(default)]
    pub log: Option<S<Log>>,
    #[serde(default)]
    pub server: Option<S<Server>>,
    #[serde(default)]
    pub pools: BTreeMap<S<String>, S<Pool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listen {
    pub http: Option<S<String>>,
    pub https: Option<S<String>>,
    /// `scheme:port` people reach the gateway's hosts at, when not its listeners'.
    pub public: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    pub listen: Option<S<String>>,
    pub token_file: Option<S<String>>,
    pub token_env: Option<S<String>>,
    /// Names the admin listener answers to beyond IP literals and `localhost`.
    #[serde(default)]
    pub hosts: Vec<S<String>>,
    /// The pool whose people may sign in to the console…
    pub console_pool: Option<S<String>>,
    /// …when they belong to this group of it (default `console_admins`).
    pub console_group: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Store {
    pub url: S<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MasterKey {
    pub file: Option<S<String>>,
    pub env: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    pub certs: S<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Proxy {
    #[serde(default)]
    pub trusted_proxies: Vec<S<String>>,
    pub threads: Option<S<i64>>,
    #[serde(default)]
    pub oauth2_proxy_headers: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    pub pid_file: Option<S<String>>,
    pub upgrade_socket: Option<S<String>>,
    pub drain_timeout: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Log {
    #[serde(default)]
    pub format: super::LogFormat,
    /// `stdout`, `off`, or a file path.
    pub access: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pool {
    pub name: S<String>,
    pub portal: S<String>,
    #[serde(default)]
    pub domains: Vec<S<String>>,
    pub plan: Option<S<String>>,
    /// "off", "optional" or "required".
    pub mfa: Option<S<String>>,
    pub session_idle: Option<S<String>>,
    pub session_max: Option<S<String>>,
    pub lockout_attempts: Option<S<i64>>,
    pub lockout_duration: Option<S<String>>,
    pub address_lockout_attempts: Option<S<i64>>,
    pub address_lockout_window: Option<S<String>>,
    pub branding: Option<S<Branding>>,
    #[serde(default)]
    pub apps: BTreeMap<S<String>, S<App>>,
    #[serde(default)]
    pub sources: BTreeMap<S<String>, S<Source>>,
    #[serde(default)]
    pub clients: BTreeMap<S<String>, S<Client>>,
}

/// `[pools.P.clients.C]`: a relying party of the pool's OP that is not a gateway app.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Client {
    pub name: Option<S<String>>,
    /// `client_secret_basic` (default), `client_secret_post`, or `none` (a public client).
    pub auth_method: Option<S<String>>,
    #[serde(default)]
    pub redirect_uris: Vec<S<String>>,
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<S<String>>,
    pub backchannel_logout_uri: Option<S<String>>,
    /// Default `["authorization_code", "refresh_token"]`.
    pub grant_types: Option<Vec<S<String>>>,
    /// Default: every scope the OP knows.
    pub scopes: Option<Vec<S<String>>>,
    /// `RS256` (default for clients) or `ES256`.
    pub id_token_signed_response_alg: Option<S<String>>,
    pub access_token_lifetime: Option<S<String>>,
    pub refresh_token_lifetime: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct App {
    pub name: Option<S<String>>,
    pub hosts: Vec<S<String>>,
    pub upstreams: Vec<S<String>>,
    #[serde(default)]
    pub public_paths: Vec<S<String>>,
    pub timeout: Option<S<String>>,
    pub connect_timeout: Option<S<String>>,
    #[serde(default)]
    pub https_redirect: bool,
    /// `Cache-Control: private` on signed-in responses that set no cache policy.
    #[serde(default = "yes")]
    pub cache_private: bool,
    pub health_check: Option<S<HealthCheck>>,
    pub headers: Option<S<Headers>>,
    #[serde(default)]
    pub require_mfa: bool,
    #[serde(default)]
    pub allowed_groups: Vec<S<String>>,
    #[serde(default)]
    pub allowed_sources: Vec<S<String>>,
    pub cors: Option<S<Cors>>,
    /// Extra redirect URIs for a third-party relying party using this app's client id.
    #[serde(default)]
    pub redirect_uris: Vec<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Branding {
    pub logo: Option<S<String>>,
    pub color: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cors {
    pub origins: Vec<S<String>>,
    #[serde(default)]
    pub methods: Vec<S<String>>,
    #[serde(default)]
    pub headers: Vec<S<String>>,
    #[serde(default)]
    pub credentials: bool,
    pub max_age: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    /// HTTP path to GET; without it, a TCP connect is the check.
    pub path: Option<S<String>>,
    pub interval: Option<S<String>>,
}

/// Identity header names, each optional (a default applies).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Headers {
    pub user: Option<S<String>>,
    pub username: Option<S<String>>,
    pub email: Option<S<String>>,
    pub name: Option<S<String>>,
    pub groups: Option<S<String>>,
    pub pool: Option<S<String>>,
    pub source: Option<S<String>>,
    pub assertion: Option<S<String>>,
    /// Extra header names carrying a copy of one claim: `{ "Remote-User" = "username" }`.
    #[serde(default)]
    pub aliases: BTreeMap<S<String>, S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    pub kind: S<String>,
    pub name: Option<S<String>>,
    /// `kind = "pool"`: the pool whose users may come in.
    pub pool: Option<S<String>>,
    /// `kind = "oidc"`: the provider's issuer URL and this client's registration.
    pub issuer: Option<S<String>>,
    pub client_id: Option<S<String>>,
    /// The client secret at the issuer: an environment variable, or a file (relative to
    /// the config file). Never written in the config or the store.
    pub client_secret_env: Option<S<String>>,
    pub client_secret_file: Option<S<String>>,
    /// Scopes asked of the issuer (`openid` always).
    pub scopes: Option<Vec<S<String>>>,
    /// Signing algorithms accepted for ID tokens (asymmetric only).
    pub algorithms: Option<Vec<S<String>>>,
    /// Extra authorization request parameters (`prompt`, `acr_values`, `hd`, …).
    #[serde(default)]
    pub authorize_params: BTreeMap<S<String>, S<String>>,
    /// What a first sign-in with no link does: `create`, `link_verified_email`, `challenge`,
    /// `deny`.
    pub first_login: Option<S<String>>,
    /// The issuer's `email_verified: true` is believed (needed by `link_verified_email`).
    pub trust_email: Option<S<bool>>,
    /// Email domains whose people the login page sends here (home-realm discovery):
    /// `supplier.example`, or `*.supplier.example` for its subdomains.
    #[serde(default)]
    pub domains: Vec<S<String>>,
    /// Which upstream claims carry the person's attributes (defaults: `email`, `name`,
    /// `preferred_username`, `groups`).
    pub claims: Option<SourceClaims>,
    /// Upstream group → local group. Only these: anything else upstream is dropped.
    #[serde(default)]
    pub groups: BTreeMap<S<String>, S<String>>,
    /// `import` (at the first sign-in) or `force` (at every sign-in).
    pub sync: Option<S<String>>,
    /// `acr` or `amr` values taken as the person's second factor upstream.
    #[serde(default)]
    pub trust_mfa: Vec<S<String>>,
    /// `always`: signing out here signs out at the source too; `never` (default).
    pub upstream_logout: Option<S<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceClaims {
    pub email: Option<S<String>>,
    pub name: Option<S<String>>,
    pub username: Option<S<String>>,
    pub groups: Option<S<String>>,
}

fn yes() -> bool {
    true
}
