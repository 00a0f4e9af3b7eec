//! Federation, as a supplier's browser meets it: the employees pool's ERP app admits the
//! suppliers pool's people through a `kind = "pool"` source, over real HTTP to the
//! suppliers portal of the same gateway. And the attacks on that path: a replayed state,
//! a state sent to another source's callback, a code of one issuer at another's callback.

use reqwest::Method;
use reqwest::header::{ACCEPT, COOKIE, LOCATION, ORIGIN};
use serde_json::Value;

use crate::browser::{Browser, Page, html_unescape};
use crate::signin::{add_user, api_get};
use crate::support::*;

const PASSWORD: &str = "correct horse battery staple";

/// employees (ERP open to suppliers and partners, wiki to its own people only);
/// suppliers and partners, each with their own people.
fn pools(up: &Whoami, partners_first_login: &str) -> String {
    format!(
        r##"
[pools.employees]
name = "Employees"
portal = "login.employees.localhost"
plan = "enterprise"

[pools.employees.sources.suppliers]
kind = "pool"
name = "Suppliers"
pool = "suppliers"
domains = ["suppliers.example", "*.suppliers.example"]

[pools.employees.sources.partners]
kind = "pool"
name = "Partners"
pool = "partners"
first_login = "{partners_first_login}"
domains = ["eu.suppliers.example"]

[pools.employees.apps.erp]
hosts = ["erp.employees.localhost"]
upstreams = ["{up}"]
allowed_sources = ["local", "suppliers", "partners"]

[pools.employees.apps.wiki]
hosts = ["wiki.employees.localhost"]
upstreams = ["{up}"]
allowed_sources = ["local"]

[pools.suppliers]
name = "Suppliers"
portal = "login.suppliers.localhost"
plan = "enterprise"

[pools.partners]
name = "Partners"
portal = "login.partners.localhost"
plan = "enterprise"
"##,
        up = up.addr
    )
}

fn erp(gw: &Gateway, path: &str) -> String {
    gw.url("erp.employees.localhost", path)
}

/// The "Sign in with <name>" link of a login page.
fn source_link(page: &Page, name: &str) -> String {
    let body = html_unescape(&page.body);
    let label = format!("Sign in with {name}</a>");
    let at = body
        .find(&label)
        .unwrap_or_else(|| panic!("no {name} button on:\n{}", page.body));
    let href = body[..at].rfind("href=\"").unwrap() + 6;
    let end = href + body[href..].find('"').unwrap();
    url::Url::parse(&page.url)
        .unwrap()
        .join(&body[href..end])
        .unwrap()
        .to_string()
}

/// Opens the ERP, presses "Sign in with Suppliers", signs in there; where it ends.
async fn through_suppliers(gw: &Gateway, b: &Browser, username: &str) -> Page {
    let login = b.open(&erp(gw, "/orders?open=1")).await;
    assert!(login.is_login_page(), "{}\n{}", login.body, gw.log());
    let at_suppliers = b.open(&source_link(&login, "Suppliers")).await;
    assert!(
        at_suppliers.url.starts_with("http://login.suppliers.localhost:") && at_suppliers.is_login_page(),
        "{} {}",
        at_suppliers.url,
        at_suppliers.body
    );
    b.submit(
        &at_suppliers,
        "/login",
        &[("username", username), ("password", PASSWORD)],
    )
    .await
}

fn items(v: &Value) -> Vec<Value> {
    v["items"].as_array().or(v.as_array()).cloned().unwrap_or_default()
}

