//! The admin console, as an operator's browser uses it: signing in through the console
//! pool's OpenID Provider with a second factor, then changing pools, apps and users
//! through the same operations as the API (`admin::ops`).

use reqwest::Method;
use serde_json::{Value, json};

use crate::browser::{Browser, Page, html_unescape};
use crate::ops::shape;
use crate::signin::{PASSWORD, add_user, pools};
use crate::support::*;
use poolgate::config::StoreUrl;
use poolgate::store::Store;

async fn gateway() -> (Gateway, Whoami) {
    let up = Whoami::start().await;
    let opts = Options {
        admin: "console_pool = \"employees\"".into(),
        ..Options::default()
    };
    let employees = "mfa = \"optional\"\nlockout_attempts = 2";
    let gw = Gateway::start_with(&pools(&up, employees, ""), opts).await;
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
    crate::signin::enroll_and_continue(b, &enroll).await.1
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
    let (gw, whoami) = gateway().await;
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
    // Its upstream refuses connections: the health checks find it down, and say so, where
    // the employees' apps (the whoami upstream) are up.
    let mut apps = b.open(&console(&gw, "/console/pools/partners?tab=apps")).await;
    for _ in 0..50 {
        if apps
            .body
            .contains("<code>127.0.0.1:9</code> <span class=\"tag warn\">down</span>")
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        apps = b.open(&console(&gw, "/console/pools/partners?tab=apps")).await;
    }
    assert!(
        apps.body.contains("<span class=\"tag warn\">down</span>"),
        "{}",
        apps.body
    );
    let (_, crm) = api_json(&gw, "/pools/partners/apps/crm").await;
    assert_eq!(
        crm["health"],
        json!([{"server": "127.0.0.1:9", "up": false}]),
        "the API says the same"
    );
    let employees = b.open(&console(&gw, "/console/pools/employees?tab=apps")).await;
    let up = format!("<code>{}</code> <span class=\"tag\">up</span>", whoami.addr);
    assert!(employees.body.contains(&up), "{}", employees.body);

    // Plan limits are said where they bite: no federation on the free plan.
    let sources = b.open(&console(&gw, "/console/pools/partners?tab=sources")).await;
    assert!(
        sources.body.contains("The free plan has no federation"),
        "{}",
        sources.body
    );
    assert!(!sources.body.contains("Add source</button>"), "{}", sources.body);

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

    // A form posted from another site is refused even with this session's token (a page
    // that read it some other way); so is one without its token, or with a made-up one.
    let token = csrf(&users);
    let cross = b
        .client
        .post(console(&gw, "/console/pools/partners/users"))
        .header("origin", "http://attacker.localhost")
        .form(&[("username", "eve"), ("csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), 403);
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

/// The API's record of a user of the employees pool.
async fn employee(gw: &Gateway, username: &str) -> Value {
    let (_, list) = api_json(gw, "/pools/employees/users?limit=100").await;
    let found = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == username);
    found.unwrap_or_else(|| panic!("no user {username} in {list}")).clone()
}

/// `action` was recorded once for the console's change and once for the API's.
async fn both_audited(gw: &Gateway, pool: &str, action: &str, by_console: &str, by_api: &str) {
    let (_, log) = api_json(gw, &format!("/pools/{pool}/audit?action={action}&limit=200")).await;
    let rows: Vec<(String, String)> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["actor"].as_str().unwrap().into(),
                e["target"].as_str().unwrap().into(),
            )
        })
        .collect();
    for (actor, target) in [("console:alice", by_console), ("admin-api", by_api)] {
        assert!(
            rows.contains(&(actor.to_owned(), target.to_owned())),
            "{action} by {actor} on {target} in {rows:?}"
        );
    }
}

/// Who has an SSO session open in the employees pool.
async fn signed_in_users(gw: &Gateway) -> Vec<String> {
    let (_, list) = api_json(gw, "/pools/employees/sessions?limit=100").await;
    let items = list["items"].as_array().unwrap();
    items
        .iter()
        .map(|s| s["user_id"].as_str().unwrap().to_owned())
        .collect()
}

