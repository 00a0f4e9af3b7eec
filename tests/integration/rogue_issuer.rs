//! An identity provider under the test's control, to send poolgate the ID tokens an
//! attacker would: a wrong audience, issuer or nonce, a bad signature, `alg: none`, an
//! HMAC keyed with the public key, an expired token. It answers discovery, JWKS,
//! authorize (straight back with a code) and token (the token the test chose).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};

/// What the next ID token is made like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forge {
    Honest,
    WrongAudience,
    WrongIssuer,
    WrongNonce,
    ForeignKey,
    AlgNone,
    HmacWithPublicKey,
    Expired,
}

struct Inner {
    issuer: String,
    forge: Forge,
    /// The nonce of each code given out, so sign-ins at once each get theirs.
    nonces: std::collections::HashMap<String, Option<String>>,
    subject: String,
    email: String,
    email_verified: Value,
    /// More claims for the next ID token (`null` removes one).
    extra: Value,
    /// Times the keys were fetched.
    jwks_hits: usize,
    /// Sign with a key the JWKS does not (yet) publish, under this kid.
    unpublished_kid: Option<String>,
    key: Vec<u8>,
    other_key: Vec<u8>,
    jwk: Value,
}

#[derive(Clone)]
pub struct RogueIssuer {
    pub issuer: String,
    inner: Arc<Mutex<Inner>>,
    task: Arc<tokio::task::JoinHandle<()>>,
}

impl Drop for RogueIssuer {
    fn drop(&mut self) {
        if Arc::strong_count(&self.task) == 1 {
            self.task.abort();
        }
    }
}

fn p256() -> Vec<u8> {
    let rng = ring::rand::SystemRandom::new();
    EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .unwrap()
        .as_ref()
        .to_vec()
}

impl RogueIssuer {
    pub async fn start() -> RogueIssuer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let issuer = format!("http://127.0.0.1:{}", addr.port());
        let key = p256();
        let rng = ring::rand::SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &key, &rng).unwrap();
        let public = pair.public_key().as_ref();
        let jwk = json!({
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": "rogue-1",
            "x": URL_SAFE_NO_PAD.encode(&public[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&public[33..65]),
        });
        let inner = Arc::new(Mutex::new(Inner {
            issuer: issuer.clone(),
            forge: Forge::Honest,
            nonces: Default::default(),
            subject: "rogue-subject-1".into(),
            email: "rogue@rogue.example".into(),
            email_verified: json!(true),
            extra: json!({}),
            jwks_hits: 0,
            unpublished_kid: None,
            key,
            other_key: p256(),
            jwk,
        }));
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .with_state(inner.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        RogueIssuer {
            issuer,
            inner,
            task: Arc::new(task),
        }
    }

    /// Who signs in next: the subject, their email, and `email_verified` as sent.
    pub fn person(&self, subject: &str, email: &str, email_verified: Value) {
        let mut s = self.inner.lock().unwrap();
        s.subject = subject.into();
        s.email = email.into();
        s.email_verified = email_verified;
    }

    /// Stops answering: the provider is down.
    pub fn go_down(&self) {
        self.task.abort();
    }

    /// How often the keys were fetched.
    pub fn jwks_hits(&self) -> usize {
        self.inner.lock().unwrap().jwks_hits
    }

    /// Rotates to a new signing key: published at once (`publish`), or only later.
    pub fn rotate(&self, kid: &str, publish: bool) {
        let mut s = self.inner.lock().unwrap();
        let fresh = p256();
        let rng = ring::rand::SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &fresh, &rng).unwrap();
        let public = pair.public_key().as_ref().to_vec();
        let jwk = json!({
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
            "x": URL_SAFE_NO_PAD.encode(&public[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&public[33..65]),
        });
        s.key = fresh;
        if publish {
            s.jwk = jwk;
            s.unpublished_kid = None;
        } else {
            s.unpublished_kid = Some(kid.to_owned());
        }
    }

    /// Claims added to (or, as `null`, removed from) the next ID tokens.
    pub fn extra(&self, claims: Value) {
        self.inner.lock().unwrap().extra = claims;
    }

    pub fn forge(&self, forge: Forge) {
        self.inner.lock().unwrap().forge = forge;
    }
}

type Shared = Arc<Mutex<Inner>>;

async fn discovery(State(s): State<Shared>) -> Json<Value> {
    let issuer = s.lock().unwrap().issuer.clone();
    Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "none"],
    }))
}

async fn jwks(State(s): State<Shared>) -> Json<Value> {
    let mut s = s.lock().unwrap();
    s.jwks_hits += 1;
    Json(json!({ "keys": [s.jwk.clone()] }))
}

