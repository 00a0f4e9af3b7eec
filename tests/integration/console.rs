//! The admin console, as an operator's browser uses it: signing in through the console
//! pool's OpenID Provider with a second factor, then changing pools, apps and users
//! through the same operations as the API (`admin::ops`).

use reqwest::Method;
use serde_json::Value;

use crate::browser::{Browser, Page, html_unescape};
use crate::signin::{PASSWORD, add_user, pools, totp_now};
use crate::support::*;

async fn gateway() -> (Gateway, Whoami) {
    let up = Whoami::start().await;
    let opts = Options {
        admin: "console_pool = \"employees\"".into(),
        ..Options::default()
    };
    let gw = Gateway::start_with(&pools(&up, "mfa = \"optional\"", ""), opts).await;
    (gw, up)
}

fn console(gw: &Gateway, path: &str) -> String {
    format!("http://{}{path}", gw.admin)
}

/// Opens the console, signs in at the employees portal, sets up a second factor (the
/// console asks for one), and returns the page that ends on.
async fn sign_in_with_new_second_factor(b: &Browser, gw: &Gateway, username: &str) -> Page {
    let login = b.open(&console(gw, "/console")).await;
    assert!(login.is_login_page(), "{:?}\n{}", login.hops, login.body);
    let enroll = b
        .submit(&login, "/login", &[("username", username), ("password", PASSWORD)])
        .await;
    assert!(
        enroll.body.contains("Set up two-factor sign-in"),
        "the console asks for a second factor: {:?}\n{}",
        enroll.hops,
        enroll.body
    );
    let secret = enroll.text_of("secret").unwrap();
    let codes = b
        .submit(&enroll, "/login/enroll", &[("code", &totp_now(&secret, 0))])
        .await;
    let next = codes.body.split("<a href=\"").nth(1).unwrap();
    let next = html_unescape(&next[..next.find('"').unwrap()]);
    let base = url::Url::parse(&codes.url).unwrap();
    b.open(base.join(&next).unwrap().as_str()).await
}

fn csrf(page: &Page) -> String {
    page.input("csrf").expect("the page has a form with its CSRF token")
}

