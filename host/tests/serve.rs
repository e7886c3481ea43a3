//! `textnlp serve` on loopback, driven by the official `openai` Python client
//! (tests/openai/check_server.py, installed by scripts/setup.sh into $TEXTNLP_HOME/python).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use textnlp_host::paths;

/// A server process on an ephemeral port; killed when dropped.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_textnlp"))
            .args([
                "serve",
                "--addr",
                "127.0.0.1:0",
                "--tokenizer-instances",
                "2",
            ])
            .args(extra)
            .stderr(Stdio::piped())
            .spawn()
            .expect("starts textnlp serve");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        // Forward the server's log to ours (visible with --nocapture) and report its URL and
        // readiness.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[server] {line}");
                if let Some(at) = line.find("listening on ") {
                    let _ = tx.send(line[at + "listening on ".len()..].trim().to_owned());
                }
                if line.ends_with(" ready") {
                    let _ = tx.send("ready".to_owned());
                }
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
        Server { child, url }
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

fn client_script(url: &str, args: &[&str]) -> Command {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/openai/check_server.py");
    let mut cmd = Command::new(python());
    cmd.arg(script).arg(url).args(args);
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
    let mut server = Server::start(&[
        "--max-model-len",
        "2048",
        "--shutdown-grace",
        "3",
        "--jobs-dir",
        jobs.path().to_str().expect("a UTF-8 path"),
    ]);
    assert_ok(
        &client_script(&server.url, &[])
            .output()
            .expect("runs python"),
    );

    // SIGTERM under load: stops accepting, ends the streams, exits 0 within 10 s.
    let load = client_script(&server.url, &["--load", "8"])
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
    let server = Server::start(&["--max-running", "2", "--max-waiting", "2"]);
    assert_ok(
        &client_script(&server.url, &["--overload", "12"])
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
    let mut server = Server::start(&dir);
    let submitted = client_script(&server.url, &["--batch-submit", "24"])
        .output()
        .expect("runs python");
    assert_ok(&submitted);
    let id = String::from_utf8_lossy(&submitted.stdout).trim().to_owned();
    assert!(id.starts_with("batch_"), "{id}");
    // Kill once some results are committed and others are not.
    let started = Instant::now();
    loop {
        let progress = client_script(&server.url, &["--batch-progress", &id])
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

    let server = Server::start(&dir);
    assert_ok(
        &client_script(&server.url, &["--batch-wait", &id, "24"])
            .output()
            .expect("runs python"),
    );
}
