//! Lowering an identity source (another pool, or an OpenID Provider), and the checks
//! across a pool's sources.

use super::*;

impl Lowering<'_> {
    pub(super) fn source(&mut self, pool: &str, id: &Spanned<String>, src: &Spanned<file::Source>) -> Option<Source> {
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
    pub(super) fn check_sources(
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
