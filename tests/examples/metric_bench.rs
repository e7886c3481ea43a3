//! Corpus BLEU and ROUGE-L throughput: the `bleu` and `rouge` plugins (WebAssembly, through
//! the host's validator interface) against sacrebleu 2.6.0 and rouge-score 0.1.2 on the same
//! corpus, in one run.
//!
//!     cargo run --release -p textnlp-tests --example metric_bench -- [--pairs 2000] [--repeat 5]
//!
//! Needs `scripts/setup.sh` (the plugins and the reference Python packages). Each side's best
//! of `--repeat` runs is reported, as samples per second; the plugin's timing includes moving
//! the samples into the component and the report out, and its BLEU call also scores every
//! sample's sentence BLEU.

use std::time::Instant;

use clap::Parser;
use serde_json::json;
use textnlp_host::plugins::validator::Sample;
use textnlp_host::plugins::{InstanceSpec, Limits, PluginRuntime, ValidatorPlugin};
use textnlp_tests::{built_component, metric_pairs, python_reference};

#[derive(Parser)]
struct Args {
    /// Hypothesis/reference pairs in the corpus.
    #[arg(long, default_value_t = 2000)]
    pairs: usize,
    /// Runs per side; the best counts.
    #[arg(long, default_value_t = 5)]
    repeat: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let pairs = metric_pairs(args.pairs, 0xbe4c);
    let samples: Vec<Sample> = pairs
        .iter()
        .map(|p| Sample {
            text: p.hyp.clone(),
            references: p.refs.clone(),
        })
        .collect();
    let runtime = PluginRuntime::new()?;
    let plugin = |file: &str, name: &str| {
        let spec = InstanceSpec::new("bench", name, Limits::default());
        ValidatorPlugin::new(&runtime, &built_component(file), spec, 1)
    };
    let best_rate = |plugin: &ValidatorPlugin, config: Option<&str>| -> anyhow::Result<f64> {
        plugin.score(&samples, config)?; // warm: instance ready, code paged in
        let mut best = f64::INFINITY;
        for _ in 0..args.repeat {
            let started = Instant::now();
            plugin.score(&samples, config)?;
            best = best.min(started.elapsed().as_secs_f64());
        }
        Ok(samples.len() as f64 / best)
    };
    let bleu = best_rate(&plugin("validator_bleu", "bleu")?, None)?;
    let rouge_l = best_rate(
        &plugin("validator_rouge", "rouge")?,
        Some(r#"{"rouge_types": ["rougeL"]}"#),
    )?;
    let pairs_json: Vec<_> = pairs
        .iter()
        .map(|p| json!({"hyp": p.hyp, "refs": p.refs}))
        .collect();
    let python = python_reference(&json!({
        "mode": "bench",
        "pairs": pairs_json,
        "repeat": args.repeat,
    }));
    let py_bleu = python["bleu_corpus_samples_per_s"]
        .as_f64()
        .unwrap_or(f64::NAN);
    let py_rouge = python["rougeL_samples_per_s"].as_f64().unwrap_or(f64::NAN);
    println!(
        "{} pairs, best of {} runs, samples/s",
        args.pairs, args.repeat
    );
    println!(
        "{:<12} {:>14} {:>14} {:>9}",
        "metric", "textnlp", "python", "speedup"
    );
    for (name, ours, theirs) in [
        ("corpus BLEU", bleu, py_bleu),
        ("ROUGE-L", rouge_l, py_rouge),
    ] {
        println!(
            "{name:<12} {ours:>14.0} {theirs:>14.0} {:>8.1}x",
            ours / theirs
        );
    }
    Ok(())
}
