//! `strategy-evol-instruct` (manifest name `evol-instruct`): Evol-Instruct (WizardLM, Xu et
//! al., 2023). Seed instructions are rewritten by the model, round after round, into harder
//! ("in-depth") or rarer ("in-breadth") ones; failed evolutions are dropped by the paper's
//! elimination rules and retried; the final instruction is answered.
//!
//! Settings (only `seed_instructions` is required):
//!
//! ```json
//! {
//!   "seed_instructions": ["Explain photosynthesis.", "Write a function that reverses a string."],
//!   "rounds": 2,
//!   "operations": ["constraints", "deepen", "concretize", "reasoning", "breadth"],
//!   "attempts": 3,
//!   "min_words": 3,
//!   "max_words": 200
//! }
//! ```
//!
//! - `seed_instructions`: record `i` evolves `seed_instructions[i % n]`. Round-robin rather than
//!   a random draw, so every seed is evolved equally often (records `i` and `i + n` evolve the
//!   same seed with different randomness).
//! - `rounds` (default 1, at most 4): each round rewrites the previous round's result.
//! - `operations` (default all five, distinct): each round applies one, drawn uniformly.
//!   `constraints` (add one more constraint or requirement), `deepen` (increase the depth and
//!   breadth of the inquiry), `concretize` (replace general concepts by more specific ones),
//!   `reasoning` (ask explicitly for multi-step reasoning) use WizardLM's in-depth prompt
//!   ("#The Given Prompt#: ... #Rewritten Prompt#:", adding only 10 to 20 words); `breadth`
//!   uses its in-breadth prompt (a brand-new, rarer prompt in the same domain, "#Created
//!   Prompt#:"). The prompts are those of the paper's `depth.py` and `breadth.py` with `\r\n`
//!   line ends made `\n`; each is sent as one user message.
//! - `attempts` (default 3, at most 10): tries per round, and for the answer.
//! - `min_words` (default 3) and `max_words` (default 200): bounds on an evolved instruction's
//!   words.
//!
//! Each rewrite is parsed robustly (text after the last "#Rewritten Prompt#:"/"#Created
//! Prompt#:"-style header; preamble, markdown, labels, quotes removed; a trailing "This
//! rewritten prompt ..." explanation cut) and eliminated, as the paper's rules 1 and 4
//! approximate without a judge model, when it is: `unfinished` (the generation ran out of
//! tokens before it ended); `empty`; `copied-prompt-words` (contains
//! "given prompt", "rewritten prompt" or "created prompt", any case); `unchanged` (equal to its
//! input up to case, spacing and final punctuation); `too-short` (fewer than `min_words`);
//! `too-long` (more than `max_words`: a small model tends to answer instead of rewriting). The
//! answer is eliminated by rule 2 (`refusal`: contains "sorry" and has fewer than 80 words) or
//! when `empty-answer`. A round or answer that fails `attempts` times rejects the record,
//! naming the round and the last rule.
//!
//! Determinism: round `r` (from 0), try `t` draws its operation and model seed from
//! [`SplitMix64::for_attempt`]`(seed, i, 16 r + t)`; the answer's try `t` from
//! `for_attempt(seed, i, 64 + t)`. Nothing else is random, so a resumed job regenerates the
//! same records.
//!
//! Record: `messages` = `[user: final instruction]`, `completion` = the answer, `metadata` =
//! `{"seed_instruction": ..., "operations": [one per round], "evolutions": [each round's
//! instruction]}`, `attempts` = every model call made. `expand` only checks the settings: the
//! prompts are the model's, so it answers a request for no records (a host's settings probe)
//! and refuses any other; `generate` runs `generate_record` per index. A record makes up to
//! `(rounds + 1) * attempts` model calls within the plugin's per-call deadline (120 s).

use serde::Deserialize;
use serde_json::json;
use textnlp_plugin_sdk::model::FinishReason;
use textnlp_plugin_sdk::rng::SplitMix64;
use textnlp_plugin_sdk::strategy::{
    ChatMessage, ExpandRequest, Generated, GeneratedRecord, Outcome, PromptRecord, RecordError,
    RecordRequest, Retried, Strategy, StrategyError, expand_model_written, generate_by_record,
    retry,
};
use textnlp_plugin_sdk::{clean, config, model};

