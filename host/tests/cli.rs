//! The `textnlp` binary as users and scripts call it.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

fn golden(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/golden/model")
        .join(relative)
}

fn textnlp(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_textnlp"))
        .args(args)
        .output()
        .expect("runs textnlp")
}

fn stdout_json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is JSON")
}

/// A failure must be one `error: ...` line on stderr and a non-zero exit, never a panic.
fn assert_clean_failure(out: &Output, mentions: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "unexpectedly succeeded");
    assert!(!stderr.contains("panicked"), "panicked: {stderr}");
    assert!(
        stderr.contains(mentions),
        "stderr does not mention {mentions:?}: {stderr}"
    );
}

#[test]
fn perplexity_matches_llama_cpp_within_two_percent() {
    let golden_results: Value =
        serde_json::from_str(&std::fs::read_to_string(golden("perplexity_results.json")).unwrap())
            .unwrap();
    let text = golden("perplexity_text.txt");
    for (ctx, key) in [("128", "c128"), ("256", "c256")] {
        let want: f64 = golden_results["results"][key]["final"]
            .as_str()
            .unwrap()
            .split_whitespace()
            .nth(2)
            .unwrap()
            .parse()
            .unwrap();
        let got = stdout_json(&textnlp(&[
            "perplexity",
            "--ctx",
            ctx,
            text.to_str().unwrap(),
        ]));
        let ppl = got["ppl"].as_f64().unwrap();
        eprintln!("ctx {ctx}: ppl {ppl:.4} (llama.cpp {want})");
        assert!(
            (ppl / want - 1.0).abs() <= 0.02,
            "ctx {ctx}: {ppl} vs llama.cpp {want}"
        );
        assert_eq!(got["chunks"], golden_results["results"][key]["n_chunks"]);
        let per_chunk = golden_results["results"][key]["tokens_scored_per_chunk"]
            .as_u64()
            .unwrap();
        assert_eq!(
            got["scored_tokens"].as_u64().unwrap(),
            per_chunk * got["chunks"].as_u64().unwrap()
        );
    }
}

#[test]
fn tokenize_prints_the_golden_ids() {
    let golden_results: Value =
        serde_json::from_str(&std::fs::read_to_string(golden("perplexity_results.json")).unwrap())
            .unwrap();
    let text = std::fs::read_to_string(golden("perplexity_text.txt")).unwrap();
    let got = stdout_json(&textnlp(&["tokenize", &text]));
    assert_eq!(got, golden_results["token_ids"]);
}

#[test]
fn generate_json_reports_ids_text_and_speed() {
    let out = stdout_json(&textnlp(&[
        "generate",
        "--raw",
        "--temperature",
        "0",
        "--max-tokens",
        "8",
        "--json",
        "The capital of France is",
    ]));
    assert_eq!(
        out["prompt_ids"],
        serde_json::json!([504, 3575, 282, 4649, 314])
    );
    // llama.cpp's greedy continuation. Its two runs (f16 KV cache with flash attention, and
    // f32 KV without) part at token 5, a near-tie; ours must follow one of them.
    let continuations: Vec<(Value, &str)> = ["default", "f32kv"]
        .iter()
        .map(|run| {
            let lines = std::fs::read_to_string(golden(&format!("greedy_llamacpp_{run}.jsonl")))
                .expect("golden greedy file");
            let case: Value = lines
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).expect("JSON line"))
                .find(|c| c["name"] == "plain_capital")
                .expect("the plain_capital case");
            let ids = Value::from(case["generated_ids"].as_array().unwrap()[..8].to_vec());
            let text = if *run == "default" {
                " Paris.\n\nThe United States has"
            } else {
                " Paris.\n\nThe answer is:"
            };
            (ids, text)
        })
        .collect();
    assert!(
        continuations
            .iter()
            .any(|(ids, text)| out["ids"] == *ids && out["text"] == *text),
        "{} / {} matches neither llama.cpp run: {continuations:?}",
        out["ids"],
        out["text"]
    );
    assert!(out["tokens_per_s"].as_f64().unwrap() > 0.0);
    assert!(out["prompt_tokens_per_s"].as_f64().unwrap() > 0.0);
}

#[test]
fn same_seed_same_text() {
    let run = |seed: &str| {
        stdout_json(&textnlp(&[
            "generate",
            "--temperature",
            "1.0",
            "--seed",
            seed,
            "--max-tokens",
            "16",
            "--ignore-eos",
            "--json",
            "Write a haiku about data.",
        ]))["ids"]
            .clone()
    };
    assert_eq!(run("42"), run("42"));
    assert_ne!(run("42"), run("43"));
}

