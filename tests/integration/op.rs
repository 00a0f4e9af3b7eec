//! Each pool's OpenID Provider as a relying party meets it, and as an attacker tries it:
//! the authorization endpoint's rules, the token endpoint's errors, UserInfo.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use crate::browser::Browser;
use crate::signin::{PASSWORD, add_user, api_get, http, pools, sign_in, wiki_url};
use crate::support::*;

const VERIFIER: &str = "a-verifier-of-enough-length-to-be-valid-0123456789";

fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()))
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// An authorization request for the wiki as a client, with `extra` appended; the
/// redirect URI is the wiki's own callback unless `extra` names another.
fn authorize_url(gw: &Gateway, extra: &str) -> String {
    let redirect = if extra.contains("redirect_uri=") {
        String::new()
    } else {
        format!("&redirect_uri={}", enc(&wiki_url(gw, "/.poolgate/callback")))
    };
    let scope = if extra.contains("scope=") { "" } else { "&scope=openid" };
    format!(
        "{}?client_id=wiki&response_type=code{scope}&code_challenge={}&code_challenge_method=S256{redirect}{extra}",
        http(gw, "login.employees.localhost", "/oidc/authorize"),
        challenge(VERIFIER)
    )
}

/// The query of a redirect's `Location`, as pairs.
fn location_query(resp: &reqwest::Response) -> Vec<(String, String)> {
    let loc = resp.headers()["location"].to_str().unwrap();
    url::Url::parse(loc)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn param<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// A signed-in browser at the employees' portal, and the gateway.
async fn signed_in() -> (Gateway, Browser, String, Whoami) {
    let up = Whoami::start().await;
    let gw = Gateway::start(&pools(&up, "", "")).await;
    let alice = add_user(&gw, "employees", "alice", PASSWORD, &["staff"]).await;
    let b = Browser::new(&gw);
    sign_in(&b, &wiki_url(&gw, "/"), "alice", PASSWORD).await;
    (gw, b, alice, up)
}

async fn token(gw: &Gateway, form: &[(&str, &str)]) -> reqwest::Response {
    gw.client()
        .post(http(gw, "login.employees.localhost", "/oidc/token"))
        .form(form)
        .send()
        .await
        .unwrap()
}

/// The wiki's tokens for a code, as a third-party client using the wiki's id redeems it.
pub async fn wiki_tokens(gw: &Gateway, code: &str) -> Value {
    let redirect = wiki_url(gw, "/.poolgate/callback");
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", &redirect),
        ("client_id", "wiki"),
        ("code_verifier", VERIFIER),
    ];
    token(gw, &form).await.json().await.unwrap()
}

/// The pool's published keys.
async fn jwks(gw: &Gateway) -> Value {
    let url = http(gw, "login.employees.localhost", "/oidc/jwks");
    gw.client().get(url).send().await.unwrap().json().await.unwrap()
}

/// A code for the wiki, from single sign-on.
pub async fn code(gw: &Gateway, b: &Browser, extra: &str) -> String {
    let resp = b.client.get(authorize_url(gw, extra)).send().await.unwrap();
    assert_eq!(resp.status(), 303);
    param(&location_query(&resp), "code").expect("a code").to_owned()
}

#[tokio::test]
async fn redirect_uris_match_byte_for_byte() {
    let (gw, b, _, _) = signed_in().await;
    let port = gw.http.port();
    let good = wiki_url(&gw, "/.poolgate/callback");
    // Each a way a lenient comparison would let a code go somewhere else.
    let variants = [
        format!("http://wiki.employees.localhost:{port}/.poolgate/x/../callback"),
        format!("http://wiki.employees.localhost:{port}/.poolgate\\callback"),
        format!("http://WIKI.employees.localhost:{port}/.poolgate/callback"),
        format!("http://wiki.employees.localhost:{port}/.poolgate/callback\t"),
        "http://wiki.employees.localhost/.poolgate/callback".to_owned(),
        format!("http://wiki.employees.localhost:{port}/.poolgate/callback?x=1"),
        format!("{good}/"),
    ];
    for v in variants {
        let resp = b
            .client
            .get(authorize_url(&gw, &format!("&redirect_uri={}", enc(&v))))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{v:?} was accepted");
        assert!(resp.headers().get("location").is_none(), "{v:?}: never redirected");
    }
    let resp = b
        .client
        .get(authorize_url(&gw, &format!("&redirect_uri={}", enc(&good))))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303, "the registered callback works");
}

#[tokio::test]
async fn state_comes_back_exactly_as_sent_and_only_if_sent() {
    let (gw, b, _, _) = signed_in().await;
    let resp = b.client.get(authorize_url(&gw, "")).send().await.unwrap();
    let q = location_query(&resp);
    assert!(param(&q, "code").is_some());
    assert_eq!(param(&q, "state"), None, "no state was sent: {q:?}");
    assert_eq!(
        param(&q, "iss"),
        Some(http(&gw, "login.employees.localhost", "").as_str())
    );
    let odd = "a b+c/d%e&f=g";
    let resp = b
        .client
        .get(authorize_url(&gw, &format!("&state={}", enc(odd))))
        .send()
        .await
        .unwrap();
    assert_eq!(param(&location_query(&resp), "state"), Some(odd));
}

