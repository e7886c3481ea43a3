//! A hostile validator plugin for the host's isolation tests.
//!
//! `describe` is well-behaved. `score` reads its settings through the imported `config.get()`
//! and misbehaves in the way the `mode` setting names:
//!
//! | mode          | what `score` does                                                          |
//! |---------------|----------------------------------------------------------------------------|
//! | `ok` (or none)| keeps every sample, score `length` = text length in bytes (the control)    |
//! | `loop`        | spins forever                                                              |
//! | `alloc`       | allocates 1 MiB blocks (touching them) forever, until allocation fails     |
//! | `recurse`     | recurses without bound until the wasm call stack overflows                 |
//! | `print`       | prints 64 KiB lines to stdout forever                                      |
//! | `log`         | calls the host `log` `count` times (default 1,000,000) with 4 KiB messages, then behaves as `ok` |
//! | `panic`       | panics (the release profile aborts: a trap)                                |
//! | `trap`        | executes `unreachable`                                                     |
//! | `nan`         | returns NaN and +inf scores                                                |
//! | `wrong-count` | returns one result fewer than the samples given (one result for none)      |
//! | `huge`        | returns a metric name of `bytes` bytes (default 64 MiB)                    |
//! | `resources`   | creates 1,000,000 host resources and leaks them (`via`: `pollable`, the default, or `session`) |
//! | `file`        | tries to read, list and write the file system; reports what happened       |
//! | `env`         | reports how many environment variables and arguments it sees, and its cwd  |
//! | `model`       | calls `model.generate` and returns the text as a metric name               |
//! | `greedy`      | well-behaved: decodes `count` tokens greedily after the first sample's text  |
//! |               | through a `model.session`; corpus metrics `t0`, `t1`, ... are the token ids  |
//!
//! Any other mode is an `invalid-config` error.

use std::hint::black_box;

use exports::textnlp::plugin::validator::{Error, Guest, Report, Sample, SampleResult, Verdict};
use textnlp::plugin::types::{Metric, PluginInfo};

wit_bindgen::generate!({
    // Built against the released 0.1.0 contract: the host must keep running 0.1.0 plugins.
    path: "../../../wit/released/0.1.0",
    world: "textnlp:plugin/validator-plugin@0.1.0",
});

/// The WIT package version this plugin was built against (what the SDK stamps).
#[cfg(target_arch = "wasm32")]
#[used]
#[unsafe(link_section = "textnlp:plugin-api")]
static PLUGIN_API_VERSION: [u8; 5] = *b"0.1.0";

/// The install-time manifest (`textnlp-plugin.json`).
const MANIFEST: &[u8] = include_bytes!("../textnlp-plugin.json");

#[cfg(target_arch = "wasm32")]
#[used]
#[unsafe(link_section = "textnlp:plugin-manifest")]
static PLUGIN_MANIFEST: [u8; MANIFEST.len()] = *include_bytes!("../textnlp-plugin.json");

const MIB: usize = 1 << 20;

struct Hostile;

export!(Hostile);

impl Guest for Hostile {
    fn describe() -> PluginInfo {
        // The same name, version, description and schema as the embedded manifest.
        let manifest: serde_json::Value = serde_json::from_slice(MANIFEST).unwrap_or_default();
        let text = |key: &str| manifest[key].as_str().unwrap_or_default().to_owned();
        PluginInfo {
            name: text("name"),
            version: text("version"),
            description: text("description"),
            config_schema: manifest["config_schema"].to_string(),
        }
    }

