//! `textnlp serve` on loopback, driven by the official `openai` Python client
//! (tests/openai/check_server.py, installed by scripts/setup.sh into $TEXTNLP_HOME/python).

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use textnlp_host::paths;
use textnlp_host::tenancy::keys;

/// A server's state directory and bootstrap admin key (kept across restarts of a test).
struct Home {
    state: tempfile::TempDir,
    admin_key: String,
}

impl Home {
    fn new() -> Home {
        Home {
            state: tempfile::tempdir().expect("a temporary state directory"),
            admin_key: keys::generate().1,
        }
    }
}

/// A server process on an ephemeral port; killed when dropped.
struct Server {
    child: Child,
    url: String,
    /// Every line the server logged.
    log: Arc<Mutex<Vec<String>>>,
    admin_key: String,
}

impl Server {
    fn start(home: &Home, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_textnlp"))
            .args([
                "serve",
                "--addr",
                "127.0.0.1:0",
                "--tokenizer-instances",
                "2",
                "--state-dir",
            ])
            .arg(home.state.path())
            .args(extra)
            .env("TEXTNLP_ADMIN_KEY", &home.admin_key)
            .stderr(Stdio::piped())
            .spawn()
            .expect("starts textnlp serve");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let lines = Arc::clone(&log);
        // Forward the server's log to ours (visible with --nocapture), keep it, and report
        // the server's URL and readiness.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[server] {line}");
                if let Some(at) = line.find("listening on ") {
                    let _ = tx.send(line[at + "listening on ".len()..].trim().to_owned());
                }
                if line.ends_with(" ready") {
                    let _ = tx.send("ready".to_owned());
                }
                lines.lock().unwrap().push(line);
            }
        });
        let wait = |what: &str| {
            rx.recv_timeout(Duration::from_secs(120))
                .unwrap_or_else(|_| {
                    panic!("the server did not report {what} (is scripts/setup.sh done?)")
                })
        };
        let url = wait("its address");
        assert_eq!(wait("readiness"), "ready");
        Server {
            child,
            url,
            log,
            admin_key: home.admin_key.clone(),
        }
    }

    /// A new tenant with no rate limits and a key with every tenant scope.
    fn tenant_key(&self) -> String {
        let out = self
            .script("", &["--make-key"])
            .output()
            .expect("runs python");
        assert_ok(&out);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// tests/openai/check_server.py against this server, as the tenant of `key`.
    fn script(&self, key: &str, args: &[&str]) -> Command {
        client_script("check_server.py", &self.url, args, key, &self.admin_key)
    }

    fn terminate(&mut self) -> (std::process::ExitStatus, Duration) {
        let pid = self.child.id().to_string();
        let killed = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(killed.expect("runs kill").success());
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("waits for the server") {
                return (status, started.elapsed());
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the server ignored SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn python() -> PathBuf {
    let python = paths::home().join("python/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup.sh (it installs the openai client)",
        python.display()
    );
    python
}

fn client_script(script: &str, url: &str, args: &[&str], key: &str, admin_key: &str) -> Command {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/openai")
        .join(script);
    let mut cmd = Command::new(python());
    cmd.arg(script)
        .arg(url)
        .args(args)
        .env("TEXTNLP_API_KEY", key)
        .env("TEXTNLP_ADMIN_KEY", admin_key);
    cmd
}

fn assert_ok(out: &Output) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "client checks failed:\n{stdout}\n{stderr}"
    );
}

#[test]
fn the_openai_client_works_unchanged_and_sigterm_drains() {
    // A 2048-token context keeps the over-long-prompt case quick to prefill.
    let jobs = tempfile::tempdir().expect("a temporary directory");
    let home = Home::new();
    let mut server = Server::start(
        &home,
        &[
            "--max-model-len",
            "2048",
            "--shutdown-grace",
            "3",
            "--jobs-dir",
            jobs.path().to_str().expect("a UTF-8 path"),
        ],
    );
    let key = server.tenant_key();
    assert_ok(&server.script(&key, &[]).output().expect("runs python"));

    // SIGTERM under load: stops accepting, ends the streams, exits 0 within 10 s.
    let load = server
        .script(&key, &["--load", "8"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("runs python");
    std::thread::sleep(Duration::from_secs(3));
    let (status, took) = server.terminate();
    assert!(status.success(), "exit status {status}");
    assert!(took < Duration::from_secs(10), "took {took:?} to stop");
    let load = load.wait_with_output().expect("the load client ends");
    let report = String::from_utf8_lossy(&load.stdout);
    println!("{report}");
    assert_eq!(
        report.lines().filter(|l| l.starts_with("stream ")).count(),
        8
    );
}

#[test]
fn a_full_queue_answers_429_with_retry_after() {
    let home = Home::new();
    let server = Server::start(&home, &["--max-running", "2", "--max-waiting", "2"]);
    let key = server.tenant_key();
    assert_ok(
        &server
            .script(&key, &["--overload", "12"])
            .output()
            .expect("runs python"),
    );
}

/// A batch survives `kill -9` of the server: restarted on the same job store, the server
/// resumes it and the output file has every request exactly once, in input order.
#[test]
fn a_batch_resumes_after_the_server_is_killed() {
    let jobs = tempfile::tempdir().expect("a temporary directory");
    let dir = ["--jobs-dir", jobs.path().to_str().expect("a UTF-8 path")];
    let home = Home::new();
    let mut server = Server::start(&home, &dir);
    let key = server.tenant_key();
    let submitted = server
        .script(&key, &["--batch-submit", "24"])
        .output()
        .expect("runs python");
    assert_ok(&submitted);
    let id = String::from_utf8_lossy(&submitted.stdout).trim().to_owned();
    assert!(id.starts_with("batch_"), "{id}");
    // Kill once some results are committed and others are not.
    let started = Instant::now();
    loop {
        let progress = server
            .script(&key, &["--batch-progress", &id])
            .output()
            .expect("runs python");
        assert_ok(&progress);
        let progress = String::from_utf8_lossy(&progress.stdout).trim().to_owned();
        let done: usize = progress
            .split(' ')
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        assert!(
            progress.starts_with("in_progress"),
            "finished before the kill: {progress}"
        );
        if done >= 2 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "{progress}");
    }
    server.child.kill().expect("SIGKILL"); // no drain, no goodbye
    server.child.wait().expect("reaped");

    let server = Server::start(&home, &dir);
    assert_ok(
        &server
            .script(&key, &["--batch-wait", &id, "24"])
            .output()
            .expect("runs python"),
    );
}

/// Tenants on one server (tests/openai/check_tenancy.py): keys and scopes on every route,
/// exact quotas under bursts, cross-tenant isolation (404s), a hostile tenant's plugin
/// against another tenant's latency, revocation and expiry, usage, audit, the `openai`
/// client with a tenant key. Then no key it made appears in the server's log or in any file
/// of its data directories.
#[test]
fn tenants_are_isolated_and_limited_and_keys_are_never_kept() {
    let home = Home::new();
    let jobs = tempfile::tempdir().expect("a temporary directory");
    let server = Server::start(
        &home,
        &["--jobs-dir", jobs.path().to_str().expect("a UTF-8 path")],
    );
    let hostile = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins/target/wasm32-wasip2/release/hostile.wasm");
    assert!(
        hostile.exists(),
        "{} is missing (run scripts/setup.sh)",
        hostile.display()
    );
    let out = client_script(
        "check_tenancy.py",
        &server.url,
        &[hostile.to_str().expect("a UTF-8 path")],
        "",
        &home.admin_key,
    )
    .output()
    .expect("runs python");
    assert_ok(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut made: Vec<String> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("KEY "))
        .map(str::to_owned)
        .collect();
    assert!(made.len() >= 10, "{made:?}");
    made.push(home.admin_key.clone());
    // The secret part of a key is what must never be written down.
    let secrets: Vec<String> = made
        .iter()
        .map(|k| k.rsplit('_').next().expect("a key").to_owned())
        .collect();
    let log = server.log.lock().expect("the log").join("\n");
    assert!(log.contains("listening on"), "the log was captured");
    for secret in &secrets {
        assert!(!log.contains(secret.as_str()), "a key is in the server log");
    }
    let files = common::assert_nowhere_in(home.state.path(), &secrets)
        + common::assert_nowhere_in(jobs.path(), &secrets);
    assert!(files > 0);
}
