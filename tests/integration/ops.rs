//! The admin API and the CLI do each admin operation through the one implementation
//! (`admin::ops`): each test does an operation both ways, on one deployment, and finds
//! the same result and the same audit record.

use std::process::Output;

use reqwest::Method;
use serde_json::{Value, json};

use crate::browser::Browser;
use crate::signin::{PASSWORD, pools, sign_in};
use crate::support::*;

/// A running gateway on a store file the CLI can open too; the employees have a service
/// (`svc`, a confidential client that may use client_credentials) beside their apps.
async fn deployment() -> (Gateway, Whoami, tempfile::TempDir) {
    let up = Whoami::start().await;
    let db = tempfile::tempdir().unwrap();
    let opts = Options {
        store: Some(format!("sqlite:{}/store.db", db.path().display())),
        ..Options::default()
    };
    let svc = "[pools.employees.clients.svc]\nredirect_uris = [\"http://svc.localhost/cb\"]\n\
               grant_types = [\"client_credentials\"]\n";
    let gw = Gateway::start_with(&pools(&up, svc, ""), opts).await;
    (gw, up, db)
}

fn cli(gw: &Gateway, args: &[&str], stdin: &str) -> Output {
    run_cli(&gw.config_path(), args, stdin)
}

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn api(gw: &Gateway, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = gw.api(method, path);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn user(gw: &Gateway, username: &str) -> Value {
    let (_, list) = api(gw, Method::GET, "/pools/employees/users?limit=100", None).await;
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == username)
        .unwrap_or_else(|| panic!("no user {username} in {list}"))
        .clone()
}