    fn score(samples: Vec<Sample>) -> Result<Report, Error> {
        let settings = Settings::read()?;
        match settings.mode.as_str() {
            "ok" => Ok(well_behaved(&samples)),
            "loop" => spin(),
            "alloc" => hoard(),
            "recurse" => {
                let depth = recurse(black_box(0));
                Err(Error::InvalidInput(format!("recursion ended at {depth}")))
            }
            "print" => flood_stdout(),
            "log" => {
                flood_log(settings.number("count", 1_000_000)?);
                Ok(well_behaved(&samples))
            }
            "panic" => panic!("hostile plugin panicked on purpose"),
            "trap" => core::arch::wasm32::unreachable(),
            "nan" => Ok(not_finite(&samples)),
            "wrong-count" => {
                let mut report = well_behaved(&samples);
                if report.samples.pop().is_none() {
                    report.samples.push(kept(Vec::new()));
                }
                Ok(report)
            }
            "huge" => Ok(huge(&samples, settings.number("bytes", 64 * MIB as u64)?)),
            "resources" => {
                leak_resources(&settings.string("via", "pollable")?)?;
                Ok(well_behaved(&samples))
            }
            "file" => Err(Error::InvalidInput(probe_files())),
            "env" => Err(Error::InvalidInput(format!(
                "env: {} variables; args: {}; cwd: {:?}",
                std::env::vars().count(),
                std::env::args().count(),
                std::env::current_dir()
            ))),
            "model" => generate(&samples),
            "greedy" => greedy(&samples, settings.number("count", 8)?),
            other => Err(Error::InvalidConfig(format!("unknown mode {other:?}"))),
        }
    }
}

/// The settings from `config.get()`.
struct Settings {
    mode: String,
    json: serde_json::Map<String, serde_json::Value>,
}

impl Settings {
    fn read() -> Result<Self, Error> {
        let text = textnlp::plugin::config::get();
        let value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| Error::InvalidConfig(format!("settings are not JSON: {e}")))?;
        let serde_json::Value::Object(json) = value else {
            return Err(Error::InvalidConfig(
                "settings are not a JSON object".into(),
            ));
        };
        let mut settings = Settings {
            mode: String::new(),
            json,
        };
        settings.mode = settings.string("mode", "ok")?;
        Ok(settings)
    }

    fn string(&self, key: &str, default: &str) -> Result<String, Error> {
        match self.json.get(key) {
            None => Ok(default.into()),
            Some(serde_json::Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(Error::InvalidConfig(format!(
                "{key}: expected a string, got {other}"
            ))),
        }
    }

    fn number(&self, key: &str, default: u64) -> Result<u64, Error> {
        match self.json.get(key) {
            None => Ok(default),
            Some(v) => v.as_u64().ok_or_else(|| {
                Error::InvalidConfig(format!("{key}: expected a non-negative integer, got {v}"))
            }),
        }
    }
}

fn metric(name: impl Into<String>, value: f64) -> Metric {
    Metric {
        name: name.into(),
        value,
    }
}

fn kept(scores: Vec<Metric>) -> SampleResult {
    SampleResult {
        scores,
        verdict: Verdict {
            keep: true,
            reason: None,
        },
    }
}

/// The control case: keep everything, score = text length in bytes.
fn well_behaved(samples: &[Sample]) -> Report {
    Report {
        corpus: vec![metric("samples", samples.len() as f64)],
        samples: samples
            .iter()
            .map(|s| kept(vec![metric("length", s.text.len() as f64)]))
            .collect(),
    }
}

/// Spins forever; `black_box` keeps the optimizer from proving anything about the loop.
fn spin() -> ! {
    let mut i: u64 = 0;
    loop {
        i = black_box(i.wrapping_add(1));
    }
}

/// Allocates 1 MiB blocks forever, writing to every page of each, until allocation fails
/// (which aborts: a trap).
fn hoard() -> ! {
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut block = vec![0u8; MIB];
        for page in block.chunks_mut(4096) {
            page[0] = 0xa5;
        }
        blocks.push(black_box(block));
        black_box(&blocks);
    }
}

/// Recurses until the call stack overflows. The `black_box` calls keep the call from being
/// turned into a loop (it is not a tail call: the result is used after it returns).
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    if black_box(depth == u64::MAX) {
        return depth;
    }
    let below = recurse(black_box(depth + 1));
    black_box(below).wrapping_add(depth)
}

/// Prints 64 KiB lines to stdout forever.
fn flood_stdout() -> ! {
    let mut line = "x".repeat(64 * 1024 - 1);
    line.push('\n');
    loop {
        print!("{}", black_box(&line));
    }
}

/// Sends `count` 4 KiB messages to the host log.
fn flood_log(count: u64) {
    use textnlp::plugin::log::{Level, log};
    let message = "L".repeat(4096);
    for _ in 0..count {
        log(Level::Info, black_box(&message));
    }
}

