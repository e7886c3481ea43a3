//! Dataset jobs through the `textnlp job` CLI on the default model: crash safety,
//! reproducibility, and each strategy end to end with validators attached.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn textnlp(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_textnlp"))
        .args(args)
        .output()
        .expect("runs textnlp")
}

/// Runs `textnlp job --jobs-dir DB run SPEC --out OUT`; panics with stderr on failure.
fn run_job(db: &Path, spec: &Path, out: &Path) -> Output {
    let output = textnlp(&[
        "job",
        "--jobs-dir",
        db.to_str().unwrap(),
        "run",
        spec.to_str().unwrap(),
        "--no-progress",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        output.status.success(),
        "job failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn status(db: &Path) -> Value {
    let out = textnlp(&[
        "job",
        "--jobs-dir",
        db.to_str().unwrap(),
        "status",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

fn jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

const CRASH_SPEC: &str = r#"
name: crash
strategy:
  plugin: template
  config:
    template: "Write one {{tone}} sentence about {{topic}}."
    variables:
      tone: [happy, sad, calm, angry]
      topic: [rain, trains, coffee, the sea, a garden, winter, music]
    mode: sample
records: 200
seed: 11
generation: {max_tokens: 24, concurrency: 16}
validators:
  - {plugin: length, config: {min: 2}}
dedup: {near: 0.8}
output: {formats: [jsonl]}
"#;

/// Start a 200-record job, `kill -9` it at three random points, restart each time: the final
/// export has exactly 200 unique records and equals, byte for byte, an uninterrupted run.
#[test]
fn a_job_killed_three_times_resumes_to_the_uninterrupted_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write(dir.path(), "crash.yaml", CRASH_SPEC);

    let started = Instant::now();
    run_job(&dir.path().join("db-a"), &spec, &dir.path().join("out-a"));
    let full = started.elapsed();
    let reference = jsonl(&dir.path().join("out-a/crash.jsonl"));
    assert_eq!(reference.len(), 200);

    let db = dir.path().join("db-b");
    let out = dir.path().join("out-b");
    // Three kill points spread over the run (the seed of the spread is the clock: each CI
    // run kills at different moments).
    let mut state = started.elapsed().as_nanos() as u64 | 1;
    let mut kills = Vec::new();
    for _ in 0..3 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let fraction = 0.1 + (state % 1000) as f64 / 1000.0 * 0.15;
        kills.push(full.mul_f64(fraction).max(Duration::from_millis(300)));
    }
    for delay in &kills {
        let mut child = Command::new(env!("CARGO_BIN_EXE_textnlp"))
            .args(["job", "--jobs-dir", db.to_str().unwrap(), "run"])
            .arg(&spec)
            .args(["--no-progress", "--out", out.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The delay counts from the job's start (its first line), not the model load.
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let first = lines.next().expect("a first line").unwrap();
        assert!(
            first.starts_with("job ") || first.starts_with("resuming job"),
            "{first}"
        );
        std::thread::spawn(move || lines.for_each(drop));
        std::thread::sleep(*delay);
        assert!(
            child.try_wait().unwrap().is_none(),
            "the job ended before its kill at {delay:?}"
        );
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    let resumed = run_job(&db, &spec, &out);
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert!(stderr.contains("resuming job"), "{stderr}");

    let records = jsonl(&out.join("crash.jsonl"));
    assert_eq!(records.len(), 200);
    let ids: BTreeSet<&str> = records.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 200, "duplicate records");
    assert_eq!(
        std::fs::read(out.join("crash.jsonl")).unwrap(),
        std::fs::read(dir.path().join("out-a/crash.jsonl")).unwrap(),
        "the resumed dataset differs from the uninterrupted one (kills at {kills:?})"
    );
    let job = &status(&db)[0];
    assert_eq!(job["state"], "completed");
    assert_eq!(job["runs"], 4, "{job}");
    assert_eq!(job["counts"]["accepted"], 200);
}

#[test]
fn spec_errors_name_the_field_and_nothing_runs() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    for (spec, field) in [
        (CRASH_SPEC.replace("records: 200", "records: -1"), "records"),
        (CRASH_SPEC.replace("near: 0.8", "near: 2"), "dedup.near"),
        (
            CRASH_SPEC.replace("plugin: length", "plugin: no-such-validator"),
            "no-such-validator",
        ),
        (
            CRASH_SPEC.replace("plugin: template", "plugin: no-such-strategy"),
            "no-such-strategy",
        ),
        (
            CRASH_SPEC.replace("mode: sample", "mode: shuffle"),
            "strategy.config",
        ),
    ] {
        let path = write(dir.path(), "bad.yaml", &spec);
        let out = textnlp(&[
            "job",
            "--jobs-dir",
            db.to_str().unwrap(),
            "run",
            path.to_str().unwrap(),
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "accepted: {spec}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(stderr.contains(field), "{field} not named: {stderr}");
    }
}

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name)
}

/// Runs an example spec with fewer records; its records and card.
fn run_example(name: &str, records: u64) -> (Vec<Value>, Value) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let output = textnlp(&[
        "job",
        "--jobs-dir",
        dir.path().join("db").to_str().unwrap(),
        "run",
        example(name).to_str().unwrap(),
        "--no-progress",
        "--records",
        &records.to_string(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        output.status.success(),
        "{name} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let card: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("dataset-card.json")).unwrap())
            .unwrap();
    let export = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .expect("a JSONL export");
    let records_json = jsonl(&export);
    assert_eq!(records_json.len() as u64, records, "{name}");
    assert_eq!(card["records"], records, "{name}");
    assert_eq!(card["state"], "completed");
    assert_eq!(card["model"]["sha256"].as_str().unwrap().len(), 64);
    for plugin in card["plugins"]["validators"].as_array().unwrap() {
        assert_eq!(plugin["sha256"].as_str().unwrap().len(), 64, "{plugin}");
    }
    // Every record went through every validator of the spec.
    let validators = card["plugins"]["validators"].as_array().unwrap().len();
    assert!(validators >= 1, "{name} has no validator");
    for record in &records_json {
        assert!(
            !record["completion"].as_str().unwrap().trim().is_empty(),
            "{record}"
        );
        assert_eq!(
            record["validation"].as_object().unwrap().len(),
            validators,
            "{record}"
        );
    }
    (records_json, card)
}

fn metadata_strings<'a>(records: &'a [Value], field: &str) -> Vec<&'a str> {
    records
        .iter()
        .map(|r| {
            r["metadata"][field]
                .as_str()
                .unwrap_or_else(|| panic!("no {field}: {r}"))
        })
        .collect()
}

#[test]
fn the_sentiment_example_is_balanced_and_label_checked() {
    let (records, card) = run_example("sentiment-classification.yaml", 6);
    let mut labels = metadata_strings(&records, "label");
    labels.sort();
    assert_eq!(
        labels,
        [
            "negative", "negative", "neutral", "neutral", "positive", "positive"
        ]
    );
    for record in &records {
        let check = &record["validation"]["label"];
        assert_eq!(check["keep"], true, "{record}");
        assert_eq!(check["scores"]["label-correct"], 1.0, "{record}");
    }
    assert_eq!(card["balance"]["counts"]["neutral"], 2, "{card}");
    assert_eq!(
        card["corpus_metrics"]["label"]["label-accuracy"], 1.0,
        "{card}"
    );
}

#[test]
fn the_template_example_generates_from_its_variables() {
    let (records, _) = run_example("product-reviews.yaml", 4);
    for tone in metadata_strings(&records, "tone") {
        assert!(
            [
                "enthusiastic",
                "disappointed",
                "matter-of-fact",
                "sarcastic"
            ]
            .contains(&tone),
            "{tone}"
        );
    }
}

#[test]
fn the_template_example_takes_per_record_variables_from_a_csv_file() {
    let (records, _) = run_example("support-tickets.yaml", 4);
    let names = metadata_strings(&records, "name");
    // Rows are the slowest dimension: each customer with both tones, in file order.
    assert_eq!(names, ["Ana", "Ana", "Ben", "Ben"]);
    assert_eq!(
        metadata_strings(&records, "tone"),
        ["polite", "frustrated", "polite", "frustrated"]
    );
    let prompt = records[2]["messages"][0]["content"].as_str().unwrap();
    assert!(
        prompt.contains("Ben") && prompt.contains("an e-reader"),
        "{prompt}"
    );
}

#[test]
fn the_few_shot_example_reads_its_examples_file() {
    let (records, card) = run_example("few-shot-qa.yaml", 4);
    for record in &records {
        let shown = record["metadata"]["examples"].as_array().unwrap();
        assert_eq!(shown.len(), 3, "{record}");
        let prompt = record["messages"].to_string();
        assert!(prompt.contains("Output:"), "{prompt}");
    }
    // The inlined file is part of the spec the card records.
    assert_eq!(
        card["spec"]["strategy"]["config"]["examples"]
            .as_array()
            .unwrap()
            .len(),
        8
    );
}

#[test]
fn the_self_instruct_example_grows_its_pool() {
    let (records, _) = run_example("self-instruct.yaml", 4);
    for record in &records {
        let rouge = record["metadata"]["max_rouge_l"].as_f64().unwrap();
        assert!((0.0..=0.7).contains(&rouge), "{record}");
    }
}

#[test]
fn the_evol_instruct_example_evolves_seed_instructions() {
    let (records, _) = run_example("evol-instruct.yaml", 3);
    for record in &records {
        assert_eq!(
            record["metadata"]["operations"].as_array().unwrap().len(),
            1,
            "{record}"
        );
        let seed = record["metadata"]["seed_instruction"].as_str().unwrap();
        assert_ne!(
            record["messages"][0]["content"].as_str().unwrap(),
            seed,
            "{record}"
        );
    }
}

#[test]
fn the_magpie_example_elicits_instructions_from_the_user_prefix() {
    let (records, _) = run_example("magpie.yaml", 3);
    for record in &records {
        // The spec's system message, then the user turn's opening: ChatML for SmolLM2.
        let prefix = record["metadata"]["user_prefix"].as_str().unwrap();
        assert!(
            prefix.ends_with("<|im_end|>\n<|im_start|>user\n"),
            "{record}"
        );
        let instruction = record["messages"].as_array().unwrap().last().unwrap();
        assert_eq!(instruction["role"], "user");
        assert!(
            !instruction["content"].as_str().unwrap().contains("<|im_"),
            "{record}"
        );
    }
}

/// A mock OpenAI-compatible server: answers every chat with a text derived from its last user
/// message, and refuses requests without the expected key.
struct MockApi {
    addr: std::net::SocketAddr,
    seen: std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
    _runtime: tokio::runtime::Runtime,
}

const MOCK_KEY: &str = "sk-jobs-test-91c2";

impl MockApi {
    fn start() -> MockApi {
        use axum::http::{HeaderMap, StatusCode};
        use axum::response::IntoResponse;
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let log = std::sync::Arc::clone(&seen);
        let app = axum::Router::new().route(
            "/v1/chat/completions",
            axum::routing::post(move |headers: HeaderMap, body: String| {
                let log = std::sync::Arc::clone(&log);
                async move {
                    let request: Value = serde_json::from_str(&body).unwrap();
                    let authorized = headers.get("authorization").and_then(|v| v.to_str().ok())
                        == Some(&format!("Bearer {MOCK_KEY}"));
                    log.lock().unwrap().push(request.clone());
                    if !authorized {
                        let error = serde_json::json!({"error": {"message": "bad key", "type": "invalid_request_error"}});
                        return (StatusCode::UNAUTHORIZED, axum::Json(error)).into_response();
                    }
                    let user = request["messages"].as_array().unwrap().last().unwrap()["content"]
                        .as_str()
                        .unwrap()
                        .to_owned();
                    axum::Json(serde_json::json!({
                        "id": "chatcmpl-mock", "object": "chat.completion", "created": 0,
                        "model": request["model"],
                        "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": format!("mock answer to: {user}")}}],
                        "usage": {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12},
                    }))
                    .into_response()
                }
            }),
        );
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        runtime.spawn(async move { axum::serve(listener, app).await.unwrap() });
        MockApi {
            addr,
            seen,
            _runtime: runtime,
        }
    }
}

/// `model: provider:openai/MODEL`: the strategy generates through the `openai` provider plugin
/// (the key added by the host from `TEXTNLP_API_KEY_OPENAI`), validators still run locally, and
/// the card names the provider.
#[test]
fn a_job_generates_through_a_provider_model() {
    let mock = MockApi::start();
    let dir = tempfile::tempdir().unwrap();
    let spec = write(
        dir.path(),
        "remote.yaml",
        &format!(
            r#"
name: remote
model: provider:openai/mock-model
provider:
  config: {{base_url: "http://{addr}/v1", models: [mock-model]}}
  hosts: ["{addr}"]
strategy:
  plugin: template
  config: {{template: "Describe {{{{ thing }}}}.", variables: {{thing: [rain, snow, fog, wind]}}}}
records: 4
validators:
  - {{plugin: length, config: {{min: 3}}}}
dedup: {{near: null}}
"#,
            addr = mock.addr
        ),
    );
    let run = |key: Option<&str>, out: &str| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_textnlp"));
        command
            .args(["job", "--jobs-dir"])
            .arg(dir.path().join(format!("db-{out}")))
            .arg("run")
            .arg(&spec)
            .args(["--no-progress", "--out"])
            .arg(dir.path().join(out))
            .env_remove("TEXTNLP_API_KEY_OPENAI");
        if let Some(key) = key {
            command.env("TEXTNLP_API_KEY_OPENAI", key);
        }
        command.output().unwrap()
    };

    let output = run(Some(MOCK_KEY), "out");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let records = jsonl(&dir.path().join("out/remote.jsonl"));
    let things: Vec<&str> = records
        .iter()
        .map(|r| r["metadata"]["thing"].as_str().unwrap())
        .collect();
    assert_eq!(things, ["rain", "snow", "fog", "wind"]);
    for record in &records {
        let thing = record["metadata"]["thing"].as_str().unwrap();
        assert_eq!(
            record["completion"],
            format!("mock answer to: Describe {thing}.")
        );
        assert_eq!(record["validation"]["length"]["keep"], true);
    }
    let seen = mock.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 4);
    assert!(seen.iter().all(|r| r["model"] == "mock-model"), "{seen:?}");
    let card: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("out/dataset-card.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(card["model"]["generated_by"], "provider:openai/mock-model");
    assert_eq!(card["plugins"]["provider"]["name"], "openai");
    assert_eq!(card["usage"]["completion_tokens"], 20);

    // Without the key the remote API refuses, and the job fails saying so.
    let output = run(None, "nokey");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("unauthorized") || stderr.contains("401"),
        "{stderr}"
    );
}
