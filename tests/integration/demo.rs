//! The first run, as a newcomer meets it: `poolgate demo` at a terminal and without one,
//! and every command of the README run as written against the demo.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::{BIN, free_port};

/// A `poolgate demo` child whose stdout is collected as it comes.
struct Demo {
    child: Child,
    out: Arc<Mutex<String>>,
    admin: String,
    /// The demo's directory, which its command line names.
    dir: String,
}

impl Demo {
    /// Runs `command` (the demo, or `script` giving it a terminal) in `dir`.
    fn spawn(mut command: Command, dir: &Path, admin: &str) -> Demo {
        use std::os::unix::process::CommandExt;
        let mut child = command
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        let out = Arc::new(Mutex::new(String::new()));
        for mut stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let out = out.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    out.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
        }
        Demo {
            child,
            out,
            admin: admin.to_owned(),
            dir: dir.display().to_string(),
        }
    }

    fn output(&self) -> String {
        self.out.lock().unwrap().clone()
    }

    /// Waits until the admin listener answers and the gateway has said it started.
    async fn ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("the demo exited with {status}:\n{}", self.output());
            }
            let up = reqwest::get(format!("http://{}/readyz", self.admin)).await;
            if up.is_ok_and(|r| r.status() == 200) && self.output().contains("poolgate is starting") {
                return;
            }
            assert!(Instant::now() < deadline, "the demo did not start:\n{}", self.output());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        // The whole process group: `script` and the demo under it.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.wait();
        // `script` starts the demo in a session of its own, out of that group, and the
        // hang-up it then gets is a reload to the gateway: it is found by its directory.
        kill_processes_naming(&self.dir);
    }
}

/// Kills every process whose command line names `marker`.
fn kill_processes_naming(marker: &str) {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(marker) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
    }
}

/// `config/` of the repository copied into `dir`, the demo's ports moved to `ports`
/// (http, admin, whoami) when given, and a third app whose upstream refuses connections.
fn demo_dir(dir: &Path, ports: Option<(u16, u16, u16)>) -> PathBuf {
    let config = dir.join("config");
    std::fs::create_dir_all(&config).unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    // Its files (the snippets for front proxies and the like, in folders, are not the demo's).
    for entry in std::fs::read_dir(repo).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), config.join(entry.file_name())).unwrap();
        }
    }
    if let Some((http, admin, whoami)) = ports {
        let path = config.join("demo.toml");
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace("127.0.0.1:8080", &format!("127.0.0.1:{http}"))
            .replace("127.0.0.1:9090", &format!("127.0.0.1:{admin}"))
            .replace("127.0.0.1:9001", &format!("127.0.0.1:{whoami}"));
        let down = format!(
            "\n[pools.employees.apps.down]\nhosts = [\"down.employees.localhost\"]\nupstreams = [\"127.0.0.1:{}\"]\npublic_paths = [\"/\"]\n",
            free_port()
        );
        std::fs::write(&path, text + &down).unwrap();
    }
    config.join("demo.toml")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .resolve("wiki.employees.localhost", ([127, 0, 0, 1], 0).into())
        .resolve("down.employees.localhost", ([127, 0, 0, 1], 0).into())
        .no_proxy()
        .build()
        .unwrap()
}

