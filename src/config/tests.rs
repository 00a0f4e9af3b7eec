//! Config validation: every kind of mistake is reported with the line it is on.

use std::path::Path;

use super::*;

const GOOD: &str = r#"
version = 1
[listen]
http = "127.0.0.1:8080"

[pools.employees]
name = "Employees"
portal = "login.employees.localhost"
plan = "premium"

[pools.employees.apps.wiki]
hosts = ["wiki.employees.localhost"]
upstreams = ["127.0.0.1:9001"]
"#;

fn errors(text: &str) -> Vec<(Option<usize>, String)> {
    match Config::parse(text, Path::new("/etc/poolgate")) {
        Ok(_) => panic!("config was accepted:\n{text}"),
        Err(errs) => errs.into_iter().map(|e| (e.line, e.message)).collect(),
    }
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).expect("needle in text") + 1
}

#[test]
fn a_good_file_lowers_with_defaults() {
    let c = Config::parse(GOOD, Path::new("/etc/poolgate")).unwrap();
    assert_eq!(c.pools.len(), 1);
    let app = &c.pools[0].apps[0];
    assert_eq!(app.hosts[0].as_str(), "wiki.employees.localhost");
    assert_eq!(app.timeout.get(), std::time::Duration::from_secs(60));
    assert_eq!(app.timeout.to_string(), "60s");
    assert_eq!(
        c.admin.listen.to_string(),
        "127.0.0.1:9090",
        "admin is loopback by default"
    );
    assert_eq!(c.store, StoreUrl("sqlite:/etc/poolgate/data/poolgate.db".into()));
    assert!(c.proxy.trusted_proxies.is_empty(), "no proxy is trusted by default");
    assert_eq!(
        c.cert_paths(&app.hosts[0]).0,
        Path::new("/etc/poolgate/certs/wiki.employees.localhost/cert.pem")
    );
}

#[test]
fn the_demo_config_is_valid() {
    let text = include_str!("../../config/demo.toml");
    let c = Config::parse(text, Path::new("/x/config")).unwrap();
    let ids: Vec<&str> = c.pools.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, ["employees", "suppliers"]);
    let orders = &c.pools[1].apps[0];
    assert_eq!(orders.headers.aliases[0].0.as_str(), "remote-user");
}

#[test]
fn unknown_key_is_refused_at_its_line() {
    let text = GOOD.replace("upstreams =", "upstreamz = [\"x\"]\nupstreams =");
    let errs = errors(&text);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].0, Some(line_of(&text, "upstreamz")));
    assert!(errs[0].1.contains("unknown field `upstreamz`"), "{}", errs[0].1);
}

#[test]
fn syntax_error_names_its_line() {
    let text = GOOD.replace("name = \"Employees\"", "name = \"Employees");
    let errs = errors(&text);
    assert_eq!(errs[0].0, Some(line_of(&text, "name = \"Employees")));
}

#[test]
fn duplicate_host_across_pools() {
    let text = format!(
        "{GOOD}\n[pools.suppliers]\nname = \"Suppliers\"\nportal = \"login.suppliers.localhost\"\n\
         [pools.suppliers.apps.orders]\nhosts = [\"WIKI.employees.localhost.\"]\nupstreams = [\"127.0.0.1:9002\"]\n"
    );
    let errs = errors(&text);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].0, Some(line_of(&text, "WIKI.employees")));
    assert!(
        errs[0].1.contains("duplicate host `wiki.employees.localhost`"),
        "{}",
        errs[0].1
    );
    assert!(
        errs[0]
            .1
            .contains(&format!("line {}", line_of(&text, "hosts = [\"wiki"))),
        "{}",
        errs[0].1
    );
}

#[test]
fn portal_host_used_by_an_app() {
    let text = GOOD.replace(
        "hosts = [\"wiki.employees.localhost\"]",
        "hosts = [\"login.employees.localhost\"]",
    );
    let errs = errors(&text);
    assert_eq!(errs[0].0, Some(line_of(&text, "hosts = [\"login")));
    assert!(
        errs[0].1.contains("both a portal host and an app host"),
        "{}",
        errs[0].1
    );
}

