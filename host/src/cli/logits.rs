//! `textnlp logits`: teacher-forced next-token logits at every position.

use anyhow::Result;
use clap::Args;
use serde_json::json;

use super::ModelArgs;
use crate::model::{Llama, LogitsFor, ModelError, Scratch, SequenceStep};

#[derive(Debug, Args)]
pub struct LogitsArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// How many of the largest logits to print per position.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    top: u32,
    /// Comma-separated token ids to feed.
    #[arg(long, value_delimiter = ',', required = true, num_args = 1..)]
    ids: Vec<u32>,
}

pub fn run(args: LogitsArgs) -> Result<()> {
    let model = args.model.load_model()?;
    for (pos, top) in top_logits(&model, &args.ids, args.top as usize)?
        .iter()
        .enumerate()
    {
        println!("{}", json!({ "pos": pos, "id": args.ids[pos], "top": top }));
    }
    Ok(())
}

/// For each position of `ids`, the `k` largest next-token logits as `(id, logit)`, largest
/// first (ties: lower id first).
pub fn top_logits(
    model: &Llama,
    ids: &[u32],
    k: usize,
) -> Result<Vec<Vec<(u32, f32)>>, ModelError> {
    let mut cache = model.new_cache();
    let mut scratch = Scratch::default();
    let logits = model.forward(
        &mut [SequenceStep {
            cache: &mut cache,
            tokens: ids,
            logits: LogitsFor::All,
        }],
        &mut scratch,
    )?;
    Ok(logits
        .chunks_exact(model.config().n_vocab)
        .map(|row| top_k(row, k))
        .collect())
}

fn top_k(row: &[f32], k: usize) -> Vec<(u32, f32)> {
    let mut ranked: Vec<(u32, f32)> = row
        .iter()
        .enumerate()
        .map(|(i, &l)| (i as u32, l))
        .collect();
    let by_rank = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    let k = k.min(ranked.len());
    if k < ranked.len() {
        ranked.select_nth_unstable_by(k, by_rank);
        ranked.truncate(k);
    }
    ranked.sort_unstable_by(by_rank);
    ranked
}