const MAX_ROUNDS: u32 = 4;
const MAX_ATTEMPTS: u32 = 10;
/// Attempt numbers per round in the record's streams (more than `MAX_ATTEMPTS`).
const ATTEMPT_STRIDE: u32 = 16;
/// The answer's first attempt number: after every round's.
const ANSWER_ATTEMPTS: u32 = MAX_ROUNDS * ATTEMPT_STRIDE;
const _: () = assert!(ATTEMPT_STRIDE > MAX_ATTEMPTS);

/// Phrases of the rewrite prompts that must not appear in a rewrite (the paper's rule 4).
const PROMPT_WORDS: [&str; 3] = ["given prompt", "rewritten prompt", "created prompt"];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Operation {
    Constraints,
    Deepen,
    Concretize,
    Reasoning,
    Breadth,
}

const ALL_OPERATIONS: [Operation; 5] = [
    Operation::Constraints,
    Operation::Deepen,
    Operation::Concretize,
    Operation::Reasoning,
    Operation::Breadth,
];

impl Operation {
    fn name(self) -> &'static str {
        match self {
            Operation::Constraints => "constraints",
            Operation::Deepen => "deepen",
            Operation::Concretize => "concretize",
            Operation::Reasoning => "reasoning",
            Operation::Breadth => "breadth",
        }
    }

    /// WizardLM's prompt for this evolution of `instruction`.
    fn prompt(self, instruction: &str) -> String {
        let method = match self {
            Operation::Constraints => {
                "Please add one more constraints/requirements into #The Given Prompt#"
            }
            Operation::Deepen => {
                "If #The Given Prompt# contains inquiries about certain issues, the depth and \
                 breadth of the inquiry can be increased."
            }
            Operation::Concretize => "Please replace general concepts with more specific concepts.",
            Operation::Reasoning => {
                "If #The Given Prompt# can be solved with just a few simple thinking processes, \
                 you can rewrite it to explicitly request multiple-step reasoning."
            }
            Operation::Breadth => return breadth_prompt(instruction),
        };
        format!(
            "I want you act as a Prompt Rewriter.\n\
             Your objective is to rewrite a given prompt into a more complex version to make \
             those famous AI systems (e.g., chatgpt and GPT4) a bit harder to handle.\n\
             But the rewritten prompt must be reasonable and must be understood and responded \
             by humans.\n\
             Your rewriting cannot omit the non-text parts such as the table and code in \
             #The Given Prompt#:. Also, please do not omit the input in #The Given Prompt#.\n\
             You SHOULD complicate the given prompt using the following method:\n\
             {method}\n\
             You should try your best not to make the #Rewritten Prompt# become verbose, \
             #Rewritten Prompt# can only add 10 to 20 words into #The Given Prompt#.\n\
             '#The Given Prompt#', '#Rewritten Prompt#', 'given prompt' and 'rewritten prompt' \
             are not allowed to appear in #Rewritten Prompt#\n\
             #The Given Prompt#:\n\
             {instruction}\n\
             #Rewritten Prompt#:\n"
        )
    }
}

fn breadth_prompt(instruction: &str) -> String {
    format!(
        "I want you act as a Prompt Creator.\n\
         Your goal is to draw inspiration from the #Given Prompt# to create a brand new prompt.\n\
         This new prompt should belong to the same domain as the #Given Prompt# but be even \
         more rare.\n\
         The LENGTH and complexity of the #Created Prompt# should be similar to that of the \
         #Given Prompt#.\n\
         The #Created Prompt# must be reasonable and must be understood and responded by \
         humans.\n\
         '#Given Prompt#', '#Created Prompt#', 'given prompt' and 'created prompt' are not \
         allowed to appear in #Created Prompt#\n\
         #Given Prompt#:\n\
         {instruction}\n\
         #Created Prompt#:\n"
    )
}

struct EvolInstruct;

textnlp_plugin_sdk::register_strategy!(EvolInstruct);

impl Strategy for EvolInstruct {
    fn expand(request: ExpandRequest) -> Result<Vec<PromptRecord>, StrategyError> {
        // Hosts check settings with an empty expand.
        Settings::parse(&config::raw())?;
        expand_model_written("evol-instruct", &request)
    }

    fn generate(request: ExpandRequest) -> Result<Vec<GeneratedRecord>, StrategyError> {
        generate_by_record::<Self>(request)
    }

