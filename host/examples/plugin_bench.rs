//! Prints what the plugin sandbox costs a caller:
//! - instantiation: a fresh instance from the pre-linked component, against taking an idle
//!   one from the pool (what a call pays);
//! - the round trip of an empty call (the tokenizer's `vocab-size`, and a validator's `score`
//!   of an empty batch through the pool, settings included);
//! - the tokenizer's incremental decode per generated token, against one decode step of the
//!   default model (goal: under 5 %).
//!
//!     cargo run --release -p textnlp-host --example plugin_bench
//!
//! Needs `scripts/setup.sh` (the installed model and plugins).

use std::time::Instant;

use textnlp_host::engine::{GenerateRequest, generate};
use textnlp_host::model::gguf::GgufFile;
use textnlp_host::model::vocab::vocabulary_from_gguf;
use textnlp_host::model::{Llama, ModelError};
use textnlp_host::paths;
use textnlp_host::plugins::{
    InstanceSpec, Limits, PluginError, PluginRuntime, TokenizerPlugin, ValidatorPlugin,
};
use textnlp_kernels::cpu::sampling::SamplingParams;

/// Repetitions of each measurement; the best is printed (the machine may be shared).
const REPEAT: usize = 5;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = PluginRuntime::new()?;
    let validator_wasm = std::fs::read(paths::home().join("plugins/validator-length.wasm"))?;
    let validator = ValidatorPlugin::new(
        &runtime,
        &validator_wasm,
        InstanceSpec::new("bench", "length", Limits::default()),
        4,
    )?;
    let pool = validator.pool();

    let n = 200;
    let fresh = best(n, || pool.instantiate().map(drop))?;
    println!(
        "instantiate (new store + instance):  {:>9.1} µs",
        fresh * 1e6
    );
    validator.score(&[], None)?; // leaves one idle instance
    let pooled = best(10_000, || pool.call(None, |_| Ok(())))?;
    println!(
        "take an idle instance from the pool: {:>9.2} µs",
        pooled * 1e6
    );

    let gguf = GgufFile::open(&paths::default_model())?;
    let vocab = vocabulary_from_gguf(gguf.metadata())?;
    let mut tokenizer = TokenizerPlugin::load(&runtime, &paths::tokenizer_plugin(), vocab)?;
    let empty = best(50_000, || tokenizer.vocab_size().map(drop))?;
    println!(
        "empty call (tokenizer vocab-size):   {:>9.2} µs",
        empty * 1e6
    );
    let score = best(10_000, || validator.score(&[], None).map(drop))?;
    println!(
        "validator score([]) via the pool:    {:>9.2} µs",
        score * 1e6
    );

    // The text a model streams, token by token.
    let text = "The quick brown fox jumps over the lazy dog; naïve café 日本語 🙂 costs $12.50.\n"
        .repeat(40);
    let ids = tokenizer.encode(&text, false, false)?;
    let per_token = best(1, || {
        let decoder = tokenizer.incremental_decoder(false)?;
        for &id in &ids {
            tokenizer.decode_next(&decoder, id)?;
        }
        tokenizer.decode_finish(decoder).map(drop)
    })? / ids.len() as f64;
    println!(
        "incremental decode per token:        {:>9.2} µs",
        per_token * 1e6
    );

    let model = Llama::load(gguf)?;
    let prompt = &ids[..32];
    let mut step = f64::INFINITY;
    for _ in 0..REPEAT {
        let request = GenerateRequest {
            prompt,
            max_tokens: 64,
            sampling: SamplingParams::default(),
            stop_tokens: &[],
        };
        let generation = generate::<ModelError>(&model, &request, |_| Ok(()))?;
        step = step.min(generation.decode_time.as_secs_f64() / generation.ids.len() as f64);
    }
    println!(
        "decode step (1 sequence, CPU):       {:>9.1} µs",
        step * 1e6
    );
    println!(
        "tokenizer cost per decode step:      {:>9.2} %  (goal < 5 %)",
        100.0 * per_token / step
    );
    Ok(())
}

/// The best per-iteration time of `REPEAT` runs of `n` iterations, in seconds.
fn best(n: usize, mut f: impl FnMut() -> Result<(), PluginError>) -> Result<f64, PluginError> {
    let mut best = f64::INFINITY;
    for _ in 0..REPEAT {
        let t = Instant::now();
        for _ in 0..n {
            f()?;
        }
        best = best.min(t.elapsed().as_secs_f64() / n as f64);
    }
    Ok(best)
}