async fn authorize(State(s): State<Shared>, Query(q): Query<Vec<(String, String)>>) -> impl IntoResponse {
    let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let code = {
        let mut s = s.lock().unwrap();
        let code = format!("rogue-code-{}", s.nonces.len());
        s.nonces.insert(code.clone(), get("nonce"));
        code
    };
    let mut to = url::Url::parse(&get("redirect_uri").unwrap()).unwrap();
    to.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &get("state").unwrap());
    Redirect::to(to.as_str())
}

async fn token(State(s): State<Shared>, headers: axum::http::HeaderMap, body: String) -> Json<Value> {
    let s = s.lock().unwrap();
    let form: Vec<(String, String)> = url::form_urlencoded::parse(body.as_bytes()).into_owned().collect();
    let client_id = form
        .iter()
        .find(|(k, _)| k == "client_id")
        .map(|(_, v)| v.clone())
        .or_else(|| {
            let basic = headers.get("authorization")?.to_str().ok()?.strip_prefix("Basic ")?;
            let decoded = base64::engine::general_purpose::STANDARD.decode(basic).ok()?;
            let text = String::from_utf8(decoded).ok()?;
            Some(text.split(':').next()?.to_owned())
        })
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let code = form
        .iter()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let nonce = s.nonces.get(&code).cloned().flatten();
    let mut claims = json!({
        "iss": s.issuer, "sub": s.subject, "aud": client_id, "iat": now, "exp": now + 300,
        "nonce": nonce, "email": s.email, "email_verified": s.email_verified,
        "preferred_username": "rogue", "sid": "rogue-sid-1",
    });
    for (k, v) in s.extra.as_object().unwrap() {
        if v.is_null() {
            claims.as_object_mut().unwrap().remove(k);
        } else {
            claims[k] = v.clone();
        }
    }
    match s.forge {
        Forge::WrongAudience => claims["aud"] = json!("another-client"),
        Forge::WrongIssuer => claims["iss"] = json!("https://evil.example"),
        Forge::WrongNonce => claims["nonce"] = json!("not-the-nonce"),
        Forge::Expired => {
            claims["iat"] = json!(now - 900);
            claims["exp"] = json!(now - 600);
        }
        _ => {}
    }
    let id_token = sign(&s, &claims);
    Json(json!({
        "access_token": "rogue-access-token",
        "token_type": "Bearer",
        "expires_in": 300,
        "id_token": id_token,
    }))
}

/// Signs `claims` the way the current forgery says (header, key, algorithm).
fn sign(s: &Inner, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(
        s.unpublished_kid
            .clone()
            .or_else(|| s.jwk["kid"].as_str().map(str::to_owned))
            .unwrap(),
    );
    match s.forge {
        Forge::ForeignKey => jsonwebtoken::encode(&header, claims, &EncodingKey::from_ec_der(&s.other_key)).unwrap(),
        Forge::AlgNone => {
            let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","kid":"rogue-1"}"#);
            let p = URL_SAFE_NO_PAD.encode(claims.to_string());
            format!("{h}.{p}.")
        }
        Forge::HmacWithPublicKey => {
            let mut h = Header::new(Algorithm::HS256);
            h.kid = Some("rogue-1".into());
            let secret = s.jwk.to_string();
            jsonwebtoken::encode(&h, claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
        }
        _ => jsonwebtoken::encode(&header, claims, &EncodingKey::from_ec_der(&s.key)).unwrap(),
    }
}

impl RogueIssuer {
    /// A back-channel logout token for `client_id` naming the signed-in session, made as
    /// the current forgery says; `nonce` and `no_event` make it an ID token in disguise.
    pub fn logout_token(&self, client_id: &str, nonce: bool, no_event: bool) -> String {
        let s = self.inner.lock().unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let mut claims = json!({
            "iss": s.issuer, "aud": client_id, "iat": now, "exp": now + 120,
            "jti": format!("jti-{}", URL_SAFE_NO_PAD.encode(p256().get(40..52).unwrap())),
            "sub": s.subject, "sid": "rogue-sid-1",
            "events": { "http://schemas.openid.net/event/backchannel-logout": {} },
        });
        match s.forge {
            Forge::WrongAudience => claims["aud"] = json!("another-client"),
            Forge::WrongIssuer => claims["iss"] = json!("https://evil.example"),
            Forge::Expired => {
                claims["iat"] = json!(now - 900);
                claims["exp"] = json!(now - 600);
            }
            _ => {}
        }
        if nonce {
            claims["nonce"] = json!("n");
        }
        if no_event {
            claims.as_object_mut().unwrap().remove("events");
        }
        sign(&s, &claims)
    }
}
