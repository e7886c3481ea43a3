//! `textnlp generate`.

use std::io::Write;

use anyhow::{Context, Result};
use clap::Args;
use serde_json::json;
use textnlp_kernels::cpu::sampling::SamplingParams;

use super::ModelArgs;
use crate::engine::{GenerateRequest, fresh_seed, generate};
use crate::plugins::ChatMessage;

#[derive(Debug, Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Feed PROMPT as-is instead of wrapping it in the model's chat template.
    #[arg(long)]
    raw: bool,
    /// Maximum number of tokens to generate.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    max_tokens: u32,
    /// Sampling temperature; 0 is greedy decoding.
    #[arg(long, default_value_t = 0.8)]
    temperature: f32,
    /// Keep only the K most likely tokens (0 disables).
    #[arg(long, default_value_t = 40)]
    top_k: usize,
    /// Keep the smallest set of tokens whose probability reaches P (1 disables).
    #[arg(long, default_value_t = 0.95)]
    top_p: f32,
    /// Drop tokens less likely than P times the most likely one (0 disables).
    #[arg(long, default_value_t = 0.05)]
    min_p: f32,
    /// Penalise recently seen tokens (1 disables).
    #[arg(long, default_value_t = 1.0)]
    repeat_penalty: f32,
    /// Seed for sampling [default: a fresh random seed, reported with --json]
    #[arg(long)]
    seed: Option<u64>,
    /// Keep generating past end-of-turn / end-of-sequence tokens.
    #[arg(long)]
    ignore_eos: bool,
    /// Print one JSON object with ids, text and speeds instead of streaming text.
    #[arg(long)]
    json: bool,
    prompt: String,
}

pub fn run(args: GenerateArgs) -> Result<()> {
    let seed = args.seed.unwrap_or_else(fresh_seed);
    let sampling = SamplingParams {
        temperature: args.temperature,
        top_k: args.top_k,
        top_p: args.top_p,
        min_p: args.min_p,
        repetition_penalty: args.repeat_penalty,
        seed,
        ..SamplingParams::default()
    };
    sampling.validate()?;
    let model = args.model.load_model()?;
    let (_runtime, mut tok) = args.model.load_tokenizer(model.file())?;

    let text = if args.raw {
        args.prompt.clone()
    } else {
        let message = ChatMessage {
            role: "user".into(),
            content: args.prompt.clone(),
        };
        tok.apply_chat_template(&[message], true)
            .context("rendering the chat template")?
    };
    let prompt = tok.encode(&text, true, true)?;
    let special = tok.special_tokens()?;
    let stop_tokens = if args.ignore_eos {
        Vec::new()
    } else {
        special.end_of_turn.clone()
    };
    let request = GenerateRequest {
        prompt: &prompt,
        max_tokens: args.max_tokens as usize,
        sampling,
        stop_tokens: &stop_tokens,
    };

    let decoder = tok.incremental_decoder(true)?;
    let mut text_out = String::new();
    let mut stdout = std::io::stdout().lock();
    let generation = generate(&model, &request, |id| -> Result<()> {
        let piece = tok.decode_next(&decoder, id)?;
        if !args.json {
            stdout.write_all(piece.as_bytes())?;
            stdout.flush()?;
        }
        text_out.push_str(&piece);
        Ok(())
    })?;
    text_out.push_str(&tok.decode_finish(decoder)?);

    if args.json {
        let per_s = |n: usize, d: std::time::Duration| n as f64 / d.as_secs_f64().max(1e-9);
        let out = json!({
            "prompt_ids": prompt,
            "ids": generation.ids,
            "text": text_out,
            "prompt_tokens_per_s": per_s(prompt.len(), generation.prefill_time),
            "tokens_per_s": per_s(generation.ids.len(), generation.decode_time),
            "finish_reason": format!("{:?}", generation.finish).to_lowercase(),
            "seed": seed,
            "device": model.device_description(),
        });
        writeln!(stdout, "{out}")?;
    } else {
        writeln!(stdout)?;
    }
    Ok(())
}
