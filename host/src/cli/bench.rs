//! `textnlp bench`: llama-bench-style throughput numbers, one JSON line per test.
//!
//! - `pp512`: one sequence prefills 512 tokens from an empty cache;
//! - `tg128`: one sequence decodes 128 tokens one at a time from an empty cache;
//! - `batched` (N = 1, 4, 16, 64 on the CPU, 1, 16, 64, 256 on a GPU): N sequences each prefill
//!   `--prompt-tokens` (128) tokens, then decode `--gen-tokens` (128) tokens together, one
//!   batched forward step per token; reported as aggregate generated tokens per second over the
//!   decode phase (llama-batched-bench's S_TG), and as `e2e_tokens_per_s` over prefill + decode
//!   (the rate a server's clients see for the same work).
//!
//! Every line names the backend (and the GPU). Token ids are pseudo-random, as in llama-bench.
//! Each test runs `--repetitions` times after one warm-up; the mean and standard deviation are
//! printed.

use std::time::Instant;

use anyhow::Result;
use clap::Args;
use serde_json::json;
use textnlp_kernels::cpu::sampling::SamplingParams;

use super::ModelArgs;
use crate::model::{Backend, Draw, KvCache, Llama, LogitsFor, Scratch, SequenceStep};

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Timed runs per test (after one warm-up run).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    repetitions: u32,
    /// Sequence counts for the batched test [default: 1,4,16,64 on the CPU, 1,16,64,256 on a
    /// GPU]
    #[arg(long, value_delimiter = ',')]
    sequences: Vec<usize>,
    /// Prompt tokens per sequence in the batched test.
    #[arg(long, default_value_t = 128)]
    prompt_tokens: usize,
    /// Generated tokens per sequence in the batched test.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u64).range(1..))]
    gen_tokens: u64,
}

pub fn run(args: BenchArgs) -> Result<()> {
    let (model, backend) = args.model.load_model_on_backend()?;
    let device = model.device_description();
    let context = model.config().context_length;
    let (n_prompt, n_gen) = (args.prompt_tokens, args.gen_tokens as usize);
    if n_prompt + n_gen > context {
        anyhow::bail!(
            "--prompt-tokens {n_prompt} + --gen-tokens {n_gen} exceed the model's context of {context}"
        );
    }
    let sequences = match (&args.sequences[..], backend) {
        ([], Backend::Cpu) => vec![1, 4, 16, 64],
        ([], Backend::Cuda) => vec![1, 16, 64, 256],
        (given, _) => given.to_vec(),
    };
    let reps = args.repetitions as usize;
    let report = |mut info: serde_json::Value,
                  f: &mut dyn FnMut() -> Result<(f64, Option<f64>)>| {
        info["device"] = json!(device);
        report(info, reps, f)
    };
    report(
        json!({"test": "pp512", "n_prompt": 512, "n_gen": 0}),
        &mut || {
            let tokens = [bench_tokens(&model, 512, 0)];
            let mut caches = [model.new_cache()];
            let started = Instant::now();
            let mut next = [vec![0]];
            step(
                &model,
                &mut caches,
                &tokens,
                &mut next,
                &mut Scratch::default(),
            )?;
            Ok((512.0 / started.elapsed().as_secs_f64(), None))
        },
    )?;
    report(
        json!({"test": "tg128", "n_prompt": 0, "n_gen": 128}),
        &mut || decode_rate(&model, 1, 0, 128),
    )?;
    for n in sequences {
        let info = json!({"test": "batched", "sequences": n, "n_prompt": n_prompt, "n_gen": n_gen});
        report(info, &mut || decode_rate(&model, n, n_prompt, n_gen))?;
    }
    Ok(())
}

/// Runs one warm-up and `reps` timed runs of `f` and prints a line. `f` returns tokens/s and,
/// for the batched test, also the end-to-end rate (generated tokens over prefill + decode).
fn report(
    mut info: serde_json::Value,
    reps: usize,
    f: &mut dyn FnMut() -> Result<(f64, Option<f64>)>,
) -> Result<()> {
    f()?;
    let runs = (0..reps).map(|_| f()).collect::<Result<Vec<_>>>()?;
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let rates: Vec<f64> = runs.iter().map(|r| r.0).collect();
    let m = mean(&rates);
    let var = rates.iter().map(|r| (r - m).powi(2)).sum::<f64>() / reps as f64;
    info["tokens_per_s"] = json!(m);
    info["stddev"] = json!(var.sqrt());
    let e2e: Vec<f64> = runs.iter().filter_map(|r| r.1).collect();
    if !e2e.is_empty() {
        info["e2e_tokens_per_s"] = json!(mean(&e2e));
    }
    info["repetitions"] = json!(reps);
    println!("{info}");
    Ok(())
}

/// `n` sequences prefill `n_prompt` tokens, then decode `n_gen` tokens together (greedy,
/// sampled where the model samples: on a GPU only the tokens come back). Returns generated
/// tokens per second over the decode phase (llama-batched-bench's S_TG) and over prefill +
/// decode (what a client of a server sees for the same work).
fn decode_rate(
    model: &Llama,
    n: usize,
    n_prompt: usize,
    n_gen: usize,
) -> Result<(f64, Option<f64>)> {
    let mut caches: Vec<KvCache> = (0..n).map(|_| model.new_cache()).collect();
    let mut scratch = Scratch::default();
    let mut next: Vec<Vec<u32>> = (0..n)
        .map(|i| bench_tokens(model, 1, i as u64 + 1))
        .collect();
    let started = Instant::now();
    if n_prompt > 0 {
        let prompts: Vec<Vec<u32>> = (0..n)
            .map(|i| bench_tokens(model, n_prompt, i as u64 + 100))
            .collect();
        step(model, &mut caches, &prompts, &mut next, &mut scratch)?;
    }
    let decoding = Instant::now();
    for _ in 0..n_gen {
        let fed = next.clone();
        step(model, &mut caches, &fed, &mut next, &mut scratch)?;
    }
    let generated = (n * n_gen) as f64;
    let e2e = (n_prompt > 0).then(|| generated / started.elapsed().as_secs_f64());
    Ok((generated / decoding.elapsed().as_secs_f64(), e2e))
}

/// One batched forward step feeding `tokens[i]` to sequence i; each sequence's greedy next
/// token goes to `next[i]`.
fn step(
    model: &Llama,
    caches: &mut [KvCache],
    tokens: &[Vec<u32>],
    next: &mut [Vec<u32>],
    scratch: &mut Scratch,
) -> Result<()> {
    let mut steps: Vec<SequenceStep> = caches
        .iter_mut()
        .zip(tokens)
        .map(|(cache, tokens)| SequenceStep {
            cache,
            tokens,
            logits: LogitsFor::Last,
        })
        .collect();
    let greedy = Draw {
        params: SamplingParams {
            temperature: 0.0,
            ..SamplingParams::default()
        },
        step: 0,
    };
    let draws = vec![greedy; steps.len()];
    let sampled = model.forward_sampled(&mut steps, &draws, scratch)?;
    for (token, next) in sampled.iter().zip(next) {
        next[0] = *token;
    }
    Ok(())
}

/// Deterministic pseudo-random ordinary token ids.
fn bench_tokens(model: &Llama, n: usize, salt: u64) -> Vec<u32> {
    let vocab = model.config().n_vocab as u64;
    (0..n as u64)
        .map(|i| {
            let x = (i + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
                ^ salt.wrapping_mul(0xD1B5_4A32_D192_ED03);
            (100 + (x >> 17) % (vocab - 100)) as u32
        })
        .collect()
}