/// Each change the console offers is made once in the console (on carol) and once through
/// the API (on erin, her twin): the two come out the same, and each is audited as the
/// same action with its own actor. The console and the API share every operation.
#[tokio::test]
async fn each_console_operation_has_the_same_result_as_the_apis() {
    // The store is a file: the test writes the links a federated sign-in would.
    let up = Whoami::start().await;
    let db = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}/store.db", db.path().display());
    let opts = Options {
        admin: "console_pool = \"employees\"".into(),
        store: Some(url.clone()),
        ..Options::default()
    };
    let employees = "mfa = \"optional\"\nlockout_attempts = 2";
    let gw = Gateway::start_with(&pools(&up, employees, ""), opts).await;
    add_user(&gw, "employees", "alice", PASSWORD, &["console_admins"]).await;
    for twin in ["carol", "erin"] {
        add_user(&gw, "employees", twin, PASSWORD, &["staff"]).await;
        // Each sets up a second factor and opens a session at the pool on the way to the
        // console, which then turns them away.
        let refused = sign_in_with_new_second_factor(&Browser::new(&gw), &gw, twin).await;
        assert_eq!(refused.status, 403, "{}", refused.body);
    }
    let b = Browser::new(&gw);
    let home = sign_in_with_new_second_factor(&b, &gw, "alice").await;
    assert_eq!(home.status, 200, "{}", home.body);
    let (carol, erin) = (employee(&gw, "carol").await, employee(&gw, "erin").await);
    let (c, e) = (carol["id"].as_str().unwrap(), erin["id"].as_str().unwrap());
    let user_page = |id: &str| console(&gw, &format!("/console/pools/employees/users/{id}"));
    let page = b.open(&user_page(c)).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("second factor set up"), "{}", page.body);
    let api = |method: Method, path: String, body: Option<Value>| {
        let mut req = gw.api(method, &path);
        if let Some(body) = body {
            req = req.json(&body);
        }
        async move {
            let r = req.send().await.unwrap();
            assert!(r.status().is_success(), "{path}: {}", r.status());
        }
    };
    let users = "/pools/employees/users";

    // Editing details and groups.
    let edited = b
        .submit(
            &page,
            &format!("/console/pools/employees/users/{c}"),
            &[
                ("username", "carol"),
                ("email", "Carol@Example.com"),
                ("email_verified", "on"),
                ("name", "Twin"),
                ("groups", "staff, finance"),
            ],
        )
        .await;
    assert_eq!(edited.status, 200, "{}", edited.body);
    let patch =
        json!({"email": "Erin@Example.com", "email_verified": true, "name": "Twin", "groups": ["staff", "finance"]});
    api(Method::PATCH, format!("{users}/{e}"), Some(patch)).await;
    let (carol, erin) = (employee(&gw, "carol").await, employee(&gw, "erin").await);
    assert_eq!(shape(&carol), shape(&erin));
    assert_eq!(
        (carol["name"].as_str(), carol["email"].as_str()),
        (Some("Twin"), Some("carol@example.com"))
    );
    assert_eq!(carol["groups"], json!(["finance", "staff"]));
    both_audited(&gw, "employees", "user.update", c, e).await;

    // Ending a session.
    let signed_in = signed_in_users(&gw).await;
    assert!(signed_in.contains(&c.to_owned()) && signed_in.contains(&e.to_owned()));
    let (_, sessions) = api_json(&gw, "/pools/employees/sessions?limit=100").await;
    let session_of = |id: &str| {
        let items = sessions["items"].as_array().unwrap();
        let s = items.iter().find(|s| s["user_id"] == id).unwrap();
        s["id"].as_str().unwrap().to_owned()
    };
    let (sc, se) = (session_of(c), session_of(e));
    let tab = b.open(&console(&gw, "/console/pools/employees?tab=sessions")).await;
    let named = format!("<a href=\"/console/pools/employees/users/{c}\">carol</a>");
    assert!(tab.body.contains(&named), "sessions say whose they are: {}", tab.body);
    let revoked = b
        .submit(&tab, &format!("/console/pools/employees/sessions/{sc}/revoke"), &[])
        .await;
    assert_eq!(revoked.status, 200, "{}", revoked.body);
    api(Method::DELETE, format!("/pools/employees/sessions/{se}"), None).await;
    let signed_in = signed_in_users(&gw).await;
    assert!(!signed_in.contains(&c.to_owned()) && !signed_in.contains(&e.to_owned()));
    both_audited(&gw, "employees", "session.revoke", &sc, &se).await;

    // Forgetting the second factor.
    let reset = b
        .submit(&page, &format!("/console/pools/employees/users/{c}/reset-mfa"), &[])
        .await;
    assert_eq!(reset.status, 200, "{}", reset.body);
    assert!(reset.body.contains("no second factor"), "{}", reset.body);
    api(Method::DELETE, format!("{users}/{e}/mfa"), None).await;
    let (carol, erin) = (employee(&gw, "carol").await, employee(&gw, "erin").await);
    assert_eq!(
        (carol["mfa_enrolled"].as_bool(), erin["mfa_enrolled"].as_bool()),
        (Some(false), Some(false))
    );
    assert_eq!(shape(&carol), shape(&erin));
    both_audited(&gw, "employees", "user.mfa_reset", c, e).await;

    // Unlocking, after two wrong passwords locked each of them out.
    for twin in ["carol", "erin"] {
        let t = Browser::new(&gw);
        for _ in 0..2 {
            let login = t.open(&console(&gw, "/console")).await;
            let wrong = t
                .submit(
                    &login,
                    "/login",
                    &[("username", twin), ("password", "not the password")],
                )
                .await;
            assert_eq!(wrong.status, 401, "{}", wrong.body);
        }
    }
    let (carol, erin) = (employee(&gw, "carol").await, employee(&gw, "erin").await);
    assert!(
        carol["locked_until"].is_i64() && erin["locked_until"].is_i64(),
        "{carol}\n{erin}"
    );
    let page = b.open(&user_page(c)).await;
    let unlocked = b
        .submit(&page, &format!("/console/pools/employees/users/{c}/unlock"), &[])
        .await;
    assert_eq!(unlocked.status, 200, "{}", unlocked.body);
    api(Method::POST, format!("{users}/{e}/unlock"), None).await;
    let (carol, erin) = (employee(&gw, "carol").await, employee(&gw, "erin").await);
    assert_eq!(shape(&carol), shape(&erin));
    assert!(carol["locked_until"].is_null(), "{carol}");
    both_audited(&gw, "employees", "user.unlock", c, e).await;

    // Setting a password, then removing it.
    let new = "another correct horse";
    let set = b
        .submit(
            &page,
            &format!("/console/pools/employees/users/{c}/password"),
            &[("password", new)],
        )
        .await;
    assert_eq!(set.status, 200, "{}", set.body);
    api(
        Method::PUT,
        format!("{users}/{e}/password"),
        Some(json!({"password": new})),
    )
    .await;
    both_audited(&gw, "employees", "user.password", c, e).await;
    for twin in ["carol", "erin"] {
        // The new password signs in (a second factor is set up again, and the console
        // turns them away once more).
        let t = Browser::new(&gw);
        let login = t.open(&console(&gw, "/console")).await;
        let next = t
            .submit(&login, "/login", &[("username", twin), ("password", new)])
            .await;
        assert!(next.body.contains("Set up two-factor sign-in"), "{twin}: {}", next.body);
    }
    let removed = b
        .submit(
            &page,
            &format!("/console/pools/employees/users/{c}/password"),
            &[("remove", "on")],
        )
        .await;
    assert_eq!(removed.status, 200, "{}", removed.body);
    api(
        Method::PUT,
        format!("{users}/{e}/password"),
        Some(json!({"password": null})),
    )
    .await;
    let (carol, erin) = (employee(&gw, "carol").await, employee(&gw, "erin").await);
    assert_eq!(
        (carol["has_password"].as_bool(), erin["has_password"].as_bool()),
        (Some(false), Some(false))
    );
    assert_eq!(shape(&carol), shape(&erin));

    // Disabling, then enabling.
    for (action, disabled) in [("disable", true), ("enable", false)] {
        let done = b
            .submit(&page, &format!("/console/pools/employees/users/{c}/{action}"), &[])
            .await;
        assert_eq!(done.status, 200, "{}", done.body);
        api(Method::POST, format!("{users}/{e}/{action}"), None).await;
        let (carol, erin) = (employee(&gw, "carol").await, employee(&gw, "erin").await);
        assert_eq!(
            (carol["disabled"].as_bool(), erin["disabled"].as_bool()),
            (Some(disabled), Some(disabled))
        );
        both_audited(&gw, "employees", &format!("user.{action}"), c, e).await;
    }

    // Finding people: the console's search box and the API's `q` find the same.
    let search = b.open(&console(&gw, "/console/pools/employees?tab=users&q=Er")).await;
    assert!(
        search.body.contains(">erin</a>") && !search.body.contains(">carol</a>"),
        "{}",
        search.body
    );
    let (_, found) = api_json(&gw, "/pools/employees/users?q=Er").await;
    let names: Vec<&str> = found["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["erin"]);

    // Adding a user.
    let users_tab = b.open(&console(&gw, "/console/pools/employees")).await;
    let added = b
        .submit(
            &users_tab,
            "/console/pools/employees/users",
            &[
                ("username", "Frank"),
                ("email", "Frank@Example.com"),
                ("name", "Twin"),
                ("password", PASSWORD),
                ("groups", "staff finance"),
            ],
        )
        .await;
    assert_eq!(added.status, 200, "{}", added.body);
    let body = json!({"username": "Grace", "email": "Grace@Example.com", "name": "Twin", "password": PASSWORD, "groups": ["staff", "finance"]});
    api(Method::POST, users.into(), Some(body)).await;
    let (frank, grace) = (employee(&gw, "frank").await, employee(&gw, "grace").await);
    assert_eq!(shape(&frank), shape(&grace));
    assert_eq!(
        (frank["email"].as_str(), frank["has_password"].as_bool()),
        (Some("frank@example.com"), Some(true))
    );
    let (f, g) = (frank["id"].as_str().unwrap(), grace["id"].as_str().unwrap());
    both_audited(&gw, "employees", "user.create", f, g).await;

    // Importing: the same file (but the usernames) through each, all or nothing; its bad
    // row is refused with the same line and reason, and nothing is written.
    let file = |who: &str| format!("username,email,name\n{who}1,{who}1@example.com,One\nbad name!,x@example.com,Bad\n");
    let boundary = "poolgate-test-boundary";
    let mut form = String::new();
    for (name, value) in [("csrf", csrf(&page)), ("format", "csv".into()), ("atomic", "on".into())] {
        form += &format!("--{boundary}\r\ncontent-disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n");
    }
    form += &format!(
        "--{boundary}\r\ncontent-disposition: form-data; name=\"file\"; filename=\"people.csv\"\r\ncontent-type: text/csv\r\n\r\n{}\r\n--{boundary}--\r\n",
        file("cimport")
    );
    let by_console = b
        .client
        .post(console(&gw, "/console/pools/employees/users/import"))
        .header("content-type", format!("multipart/form-data; boundary={boundary}"))
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(by_console.status(), 422);
    let shown = html_unescape(&by_console.text().await.unwrap());
    let by_api = gw
        .api(Method::POST, "/pools/employees/users/import?format=csv&atomic=true")
        .body(file("aimport"))
        .send()
        .await
        .unwrap();
    assert_eq!(by_api.status(), 422);
    let report: Value = by_api.json().await.unwrap();
    assert_eq!(
        (report["imported"].as_i64(), report["errors"][0]["line"].as_i64()),
        (Some(0), Some(3))
    );
    let reason = report["errors"][0]["message"].as_str().unwrap();
    assert!(shown.contains(&format!("Line 3: {reason}")), "{reason} in\n{shown}");
    assert!(shown.contains("0 imported, 1 rows refused"), "{shown}");
    let (_, all) = api_json(&gw, "/pools/employees/users?limit=100").await;
    assert!(!all.to_string().contains("import1"), "nothing half-written: {all}");
    both_audited(&gw, "employees", "user.import", "employees", "employees").await;

    // Groups: made, then deleted.
    let groups = b.open(&console(&gw, "/console/pools/employees?tab=groups")).await;
    let made = b
        .submit(&groups, "/console/pools/employees/groups", &[("name", "auditors-c")])
        .await;
    assert_eq!(made.status, 200, "{}", made.body);
    api(
        Method::POST,
        "/pools/employees/groups".into(),
        Some(json!({"name": "auditors-a"})),
    )
    .await;
    let (_, list) = api_json(&gw, "/pools/employees/groups?limit=100").await;
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"auditors-c") && names.contains(&"auditors-a"),
        "{names:?}"
    );
    both_audited(&gw, "employees", "group.create", "auditors-c", "auditors-a").await;
    // …each given a member, then taken away.
    let groups = b.open(&console(&gw, "/console/pools/employees?tab=groups")).await;
    let members = "/console/pools/employees/groups/auditors-c/members";
    let added = b
        .submit(&groups, members, &[("username", "carol"), ("member", "add")])
        .await;
    assert_eq!(added.status, 200, "{}", added.body);
    api(
        Method::PUT,
        format!("/pools/employees/groups/auditors-a/members/{e}"),
        None,
    )
    .await;
    let (carol, erin) = (employee(&gw, "carol").await, employee(&gw, "erin").await);
    assert!(
        carol["groups"].as_array().unwrap().contains(&json!("auditors-c")),
        "{carol}"
    );
    assert!(
        erin["groups"].as_array().unwrap().contains(&json!("auditors-a")),
        "{erin}"
    );
    both_audited(&gw, "employees", "group.add_member", "auditors-c", "auditors-a").await;
    let taken = b
        .submit(&groups, members, &[("username", "carol"), ("member", "remove")])
        .await;
    assert_eq!(taken.status, 200, "{}", taken.body);
    api(
        Method::DELETE,
        format!("/pools/employees/groups/auditors-a/members/{e}"),
        None,
    )
    .await;
    let (carol, erin) = (employee(&gw, "carol").await, employee(&gw, "erin").await);
    assert_eq!(shape(&carol), shape(&erin));
    assert!(!carol.to_string().contains("auditors-"), "{carol}");
    both_audited(&gw, "employees", "group.remove_member", "auditors-c", "auditors-a").await;
    let gone = b
        .submit(&groups, "/console/pools/employees/groups/auditors-c/delete", &[])
        .await;
    assert_eq!(gone.status, 200, "{}", gone.body);
    api(Method::DELETE, "/pools/employees/groups/auditors-a".into(), None).await;
    let (_, list) = api_json(&gw, "/pools/employees/groups?limit=100").await;
    assert!(!list.to_string().contains("auditors-"), "{list}");
    both_audited(&gw, "employees", "group.delete", "auditors-c", "auditors-a").await;

    // Keys: each rotation retires the active key and publishes a new one.
    let active = |keys: &Value| {
        let items = keys.as_array().unwrap();
        items.iter().filter(|k| k["status"] == "active").count()
    };
    let (_, before) = api_json(&gw, "/pools/employees/keys").await;
    let keys = b.open(&console(&gw, "/console/pools/employees?tab=keys")).await;
    let rotated = b.submit(&keys, "/console/pools/employees/keys/rotate", &[]).await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let (_, by_console) = api_json(&gw, "/pools/employees/keys").await;
    api(Method::POST, "/pools/employees/keys/rotate".into(), None).await;
    let (_, by_api) = api_json(&gw, "/pools/employees/keys").await;
    let count = |v: &Value| v.as_array().unwrap().len();
    assert_eq!(count(&by_console) - count(&before), count(&by_api) - count(&by_console));
    assert_eq!(
        (active(&before), active(&by_console), active(&by_api)),
        (active(&before), active(&before), active(&before))
    );

    // Apps, each made through the API first.
    for id in ["twin-c", "twin-a"] {
        let body = json!({"id": id, "hosts": [format!("{id}.employees.localhost")], "upstreams": ["127.0.0.1:9"]});
        api(Method::POST, "/pools/employees/apps".into(), Some(body)).await;
    }
    // Apps: changed (new hosts and upstreams; what the change leaves out stays).
    let edit = b.open(&console(&gw, "/console/pools/employees/apps/twin-c")).await;
    assert_eq!(edit.status, 200, "{}", edit.body);
    let changed = b
        .submit(
            &edit,
            "/console/pools/employees/apps/twin-c",
            &[
                ("name", "Twin"),
                ("hosts", "twin-c.employees.localhost, twin-c2.employees.localhost"),
                ("upstreams", &up.addr.to_string()),
            ],
        )
        .await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    let patch = json!({"name": "Twin", "hosts": ["twin-a.employees.localhost", "twin-a2.employees.localhost"],
                       "upstreams": [up.addr.to_string()]});
    api(Method::PATCH, "/pools/employees/apps/twin-a".into(), Some(patch)).await;
    let app = |id: &str| {
        let gw = &gw;
        let id = id.to_owned();
        async move {
            let (_, mut app) = api_json(gw, &format!("/pools/employees/apps/{id}")).await;
            let hosts = app.as_object_mut().unwrap().remove("hosts").unwrap();
            app.as_object_mut().unwrap().remove("id");
            (app, hosts)
        }
    };
    let ((tc, hc), (ta, ha)) = (app("twin-c").await, app("twin-a").await);
    assert_eq!(tc, ta);
    assert_eq!(
        (tc["name"].as_str(), hc[1].as_str()),
        (Some("Twin"), Some("twin-c2.employees.localhost"))
    );
    assert_eq!(ha[1], "twin-a2.employees.localhost");
    both_audited(&gw, "employees", "app.update", "twin-c", "twin-a").await;
    // …served at once: the added host is the app's (it asks for a sign-in), where a host
    // no app has is not served.
    let (status, echo) = gw.get("twin-c2.employees.localhost", "/").await;
    assert_eq!(status, 401, "{echo}");
    let (status, _) = gw.get("twin-c3.employees.localhost", "/").await;
    assert_ne!(status, 401);
    // An app of the config file is changed there, not here: both ways refuse alike.
    let file_app = b.open(&console(&gw, "/console/pools/employees/apps/wiki")).await;
    assert!(
        file_app.body.contains("declared in the config file"),
        "{}",
        file_app.body
    );
    let refused = b
        .submit(
            &edit,
            "/console/pools/employees/apps/wiki",
            &[("hosts", "x.localhost"), ("upstreams", "127.0.0.1:9")],
        )
        .await;
    assert_eq!(refused.status, 409, "{}", refused.body);
    let r = gw
        .api(Method::PATCH, "/pools/employees/apps/wiki")
        .json(&json!({"hosts": ["x.localhost"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);

    // Apps: deleted.
    let apps = b.open(&console(&gw, "/console/pools/employees?tab=apps")).await;
    assert!(apps.body.contains("twin-c.employees.localhost"), "{}", apps.body);
    let gone = b
        .submit(&apps, "/console/pools/employees/apps/twin-c/delete", &[])
        .await;
    assert_eq!(gone.status, 200, "{}", gone.body);
    api(Method::DELETE, "/pools/employees/apps/twin-a".into(), None).await;
    for id in ["twin-c", "twin-a"] {
        assert_eq!(
            api_json(&gw, &format!("/pools/employees/apps/{id}")).await.0,
            404,
            "{id}"
        );
    }
    both_audited(&gw, "employees", "app.delete", "twin-c", "twin-a").await;

    // Sources: added, then deleted.
    let sources = b.open(&console(&gw, "/console/pools/employees?tab=sources")).await;
    let added = b
        .submit(
            &sources,
            "/console/pools/employees/sources",
            &[
                ("id", "twin-c"),
                ("name", "Twin"),
                ("kind", "pool"),
                ("pool", "suppliers"),
                ("first_login", "challenge"),
                ("domains", "twin-c.example"),
            ],
        )
        .await;
    assert_eq!(added.status, 200, "{}", added.body);
    let body = json!({"id": "twin-a", "name": "Twin", "kind": "pool", "pool": "suppliers", "first_login": "challenge",
                      "domains": ["twin-a.example"]});
    api(Method::POST, "/pools/employees/sources".into(), Some(body)).await;
    let (_, made) = api_json(&gw, "/pools/employees/sources").await;
    let source = |id: &str| {
        let items = made.as_array().unwrap();
        let mut s = items.iter().find(|s| s["id"] == id).unwrap().clone();
        s.as_object_mut().unwrap().remove("id");
        s.as_object_mut().unwrap().remove("domains");
        s
    };
    assert_eq!(source("twin-c"), source("twin-a"));
    assert_eq!(source("twin-c")["name"], "Twin");
    assert_eq!(source("twin-c")["first_login"], "challenge");
    both_audited(&gw, "employees", "source.create", "twin-c", "twin-a").await;
    // An incomplete source is refused with the reason, and nothing is written.
    let refused = b
        .submit(
            &sources,
            "/console/pools/employees/sources",
            &[("id", "half"), ("kind", "oidc")],
        )
        .await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(refused.body.contains("issuer"), "{}", refused.body);
    let sources = b.open(&console(&gw, "/console/pools/employees?tab=sources")).await;
    assert!(
        sources.body.contains("twin-c") && !sources.body.contains(">half<"),
        "{}",
        sources.body
    );
    let gone = b
        .submit(&sources, "/console/pools/employees/sources/twin-c/delete", &[])
        .await;
    assert_eq!(gone.status, 200, "{}", gone.body);
    api(Method::DELETE, "/pools/employees/sources/twin-a".into(), None).await;
    let (_, left) = api_json(&gw, "/pools/employees/sources").await;
    assert!(!left.to_string().contains("twin-"), "{left}");
    both_audited(&gw, "employees", "source.delete", "twin-c", "twin-a").await;

    // Links (as a federated first sign-in writes them): one moved to another user and
    // one removed, each way.
    let store = Store::connect(&StoreUrl(url), poolgate::clock::system()).await.unwrap();
    let dave = add_user(&gw, "employees", "dave", PASSWORD, &[]).await;
    let mut links = Vec::new();
    for (subject, user) in [("s1", c), ("s2", e), ("s3", c), ("s4", e)] {
        let link = store.link(
            "employees",
            "suppliers",
            "http://login.suppliers.localhost",
            subject,
            user,
        );
        links.push(link.await.unwrap().id);
    }
    let page = b.open(&user_page(c)).await;
    assert!(page.body.contains("<code>s1</code>"), "{}", page.body);
    let moved = b
        .submit(
            &page,
            &format!("/console/pools/employees/links/{}", links[0]),
            &[("to", "dave")],
        )
        .await;
    assert_eq!(moved.status, 200, "{}", moved.body);
    api(
        Method::PATCH,
        format!("/pools/employees/links/{}", links[1]),
        Some(json!({"user_id": dave})),
    )
    .await;
    let removed = b
        .submit(
            &page,
            &format!("/console/pools/employees/links/{}", links[2]),
            &[("from_user", c)],
        )
        .await;
    assert_eq!(removed.status, 200, "{}", removed.body);
    assert!(
        removed.url.ends_with(&format!("/users/{c}")),
        "back on carol's page: {}",
        removed.url
    );
    api(Method::DELETE, format!("/pools/employees/links/{}", links[3]), None).await;
    let (_, all) = api_json(&gw, "/pools/employees/links?limit=100").await;
    let held: Vec<(&str, &str)> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["subject"].as_str().unwrap(), l["user_id"].as_str().unwrap()))
        .collect();
    assert_eq!(held.len(), 2, "{held:?}");
    assert!(
        held.contains(&("s1", dave.as_str())) && held.contains(&("s2", dave.as_str())),
        "{held:?}"
    );
    let tab = b.open(&console(&gw, "/console/pools/employees?tab=sources")).await;
    assert!(tab.body.contains(&format!("/users/{dave}\">dave</a>")), "{}", tab.body);
    both_audited(&gw, "employees", "link.move", &links[0], &links[1]).await;
    both_audited(&gw, "employees", "link.delete", &links[2], &links[3]).await;

    // Users: deleted.
    let refused = b
        .submit(
            &page,
            &format!("/console/pools/employees/users/{c}/delete"),
            &[("confirm", "erin")],
        )
        .await;
    assert_eq!(refused.status, 400, "the wrong username does not confirm");
    let deleted = b
        .submit(
            &page,
            &format!("/console/pools/employees/users/{c}/delete"),
            &[("confirm", "carol")],
        )
        .await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    api(Method::DELETE, format!("{users}/{e}"), None).await;
    for id in [c, e] {
        assert_eq!(api_json(&gw, &format!("{users}/{id}")).await.0, 404);
    }
    both_audited(&gw, "employees", "user.delete", c, e).await;

    // Pools: deleted (each made through the API first).
    for id in ["twin-c", "twin-a"] {
        let body = json!({"id": id, "name": id, "portal": format!("login.{id}.localhost")});
        api(Method::POST, "/pools".into(), Some(body)).await;
    }
    let pool = b.open(&console(&gw, "/console/pools/twin-c?tab=apps")).await;
    let gone = b
        .submit(&pool, "/console/pools/twin-c/delete", &[("confirm", "twin-c")])
        .await;
    assert_eq!(gone.status, 200, "{}", gone.body);
    api(Method::DELETE, "/pools/twin-a".into(), None).await;
    for id in ["twin-c", "twin-a"] {
        assert_eq!(api_json(&gw, &format!("/pools/{id}")).await.0, 404, "{id}");
    }

    // Signing out of the console ends alice's session at the pool too: the console asks
    // for a password again, and her session is gone from every node's list.
    let alice = employee(&gw, "alice").await["id"].as_str().unwrap().to_owned();
    assert!(signed_in_users(&gw).await.contains(&alice));
    let home = b.open(&console(&gw, "/console")).await;
    let out = b.submit(&home, "/console/signout", &[]).await;
    assert_eq!(out.status, 200, "{}", out.body);
    assert!(!signed_in_users(&gw).await.contains(&alice));
    let again = b.open(&console(&gw, "/console")).await;
    assert!(again.is_login_page(), "{:?}\n{}", again.hops, again.body);
}

