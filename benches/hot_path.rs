//! Micro-benchmarks of the hot path's parts (criterion): route lookup as the number of
//! hosts grows, opening an app cookie with its revocation check, bearer verification cold
//! and cached, the cached identity headers (assertion included), stripping identity
//! headers, and signing an ID token with each algorithm. `cargo bench`.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use poolgate::config::{Config, IdentityHeaders};
use poolgate::crypto::MasterKey;
use poolgate::ids::{PoolId, Serial};
use poolgate::proxy::{apply_identity, strip};
use poolgate::registry::{PoolKeys, Route, Snapshot};
use poolgate::session::{Bearer, Principal, SessionId, Sessions, Ticket, app_binding};

/// One pool with `apps` apps, one host each.
fn snapshot(apps: usize, master: &MasterKey) -> Snapshot {
    let mut text = String::from(
        "version = 1\n[listen]\nhttp = \"127.0.0.1:8080\"\n[pools.bench]\nname = \"Bench\"\nportal = \"login.bench.localhost\"\nplan = \"enterprise\"\n",
    );
    for i in 0..apps {
        text.push_str(&format!(
            "[pools.bench.apps.a{i}]\nhosts = [\"a{i}.bench.localhost\"]\nupstreams = [\"127.0.0.1:9\"]\n"
        ));
    }
    let config = Config::parse(&text, Path::new("/")).expect("bench config");
    let keys = [(
        PoolId::parse("bench").unwrap(),
        std::sync::Arc::new(PoolKeys::generate(master, "bench").unwrap()),
    )]
    .into();
    Snapshot::build(config, None, keys).expect("bench snapshot")
}

fn route_lookup(c: &mut Criterion) {
    let master = MasterKey::generate().unwrap();
    let mut group = c.benchmark_group("route_lookup");
    for hosts in [1usize, 10_000, 100_000] {
        let snap = snapshot(hosts, &master);
        let host = format!("a{}.bench.localhost", hosts / 2);
        group.bench_with_input(BenchmarkId::from_parameter(hosts), &host, |b, host| {
            b.iter(|| black_box(snap.resolve(black_box(host)).is_some()))
        });
    }
    group.finish();
}

fn cookie_open(c: &mut Criterion) {
    let master = MasterKey::generate().unwrap();
    let keys = PoolKeys::generate(&master, "bench").unwrap();
    let sessions = Sessions::default();
    // A million revoked sessions in the cache: the check must not care.
    for _ in 0..1_000_000 {
        sessions.revocations.revoke(SessionId::random(), i64::MAX);
    }
    let ticket = Ticket {
        sid: SessionId::random(),
        sso: SessionId::random(),
        uid: uuid::Uuid::new_v4(),
        issued: 1_800_000_000,
        expires: 1_800_036_000,
        idle_until: 1_800_001_800,
        mfa: false,
        source: "local".into(),
    };
    let binding = app_binding("bench", "a0");
    let cookie = ticket.seal(&keys.cookies, &binding).unwrap();
    c.bench_function("app_cookie_open_and_revocation_check", |b| {
        b.iter(|| {
            let t = Ticket::open(black_box(&cookie), &keys.cookies, &binding).unwrap();
            black_box(
                t.live_at(1_800_000_100)
                    && !sessions.revocations.is_revoked(&t.sid)
                    && !sessions.revocations.is_revoked(&t.sso),
            )
        })
    });
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    aud: String,
    exp: i64,
    sid: String,
}

fn bearer(c: &mut Criterion) {
    let master = MasterKey::generate().unwrap();
    let keys = PoolKeys::generate(&master, "bench").unwrap();
    let claims = Claims {
        iss: "https://login.bench.localhost".into(),
        sub: "u".into(),
        aud: "a0".into(),
        exp: 4_000_000_000,
        sid: "s".into(),
    };
    let token = keys.signer.as_ref().unwrap().sign(&claims).unwrap();
    c.bench_function("bearer_verify_cold", |b| {
        b.iter(|| {
            black_box(
                keys.verifier
                    .verify::<Claims>(black_box(&token), "https://login.bench.localhost", "a0")
                    .is_ok(),
            )
        })
    });
    let sessions = Sessions::default();
    let principal = Arc::new(Principal {
        sub: "u".into(),
        username: "alice".into(),
        email: None,
        name: String::new(),
        groups: vec![],
        source: "local".into(),
        mfa: false,
        serial: Serial::next(),
    });
    let key = format!("bench\0a0\0{token}");
    // A cached token is still checked against revocations (its SSO session and grant).
    let bearer = Bearer {
        principal,
        sessions: [Some(SessionId::random()), Some(SessionId::random())],
    };
    sessions.remember_bearer(&key, bearer, 4_000_000_000);
    c.bench_function("bearer_verify_cached", |b| {
        b.iter(|| black_box(sessions.bearer(black_box(&key), 1_800_000_000).is_some()))
    });
}