    fn generate_record(request: RecordRequest) -> Result<Outcome, RecordError> {
        let settings = Settings::parse(&config::raw())?;
        let (seed, index) = (request.seed, request.index);
        let seed_instruction = settings.seed_for(index);
        let mut instruction = seed_instruction.to_owned();
        let mut operations = Vec::new();
        let mut evolutions = Vec::new();
        let mut calls = 0;
        for round in 0..settings.rounds {
            let retried = retry(settings.attempts, |attempt| {
                let mut rng = stream(seed, index, round * ATTEMPT_STRIDE + attempt);
                let operation = settings.draw(&mut rng);
                let mut ask = model::chat_request(vec![user(operation.prompt(&instruction))]);
                ask.seed = Some(rng.next_u64());
                let output = model::generate(&ask)?;
                let stopped = output.finish_reason == FinishReason::Stop;
                Ok(evolve(&instruction, &output.text, stopped, &settings)
                    .map(|evolved| (operation, evolved))
                    .map_err(|rule| format!("{rule} ({})", operation.name())))
            })?;
            match retried {
                Retried::Accepted {
                    value: (operation, evolved),
                    attempts,
                } => {
                    calls += attempts;
                    operations.push(operation.name());
                    evolutions.push(evolved.clone());
                    instruction = evolved;
                }
                Retried::Rejected { reason, attempts } => {
                    return Ok(Outcome::Rejected(format!(
                        "round {}: {reason} (after {attempts} attempts)",
                        round + 1
                    )));
                }
            }
        }
        let messages = vec![user(instruction)];
        let retried = retry(settings.attempts, |attempt| {
            let mut ask = model::chat_request(messages.clone());
            ask.seed = Some(stream(seed, index, ANSWER_ATTEMPTS + attempt).next_u64());
            let answer = model::generate(&ask)?;
            Ok(check_answer(&answer.text).map(|()| answer.text))
        })?;
        Ok(match retried {
            Retried::Accepted { value, attempts } => Outcome::Accepted(Generated {
                messages,
                completion: value,
                metadata: json!({
                    "seed_instruction": seed_instruction,
                    "operations": operations,
                    "evolutions": evolutions,
                })
                .to_string(),
                attempts: calls + attempts,
            }),
            Retried::Rejected { reason, attempts } => {
                Outcome::Rejected(format!("answer: {reason} (after {attempts} attempts)"))
            }
        })
    }
}

/// The random stream of one try (a round's or the answer's) of record `index`.
fn stream(seed: u64, index: u64, attempt: u32) -> SplitMix64 {
    SplitMix64::for_attempt(seed, index, attempt)
}

