//! Lowering a pool: its portal, policies, branding, and the apps, clients and sources in it.

use super::*;

impl Lowering<'_> {
    pub(super) fn pool(
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

    pub(super) fn branding(&mut self, b: &file::Branding, what: &str) -> Branding {
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
}
