//! The operator's CLI on a store file: users, imports, keys. Passwords never on argv.

use std::process::Output;

use crate::support::run_cli;

struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let config = "version = 1\n[listen]\nhttp = \"127.0.0.1:1\"\n[store]\nurl = \"sqlite:data/pg.db\"\n\
                      [pools.employees]\nname = \"Employees\"\nportal = \"login.employees.localhost\"\nplan = \"enterprise\"\n\
                      [pools.suppliers]\nname = \"Suppliers\"\nportal = \"login.suppliers.localhost\"\n";
        std::fs::write(dir.path().join("poolgate.toml"), config).unwrap();
        Setup { dir }
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        run_cli(&self.dir.path().join("poolgate.toml"), args, stdin.unwrap_or(""))
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn users_from_the_command_line() {
    let s = Setup::new();
    let out = s.run(
        &[
            "user",
            "add",
            "--pool",
            "employees",
            "alice",
            "--email",
            "alice@example.com",
            "--group",
            "staff",
            "--password-stdin",
        ],
        Some("s3cret-passphrase\n"),
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("added alice to pool employees"));
    let out = s.run(&["user", "add", "--pool", "employees", "alice", "--no-password"], None);
    assert!(!out.status.success(), "a duplicate is refused");
    assert!(text(&out).contains("already taken"), "{}", text(&out));

    // Without a terminal, without --password-stdin: refused, and nobody is made.
    let out = s.run(&["user", "add", "--pool", "employees", "bob"], None);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("--password-stdin"), "{}", text(&out));
    let listing = text(&s.run(&["user", "list", "--pool", "employees"], None));
    assert!(!listing.contains("bob"), "{listing}");
    // A user without a password must be asked for, and is told what it means.
    let out = s.run(&["user", "add", "--pool", "employees", "bob", "--no-password"], None);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("only through an identity source"), "{}", text(&out));

    let out = s.run(&["user", "disable", "--pool", "employees", "alice"], None);
    assert!(out.status.success(), "{}", text(&out));
    let out = s.run(&["user", "list", "--pool", "employees"], None);
    let listing = text(&out);
    assert!(
        listing.contains("alice") && listing.contains("disabled") && listing.contains("staff"),
        "{listing}"
    );
    // Pools are separate: suppliers has no alice.
    let out = s.run(&["user", "disable", "--pool", "suppliers", "alice"], None);
    assert!(!out.status.success());

    // The password was hashed with argon2id and verifies; it is in no process argument.
    // The database and its write-ahead log, as they sit on disk.
    let mut db = Vec::new();
    for entry in std::fs::read_dir(s.dir.path().join("data")).unwrap() {
        db.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    assert!(
        !db.windows(17).any(|w| w == b"s3cret-passphrase"),
        "no clear password in the store"
    );
    assert!(db.windows(10).any(|w| w == b"$argon2id$"));

    let out = s.run(&["pool", "list"], None);
    assert!(
        text(&out).contains("employees") && text(&out).contains("enterprise"),
        "{}",
        text(&out)
    );
}

#[test]
fn imports_report_each_bad_row_and_atomic_writes_nothing() {
    let s = Setup::new();
    let file = s.dir.path().join("people.jsonl");
    std::fs::write(
        &file,
        "{\"username\": \"ann\"}\n{\"username\": \"bob\", \"email\": \"nope\"}\n{\"username\": \"ann\"}\n",
    )
    .unwrap();
    let out = s.run(
        &[
            "user",
            "import",
            "--pool",
            "employees",
            file.to_str().unwrap(),
            "--atomic",
        ],
        None,
    );
    assert!(!out.status.success());
    let report = text(&out);
    assert!(
        report.contains("people.jsonl:2: `nope` is not a valid email address"),
        "{report}"
    );
    assert!(
        report.contains("people.jsonl:3: username `ann` is already taken"),
        "{report}"
    );
    assert!(report.contains("nothing was imported"), "{report}");
    let out = s.run(&["user", "list", "--pool", "employees"], None);
    assert!(!text(&out).contains("ann"), "{}", text(&out));

    let out = s.run(&["user", "import", "--pool", "employees", file.to_str().unwrap()], None);
    assert!(!out.status.success(), "bad rows still make the exit code non-zero");
    assert!(text(&out).contains("imported 1 users"), "{}", text(&out));
}

#[test]
fn keys_rotate_from_the_command_line() {
    let s = Setup::new();
    let out = s.run(&["keys", "rotate", "--pool", "employees"], None);
    assert!(out.status.success(), "{}", text(&out));
    let out = s.run(&["keys", "rotate", "--pool", "employees"], None);
    assert!(out.status.success());
    let out = s.run(&["keys", "list", "--pool", "employees"], None);
    let listing = text(&out);
    assert_eq!(
        listing.lines().filter(|l| l.ends_with("active")).count(),
        1,
        "{listing}"
    );
    assert_eq!(
        listing.lines().filter(|l| l.ends_with("retired")).count(),
        1,
        "{listing}"
    );
    assert!(
        s.dir.path().join("data/master.key").exists(),
        "the master key was created on first use"
    );
}

#[test]
fn a_client_secret_from_the_command_line_is_printed_once_and_kept_hashed() {
    let s = Setup::new();
    let config = s.dir.path().join("poolgate.toml");
    let mut file = std::fs::read_to_string(&config).unwrap();
    file.push_str("[pools.employees.clients.reports]\nredirect_uris = [\"https://reports.example/cb\"]\n[pools.employees.clients.spa]\nauth_method = \"none\"\n");
    std::fs::write(&config, file).unwrap();
    let out = s.run(&["client", "secret", "--pool", "employees", "reports"], None);
    assert!(out.status.success(), "{}", text(&out));
    let secret = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(secret.len() >= 43, "{secret}");
    let mut db = Vec::new();
    for entry in std::fs::read_dir(s.dir.path().join("data")).unwrap() {
        db.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    assert!(
        !db.windows(secret.len()).any(|w| w == secret.as_bytes()),
        "no clear secret in the store"
    );
    // A public client has none; an unknown one is an error.
    assert!(
        !s.run(&["client", "secret", "--pool", "employees", "spa"], None)
            .status
            .success()
    );
    assert!(
        !s.run(&["client", "secret", "--pool", "employees", "nobody"], None)
            .status
            .success()
    );
    let listing = text(&s.run(&["client", "list", "--pool", "employees"], None));
    assert!(
        listing.contains("reports") && listing.contains("client_secret_basic"),
        "{listing}"
    );
}