#[test]
fn bad_addresses() {
    let text = GOOD
        .replace("http = \"127.0.0.1:8080\"", "http = \"localhost\"")
        .replace("127.0.0.1:9001", "127.0.0.1:99999");
    let errs = errors(&text);
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert_eq!(errs[0].0, Some(line_of(&text, "http = \"localhost\"")));
    assert!(errs[0].1.contains("listen.http"));
    assert_eq!(errs[1].0, Some(line_of(&text, "99999")));
    assert!(errs[1].1.contains("upstream `127.0.0.1:99999` is not an address"));
}

#[test]
fn dangling_source_reference() {
    let text = format!("{GOOD}\n[pools.employees.sources.partners]\nkind = \"pool\"\npool = \"partners\"\n");
    let errs = errors(&text);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].0, Some(line_of(&text, "pool = \"partners\"")));
    assert!(errs[0].1.contains("no pool `partners` is defined"));
}

#[test]
fn every_error_is_reported_not_just_the_first() {
    let text = format!(
        "{}\n[pools.employees.apps.crm]\nhosts = [\"wiki.employees.localhost\", \"bad host\"]\nupstreams = []\ntimeout = \"soon\"\n\
         public_paths = [\"health\"]\n[pools.employees.sources.x]\nkind = \"saml\"\n",
        GOOD.replace("[listen]", "[proxy]\ntrusted_proxies = [\"10.0.0.0/33\"]\n[listen]")
    );
    let errs = errors(&text);
    let messages: Vec<&str> = errs.iter().map(|e| e.1.as_str()).collect();
    assert_eq!(errs.len(), 7, "{messages:#?}");
    for (needle, line_hint) in [
        ("10.0.0.0/33", "10.0.0.0/33"),
        ("duplicate host", "\"bad host\""),
        ("not a valid host", "\"bad host\""),
        ("upstreams", "[pools.employees.apps.crm]"),
        ("not a duration", "soon"),
        ("public path", "public_paths"),
        ("unknown kind", "saml"),
    ] {
        let e = errs
            .iter()
            .find(|e| e.1.contains(needle))
            .unwrap_or_else(|| panic!("no error about {needle}: {messages:#?}"));
        assert_eq!(e.0, Some(line_of(&text, line_hint)), "{needle}");
    }
    let lines: Vec<_> = errs.iter().map(|e| e.0).collect();
    assert!(lines.windows(2).all(|w| w[0] <= w[1]), "errors come in file order");
}

#[test]
fn version_is_required_and_checked() {
    let errs = errors(&GOOD.replace("version = 1", "version = 2"));
    assert!(errs[0].1.contains("unsupported version 2"));
    let errs = errors(&GOOD.replace("version = 1", ""));
    assert!(errs[0].1.contains("missing field `version`"), "{}", errs[0].1);
}

#[test]
fn identity_header_names_are_checked() {
    let text = format!(
        "{GOOD}[pools.employees.apps.wiki.headers]\nuser = \"Cookie\"\ngroups = \"X-Roles\"\nemail = \"x-roles\"\n"
    );
    let errs = errors(&text);
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(
        errs.iter()
            .any(|e| e.1.contains("`Cookie` cannot be an identity header"))
    );
    assert!(errs.iter().any(|e| e.1.contains("used for two claims")));
}

#[test]
fn the_readme_reference_config_is_valid() {
    let readme = include_str!("../../README.md");
    let start = readme.find("```toml\nversion = 1").expect("reference block") + "```toml\n".len();
    let block = &readme[start..start + readme[start..].find("```").expect("block end")];
    let c = Config::parse(block, Path::new("/etc/poolgate")).unwrap_or_else(|e| panic!("{e:#?}"));
    let wiki = &c.pools[0].apps[0];
    assert_eq!(wiki.upstreams.len(), 2);
    assert_eq!(wiki.health_check.http_path.as_deref(), Some("/healthz"));
    assert_eq!(c.pools[0].sources.len(), 2);
    assert_eq!(c.master_key, SecretSource::File("/etc/poolgate/data/master.key".into()));
}

