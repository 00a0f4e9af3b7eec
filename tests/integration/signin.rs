//! Signing in, as a person's browser does it: the hosted login, single sign-on, single
//! sign-out, and every way a session must not be forged, replayed or stretched.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use reqwest::Method;
use serde_json::{Value, json};

use crate::browser::{Browser, Page};
use crate::support::*;

/// employees: wiki and crm (crm requires MFA when `mfa` is set); suppliers: orders.
pub fn pools(up: &Whoami, employees_extra: &str, crm_extra: &str) -> String {
    format!(
        r##"
[pools.employees]
name = "Employees"
portal = "login.employees.localhost"
plan = "enterprise"
{employees_extra}

[pools.employees.branding]
color = "#0a7f5a"

[pools.employees.apps.wiki]
hosts = ["wiki.employees.localhost"]
upstreams = ["{up}"]
public_paths = ["/health"]

[pools.employees.apps.crm]
hosts = ["crm.employees.localhost"]
upstreams = ["{up}"]
{crm_extra}

[pools.suppliers]
name = "Suppliers"
portal = "login.suppliers.localhost"
plan = "enterprise"

[pools.suppliers.apps.orders]
hosts = ["orders.suppliers.localhost"]
upstreams = ["{up}"]
"##,
        up = up.addr
    )
}