fn user(content: String) -> ChatMessage {
    ChatMessage {
        role: "user".into(),
        content,
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    seed_instructions: Vec<String>,
    #[serde(default = "default_rounds")]
    rounds: u32,
    #[serde(default = "default_operations")]
    operations: Vec<Operation>,
    #[serde(default = "default_attempts")]
    attempts: u32,
    #[serde(default = "default_min_words")]
    min_words: usize,
    #[serde(default = "default_max_words")]
    max_words: usize,
}

fn default_rounds() -> u32 {
    1
}
fn default_operations() -> Vec<Operation> {
    ALL_OPERATIONS.to_vec()
}
fn default_attempts() -> u32 {
    3
}
fn default_min_words() -> usize {
    3
}
fn default_max_words() -> usize {
    200
}

impl Settings {
    fn parse(json: &str) -> Result<Settings, StrategyError> {
        let s: Settings = config::parse(json).map_err(StrategyError::InvalidConfig)?;
        let fail = |m: String| Err(StrategyError::InvalidConfig(m));
        if s.seed_instructions.is_empty() {
            return fail("seed_instructions: needs at least one instruction".into());
        }
        if let Some(i) = s.seed_instructions.iter().position(|t| t.trim().is_empty()) {
            return fail(format!("seed_instructions[{i}]: is empty"));
        }
        if !(1..=MAX_ROUNDS).contains(&s.rounds) {
            return fail(format!(
                "rounds: {} is not between 1 and {MAX_ROUNDS}",
                s.rounds
            ));
        }
        if s.operations.is_empty() {
            return fail("operations: needs at least one operation".into());
        }
        for (i, op) in s.operations.iter().enumerate() {
            if s.operations[..i].contains(op) {
                return fail(format!("operations[{i}]: {:?} appears twice", op.name()));
            }
        }
        if !(1..=MAX_ATTEMPTS).contains(&s.attempts) {
            return fail(format!(
                "attempts: {} is not between 1 and {MAX_ATTEMPTS}",
                s.attempts
            ));
        }
        if s.min_words == 0 {
            return fail("min_words: must be at least 1".into());
        }
        if s.max_words < s.min_words {
            return fail(format!(
                "max_words: {} is below min_words {}",
                s.max_words, s.min_words
            ));
        }
        Ok(s)
    }

    /// The seed instruction of record `index` (round-robin).
    fn seed_for(&self, index: u64) -> &str {
        let n = self.seed_instructions.len() as u64;
        self.seed_instructions[(index % n) as usize].trim()
    }

    fn draw(&self, rng: &mut SplitMix64) -> Operation {
        self.operations[rng.below(self.operations.len() as u64) as usize]
    }
}

/// The evolved instruction in a rewrite `output` of `input`, or the elimination rule it breaks.
/// `stopped`: the generation ended by itself (rather than at its token budget).
fn evolve(input: &str, output: &str, stopped: bool, settings: &Settings) -> Result<String, String> {
    if !stopped {
        return Err("unfinished: the rewrite ran out of tokens".into());
    }
    let rewritten = parse_rewrite(output);
    if rewritten.is_empty() {
        return Err("empty: no rewritten prompt in the output".into());
    }
    let lower = rewritten.to_lowercase();
    if let Some(words) = PROMPT_WORDS.iter().find(|w| lower.contains(*w)) {
        return Err(format!("copied-prompt-words: contains {words:?}"));
    }
    if comparable(&rewritten) == comparable(input) {
        return Err("unchanged: the rewrite is the prompt it rewrites".into());
    }
    let words = clean::word_count(&rewritten);
    if words < settings.min_words {
        return Err(format!(
            "too-short: {words} words, fewer than min_words {}",
            settings.min_words
        ));
    }
    if words > settings.max_words {
        return Err(format!(
            "too-long: {words} words, more than max_words {}",
            settings.max_words
        ));
    }
    Ok(rewritten)
}

/// Headers after which the rewrite starts, lower-case (the last one in the output wins).
const HEADERS: [&str; 6] = [
    "#rewritten prompt#",
    "#created prompt#",
    "rewritten prompt:",
    "created prompt:",
    "rewritten prompt**:",
    "created prompt**:",
];

/// Labels a rewrite may start with.
const LABELS: [&str; 5] = [
    "rewritten prompt",
    "created prompt",
    "new prompt",
    "prompt",
    "the rewritten prompt",
];

/// Paragraph openings that begin an explanation after the rewrite, lower-case.
const EXPLANATIONS: [&str; 8] = [
    "this rewritten",
    "this new prompt",
    "this prompt",
    "this version",
    "in this rewritten",
    "explanation",
    "note:",
    "the rewritten prompt",
];

/// The rewritten prompt in a model output: the text after the last rewrite header (if any),
/// without preamble, markdown, labels or quotes, cut before a trailing explanation paragraph.
fn parse_rewrite(output: &str) -> String {
    // ASCII lower-casing keeps byte offsets, so positions found in it index `output`.
    let lower = output.to_ascii_lowercase();
    let start = HEADERS
        .iter()
        .filter_map(|h| lower.rfind(h).map(|at| at + h.len()))
        .max()
        .unwrap_or(0);
    let rest = output[start..].trim_start_matches([':', '*', '#', ' ']);
    let text = clean::tidy(rest, &LABELS);
    let paragraphs: Vec<&str> = text
        .split("\n\n")
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    let end = paragraphs
        .iter()
        .skip(1)
        .position(|p| {
            let p = p
                .trim_start_matches(['*', '#', '_', ' '])
                .to_ascii_lowercase();
            EXPLANATIONS.iter().any(|e| p.starts_with(e))
        })
        .map_or(paragraphs.len(), |i| i + 1);
    let kept = paragraphs[..end].join("\n\n");
    clean::strip_wrapping_quotes(clean::strip_markdown(&kept)).to_owned()
}

/// An instruction reduced for comparison: lower case, single spaces, no final punctuation.
fn comparable(text: &str) -> String {
    clean::squash_whitespace(&text.to_lowercase())
        .trim_end_matches(|c: char| c.is_ascii_punctuation())
        .to_owned()
}

/// The paper's elimination rule 2 for answers, and emptiness.
fn check_answer(answer: &str) -> Result<(), String> {
    if answer.trim().is_empty() {
        return Err("empty-answer: the answer is empty".into());
    }
    let words = clean::word_count(answer);
    if words < 80 && answer.to_lowercase().contains("sorry") {
        return Err(format!(
            "refusal: the answer says \"sorry\" in {words} words (fewer than 80)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use textnlp_plugin_sdk::manifest::{Kind, PluginManifest};

    fn settings(json: &str) -> Settings {
        Settings::parse(json).unwrap()
    }

    fn error(json: &str) -> String {
        match Settings::parse(json) {
            Err(StrategyError::InvalidConfig(m)) => m,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_manifest_is_valid_and_matches_the_defaults() {
        let manifest = EvolInstruct::manifest().unwrap();
        assert_eq!(
            (manifest.name.as_str(), manifest.kind, manifest.context),
            ("evol-instruct", Kind::Strategy, 0)
        );
        let p = &manifest.config_schema["properties"];
        let s = settings(r#"{"seed_instructions": ["x"]}"#);
        assert_eq!(p["rounds"]["default"], s.rounds);
        assert_eq!(p["rounds"]["maximum"], MAX_ROUNDS);
        assert_eq!(p["attempts"]["default"], s.attempts);
        assert_eq!(p["attempts"]["maximum"], MAX_ATTEMPTS);
        assert_eq!(p["min_words"]["default"], s.min_words);
        assert_eq!(p["max_words"]["default"], s.max_words);
        let names: Vec<&str> = s.operations.iter().map(|o| o.name()).collect();
        assert_eq!(p["operations"]["default"], json!(names));
        assert_eq!(p["operations"]["items"]["enum"], json!(names));
    }

    #[test]
    fn seeds_are_taken_in_turn_and_operations_drawn_per_try() {
        let s = settings(r#"{"seed_instructions": ["A.", " B. ", "C."]}"#);
        let seeds: Vec<&str> = (0..6).map(|i| s.seed_for(i)).collect();
        assert_eq!(seeds, ["A.", "B.", "C.", "A.", "B.", "C."]);
        let draw = |index, attempt| s.draw(&mut stream(7, index, attempt));
        assert_eq!(draw(3, 1), draw(3, 1));
        let drawn: HashSet<&str> = (0..200).map(|i| draw(i, 0).name()).collect();
        assert_eq!(drawn.len(), 5);
        let only = settings(r#"{"seed_instructions": ["A."], "operations": ["breadth"]}"#);
        assert!((0..50).all(|i| only.draw(&mut stream(1, i, 0)) == Operation::Breadth));
        // Round, try and answer streams are distinct.
        let first = |attempt| stream(7, 3, attempt).next_u64();
        let all: HashSet<u64> = (0..MAX_ROUNDS)
            .flat_map(|r| (0..MAX_ATTEMPTS).map(move |t| r * ATTEMPT_STRIDE + t))
            .chain((0..MAX_ATTEMPTS).map(|t| ANSWER_ATTEMPTS + t))
            .map(first)
            .collect();
        assert_eq!(all.len(), ((MAX_ROUNDS + 1) * MAX_ATTEMPTS) as usize);
    }

    #[test]
    fn prompts_follow_wizardlm() {
        let depth = Operation::Constraints.prompt("Explain tides.");
        assert!(depth.starts_with("I want you act as a Prompt Rewriter.\n"));
        assert!(
            depth.contains(
                "\nPlease add one more constraints/requirements into #The Given Prompt#\n"
            )
        );
        assert!(depth.contains("can only add 10 to 20 words"));
        assert!(depth.ends_with("#The Given Prompt#:\nExplain tides.\n#Rewritten Prompt#:\n"));
        for op in [
            Operation::Deepen,
            Operation::Concretize,
            Operation::Reasoning,
        ] {
            assert!(
                op.prompt("x")
                    .starts_with("I want you act as a Prompt Rewriter.")
            );
        }
        assert!(
            Operation::Reasoning
                .prompt("x")
                .contains("multiple-step reasoning")
        );
        let breadth = Operation::Breadth.prompt("Explain tides.");
        assert!(breadth.starts_with("I want you act as a Prompt Creator.\n"));
        assert!(breadth.contains("even more rare"));
        assert!(breadth.ends_with("#Given Prompt#:\nExplain tides.\n#Created Prompt#:\n"));
    }

    #[test]
    fn rewrites_are_parsed_robustly() {
        let want = "Explain tides, naming the role of the moon.";
        for output in [
            "Explain tides, naming the role of the moon.",
            "#Rewritten Prompt#:\nExplain tides, naming the role of the moon.",
            "#Rewritten Prompt#: \"Explain tides, naming the role of the moon.\"",
            "Sure! Here is the rewritten prompt:\n\n**Explain tides, naming the role of the moon.**",
            "**Rewritten Prompt:** Explain tides, naming the role of the moon.",
            "#The Given Prompt#:\nExplain tides.\n#Rewritten Prompt#:\nExplain tides, naming the \
             role of the moon.",
            "#Created Prompt#:\nExplain tides, naming the role of the moon.\n\nThis rewritten \
             prompt adds a constraint.",
            "Rewritten prompt: Explain tides, naming the role of the moon.\n\nExplanation: more.",
        ] {
            assert_eq!(parse_rewrite(output), want, "{output:?}");
        }
        // A quoted input stays.
        assert_eq!(
            parse_rewrite("#Rewritten Prompt#:\nTranslate into formal French: \"I love cats.\""),
            "Translate into formal French: \"I love cats.\""
        );
        // Several paragraphs of prompt stay.
        assert_eq!(
            parse_rewrite("Summarize this:\n\nThe cat sat."),
            "Summarize this:\n\nThe cat sat."
        );
    }

    #[test]
    fn failed_evolutions_are_eliminated_with_their_rule() {
        let s = settings(r#"{"seed_instructions": ["x"], "max_words": 12}"#);
        let rule = |output: &str| {
            evolve("Explain tides.", output, true, &s)
                .unwrap_err()
                .split(':')
                .next()
                .unwrap()
                .to_owned()
        };
        assert_eq!(rule(""), "empty");
        assert_eq!(rule("#Rewritten Prompt#:\n  "), "empty");
        assert_eq!(
            rule("Explain the given prompt in detail please."),
            "copied-prompt-words"
        );
        assert_eq!(
            rule("Rewrite: the Rewritten Prompt is here"),
            "copied-prompt-words"
        );
        assert_eq!(rule("explain   TIDES"), "unchanged");
        assert_eq!(rule("#Rewritten Prompt#: Explain tides!"), "unchanged");
        assert_eq!(rule("Tides?"), "too-short");
        assert_eq!(rule(&"Explain tides ".repeat(7)), "too-long");
        let good = "Explain spring and neap tides.";
        assert_eq!(evolve("Explain tides.", good, true, &s).unwrap(), good);
        assert!(
            evolve("Explain tides.", good, false, &s)
                .unwrap_err()
                .starts_with("unfinished")
        );
    }

    #[test]
    fn answers_are_checked() {
        assert!(check_answer("Tides are caused by the moon.").is_ok());
        assert!(
            check_answer("  \n")
                .unwrap_err()
                .starts_with("empty-answer")
        );
        assert!(
            check_answer("I'm sorry, I cannot do that.")
                .unwrap_err()
                .starts_with("refusal")
        );
        let long = format!("Sorry for the wait. {}", "word ".repeat(80));
        assert!(check_answer(&long).is_ok());
    }

    #[test]
    fn bad_settings_name_the_field() {
        assert!(error("{}").contains("seed_instructions"));
        assert!(error(r#"{"seed_instructions": []}"#).starts_with("seed_instructions: "));
        assert!(
            error(r#"{"seed_instructions": ["a", " "]}"#).starts_with("seed_instructions[1]: ")
        );
        let with = |extra: &str| error(&format!(r#"{{"seed_instructions": ["x"], {extra}}}"#));
        assert!(with(r#""rounds": 0"#).starts_with("rounds: "));
        assert!(with(r#""rounds": 5"#).starts_with("rounds: "));
        assert!(with(r#""operations": []"#).starts_with("operations: "));
        assert!(with(r#""operations": ["deepen", "widen"]"#).starts_with("operations[1]: "));
        assert!(with(r#""operations": ["deepen", "deepen"]"#).starts_with("operations[1]: "));
        assert!(with(r#""attempts": 11"#).starts_with("attempts: "));
        assert!(with(r#""min_words": 0"#).starts_with("min_words: "));
        assert!(with(r#""min_words": 5, "max_words": 4"#).starts_with("max_words: "));
        assert!(with(r#""round": 2"#).contains("unknown field `round`"));
    }
}
