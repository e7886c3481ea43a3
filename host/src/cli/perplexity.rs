//! `textnlp perplexity`: llama-perplexity's method, so the numbers are comparable.
//!
//! The token stream is split into `floor(n / ctx)` non-overlapping chunks of `ctx` tokens
//! (no BOS inserted). Each chunk is evaluated from an empty cache and positions
//! `ctx/2 .. ctx-2` are scored on predicting their next token. PPL = exp(mean NLL).
//! Several chunks run together as one batched forward step.

use std::path::PathBuf;

use anyhow::{Context, Result, ensure};
use clap::Args;
use serde_json::json;

use super::ModelArgs;
use crate::engine::negative_log_likelihood;
use crate::model::{Llama, LogitsFor, Scratch, SequenceStep};

/// Tokens per batched forward step (bounds the logits buffer: rows × vocabulary floats).
const TOKENS_PER_STEP: usize = 1024;

#[derive(Debug, Args)]
pub struct PerplexityArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Chunk (context) size in tokens.
    #[arg(long, value_parser = clap::value_parser!(u32).range(4..))]
    ctx: u32,
    /// Text file to score.
    file: PathBuf,
}

pub fn run(args: PerplexityArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let model = args.model.load_model()?;
    let (_runtime, mut tok) = args.model.load_tokenizer(model.file())?;
    let tokens = tok.encode(&text, false, true)?;
    let ctx = args.ctx as usize;
    ensure!(
        ctx <= model.config().context_length,
        "--ctx {ctx} exceeds the model's context length {}",
        model.config().context_length
    );
    let chunks: Vec<&[u32]> = tokens.chunks_exact(ctx).collect();
    ensure!(
        !chunks.is_empty(),
        "{} has {} tokens, fewer than one chunk of {ctx}",
        args.file.display(),
        tokens.len()
    );

    let (nll, scored) = score_chunks(&model, &chunks)?;
    let out = json!({
        "ppl": (nll / scored as f64).exp(),
        "chunks": chunks.len(),
        "scored_tokens": scored,
    });
    println!("{out}");
    Ok(())
}

/// Sum of NLL over the scored positions of every chunk, and how many positions were scored.
fn score_chunks(model: &Llama, chunks: &[&[u32]]) -> Result<(f64, usize)> {
    let ctx = chunks[0].len();
    let first = ctx / 2;
    let n_vocab = model.config().n_vocab;
    let mut scratch = Scratch::default();
    let (mut nll, mut scored) = (0.0f64, 0usize);
    for group in chunks.chunks((TOKENS_PER_STEP / ctx).max(1)) {
        let mut caches: Vec<_> = group.iter().map(|_| model.new_cache()).collect();
        let mut steps: Vec<SequenceStep> = caches
            .iter_mut()
            .zip(group)
            .map(|(cache, tokens)| SequenceStep {
                cache,
                tokens,
                logits: LogitsFor::All,
            })
            .collect();
        let logits = model.forward(&mut steps, &mut scratch)?;
        for (chunk, rows) in group.iter().zip(logits.chunks_exact(ctx * n_vocab)) {
            for pos in first..ctx - 1 {
                let row = &rows[pos * n_vocab..][..n_vocab];
                nll += negative_log_likelihood(row, chunk[pos + 1]);
                scored += 1;
            }
        }
    }
    Ok((nll, scored))
}