pub async fn add_user(gw: &Gateway, pool: &str, username: &str, password: &str, groups: &[&str]) -> String {
    let resp = gw
        .api(Method::POST, &format!("/pools/{pool}/users"))
        .json(&json!({"username": username, "email": format!("{username}@example.com"), "password": password, "groups": groups, "name": format!("{username} Example")}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    resp.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned()
}

/// Opens `url`, lands on the login page, signs in, and returns where that ended.
pub async fn sign_in(b: &Browser, url: &str, username: &str, password: &str) -> Page {
    let login = b.open(url).await;
    assert!(
        login.is_login_page(),
        "expected the login page at the end of {:?}:\n{}",
        login.hops,
        login.body
    );
    b.submit(&login, "/login", &[("username", username), ("password", password)])
        .await
}

pub fn http(gw: &Gateway, host: &str, path: &str) -> String {
    gw.url(host, path)
}

/// What the admin API answers to a GET of `path`.
pub async fn api_get(gw: &Gateway, path: &str) -> Value {
    gw.api(Method::GET, path).send().await.unwrap().json().await.unwrap()
}

/// The actions in a pool's audit log, newest first.
async fn audit_actions(gw: &Gateway, pool: &str) -> Vec<String> {
    let audit = api_get(gw, &format!("/pools/{pool}/audit?limit=100")).await;
    audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect()
}

/// The password every test user is given.
pub const PASSWORD: &str = "correct horse battery";

/// A URL of the employees' wiki, the app most tests sign in to.
pub fn wiki_url(gw: &Gateway, path: &str) -> String {
    gw.url("wiki.employees.localhost", path)
}

#[tokio::test]
async fn sign_in_single_sign_on_and_single_sign_out() {
    let up = Whoami::start().await;
    let gw = Gateway::start(&pools(&up, "", "")).await;
    let alice = add_user(&gw, "employees", "alice", PASSWORD, &["staff"]).await;
    let b = Browser::new(&gw);

    // A browser without a session goes to its pool's portal and sees the branded login page.
    let login = b.open(&wiki_url(&gw, "/reports?q=1")).await;
    assert_eq!(login.status, 200);
    assert!(login.is_login_page());
    assert!(
        login.url.starts_with("http://login.employees.localhost:"),
        "{}",
        login.url
    );
    assert!(login.body.contains("Employees") && login.body.contains("#0a7f5a"));
    assert_eq!(up.hits(), 0, "nothing reached the app before sign-in");

    // A wrong password and an unknown user get the very same answer.
    let wrong = b
        .submit(&login, "/login", &[("username", "alice"), ("password", "nope")])
        .await;
    let unknown = b
        .submit(&login, "/login", &[("username", "mallory"), ("password", "nope")])
        .await;
    assert_eq!((wrong.status, unknown.status), (401, 401));
    let message = |p: &Page| {
        p.body
            .split("role=\"alert\"")
            .nth(1)
            .map(|s| s[..s.find("</p>").unwrap()].to_owned())
    };
    assert_eq!(message(&wrong), message(&unknown));
    assert!(message(&wrong).unwrap().contains("not right"));

    // The right password lands on the page first asked for.
    let landed = b
        .submit(&wrong, "/login", &[("username", "alice"), ("password", PASSWORD)])
        .await;
    assert_eq!(landed.status, 200, "{:?}\n{}", landed.hops, landed.body);
    assert_eq!(landed.url, wiki_url(&gw, "/reports?q=1"));
    let app_cookie = b.cookie(&wiki_url(&gw, "/"), "poolgate").expect("an app cookie");
    assert!(app_cookie.len() < 200, "cookie is small: {}", app_cookie.len());

    // What the app receives.
    let echo = b.fetch(&wiki_url(&gw, "/api/me")).await.json();
    assert_eq!(seen(&echo, "x-poolgate-user"), [alice.as_str()]);
    assert_eq!(seen(&echo, "x-poolgate-username"), ["alice"]);
    assert_eq!(seen(&echo, "x-poolgate-email"), ["alice@example.com"]);
    assert_eq!(seen(&echo, "x-poolgate-groups"), ["staff"]);
    assert_eq!(seen(&echo, "x-poolgate-pool"), ["employees"]);
    assert_eq!(seen(&echo, "x-poolgate-source"), ["local"]);
    let cookies = seen(&echo, "cookie").join(";");
    assert!(
        !cookies.contains("poolgate"),
        "the gateway's cookies never reach the app: {cookies}"
    );

    // The assertion verifies with the pool's published keys (and no other pool's).
    let assertion = seen(&echo, "x-poolgate-assertion").pop().expect("an assertion");
    let jwks: Value = b
        .fetch(&http(&gw, "login.employees.localhost", "/oidc/jwks"))
        .await
        .json();
    let claims = verify(
        &assertion,
        &jwks,
        &format!("http://login.employees.localhost:{}", gw.http.port()),
        "wiki",
    )
    .expect("verifies");
    assert_eq!(claims["sub"], alice);
    assert_eq!(claims["preferred_username"], "alice");
    let other: Value = b
        .fetch(&http(&gw, "login.suppliers.localhost", "/oidc/jwks"))
        .await
        .json();
    assert!(
        verify(
            &assertion,
            &other,
            &format!("http://login.suppliers.localhost:{}", gw.http.port()),
            "wiki"
        )
        .is_none()
    );
    // Prepared once and cached, not signed per request.
    let again = b.fetch(&wiki_url(&gw, "/api/me")).await.json();
    assert_eq!(seen(&again, "x-poolgate-assertion"), [assertion.as_str()]);

    // Single sign-on: the second app of the pool signs in without a prompt.
    let crm = b.open(&http(&gw, "crm.employees.localhost", "/")).await;
    assert_eq!(crm.status, 200, "{:?}", crm.hops);
    assert!(crm.hops.iter().any(|h| h.contains("/oidc/authorize")), "{:?}", crm.hops);
    assert!(!crm.is_login_page());
    let crm_echo = b.fetch(&http(&gw, "crm.employees.localhost", "/")).await.json();
    assert_eq!(seen(&crm_echo, "x-poolgate-user"), [alice.as_str()]);

    // …but another pool is another place: its portal asks.
    let orders = b.open(&http(&gw, "orders.suppliers.localhost", "/")).await;
    assert!(orders.is_login_page(), "{:?}", orders.hops);

    // Single sign-out from one app ends both app sessions.
    let out = b.sign_out(&wiki_url(&gw, "/.poolgate/logout")).await;
    assert_eq!(out.status, 200);
    assert!(out.body.contains("signed out"), "{}", out.body);
    for host in ["wiki.employees.localhost", "crm.employees.localhost"] {
        let after = b.fetch(&http(&gw, host, "/")).await;
        assert_eq!(after.status, 401, "{host} after sign-out");
        assert!(
            after.headers["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Bearer realm=\"employees\"")
        );
    }
    // A copy of the old cookie is worth nothing now.
    let replay = gw
        .client()
        .get(wiki_url(&gw, "/"))
        .header("cookie", format!("poolgate={app_cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 401);
    let relogin = b.open(&http(&gw, "crm.employees.localhost", "/")).await;
    assert!(relogin.is_login_page(), "the portal session ended too");

    let actions = audit_actions(&gw, "employees").await;
    for a in ["signin.failure", "signin.success", "app.signin", "signout"] {
        assert!(actions.iter().any(|x| x == a), "{a} not audited: {actions:?}");
    }
}

/// Verifies an ES256 JWT against a JWKS document.
pub fn verify(token: &str, jwks: &Value, iss: &str, aud: &str) -> Option<Value> {
    let kid = jsonwebtoken::decode_header(token).ok()?.kid?;
    let jwk = jwks["keys"].as_array()?.iter().find(|k| k["kid"] == kid.as_str())?;
    let key = DecodingKey::from_ec_components(jwk["x"].as_str()?, jwk["y"].as_str()?).ok()?;
    let mut v = Validation::new(Algorithm::ES256);
    v.set_issuer(&[iss]);
    v.set_audience(&[aud]);
    jsonwebtoken::decode::<Value>(token, &key, &v).ok().map(|d| d.claims)
}

async fn get_with_cookie(gw: &Gateway, host: &str, cookie: &str) -> u16 {
    gw.client()
        .get(http(gw, host, "/"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn cookies_do_not_travel_across_pools_apps_or_time() {
    let up = Whoami::start().await;
    let gw = Gateway::start(&pools(&up, "session_idle = \"3s\"", "")).await;
    add_user(&gw, "employees", "alice", PASSWORD, &[]).await;
    add_user(&gw, "suppliers", "alice", PASSWORD, &[]).await;
    let b = Browser::new(&gw);
    let landed = sign_in(&b, &wiki_url(&gw, "/"), "alice", PASSWORD).await;
    assert_eq!(landed.status, 200);
    let wiki = b.cookie(&wiki_url(&gw, "/"), "poolgate").unwrap();
    let sso = b
        .cookie(&http(&gw, "login.employees.localhost", "/"), "poolgate-sso")
        .unwrap();
    assert_eq!(
        get_with_cookie(&gw, "wiki.employees.localhost", &format!("poolgate={wiki}")).await,
        200
    );

    // Another app of the same pool, another pool's app, another pool's portal: worthless.
    assert_eq!(
        get_with_cookie(&gw, "crm.employees.localhost", &format!("poolgate={wiki}")).await,
        401
    );
    assert_eq!(
        get_with_cookie(&gw, "orders.suppliers.localhost", &format!("poolgate={wiki}")).await,
        401
    );
    let portal = gw
        .client()
        .get(http(&gw, "login.suppliers.localhost", "/"))
        .header("cookie", format!("poolgate-sso={sso}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        portal.contains("action=\"/login\""),
        "employees' SSO cookie does not sign in at suppliers"
    );
    // The SSO cookie is not an app cookie either.
    assert_eq!(
        get_with_cookie(&gw, "wiki.employees.localhost", &format!("poolgate={sso}")).await,
        401
    );

    // Any change to any byte: refused.
    for i in [0, wiki.len() / 2, wiki.len() - 1] {
        let mut bytes = wiki.clone().into_bytes();
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        assert_eq!(
            get_with_cookie(&gw, "wiki.employees.localhost", &format!("poolgate={tampered}")).await,
            401,
            "byte {i}"
        );
    }
    assert_eq!(
        get_with_cookie(
            &gw,
            "wiki.employees.localhost",
            &format!("poolgate={}", &wiki[..wiki.len() - 4])
        )
        .await,
        401
    );

    // Idle past the pool's session_idle: expired.
    tokio::time::sleep(std::time::Duration::from_millis(3500)).await;
    assert_eq!(
        get_with_cookie(&gw, "wiki.employees.localhost", &format!("poolgate={wiki}")).await,
        401,
        "idle timeout"
    );
    assert_eq!(
        up.hits(),
        2,
        "only the landing after sign-in and the one valid request reached the app"
    );
}

#[tokio::test]
async fn the_session_id_changes_at_every_sign_in() {
    let up = Whoami::start().await;
    let gw = Gateway::start(&pools(&up, "", "")).await;
    add_user(&gw, "employees", "alice", PASSWORD, &[]).await;
    let b = Browser::new(&gw);
    sign_in(&b, &wiki_url(&gw, "/"), "alice", PASSWORD).await;
    let first = b
        .cookie(&http(&gw, "login.employees.localhost", "/"), "poolgate-sso")
        .unwrap();
    let portal = b.sign_out(&http(&gw, "login.employees.localhost", "/logout")).await;
    assert_eq!(portal.status, 200);
    sign_in(&b, &wiki_url(&gw, "/"), "alice", PASSWORD).await;
    let second = b
        .cookie(&http(&gw, "login.employees.localhost", "/"), "poolgate-sso")
        .unwrap();
    assert_ne!(first, second);
    let sessions = api_get(&gw, "/pools/employees/sessions").await;
    assert_eq!(
        sessions["items"].as_array().unwrap().len(),
        1,
        "the first session ended: {sessions}"
    );
}

#[tokio::test]
async fn return_to_never_leaves_the_app() {
    let up = Whoami::start().await;
    let gw = Gateway::start(&pools(&up, "", "")).await;
    add_user(&gw, "employees", "alice", PASSWORD, &[]).await;
    for (return_to, lands) in [
        ("//evil.example/x", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("%2F%2Fevil.example", "/"),
        ("javascript:alert(1)", "/"),
        ("/reports?id=7", "/reports?id=7"),
    ] {
        let b = Browser::new(&gw);
        let url = wiki_url(
            &gw,
            &format!(
                "/.poolgate/login?return_to={}",
                url::form_urlencoded::byte_serialize(return_to.as_bytes()).collect::<String>()
            ),
        );
        let landed = sign_in(&b, &url, "alice", PASSWORD).await;
        assert_eq!(landed.url, wiki_url(&gw, lands), "{return_to}: {:?}", landed.hops);
        assert!(
            landed
                .hops
                .iter()
                .all(|h| !h.contains("evil.example") || h.contains("return_to")),
            "{:?}",
            landed.hops
        );
    }
    // The app-host sign-in endpoints do not exist on the portal host.
    let on_portal = Browser::new(&gw)
        .open(&http(&gw, "login.employees.localhost", "/.poolgate/login?return_to=/"))
        .await;
    assert_eq!((on_portal.status, on_portal.hops.len()), (404, 1));
    // The portal never redirects to an address the app does not own.
    let b = Browser::new(&gw);
    for redirect in [
        "https://evil.example/.poolgate/callback",
        "http://wiki.employees.localhost.evil.example/.poolgate/callback",
        "http://wiki.employees.localhost:1/.poolgate/callback",
    ] {
        let url = format!(
            "{}?client_id=wiki&response_type=code&redirect_uri={}&state=s&code_challenge=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa&code_challenge_method=S256",
            http(&gw, "login.employees.localhost", "/oidc/authorize"),
            url::form_urlencoded::byte_serialize(redirect.as_bytes()).collect::<String>()
        );
        let page = b.open(&url).await;
        assert_eq!(page.status, 400, "{redirect}");
        assert_eq!(page.hops.len(), 1, "no redirect for {redirect}");
    }
    let out = b
        .open(&format!(
            "{}?post_logout_redirect_uri=https%3A%2F%2Fevil.example%2F",
            http(&gw, "login.employees.localhost", "/oidc/logout")
        ))
        .await;
    assert_eq!(
        (out.status, out.hops.len()),
        (400, 1),
        "refused in place, not sent away"
    );
}

#[tokio::test]
async fn spoofed_identity_headers_never_reach_the_app() {
    let up = Whoami::start().await;
    let gw = Gateway::start(&pools(&up, "", "")).await;
    let alice = add_user(&gw, "employees", "alice", PASSWORD, &["staff"]).await;
    let b = Browser::new(&gw);
    sign_in(&b, &wiki_url(&gw, "/"), "alice", PASSWORD).await;
    for path in ["/signed-in", "/health"] {
        let resp = b
            .client
            .get(wiki_url(&gw, path))
            .header("accept", "application/json")
            .header("X-Poolgate-User", "admin")
            .header("x-poolgate-user", "root")
            .header("X_Poolgate_Groups", "admins")
            .header("X-POOLGATE-POOL", "suppliers")
            .header("x-poolgate-assertion", "forged")
            .header("Connection", "keep-alive, X-Poolgate-Username")
            .header("x-poolgate-internal", "guess")
            .header("x-poolgate-route", "portal/suppliers")
            .send()
            .await
            .unwrap();
        let echo: Value = resp.json().await.unwrap();
        let signed_in = path == "/signed-in";
        let user = seen(&echo, "x-poolgate-user");
        assert_eq!(user, if signed_in { vec![alice.clone()] } else { vec![] }, "{path}");
        assert_eq!(
            seen(&echo, "x-poolgate-groups"),
            if signed_in { vec!["staff".to_owned()] } else { vec![] }
        );
        assert_eq!(
            seen(&echo, "x-poolgate-pool"),
            if signed_in {
                vec!["employees".to_owned()]
            } else {
                vec![]
            }
        );
        assert!(seen(&echo, "x_poolgate_groups").is_empty());
        assert!(seen(&echo, "x-poolgate-internal").is_empty() && seen(&echo, "x-poolgate-route").is_empty());
        let assertion = seen(&echo, "x-poolgate-assertion");
        assert!(assertion.iter().all(|a| a != "forged"), "{path}");
        assert_eq!(assertion.len(), usize::from(signed_in));
    }
}

#[tokio::test]
async fn lockout_after_failures_until_unlocked() {
    let up = Whoami::start().await;
    let gw = Gateway::start(&pools(&up, "lockout_attempts = 3\nlockout_duration = \"2s\"", "")).await;
    let id = add_user(&gw, "employees", "alice", PASSWORD, &[]).await;
    let b = Browser::new(&gw);
    let mut page = b.open(&wiki_url(&gw, "/")).await;
    for _ in 0..3 {
        page = b
            .submit(&page, "/login", &[("username", "alice"), ("password", "wrong")])
            .await;
        assert_eq!(page.status, 401);
    }
    // Locked: even the right password is refused, with the same words.
    let locked = b
        .submit(&page, "/login", &[("username", "alice"), ("password", PASSWORD)])
        .await;
    assert_eq!(locked.status, 401);
    assert!(locked.is_login_page());
    let user = api_get(&gw, &format!("/pools/employees/users/{id}")).await;
    assert!(user["locked_until"].as_i64().is_some(), "{user}");

    // An admin unlocks.
    let resp = gw
        .api(Method::POST, &format!("/pools/employees/users/{id}/unlock"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let landed = b
        .submit(&locked, "/login", &[("username", "alice"), ("password", PASSWORD)])
        .await;
    assert_eq!(landed.status, 200, "{:?}", landed.hops);
    assert!(!landed.is_login_page());

    // Locked again, then time unlocks.
    let b = Browser::new(&gw);
    let mut page = b.open(&wiki_url(&gw, "/")).await;
    for _ in 0..3 {
        page = b
            .submit(&page, "/login", &[("username", "alice"), ("password", "wrong")])
            .await;
    }
    assert!(
        b.submit(&page, "/login", &[("username", "alice"), ("password", PASSWORD)])
            .await
            .is_login_page()
    );
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let landed = b
        .submit(&page, "/login", &[("username", "alice"), ("password", PASSWORD)])
        .await;
    assert!(!landed.is_login_page(), "the lockout ended by itself");

    let actions = audit_actions(&gw, "employees").await;
    assert_eq!(actions.iter().filter(|a| *a == "user.locked").count(), 2);

    // A disabled user cannot sign in at all.
    gw.api(Method::POST, &format!("/pools/employees/users/{id}/disable"))
        .send()
        .await
        .unwrap();
    let b = Browser::new(&gw);
    let refused = sign_in(&b, &wiki_url(&gw, "/"), "alice", PASSWORD).await;
    assert!(refused.is_login_page());
}

/// Guessing across usernames from one address meets the pool's address limit: 429 with
/// `Retry-After`, even for the right password, while the same address signs in to
/// another pool as usual.
#[tokio::test]
async fn an_address_guessing_across_accounts_is_made_to_wait() {
    let up = Whoami::start().await;
    let limits = "address_lockout_attempts = 2\naddress_lockout_window = \"1m\"";
    let gw = Gateway::start(&pools(&up, limits, "")).await;
    add_user(&gw, "employees", "alice", PASSWORD, &[]).await;
    add_user(&gw, "suppliers", "alice", PASSWORD, &[]).await;
    let b = Browser::new(&gw);
    let mut page = b.open(&wiki_url(&gw, "/")).await;
    for guess in ["bob", "carol"] {
        page = b
            .submit(&page, "/login", &[("username", guess), ("password", "wrong")])
            .await;
        assert_eq!(page.status, 401);
    }
    let waiting = b
        .submit(&page, "/login", &[("username", "alice"), ("password", PASSWORD)])
        .await;
    assert_eq!(waiting.status, 429, "{}", waiting.body);
    assert!(waiting.body.contains("Too many failed sign-ins"), "{}", waiting.body);
    let retry: i64 = waiting.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "Retry-After: {retry}");
    assert_eq!(up.hits(), 0, "nothing reached the app");

    // Counted per pool: the same address signs in to the suppliers' app.
    let orders = sign_in(&b, &http(&gw, "orders.suppliers.localhost", "/"), "alice", PASSWORD).await;
    assert_eq!(orders.status, 200, "{:?}", orders.hops);
    assert_eq!(up.hits(), 1);

    let actions = audit_actions(&gw, "employees").await;
    assert!(actions.iter().any(|a| a == "signin.throttled"), "{actions:?}");
}

/// On the enrolment page: sets up the authenticator with a code of now, then follows the
/// recovery-codes page's link on to where the sign-in was going. The secret, and where it
/// ends.
pub async fn enroll_and_continue(b: &Browser, enroll: &Page) -> (String, Page) {
    let secret = enroll.text_of("secret").expect("the enrolment page");
    let codes = b
        .submit(enroll, "/login/enroll", &[("code", &totp_now(&secret, 0))])
        .await;
    let next = codes.body.split("<a href=\"").nth(1).expect("the page links on");
    let next = crate::browser::html_unescape(&next[..next.find('"').unwrap()]);
    let base = url::Url::parse(&codes.url).unwrap();
    (secret, b.open(base.join(&next).unwrap().as_str()).await)
}

pub fn totp_now(secret_b32: &str, offset_steps: i64) -> String {
    let secret = totp_rs::Secret::Encoded(secret_b32.to_owned()).to_bytes().unwrap();
    let t = totp_rs::TOTP::new(totp_rs::Algorithm::SHA1, 6, 1, 30, secret, None, "x".into()).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    t.generate((now + offset_steps * 30) as u64)
}

#[tokio::test]
async fn mfa_enrollment_step_up_and_sign_in() {
    let up = Whoami::start().await;
    let gw = Gateway::start(&pools(&up, "mfa = \"optional\"", "require_mfa = true")).await;
    add_user(&gw, "employees", "alice", PASSWORD, &[]).await;
    let b = Browser::new(&gw);
    // The wiki needs no second factor.
    let wiki = sign_in(&b, &wiki_url(&gw, "/"), "alice", PASSWORD).await;
    assert_eq!(wiki.status, 200);
    let echo = b.fetch(&wiki_url(&gw, "/")).await.json();
    let assertion = seen(&echo, "x-poolgate-assertion").pop().unwrap();
    let payload: Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            assertion.split('.').nth(1).unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(payload["mfa"], false);

    // The CRM does: a step-up, and since alice has no second factor yet, enrollment.
    let enroll = b.open(&http(&gw, "crm.employees.localhost", "/")).await;
    assert!(
        enroll.body.contains("Set up two-factor sign-in"),
        "{:?}\n{}",
        enroll.hops,
        enroll.body
    );
    assert!(enroll.body.contains("<svg class=\"qr\""));
    let secret = enroll.text_of("secret").unwrap();
    let wrong = b.submit(&enroll, "/login/enroll", &[("code", "000000")]).await;
    assert_eq!(wrong.status, 401);
    let codes_page = b
        .submit(&wrong, "/login/enroll", &[("code", &totp_now(&secret, 0))])
        .await;
    assert!(codes_page.body.contains("recovery codes"), "{}", codes_page.body);
    let list = codes_page.body.split("id=\"recovery-codes\">").nth(1).unwrap();
    let codes: Vec<String> = list
        .split("<li>")
        .skip(1)
        .map(|c| c[..c.find("</li>").unwrap()].to_owned())
        .collect();
    assert_eq!(codes.len(), 10);
    let next = codes_page.body.split("<a href=\"").nth(1).unwrap();
    let next = crate::browser::html_unescape(&next[..next.find('"').unwrap()]);
    let crm = b.open(&http(&gw, "login.employees.localhost", &next)).await;
    assert_eq!(crm.status, 200, "{:?}\n{}", crm.hops, crm.body);
    assert!(crm.url.starts_with(&http(&gw, "crm.employees.localhost", "/")));
    let echo = b.fetch(&http(&gw, "crm.employees.localhost", "/")).await.json();
    assert_eq!(seen(&echo, "x-poolgate-username"), ["alice"]);

    // Next sign-in: password, then a second factor — a recovery code works once.
    let out = b.sign_out(&wiki_url(&gw, "/.poolgate/logout")).await;
    assert_eq!(out.status, 200, "sign-out: {:?}\n{}", out.hops, out.body);
    let mfa = sign_in(&b, &wiki_url(&gw, "/"), "alice", PASSWORD).await;
    assert!(mfa.body.contains("Two-factor check"), "{}", mfa.body);
    let landed = b.submit(&mfa, "/login/mfa", &[("code", &codes[0])]).await;
    assert_eq!(landed.status, 200, "{:?}", landed.hops);
    let out = b.sign_out(&wiki_url(&gw, "/.poolgate/logout")).await;
    assert_eq!(out.status, 200, "sign-out: {:?}\n{}", out.hops, out.body);
    let mfa = sign_in(&b, &wiki_url(&gw, "/"), "alice", PASSWORD).await;
    let reused = b.submit(&mfa, "/login/mfa", &[("code", &codes[0])]).await;
    assert_eq!(reused.status, 401, "a recovery code works once");
    // The TOTP code of the enrollment's time step was spent; the next step's is accepted.
    let landed = b
        .submit(&reused, "/login/mfa", &[("code", &totp_now(&secret, 1))])
        .await;
    assert_eq!(landed.status, 200, "{:?}\n{}", landed.hops, landed.body);
    let crm = b.open(&http(&gw, "crm.employees.localhost", "/")).await;
    assert_eq!(
        crm.status, 200,
        "an MFA session opens the CRM without a prompt: {:?}",
        crm.hops
    );
}

#[tokio::test]
async fn a_revocation_on_one_node_is_honoured_by_another() {
    let up = Whoami::start().await;
    let shared = tempfile::tempdir().unwrap();
    let opts = shared_deployment(shared.path()).await;
    let one = Gateway::start_with(&pools(&up, "", ""), opts()).await;
    let two = Gateway::start_with(&pools(&up, "", ""), opts()).await;
    add_user(&one, "employees", "alice", PASSWORD, &[]).await;
    let b = Browser::new(&one);
    sign_in(&b, &http(&one, "wiki.employees.localhost", "/"), "alice", PASSWORD).await;
    let cookie = format!(
        "poolgate={}",
        b.cookie(&http(&one, "wiki.employees.localhost", "/"), "poolgate")
            .unwrap()
    );
    assert_eq!(
        get_with_cookie(&two, "wiki.employees.localhost", &cookie).await,
        200,
        "any node serves the session"
    );
    let out = b
        .sign_out(&http(&one, "wiki.employees.localhost", "/.poolgate/logout"))
        .await;
    assert_eq!(out.status, 200);
    assert_eq!(
        get_with_cookie(&one, "wiki.employees.localhost", &cookie).await,
        401,
        "at once on the node that signed out"
    );
    let mut refused = false;
    for _ in 0..40 {
        if get_with_cookie(&two, "wiki.employees.localhost", &cookie).await == 401 {
            refused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(refused, "the second node never learned of the sign-out");
}

#[tokio::test]
async fn bearer_tokens_cors_and_access_policy() {
    let up = Whoami::start().await;
    let crm = "allowed_groups = [\"sales\"]\n[pools.employees.apps.crm.cors]\norigins = [\"https://dashboard.example\"]\nmethods = [\"GET\", \"POST\"]\nheaders = [\"content-type\"]\ncredentials = true";
    let gw = Gateway::start(&pools(&up, "", crm)).await;
    let alice = add_user(&gw, "employees", "alice", PASSWORD, &["staff"]).await;
    let b = Browser::new(&gw);
    sign_in(&b, &wiki_url(&gw, "/"), "alice", PASSWORD).await;

    // A third-party client runs the code flow itself (single sign-on answers with a code
    // at once) and gets an access token for the wiki.
    let code = crate::op::code(&gw, &b, "&state=xyz&nonce=n1").await;
    let tokens = crate::op::wiki_tokens(&gw, &code).await;
    let access = tokens["access_token"].as_str().expect("an access token").to_owned();

    let call = |host: &'static str, token: String| {
        let gw = &gw;
        async move {
            gw.client()
                .get(http(gw, host, "/api"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
        }
    };
    let resp = call("wiki.employees.localhost", access.clone()).await;
    assert_eq!(resp.status(), 200);
    let echo: Value = resp.json().await.unwrap();
    assert_eq!(seen(&echo, "x-poolgate-user"), [alice.as_str()]);
    assert_eq!(
        seen(&echo, "authorization").len(),
        1,
        "the app may see its own bearer token"
    );
    assert_eq!(
        call("crm.employees.localhost", access.clone()).await.status(),
        401,
        "a token for the wiki is not one for the CRM"
    );
    let mut forged = access.clone();
    forged.pop();
    assert_eq!(call("wiki.employees.localhost", forged).await.status(), 401);

    // A code is redeemed once; presenting it again revokes what it gave (RFC 6749 §4.1.2).
    let again = crate::op::wiki_tokens(&gw, &code).await;
    assert_eq!(again["error"], "invalid_grant", "a code is redeemed once");
    assert_eq!(
        call("wiki.employees.localhost", access.clone()).await.status(),
        401,
        "the replayed code's token is revoked, though it was cached"
    );

    // CORS preflights are answered from the app's config, never redirected.
    let preflight = |origin: &'static str| {
        let gw = &gw;
        async move {
            gw.client()
                .request(Method::OPTIONS, http(gw, "crm.employees.localhost", "/api/items"))
                .header("origin", origin)
                .header("access-control-request-method", "POST")
                .header("accept", "text/html")
                .send()
                .await
                .unwrap()
        }
    };
    let ok = preflight("https://dashboard.example").await;
    assert_eq!(ok.status(), 204);
    assert_eq!(ok.headers()["access-control-allow-origin"], "https://dashboard.example");
    assert_eq!(ok.headers()["access-control-allow-credentials"], "true");
    let no = preflight("https://evil.example").await;
    assert_eq!(no.status(), 403);
    assert!(no.headers().get("access-control-allow-origin").is_none());

    // The CRM is for sales: alice (staff) is signed in, and turned away with a way out.
    let denied = b.open(&http(&gw, "crm.employees.localhost", "/")).await;
    assert_eq!(denied.status, 403, "{:?}", denied.hops);
    assert!(
        denied.body.contains("Employees") && denied.body.contains("/.poolgate/logout"),
        "{}",
        denied.body
    );
    assert!(up.hits() > 0);
}

/// What an app is told follows its config at once: a reload that renames a header is seen
/// by the next request of a session signed in before it, with no stale cached copy.
#[tokio::test]
async fn a_reload_renaming_identity_headers_applies_to_live_sessions() {
    let up = Whoami::start().await;
    let gw = Gateway::start(&pools(&up, "", "")).await;
    let alice = add_user(&gw, "employees", "alice", PASSWORD, &[]).await;
    let b = Browser::new(&gw);
    assert_eq!(sign_in(&b, &wiki_url(&gw, "/"), "alice", PASSWORD).await.status, 200);
    let echo = b.fetch(&wiki_url(&gw, "/")).await.json();
    assert_eq!(seen(&echo, "x-poolgate-user"), [alice.as_str()]);

    let renamed = pools(&up, "", "") + "\n[pools.employees.apps.wiki.headers]\nuser = \"X-Remote-User\"\n";
    gw.rewrite_pools(&renamed, "");
    let resp = gw.api(Method::POST, "/reload").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let echo = b.fetch(&wiki_url(&gw, "/")).await.json();
    assert_eq!(seen(&echo, "x-remote-user"), [alice.as_str()]);
    assert!(seen(&echo, "x-poolgate-user").is_empty(), "{echo}");
    assert_eq!(
        seen(&echo, "x-poolgate-assertion").len(),
        1,
        "the assertion still comes"
    );
}
