//! Corpus BLEU and ROUGE-L throughput: the `bleu` and `rouge` plugins (WebAssembly, through
//! the host's validator interface) against sacrebleu 2.6.0 and rouge-score 0.1.2 on the same
//! corpus, in one run.
//!
//!     cargo run --release -p textnlp-tests --example metric_bench -- [--pairs 2000] [--repeat 5]
//!
//! Needs `scripts/setup.sh` (the plugins and the reference Python packages). Two corpora:
//! `prose` (plain English sentences with one reference, what a dataset mostly holds) and
//! `adversarial` (the cross-check corpus: entities, Unicode, line breaks, up to three
//! references). Each side's best of `--repeat` runs is reported, as samples per second; the
//! plugin's timing includes moving the samples into the component and the report out, and
//! its BLEU call also scores every sample's sentence BLEU.

use std::time::Instant;

use clap::Parser;
use serde_json::json;
use textnlp_host::plugins::validator::Sample;
use textnlp_host::plugins::{InstanceSpec, Limits, PluginRuntime, ValidatorPlugin};
use textnlp_tests::{Pair, built_component, metric_pairs, prose_pairs, python_reference};

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
    let runtime = PluginRuntime::new()?;
    let plugin = |file: &str, name: &str| {
        let spec = InstanceSpec::new("bench", name, Limits::default());
        ValidatorPlugin::new(&runtime, &built_component(file), spec, 1)
    };
    let bleu = plugin("validator_bleu", "bleu")?;
    let rouge = plugin("validator_rouge", "rouge")?;
    println!("best of {} runs, samples/s", args.repeat);
    println!(
        "{:<12} {:<12} {:>12} {:>12} {:>9}",
        "corpus", "metric", "textnlp", "python", "speedup"
    );
    for (corpus, pairs) in [
        ("prose", prose_pairs(args.pairs, 0xbe4c)),
        ("adversarial", metric_pairs(args.pairs, 0xbe4c)),
    ] {
        let samples = samples(&pairs);
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
        let ours = [
            best_rate(&bleu, None)?,
            best_rate(&rouge, Some(r#"{"rouge_types": ["rougeL"]}"#))?,
        ];
        let python = python_reference(&json!({
            "mode": "bench",
            "pairs": pairs.iter().map(|p| json!({"hyp": p.hyp, "refs": p.refs})).collect::<Vec<_>>(),
            "repeat": args.repeat,
        }));
        let theirs = ["bleu_corpus_samples_per_s", "rougeL_samples_per_s"]
            .map(|k| python[k].as_f64().unwrap_or(f64::NAN));
        for (i, metric) in ["corpus BLEU", "ROUGE-L"].iter().enumerate() {
            println!(
                "{corpus:<12} {metric:<12} {:>12.0} {:>12.0} {:>8.1}x",
                ours[i],
                theirs[i],
                ours[i] / theirs[i]
            );
        }
    }
    Ok(())
}

fn samples(pairs: &[Pair]) -> Vec<Sample> {
    pairs
        .iter()
        .map(|p| Sample {
            text: p.hyp.clone(),
            references: p.refs.clone(),
        })
        .collect()
}