async fn api_json(gw: &Gateway, path: &str) -> (u16, Value) {
    let resp = gw.api(Method::GET, path).send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn an_operator_signs_in_with_a_second_factor_and_manages_pools_apps_and_users() {
    let (gw, _up) = gateway().await;
    add_user(&gw, "employees", "alice", PASSWORD, &["console_admins"]).await;
    add_user(&gw, "employees", "mallory", PASSWORD, &["staff"]).await;

    // Before signing in, the console sends you to sign in; a post changes nothing.
    let anonymous = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = anonymous.get(console(&gw, "/console")).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/console/signin");
    let r = anonymous
        .post(console(&gw, "/console"))
        .form(&[("id", "sneaky"), ("portal", "login.sneaky.localhost")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(api_json(&gw, "/pools/sneaky").await.0, 404);

    let b = Browser::new(&gw);
    let home = sign_in_with_new_second_factor(&b, &gw, "alice").await;
    assert_eq!(home.status, 200, "{:?}\n{}", home.hops, home.body);
    assert!(home.url.ends_with("/console"), "{}", home.url);
    assert!(
        home.body.contains("Signed in as <strong>alice</strong>"),
        "{}",
        home.body
    );
    // What the file declares is shown read-only with the line to change it at.
    let file = std::fs::read_to_string(gw.config_path()).unwrap();
    let line = file.lines().position(|l| l == "[pools.employees]").unwrap() + 1;
    assert!(home.body.contains("Employees"), "{}", home.body);
    assert!(
        home.body.contains(&format!("config file, line {line}")),
        "{}",
        home.body
    );
    let (_, employees) = api_json(&gw, "/pools/employees").await;
    assert_eq!(employees["origin"], serde_json::json!({ "kind": "file", "line": line }));

    // A pool made in the console is the API's at once, and so is its app.
    let made = b
        .submit(
            &home,
            "/console",
            &[
                ("id", "partners"),
                ("name", "Partners"),
                ("portal", "login.partners.localhost"),
                ("plan", "free"),
            ],
        )
        .await;
    assert_eq!(made.status, 200, "{}", made.body);
    assert!(made.url.ends_with("/console/pools/partners"), "{}", made.url);
    assert!(made.body.contains("0 of 3 apps on the free plan"), "{}", made.body);
    let (status, pool) = api_json(&gw, "/pools/partners").await;
    assert_eq!(status, 200);
    assert_eq!(pool["name"], "Partners");
    assert_eq!(pool["config_managed"], false);
    assert_eq!(pool["origin"]["kind"], "runtime");

    let apps = b.open(&console(&gw, "/console/pools/partners?tab=apps")).await;
    let app = b
        .submit(
            &apps,
            "/console/pools/partners/apps",
            &[
                ("id", "crm"),
                ("name", "CRM"),
                ("hosts", "crm.partners.localhost"),
                ("upstreams", "127.0.0.1:9"),
            ],
        )
        .await;
    assert_eq!(app.status, 200, "{}", app.body);
    assert!(app.body.contains("crm.partners.localhost"));
    assert!(app.body.contains("1 of 3 apps on the free plan"), "{}", app.body);
    let (status, crm) = api_json(&gw, "/pools/partners/apps/crm").await;
    assert_eq!(status, 200);
    assert_eq!(crm["hosts"], serde_json::json!(["crm.partners.localhost"]));
    // …and served at once: the new host sends people to its pool's sign-in.
    let r = anonymous
        .get(format!("http://{}/", gw.http))
        .header("host", "crm.partners.localhost")
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302, "the new app is served");

    // A bad app is refused with the reason, and nothing is written.
    let bad = b
        .submit(
            &apps,
            "/console/pools/partners/apps",
            &[
                ("id", "dup"),
                ("hosts", "crm.partners.localhost"),
                ("upstreams", "127.0.0.1:9"),
            ],
        )
        .await;
    assert_eq!(bad.status, 422, "{}", bad.body);
    assert!(bad.body.contains("Nothing was changed"));
    assert_eq!(api_json(&gw, "/pools/partners/apps/dup").await.0, 404);

    // A user added in the console is the API's.
    let users = b.open(&console(&gw, "/console/pools/partners")).await;
    let added = b
        .submit(
            &users,
            "/console/pools/partners/users",
            &[
                ("username", "pat"),
                ("email", "pat@partners.example"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(added.status, 200, "{}", added.body);
    assert!(added.body.contains("pat@partners.example"));
    let (_, list) = api_json(&gw, "/pools/partners/users").await;
    assert_eq!(list["items"][0]["username"], "pat");

    // A form posted without its token, or with another session's, is refused.
    let forged = b
        .client
        .post(console(&gw, "/console/pools/partners/users"))
        .form(&[("username", "eve"), ("csrf", "made-up")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    let forged = b
        .client
        .post(console(&gw, "/console/pools/partners/keys/rotate"))
        .send()
        .await
        .unwrap();
    assert!(forged.status().is_client_error(), "{}", forged.status());
    assert_eq!(
        api_json(&gw, "/pools/partners/users").await.1["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Every change is audited with the operator as actor, and the console filters the log.
    let (_, audit) = api_json(&gw, "/pools/partners/audit?actor=console:alice").await;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for action in ["pool.create", "app.create", "user.create"] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
    let log = b
        .open(&console(&gw, "/console/pools/partners?tab=audit&action=app.create"))
        .await;
    assert!(
        log.body.contains("<td>console:alice</td><td>app.create</td>"),
        "{}",
        log.body
    );
    assert!(!log.body.contains("<td>user.create</td>"), "filtered by action");

    // Deleting a pool asks for its id.
    let danger = b.open(&console(&gw, "/console/pools/partners?tab=apps")).await;
    let unconfirmed = b
        .submit(&danger, "/console/pools/partners/delete", &[("confirm", "")])
        .await;
    assert_eq!(unconfirmed.status, 400);
    assert_eq!(api_json(&gw, "/pools/partners").await.0, 200);
    let csrf_now = csrf(&danger);
    assert!(!csrf_now.is_empty());

    // Someone of the pool who is not in the console group is refused, even with MFA.
    let m = Browser::new(&gw);
    let refused = sign_in_with_new_second_factor(&m, &gw, "mallory").await;
    assert_eq!(refused.status, 403, "{:?}\n{}", refused.hops, refused.body);
    assert!(refused.body.contains("not in the console_admins group"));
    let (_, audit) = api_json(&gw, "/pools/employees/audit?action=console.signin").await;
    let outcomes: Vec<(&str, &str)> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["actor"].as_str().unwrap(), e["outcome"].as_str().unwrap()))
        .collect();
    assert!(outcomes.contains(&("console:alice", "ok")), "{outcomes:?}");
    assert!(outcomes.contains(&("console:mallory", "refused")), "{outcomes:?}");

    // Taken out of the group, alice is out at her next request.
    let (_, alice) = api_json(&gw, "/pools/employees/users?limit=10").await;
    let alice_id = alice["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "alice")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = gw
        .api(
            Method::DELETE,
            &format!("/pools/employees/groups/console_admins/members/{alice_id}"),
        )
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let out = b.open(&console(&gw, "/console")).await;
    assert_eq!(out.status, 403);
}

#[tokio::test]
async fn without_a_console_pool_the_console_says_how_to_set_one_up() {
    let up = Whoami::start().await;
    let gw = Gateway::start(&pools(&up, "", "")).await;
    let page = reqwest::get(console(&gw, "/console")).await.unwrap();
    assert_eq!(page.status(), 200);
    let body = page.text().await.unwrap();
    assert!(body.contains("The console is not set up"), "{body}");
    assert!(body.contains("console_pool"));
}