/// Scores that are not finite: NaN and +inf for every sample, NaN for the corpus.
fn not_finite(samples: &[Sample]) -> Report {
    Report {
        corpus: vec![metric("nan", f64::NAN)],
        samples: samples
            .iter()
            .map(|_| kept(vec![metric("nan", f64::NAN), metric("inf", f64::INFINITY)]))
            .collect(),
    }
}

/// A well-behaved report except that the first sample (or the corpus, for no samples) carries
/// a metric whose name is `bytes` bytes long.
fn huge(samples: &[Sample], bytes: u64) -> Report {
    let name = "h".repeat(bytes as usize);
    let mut report = well_behaved(samples);
    match report.samples.first_mut() {
        Some(first) => first.scores.push(metric(name, 0.0)),
        None => report.corpus.push(metric(name, 0.0)),
    }
    report
}

/// Creates a million host resources and never drops them.
fn leak_resources(via: &str) -> Result<(), Error> {
    const COUNT: u32 = 1_000_000;
    match via {
        "pollable" => {
            for _ in 0..COUNT {
                let pollable = wasip2::clocks::monotonic_clock::subscribe_duration(1_000_000_000);
                std::mem::forget(pollable);
            }
            Ok(())
        }
        "session" => {
            for i in 0..COUNT {
                match textnlp::plugin::model::Session::open(1) {
                    Ok(session) => std::mem::forget(session),
                    Err(e) => {
                        return Err(Error::Model(format!(
                            "session.open failed after {i} sessions: {e:?}"
                        )));
                    }
                }
            }
            Ok(())
        }
        other => Err(Error::InvalidConfig(format!(
            "via: expected \"pollable\" or \"session\", got {other:?}"
        ))),
    }
}

/// Tries to read, list and write the file system and says what each attempt gave, including
/// whatever was read.
fn probe_files() -> String {
    let read = std::fs::read_to_string("/etc/passwd");
    let list = std::fs::read_dir("/").map(|entries| {
        entries
            .map(|entry| match entry {
                Ok(entry) => entry.file_name().to_string_lossy().into_owned(),
                Err(e) => format!("<{e}>"),
            })
            .collect::<Vec<_>>()
    });
    let write = std::fs::write("/tmp/hostile", b"written by the hostile plugin\n");
    format!("read /etc/passwd: {read:?}; read_dir /: {list:?}; write /tmp/hostile: {write:?}")
}

/// Asks the host model for a few tokens and returns the text as the name of a corpus metric
/// (with an `ok` report otherwise).
fn generate(samples: &[Sample]) -> Result<Report, Error> {
    use textnlp::plugin::model::{GenerationRequest, Prompt};
    let request = GenerationRequest {
        prompt: Prompt::Text("Say hello.".into()),
        max_tokens: 4,
        temperature: 0.0,
        top_p: 1.0,
        seed: Some(0),
        stop: Vec::new(),
    };
    match textnlp::plugin::model::generate(&request) {
        Ok(completion) => {
            let mut report = well_behaved(samples);
            report.corpus.push(metric(completion.text, 1.0));
            Ok(report)
        }
        Err(e) => Err(Error::Model(format!("model.generate failed: {e:?}"))),
    }
}

/// Greedy decoding by hand through a host session: tokenize, append, sample at temperature
/// 0, append the token, repeat. Returns the ids as corpus metrics `t0`, `t1`, ...
fn greedy(samples: &[Sample], count: u64) -> Result<Report, Error> {
    use textnlp::plugin::model::{SamplingParams, Session, tokenize};
    let model = |e| Error::Model(format!("{e:?}"));
    let text = samples.first().map_or("", |s| s.text.as_str());
    let prompt = tokenize(text, true).map_err(model)?;
    let session = Session::open(prompt.len() as u32 + count as u32).map_err(model)?;
    session.append(&prompt).map_err(model)?;
    let greedy = SamplingParams {
        temperature: 0.0,
        top_k: 0,
        top_p: 1.0,
        min_p: 0.0,
        repetition_penalty: 1.0,
        seed: 0,
    };
    let mut report = well_behaved(samples);
    for i in 0..count {
        let token = session.sample(greedy).map_err(model)?;
        report
            .corpus
            .push(metric(format!("t{i}"), f64::from(token)));
        if i + 1 < count {
            session.append(&[token]).map_err(model)?;
        }
    }
    Ok(report)
}
