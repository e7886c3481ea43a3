//! The CUDA backend end to end, against the CPU backend on the default model: greedy tokens on
//! the golden prompts, perplexity, and continuous batching in the engine.
//!
//! Every test skips, saying why, where no GPU can be used (a build without feature `cuda`, no
//! driver or NVRTC, no device). `TEXTNLP_REQUIRE_GPU=1` turns the skip into a failure, for runs
//! on a GPU machine. A GPU that is present but fails (a kernel that does not compile or load, a
//! launch refused) always fails.
//!
//! Tolerances, stated once:
//! - tokens: the GPU's greedy token must be the CPU's argmax, teacher-forced through the CPU,
//!   until the CPU's two best logits come within [`NEAR_TIE`] of each other (where the two
//!   backends' different summation orders may legitimately pick either);
//! - logits of the first step: within [`LOGIT_TOLERANCE`] of the CPU's, everywhere;
//! - perplexity: within 1 % of the CPU's.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;
use textnlp_host::engine::{
    Engine, EngineConfig, Event, GenerateRequest, Priority, Request, generate,
    negative_log_likelihood,
};
use textnlp_host::model::gguf::GgufFile;
use textnlp_host::model::{
    BackendRequest, Llama, LogitsFor, ModelError, Scratch, SequenceStep, backend,
};
use textnlp_host::paths;
use textnlp_kernels::cpu::sampling::{SamplingParams, argmax};

/// Top-2 logit margin under which the CPU's choice is a near-tie.
const NEAR_TIE: f32 = 0.1;
/// Largest difference allowed between a GPU and a CPU logit of the same step.
const LOGIT_TOLERANCE: f32 = 0.25;
/// Tokens generated per golden prompt.
const GENERATED: usize = 48;

fn cpu_model() -> Llama {
    let path = paths::default_model();
    let file = GgufFile::open(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/setup.sh)", path.display()));
    Llama::load(file).expect("loads the default model")
}

/// The default model on the GPU, or `None` (after saying why) where there is no GPU to use.
fn gpu_model() -> Option<Llama> {
    let mut model = cpu_model();
    match backend::place(&mut model, BackendRequest::Cuda, &paths::ptx_cache()) {
        Ok(_) => Some(model),
        Err(why) if why.no_gpu_here() && std::env::var_os("TEXTNLP_REQUIRE_GPU").is_none() => {
            eprintln!("skipped: no GPU to run the CUDA backend on ({why})");
            None
        }
        Err(why) => panic!("the CUDA backend failed: {why}"),
    }
}

fn golden(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/golden/model")
        .join(name)
}

/// The golden prompts (llama.cpp's greedy runs) as token ids.
fn golden_prompts() -> Vec<(String, Vec<u32>)> {
    std::fs::read_to_string(golden("greedy_llamacpp_default.jsonl"))
        .expect("golden greedy file")
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap();
            let ids = v["prompt_ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|id| id.as_u64().unwrap() as u32)
                .collect();
            (v["name"].as_str().unwrap().to_owned(), ids)
        })
        .collect()
}

/// The logits after feeding `tokens` into a fresh cache of `model`, one row per token.
fn all_logits(model: &Llama, tokens: &[u32]) -> Result<Vec<f32>, ModelError> {
    let mut cache = model.new_cache();
    let mut scratch = Scratch::default();
    let mut step = [SequenceStep {
        cache: &mut cache,
        tokens,
        logits: LogitsFor::All,
    }];
    Ok(model.forward(&mut step, &mut scratch)?.to_vec())
}

/// Teacher-forces `generated` after `prompt` through the CPU and checks that each token is the
/// CPU's argmax, until the first near-tie. Returns how many tokens were checked.
fn agrees_with_the_cpu(cpu: &Llama, prompt: &[u32], generated: &[u32], what: &str) -> usize {
    let n_vocab = cpu.config().n_vocab;
    let tokens: Vec<u32> = prompt.iter().chain(generated).copied().collect();
    let logits = all_logits(cpu, &tokens).unwrap();
    for (i, &token) in generated.iter().enumerate() {
        let row = &logits[(prompt.len() - 1 + i) * n_vocab..][..n_vocab];
        let best = argmax(row);
        let runner_up = row
            .iter()
            .enumerate()
            .filter(|&(id, _)| id != best as usize)
            .map(|(_, &l)| l)
            .fold(f32::NEG_INFINITY, f32::max);
        if row[best as usize] - runner_up < NEAR_TIE {
            return i;
        }
        assert_eq!(
            token,
            best,
            "{what}: token {i} is {token} on the GPU, {best} on the CPU (margin {})",
            row[best as usize] - runner_up
        );
    }
    generated.len()
}

fn greedy(model: &Llama, prompt: &[u32], max_tokens: usize) -> Vec<u32> {
    let req = GenerateRequest {
        prompt,
        max_tokens,
        sampling: SamplingParams {
            temperature: 0.0,
            ..SamplingParams::default()
        },
        stop_tokens: &[],
    };
    generate::<ModelError>(model, &req, |_| Ok(())).unwrap().ids
}