#[test]
fn logits_prints_one_line_per_position() {
    let out = textnlp(&["logits", "--top", "3", "--ids", "504,3575,282,4649,314"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5);
    assert_eq!(lines[4]["top"].as_array().unwrap().len(), 3);
    // After "The capital of France is", llama.cpp's top-1 is " Paris" (7042).
    assert_eq!(lines[4]["top"][0][0], 7042);
}

#[test]
fn bad_input_gives_one_line_errors() {
    assert_clean_failure(
        &textnlp(&["generate", "--model", "/nonexistent.gguf", "hi"]),
        "not found",
    );
    let not_gguf = std::env::current_exe().unwrap();
    assert_clean_failure(
        &textnlp(&["tokenize", "--model", not_gguf.to_str().unwrap(), "hi"]),
        "magic",
    );
    assert_clean_failure(
        &textnlp(&["generate", "--temperature=-1", "hi"]),
        "temperature",
    );
    assert_clean_failure(&textnlp(&["generate", "--top-p", "1.5", "hi"]), "top_p");
    assert_clean_failure(
        &textnlp(&["generate", "--max-tokens", "0", "hi"]),
        "max-tokens",
    );
    assert_clean_failure(
        &textnlp(&["logits", "--ids", "1,99999999"]),
        "outside the vocabulary",
    );
    assert_clean_failure(
        &textnlp(&["perplexity", "--ctx", "128", "/nonexistent.txt"]),
        "nonexistent",
    );
    assert_clean_failure(&textnlp(&["no-such-command"]), "no-such-command");
}

#[test]
fn backend_cpu_runs_and_an_unusable_cuda_backend_is_refused() {
    let generate = |backend: &str| {
        textnlp(&[
            "generate",
            "--backend",
            backend,
            "--raw",
            "--temperature",
            "0",
            "--max-tokens",
            "1",
            "--json",
            "Hi",
        ])
    };
    assert_eq!(
        stdout_json(&generate("cpu"))["ids"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let cuda = generate("cuda");
    match textnlp_host::model::backend::cuda_unusable() {
        // No CUDA here: the message says what stands in the way.
        Some(why) => {
            assert_clean_failure(&cuda, "cannot use --backend cuda");
            assert_clean_failure(&cuda, &why.to_string());
        }
        // The libraries are there: the GPU runs it, or the failure names the device's problem.
        None if cuda.status.success() => {
            assert_eq!(
                stdout_json(&cuda)["ids"],
                stdout_json(&generate("cpu"))["ids"]
            );
        }
        None => assert_clean_failure(&cuda, "cannot use --backend cuda"),
    }
}

#[test]
fn prompts_longer_than_the_context_are_refused_not_truncated() {
    let long = "word ".repeat(9000);
    assert_clean_failure(
        &textnlp(&["generate", "--raw", "--max-tokens", "1", &long]),
        "context length",
    );
}

#[test]
fn validate_reads_jsonl_and_csv_and_writes_the_report_and_the_kept_samples() {
    let dir = tempfile::tempdir().unwrap();
    let jsonl = dir.path().join("samples.jsonl");
    std::fs::write(
        &jsonl,
        concat!(
            r#"{"id": 1, "text": "The cat sat on the mat.", "ref": "The cat is on the mat."}"#,
            "\n",
            r#"{"id": 2, "text": "Write to bob@example.com now", "ref": ["Write now", "Now write"]}"#,
            "\n\n",
            r#"{"id": 3, "text": "ok", "ref": "fine"}"#,
            "\n",
        ),
    )
    .unwrap();
    let report = dir.path().join("report.json");
    let kept = dir.path().join("kept.jsonl");
    let out = textnlp(&[
        "validate",
        jsonl.to_str().unwrap(),
        "--reference-field",
        "ref",
        "-v",
        "bleu:annotate",
        "-v",
        "pii:redact",
        "-v",
        r#"length={"unit": "words", "min": 2}"#,
        "--report",
        report.to_str().unwrap(),
        "--kept",
        kept.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("bleu|nrefs:var|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0"),
        "{stdout}"
    );
    assert!(
        stdout.contains("3 samples: 2 kept, 1 dropped, 1 rewritten"),
        "{stdout}"
    );
    let report: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(report["samples"][2]["dropped_by"]["validator"], "length");
    let kept: Vec<Value> = std::fs::read_to_string(&kept)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(kept.len(), 2);
    // The record keeps its fields; only the text is the redacted one.
    assert_eq!(kept[1]["id"], 2);
    assert_eq!(kept[1]["text"], "Write to [EMAIL] now");

    let csv = dir.path().join("samples.csv");
    std::fs::write(&csv, "body,other\n\"Hello, world\",x\n\"Hello, world\",y\n").unwrap();
    let out = textnlp(&[
        "validate",
        csv.to_str().unwrap(),
        "--text-field",
        "body",
        "-v",
        "dedup",
        "--json",
    ]);
    let report = stdout_json(&out);
    assert_eq!(report["summary"]["kept"], 1);
    assert_eq!(report["samples"][1]["dropped_by"]["validator"], "dedup");
}

#[test]
fn validate_errors_name_the_record_field_or_validator() {
    let dir = tempfile::tempdir().unwrap();
    let jsonl = dir.path().join("samples.jsonl");
    std::fs::write(&jsonl, "{\"text\": \"a\"}\n{\"body\": \"b\"}\n").unwrap();
    let path = jsonl.to_str().unwrap();
    assert_clean_failure(&textnlp(&["validate", path, "-v", "length"]), "record 2");
    std::fs::write(&jsonl, "{\"text\": \"a\"}\nnot json\n").unwrap();
    assert_clean_failure(&textnlp(&["validate", path, "-v", "length"]), "line 2");
    std::fs::write(&jsonl, "{\"text\": \"a\"}\n").unwrap();
    assert_clean_failure(
        &textnlp(&["validate", path, "-v", "nope"]),
        "unknown validator `nope`",
    );
    assert_clean_failure(
        &textnlp(&["validate", path, "-v", "length:erase"]),
        "unknown action",
    );
    assert_clean_failure(&textnlp(&["validate", path, "-v", "bleu"]), "no reference");
}
