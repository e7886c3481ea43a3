//! `strategy-magpie` (manifest name `magpie`): Magpie (Xu et al., 2024). An aligned chat
//! model, given its chat template only up to the start of a user turn, writes a plausible user
//! instruction itself; the instruction is then answered in an ordinary chat. No seed data.
//!
//! Settings (all optional; `{}` is valid):
//!
//! ```json
//! {
//!   "system": "You are a patient maths tutor.",
//!   "attempts": 3,
//!   "max_instruction_tokens": 128,
//!   "min_words": 3,
//!   "temperature": 1.0,
//!   "top_p": 0.95
//! }
//! ```
//!
//! - `system`: a system message placed before the user turn, both when the instruction is
//!   written and when it is answered. It steers the topic, as in the paper. Without it the
//!   template's own default system prompt (if it has one) applies.
//! - `attempts` (default 3, at most 10): instruction generations per record.
//! - `max_instruction_tokens` (default 128), `temperature` (default 1.0, the paper's), `top_p`
//!   (default 0.95; the paper's 1.0 was for 8B–70B models, a small model's tail is
//!   incoherent): the instruction generation's budget and sampling.
//! - `min_words` (default 3): fewest words an instruction may have.
//!
//! Per record: the user prefix is found with `model.render-chat` ([`model::role_prefix`]:
//! `[system?, user: SENTINEL]` rendered without a generation prompt and cut at the sentinel),
//! and the end-of-user-turn marker likewise (the text the template puts after a user message's
//! content, to its first line end, e.g. `<|im_end|>`). The prefix is sent as a raw-text prompt
//! (`model.generate` with `prompt::text`), which stops at the model's end-of-turn token and at
//! the marker. The output is trimmed, cut at the marker or a new turn's prefix if it still
//! holds one, and checked: `unfinished` (the budget ran out before the turn ended), `empty`,
//! `too-short` (fewer than `min_words` words). A failure retries with the next attempt; after
//! `attempts` the record is `Rejected` naming the last rule. The instruction is then answered
//! as a chat (`[system?, user: instruction]`, the SDK's chat defaults: 512 tokens, temperature
//! 0.7, top-p 0.95); an empty answer rejects the record (`empty-answer`).
//!
//! Determinism: attempt `a` of record `i` draws its instruction seed, and then the answer's,
//! from [`SplitMix64::for_attempt`]`(seed, i, a)`; nothing else is random.
//!
//! Record: `messages` = `[system?, user: instruction]`, `completion` = the answer, `metadata` =
//! `{"user_prefix": ..., "instruction_tokens": n}`. `expand` only checks the settings: the
//! prompts are the model's, so it answers a request for no records (a host's settings probe)
//! and refuses any other; `generate` runs `generate_record` per index.

use serde::Deserialize;
use serde_json::json;
use textnlp_plugin_sdk::model::{FinishReason, ROLE_SENTINEL};
use textnlp_plugin_sdk::rng::SplitMix64;
use textnlp_plugin_sdk::strategy::{
    ChatMessage, ExpandRequest, Generated, GeneratedRecord, Outcome, PromptRecord, RecordError,
    RecordRequest, Retried, Strategy, StrategyError, expand_model_written, generate_by_record,
    retry,
};
use textnlp_plugin_sdk::{clean, config, model};

const MAX_ATTEMPTS: u32 = 10;
const MAX_INSTRUCTION_TOKENS: u32 = 4096;

struct Magpie;

textnlp_plugin_sdk::register_strategy!(Magpie);

impl Strategy for Magpie {
    fn expand(request: ExpandRequest) -> Result<Vec<PromptRecord>, StrategyError> {
        // Hosts check settings with an empty expand.
        Settings::parse(&config::raw())?;
        expand_model_written("magpie", &request)
    }

    fn generate(request: ExpandRequest) -> Result<Vec<GeneratedRecord>, StrategyError> {
        generate_by_record::<Self>(request)
    }