/// The audit records of `action` in the employees pool: (actor, target).
async fn audited(gw: &Gateway, action: &str) -> Vec<(String, String)> {
    let (_, log) = api(gw, Method::GET, "/pools/employees/audit?limit=200", None).await;
    log["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == action)
        .map(|e| {
            (
                e["actor"].as_str().unwrap().to_owned(),
                e["target"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// What a user record says, less what differs between two people by nature.
pub(crate) fn shape(u: &Value) -> Value {
    let mut u = u.clone();
    for volatile in ["id", "username", "created_at", "updated_at", "email", "name"] {
        u.as_object_mut().unwrap().remove(volatile);
    }
    u
}

/// Both users, one made by each way in, the same in every field but the names.
async fn dave_by_cli_and_erin_by_api(gw: &Gateway) -> (Value, Value) {
    let out = cli(
        gw,
        &[
            "user",
            "add",
            "--pool",
            "employees",
            "Dave",
            "--email",
            "Dave@Example.com",
            "--name",
            "Dave Example",
            "--group",
            "staff",
            "--password-stdin",
        ],
        &format!("{PASSWORD}\n"),
    );
    ok(&out);
    let (status, _) = api(
        gw,
        Method::POST,
        "/pools/employees/users",
        Some(json!({"username": "Erin", "email": "Erin@Example.com", "name": "Erin Example", "groups": ["staff"], "password": PASSWORD})),
    )
    .await;
    assert_eq!(status, 201);
    (user(gw, "dave").await, user(gw, "erin").await)
}

#[tokio::test]
async fn creating_a_user_is_one_operation() {
    let (gw, _up, _db) = deployment().await;
    let (dave, erin) = dave_by_cli_and_erin_by_api(&gw).await;
    assert_eq!(shape(&dave), shape(&erin));
    // Both normalised alike, both able to sign in with the password given.
    assert_eq!(
        (dave["email"].as_str(), erin["email"].as_str()),
        (Some("dave@example.com"), Some("erin@example.com"))
    );
    for who in ["dave", "erin"] {
        let b = Browser::new(&gw);
        let page = sign_in(&b, &gw.url("wiki.employees.localhost", "/"), who, PASSWORD).await;
        assert_eq!(page.status, 200, "{who}: {}", page.body);
    }
    let created = audited(&gw, "user.create").await;
    assert!(
        created
            .iter()
            .any(|(actor, t)| actor.starts_with("cli:") && *t == dave["id"]),
        "{created:?}"
    );
    assert!(
        created
            .iter()
            .any(|(actor, t)| actor == "admin-api" && *t == erin["id"]),
        "{created:?}"
    );
    // The same refusal both ways: a username taken.
    let out = cli(
        &gw,
        &["user", "add", "--pool", "employees", "erin", "--no-password"],
        "",
    );
    assert!(!out.status.success());
    let (status, _) = api(
        &gw,
        Method::POST,
        "/pools/employees/users",
        Some(json!({"username": "dave"})),
    )
    .await;
    assert_eq!(status, 409);
}

#[tokio::test]
async fn disabling_enabling_and_unlocking_are_one_operation_each() {
    let (gw, _up, _db) = deployment().await;
    let (dave, erin) = dave_by_cli_and_erin_by_api(&gw).await;
    let erin_path = format!("/pools/employees/users/{}", erin["id"].as_str().unwrap());
    for (cmd, path, field, want) in [
        ("disable", "disable", "disabled", true),
        ("enable", "enable", "disabled", false),
        ("unlock", "unlock", "locked_until", false),
    ] {
        ok(&cli(&gw, &["user", cmd, "--pool", "employees", "dave"], ""));
        let (status, _) = api(&gw, Method::POST, &format!("{erin_path}/{path}"), None).await;
        assert_eq!(status, 200, "{cmd}");
        let (d, e) = (user(&gw, "dave").await, user(&gw, "erin").await);
        assert_eq!(shape(&d), shape(&e), "after {cmd}");
        if field == "disabled" {
            assert_eq!(d["disabled"], want, "after {cmd}");
        }
        let action = format!("user.{cmd}");
        let log = audited(&gw, &action).await;
        for (who, actor) in [(&dave, "cli:"), (&erin, "admin-api")] {
            assert!(
                log.iter().any(|(a, t)| a.starts_with(actor) && *t == who["id"]),
                "{action}: {log:?}"
            );
        }
    }
}

#[tokio::test]
async fn setting_a_password_is_one_operation() {
    let (gw, _up, _db) = deployment().await;
    let (dave, erin) = dave_by_cli_and_erin_by_api(&gw).await;
    const NEW: &str = "a new and longer passphrase";
    ok(&cli(
        &gw,
        &["user", "passwd", "--pool", "employees", "dave", "--password-stdin"],
        &format!("{NEW}\n"),
    ));
    let (status, _) = api(
        &gw,
        Method::PUT,
        &format!("/pools/employees/users/{}/password", erin["id"].as_str().unwrap()),
        Some(json!({"password": NEW})),
    )
    .await;
    assert_eq!(status, 204);
    for who in ["dave", "erin"] {
        let b = Browser::new(&gw);
        let old = sign_in(&b, &gw.url("wiki.employees.localhost", "/"), who, PASSWORD).await;
        assert!(old.is_login_page(), "{who} still signs in with the old password");
        let b = Browser::new(&gw);
        let new = sign_in(&b, &gw.url("wiki.employees.localhost", "/"), who, NEW).await;
        assert_eq!(new.status, 200, "{who}: {}", new.body);
    }
    let log = audited(&gw, "user.password").await;
    for (who, actor) in [(&dave, "cli:"), (&erin, "admin-api")] {
        assert!(
            log.iter().any(|(a, t)| a.starts_with(actor) && *t == who["id"]),
            "{log:?}"
        );
    }
}

#[tokio::test]
async fn importing_users_is_one_operation() {
    let (gw, _up, _db) = deployment().await;
    let csv = "username,email,groups\nfrank,frank@example.com,staff\n,nobody@example.com,staff\ngrace,grace@example.com,ops\n";
    let file = gw.dir.path().join("people.csv");
    std::fs::write(&file, csv).unwrap();
    // Atomic, one bad row: both refuse, name the same line and reason, write nothing.
    let out = cli(
        &gw,
        &[
            "user",
            "import",
            "--pool",
            "employees",
            file.to_str().unwrap(),
            "--atomic",
        ],
        "",
    );
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    let resp = gw
        .api(Method::POST, "/pools/employees/users/import?format=csv&atomic=true")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    let report: Value = resp.json().await.unwrap();
    assert_eq!(report["imported"], 0);
    let row = &report["errors"][0];
    assert_eq!(row["line"], 3);
    let cli_line = format!("{}:3: {}", file.display(), row["message"].as_str().unwrap());
    assert!(said.contains(&cli_line), "the CLI said {said:?}, the API {report}");
    let (_, list) = api(&gw, Method::GET, "/pools/employees/users?limit=100", None).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0, "{list}");
    let log = audited(&gw, "user.import").await;
    assert!(
        log.iter().any(|(a, _)| a.starts_with("cli:")) && log.iter().any(|(a, _)| a == "admin-api"),
        "{log:?}"
    );
}

#[tokio::test]
async fn rotating_keys_is_one_operation() {
    let (gw, _up, _db) = deployment().await;
    let keys = |v: &Value| -> Vec<(String, String)> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|k| {
                (
                    k["kid"].as_str().unwrap().to_owned(),
                    k["status"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let (_, before) = api(&gw, Method::GET, "/pools/employees/keys", None).await;
    ok(&cli(&gw, &["keys", "rotate", "--pool", "employees"], ""));
    let (_, after_cli) = api(&gw, Method::GET, "/pools/employees/keys", None).await;
    let (status, made) = api(&gw, Method::POST, "/pools/employees/keys/rotate", None).await;
    assert_eq!(status, 201);
    let (_, after_api) = api(&gw, Method::GET, "/pools/employees/keys", None).await;
    // Each way replaces every active key (one per algorithm the pool signs with) by a new
    // one, the old ones retired.
    let active = |ks: &[(String, String)]| {
        ks.iter()
            .filter(|(_, s)| s == "active")
            .map(|(k, _)| k.clone())
            .collect::<Vec<_>>()
    };
    for (from, to) in [(&before, &after_cli), (&after_cli, &after_api)] {
        let (from, to) = (keys(from), keys(to));
        assert_eq!(to.len(), from.len() + active(&from).len(), "{from:?} → {to:?}");
        assert_eq!(active(&to).len(), active(&from).len(), "{to:?}");
        assert!(
            active(&from).iter().all(|k| !active(&to).contains(k)),
            "{from:?} → {to:?}"
        );
    }
    assert!(keys(&after_api).iter().any(|(k, s)| *k == made["kid"] && s == "active"));
    let log = audited(&gw, "key.rotate").await;
    assert!(
        log.iter().any(|(a, _)| a.starts_with("cli:"))
            && log.iter().any(|(a, t)| a == "admin-api" && *t == made["kid"]),
        "{log:?}"
    );
}

#[tokio::test]
async fn a_client_secret_is_one_operation() {
    let (gw, _up, _db) = deployment().await;
    let out = cli(&gw, &["client", "secret", "--pool", "employees", "svc"], "");
    ok(&out);
    let by_cli = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let (status, made) = api(&gw, Method::POST, "/pools/employees/clients/svc/secret", None).await;
    assert_eq!(status, 201);
    let by_api = made["client_secret"].as_str().unwrap().to_owned();
    assert_ne!(by_cli, by_api);
    // Both work at the token endpoint (the earlier one within its overlap); a wrong one not.
    let token = |secret: String| {
        let client = gw.client().clone();
        let url = gw.url("login.employees.localhost", "/oidc/token");
        async move {
            client
                .post(url)
                .basic_auth("svc", Some(secret))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(token(by_cli).await, 200);
    assert_eq!(token(by_api).await, 200);
    assert_eq!(token("not-the-secret".into()).await, 401);
    // The same refusal both ways: a public client has no secret.
    let out = cli(&gw, &["client", "secret", "--pool", "employees", "wiki"], "");
    assert!(!out.status.success());
    let (status, _) = api(&gw, Method::POST, "/pools/employees/clients/wiki/secret", None).await;
    assert!(status == 404 || status == 422, "{status}");
    let log = audited(&gw, "client.secret").await;
    assert!(log.iter().any(|(a, t)| a.starts_with("cli:") && t == "svc"), "{log:?}");
    assert!(log.iter().any(|(a, t)| a == "admin-api" && t == "svc"), "{log:?}");
}
