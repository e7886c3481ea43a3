//! Shared helpers for textnlp's end-to-end tests: golden files and the installed model.

use std::path::{Path, PathBuf};

mod metric_corpus;
pub use metric_corpus::{Pair, metric_pairs, prose_pairs};

use serde_json::Value;
use textnlp_host::model::Llama;
use textnlp_host::model::gguf::GgufFile;

/// Directory of the reference outputs (from llama.cpp and the Python metric packages).
pub fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("golden")
}

/// Reads a JSON-lines golden file.
pub fn golden_jsonl(relative: &str) -> Vec<Value> {
    let path = golden_dir().join(relative);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("golden line is JSON"))
        .collect()
}

/// Reads raw little-endian f32 values.
pub fn golden_f32(relative: &str) -> Vec<f32> {
    let bytes = std::fs::read(golden_dir().join(relative)).expect("reading golden f32 file");
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// The installed default model; fails with instructions when set-up has not run.
pub fn default_model() -> Llama {
    let path = textnlp_host::paths::default_model();
    assert!(
        path.exists(),
        "default model missing at {}: run scripts/setup.sh first",
        path.display()
    );
    let file = GgufFile::open(&path).expect("model parses");
    Llama::load(file).expect("model loads")
}

/// A JSON array of numbers as `u32`s.
pub fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_u64().expect("id") as u32)
        .collect()
}

/// A golden step's top-k list `[[id, logit], ...]`.
pub fn top_pairs(v: &Value) -> Vec<(u32, f32)> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|p| {
            (
                p[0].as_u64().expect("id") as u32,
                p[1].as_f64().expect("logit") as f32,
            )
        })
        .collect()
}

/// The bytes of a plugin component built by `scripts/setup.sh` (the guest workspace
/// `plugins/`, which also builds the test components of `tests/plugins/`), e.g.
/// `built_component("hostile")` for `hostile.wasm`.
pub fn built_component(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins/target/wasm32-wasip2/release")
        .join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run scripts/setup.sh to build the plugins",
            path.display()
        )
    })
}

/// The Python of `$TEXTNLP_HOME/python` (created by `scripts/setup.sh` with the reference
/// packages: the `openai` client, sacrebleu, rouge-score, nltk).
pub fn reference_python() -> PathBuf {
    let python = textnlp_host::paths::home().join("python/bin/python");
    assert!(
        python.exists(),
        "{} missing: run scripts/setup.sh",
        python.display()
    );
    python
}

/// Runs `tests/metrics/reference.py` with `request` on stdin and returns its JSON answer.
pub fn python_reference(request: &Value) -> Value {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("metrics/reference.py");
    let mut child = Command::new(reference_python())
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting the reference Python");
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin
        .write_all(request.to_string().as_bytes())
        .expect("writing the request");
    drop(stdin);
    let out = child.wait_with_output().expect("reference Python ran");
    assert!(out.status.success(), "reference.py failed: {}", out.status);
    serde_json::from_slice(&out.stdout).expect("reference.py answers JSON")
}