/// The console session stands on the operator's session at the pool: revoked there (by
/// another operator, say), the console asks for a sign-in at the next request.
#[tokio::test]
async fn a_session_revoked_at_the_pool_ends_the_console_session() {
    let (gw, _up) = gateway().await;
    add_user(&gw, "employees", "alice", PASSWORD, &["console_admins"]).await;
    let b = Browser::new(&gw);
    let home = sign_in_with_new_second_factor(&b, &gw, "alice").await;
    assert_eq!(home.status, 200, "{}", home.body);
    let (_, sessions) = api_json(&gw, "/pools/employees/sessions").await;
    let sso = sessions["items"][0]["id"].as_str().unwrap().to_owned();
    let r = gw
        .api(Method::DELETE, &format!("/pools/employees/sessions/{sso}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let again = b.open(&console(&gw, "/console")).await;
    assert!(again.is_login_page(), "{:?}\n{}", again.hops, again.body);
    let post = b
        .client
        .post(console(&gw, "/console/pools/employees/keys/rotate"))
        .form(&[("csrf", csrf(&home).as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 303, "a post is sent to sign in, and changes nothing");
    let (_, keys) = api_json(&gw, "/pools/employees/keys").await;
    assert_eq!(keys.as_array().unwrap().len(), 1, "{keys}");
}