#[tokio::test]
async fn prompt_max_age_and_hints_are_honoured() {
    let (gw, b, alice, _) = signed_in().await;
    let anonymous = Browser::new(&gw);

    // prompt=none: never a page; an error for the client instead.
    let resp = anonymous
        .client
        .get(authorize_url(&gw, "&prompt=none&state=s1"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    let q = location_query(&resp);
    assert_eq!(param(&q, "error"), Some("login_required"));
    assert_eq!(param(&q, "state"), Some("s1"));
    // With a session, prompt=none answers with a code.
    let resp = b.client.get(authorize_url(&gw, "&prompt=none")).send().await.unwrap();
    assert!(param(&location_query(&resp), "code").is_some());
    // Contradictory prompts are refused.
    let resp = b
        .client
        .get(authorize_url(&gw, &format!("&prompt={}", enc("none login"))))
        .send()
        .await
        .unwrap();
    assert_eq!(param(&location_query(&resp), "error"), Some("invalid_request"));

    // prompt=login (with consent too) and max_age=0 show the login page despite the session.
    for extra in [format!("&prompt={}", enc("login consent")), "&max_age=0".to_owned()] {
        let resp = b.client.get(authorize_url(&gw, &extra)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{extra}");
        assert!(resp.text().await.unwrap().contains("name=\"password\""), "{extra}");
    }
    // max_age with room: a code at once, and auth_time in the ID token.
    let code = code(&gw, &b, "&max_age=3600&nonce=n").await;
    let tokens = wiki_tokens(&gw, &code).await;
    let id_token = tokens["id_token"].as_str().unwrap().to_owned();
    let claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(id_token.split('.').nth(1).unwrap()).unwrap()).unwrap();
    assert!(claims["auth_time"].as_i64().is_some());
    assert_eq!(claims["sub"], alice.as_str());

    // An ID token hint naming the signed-in user: a code with prompt=none; naming someone
    // else: login_required, never a code for the person signed in.
    let resp = b
        .client
        .get(authorize_url(&gw, &format!("&prompt=none&id_token_hint={id_token}")))
        .send()
        .await
        .unwrap();
    assert!(param(&location_query(&resp), "code").is_some());
    add_user(&gw, "employees", "bob", PASSWORD, &["staff"]).await;
    let bob_browser = Browser::new(&gw);
    sign_in(&bob_browser, &wiki_url(&gw, "/"), "bob", PASSWORD).await;
    let resp = bob_browser
        .client
        .get(authorize_url(&gw, &format!("&prompt=none&id_token_hint={id_token}")))
        .send()
        .await
        .unwrap();
    let q = location_query(&resp);
    assert_eq!(param(&q, "error"), Some("login_required"), "{q:?}");
    assert_eq!(param(&q, "code"), None);
    // A forged hint is refused.
    let forged = format!("{}x", &id_token[..id_token.len() - 1]);
    let resp = b
        .client
        .get(authorize_url(&gw, &format!("&prompt=none&id_token_hint={forged}")))
        .send()
        .await
        .unwrap();
    assert_eq!(param(&location_query(&resp), "error"), Some("invalid_request"));

    // Request objects are refused by name; other unknown parameters are ignored.
    for (extra, error) in [
        ("&request=eyJhbGciOiJub25lIn0.e30.", "request_not_supported"),
        ("&request_uri=https%3A%2F%2Frp.example%2Fr", "request_uri_not_supported"),
    ] {
        let resp = b.client.get(authorize_url(&gw, extra)).send().await.unwrap();
        assert_eq!(param(&location_query(&resp), "error"), Some(error));
    }
    let resp = b
        .client
        .get(authorize_url(&gw, "&ui_locales=fr&foo=bar"))
        .send()
        .await
        .unwrap();
    assert!(param(&location_query(&resp), "code").is_some());
    // PKCE plain is refused.
    let plain = authorize_url(&gw, "").replace("code_challenge_method=S256", "code_challenge_method=plain");
    let resp = b.client.get(plain).send().await.unwrap();
    assert_eq!(param(&location_query(&resp), "error"), Some("invalid_request"));
}

#[tokio::test]
async fn authorize_takes_post_and_answers_by_form_post() {
    let (gw, b, _, _) = signed_in().await;
    let url = authorize_url(&gw, "&state=st&response_mode=form_post");
    let (endpoint, query) = url.split_once('?').unwrap();
    let resp = b
        .client
        .post(endpoint)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(query.to_owned())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "POST to the authorization endpoint");
    let csp = resp.headers()["content-security-policy"].to_str().unwrap().to_owned();
    // As a browser reads it (the template escapes `/` in attributes).
    let page = resp.text().await.unwrap().replace("&#x2f;", "/");
    let callback = wiki_url(&gw, "/.poolgate/callback");
    assert!(page.contains(&format!("action=\"{callback}\"")), "{page}");
    assert!(
        page.contains("name=\"code\"") && page.contains("value=\"st\""),
        "{page}"
    );
    assert!(!page.contains("?code="), "the code is not in a URL");
    // The page may post only to the client, and run only its own one-line script.
    assert!(
        csp.contains(&format!(
            "form-action http://wiki.employees.localhost:{}",
            gw.http.port()
        )),
        "{csp}"
    );
    assert!(csp.contains("script-src 'sha256-"), "{csp}");
}

#[tokio::test]
async fn the_token_endpoint_answers_every_error_in_json() {
    let (gw, b, _, _) = signed_in().await;
    let url = http(&gw, "login.employees.localhost", "/oidc/token");
    // A JSON body is not a form: invalid_request, in JSON.
    let resp = gw
        .client()
        .post(&url)
        .json(&serde_json::json!({"grant_type": "authorization_code"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    assert_eq!(resp.headers()["pragma"], "no-cache");
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "invalid_request");

    let code = code(&gw, &b, "").await;
    let redirect = wiki_url(&gw, "/.poolgate/callback");
    // An unknown client, a secret offered by a public client: 401 invalid_client.
    for (client, secret) in [("nobody", None), ("wiki", Some("guess"))] {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", redirect.as_str()),
            ("client_id", client),
            ("code_verifier", VERIFIER),
        ];
        if let Some(s) = secret {
            form.push(("client_secret", s));
        }
        let resp = token(&gw, &form).await;
        assert_eq!(resp.status(), 401, "{client}");
        assert!(resp.headers().contains_key("www-authenticate"));
        assert_eq!(resp.json::<Value>().await.unwrap()["error"], "invalid_client");
    }
    let resp = token(&gw, &[("client_id", "wiki"), ("grant_type", "password")]).await;
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "unsupported_grant_type");
    let resp = token(&gw, &[("client_id", "wiki")]).await;
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "invalid_request");
    // A wrong verifier: invalid_grant, and the code is spent.
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", redirect.as_str()),
        ("client_id", "wiki"),
        ("code_verifier", "not-the-verifier-but-long-enough-to-look-like-one-000"),
    ];
    let resp = token(&gw, &form).await;
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "invalid_grant");
}