#[tokio::test]
async fn a_supplier_signs_in_to_the_employees_erp_through_pool_federation() {
    let up = Whoami::start().await;
    let gw = Gateway::start(&pools(&up, "deny")).await;
    let sam_at_suppliers = add_user(&gw, "suppliers", "sam", PASSWORD, &[]).await;

    // First sign-in: the login page's button, the suppliers portal, back to the ERP page.
    let b = Browser::new(&gw);
    let page = through_suppliers(&gw, &b, "sam").await;
    assert_eq!(page.status, 200, "{:?}\n{}", page.hops, page.body);
    assert!(page.url.starts_with(&erp(&gw, "/orders?open=1")), "{}", page.url);
    assert!(
        page.hops.iter().any(|h| h.contains("/federation/suppliers/callback?")),
        "{:?}",
        page.hops
    );
    let echo = b.fetch(&erp(&gw, "/orders?open=1")).await.json();
    assert_eq!(seen(&echo, "x-poolgate-username"), ["sam"]);
    assert_eq!(seen(&echo, "x-poolgate-source"), ["suppliers"]);
    assert_eq!(seen(&echo, "x-poolgate-pool"), ["employees"]);
    // The employees pool's own record: its own id, no password, linked to the supplier.
    let employees_sam = seen(&echo, "x-poolgate-user")[0].clone();
    assert_ne!(employees_sam, sam_at_suppliers);
    let users = items(&api_get(&gw, "/pools/employees/users").await);
    assert_eq!(users.len(), 1, "{users:?}");
    assert_eq!(users[0]["id"], employees_sam.as_str());
    assert_eq!(users[0]["has_password"], false);
    let links = items(&api_get(&gw, "/pools/employees/links").await);
    assert_eq!(links.len(), 1, "{links:?}");
    assert_eq!(links[0]["source"], "suppliers");
    assert_eq!(links[0]["subject"], sam_at_suppliers.as_str());
    assert_eq!(links[0]["user_id"], employees_sam.as_str());
    // Nothing of it in the suppliers pool but sam's own session.
    assert_eq!(items(&api_get(&gw, "/pools/suppliers/users").await).len(), 1);

    // Signed in to the employees pool itself (its SSO session), as sam.
    let home = b.open(&gw.url("login.employees.localhost", "/")).await;
    assert!(home.body.contains("signed in to Employees as sam"), "{}", home.body);

    // The wiki takes employees' own sign-ins only: the suppliers session is not enough.
    let wiki = b.open(&gw.url("wiki.employees.localhost", "/")).await;
    assert!(wiki.is_login_page(), "{}", wiki.body);
    assert!(!wiki.body.contains("Sign in with Suppliers"), "{}", wiki.body);

    // Second sign-in, another browser: the same employees user, nobody new.
    let b2 = Browser::new(&gw);
    let again = through_suppliers(&gw, &b2, "sam").await;
    assert_eq!(again.status, 200, "{}", again.body);
    let echo = b2.fetch(&erp(&gw, "/")).await.json();
    assert_eq!(seen(&echo, "x-poolgate-user"), [employees_sam.as_str()]);
    assert_eq!(items(&api_get(&gw, "/pools/employees/users").await).len(), 1);

    // The audit log says what happened and why.
    let audit = api_get(&gw, "/pools/employees/audit?limit=100").await;
    let actions: Vec<String> = items(&audit)
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["action"].as_str().unwrap(),
                e["detail"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert!(
        actions
            .iter()
            .any(|a| a.starts_with("user.create") && a.contains("decision=create")),
        "{actions:?}"
    );
    assert!(
        actions
            .iter()
            .any(|a| a.starts_with("signin.success") && a.contains("source=suppliers")),
        "{actions:?}"
    );
}

#[tokio::test]
async fn first_login_policies_deny_and_a_collision_challenges_until_the_local_account_is_proven() {
    let up = Whoami::start().await;
    let gw = Gateway::start(&pools(&up, "deny")).await;
    add_user(&gw, "partners", "pat", PASSWORD, &[]).await;
    add_user(&gw, "suppliers", "sam", PASSWORD, &[]).await;
    // An employee already called sam (sam@example.com): never merged by name or email.
    const EMPLOYEE_PASSWORD: &str = "an employee's own password";
    let employee_sam = add_user(&gw, "employees", "sam", EMPLOYEE_PASSWORD, &[]).await;

    // `deny`: partners without a link are turned away, with a page naming the source.
    let b = Browser::new(&gw);
    let login = b.open(&erp(&gw, "/")).await;
    let at_partners = b.open(&source_link(&login, "Partners")).await;
    let denied = b
        .submit(&at_partners, "/login", &[("username", "pat"), ("password", PASSWORD)])
        .await;
    assert_eq!(denied.status, 403, "{}", denied.body);
    assert!(
        denied.body.contains("Signing in with Partners did not work"),
        "{}",
        denied.body
    );

    // `create` meeting a taken username: a challenge naming whose sign-in is being linked.
    let b = Browser::new(&gw);
    let challenge = through_suppliers(&gw, &b, "sam").await;
    assert_eq!(challenge.status, 200, "{}", challenge.body);
    assert!(challenge.body.contains("Link your account"), "{}", challenge.body);
    assert!(challenge.body.contains("already exists"), "{}", challenge.body);
    assert!(challenge.body.contains("sam@example.com"), "{}", challenge.body);
    // Abandoned there, it wrote nothing.
    let users = items(&api_get(&gw, "/pools/employees/users").await);
    assert_eq!(users.len(), 1, "{users:?}");
    assert!(items(&api_get(&gw, "/pools/employees/links").await).is_empty());

    // A wrong proof (the supplier's password, not the employee's): refused, no link.
    let wrong = b
        .submit(
            &challenge,
            "/federation/link",
            &[("username", "sam"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    assert!(items(&api_get(&gw, "/pools/employees/links").await).is_empty());

    // The account's own password: linked, and on to the ERP as that employee.
    let portal = gw.url("login.employees.localhost", "/");
    let pending = b.cookie(&portal, "poolgate-login").expect("the pending link");
    let linked = b
        .submit(
            &wrong,
            "/federation/link",
            &[("username", "sam"), ("password", EMPLOYEE_PASSWORD)],
        )
        .await;
    assert_eq!(linked.status, 200, "{:?} {}", linked.hops, linked.body);
    let echo = b.fetch(&erp(&gw, "/")).await.json();
    assert_eq!(seen(&echo, "x-poolgate-user"), [employee_sam.as_str()]);
    assert_eq!(seen(&echo, "x-poolgate-source"), ["suppliers"]);
    let links = items(&api_get(&gw, "/pools/employees/links").await);
    assert_eq!(links.len(), 1, "{links:?}");
    assert_eq!(links[0]["user_id"], employee_sam.as_str());

    // The same pending link proven again (its cookie put back): spent, nothing more.
    b.jar
        .add_cookie_str(&format!("poolgate-login={pending}; Path=/"), &portal.parse().unwrap());
    let again = b
        .submit(
            &wrong,
            "/federation/link",
            &[("username", "sam"), ("password", EMPLOYEE_PASSWORD)],
        )
        .await;
    assert_eq!(again.status, 400, "{}", again.body);

    // From now on the link decides: straight in, as the employee.
    let b = Browser::new(&gw);
    let page = through_suppliers(&gw, &b, "sam").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(
        seen(&b.fetch(&erp(&gw, "/")).await.json(), "x-poolgate-user"),
        [employee_sam.as_str()]
    );
    assert_eq!(items(&api_get(&gw, "/pools/employees/users").await).len(), 1);

    let audit = api_get(&gw, "/pools/employees/audit?limit=100").await;
    let details: Vec<String> = items(&audit)
        .iter()
        .map(|e| {
            format!(
                "{} {} {}",
                e["action"].as_str().unwrap(),
                e["outcome"].as_str().unwrap(),
                e["detail"].as_str().unwrap_or("")
            )
        })
        .collect();
    for needle in [
        "federation.first_login denied",
        "decision=collision_challenge",
        "federation.challenge denied",
        "link.create ok",
    ] {
        assert!(details.iter().any(|d| d.contains(needle)), "{needle}: {details:#?}");
    }
}

#[tokio::test]
async fn concurrent_first_logins_of_one_supplier_make_one_user() {
    let up = Whoami::start().await;
    let gw = Gateway::start(&pools(&up, "deny")).await;
    add_user(&gw, "suppliers", "sam", PASSWORD, &[]).await;
    // Each browser signs in at the suppliers portal first; then all come to the ERP at once.
    let mut browsers = Vec::new();
    for _ in 0..6 {
        let b = Browser::new(&gw);
        let login = b.open(&gw.url("login.suppliers.localhost", "/")).await;
        let home = b
            .submit(&login, "/login", &[("username", "sam"), ("password", PASSWORD)])
            .await;
        assert_eq!(home.status, 200, "{}", home.body);
        browsers.push(b);
    }
    let runs = browsers.iter().map(|b| {
        let gw = &gw;
        async move {
            let login = b.open(&erp(gw, "/")).await;
            b.open(&source_link(&login, "Suppliers")).await
        }
    });
    let pages = futures_util::future::join_all(runs).await;
    let mut ids = std::collections::BTreeSet::new();
    for (p, b) in pages.iter().zip(&browsers) {
        assert_eq!(p.status, 200, "{:?} {}", p.hops, p.body);
        let echo = b.fetch(&erp(&gw, "/")).await.json();
        ids.insert(seen(&echo, "x-poolgate-user")[0].clone());
    }
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(items(&api_get(&gw, "/pools/employees/users").await).len(), 1);
    assert_eq!(items(&api_get(&gw, "/pools/employees/links").await).len(), 1);
}

/// Starts a sign-in through `source` at the ERP without following it: the attempt cookie
/// this browser now holds, and the issuer's authorization URL.
async fn start(gw: &Gateway, b: &Browser, source: &str) -> (String, url::Url) {
    let login = b.open(&erp(gw, "/")).await;
    let resp = b
        .client
        .get(source_link(&login, source))
        .header(ACCEPT, "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    let to = url::Url::parse(resp.headers()[LOCATION].to_str().unwrap()).unwrap();
    let cookie = b
        .cookie(&gw.url("login.employees.localhost", "/"), "poolgate-login")
        .expect("an attempt cookie");
    (cookie, to)
}

/// Signs in at the suppliers portal and follows redirects up to (not into) the callback
/// of the employees pool: that URL, with the code and the issuer's `state` and `iss`.
async fn code_from_suppliers(b: &Browser, authorize: &url::Url) -> url::Url {
    let mut resp = b
        .client
        .get(authorize.as_str())
        .header(ACCEPT, "text/html")
        .send()
        .await
        .unwrap();
    if resp.status() == 200 {
        // No session at suppliers yet: its login page.
        let base = resp.url().clone();
        let body = resp.text().await.unwrap();
        let login = Page {
            status: 200,
            url: base.to_string(),
            body,
            hops: vec![],
            headers: Default::default(),
        };
        resp = b
            .client
            .post(base.join("/login").unwrap())
            .header(ACCEPT, "text/html")
            .header(ORIGIN, base.origin().ascii_serialization())
            .form(&[
                ("csrf", login.input("csrf").unwrap()),
                ("request", login.input("request").unwrap()),
                ("username", "sam".into()),
                ("password", PASSWORD.into()),
            ])
            .send()
            .await
            .unwrap();
    }
    loop {
        assert!(resp.status().is_redirection(), "{}", resp.status());
        let next = resp.url().join(resp.headers()[LOCATION].to_str().unwrap()).unwrap();
        if next.path().starts_with("/federation/") {
            return next;
        }
        resp = b.client.get(next).send().await.unwrap();
    }
}

async fn callback_with(b: &Browser, url: &url::Url, cookie: &str) -> (u16, String) {
    let resp = b
        .client
        .get(url.as_str())
        .header(COOKIE, format!("poolgate-login={cookie}"))
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

#[tokio::test]
async fn replayed_states_other_sources_callbacks_and_mixed_up_issuers_are_refused() {
    let up = Whoami::start().await;
    let gw = Gateway::start(&pools(&up, "create")).await;
    add_user(&gw, "suppliers", "sam", PASSWORD, &[]).await;
    let b = Browser::new(&gw);

    // A genuine round trip, then the very same callback again with the attempt cookie the
    // browser held: refused (here the suppliers OP already refuses the code again; the
    // test provider below, which does not, shows the state spent on its own).
    let (cookie, authorize) = start(&gw, &b, "Suppliers").await;
    let callback = code_from_suppliers(&b, &authorize).await;
    assert_eq!(callback.path(), "/federation/suppliers/callback");
    let (status, body) = callback_with(&b, &callback, &cookie).await;
    assert_eq!(status, 303, "{body}");
    let (status, body) = callback_with(&b, &callback, &cookie).await;
    assert_eq!(status, 400, "{body}");

    // The state of a suppliers attempt, sent to the partners callback: refused. (Each
    // attempt from a browser without a session here.)
    let b = Browser::new(&gw);
    let (cookie, authorize) = start(&gw, &b, "Suppliers").await;
    let callback = code_from_suppliers(&b, &authorize).await;
    let mut elsewhere = callback.clone();
    elsewhere.set_path("/federation/partners/callback");
    let (status, body) = callback_with(&b, &elsewhere, &cookie).await;
    assert_eq!(status, 400, "{body}");
    // …and the attempt still belongs to suppliers, where it completes.
    let (status, _) = callback_with(&b, &callback, &cookie).await;
    assert_eq!(status, 303);

    // Mix-up: the person started at partners; a code the suppliers issuer gave is brought
    // to the partners callback with the partners attempt's state.
    let b = Browser::new(&gw);
    let (sup_cookie, sup_authorize) = start(&gw, &b, "Suppliers").await;
    let from_suppliers = code_from_suppliers(&b, &sup_authorize).await;
    let code: String = from_suppliers
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let _ = sup_cookie;
    for with_iss in [true, false] {
        let b = Browser::new(&gw);
        let (cookie, partners_authorize) = start(&gw, &b, "Partners").await;
        let state: String = partners_authorize
            .query_pairs()
            .find(|(k, _)| k == "state")
            .unwrap()
            .1
            .into_owned();
        let mut mixed = url::Url::parse(&gw.url("login.employees.localhost", "/federation/partners/callback")).unwrap();
        mixed
            .query_pairs_mut()
            .append_pair("code", &code)
            .append_pair("state", &state);
        if with_iss {
            let iss: String = from_suppliers
                .query_pairs()
                .find(|(k, _)| k == "iss")
                .unwrap()
                .1
                .into_owned();
            mixed.query_pairs_mut().append_pair("iss", &iss);
        }
        let (status, body) = callback_with(&b, &mixed, &cookie).await;
        assert_eq!(status, 400, "iss sent: {with_iss}: {body}");
        assert!(body.contains("Signing in with Partners did not work"), "{body}");
    }
    // Only the two genuine sign-ins made anything: one user, one link.
    assert_eq!(items(&api_get(&gw, "/pools/employees/users").await).len(), 1);
    assert_eq!(items(&api_get(&gw, "/pools/employees/links").await).len(), 1);
    assert_eq!(up.hits(), 0, "no callback here went on to the app");
}

/// employees with two external providers: one under the test's control, one down.
fn with_company_idp(up: &Whoami, issuer: &str) -> String {
    format!(
        r##"
[pools.employees]
name = "Employees"
portal = "login.employees.localhost"
plan = "enterprise"

[pools.employees.sources.company]
kind = "oidc"
name = "Company IdP"
issuer = "{issuer}"
client_id = "poolgate-employees"
algorithms = ["ES256"]

[pools.employees.sources.down]
kind = "oidc"
name = "Down IdP"
issuer = "http://127.0.0.1:{closed}"
client_id = "poolgate-employees"

[pools.employees.apps.erp]
hosts = ["erp.employees.localhost"]
upstreams = ["{up}"]
"##,
        up = up.addr,
        closed = free_port(),
    )
}

#[tokio::test]
async fn forged_upstream_id_tokens_are_refused_and_an_issuer_that_is_down_gets_a_page() {
    use crate::rogue_issuer::{Forge, RogueIssuer};
    let up = Whoami::start().await;
    let idp = RogueIssuer::start().await;
    let gw = Gateway::start(&with_company_idp(&up, &idp.issuer)).await;

    for forge in [
        Forge::WrongAudience,
        Forge::WrongIssuer,
        Forge::WrongNonce,
        Forge::ForeignKey,
        Forge::AlgNone,
        Forge::HmacWithPublicKey,
        Forge::Expired,
    ] {
        idp.forge(forge);
        let b = Browser::new(&gw);
        let login = b.open(&erp(&gw, "/")).await;
        let page = b.open(&source_link(&login, "Company IdP")).await;
        assert_eq!(page.status, 400, "{forge:?}: {:?}\n{}", page.hops, page.body);
        assert!(
            page.body.contains("Signing in with Company IdP did not work"),
            "{forge:?}: {}",
            page.body
        );
        assert!(
            page.hops.iter().any(|h| h.contains("/federation/company/callback?")),
            "{forge:?}: {:?}",
            page.hops
        );
        assert!(b.fetch(&erp(&gw, "/")).await.status != 200, "{forge:?}: signed in");
    }
    assert_eq!(up.hits(), 0);
    assert!(items(&api_get(&gw, "/pools/employees/users").await).is_empty());

    // The same provider, honest: the harness itself lets a good token through.
    idp.forge(Forge::Honest);
    let b = Browser::new(&gw);
    let login = b.open(&erp(&gw, "/")).await;
    let page = b.open(&source_link(&login, "Company IdP")).await;
    assert_eq!(page.status, 200, "{:?}\n{}", page.hops, page.body);
    let echo = b.fetch(&erp(&gw, "/")).await.json();
    assert_eq!(seen(&echo, "x-poolgate-username"), ["rogue"]);
    assert_eq!(seen(&echo, "x-poolgate-source"), ["company"]);

    // A provider that does not answer: a page naming it and a way back, never a 500.
    let b = Browser::new(&gw);
    let login = b.open(&erp(&gw, "/")).await;
    let page = b.open(&source_link(&login, "Down IdP")).await;
    assert_eq!(page.status, 502, "{}", page.body);
    assert!(
        page.body.contains("Signing in with Down IdP did not work"),
        "{}",
        page.body
    );
    assert!(page.body.contains("Back to sign-in"), "{}", page.body);
}

async fn post_logout_token(gw: &Gateway, source: &str, token: &str) -> (u16, String) {
    let resp = gw
        .client()
        .post(gw.url(
            "login.employees.localhost",
            &format!("/federation/{source}/backchannel-logout"),
        ))
        .form(&[("logout_token", token)])
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

#[tokio::test]
async fn the_sources_back_channel_logout_ends_the_session_and_forged_ones_end_nothing() {
    use crate::rogue_issuer::{Forge, RogueIssuer};
    let up = Whoami::start().await;
    let idp = RogueIssuer::start().await;
    let gw = Gateway::start(&with_company_idp(&up, &idp.issuer)).await;
    let b = Browser::new(&gw);
    let login = b.open(&erp(&gw, "/")).await;
    let page = b.open(&source_link(&login, "Company IdP")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(b.fetch(&erp(&gw, "/")).await.status, 200);

    // Tokens that must not end anything: each refused, the session still good.
    for (forge, nonce, no_event) in [
        (Forge::WrongAudience, false, false),
        (Forge::WrongIssuer, false, false),
        (Forge::ForeignKey, false, false),
        (Forge::AlgNone, false, false),
        (Forge::HmacWithPublicKey, false, false),
        (Forge::Expired, false, false),
        (Forge::Honest, true, false),
        (Forge::Honest, false, true),
    ] {
        idp.forge(forge);
        let token = idp.logout_token("poolgate-employees", nonce, no_event);
        let (status, body) = post_logout_token(&gw, "company", &token).await;
        assert_eq!(status, 400, "{forge:?} nonce={nonce} no_event={no_event}: {body}");
        assert_eq!(
            b.fetch(&erp(&gw, "/")).await.status,
            200,
            "{forge:?}: the session ended"
        );
    }
    // A genuine one sent to another source's endpoint is that source's business: refused.
    idp.forge(Forge::Honest);
    let token = idp.logout_token("poolgate-employees", false, false);
    let (status, _) = post_logout_token(&gw, "down", &token).await;
    assert_ne!(status, 200);
    assert_eq!(b.fetch(&erp(&gw, "/")).await.status, 200);

    // The genuine token at the right place ends the session at once — with the provider
    // down by now, on the keys cached at sign-in; a replay is refused.
    idp.go_down();
    let (status, body) = post_logout_token(&gw, "company", &token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(b.fetch(&erp(&gw, "/")).await.status, 401);
    let (status, body) = post_logout_token(&gw, "company", &token).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("already used"), "{body}");
}

#[tokio::test]
async fn signing_out_of_suppliers_ends_the_suppliers_employees_session() {
    let up = Whoami::start().await;
    let gw = Gateway::start(&pools(&up, "deny")).await;
    add_user(&gw, "suppliers", "sam", PASSWORD, &[]).await;
    let b = Browser::new(&gw);
    let page = through_suppliers(&gw, &b, "sam").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(b.fetch(&erp(&gw, "/")).await.status, 200);

    // Sam signs out at the suppliers portal; the suppliers OP tells the employees pool
    // (back-channel logout), which ends the session that came from it.
    let out = b.sign_out(&gw.url("login.suppliers.localhost", "/logout")).await;
    assert_eq!(out.status, 200, "{}", out.body);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let status = b.fetch(&erp(&gw, "/")).await.status;
        if status == 401 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the employees session outlived the sign-out ({status})"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let audit = api_get(&gw, "/pools/employees/audit?limit=100").await;
    assert!(
        items(&audit)
            .iter()
            .any(|e| e["action"] == "federation.logout" && e["outcome"] == "ok"),
        "{audit}"
    );
}

/// employees with the test's provider as `company`, with this first-login policy.
fn company_only(up: &Whoami, issuer: &str, first_login: &str) -> String {
    format!(
        r##"
[pools.employees]
name = "Employees"
portal = "login.employees.localhost"
plan = "enterprise"

[pools.employees.sources.company]
kind = "oidc"
name = "Company IdP"
issuer = "{issuer}"
client_id = "poolgate-employees"
first_login = "{first_login}"
trust_email = true

[pools.employees.apps.erp]
hosts = ["erp.employees.localhost"]
upstreams = ["{up}"]
"##,
        up = up.addr,
    )
}

/// Signs in at the ERP through the test's provider; the page it ends on, and who the ERP
/// then sees (`None`: not signed in).
async fn through_company(gw: &Gateway) -> (Page, Option<String>) {
    let b = Browser::new(gw);
    let login = b.open(&erp(gw, "/")).await;
    let page = b.open(&source_link(&login, "Company IdP")).await;
    let seen_as = b.fetch(&erp(gw, "/")).await;
    let who = (seen_as.status == 200).then(|| seen(&seen_as.json(), "x-poolgate-user")[0].clone());
    (page, who)
}

/// An employee whose address the pool has verified; their id.
async fn employee_with_verified_email(gw: &Gateway, username: &str, email: &str) -> String {
    let body = serde_json::json!({"username": username, "email": email, "email_verified": true, "password": PASSWORD});
    let resp = gw
        .api(Method::POST, "/pools/employees/users")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    resp.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn verified_email_links_once_by_boolean_only_and_the_link_outlives_an_email_change() {
    use crate::rogue_issuer::RogueIssuer;
    use serde_json::json;
    let up = Whoami::start().await;
    let idp = RogueIssuer::start().await;
    let gw = Gateway::start(&company_only(&up, &idp.issuer, "link_verified_email")).await;
    let erin = employee_with_verified_email(&gw, "erin", "erin@corp.example").await;

    // `email_verified: "true"`, a string, is not the provider vouching: no link, no entry.
    idp.person("corp-1", "erin@corp.example", json!("true"));
    let (page, who) = through_company(&gw).await;
    assert_eq!(who, None, "{}", page.body);
    // Nor is a missing one.
    idp.person("corp-1", "erin@corp.example", Value::Null);
    let (page, who) = through_company(&gw).await;
    assert_eq!(who, None, "{}", page.body);
    assert!(items(&api_get(&gw, "/pools/employees/links").await).is_empty());

    // The boolean `true`: linked to the one user with that verified address.
    idp.person("corp-1", "erin@corp.example", json!(true));
    let (page, who) = through_company(&gw).await;
    assert_eq!(who.as_deref(), Some(erin.as_str()), "{}", page.body);

    // Erin's address changes upstream: the link still decides who she is.
    idp.person("corp-1", "erin.new@corp.example", json!(true));
    let (_, who) = through_company(&gw).await;
    assert_eq!(who.as_deref(), Some(erin.as_str()));

    // Someone new upstream is handed erin's old address, verified: no takeover.
    idp.person("corp-2", "erin@corp.example", json!(true));
    let (page, who) = through_company(&gw).await;
    assert_eq!(who, None, "{}", page.body);
    assert_eq!(page.status, 403, "{}", page.body);
    assert_eq!(items(&api_get(&gw, "/pools/employees/links").await).len(), 1);
    assert_eq!(items(&api_get(&gw, "/pools/employees/users").await).len(), 1);
}

#[tokio::test]
async fn a_new_upstream_subject_with_a_linked_users_email_is_challenged_not_merged() {
    use crate::rogue_issuer::RogueIssuer;
    use serde_json::json;
    let up = Whoami::start().await;
    let idp = RogueIssuer::start().await;
    let gw = Gateway::start(&company_only(&up, &idp.issuer, "create")).await;
    idp.person("corp-1", "dana@corp.example", json!(true));
    let (_, first) = through_company(&gw).await;
    let first = first.expect("the first sign-in makes a user");
    // Another upstream person with the same address (and name): a challenge, not dana.
    idp.person("corp-2", "dana@corp.example", json!(true));
    let (page, who) = through_company(&gw).await;
    assert_eq!(who, None);
    assert!(page.body.contains("Link your account"), "{}", page.body);
    assert_eq!(items(&api_get(&gw, "/pools/employees/users").await).len(), 1);
    // Dana herself still comes in as herself.
    idp.person("corp-1", "dana@corp.example", json!(true));
    assert_eq!(through_company(&gw).await.1, Some(first));
}

#[tokio::test]
async fn home_realm_discovery_and_idp_hint_send_people_to_their_source() {
    let up = Whoami::start().await;
    let gw = Gateway::start(&pools(&up, "create")).await;
    add_user(&gw, "suppliers", "sam", PASSWORD, &[]).await;
    let b = Browser::new(&gw);
    let login = b.open(&erp(&gw, "/orders")).await;
    assert!(login.body.contains("the email is enough"), "{}", login.body);

    // The address is enough: its domain's source, case-insensitively, exact before wildcard.
    for (typed, portal) in [
        ("sam@suppliers.example", "login.suppliers.localhost"),
        ("SAM@Suppliers.Example", "login.suppliers.localhost"),
        ("sam@uk.suppliers.example", "login.suppliers.localhost"),
        ("sam@eu.suppliers.example", "login.partners.localhost"),
    ] {
        let there = b
            .submit(&login, "/login", &[("username", typed), ("password", "")])
            .await;
        assert!(
            there.url.starts_with(&format!("http://{portal}:")) && there.is_login_page(),
            "{typed}: {} {}",
            there.url,
            there.status
        );
    }
    // …and on through it, back to the page asked for.
    let there = b
        .submit(
            &login,
            "/login",
            &[("username", "sam@suppliers.example"), ("password", "")],
        )
        .await;
    let back = b
        .submit(&there, "/login", &[("username", "sam"), ("password", PASSWORD)])
        .await;
    assert_eq!(back.status, 200, "{}", back.body);
    assert!(back.url.starts_with(&erp(&gw, "/orders")), "{}", back.url);

    // Another domain is a local sign-in, answered as any wrong one: nothing told.
    let b = Browser::new(&gw);
    let login = b.open(&erp(&gw, "/")).await;
    let unknown = b
        .submit(
            &login,
            "/login",
            &[("username", "nobody@elsewhere.example"), ("password", "x")],
        )
        .await;
    let wrong = b
        .submit(&login, "/login", &[("username", "sam"), ("password", "x")])
        .await;
    assert_eq!((unknown.status, wrong.status), (401, 401));

    // `kc_idp_hint` (or `idp_hint`) on the authorization request goes to the source at once;
    // one the app does not accept, or that does not exist, shows the login page.
    let authorize = login
        .hops
        .iter()
        .find(|h| h.contains("/oidc/authorize?"))
        .expect("the authorization request")
        .clone();
    for (hint, lands) in [
        ("kc_idp_hint=partners", "http://login.partners.localhost:"),
        ("idp_hint=suppliers", "http://login.suppliers.localhost:"),
        ("idp_hint=nope", "http://login.employees.localhost:"),
    ] {
        let page = Browser::new(&gw).open(&format!("{authorize}&{hint}")).await;
        assert!(
            page.url.starts_with(lands) && page.is_login_page(),
            "{hint}: {}",
            page.url
        );
    }
    // An app's own "supplier sign-in" link carries the hint through its sign-in start.
    let page = Browser::new(&gw)
        .open(&erp(&gw, "/.poolgate/login?return_to=/orders&kc_idp_hint=suppliers"))
        .await;
    assert!(
        page.url.starts_with("http://login.suppliers.localhost:") && page.is_login_page(),
        "{}",
        page.url
    );
    let wiki_login = b.open(&gw.url("wiki.employees.localhost", "/")).await;
    let wiki_authorize = wiki_login
        .hops
        .iter()
        .find(|h| h.contains("/oidc/authorize?"))
        .unwrap()
        .clone();
    let page = Browser::new(&gw)
        .open(&format!("{wiki_authorize}&kc_idp_hint=suppliers"))
        .await;
    assert!(
        page.url.starts_with("http://login.employees.localhost:"),
        "{}",
        page.url
    );
    // The wiki takes no source: its login page neither offers nor discovers one.
    assert!(
        !page.body.contains("Sign in with") && !page.body.contains("the email is enough"),
        "{}",
        page.body
    );
}

#[tokio::test]
async fn mapped_groups_force_sync_and_a_trusted_upstream_second_factor() {
    use crate::rogue_issuer::RogueIssuer;
    use serde_json::json;
    let up = Whoami::start().await;
    let idp = RogueIssuer::start().await;
    let config = company_only(&up, &idp.issuer, "create").replace(
        "trust_email = true\n",
        "trust_email = true\nsync = \"force\"\ntrust_mfa = [\"hwk\"]\n\
         groups = { \"eng\" = \"engineering\", \"ops\" = \"operations\" }\n",
    ) + &format!(
        "\n[pools.employees.apps.vault]\nhosts = [\"vault.employees.localhost\"]\nupstreams = [\"{}\"]\nrequire_mfa = true\n",
        up.addr
    );
    let gw = Gateway::start(&config).await;
    idp.person("corp-7", "dana@corp.example", json!(true));
    idp.extra(json!({ "name": "Dana", "groups": ["eng", "admins"], "amr": ["pwd"] }));

    // Mapped groups only: `admins` upstream grants nothing here, and is audited as dropped.
    let b = Browser::new(&gw);
    let login = b.open(&erp(&gw, "/")).await;
    b.open(&source_link(&login, "Company IdP")).await;
    let echo = b.fetch(&erp(&gw, "/")).await.json();
    assert_eq!(seen(&echo, "x-poolgate-groups"), ["engineering"]);
    let dana = seen(&echo, "x-poolgate-user")[0].clone();
    let audit = api_get(&gw, "/pools/employees/audit?limit=100").await;
    assert!(
        items(&audit)
            .iter()
            .any(|e| e["action"] == "federation.groups" && e["detail"].as_str().unwrap().contains("dropped=admins")),
        "{audit}"
    );

    // A group given here by hand stays; the mapped ones follow the upstream; a claim the
    // upstream leaves out (email) clears nothing.
    let resp = gw
        .api(Method::PUT, &format!("/pools/employees/groups/staff/members/{dana}"))
        .send()
        .await
        .unwrap();
    if resp.status() == 404 {
        gw.api(Method::POST, "/pools/employees/groups")
            .json(&json!({"name": "staff"}))
            .send()
            .await
            .unwrap();
        gw.api(Method::PUT, &format!("/pools/employees/groups/staff/members/{dana}"))
            .send()
            .await
            .unwrap();
    }
    idp.extra(json!({ "name": "Dana Q", "groups": ["ops"], "email": null, "amr": ["pwd"] }));
    let (_, who) = through_company(&gw).await;
    assert_eq!(who.as_deref(), Some(dana.as_str()));
    let user = api_get(&gw, &format!("/pools/employees/users/{dana}")).await;
    assert_eq!(user["name"], "Dana Q");
    assert_eq!(user["email"], "dana@corp.example");
    assert_eq!(user["groups"], json!(["operations", "staff"]), "{user}");
    // No groups claim at all: the groups stay as they are.
    idp.extra(json!({ "groups": null, "amr": ["pwd"] }));
    through_company(&gw).await;
    let user = api_get(&gw, &format!("/pools/employees/users/{dana}")).await;
    assert_eq!(user["groups"], json!(["operations", "staff"]), "{user}");

    // The vault asks for a second factor: a password upstream is not one here…
    let vault = gw.url("vault.employees.localhost", "/");
    let b = Browser::new(&gw);
    let login = b.open(&vault).await;
    let page = b.open(&source_link(&login, "Company IdP")).await;
    assert_ne!(b.fetch(&vault).await.status, 200, "{}", page.body);
    // …a hardware key upstream, named in trust_mfa, is.
    idp.extra(json!({ "amr": ["pwd", "hwk"] }));
    let b = Browser::new(&gw);
    let login = b.open(&vault).await;
    b.open(&source_link(&login, "Company IdP")).await;
    assert_eq!(b.fetch(&vault).await.status, 200);
}

#[tokio::test]
async fn signing_out_here_goes_on_to_sign_out_at_the_source_when_it_asks() {
    let up = Whoami::start().await;
    let config = pools(&up, "deny").replace(
        "domains = [\"suppliers.example\", \"*.suppliers.example\"]\n",
        "domains = [\"suppliers.example\", \"*.suppliers.example\"]\nupstream_logout = \"always\"\n",
    );
    // A store file, to read what the session keeps of the source's ID token.
    let db = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}/store.db", db.path().display());
    let opts = Options {
        store: Some(url.clone()),
        ..Options::default()
    };
    let gw = Gateway::start_with(&config, opts).await;
    add_user(&gw, "suppliers", "sam", PASSWORD, &[]).await;
    let b = Browser::new(&gw);
    assert_eq!(through_suppliers(&gw, &b, "sam").await.status, 200);
    // Kept for the sign-out's hint, sealed: the store does not show what suppliers said.
    let store = sqlx::SqlitePool::connect(&url).await.unwrap();
    let kept: Vec<(Option<String>,)> =
        sqlx::query_as("SELECT upstream_id_token FROM sso_sessions WHERE pool_id = 'employees'")
            .fetch_all(&store)
            .await
            .unwrap();
    assert_eq!(kept.len(), 1, "{kept:?}");
    let kept = kept[0].0.clone().expect("the ID token is kept");
    assert!(
        !kept.contains('.') && poolgate::crypto::jwt::unverified_claims(&kept).is_none(),
        "the source's ID token is stored in clear: {kept}"
    );
    let suppliers_home = gw.url("login.suppliers.localhost", "/");
    assert!(
        !b.open(&suppliers_home).await.is_login_page(),
        "signed in at suppliers too"
    );
    // The way back from the source's sign-out, followed from a link anywhere (no state
    // of this pool's): it signs nobody out and says nothing of the kind.
    let employees_home = gw.url("login.employees.localhost", "/");
    for forged in ["", "?state=made-up"] {
        let page = b
            .open(&gw.url(
                "login.employees.localhost",
                &format!("/federation/suppliers/signed-out{forged}"),
            ))
            .await;
        assert!(!page.body.contains("You are signed out"), "{}", page.body);
        assert!(page.body.contains("signed in to Employees as sam"), "{}", page.body);
    }
    assert!(!b.open(&employees_home).await.is_login_page());
    assert_eq!(b.fetch(&erp(&gw, "/")).await.status, 200);

    // Sign out at the ERP: through the suppliers portal's sign-out and back.
    let out = b.sign_out(&erp(&gw, "/.poolgate/logout")).await;
    assert_eq!(out.status, 200, "{:?} {}", out.hops, out.body);
    assert!(
        out.hops
            .iter()
            .any(|h| h.starts_with("http://login.suppliers.localhost:") && h.contains("/oidc/logout?")),
        "{:?}",
        out.hops
    );
    assert!(out.url.contains("/federation/suppliers/signed-out"), "{}", out.url);
    assert!(out.body.contains("You are signed out"), "{}", out.body);
    // Signed out of both pools.
    assert_eq!(b.fetch(&erp(&gw, "/")).await.status, 401);
    assert!(b.open(&suppliers_home).await.is_login_page());
}

#[tokio::test]
async fn a_person_removes_a_link_but_never_their_last_way_in_and_an_admin_moves_one() {
    use serde_json::json;
    let up = Whoami::start().await;
    let gw = Gateway::start(&pools(&up, "deny")).await;
    add_user(&gw, "suppliers", "sam", PASSWORD, &[]).await;
    add_user(&gw, "suppliers", "sue", PASSWORD, &[]).await;
    let b = Browser::new(&gw);
    assert_eq!(through_suppliers(&gw, &b, "sam").await.status, 200);
    let sam = seen(&b.fetch(&erp(&gw, "/")).await.json(), "x-poolgate-user")[0].clone();

    // The account page lists the ways in: here only the suppliers link.
    let account_url = gw.url("login.employees.localhost", "/account");
    let account = b.open(&account_url).await;
    assert_eq!(account.status, 200, "{}", account.body);
    assert!(account.body.contains("Remove Suppliers"), "{}", account.body);
    assert!(!account.body.contains("The password of your"), "{}", account.body);
    let link_id = items(&api_get(&gw, "/pools/employees/links").await)[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The last way in stays.
    let refused = b.submit(&account, "/account/links/remove", &[("link", &link_id)]).await;
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert!(refused.body.contains("only way to sign in"), "{}", refused.body);
    assert_eq!(items(&api_get(&gw, "/pools/employees/links").await).len(), 1);
    // Someone else's link id is not theirs to remove (sue's, once she has one).
    let b_sue = Browser::new(&gw);
    assert_eq!(through_suppliers(&gw, &b_sue, "sue").await.status, 200);
    let sue_link = items(&api_get(&gw, "/pools/employees/links").await)
        .into_iter()
        .find(|l| l["user_id"] != sam.as_str())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let theirs = b
        .submit(&account, "/account/links/remove", &[("link", &sue_link)])
        .await;
    assert_eq!(theirs.status, 404, "{}", theirs.body);
    // With a password of his own here, sam may remove the link.
    let set = gw
        .api(Method::PUT, &format!("/pools/employees/users/{sam}/password"))
        .json(&json!({"password": "sam's own employees password"}))
        .send()
        .await
        .unwrap();
    assert!(set.status().is_success(), "{}", set.status());
    // A new password ends his sessions; he signs in with it.
    let login = b.open(&account_url).await;
    assert!(login.is_login_page(), "{}", login.body);
    b.submit(
        &login,
        "/login",
        &[("username", "sam"), ("password", "sam's own employees password")],
    )
    .await;
    let account = b.open(&account_url).await;
    assert!(account.body.contains("The password of your"), "{}", account.body);
    // Elsewhere, a session that came in through the link (as someone with sam's supplier
    // account would have).
    let through_link = Browser::new(&gw);
    assert_eq!(through_suppliers(&gw, &through_link, "sam").await.status, 200);
    assert_eq!(through_link.fetch(&erp(&gw, "/")).await.status, 200);
    let removed = b.submit(&account, "/account/links/remove", &[("link", &link_id)]).await;
    assert_eq!(removed.status, 200, "{}", removed.body);
    assert!(removed.body.contains("The link is removed"), "{}", removed.body);
    let links = items(&api_get(&gw, "/pools/employees/links").await);
    assert_eq!(links.len(), 1, "{links:?}");
    // What came in through the link ends with it; sam's own sign-in stays.
    assert_eq!(through_link.fetch(&erp(&gw, "/")).await.status, 401);
    let still = b.open(&account_url).await;
    assert!(!still.is_login_page(), "{}", still.body);

    // An administrator gives sue's link to sam: sue's next sign-in through it is sam's.
    let moved = gw
        .api(Method::PATCH, &format!("/pools/employees/links/{sue_link}"))
        .json(&json!({"user_id": sam}))
        .send()
        .await
        .unwrap();
    assert_eq!(moved.status(), 204);
    // Her session through it, as sue, ends at once: the link was never hers.
    assert_eq!(b_sue.fetch(&erp(&gw, "/")).await.status, 401);
    let b_sue = Browser::new(&gw);
    assert_eq!(through_suppliers(&gw, &b_sue, "sue").await.status, 200);
    assert_eq!(
        seen(&b_sue.fetch(&erp(&gw, "/")).await.json(), "x-poolgate-user"),
        [sam.as_str()]
    );
    let nobody = gw
        .api(Method::PATCH, &format!("/pools/employees/links/{sue_link}"))
        .json(&json!({"user_id": "00000000-0000-0000-0000-000000000000"}))
        .send()
        .await
        .unwrap();
    assert_eq!(nobody.status(), 404);
    let audit = api_get(&gw, "/pools/employees/audit?limit=100").await;
    for action in ["link.delete", "link.move"] {
        assert!(items(&audit).iter().any(|e| e["action"] == action), "{action}: {audit}");
    }
}

#[tokio::test]
async fn a_disabled_user_stays_out_a_rotated_key_is_fetched_once_and_an_unknown_one_not_again() {
    use crate::rogue_issuer::RogueIssuer;
    let up = Whoami::start().await;
    let idp = RogueIssuer::start().await;
    let gw = Gateway::start(&company_only(&up, &idp.issuer, "create")).await;
    let (_, first) = through_company(&gw).await;
    let dana = first.expect("signed in");

    // A disabled user is refused at the callback, whatever the link says; enabled, let in.
    let toggle = |what: &'static str| {
        gw.api(Method::POST, &format!("/pools/employees/users/{dana}/{what}"))
            .send()
    };
    assert!(toggle("disable").await.unwrap().status().is_success());
    let (page, who) = through_company(&gw).await;
    assert_eq!(who, None, "{}", page.body);
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(page.body.contains("disabled"), "{}", page.body);
    assert!(toggle("enable").await.unwrap().status().is_success());
    assert_eq!(through_company(&gw).await.1.as_deref(), Some(dana.as_str()));
    let fetched = idp.jwks_hits();

    // The provider rotates and publishes its new key; three sign-ins at once meet it:
    // one fetch between them, and all three work.
    idp.rotate("rogue-2", true);
    let runs = (0..3).map(|_| through_company(&gw));
    for (page, who) in futures_util::future::join_all(runs).await {
        assert_eq!(who.as_deref(), Some(dana.as_str()), "{}", page.body);
    }
    assert_eq!(idp.jwks_hits(), fetched + 1);

    // A token under a kid it does not publish: refused, and within the cooldown asked
    // for again by three sign-ins at once, the keys are not fetched again.
    idp.rotate("rogue-3", false);
    let runs = (0..3).map(|_| through_company(&gw));
    for (page, who) in futures_util::future::join_all(runs).await {
        assert_eq!(who, None, "{}", page.body);
        assert_eq!(page.status, 400, "{}", page.body);
    }
    assert_eq!(idp.jwks_hits(), fetched + 1, "fetched again inside the cooldown");
}

/// Through the test provider up to (not into) the callback: the attempt cookie and the
/// callback URL its authorize endpoint sent the browser to.
async fn company_callback(gw: &Gateway, b: &Browser) -> (String, String) {
    let (cookie, authorize) = start(gw, b, "Company IdP").await;
    let resp = b.client.get(authorize.as_str()).send().await.unwrap();
    let callback = resp.headers()[LOCATION].to_str().unwrap().to_owned();
    assert!(callback.contains("/federation/company/callback?"), "{callback}");
    (cookie, callback)
}

#[tokio::test]
async fn a_replayed_callback_opens_nothing_even_where_the_provider_takes_a_code_twice() {
    use crate::rogue_issuer::RogueIssuer;
    let up = Whoami::start().await;
    let idp = RogueIssuer::start().await;
    let gw = Gateway::start(&company_only(&up, &idp.issuer, "create")).await;
    // A first login (the state spent before the user is made), then a returning one (the
    // state spent in the commit that opens the session): each replayed, each refused.
    for round in ["first login", "returning"] {
        let b = Browser::new(&gw);
        let (cookie, callback) = company_callback(&gw, &b).await;
        let url = url::Url::parse(&callback).unwrap();
        let (status, body) = callback_with(&b, &url, &cookie).await;
        assert_eq!(status, 303, "{round}: {body}");
        let (status, body) = callback_with(&b, &url, &cookie).await;
        assert_eq!(status, 400, "{round}: {body}");
        assert!(body.contains("already used"), "{round}: {body}");
    }
    assert_eq!(items(&api_get(&gw, "/pools/employees/users").await).len(), 1);
    let sessions = items(&api_get(&gw, "/pools/employees/sessions").await);
    assert_eq!(sessions.len(), 2, "one session per genuine sign-in: {sessions:?}");
}

#[tokio::test]
async fn a_source_made_through_the_admin_api_is_checked_like_the_files_and_offered_at_once() {
    use serde_json::json;
    let up = Whoami::start().await;
    let idp = crate::rogue_issuer::RogueIssuer::start().await;
    let gw = Gateway::start(&with_company_idp(&up, &idp.issuer)).await;
    let create = |body: Value| gw.api(Method::POST, "/pools/employees/sources").json(&body).send();
    // What a file could not say, the API cannot either.
    let refused = create(json!({
        "id": "weak", "kind": "oidc", "issuer": "https://idp.example", "client_id": "gw",
        "algorithms": ["HS256"], "first_login": "link_verified_email",
    }))
    .await
    .unwrap();
    assert_eq!(refused.status(), 422);
    let text = refused.text().await.unwrap();
    assert!(text.contains("HS256") && text.contains("trust_email"), "{text}");
    let made = create(json!({
        "id": "partner-idp", "kind": "oidc", "name": "Partner IdP", "issuer": idp.issuer,
        "client_id": "gw", "first_login": "deny", "domains": ["partner.example"],
    }))
    .await
    .unwrap();
    assert_eq!(made.status(), 201, "{}", made.text().await.unwrap());
    // Served at once: the ERP's login page offers it, and its domain is discovered.
    let b = Browser::new(&gw);
    let login = b.open(&erp(&gw, "/")).await;
    assert!(login.body.contains("Sign in with Partner IdP"), "{}", login.body);
    let sent = b
        .client
        .post(gw.url("login.employees.localhost", "/login"))
        .header(ORIGIN, gw.url("login.employees.localhost", "").trim_end_matches('/'))
        .header(
            COOKIE,
            format!("poolgate-csrf={}", b.cookie(&login.url, "poolgate-csrf").unwrap()),
        )
        .form(&[
            ("csrf", login.input("csrf").unwrap()),
            ("request", login.input("request").unwrap()),
            ("username", "pat@partner.example".into()),
            ("password", String::new()),
        ])
        .send()
        .await
        .unwrap();
    let to = sent
        .headers()
        .get(LOCATION)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    assert!(
        to.starts_with(&format!("{}/authorize?", idp.issuer)),
        "{} {to}",
        sent.status()
    );
}

#[tokio::test]
async fn a_challenge_proven_link_signs_in_with_the_upstreams_groups_and_second_factor_at_once() {
    use crate::rogue_issuer::RogueIssuer;
    use serde_json::json;
    let up = Whoami::start().await;
    let idp = RogueIssuer::start().await;
    let config = company_only(&up, &idp.issuer, "challenge").replace(
        "trust_email = true\n",
        "trust_email = true\nsync = \"force\"\ntrust_mfa = [\"hwk\"]\ngroups = { \"eng\" = \"engineering\" }\n",
    ) + &format!(
        "\n[pools.employees.apps.vault]\nhosts = [\"vault.employees.localhost\"]\nupstreams = [\"{}\"]\nrequire_mfa = true\n",
        up.addr
    );
    let gw = Gateway::start(&config).await;
    // Dana has an account here already, with no second factor of her own.
    let dana = add_user(&gw, "employees", "dana", PASSWORD, &[]).await;
    idp.person("corp-7", "dana@corp.example", json!(true));
    idp.extra(json!({ "name": "Dana Upstream", "groups": ["eng"], "amr": ["pwd", "hwk"] }));

    // She comes to the vault through the company IdP, proves her account here, and the
    // first sign-in is already what every later one will be: the upstream's name and
    // mapped groups, and its hardware key counted as the vault's second factor.
    let vault = gw.url("vault.employees.localhost", "/");
    let b = Browser::new(&gw);
    let login = b.open(&vault).await;
    let challenge = b.open(&source_link(&login, "Company IdP")).await;
    assert!(challenge.body.contains("Link your account"), "{}", challenge.body);
    let linked = b
        .submit(
            &challenge,
            "/federation/link",
            &[("username", "dana"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(linked.status, 200, "{:?} {}", linked.hops, linked.body);
    let at_vault = b.fetch(&vault).await;
    assert_eq!(at_vault.status, 200, "the upstream's trusted second factor counts");
    let echo = at_vault.json();
    assert_eq!(seen(&echo, "x-poolgate-user"), [dana.as_str()]);
    assert_eq!(seen(&echo, "x-poolgate-groups"), ["engineering"]);
    assert_eq!(seen(&echo, "x-poolgate-name"), ["Dana Upstream"]);
    let user = api_get(&gw, &format!("/pools/employees/users/{dana}")).await;
    assert_eq!(user["name"], "Dana Upstream", "{user}");
    assert_eq!(user["groups"], json!(["engineering"]), "{user}");
}

#[tokio::test]
async fn email_verified_vouches_for_the_email_claim_only_not_a_remapped_one() {
    use crate::rogue_issuer::RogueIssuer;
    use serde_json::json;
    let up = Whoami::start().await;
    let idp = RogueIssuer::start().await;
    // The address is read from `mail`, which people may edit at this provider.
    let config = company_only(&up, &idp.issuer, "link_verified_email").replace(
        "trust_email = true\n",
        "trust_email = true\nclaims = { email = \"mail\" }\n",
    );
    let gw = Gateway::start(&config).await;
    let erin = employee_with_verified_email(&gw, "erin", "erin@corp.example").await;

    // The attacker's verified `email` is their own; the `mail` they typed is erin's.
    idp.person("corp-666", "mallory@corp.example", json!(true));
    idp.extra(json!({ "mail": "erin@corp.example" }));
    let (page, who) = through_company(&gw).await;
    assert_eq!(
        who, None,
        "signed in as erin through an unverified claim: {}",
        page.body
    );
    assert!(items(&api_get(&gw, "/pools/employees/links").await).is_empty());

    // Where `mail` is the very address `email_verified` speaks of, it counts.
    idp.person("corp-7", "erin@corp.example", json!(true));
    idp.extra(json!({ "mail": "erin@corp.example" }));
    let (page, who) = through_company(&gw).await;
    assert_eq!(who.as_deref(), Some(erin.as_str()), "{}", page.body);
}

#[tokio::test]
async fn a_new_user_never_takes_a_name_that_is_a_local_persons_address_or_the_reverse() {
    use crate::rogue_issuer::RogueIssuer;
    use serde_json::json;
    let up = Whoami::start().await;
    let idp = RogueIssuer::start().await;
    let gw = Gateway::start(&company_only(&up, &idp.issuer, "create")).await;
    // alice signs in with her address; "bob@corp.example" is someone's username.
    add_user(&gw, "employees", "alice", PASSWORD, &[]).await;
    gw.api(Method::POST, "/pools/employees/users")
        .json(&json!({"username": "bob@corp.example", "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();

    // An upstream username that is alice's address: a challenge, no user made under it.
    idp.person("corp-1", "eve@elsewhere.example", json!(true));
    idp.extra(json!({ "preferred_username": "alice@example.com" }));
    let (page, who) = through_company(&gw).await;
    assert_eq!(who, None, "{}", page.body);
    assert!(page.body.contains("Link your account"), "{}", page.body);
    // An upstream address that is bob's username: the same.
    idp.person("corp-2", "bob@corp.example", json!(true));
    idp.extra(json!({ "preferred_username": "notbob" }));
    let (page, who) = through_company(&gw).await;
    assert_eq!(who, None, "{}", page.body);
    assert!(page.body.contains("Link your account"), "{}", page.body);
    let users = items(&api_get(&gw, "/pools/employees/users").await);
    assert_eq!(users.len(), 2, "nobody new: {users:?}");
    // alice's address still signs alice in at the login page.
    let b = Browser::new(&gw);
    let home = crate::signin::sign_in(
        &b,
        &gw.url("login.employees.localhost", "/"),
        "alice@example.com",
        PASSWORD,
    )
    .await;
    assert!(home.body.contains("as alice"), "{}", home.body);
}

#[tokio::test]
async fn a_link_proof_follows_the_pools_second_factor_rules() {
    use crate::rogue_issuer::RogueIssuer;
    use crate::signin::totp_now;
    use serde_json::json;
    let up = Whoami::start().await;
    let idp = RogueIssuer::start().await;
    let config = company_only(&up, &idp.issuer, "challenge").replacen(
        "plan = \"enterprise\"\n",
        "plan = \"enterprise\"\nmfa = \"required\"\n",
        1,
    );
    let gw = Gateway::start(&config).await;
    let dana = add_user(&gw, "employees", "dana", PASSWORD, &[]).await;
    idp.person("corp-9", "dana@corp.example", json!(true));

    // Her password alone is not a sign-in here: no link, and she is told what to do.
    let b = Browser::new(&gw);
    let login = b.open(&erp(&gw, "/")).await;
    let challenge = b.open(&source_link(&login, "Company IdP")).await;
    assert!(challenge.body.contains("Link your account"), "{}", challenge.body);
    let refused = b
        .submit(
            &challenge,
            "/federation/link",
            &[("username", "dana"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        refused.body.contains("must set up a second factor first"),
        "{}",
        refused.body
    );
    assert!(items(&api_get(&gw, "/pools/employees/links").await).is_empty());

    // She signs in here once and sets one up; then her password and code link the account.
    let portal = Browser::new(&gw);
    let login = portal.open(&gw.url("login.employees.localhost", "/")).await;
    let enroll = portal
        .submit(&login, "/login", &[("username", "dana"), ("password", PASSWORD)])
        .await;
    let secret = enroll.text_of("secret").expect("the enrolment page");
    portal
        .submit(&enroll, "/login/enroll", &[("code", &totp_now(&secret, 0))])
        .await;
    let b = Browser::new(&gw);
    let login = b.open(&erp(&gw, "/")).await;
    let challenge = b.open(&source_link(&login, "Company IdP")).await;
    let linked = b
        .submit(
            &challenge,
            "/federation/link",
            &[
                ("username", "dana"),
                ("password", PASSWORD),
                ("code", &totp_now(&secret, 1)),
            ],
        )
        .await;
    assert_eq!(linked.status, 200, "{:?} {}", linked.hops, linked.body);
    assert_eq!(
        seen(&b.fetch(&erp(&gw, "/")).await.json(), "x-poolgate-user"),
        [dana.as_str()]
    );
}

#[tokio::test]
async fn a_pool_that_requires_a_second_factor_asks_federated_people_for_its_own() {
    use crate::rogue_issuer::RogueIssuer;
    use serde_json::json;
    let up = Whoami::start().await;
    let idp = RogueIssuer::start().await;
    let config = company_only(&up, &idp.issuer, "create")
        .replacen(
            "plan = \"enterprise\"\n",
            "plan = \"enterprise\"\nmfa = \"required\"\n",
            1,
        )
        .replace("trust_email = true\n", "trust_email = true\ntrust_mfa = [\"hwk\"]\n");
    let gw = Gateway::start(&config).await;

    // A password upstream is not a second factor here: before the ERP, this pool's own,
    // set up on the spot; no code reaches the app until then.
    idp.person("corp-1", "dana@corp.example", json!(true));
    idp.extra(json!({ "amr": ["pwd"] }));
    let b = Browser::new(&gw);
    let login = b.open(&erp(&gw, "/")).await;
    let enroll = b.open(&source_link(&login, "Company IdP")).await;
    assert!(
        enroll.body.contains("Set up two-factor sign-in"),
        "{:?}\n{}",
        enroll.hops,
        enroll.body
    );
    assert!(
        !enroll.hops.iter().any(|h| h.contains("/.poolgate/callback")),
        "{:?}",
        enroll.hops
    );
    assert_eq!(b.fetch(&erp(&gw, "/")).await.status, 401);
    let (_, page) = crate::signin::enroll_and_continue(&b, &enroll).await;
    assert_eq!(page.status, 200, "{:?} {}", page.hops, page.body);
    let echo = b.fetch(&erp(&gw, "/")).await;
    assert_eq!(echo.status, 200);
    let dana = seen(&echo.json(), "x-poolgate-user")[0].clone();

    // A hardware key upstream, which trust_mfa names, is one: straight in.
    idp.person("corp-2", "erin@corp.example", json!(true));
    idp.extra(json!({ "amr": ["pwd", "hwk"], "preferred_username": "erin" }));
    let (page, who) = through_company(&gw).await;
    assert!(who.is_some_and(|w| w != dana), "{}", page.body);
}