    fn generate_record(request: RecordRequest) -> Result<Outcome, RecordError> {
        let settings = Settings::parse(&config::raw())?;
        let before: Vec<ChatMessage> = settings
            .system
            .iter()
            .map(|s| message("system", s.clone()))
            .collect();
        let user_prefix = model::role_prefix(&before, "user")?;
        let turn_end = {
            let mut chat = before.clone();
            chat.push(message("user", ROLE_SENTINEL.into()));
            turn_end(&model::render_chat(&chat, true)?, ROLE_SENTINEL)
        };
        let (seed, index) = (request.seed, request.index);
        let retried = retry(settings.attempts, |attempt| {
            let mut rng = SplitMix64::for_attempt(seed, index, attempt);
            let mut ask = model::text_request(user_prefix.clone());
            ask.max_tokens = settings.max_instruction_tokens;
            ask.temperature = settings.temperature;
            ask.top_p = settings.top_p;
            ask.stop = turn_end.iter().cloned().collect();
            ask.seed = Some(rng.next_u64());
            let output = model::generate(&ask)?;
            let stopped = output.finish_reason == FinishReason::Stop;
            Ok(
                instruction(&output.text, stopped, &settings, &turn_end, &user_prefix)
                    .map(|text| (text, output.completion_tokens, rng)),
            )
        })?;
        let ((instruction, tokens, mut rng), attempts) = match retried {
            Retried::Accepted { value, attempts } => (value, attempts),
            Retried::Rejected { reason, attempts } => {
                return Ok(Outcome::Rejected(format!(
                    "{reason} (after {attempts} attempts)"
                )));
            }
        };
        let mut messages = before;
        messages.push(message("user", instruction));
        let mut ask = model::chat_request(messages.clone());
        ask.seed = Some(rng.next_u64());
        let answer = model::generate(&ask)?;
        if answer.text.trim().is_empty() {
            return Ok(Outcome::Rejected(
                "empty-answer: the model's answer to the instruction is empty".into(),
            ));
        }
        Ok(Outcome::Accepted(Generated {
            messages,
            completion: answer.text,
            metadata: json!({ "user_prefix": user_prefix, "instruction_tokens": tokens })
                .to_string(),
            attempts: attempts + 1,
        }))
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Settings {
    system: Option<String>,
    attempts: u32,
    max_instruction_tokens: u32,
    min_words: usize,
    temperature: f32,
    top_p: f32,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            system: None,
            attempts: 3,
            max_instruction_tokens: 128,
            min_words: 3,
            temperature: 1.0,
            top_p: 0.95,
        }
    }
}

impl Settings {
    fn parse(json: &str) -> Result<Settings, StrategyError> {
        let s: Settings = config::parse(json).map_err(StrategyError::InvalidConfig)?;
        let fail = |m: String| Err(StrategyError::InvalidConfig(m));
        if !(1..=MAX_ATTEMPTS).contains(&s.attempts) {
            return fail(format!(
                "attempts: {} is not between 1 and {MAX_ATTEMPTS}",
                s.attempts
            ));
        }
        if !(1..=MAX_INSTRUCTION_TOKENS).contains(&s.max_instruction_tokens) {
            return fail(format!(
                "max_instruction_tokens: {} is not between 1 and {MAX_INSTRUCTION_TOKENS}",
                s.max_instruction_tokens
            ));
        }
        if s.min_words == 0 {
            return fail("min_words: must be at least 1".into());
        }
        if !(0.0..=2.0).contains(&s.temperature) {
            return fail(format!(
                "temperature: {} is not between 0 and 2",
                s.temperature
            ));
        }
        if !(s.top_p > 0.0 && s.top_p <= 1.0) {
            return fail(format!("top_p: {} is not in (0, 1]", s.top_p));
        }
        Ok(s)
    }
}

fn message(role: &str, content: String) -> ChatMessage {
    ChatMessage {
        role: role.into(),
        content,
    }
}

/// The end-of-user-turn marker in a chat rendered with `sentinel` as its last user message's
/// content: what follows the sentinel, to the first line end, trimmed (`<|im_end|>`); `None`
/// when that is empty or the sentinel is missing.
fn turn_end(rendered: &str, sentinel: &str) -> Option<String> {
    let after = &rendered[rendered.find(sentinel)? + sentinel.len()..];
    let marker = after.trim_start().lines().next().unwrap_or("").trim();
    (!marker.is_empty()).then(|| marker.to_owned())
}

/// The user header line of a role prefix (its last non-empty line, `<|im_start|>user`), which
/// starts a new turn if the model writes it.
fn turn_header(user_prefix: &str) -> Option<&str> {
    user_prefix.lines().map(str::trim).rfind(|l| !l.is_empty())
}