#[tokio::test]
async fn userinfo_releases_by_scope_and_challenges_as_rfc_6750_says() {
    let (gw, b, alice, _) = signed_in().await;
    let redirect = wiki_url(&gw, "/.poolgate/callback");
    let access = |scope: &'static str| {
        let (gw, b, redirect) = (&gw, &b, redirect.clone());
        async move {
            let code = code(gw, b, &format!("&scope={}", enc(scope))).await;
            let tokens: Value = token(
                gw,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", &redirect),
                    ("client_id", "wiki"),
                    ("code_verifier", VERIFIER),
                ],
            )
            .await
            .json()
            .await
            .unwrap();
            assert_eq!(tokens["scope"], scope);
            tokens["access_token"].as_str().unwrap().to_owned()
        }
    };
    let url = http(&gw, "login.employees.localhost", "/oidc/userinfo");
    // The access token is an RFC 9068 JWT.
    let full = access("openid profile email groups").await;
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(full.split('.').next().unwrap()).unwrap()).unwrap();
    assert_eq!(header["typ"], "at+jwt");

    // Lower-case scheme, GET.
    let resp = gw
        .client()
        .get(&url)
        .header("authorization", format!("bearer {full}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let info: Value = resp.json().await.unwrap();
    assert_eq!(info["sub"], alice.as_str());
    assert_eq!(info["preferred_username"], "alice");
    assert_eq!(info["email"], "alice@example.com");
    assert_eq!(info["email_verified"], false);
    assert_eq!(info["groups"], serde_json::json!(["staff"]));
    // POST, the token in the body.
    let resp = gw
        .client()
        .post(&url)
        .form(&[("access_token", &full)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // `openid` alone releases nothing but `sub`: no nulls, no empty strings.
    let bare = access("openid").await;
    let info: Value = gw
        .client()
        .get(&url)
        .bearer_auth(&bare)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info.as_object().unwrap().keys().collect::<Vec<_>>(), ["sub"]);

    // No token: a challenge without an error code; a bad one: invalid_token.
    let resp = gw.client().get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["www-authenticate"], "Bearer realm=\"employees\"");
    let resp = gw.client().get(&url).bearer_auth("e30.e30.e30").send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert!(
        resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("error=\"invalid_token\"")
    );
    // A token of the other pool is nobody here.
    let orders = gw
        .client()
        .get(http(&gw, "login.suppliers.localhost", "/oidc/userinfo"))
        .bearer_auth(&full)
        .send()
        .await
        .unwrap();
    assert_eq!(orders.status(), 401);
}

/// The employees' pool with a confidential client `reports` (Basic auth) and a public
/// registered client `cli` (PKCE); both may refresh, `reports` may also act as itself.
async fn with_clients() -> (Gateway, Browser, Whoami) {
    let up = Whoami::start().await;
    let clients = r#"
[pools.employees.clients.reports]
name = "Reports"
redirect_uris = ["http://rp.localhost:7/cb"]
grant_types = ["authorization_code", "refresh_token", "client_credentials"]
id_token_signed_response_alg = "ES256"

[pools.employees.clients.cli]
auth_method = "none"
redirect_uris = ["http://127.0.0.1:7/cb"]
id_token_signed_response_alg = "ES256"
"#;
    let gw = Gateway::start(&pools(&up, clients, "")).await;
    add_user(&gw, "employees", "alice", PASSWORD, &["staff"]).await;
    let b = Browser::new(&gw);
    sign_in(&b, &wiki_url(&gw, "/"), "alice", PASSWORD).await;
    (gw, b, up)
}

async fn new_secret(gw: &Gateway, client: &str) -> String {
    let resp = gw
        .api(
            reqwest::Method::POST,
            &format!("/pools/employees/clients/{client}/secret"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    resp.json::<Value>().await.unwrap()["client_secret"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A code for `reports` (no PKCE: a confidential client's choice), by single sign-on.
async fn reports_code(gw: &Gateway, b: &Browser, scope: &str) -> String {
    client_code(gw, b, "reports", scope).await
}

/// A code for a registered client redirecting to `http://rp.localhost:7/cb`.
async fn client_code(gw: &Gateway, b: &Browser, client: &str, scope: &str) -> String {
    let url = format!(
        "{}?client_id={client}&response_type=code&scope={}&redirect_uri={}&nonce=n",
        http(gw, "login.employees.localhost", "/oidc/authorize"),
        enc(scope),
        enc("http://rp.localhost:7/cb")
    );
    let resp = b.client.get(url).send().await.unwrap();
    assert_eq!(resp.status(), 303);
    param(&location_query(&resp), "code").expect("a code").to_owned()
}

async fn reports_token(gw: &Gateway, secret: &str, form: &[(&str, &str)]) -> reqwest::Response {
    client_token(gw, "reports", secret, form).await
}

/// A token request of a confidential client, authenticated with HTTP Basic.
async fn client_token(gw: &Gateway, client: &str, secret: &str, form: &[(&str, &str)]) -> reqwest::Response {
    gw.client()
        .post(http(gw, "login.employees.localhost", "/oidc/token"))
        .basic_auth(client, Some(secret))
        .form(form)
        .send()
        .await
        .unwrap()
}

async fn exchange(gw: &Gateway, secret: &str, code: &str) -> Value {
    client_exchange(gw, "reports", secret, code).await
}

async fn client_exchange(gw: &Gateway, client: &str, secret: &str, code: &str) -> Value {
    let resp = client_token(
        gw,
        client,
        secret,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", "http://rp.localhost:7/cb"),
        ],
    )
    .await;
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

async fn userinfo_status(gw: &Gateway, access: &str) -> u16 {
    gw.client()
        .get(http(gw, "login.employees.localhost", "/oidc/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_confidential_client_authenticates_only_as_registered() {
    let (gw, b, _) = with_clients().await;
    let secret = new_secret(&gw, "reports").await;
    let code = reports_code(&gw, &b, "openid").await;
    let url = http(&gw, "login.employees.localhost", "/oidc/token");
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", "http://rp.localhost:7/cb"),
    ];
    // No secret, a wrong one, the right one by the wrong method: 401 invalid_client.
    let attempts = [
        gw.client()
            .post(&url)
            .form(&[form.as_slice(), &[("client_id", "reports")]].concat()),
        gw.client().post(&url).basic_auth("reports", Some("guess")).form(&form),
        gw.client().post(&url).form(
            &[
                form.as_slice(),
                &[("client_id", "reports"), ("client_secret", secret.as_str())],
            ]
            .concat(),
        ),
    ];
    for attempt in attempts {
        let resp = attempt.send().await.unwrap();
        assert_eq!(resp.status(), 401);
        assert_eq!(resp.json::<Value>().await.unwrap()["error"], "invalid_client");
    }
    // The code was not spent by those: the right credentials redeem it.
    let tokens = exchange(&gw, &secret, &code).await;
    assert!(tokens["refresh_token"].is_string() && tokens["id_token"].is_string());

    // A rotated secret: the new one works, the old one still does for the overlap.
    let newer = new_secret(&gw, "reports").await;
    for s in [&secret, &newer] {
        let code = reports_code(&gw, &b, "openid").await;
        exchange(&gw, s, &code).await;
    }
    // A public registered client may not skip PKCE.
    let resp = b
        .client
        .get(format!(
            "{}?client_id=cli&response_type=code&scope=openid&redirect_uri={}",
            http(&gw, "login.employees.localhost", "/oidc/authorize"),
            enc("http://127.0.0.1:7/cb")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(param(&location_query(&resp), "error"), Some("invalid_request"));
}

#[tokio::test]
async fn refresh_tokens_rotate_and_a_reused_one_revokes_its_family() {
    let (gw, b, _) = with_clients().await;
    let secret = new_secret(&gw, "reports").await;
    let tokens = exchange(&gw, &secret, &reports_code(&gw, &b, "openid profile").await).await;
    let r1 = tokens["refresh_token"].as_str().unwrap().to_owned();
    let refresh = |token: String| {
        let (gw, secret) = (&gw, secret.clone());
        async move {
            reports_token(
                gw,
                &secret,
                &[("grant_type", "refresh_token"), ("refresh_token", &token)],
            )
            .await
        }
    };
    let resp = refresh(r1.clone()).await;
    assert_eq!(resp.status(), 200);
    let next: Value = resp.json().await.unwrap();
    let r2 = next["refresh_token"].as_str().unwrap().to_owned();
    let a2 = next["access_token"].as_str().unwrap().to_owned();
    assert_ne!(r1, r2, "rotated");
    assert_eq!(userinfo_status(&gw, &a2).await, 200);
    // The spent r1 again (a thief, say): refused, and r2 and its access token die with it.
    let resp = refresh(r1).await;
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "invalid_grant");
    let resp = refresh(r2).await;
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "invalid_grant");
    assert_eq!(userinfo_status(&gw, &a2).await, 401);

    // An ordinary refresh token ends with the sign-in; an offline one outlives it.
    let plain = exchange(&gw, &secret, &reports_code(&gw, &b, "openid").await).await;
    let offline = exchange(&gw, &secret, &reports_code(&gw, &b, "openid offline_access").await).await;
    assert!(offline["scope"].as_str().unwrap().contains("offline_access"));
    let sessions = api_get(&gw, "/pools/employees/sessions").await;
    for s in sessions["items"].as_array().unwrap() {
        let id = s["id"].as_str().unwrap();
        gw.api(reqwest::Method::DELETE, &format!("/pools/employees/sessions/{id}"))
            .send()
            .await
            .unwrap();
    }
    // Introspection judges them as the refresh grant does.
    let introspect = |token: &str| {
        gw.client()
            .post(http(&gw, "login.employees.localhost", "/oidc/introspect"))
            .basic_auth("reports", Some(secret.clone()))
            .form(&[("token", token.to_owned())])
            .send()
    };
    let active = |v: Value| v["active"].as_bool().unwrap();
    let plain_rt = plain["refresh_token"].as_str().unwrap();
    let offline_rt = offline["refresh_token"].as_str().unwrap();
    assert!(!active(introspect(plain_rt).await.unwrap().json().await.unwrap()));
    assert!(active(introspect(offline_rt).await.unwrap().json().await.unwrap()));
    let resp = refresh(plain_rt.to_owned()).await;
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "invalid_grant");
    let resp = refresh(offline_rt.to_owned()).await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn a_replayed_code_revokes_its_refresh_tokens() {
    let (gw, b, _) = with_clients().await;
    let secret = new_secret(&gw, "reports").await;
    let code = reports_code(&gw, &b, "openid").await;
    let tokens = exchange(&gw, &secret, &code).await;
    let resp = reports_token(
        &gw,
        &secret,
        &[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", "http://rp.localhost:7/cb"),
        ],
    )
    .await;
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "invalid_grant");
    let resp = reports_token(
        &gw,
        &secret,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "invalid_grant");
    assert_eq!(
        userinfo_status(&gw, tokens["access_token"].as_str().unwrap()).await,
        401
    );
}

#[tokio::test]
async fn revocation_and_introspection() {
    let (gw, b, _) = with_clients().await;
    let secret = new_secret(&gw, "reports").await;
    let tokens = exchange(&gw, &secret, &reports_code(&gw, &b, "openid").await).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh_token = tokens["refresh_token"].as_str().unwrap().to_owned();
    let endpoint = |path: &str| http(&gw, "login.employees.localhost", path);
    let introspect = |token: String| {
        let (gw, secret, url) = (&gw, secret.clone(), endpoint("/oidc/introspect"));
        async move {
            let resp = gw
                .client()
                .post(url)
                .basic_auth("reports", Some(secret))
                .form(&[("token", token)])
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            resp.json::<Value>().await.unwrap()
        }
    };
    let info = introspect(access.clone()).await;
    assert_eq!(info["active"], true);
    assert_eq!(info["client_id"], "reports");
    assert_eq!(introspect(refresh_token.clone()).await["active"], true);
    // Public clients may not introspect; a token of another client or pool is inactive.
    let resp = gw
        .client()
        .post(endpoint("/oidc/introspect"))
        .form(&[("token", access.as_str()), ("client_id", "wiki")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let code = code(&gw, &b, "").await;
    let wiki = wiki_tokens(&gw, &code).await;
    let wiki_access = wiki["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        introspect(wiki_access.clone()).await["active"],
        false,
        "another client's token"
    );
    let resp = gw
        .client()
        .post(http(&gw, "login.suppliers.localhost", "/oidc/introspect"))
        .basic_auth("reports", Some(&secret))
        .form(&[("token", access.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401, "reports is nobody at the suppliers' pool");

    // Revoking the refresh token ends it and its grant's access token.
    let resp = gw
        .client()
        .post(endpoint("/oidc/revoke"))
        .basic_auth("reports", Some(&secret))
        .form(&[("token", refresh_token.as_str()), ("token_type_hint", "refresh_token")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(introspect(refresh_token).await["active"], false);
    assert_eq!(introspect(access.clone()).await["active"], false);
    assert_eq!(userinfo_status(&gw, &access).await, 401);
    // A public client revokes its own access token with its client_id.
    let resp = gw
        .client()
        .post(endpoint("/oidc/revoke"))
        .form(&[("token", wiki_access.as_str()), ("client_id", "wiki")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(userinfo_status(&gw, &wiki_access).await, 401);
    let resp = gw
        .client()
        .get(wiki_url(&gw, "/"))
        .bearer_auth(&wiki_access)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401, "nor does the app take it");
}

#[tokio::test]
async fn a_service_calls_an_app_with_client_credentials() {
    let (gw, _, up) = with_clients().await;
    let secret = new_secret(&gw, "reports").await;
    let resp = reports_token(
        &gw,
        &secret,
        &[("grant_type", "client_credentials"), ("resource", "wiki")],
    )
    .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert!(body.get("refresh_token").is_none() && body.get("id_token").is_none());
    let access = body["access_token"].as_str().unwrap();
    let hits = up.hits();
    let resp = gw
        .client()
        .get(wiki_url(&gw, "/report"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let echo: Value = resp.json().await.unwrap();
    assert_eq!(seen(&echo, "x-poolgate-user"), ["reports"]);
    assert_eq!(seen(&echo, "x-poolgate-source"), ["client"]);
    assert_eq!(up.hits(), hits + 1);
    // Its token for itself opens no app; a public client has no credentials of its own.
    let own = reports_token(&gw, &secret, &[("grant_type", "client_credentials")]).await;
    let own: Value = own.json().await.unwrap();
    let resp = gw
        .client()
        .get(wiki_url(&gw, "/report"))
        .bearer_auth(own["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = token(&gw, &[("grant_type", "client_credentials"), ("client_id", "cli")]).await;
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "unauthorized_client");
}

#[tokio::test]
async fn a_client_that_asks_for_rs256_gets_rs256_id_tokens() {
    let up = Whoami::start().await;
    let clients = r#"
[pools.employees.clients.apache]
redirect_uris = ["http://rp.localhost:7/cb"]
"#;
    let gw = Gateway::start(&pools(&up, clients, "")).await;
    add_user(&gw, "employees", "alice", PASSWORD, &["staff"]).await;
    let b = Browser::new(&gw);
    sign_in(&b, &wiki_url(&gw, "/"), "alice", PASSWORD).await;
    let secret = new_secret(&gw, "apache").await;

    // The JWKS publishes both keys, each with its algorithm and use.
    let published = jwks(&gw).await;
    let keys = published["keys"].as_array().unwrap();
    let rsa = keys.iter().find(|k| k["kty"] == "RSA").expect("an RSA key");
    assert_eq!((rsa["alg"].as_str(), rsa["use"].as_str()), (Some("RS256"), Some("sig")));
    assert!(keys.iter().any(|k| k["kty"] == "EC" && k["alg"] == "ES256"));
    let modulus = URL_SAFE_NO_PAD.decode(rsa["n"].as_str().unwrap()).unwrap();
    assert!(modulus.len() * 8 >= 2048, "RSA 2048 or more");

    let code = client_code(&gw, &b, "apache", "openid").await;
    let tokens = client_exchange(&gw, "apache", &secret, &code).await;
    let id_token = tokens["id_token"].as_str().unwrap();
    let header = jsonwebtoken::decode_header(id_token).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
    assert_eq!(header.kid.as_deref(), rsa["kid"].as_str());
    let key =
        jsonwebtoken::DecodingKey::from_rsa_components(rsa["n"].as_str().unwrap(), rsa["e"].as_str().unwrap()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&["apache"]);
    validation.set_issuer(&[http(&gw, "login.employees.localhost", "").as_str()]);
    let claims =
        jsonwebtoken::decode::<Value>(id_token, &key, &validation).expect("verifies with the published RSA key");
    assert_eq!(claims.claims["nonce"], "n");

    // A rotation keeps the retired RSA key published beside the new one.
    let resp = gw
        .api(reqwest::Method::POST, "/pools/employees/keys/rotate")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let rotated = jwks(&gw).await;
    let rsa_keys: Vec<_> = rotated["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["kty"] == "RSA")
        .collect();
    assert_eq!(rsa_keys.len(), 2, "{rotated}");
    assert!(rsa_keys.iter().any(|k| k["kid"] == rsa["kid"]));

    // The other pool has no RSA key to speak of and does not know this token.
    let resp = gw
        .client()
        .get(gw.url("orders.suppliers.localhost", "/"))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

/// An ID token for the wiki, by single sign-on.
async fn wiki_id_token(gw: &Gateway, b: &Browser) -> String {
    let code = code(gw, b, "&nonce=n").await;
    let tokens = wiki_tokens(gw, &code).await;
    tokens["id_token"].as_str().unwrap().to_owned()
}

/// Whether the browser still has a session at the portal (prompt=none answers a code).
async fn still_signed_in(gw: &Gateway, b: &Browser) -> bool {
    let resp = b.client.get(authorize_url(gw, "&prompt=none")).send().await.unwrap();
    param(&location_query(&resp), "code").is_some()
}

#[tokio::test]
async fn rp_initiated_logout_checks_the_hint_and_the_return_address() {
    let (gw, b, _, _) = signed_in().await;
    let hint = wiki_id_token(&gw, &b).await;
    let logout = http(&gw, "login.employees.localhost", "/oidc/logout");
    let root = wiki_url(&gw, "/");

    // No hint: the person is asked (a link alone signs no one out).
    let resp = b.client.get(&logout).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("<form method=\"post\""));
    assert!(still_signed_in(&gw, &b).await);

    // Return addresses the client has not registered, hints not issued here: refused.
    let forged_hint = format!("{}x", &hint[..hint.len() - 1]);
    for query in [
        format!(
            "id_token_hint={hint}&post_logout_redirect_uri={}",
            enc(&wiki_url(&gw, "/elsewhere"))
        ),
        format!(
            "client_id=wiki&post_logout_redirect_uri={}",
            enc("https://evil.example/")
        ),
        format!("post_logout_redirect_uri={}", enc(&root)),
        format!("id_token_hint={forged_hint}"),
        format!("id_token_hint={hint}&client_id=crm"),
    ] {
        let resp = b.client.get(format!("{logout}?{query}")).send().await.unwrap();
        assert_eq!(resp.status(), 400, "{query}");
        assert!(resp.headers().get("location").is_none());
    }
    assert!(still_signed_in(&gw, &b).await);

    // A valid hint naming the person signed in: signed out at once, sent back with state.
    let resp = b
        .client
        .get(format!(
            "{logout}?id_token_hint={hint}&post_logout_redirect_uri={}&state=bye",
            enc(&root)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(
        resp.headers()["location"].to_str().unwrap(),
        format!("{root}?state=bye")
    );
    assert!(!still_signed_in(&gw, &b).await);
}

#[tokio::test]
async fn a_hint_for_someone_else_only_asks() {
    let (gw, b, _, _) = signed_in().await;
    let alices = wiki_id_token(&gw, &b).await;
    add_user(&gw, "employees", "bob", PASSWORD, &["staff"]).await;
    let bob = Browser::new(&gw);
    sign_in(&bob, &wiki_url(&gw, "/"), "bob", PASSWORD).await;
    // Posted from another site with alice's hint: bob is asked, not signed out.
    let resp = bob
        .client
        .post(http(&gw, "login.employees.localhost", "/oidc/logout"))
        .form(&[("id_token_hint", alices.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(still_signed_in(&gw, &bob).await);
}

#[tokio::test]
async fn ending_a_session_logs_the_client_out_by_back_channel() {
    use std::sync::{Arc, Mutex};
    // The relying party's back-channel endpoint: it fails once (the gateway must retry),
    // then takes the logout token.
    let received: Arc<Mutex<Vec<String>>> = Arc::default();
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let app = {
        let (received, calls) = (received.clone(), calls.clone());
        axum::Router::new().route(
            "/bc",
            axum::routing::post(move |body: String| {
                let (received, calls) = (received.clone(), calls.clone());
                async move {
                    if calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                        return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                    }
                    received.lock().unwrap().push(body);
                    axum::http::StatusCode::OK
                }
            }),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let rp = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let up = Whoami::start().await;
    let clients = format!(
        "[pools.employees.clients.apache]\nredirect_uris = [\"http://rp.localhost:7/cb\"]\nbackchannel_logout_uri = \"http://{rp}/bc\"\n"
    );
    let gw = Gateway::start(&pools(&up, &clients, "")).await;
    add_user(&gw, "employees", "alice", PASSWORD, &["staff"]).await;
    let b = Browser::new(&gw);
    sign_in(&b, &wiki_url(&gw, "/"), "alice", PASSWORD).await;
    let secret = new_secret(&gw, "apache").await;
    let code = client_code(&gw, &b, "apache", "openid").await;
    let tokens = client_exchange(&gw, "apache", &secret, &code).await;
    let id_claims: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(tokens["id_token"].as_str().unwrap().split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert!(received.lock().unwrap().is_empty(), "nothing before the sign-out");

    // The person signs out at the pool (the wiki's sign-out page, confirmed).
    let page = b.open(&wiki_url(&gw, "/.poolgate/logout")).await;
    b.submit(&page, "/.poolgate/logout", &[]).await;

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while received.lock().unwrap().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "no logout token came:\n{}",
            gw.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        calls.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "retried after the 503"
    );
    let body = received.lock().unwrap()[0].clone();
    let token = url::form_urlencoded::parse(body.as_bytes())
        .find(|(k, _)| k == "logout_token")
        .unwrap()
        .1
        .into_owned();
    // Signed like the client's ID tokens (RS256), verifiable with the pool's JWKS.
    let jwks = jwks(&gw).await;
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("logout+jwt"));
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"].as_str() == header.kid.as_deref())
        .unwrap();
    let key =
        jsonwebtoken::DecodingKey::from_rsa_components(jwk["n"].as_str().unwrap(), jwk["e"].as_str().unwrap()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&["apache"]);
    let claims = jsonwebtoken::decode::<Value>(&token, &key, &validation).unwrap().claims;
    assert_eq!(claims["sid"], id_claims["sid"]);
    assert_eq!(claims["sub"], id_claims["sub"]);
    assert!(claims["events"]["http://schemas.openid.net/event/backchannel-logout"].is_object());
    assert!(claims.get("nonce").is_none());

    // Its refresh token died with the session; the delivery is in the audit log.
    let resp = gw
        .client()
        .post(http(&gw, "login.employees.localhost", "/oidc/token"))
        .basic_auth("apache", Some(&secret))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "invalid_grant");
    let audit = api_get(&gw, "/pools/employees/audit?limit=50").await;
    assert!(
        audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "backchannel.logout" && e["outcome"] == "ok" && e["target"] == "apache"),
        "{audit}"
    );
}

#[tokio::test]
async fn a_client_registered_through_the_api_gets_its_secret_once() {
    let up = Whoami::start().await;
    let gw = Gateway::start(&pools(&up, "", "")).await;
    let resp = gw
        .api(reqwest::Method::POST, "/pools/employees/clients")
        .json(&serde_json::json!({"id": "batch", "grant_types": ["client_credentials"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let made: Value = resp.json().await.unwrap();
    let secret = made["client_secret"]
        .as_str()
        .expect("the first secret, once")
        .to_owned();
    assert_eq!(made["auth_method"], "client_secret_basic");
    let shown = api_get(&gw, "/pools/employees/clients/batch").await;
    assert!(shown.get("client_secret").is_none(), "never shown again: {shown}");
    // Its token opens the wiki, with `bearer` in lower case.
    let resp = gw
        .client()
        .post(http(&gw, "login.employees.localhost", "/oidc/token"))
        .basic_auth("batch", Some(&secret))
        .form(&[("grant_type", "client_credentials"), ("resource", "wiki")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let access = resp.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let resp = gw
        .client()
        .get(wiki_url(&gw, "/"))
        .header("authorization", format!("bearer {access}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // Its id cannot be an app's: the pool's client ids are one space.
    let resp = gw
        .api(reqwest::Method::POST, "/pools/employees/clients")
        .json(&serde_json::json!({"id": "wiki"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);

    // A change merges into its config: what it names is set, the rest (and the secret)
    // stays; a change the gateway would refuse, or one that renames it, changes nothing.
    let patch = |body: Value| {
        gw.api(reqwest::Method::PATCH, "/pools/employees/clients/batch")
            .json(&body)
            .send()
    };
    let resp = patch(serde_json::json!({"name": "Nightly batch", "access_token_lifetime": "5m"}))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let changed: Value = resp.json().await.unwrap();
    assert_eq!(
        (changed["name"].as_str(), changed["access_token_lifetime"].as_str()),
        (Some("Nightly batch"), Some("5m"))
    );
    assert_eq!(changed["grant_types"], serde_json::json!(["client_credentials"]));
    for (bad, status) in [
        (serde_json::json!({"grant_types": ["password"]}), 422),
        (serde_json::json!({"id": "other"}), 400),
    ] {
        assert_eq!(patch(bad.clone()).await.unwrap().status(), status, "{bad}");
    }
    let shown = api_get(&gw, "/pools/employees/clients/batch").await;
    assert_eq!(shown, changed, "the refused changes left it as it was");
    let resp = gw
        .client()
        .post(http(&gw, "login.employees.localhost", "/oidc/token"))
        .basic_auth("batch", Some(&secret))
        .form(&[("grant_type", "client_credentials"), ("resource", "wiki")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "the secret outlives the change");
    let token: Value = resp.json().await.unwrap();
    assert_eq!(token["expires_in"], 300);
}

/// Eight clients present one refresh token at once (a thief racing the client): never
/// more than one is answered (the one that spent it, unless a replay revoked the family
/// first), and since the token was presented again, its family is revoked — on SQLite
/// and on PostgreSQL.
#[tokio::test]
async fn one_refresh_token_presented_at_once_is_honoured_once_on_both_stores() {
    let dir = tempfile::tempdir().unwrap();
    let mut stores = vec![format!("sqlite:{}", dir.path().join("race.db").display())];
    stores.extend(fresh_postgres_database().await);
    for store in stores {
        let up = Whoami::start().await;
        let clients = r#"
[pools.employees.clients.reports]
redirect_uris = ["http://rp.localhost:7/cb"]
id_token_signed_response_alg = "ES256"
"#;
        let opts = Options {
            store: Some(store.clone()),
            ..Options::default()
        };
        let gw = Gateway::start_with(&pools(&up, clients, ""), opts).await;
        add_user(&gw, "employees", "alice", PASSWORD, &["staff"]).await;
        let b = Browser::new(&gw);
        sign_in(&b, &wiki_url(&gw, "/"), "alice", PASSWORD).await;
        let secret = new_secret(&gw, "reports").await;
        for round in 0..3 {
            let tokens = exchange(&gw, &secret, &reports_code(&gw, &b, "openid").await).await;
            let rt = tokens["refresh_token"].as_str().unwrap().to_owned();
            let attempts = (0..8).map(|_| {
                let (gw, secret, rt) = (&gw, secret.clone(), rt.clone());
                async move {
                    let resp =
                        reports_token(gw, &secret, &[("grant_type", "refresh_token"), ("refresh_token", &rt)]).await;
                    (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
                }
            });
            let answers = futures_util::future::join_all(attempts).await;
            let won: Vec<_> = answers.iter().filter(|(s, _)| *s == 200).collect();
            assert!(won.len() <= 1, "{store} round {round}: {answers:?}");
            assert!(
                answers
                    .iter()
                    .all(|(s, b)| *s == 200 || (*s == 400 && b["error"] == "invalid_grant")),
                "{answers:?}"
            );
            // A winner's new token died with the family.
            for (_, body) in won {
                let next = body["refresh_token"].as_str().unwrap();
                let form = [("grant_type", "refresh_token"), ("refresh_token", next)];
                let resp = reports_token(&gw, &secret, &form).await;
                assert_eq!(resp.status(), 400, "{store}: the family is revoked");
            }
        }
        assert!(!gw.log().contains("PG0509"), "{store}: a store error:\n{}", gw.log());
    }
}