#[tokio::test]
async fn the_demo_logs_json_lines_when_piped() {
    let dir = tempfile::tempdir().unwrap();
    let (http, admin, whoami) = (free_port(), free_port(), free_port());
    let config = demo_dir(dir.path(), Some((http, admin, whoami)));
    let mut cmd = Command::new(BIN);
    cmd.args(["demo", "--config"]).arg(&config);
    let mut demo = Demo::spawn(cmd, dir.path(), &format!("127.0.0.1:{admin}"));
    demo.ready().await;

    let client = client();
    let ok = client
        .get(format!("http://wiki.employees.localhost:{http}/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let failed = client
        .get(format!("http://down.employees.localhost:{http}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), 502);
    let failed_id = failed.headers()["x-request-id"].to_str().unwrap().to_owned();
    crate::support::wait_until(|| demo.output().contains(&failed_id)).await;

    let out = demo.output();
    let banner_end = out.find("Stop: Ctrl-C").expect("the banner");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    // Apart from the banner, every line is JSON: nothing for a person sits between them.
    let stray: Vec<&str> = out[banner_end..]
        .lines()
        .skip(1)
        .filter(|l| !l.is_empty() && !l.starts_with('{'))
        .collect();
    assert!(stray.is_empty(), "lines that are not JSON: {stray:?}\n{out}");
    assert!(
        lines.iter().any(|l| l["fields"]["code"] == "PG0001"),
        "the start is logged:\n{out}"
    );
    // The access log is on stdout, one line per request; a 502 gets no second line.
    let access: Vec<_> = lines.iter().filter(|l| l["target"] == "access").collect();
    assert!(access.iter().any(|l| l["fields"]["path"] == "/health"), "{out}");
    let about_failed = out.lines().filter(|l| l.contains(&failed_id)).count();
    assert_eq!(about_failed, 1, "one line for the failed request:\n{out}");
    assert!(
        !lines.iter().any(|l| l["level"] == "ERROR"),
        "no ERROR line for a 502:\n{out}"
    );
    // Pingora's own lines stay below warn.
    assert!(
        !lines
            .iter()
            .any(|l| l["level"] == "INFO" && l["target"].as_str().is_some_and(|t| t.starts_with("pingora"))),
        "{out}"
    );
}

/// Whether a tool the test runs is installed; outside CI, a missing one skips the test
/// with a line saying so (`.ci/run` installs them).
fn have(tool: &str, test: &str) -> bool {
    if Command::new(tool).arg("--version").output().is_ok() {
        return true;
    }
    crate::support::skip(&format!("{test}: `{tool}` is not installed"));
    false
}

#[tokio::test]
async fn the_demo_writes_for_a_person_at_a_terminal() {
    if !have("script", "the demo-at-a-terminal test") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (http, admin, whoami) = (free_port(), free_port(), free_port());
    let config = demo_dir(dir.path(), Some((http, admin, whoami)));
    // `script` runs the demo on a pseudo-terminal and copies what it writes to our pipe.
    let mut cmd = Command::new("script");
    cmd.args([
        "-qfec",
        &format!("{BIN} demo --config {}", config.display()),
        "/dev/null",
    ]);
    let mut demo = Demo::spawn(cmd, dir.path(), &format!("127.0.0.1:{admin}"));
    demo.ready().await;

    let ok = client()
        .get(format!("http://wiki.employees.localhost:{http}/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let access_log = dir.path().join("data/access.log");
    crate::support::wait_until(|| std::fs::read_to_string(&access_log).is_ok_and(|t| t.contains("/health"))).await;

    let out = demo.output();
    // Lines for a person: no JSON, the level in words, the start among them.
    assert!(!out.lines().any(|l| l.trim_start().starts_with('{')), "{out}");
    assert!(
        out.lines()
            .any(|l| l.contains("INFO") && l.contains("poolgate is starting")),
        "{out}"
    );
    // The banner says where the admin token is, how to call the API, where the access log goes.
    assert!(
        out.contains(&format!("Admin API on http://127.0.0.1:{admin}/api")),
        "{out}"
    );
    assert!(out.contains("admin.token"), "{out}");
    assert!(out.contains("Authorization: Bearer $(cat "), "{out}");
    assert!(out.contains("Access log (JSON lines): "), "{out}");
    assert!(out.contains("access.log"), "{out}");
    // The request is not on the terminal but in the access log, as JSON.
    assert!(!out.contains("/health"), "{out}");
    let line = std::fs::read_to_string(&access_log).unwrap();
    let entry: serde_json::Value = serde_json::from_str(line.lines().last().unwrap()).unwrap();
    assert_eq!(entry["fields"]["path"], "/health");
}

/// What each command of the README must do when run as written, from a checkout with
/// the demo running: (the command, comments dropped; what its output must contain).
/// Every README command is here, or in [`NOT_RUN_HERE`] with the reason.
const README: &[(&str, &[&str])] = &[
    (
        "curl http://wiki.employees.localhost:8080/health",
        &["\"path\":\"/health\""],
    ),
    (
        "curl -i http://wiki.employees.localhost:8080/",
        &["http/1.1 401", "www-authenticate: bearer"],
    ),
    (
        "curl -i -H 'Accept: text/html' http://wiki.employees.localhost:8080/",
        &["http/1.1 302", "location: /.poolgate/login?return_to=%2f"],
    ),
    ("curl -i http://nobody.localhost:8080/", &["http/1.1 421"]),
    ("TOKEN=$(cat data/admin.token)", &[]),
    (
        "api() { curl -s -H \"Authorization: Bearer $TOKEN\" -H 'content-type: application/json' \"$@\"; }",
        &[],
    ),
    (
        "api http://127.0.0.1:9090/api/pools",
        &["\"id\":\"employees\"", "\"id\":\"suppliers\""],
    ),
    (
        "api -X POST http://127.0.0.1:9090/api/pools/employees/users -d '{\"username\":\"carol\",\"email\":\"carol@example.com\",\"password\":\"correct horse battery staple\",\"groups\":[\"staff\"]}'",
        &["\"username\":\"carol\""],
    ),
    (
        "api \"http://127.0.0.1:9090/api/pools/employees/users?limit=10\"",
        &["\"username\":\"alice\"", "\"username\":\"carol\""],
    ),
    (
        "api -X POST http://127.0.0.1:9090/api/pools/employees/apps -d '{\"id\":\"crm\",\"hosts\":[\"crm.employees.localhost\"],\"upstreams\":[\"127.0.0.1:9001\"]}'",
        &["\"id\":\"crm\"", "\"timeout\":\"60s\"", "\"connect_timeout\":\"5s\""],
    ),
    ("curl -i http://crm.employees.localhost:8080/", &["http/1.1 401"]),
    (
        "api -X PATCH http://127.0.0.1:9090/api/pools/employees/apps/crm -d '{\"name\":\"CRM\",\"timeout\":\"30s\"}'",
        &[
            "\"name\":\"CRM\"",
            "\"timeout\":\"30s\"",
            "\"hosts\":[\"crm.employees.localhost\"]",
        ],
    ),
    (
        "api -X POST http://127.0.0.1:9090/api/pools/employees/keys/rotate",
        &["\"kid\""],
    ),
    (
        "api http://127.0.0.1:9090/api/pools/employees/audit",
        &["\"user.create\"", "\"app.create\"", "\"key.rotate\""],
    ),
    (
        "api -X POST http://127.0.0.1:9090/api/reload",
        &["{\"status\":\"reloaded\"}"],
    ),
    (
        "echo 'a long passphrase' | cargo run -- user add --config config/demo.toml --pool employees dave --email dave@example.com --group staff --password-stdin",
        &["added dave to pool employees"],
    ),
    (
        "cargo run -- user list --config config/demo.toml --pool employees",
        &["alice", "carol", "dave"],
    ),
    (
        "cargo run -- user disable --config config/demo.toml --pool employees dave",
        &[],
    ),
    (
        "cargo run -- user reset-mfa --config config/demo.toml --pool employees dave",
        &["dave's second factor is forgotten"],
    ),
    (
        "cargo run -- user import --config config/demo.toml --pool employees config/people.csv --atomic",
        &["imported 2 users into employees"],
    ),
    (
        "cargo run -- keys rotate --config config/demo.toml --pool employees",
        &["pool employees now signs with"],
    ),
];

/// README commands this test does not run, and why.
const NOT_RUN_HERE: &[(&str, &str)] = &[
    (
        "cargo run -- demo",
        "this test runs it (`poolgate demo`, from the checkout's config/)",
    ),
    ("cargo test", "this is it"),
    ("cargo bench", "a measurement, minutes long: run by hand"),
    ("benches/load/run", "a measurement, minutes long: run by hand"),
    ("benches/load/profile", "a measurement, minutes long: run by hand"),
    ("benches/load/signin", "a measurement, minutes long: run by hand"),
    ("benches/load/oidc/run", "a measurement, minutes long: run by hand"),
    ("benches/load/forward_auth", "a measurement, minutes long: run by hand"),
];

/// The shell commands of the README: each line of each `sh` block, continuation lines
/// joined, comments and blank lines dropped.
fn readme_commands() -> Vec<String> {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let mut commands = Vec::new();
    let mut in_sh = false;
    let mut pending = String::new();
    for line in text.lines() {
        if line.starts_with("```") {
            in_sh = line == "```sh";
            continue;
        }
        if !in_sh {
            continue;
        }
        let line = line.trim();
        if let Some(start) = line.strip_suffix('\\') {
            pending.push_str(start.trim());
            pending.push(' ');
            continue;
        }
        let whole = format!("{pending}{line}");
        pending.clear();
        // A comment: `#` at the start of the line or after blanks (not inside a URL).
        let command = match whole.find(" #") {
            Some(i) => whole[..i].trim().to_owned(),
            None if whole.starts_with('#') => String::new(),
            None => whole.trim().to_owned(),
        };
        if !command.is_empty() {
            commands.push(command);
        }
    }
    commands
}

#[tokio::test]
async fn every_readme_command_does_what_the_readme_says() {
    if !have("curl", "the README test") {
        return;
    }
    // The README's commands name the demo's own ports.
    let taken: Vec<u16> = [8080, 9090, 9001]
        .into_iter()
        .filter(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_err())
        .collect();
    if !taken.is_empty() {
        crate::support::skip(&format!(
            "the README test: ports {taken:?} are in use (is a demo running?)"
        ));
        return;
    }
    let commands = readme_commands();
    let mut unknown = Vec::new();
    let mut script = String::from(
        "set -u\n\
         cargo() { if [ \"$1\" = run ] && [ \"$2\" = -- ]; then shift 2; \"$POOLGATE_BIN\" \"$@\"; else return 97; fi; }\n\
         mkdir -p .readme\n",
    );
    let mut runs = Vec::new();
    for command in &commands {
        if NOT_RUN_HERE.iter().any(|(c, _)| c == command) {
            continue;
        }
        match README.iter().find(|(c, _)| c == command) {
            Some((_, expect)) => {
                let i = runs.len();
                script.push_str(&format!(
                    "{{ {command}\n}} >.readme/{i}.out 2>.readme/{i}.err </dev/null; echo $? >.readme/{i}.rc\n"
                ));
                runs.push((command.clone(), *expect));
            }
            None => unknown.push(command.clone()),
        }
    }
    assert!(
        unknown.is_empty(),
        "README commands no test runs (add each to README or NOT_RUN_HERE in tests/integration/demo.rs): {unknown:#?}"
    );
    let missing: Vec<_> = README
        .iter()
        .filter(|(c, _)| !commands.iter().any(|x| x == c))
        .map(|(c, _)| c)
        .collect();
    assert!(missing.is_empty(), "no longer in the README: {missing:#?}");

    let dir = tempfile::tempdir().unwrap();
    demo_dir(dir.path(), None);
    // As the README says: from the checkout, `poolgate demo` with its default config.
    let mut cmd = Command::new(BIN);
    cmd.arg("demo");
    let mut demo = Demo::spawn(cmd, dir.path(), "127.0.0.1:9090");
    demo.ready().await;

    let status = tokio::task::spawn_blocking({
        let dir = dir.path().to_owned();
        move || {
            Command::new("bash")
                .arg("-c")
                .arg(&script)
                .current_dir(dir)
                .env("POOLGATE_BIN", BIN)
                .status()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(status.success());

    let mut failures = Vec::new();
    for (i, (command, expect)) in runs.iter().enumerate() {
        let read =
            |ext: &str| std::fs::read_to_string(dir.path().join(format!(".readme/{i}.{ext}"))).unwrap_or_default();
        let (out, err, rc) = (read("out"), read("err"), read("rc"));
        let lower = out.to_lowercase();
        let absent: Vec<_> = expect.iter().filter(|e| !lower.contains(&e.to_lowercase())).collect();
        if rc.trim() != "0" || !absent.is_empty() {
            failures.push(format!(
                "{command}\n  exit {}; missing {absent:?}\n  stdout: {out}\n  stderr: {err}",
                rc.trim()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "README commands that did not do what it says:\n{}\n\ndemo:\n{}",
        failures.join("\n"),
        demo.output()
    );
}