/// The instruction in a generation from the user prefix, or the rule it breaks. `stopped`:
/// the generation ended its turn (rather than running out of tokens).
fn instruction(
    output: &str,
    stopped: bool,
    settings: &Settings,
    turn_end: &Option<String>,
    user_prefix: &str,
) -> Result<String, String> {
    let mut text = output;
    let mut cut = false;
    for marker in turn_end
        .as_deref()
        .into_iter()
        .chain(turn_header(user_prefix))
    {
        if let Some(at) = text.find(marker) {
            text = &text[..at];
            cut = true;
        }
    }
    if !stopped && !cut {
        return Err(format!(
            "unfinished: the turn did not end within max_instruction_tokens {}",
            settings.max_instruction_tokens
        ));
    }
    let text = text.trim();
    if text.is_empty() {
        return Err("empty: the model wrote no instruction".into());
    }
    let words = clean::word_count(text);
    if words < settings.min_words {
        return Err(format!(
            "too-short: {words} words, fewer than min_words {}",
            settings.min_words
        ));
    }
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use textnlp_plugin_sdk::manifest::{Kind, PluginManifest};

    const CHATML: &str = "<|im_start|>system\nYou are SmolLM.<|im_end|>\n<|im_start|>user\n";

    fn error(json: &str) -> String {
        match Settings::parse(json) {
            Err(StrategyError::InvalidConfig(m)) => m,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_manifest_is_valid_and_matches_the_defaults() {
        let manifest = Magpie::manifest().unwrap();
        assert_eq!(
            (manifest.name.as_str(), manifest.kind, manifest.context),
            ("magpie", Kind::Strategy, 0)
        );
        let p = &manifest.config_schema["properties"];
        let s = Settings::parse("{}").unwrap();
        assert_eq!(p["attempts"]["default"], s.attempts);
        assert_eq!(
            p["max_instruction_tokens"]["default"],
            s.max_instruction_tokens
        );
        assert_eq!(p["min_words"]["default"], s.min_words);
        assert_eq!(
            p["temperature"]["default"].as_f64().unwrap() as f32,
            s.temperature
        );
        assert_eq!(p["top_p"]["default"].as_f64().unwrap() as f32, s.top_p);
        assert!(s.system.is_none());
    }

    #[test]
    fn the_turn_end_follows_the_sentinel() {
        let rendered = format!("{CHATML}{ROLE_SENTINEL}<|im_end|>\n<|im_start|>assistant\n");
        assert_eq!(
            turn_end(&rendered, ROLE_SENTINEL).as_deref(),
            Some("<|im_end|>")
        );
        let llama =
            format!("<|start_header_id|>user<|end_header_id|>\n\n{ROLE_SENTINEL}<|eot_id|>");
        assert_eq!(
            turn_end(&llama, ROLE_SENTINEL).as_deref(),
            Some("<|eot_id|>")
        );
        assert_eq!(
            turn_end(
                &format!("User: {ROLE_SENTINEL}\n\nAssistant:"),
                ROLE_SENTINEL
            )
            .as_deref(),
            Some("Assistant:")
        );
        assert_eq!(
            turn_end(&format!("{ROLE_SENTINEL}   "), ROLE_SENTINEL),
            None
        );
        assert_eq!(turn_end("no sentinel", ROLE_SENTINEL), None);
        assert_eq!(turn_header(CHATML), Some("<|im_start|>user"));
        assert_eq!(turn_header(""), None);
    }

    #[test]
    fn instructions_are_trimmed_cut_and_checked() {
        let s = Settings::parse("{}").unwrap();
        let end = Some("<|im_end|>".to_owned());
        let ok = |out: &str, stopped| instruction(out, stopped, &s, &end, CHATML);
        assert_eq!(
            ok("  How do tides work?\n", true).unwrap(),
            "How do tides work?"
        );
        assert_eq!(
            ok(
                "How do tides work?<|im_end|>\n<|im_start|>assistant\nThey",
                false
            )
            .unwrap(),
            "How do tides work?"
        );
        assert_eq!(
            ok("How do tides work?\n<|im_start|>user\nAnd", false).unwrap(),
            "How do tides work?"
        );
        let rule = |out: &str, stopped| {
            ok(out, stopped)
                .unwrap_err()
                .split(':')
                .next()
                .unwrap()
                .to_owned()
        };
        assert_eq!(
            rule("How do tides work and why does the", false),
            "unfinished"
        );
        assert_eq!(rule("   ", true), "empty");
        assert_eq!(rule("<|im_end|>", false), "empty");
        assert_eq!(rule("Tides?", true), "too-short");
        // Without a marker, only the end of turn counts.
        let none = instruction("How do tides work?", true, &s, &None, "");
        assert_eq!(none.unwrap(), "How do tides work?");
    }

    #[test]
    fn attempts_get_distinct_seeds() {
        let seeds: std::collections::HashSet<u64> = (0..MAX_ATTEMPTS)
            .map(|a| SplitMix64::for_attempt(5, 9, a).next_u64())
            .collect();
        assert_eq!(seeds.len(), MAX_ATTEMPTS as usize);
        assert_eq!(
            SplitMix64::for_attempt(5, 9, 2).next_u64(),
            SplitMix64::for_attempt(5, 9, 2).next_u64()
        );
    }

    #[test]
    fn bad_settings_name_the_field() {
        assert!(error(r#"{"attempts": 0}"#).starts_with("attempts: "));
        assert!(error(r#"{"attempts": "3"}"#).starts_with("attempts: "));
        assert!(error(r#"{"max_instruction_tokens": 0}"#).starts_with("max_instruction_tokens: "));
        assert!(error(r#"{"min_words": 0}"#).starts_with("min_words: "));
        assert!(error(r#"{"temperature": 3}"#).starts_with("temperature: "));
        assert!(error(r#"{"top_p": 1.5}"#).starts_with("top_p: "));
        assert!(error(r#"{"system": 1}"#).starts_with("system: "));
        assert!(error(r#"{"seed_tasks": []}"#).contains("unknown field `seed_tasks`"));
        assert!(error("[]").contains("object"));
    }
}