#[test]
fn gpu_greedy_tokens_equal_the_cpu_on_the_golden_prompts() {
    let Some(gpu) = gpu_model() else { return };
    let cpu = cpu_model();
    let n_vocab = cpu.config().n_vocab;
    let (mut checked, mut total) = (0, 0);
    for (name, prompt) in golden_prompts() {
        // The prompt's logits, row by row (the prefill kernels).
        let (want, got) = (
            all_logits(&cpu, &prompt).unwrap(),
            all_logits(&gpu, &prompt).unwrap(),
        );
        let worst = want
            .iter()
            .zip(&got)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(
            worst <= LOGIT_TOLERANCE,
            "{name}: prompt logits differ by up to {worst} (over {} rows of {n_vocab})",
            prompt.len()
        );
        // Greedy decoding on the GPU (the decode graphs), checked token by token.
        let generated = greedy(&gpu, &prompt, GENERATED);
        assert_eq!(generated.len(), GENERATED, "{name}");
        let agreed = agrees_with_the_cpu(&cpu, &prompt, &generated, &name);
        eprintln!(
            "{name}: {agreed}/{GENERATED} tokens checked before a near-tie, worst prompt logit difference {worst:.4}"
        );
        checked += agreed;
        total += GENERATED;
    }
    // Near-ties are rare in greedy text: most tokens must have been checked.
    assert!(
        checked * 2 >= total,
        "only {checked} of {total} tokens were checked"
    );
}

/// llama-perplexity's method over the golden text: chunks of `ctx` tokens, each from an empty
/// cache, positions `ctx/2 .. ctx-1` scored.
fn perplexity(model: &Llama, tokens: &[u32], ctx: usize) -> f64 {
    let n_vocab = model.config().n_vocab;
    let (mut nll, mut scored) = (0.0, 0);
    for chunk in tokens.chunks_exact(ctx) {
        let logits = all_logits(model, chunk).unwrap();
        for pos in ctx / 2..ctx - 1 {
            nll += negative_log_likelihood(&logits[pos * n_vocab..][..n_vocab], chunk[pos + 1]);
            scored += 1;
        }
    }
    (nll / scored as f64).exp()
}

#[test]
fn gpu_perplexity_is_within_one_percent_of_the_cpu() {
    let Some(gpu) = gpu_model() else { return };
    let cpu = cpu_model();
    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(golden("perplexity_results.json")).unwrap())
            .unwrap();
    let tokens: Vec<u32> = results["token_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    for ctx in [128, 256] {
        let (want, got) = (
            perplexity(&cpu, &tokens, ctx),
            perplexity(&gpu, &tokens, ctx),
        );
        eprintln!("ctx {ctx}: perplexity {got:.4} on the GPU, {want:.4} on the CPU");
        assert!(
            (got / want - 1.0).abs() < 0.01,
            "ctx {ctx}: GPU perplexity {got} is not within 1 % of the CPU's {want}"
        );
    }
}

#[test]
fn gpu_engine_batches_continuously() {
    let Some(gpu) = gpu_model() else { return };
    let cpu = cpu_model();
    let engine = Engine::start(
        Arc::new(gpu),
        EngineConfig {
            max_running: 16,
            step_tokens: 64,
            ..EngineConfig::default()
        },
    );
    let handle = engine.handle();
    let prompts: Vec<Vec<u32>> = golden_prompts().into_iter().map(|(_, ids)| ids).collect();
    let request = |prompt: &Vec<u32>, max_tokens| Request {
        client: "gpu-test".into(),
        prompt: prompt.clone(),
        max_tokens,
        sampling: SamplingParams {
            temperature: 0.0,
            ..SamplingParams::default()
        },
        stop_tokens: Vec::new(),
        logit_bias: Vec::new(),
        top_logprobs: None,
        priority: Priority::Interactive,
    };
    // Each golden prompt three times, with different lengths, so that sequences join and leave
    // while others decode (prefill chunks mixed with decode steps, and decode graphs of
    // several padded sizes).
    let submitted: Vec<_> = (0..3)
        .flat_map(|round| prompts.iter().map(move |p| (round, p)))
        .map(|(round, p)| {
            let max_tokens = 8 + 12 * round;
            (
                p,
                max_tokens,
                handle.submit(request(p, max_tokens)).unwrap(),
            )
        })
        .collect();
    let mut outputs = Vec::new();
    for (prompt, max_tokens, mut rx) in submitted {
        let mut ids = Vec::new();
        loop {
            match rx.blocking_recv().expect("the engine ends every sequence") {
                Event::Token { id, .. } => ids.push(id),
                Event::Finished(_) => break,
                Event::Failed(why) => panic!("sequence failed on the GPU: {why}"),
            }
        }
        assert_eq!(ids.len(), max_tokens);
        outputs.push((prompt, ids));
    }
    for (prompt, ids) in &outputs {
        agrees_with_the_cpu(&cpu, prompt, ids, "batched");
    }
}