#[test]
fn plan_limits_apply_to_the_file() {
    let free = GOOD.replace("plan = \"premium\"", "plan = \"free\"");
    let mut text = free.clone();
    for i in 1..=3 {
        text.push_str(&format!(
            "[pools.employees.apps.app{i}]\nhosts = [\"app{i}.localhost\"]\nupstreams = [\"127.0.0.1:9001\"]\n"
        ));
    }
    text.push_str(
        "[pools.employees.sources.other]\nkind = \"oidc\"\nissuer = \"https://idp.example\"\nclient_id = \"x\"\n",
    );
    let errs = errors(&text);
    assert_eq!(errs.len(), 2, "{errs:?}");
    // Apps are taken in id order: app1, app2, app3, wiki — the fourth is one too many.
    assert!(errs[0].1.contains("the free plan allows 3 apps"), "{}", errs[0].1);
    assert_eq!(errs[0].0, Some(line_of(&text, "[pools.employees.apps.wiki]")));
    assert!(errs[1].1.contains("does not include federation"), "{}", errs[1].1);
    assert_eq!(errs[1].0, Some(line_of(&text, "[pools.employees.sources.other]")));
}

#[test]
fn allowed_sources_must_exist_in_the_pool() {
    let text = format!(
        "{GOOD}allowed_sources = [\"local\", \"partners\", \"corp\"]\n[pools.employees.sources.corp]\nkind = \"oidc\"\nissuer = \"https://idp.example\"\nclient_id = \"x\"\n"
    );
    let errs = errors(&text);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].0, Some(line_of(&text, "allowed_sources")));
    assert!(errs[0].1.contains("allowed source `partners`"), "{}", errs[0].1);
}

#[test]
fn a_source_that_would_weaken_its_checks_is_refused_with_its_line() {
    let text = format!(
        "{}\n[pools.employees.sources.company]\nkind = \"oidc\"\nissuer = \"http://idp.example\"\n\
         client_id = \"gw\"\nalgorithms = [\"RS256\", \"HS256\", \"none\"]\nfirst_login = \"link_verified_email\"\n\
         [pools.employees.sources.company.authorize_params]\nnonce = \"fixed\"\nprompt = \"login\"\n",
        GOOD.replace("plan = \"premium\"", "plan = \"enterprise\"")
    );
    let errs = errors(&text);
    let messages: Vec<&str> = errs.iter().map(|e| e.1.as_str()).collect();
    for (needle, line_hint) in [
        ("must be an https:// URL", "issuer = \"http://idp.example\""),
        ("algorithm `HS256` is not accepted", "algorithms"),
        ("algorithm `none` is not accepted", "algorithms"),
        ("`link_verified_email` needs `trust_email = true`", "first_login"),
        ("`nonce` is set by the gateway", "nonce = \"fixed\""),
    ] {
        let e = errs
            .iter()
            .find(|e| e.1.contains(needle))
            .unwrap_or_else(|| panic!("no error about {needle}: {messages:#?}"));
        assert_eq!(e.0, Some(line_of(&text, line_hint)), "{needle}");
    }
    assert!(!messages.iter().any(|m| m.contains("prompt")), "{messages:#?}");
}

