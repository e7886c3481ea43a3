//! Corpus BLEU and ROUGE-L throughput: the `bleu` and `rouge` plugins (WebAssembly, through
//! the host's validator interface) against sacrebleu 2.6.0 and rouge-score 0.1.2 on the same
//! corpus, in one run.
//!
//!     cargo run --release -p textnlp-tests --example metric_bench -- [--pairs 2000] [--repeat 10]
//!
//! Needs `scripts/setup.sh` (the plugins and the reference Python packages). Two corpora:
//! `prose` (plain English sentences with one reference, what a dataset mostly holds) and
//! `adversarial` (the cross-check corpus: entities, Unicode, line breaks, up to three
//! references). Each side's best of `--repeat` runs is reported, as samples per second (the
//! sides take turns, one run each, so both meet the machine's fast and slow spells); the
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
    /// Runs per side, taking turns; the best counts (this machine's speed drifts by up to a
    /// third from one second to the next: a few runs can all land in a slow spell).
    #[arg(long, default_value_t = 10)]
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
        let request = json!({
            "mode": "bench",
            "pairs": pairs.iter().map(|p| json!({"hyp": p.hyp, "refs": p.refs})).collect::<Vec<_>>(),
            "repeat": 1,
        });
        let rouge_l = Some(r#"{"rouge_types": ["rougeL"]}"#);
        bleu.score(&samples, None)?; // warm: instances ready, code paged in
        rouge.score(&samples, rouge_l)?;
        // Best rates, [ours, Python] per metric. The two sides take turns, so a slow spell of
        // the machine hits both alike.
        let mut best = [[0.0f64; 2]; 2];
        for _ in 0..args.repeat {
            for (i, (plugin, config)) in [(&bleu, None), (&rouge, rouge_l)].into_iter().enumerate()
            {
                let started = Instant::now();
                plugin.score(&samples, config)?;
                let rate = samples.len() as f64 / started.elapsed().as_secs_f64();
                best[i][0] = best[i][0].max(rate);
            }
            let python = python_reference(&request);
            for (i, key) in ["bleu_corpus_samples_per_s", "rougeL_samples_per_s"]
                .iter()
                .enumerate()
            {
                best[i][1] = best[i][1].max(python[key].as_f64().unwrap_or(f64::NAN));
            }
        }
        for (i, metric) in ["corpus BLEU", "ROUGE-L"].iter().enumerate() {
            let [ours, theirs] = best[i];
            println!(
                "{corpus:<12} {metric:<12} {ours:>12.0} {theirs:>12.0} {:>8.1}x",
                ours / theirs
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
