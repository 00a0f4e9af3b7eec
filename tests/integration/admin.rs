//! The admin API against a running gateway: the token, pool isolation, plan limits,
//! imports, and changes served without a restart.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::*;

async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

fn enterprise(pools: &str) -> String {
    pools
        .replace("name = \"Employees\"", "name = \"Employees\"\nplan = \"enterprise\"")
        .replace("name = \"Suppliers\"", "name = \"Suppliers\"\nplan = \"enterprise\"")
}

#[tokio::test]
async fn the_api_needs_the_admin_token() {
    let up = Whoami::start().await;
    let gw = Gateway::start(&two_pools(&up, &up)).await;
    let url = format!("http://{}/api/pools", gw.admin);
    let client = reqwest::Client::new();
    let resp = client.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["www-authenticate"], "Bearer realm=\"poolgate admin\"");
    for wrong in ["", "x", "test-admin-token-012345678", "test-admin-token-0123456789x"] {
        let resp = client.get(&url).bearer_auth(wrong).send().await.unwrap();
        assert_eq!(resp.status(), 401, "token {wrong:?}");
    }
    let resp = client
        .get(&url)
        .header("authorization", format!("Basic {ADMIN_TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    // Refused before any handler runs: a write without the token changes nothing.
    let resp = client
        .post(format!("http://{}/api/pools/employees/users", gw.admin))
        .json(&json!({"username": "mallory"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let (status, pools) = send(gw.api(Method::GET, "/pools")).await;
    assert_eq!(status, 200);
    assert_eq!(
        pools
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["employees", "suppliers"]
    );
    let (_, users) = send(gw.api(Method::GET, "/pools/employees/users")).await;
    assert!(users["items"].as_array().unwrap().is_empty(), "mallory was not created");
    // Health and metrics stay open on the (loopback) admin listener.
    assert_eq!(
        client
            .get(format!("http://{}/healthz", gw.admin))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn pools_are_isolated_at_the_api() {
    let up = Whoami::start().await;
    let gw = Gateway::start(&enterprise(&two_pools(&up, &up))).await;
    let (status, alice) = send(gw.api(Method::POST, "/pools/employees/users").json(&json!({
        "username": "alice", "email": "alice@example.com", "password": "correct horse battery", "groups": ["staff"]
    })))
    .await;
    assert_eq!(status, 201, "{alice}");
    assert!(
        alice.get("password").is_none() && alice.get("password_hash").is_none(),
        "{alice}"
    );
    assert_eq!(alice["has_password"], true);
    let id = alice["id"].as_str().unwrap();

    // The same email in another pool is another person.
    let (status, other) = send(
        gw.api(Method::POST, "/pools/suppliers/users")
            .json(&json!({"username": "alice", "email": "alice@example.com"})),
    )
    .await;
    assert_eq!(status, 201, "{other}");
    assert_ne!(other["id"], alice["id"]);
    // …but not twice in one pool.
    let (status, body) = send(
        gw.api(Method::POST, "/pools/employees/users")
            .json(&json!({"username": "alice2", "email": "ALICE@example.com"})),
    )
    .await;
    assert_eq!(status, 409, "{body}");

    // An id of one pool, used in another pool's path: 404 for every verb.
    for (method, path, body) in [
        (Method::GET, format!("/pools/suppliers/users/{id}"), None),
        (
            Method::PATCH,
            format!("/pools/suppliers/users/{id}"),
            Some(json!({"name": "x"})),
        ),
        (Method::DELETE, format!("/pools/suppliers/users/{id}"), None),
        (Method::POST, format!("/pools/suppliers/users/{id}/disable"), None),
        (
            Method::PUT,
            format!("/pools/suppliers/users/{id}/password"),
            Some(json!({"password": "pwned-pwned"})),
        ),
        (Method::PUT, format!("/pools/suppliers/groups/staff/members/{id}"), None),
    ] {
        let mut req = gw.api(method.clone(), &path);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let (status, body) = send(req).await;
        assert_eq!(status, 404, "{method} {path}: {body}");
        assert_eq!(body["error"]["code"], "not_found");
    }
    let (status, still) = send(gw.api(Method::GET, &format!("/pools/employees/users/{id}"))).await;
    assert_eq!(status, 200);
    assert_eq!(still["disabled"], false, "the cross-pool disable did nothing");
    assert_eq!(still["name"], "");
    let (status, _) = send(gw.api(Method::GET, "/pools/nowhere/users")).await;
    assert_eq!(status, 404);

    // The audit log saw the changes, with where they came from.
    let (_, audit) = send(gw.api(Method::GET, "/pools/employees/audit")).await;
    let first = &audit["items"][0];
    assert_eq!(first["action"], "user.create");
    assert_eq!(first["actor"], "admin-api");
    assert_eq!(first["client"], "127.0.0.1");
    assert_eq!(first["target"], id);
}

#[tokio::test]
async fn plan_limits_are_enforced_by_the_api() {
    let up = Whoami::start().await;
    let gw = Gateway::start(&two_pools(&up, &up)).await;
    // Free plan: 50 users.
    let rows: String = (0..50).map(|i| format!("{{\"username\": \"u{i}\"}}\n")).collect();
    let (status, report) = send(
        gw.api(Method::POST, "/pools/suppliers/users/import?atomic=true")
            .body(rows),
    )
    .await;
    assert_eq!((status, report["imported"].as_u64()), (200, Some(50)), "{report}");
    let (status, body) = send(
        gw.api(Method::POST, "/pools/suppliers/users")
            .json(&json!({"username": "u50"})),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "plan_limit");
    assert!(body["error"]["message"].as_str().unwrap().contains("allows 50 users"));
    let (_, page) = send(gw.api(Method::GET, "/pools/suppliers/users?limit=1000")).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 50, "nothing half-written");

    // Free plan: 3 apps (it has 1), no federation.
    for i in 0..2 {
        let (status, body) = send(gw.api(Method::POST, "/pools/suppliers/apps").json(&json!({
            "id": format!("extra{i}"), "hosts": [format!("extra{i}.suppliers.localhost")], "upstreams": [up.addr.to_string()]
        })))
        .await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, body) = send(gw.api(Method::POST, "/pools/suppliers/apps").json(&json!({
        "id": "one-too-many", "hosts": ["more.suppliers.localhost"], "upstreams": [up.addr.to_string()]
    })))
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("the free plan allows 3 apps"),
        "{body}"
    );
    let (status, body) = send(
        gw.api(Method::POST, "/pools/suppliers/sources")
            .json(&json!({"id": "staff", "kind": "pool", "pool": "employees"})),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("does not include federation"),
        "{body}"
    );
    let (_, apps) = send(gw.api(Method::GET, "/pools/suppliers/apps")).await;
    assert_eq!(apps.as_array().unwrap().len(), 3);
    let (status, _) = gw.get("more.suppliers.localhost", "/").await;
    assert_eq!(status, 421, "the refused app is not served");
}

#[tokio::test]
async fn imports_through_the_api_report_lines_and_atomic_writes_nothing() {
    let up = Whoami::start().await;
    let gw = Gateway::start(&enterprise(&two_pools(&up, &up))).await;
    let csv = "username,email,password\nann,ann@example.com,pw-one-two\nbob,not-an-email,\ncid,,\n";
    let (status, report) = send(
        gw.api(Method::POST, "/pools/employees/users/import?format=csv&atomic=true")
            .body(csv),
    )
    .await;
    assert_eq!(status, 422, "{report}");
    assert_eq!(report["imported"], 0);
    assert_eq!(report["errors"][0]["line"], 3);
    let (_, page) = send(gw.api(Method::GET, "/pools/employees/users")).await;
    assert!(
        page["items"].as_array().unwrap().is_empty(),
        "atomic import wrote nothing"
    );

    let (status, report) = send(
        gw.api(Method::POST, "/pools/employees/users/import?format=csv")
            .body(csv),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(report["imported"], 2, "{report}");
    let (_, page) = send(gw.api(Method::GET, "/pools/employees/users")).await;
    let names: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ann", "cid"]);
}

#[tokio::test]
async fn api_changes_are_served_without_a_restart() {
    let wiki = Whoami::start().await;
    let crm = Whoami::start().await;
    let gw = Gateway::start(&enterprise(&two_pools(&wiki, &wiki))).await;

    let (status, _) = gw.get("crm.employees.localhost", "/").await;
    assert_eq!(status, 421);
    let (status, app) = send(gw.api(Method::POST, "/pools/employees/apps").json(&json!({
        "id": "crm", "hosts": ["crm.employees.localhost"], "upstreams": [crm.addr.to_string()], "timeout": "5s", "public_paths": ["/"]
    })))
    .await;
    assert_eq!(status, 201, "{app}");
    assert_eq!(app["config_managed"], false);
    let (status, echo) = gw.get("crm.employees.localhost", "/hello").await;
    assert_eq!(status, 200, "served at once: {echo}");
    assert_eq!(echo["served_by"], crm.addr.to_string());

    // A whole pool at run time, with its portal.
    let (status, pool) =
        send(gw.api(Method::POST, "/pools").json(
            &json!({"id": "partners", "name": "Partners", "portal": "login.partners.localhost", "plan": "basic"}),
        ))
        .await;
    assert_eq!(status, 201, "{pool}");
    let (status, page) = gw.get("login.partners.localhost", "/").await;
    assert_eq!(status, 200);
    assert!(page.as_str().unwrap().contains("Partners"));
    let (status, keys) = send(gw.api(Method::GET, "/pools/partners/keys")).await;
    assert_eq!(status, 200);
    assert_eq!(
        keys.as_array().unwrap().len(),
        1,
        "a new pool gets a signing key: {keys}"
    );

    // Invalid objects are refused with the reason, and nothing changes.
    let (status, body) = send(gw.api(Method::POST, "/pools/employees/apps").json(&json!({
        "id": "thief", "hosts": ["orders.suppliers.localhost"], "upstreams": [crm.addr.to_string()]
    })))
    .await;
    assert_eq!(status, 422);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("duplicate host `orders.suppliers.localhost`"),
        "{body}"
    );
    let (status, body) = send(
        gw.api(Method::POST, "/pools/employees/apps")
            .json(&json!({"id": "bad", "hosts": ["bad.localhost"], "upstreams": ["x"], "color": "red"})),
    )
    .await;
    assert_eq!(status, 422);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown field `color`"),
        "{body}"
    );
    let (status, echo) = gw.get("orders.suppliers.localhost", "/").await;
    assert_eq!(
        (status, echo["served_by"].as_str()),
        (200, Some(wiki.addr.to_string().as_str()))
    );

    // What the file declares is read-only here.
    let (status, body) = send(gw.api(Method::DELETE, "/pools/employees/apps/wiki")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("config_managed")));
    let (status, _) = send(gw.api(Method::DELETE, "/pools/employees")).await;
    assert_eq!(status, 409);

    // Deleting the run-time app takes it off the gateway, and a reload keeps what remains.
    let (status, _) = send(gw.api(Method::DELETE, "/pools/employees/apps/crm")).await;
    assert_eq!(status, 204);
    let (status, _) = gw.get("crm.employees.localhost", "/").await;
    assert_eq!(status, 421);
    gw.sighup();
    wait_until(|| gw.log().matches("configuration reloaded").count() >= 4).await;
    let (status, _) = gw.get("login.partners.localhost", "/").await;
    assert_eq!(status, 200, "run-time objects survive a reload of the file");
}

#[tokio::test]
async fn keys_sessions_and_links_are_scoped_by_pool() {
    let up = Whoami::start().await;
    let gw = Gateway::start(&enterprise(&two_pools(&up, &up))).await;
    let (_, before) = send(gw.api(Method::GET, "/pools/employees/keys")).await;
    let old = before[0]["kid"].as_str().unwrap().to_owned();
    let (status, key) = send(gw.api(Method::POST, "/pools/employees/keys/rotate")).await;
    assert_eq!(status, 201);
    assert_eq!(key["public_jwk"]["kty"], "EC");
    assert!(key["public_jwk"].get("d").is_none(), "no private part is ever served");
    let (_, after) = send(gw.api(Method::GET, "/pools/employees/keys")).await;
    let statuses: Vec<(&str, &str)> = after
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (k["kid"].as_str().unwrap(), k["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        statuses,
        [(key["kid"].as_str().unwrap(), "active"), (old.as_str(), "retired")]
    );
    let (_, theirs) = send(gw.api(Method::GET, "/pools/suppliers/keys")).await;
    assert!(
        theirs.as_array().unwrap().iter().all(|k| k["kid"] != key["kid"]),
        "each pool its own keys"
    );
    // The running gateway publishes the new key beside the old one; the other pool's
    // published keys are what they were.
    let kids = |v: Value| -> Vec<String> {
        v["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect()
    };
    let jwks = |host: &'static str| {
        let gw = &gw;
        async move { kids(gw.get(host, "/oidc/jwks").await.1) }
    };
    assert_eq!(
        jwks("login.employees.localhost").await,
        [key["kid"].as_str().unwrap(), old.as_str()]
    );
    let their_kids: Vec<String> = theirs
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(jwks("login.suppliers.localhost").await, their_kids);
    let (status, _) = send(gw.api(Method::DELETE, "/pools/suppliers/sessions/nope")).await;
    assert_eq!(status, 404);
    let (status, _) = send(gw.api(Method::DELETE, "/pools/suppliers/links/nope")).await;
    assert_eq!(status, 404);
    let (status, sessions) = send(gw.api(Method::GET, "/pools/employees/sessions")).await;
    assert_eq!((status, sessions["items"].as_array().map(Vec::len)), (200, Some(0)));
}

/// Every operation the checked-in OpenAPI document promises is served (not the router's
/// fallback), and the served document is the checked-in one.
#[tokio::test]
async fn the_openapi_document_matches_the_router() {
    let up = Whoami::start().await;
    let gw = Gateway::start(&two_pools(&up, &up)).await;
    let served: Value = reqwest::get(format!("http://{}/openapi.json", gw.admin))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let checked_in: Value = serde_json::from_str(include_str!("../../src/admin/api/openapi.json")).unwrap();
    assert_eq!(served, checked_in);
    let mut operations = 0;
    for (path, ops) in checked_in["paths"].as_object().unwrap() {
        let concrete = path
            .trim_start_matches("/api")
            .replace("{pool}", "employees")
            .replace('{', "x")
            .replace('}', "");
        for method in ops.as_object().unwrap().keys() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let (status, body) = send(
                gw.api(method.clone(), &concrete)
                    .header("content-type", "application/json")
                    .body("{}"),
            )
            .await;
            assert_ne!(status, 405, "{method} {path} is documented but not routed");
            assert_ne!(
                body["error"]["code"], "no_such_endpoint",
                "{method} {path} is documented but not routed"
            );
            operations += 1;
        }
    }
    assert_eq!(operations, 45);
    let (status, body) = send(gw.api(Method::GET, "/pools/employees/nothing-here")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("no_such_endpoint")),
        "the fallback is distinguishable"
    );
}

/// Two gateways on one store (PostgreSQL when the suite has a server, else a shared SQLite
/// file): a change made through one is served by the other.
#[tokio::test]
async fn a_second_node_sharing_the_store_follows_changes() {
    let up = Whoami::start().await;
    let shared = tempfile::tempdir().unwrap();
    let opts = shared_deployment(shared.path()).await;
    let pools = enterprise(&two_pools(&up, &up));
    let one = Gateway::start_with(&pools, opts()).await;
    let two = Gateway::start_with(&pools, opts()).await;
    let (status, body) = send(one.api(Method::POST, "/pools/employees/apps").json(&json!({
        "id": "crm", "hosts": ["crm.employees.localhost"], "upstreams": [up.addr.to_string()], "public_paths": ["/"]
    })))
    .await;
    assert_eq!(status, 201, "{body}");
    let mut served = false;
    for _ in 0..50 {
        if two.get("crm.employees.localhost", "/").await.0 == 200 {
            served = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(served, "the second node never served the new app:\n{}", two.log());
    // The node that made the change reloaded as it answered. Its own poll of the store
    // (every 500 ms) sees a generation its snapshot already reflects and does not reload
    // again; the other node reloads for it.
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let store_reloads = |log: String| {
        log.lines()
            .filter(|l| l.contains("PG0100") && l.contains("store change"))
            .count()
    };
    assert_eq!(store_reloads(one.log()), 0, "{}", one.log());
    assert_eq!(store_reloads(two.log()), 1, "{}", two.log());
}