#[test]
fn a_pool_source_takes_no_issuer_or_secret_and_an_oidc_source_has_safe_defaults() {
    let text = format!(
        "{}\n[pools.suppliers]\nname = \"Suppliers\"\nportal = \"login.suppliers.localhost\"\n\
         [pools.employees.sources.suppliers]\nkind = \"pool\"\npool = \"suppliers\"\nclient_secret_env = \"X\"\n",
        GOOD.replace("plan = \"premium\"", "plan = \"enterprise\"")
    );
    let errs = errors(&text);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].0, Some(line_of(&text, "client_secret_env")), "{errs:?}");
    assert!(errs[0].1.contains("made by the gateway"), "{}", errs[0].1);

    let text = format!(
        "{}\n[pools.employees.sources.company]\nkind = \"oidc\"\nissuer = \"http://idp.localhost:8443/\"\nclient_id = \"gw\"\n",
        GOOD.replace("plan = \"premium\"", "plan = \"enterprise\"")
    );
    let c = super::lower::lower(&text, std::path::Path::new("/etc/poolgate")).unwrap();
    let s = &c.pools[0].sources[0];
    assert_eq!(s.algorithms, ["RS256", "ES256"]);
    assert_eq!(s.scopes, ["openid", "profile", "email"]);
    assert_eq!(s.first_login, super::FirstLogin::Create);
    assert!(!s.trust_email);
    match &s.kind {
        super::SourceKind::Oidc {
            issuer, client_secret, ..
        } => {
            assert_eq!(issuer, "http://idp.localhost:8443");
            assert!(client_secret.is_none());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_email_domain_belongs_to_one_source_of_a_pool() {
    let text = format!(
        "{}\n[pools.employees.sources.a]\nkind = \"oidc\"\nissuer = \"https://a.example\"\nclient_id = \"gw\"\n\
         domains = [\"corp.example\", \"*.corp.example\"]\n\
         [pools.employees.sources.b]\nkind = \"oidc\"\nissuer = \"https://b.example\"\nclient_id = \"gw\"\n\
         domains = [\"CORP.example\", \"not a domain\"]\n",
        GOOD.replace("plan = \"premium\"", "plan = \"enterprise\"")
    );
    let errs = errors(&text);
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(
        errs.iter()
            .any(|e| e.1.contains("domain `corp.example` is already source `a`'s")),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.1.contains("`not a domain` is not an email domain")),
        "{errs:?}"
    );
    assert_eq!(errs[0].0, errs[1].0);
    assert_eq!(errs[0].0, Some(line_of(&text, "\"CORP.example\"")));
}

#[test]
fn the_console_pool_must_exist_and_ask_for_a_second_factor() {
    let with = |admin: &str, extra: &str| format!("{GOOD}{extra}\n[admin]\n{admin}\n");
    let text = with("console_pool = \"partners\"", "");
    let errs = errors(&text);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].0, Some(line_of(&text, "console_pool")));
    assert!(errs[0].1.contains("there is no pool `partners`"), "{errs:?}");

    let text =
        with("console_pool = \"employees\"", "").replace("plan = \"premium\"\n", "plan = \"premium\"\nmfa = \"off\"\n");
    let errs = errors(&text);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].0, Some(line_of(&text, "console_pool")));
    assert!(errs[0].1.contains("requires a second factor"), "{errs:?}");

    let text = with("console_group = \"ops\"", "");
    assert!(errors(&text)[0].1.contains("set `console_pool` too"));

    // The console registers its own client there: the pool cannot have one of that name.
    let taken = "[pools.employees.clients.poolgate-console]\nredirect_uris = [\"http://rp.localhost/cb\"]\n";
    let text = with("console_pool = \"employees\"", taken);
    let errs = errors(&text);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].0, Some(line_of(&text, "clients.poolgate-console")));
    assert!(errs[0].1.contains("the console's own client"), "{errs:?}");
    assert!(
        Config::parse(&with("", taken), Path::new("/etc/poolgate")).is_ok(),
        "only the console pool"
    );

    let good = Config::parse(&with("console_pool = \"employees\"", ""), Path::new("/etc/poolgate")).unwrap();
    let console = good.admin.console.unwrap();
    assert_eq!(
        (console.pool.as_str(), console.group.as_str()),
        ("employees", "console_admins")
    );
}

#[test]
fn objects_know_the_line_that_declares_them_and_run_time_ones_know_they_are_not_in_the_file() {
    let dir = std::env::temp_dir().join(format!("poolgate-origin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("poolgate.toml");
    std::fs::write(&path, GOOD).unwrap();
    let extra = |pool: &str, is_pool: bool, text: &str| Extra {
        label: format!("run-time object of {pool}"),
        pool: pool.into(),
        is_pool,
        text: text.into(),
    };
    let extras = [
        extra(
            "employees",
            false,
            "[pools.employees.apps.crm]\nhosts = [\"crm.employees.localhost\"]\nupstreams = [\"127.0.0.1:9002\"]\n",
        ),
        extra(
            "partners",
            true,
            "[pools.partners]\nname = \"Partners\"\nportal = \"login.partners.localhost\"\n",
        ),
    ];
    let c = Config::load_with(&path, &extras).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    let employees = &c.pools.iter().find(|p| p.id.as_str() == "employees").unwrap();
    let line = |needle| Origin::File {
        line: line_of(GOOD, needle),
    };
    assert_eq!(employees.origin, line("[pools.employees]"));
    let app = |id: &str| employees.apps.iter().find(|a| a.id.as_str() == id).unwrap().origin;
    assert_eq!(app("wiki"), line("[pools.employees.apps.wiki]"));
    assert_eq!(app("crm"), Origin::Runtime);
    assert!(!app("crm").managed() && app("wiki").managed());
    let partners = c.pools.iter().find(|p| p.id.as_str() == "partners").unwrap();
    assert_eq!(partners.origin, Origin::Runtime);
}
