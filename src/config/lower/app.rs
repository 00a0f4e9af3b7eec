//! Lowering an app: hosts, upstreams, timeouts, CORS and the identity headers it is sent.

use super::*;

impl Lowering<'_> {
    pub(super) fn app(
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

    pub(super) fn cors(&mut self, c: &file::Cors, what: &str) -> Cors {
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

    pub(super) fn headers(&mut self, h: Option<&Spanned<file::Headers>>, what: &str) -> IdentityHeaders {
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

    pub(super) fn header_name(&mut self, name: &Spanned<String>, what: &str) -> Option<HeaderName> {
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
