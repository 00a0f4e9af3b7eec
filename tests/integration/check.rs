//! `poolgate check`: every error of a broken file, each with its line, and a non-zero exit.

use std::process::Command;

use crate::support::BIN;

fn check(text: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.toml");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stderr).replace(&path.display().to_string(), "FILE");
    (out.status.success(), report + &String::from_utf8_lossy(&out.stdout))
}

const BASE: &str = r#"version = 1
[listen]
http = "127.0.0.1:8080"
[pools.employees]
name = "Employees"
portal = "login.employees.localhost"
[pools.employees.apps.wiki]
hosts = ["wiki.employees.localhost"]
upstreams = ["127.0.0.1:9001"]
"#;

#[test]
fn a_valid_file_passes() {
    let (ok, report) = check(BASE);
    assert!(ok, "{report}");
    assert!(report.contains("ok (1 pools, 1 apps)"), "{report}");
}

#[test]
fn each_kind_of_error_is_reported_with_its_line() {
    let cases: [(&str, String, &str); 6] = [
        (
            "unknown key",
            BASE.replace("upstreams", "upstream_servers = []\nupstreams"),
            "FILE:9: unknown field `upstream_servers`",
        ),
        (
            "duplicate host across pools",
            format!(
                "{BASE}[pools.suppliers]\nname = \"S\"\nportal = \"login.suppliers.localhost\"\n[pools.suppliers.apps.orders]\nhosts = [\"wiki.employees.localhost\"]\nupstreams = [\"127.0.0.1:9002\"]\n"
            ),
            "FILE:14: duplicate host `wiki.employees.localhost`: host of app `suppliers/orders` here, host of app `employees/wiki` at line 8",
        ),
        (
            "portal host used as an app host",
            BASE.replace(
                "hosts = [\"wiki.employees.localhost\"]",
                "hosts = [\"login.employees.localhost\"]",
            ),
            "FILE:8: host `login.employees.localhost` is both a portal host and an app host",
        ),
        (
            "bad address",
            BASE.replace("127.0.0.1:9001", "127.0.0.1"),
            "FILE:9: app `employees/wiki`: upstream `127.0.0.1` is not an address",
        ),
        (
            "limit out of range",
            BASE.replace(
                "portal = \"login.employees.localhost\"\n",
                "portal = \"login.employees.localhost\"\naddress_lockout_attempts = 0\n",
            ),
            "FILE:7: pool `employees`: address_lockout_attempts must be between 1 and 1000",
        ),
        (
            "dangling reference",
            format!("{BASE}[pools.employees.sources.partner]\nkind = \"pool\"\npool = \"partners\"\n"),
            "FILE:12: source `employees/partner`: no pool `partners` is defined",
        ),
    ];
    for (kind, text, expected) in cases {
        let (ok, report) = check(&text);
        assert!(!ok, "{kind}: accepted");
        assert!(report.contains(expected), "{kind}: expected `{expected}` in:\n{report}");
    }
}

#[test]
fn all_errors_of_one_file_are_printed() {
    let text = BASE
        .replace("http = \"127.0.0.1:8080\"", "http = \"8080\"")
        .replace("127.0.0.1:9001", "nowhere")
        .replace("login.employees.localhost", "login employees");
    let (ok, report) = check(&text);
    assert!(!ok);
    assert!(report.contains("has 3 error(s)"), "{report}");
    for line in ["FILE:3:", "FILE:6:", "FILE:9:"] {
        assert!(report.contains(line), "no error at {line}:\n{report}");
    }
}

#[test]
fn a_missing_file_is_an_error_not_a_panic() {
    let out = Command::new(BIN)
        .args(["check", "--config", "/nonexistent/poolgate.toml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
}

#[test]
fn a_missing_certificate_is_reported() {
    let text = BASE.replace("http = \"127.0.0.1:8080\"", "https = \"127.0.0.1:8443\"");
    let (ok, report) = check(&text);
    assert!(!ok);
    assert!(report.contains("host login.employees.localhost:"), "{report}");
    assert!(report.contains("wiki.employees.localhost/cert.pem"), "{report}");
}