fn identity_cached(c: &mut Criterion) {
    let master = MasterKey::generate().unwrap();
    let snap = snapshot(1, &master);
    let Some(Route::App(_, app)) = snap.resolve("a0.bench.localhost") else {
        panic!("the bench app routes")
    };
    let sessions = Sessions::default();
    let principal = Serial::next();
    // What a signed-in user's request carries upstream: seven headers and the assertion.
    let jwt = "e".repeat(620);
    let prepared: Vec<_> = [
        ("x-poolgate-user", "3f0c6b1e-7f43-4b8a-9d1c-2a9e5c4d7b10"),
        ("x-poolgate-username", "alice"),
        ("x-poolgate-email", "alice@example.com"),
        ("x-poolgate-name", "Alice Liddell"),
        ("x-poolgate-groups", "staff,wonderland"),
        ("x-poolgate-pool", "bench"),
        ("x-poolgate-source", "local"),
        ("x-poolgate-assertion", jwt.as_str()),
    ]
    .into_iter()
    .map(|(n, v)| {
        (
            bytes::Bytes::from_static(n.as_bytes()),
            http::HeaderValue::from_str(v).unwrap(),
        )
    })
    .collect();
    sessions.remember_identity(principal, app.serial, prepared.into(), 4_000_000_000);
    let mut template = pingora::http::RequestHeader::build("GET", b"/", None).unwrap();
    for i in 0..20 {
        template.append_header(format!("x-app-header-{i}"), "value").unwrap();
    }
    c.bench_function("identity_headers_cached", |b| {
        b.iter_batched(
            || template.clone(),
            |mut req| {
                let headers = sessions.identity(principal, app.serial, 1_800_000_000).unwrap();
                apply_identity(black_box(&mut req), &headers);
                req
            },
            criterion::BatchSize::SmallInput,
        )
    });
}

fn strip_headers(c: &mut Criterion) {
    let set = IdentityHeaders::default().strip_set();
    let mut template = pingora::http::RequestHeader::build("GET", b"/", None).unwrap();
    for i in 0..26 {
        template.append_header(format!("x-app-header-{i}"), "value").unwrap();
    }
    for spoof in ["X-Poolgate-User", "x_poolgate_groups", "X-Forwarded-For", "Connection"] {
        template.append_header(spoof.to_owned(), "keep-alive").unwrap();
    }
    c.bench_function("strip_identity_headers_30", |b| {
        b.iter_batched(
            || template.clone(),
            |mut req| strip(&set, black_box(&mut req), false),
            criterion::BatchSize::SmallInput,
        )
    });
}

/// Signing an ID token, which every grant of the token endpoint pays once: ES256 (the
/// gateway's own apps) and RS256 (registered clients' default).
fn token_signing(c: &mut Criterion) {
    use poolgate::crypto::jwt::Signer;
    use poolgate::crypto::signing::{generate_es256, generate_rs256};
    let claims = serde_json::json!({
        "iss": "http://login.bench.localhost", "sub": "9f0c1b9e-8d1e-4a47-9b1e-4f3a2f6c1d20",
        "aud": "rp", "exp": 1_800_000_300, "iat": 1_800_000_000, "auth_time": 1_799_999_000,
        "nonce": "n-0S6_WzA2Mj", "sid": "2b6a3c1e5b0e4bd69a0c7b8f3c0c9d11", "email": "alice@bench.example",
        "email_verified": true,
    });
    let (es, rs) = (generate_es256().unwrap(), generate_rs256().unwrap());
    let signers = [
        ("ES256", Signer::from_pkcs8(&es.jwk.kid, &es.pkcs8).unwrap()),
        ("RS256", Signer::from_rsa_der(&rs.jwk.kid, &rs.pkcs8).unwrap()),
    ];
    let mut group = c.benchmark_group("id_token_sign");
    for (alg, signer) in &signers {
        group.bench_function(*alg, |b| b.iter(|| signer.sign(black_box(&claims)).unwrap()));
    }
    group.finish();
}

criterion_group!(
    benches,
    route_lookup,
    cookie_open,
    bearer,
    identity_cached,
    strip_headers,
    token_signing
);
criterion_main!(benches);
