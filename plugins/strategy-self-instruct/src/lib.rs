//! `strategy-self-instruct` (manifest name `self-instruct`): Self-Instruct (Wang et al., 2023,
//! `self_instruct/bootstrap_instructions.py`): instructions bootstrapped from seed tasks and
//! from the dataset's own earlier instructions, filtered, then answered by the model.
//!
//! Settings (only `seed_tasks` is required):
//!
//! ```json
//! {
//!   "seed_tasks": ["Give three tips for staying healthy.", "Translate 'good morning' into French."],
//!   "demos": 8,
//!   "machine_demos": 2,
//!   "max_rouge_l": 0.7,
//!   "attempts": 3,
//!   "min_words": 4,
//!   "max_words": 150,
//!   "blacklist": ["image", "images", "graph", "graphs", "picture", "pictures", "file", "files",
//!                 "map", "maps", "draw", "plot", "go to"],
//!   "temperature": 0.7,
//!   "top_p": 0.95,
//!   "max_instruction_tokens": 128
//! }
//! ```
//!
//! The manifest asks for `"context": 10000`: `record-request.context` holds the instructions
//! the dataset accepted before the record's round (the machine pool).
//!
//! Record `i`, attempt `a` (at most `attempts`):
//! 1. `demos` tasks are drawn: up to `machine_demos` from the machine pool, the rest from
//!    `seed_tasks` (machine tasks fill in when the seed tasks run out), without replacement,
//!    shuffled, from the stream [`SplitMix64::for_attempt`]`(seed, i, a)`, which also gives
//!    the model seed.
//! 2. The prompt is the paper's raw-text list, sent as is (no chat template):
//!    `Come up with a series of tasks:\n1. <task>\n...\n8. <task>\n9.`, generated with
//!    `temperature`, `top_p`, at most `max_instruction_tokens` and the stop string `"\n"`.
//! 3. The new task is cleaned (whitespace squashed; numbering, bullets, quotes, markdown and a
//!    "Task:" label removed; first letter upper-cased; the paper's `capitalize()` also
//!    lower-cased the rest, which this does not) and must pass the paper's filters, in its
//!    order: `empty`, `too-short` (fewer than `min_words` words; the paper's `<= 3` is the
//!    default 4), `too-long` (more than `max_words`), `blacklisted` (a `blacklist` word as a
//!    whole word, any case), `write-a-program` (starts with "Write a program"),
//!    `starts-with-punctuation`, `starts-with-non-ascii`, and finally `too-similar`: its
//!    highest ROUGE-L F (rouge-score's `rougeL`, no stemmer, from `textnlp-metrics`) against
//!    every seed task and every pool instruction must be at most `max_rouge_l`.
//!    A failure retries with attempt `a + 1`; after the last one the record is `Rejected` with
//!    the last rule broken.
//! 4. The instruction is answered as a chat (one user message; the SDK's chat defaults: 512
//!    tokens, temperature 0.7, top-p 0.95), seeded from the accepted attempt's stream. An empty
//!    answer rejects the record (`empty-answer`).
//!
//! Record: `messages` = `[user: instruction]`, `completion` = the answer, `metadata` =
//! `{"max_rouge_l": <highest F>, "most_similar": <that instruction>}`. Everything random
//! comes from (seed, i, a), and the pool is fixed by the host per round, so a resumed job
//! regenerates the same records. `expand` only checks the settings: the prompts are the
//! model's, so it answers a request for no records (a host's settings probe) and refuses any
//! other; `generate` runs `generate_record` per index with an empty pool.
//!
//! Defaults: `top_p` is 0.95 rather than the paper's 0.5, which suited GPT-3 davinci: a small
//! model that nearly decodes greedily tends to copy one of the listed tasks, which the ROUGE-L
//! filter then rejects attempt after attempt.

use serde::Deserialize;
use serde_json::json;
use textnlp_metrics::rouge::{RougeScorer, RougeType};
use textnlp_plugin_sdk::rng::SplitMix64;
use textnlp_plugin_sdk::strategy::{
    ChatMessage, ExpandRequest, Generated, GeneratedRecord, Outcome, PromptRecord, RecordError,
    RecordRequest, Retried, Strategy, StrategyError, expand_model_written, generate_by_record,
    retry,
};
use textnlp_plugin_sdk::{clean, config, model};

const MAX_ATTEMPTS: u32 = 10;
const MAX_DEMOS: u32 = 32;
const MAX_INSTRUCTION_TOKENS: u32 = 4096;

/// The paper's keyword filter: tasks a text-only model cannot do.
const DEFAULT_BLACKLIST: [&str; 13] = [
    "image", "images", "graph", "graphs", "picture", "pictures", "file", "files", "map", "maps",
    "draw", "plot", "go to",
];

struct SelfInstruct;

textnlp_plugin_sdk::register_strategy!(SelfInstruct);

impl Strategy for SelfInstruct {
    fn expand(request: ExpandRequest) -> Result<Vec<PromptRecord>, StrategyError> {
        // Hosts check settings with an empty expand.
        Settings::parse(&config::raw())?;
        expand_model_written("self-instruct", &request)
    }

    fn generate(request: ExpandRequest) -> Result<Vec<GeneratedRecord>, StrategyError> {
        generate_by_record::<Self>(request)
    }

    fn generate_record(request: RecordRequest) -> Result<Outcome, RecordError> {
        let settings = Settings::parse(&config::raw())?;
        let (seed, index) = (request.seed, request.index);
        let mut pool = Pool::new(&settings, &request.context);
        let retried = retry(settings.attempts, |attempt| {
            let mut rng = SplitMix64::for_attempt(seed, index, attempt);
            let demos = pool.demos(&settings, &mut rng);
            let mut ask = model::text_request(list_prompt(&demos));
            ask.max_tokens = settings.max_instruction_tokens;
            ask.temperature = settings.temperature;
            ask.top_p = settings.top_p;
            ask.stop = vec!["\n".into()];
            ask.seed = Some(rng.next_u64());
            let output = model::generate(&ask)?;
            Ok(pool
                .judge(&settings, &output.text)
                .map(|found| (found, rng)))
        })?;
        let ((found, mut rng), attempts) = match retried {
            Retried::Accepted { value, attempts } => (value, attempts),
            Retried::Rejected { reason, attempts } => {
                return Ok(Outcome::Rejected(format!(
                    "{reason} (after {attempts} attempts)"
                )));
            }
        };
        let messages = vec![ChatMessage {
            role: "user".into(),
            content: found.instruction.clone(),
        }];
        let mut answer = model::chat_request(messages.clone());
        answer.seed = Some(rng.next_u64());
        let answer = model::generate(&answer)?;
        if answer.text.trim().is_empty() {
            return Ok(Outcome::Rejected(
                "empty-answer: the model's answer to the instruction is empty".into(),
            ));
        }
        Ok(Outcome::Accepted(Generated {
            messages,
            completion: answer.text,
            metadata: json!({
                "max_rouge_l": found.max_rouge_l,
                "most_similar": found.most_similar,
            })
            .to_string(),
            attempts: attempts + 1,
        }))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    seed_tasks: Vec<String>,
    #[serde(default = "default_demos")]
    demos: u32,
    #[serde(default = "default_machine_demos")]
    machine_demos: u32,
    #[serde(default = "default_max_rouge_l")]
    max_rouge_l: f64,
    #[serde(default = "default_attempts")]
    attempts: u32,
    #[serde(default = "default_min_words")]
    min_words: usize,
    #[serde(default = "default_max_words")]
    max_words: usize,
    #[serde(default = "default_blacklist")]
    blacklist: Vec<String>,
    #[serde(default = "default_temperature")]
    temperature: f32,
    #[serde(default = "default_top_p")]
    top_p: f32,
    #[serde(default = "default_max_instruction_tokens")]
    max_instruction_tokens: u32,
}

fn default_demos() -> u32 {
    8
}
fn default_machine_demos() -> u32 {
    2
}
fn default_max_rouge_l() -> f64 {
    0.7
}
fn default_attempts() -> u32 {
    3
}
fn default_min_words() -> usize {
    4
}
fn default_max_words() -> usize {
    150
}
fn default_blacklist() -> Vec<String> {
    DEFAULT_BLACKLIST.map(String::from).to_vec()
}
fn default_temperature() -> f32 {
    0.7
}
fn default_top_p() -> f32 {
    0.95
}
fn default_max_instruction_tokens() -> u32 {
    128
}

impl Settings {
    fn parse(json: &str) -> Result<Settings, StrategyError> {
        let s: Settings = config::parse(json).map_err(StrategyError::InvalidConfig)?;
        let fail = |m: String| Err(StrategyError::InvalidConfig(m));
        if s.seed_tasks.is_empty() {
            return fail("seed_tasks: needs at least one task".into());
        }
        if let Some(i) = s.seed_tasks.iter().position(|t| t.trim().is_empty()) {
            return fail(format!("seed_tasks[{i}]: is empty"));
        }
        if !(1..=MAX_DEMOS).contains(&s.demos) {
            return fail(format!(
                "demos: {} is not between 1 and {MAX_DEMOS}",
                s.demos
            ));
        }
        if s.machine_demos > s.demos {
            return fail(format!(
                "machine_demos: {} is more than demos {}",
                s.machine_demos, s.demos
            ));
        }
        if !(0.0..=1.0).contains(&s.max_rouge_l) {
            return fail(format!(
                "max_rouge_l: {} is not between 0 and 1",
                s.max_rouge_l
            ));
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
        if let Some(i) = s.blacklist.iter().position(|w| w.trim().is_empty()) {
            return fail(format!("blacklist[{i}]: is empty"));
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
        if !(1..=MAX_INSTRUCTION_TOKENS).contains(&s.max_instruction_tokens) {
            return fail(format!(
                "max_instruction_tokens: {} is not between 1 and {MAX_INSTRUCTION_TOKENS}",
                s.max_instruction_tokens
            ));
        }
        Ok(s)
    }
}

/// An instruction that passed every filter.
#[derive(Debug, Clone, PartialEq)]
struct Found {
    instruction: String,
    max_rouge_l: f64,
    most_similar: String,
}

/// The seed tasks and the machine pool (the dataset's earlier instructions), with a ROUGE
/// scorer reused across comparisons.
struct Pool<'a> {
    seed_tasks: &'a [String],
    machine: &'a [String],
    scorer: RougeScorer,
}

impl<'a> Pool<'a> {
    fn new(settings: &'a Settings, machine: &'a [String]) -> Pool<'a> {
        Pool {
            seed_tasks: &settings.seed_tasks,
            machine,
            scorer: RougeScorer::new(&[RougeType::L], false),
        }
    }

    /// The demonstrations of one attempt, in prompt order.
    fn demos(&self, settings: &Settings, rng: &mut SplitMix64) -> Vec<&'a str> {
        let want = settings.demos as usize;
        let mut from_machine = (settings.machine_demos as usize).min(self.machine.len());
        let from_seed = (want - from_machine).min(self.seed_tasks.len());
        // Machine tasks fill in when there are too few seed tasks.
        from_machine = (want - from_seed).min(self.machine.len());
        let mut demos: Vec<&str> =
            sample_without_replacement(rng, self.machine.len(), from_machine)
                .into_iter()
                .map(|i| self.machine[i].as_str())
                .collect();
        demos.extend(
            sample_without_replacement(rng, self.seed_tasks.len(), from_seed)
                .into_iter()
                .map(|i| self.seed_tasks[i].as_str()),
        );
        shuffle(rng, &mut demos);
        demos
    }

    /// The instruction in one model output, or the rule it breaks.
    fn judge(&mut self, settings: &Settings, output: &str) -> Result<Found, String> {
        let instruction = parse_instruction(output);
        check_rules(settings, &instruction)?;
        let (max_rouge_l, most_similar) = self.most_similar(&instruction);
        if max_rouge_l > settings.max_rouge_l {
            return Err(format!(
                "too-similar: ROUGE-L {max_rouge_l:.4} with {most_similar:?} is above \
                 max_rouge_l {}",
                settings.max_rouge_l
            ));
        }
        Ok(Found {
            instruction,
            max_rouge_l,
            most_similar: most_similar.to_owned(),
        })
    }

    /// The highest ROUGE-L F of `instruction` against the seed tasks and the machine pool, and
    /// the first instruction that reaches it.
    fn most_similar(&mut self, instruction: &str) -> (f64, &'a str) {
        let mut best = (f64::NEG_INFINITY, "");
        for known in self.seed_tasks.iter().chain(self.machine) {
            // bootstrap_instructions.py: scorer.score(new_instruction, known).
            let f = self.scorer.score(instruction, known)[0].fmeasure;
            if f > best.0 {
                best = (f, known.as_str());
            }
        }
        best
    }
}

/// The paper's prompt: "Come up with a series of tasks:", the demos numbered from 1 (each on
/// one line, trailing colons removed), and the next number for the model to continue.
fn list_prompt(demos: &[&str]) -> String {
    let mut prompt = String::from("Come up with a series of tasks:\n");
    for (i, demo) in demos.iter().enumerate() {
        let demo = clean::squash_whitespace(demo);
        prompt.push_str(&format!("{}. {}\n", i + 1, demo.trim_end_matches(':')));
    }
    prompt.push_str(&format!("{}.", demos.len() + 1));
    prompt
}

/// The new task in a completion of [`list_prompt`]: its first non-empty line, cleaned of
/// numbering, bullets, quotes, markdown and a "Task:" label, whitespace squashed, first letter
/// upper-cased.
fn parse_instruction(output: &str) -> String {
    let line = output.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let task = clean::squash_whitespace(&clean::tidy(line, &["task", "instruction", "new task"]));
    let mut chars = task.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => task,
    }
}

/// bootstrap_instructions.py's rules before the similarity check, in its order.
fn check_rules(settings: &Settings, instruction: &str) -> Result<(), String> {
    let Some(first) = instruction.chars().next() else {
        return Err("empty: the output holds no instruction".into());
    };
    let words = clean::word_count(instruction);
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
    if let Some(word) = settings
        .blacklist
        .iter()
        .find(|w| contains_word(instruction, w))
    {
        return Err(format!("blacklisted: contains {word:?}"));
    }
    if instruction.starts_with("Write a program") {
        return Err("write-a-program: starts with \"Write a program\"".into());
    }
    if first.is_ascii_punctuation() {
        return Err(format!("starts-with-punctuation: starts with {first:?}"));
    }
    if !first.is_ascii() {
        return Err(format!("starts-with-non-ascii: starts with {first:?}"));
    }
    Ok(())
}

/// Whether `word` occurs in `text` as a whole word, ignoring case (Python's
/// `re.search(r"\b(word)\b", text, re.IGNORECASE)`: word characters are letters, digits and
/// `_`).
fn contains_word(text: &str, word: &str) -> bool {
    let text = text.to_lowercase();
    let word = word.to_lowercase();
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    text.match_indices(&word).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        !before.is_some_and(is_word) && !after.is_some_and(is_word)
    })
}

/// `k` distinct values of `0..n` in random order (`k <= n`): the first `k` steps of a
/// Fisher–Yates shuffle over a sparse permutation, O(k log k) whatever `n`.
fn sample_without_replacement(rng: &mut SplitMix64, n: usize, k: usize) -> Vec<usize> {
    let mut moved = std::collections::BTreeMap::new();
    (0..k.min(n))
        .map(|i| {
            let j = i + rng.below((n - i) as u64) as usize;
            let at_j = moved.get(&j).copied().unwrap_or(j);
            let at_i = moved.get(&i).copied().unwrap_or(i);
            moved.insert(j, at_i);
            at_j
        })
        .collect()
}

/// Fisher–Yates.
fn shuffle<T>(rng: &mut SplitMix64, items: &mut [T]) {
    for i in (1..items.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        items.swap(i, j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use textnlp_plugin_sdk::manifest::{Kind, PluginManifest};

    const SEEDS: &str = r#"{"seed_tasks": [
        "Give three tips for staying healthy.",
        "Translate the sentence into French.",
        "Summarize the news article in one sentence.",
        "Write a haiku about autumn leaves.",
        "Explain why the sky is blue.",
        "List five fruits that are red.",
        "Classify the review as positive or negative.",
        "Suggest a name for a bakery.",
        "Describe your ideal weekend."
    ]}"#;

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
        let manifest = SelfInstruct::manifest().unwrap();
        assert_eq!(
            (manifest.name.as_str(), manifest.kind, manifest.context),
            ("self-instruct", Kind::Strategy, 10_000)
        );
        let p = &manifest.config_schema["properties"];
        let s = settings(r#"{"seed_tasks": ["x"]}"#);
        assert_eq!(p["demos"]["default"], s.demos);
        assert_eq!(p["machine_demos"]["default"], s.machine_demos);
        assert_eq!(p["max_rouge_l"]["default"], s.max_rouge_l);
        assert_eq!(p["attempts"]["default"], s.attempts);
        assert_eq!(p["min_words"]["default"], s.min_words);
        assert_eq!(p["max_words"]["default"], s.max_words);
        assert_eq!(p["blacklist"]["default"], json!(s.blacklist));
        assert_eq!(
            p["temperature"]["default"].as_f64().unwrap() as f32,
            s.temperature
        );
        assert_eq!(p["top_p"]["default"].as_f64().unwrap() as f32, s.top_p);
        assert_eq!(
            p["max_instruction_tokens"]["default"],
            s.max_instruction_tokens
        );
    }

    #[test]
    fn the_prompt_is_the_papers_numbered_list() {
        let prompt = list_prompt(&["Name a  bird.", "Define:\n  gravity:"]);
        assert_eq!(
            prompt,
            "Come up with a series of tasks:\n1. Name a bird.\n2. Define: gravity\n3."
        );
    }

    #[test]
    fn demos_mix_seed_and_machine_tasks_deterministically() {
        let s = settings(SEEDS);
        let machine: Vec<String> = (0..5)
            .map(|i| format!("Machine task number {i}."))
            .collect();
        let pool = Pool::new(&s, &machine);
        let demos = pool.demos(&s, &mut SplitMix64::for_attempt(3, 10, 0));
        assert_eq!(demos.len(), 8);
        assert_eq!(demos.iter().filter(|d| d.starts_with("Machine")).count(), 2);
        assert_eq!(demos.iter().collect::<HashSet<_>>().len(), 8);
        assert_eq!(
            demos,
            pool.demos(&s, &mut SplitMix64::for_attempt(3, 10, 0))
        );
        assert_ne!(
            demos,
            pool.demos(&s, &mut SplitMix64::for_attempt(3, 10, 1))
        );
        assert_ne!(
            demos,
            pool.demos(&s, &mut SplitMix64::for_attempt(3, 11, 0))
        );
        // Machine tasks are not always first: the demos are shuffled.
        let positions: HashSet<usize> = (0..50)
            .flat_map(|i| {
                pool.demos(&s, &mut SplitMix64::for_attempt(3, i, 0))
                    .iter()
                    .position(|d| d.starts_with("Machine"))
            })
            .collect();
        assert!(positions.len() > 2, "{positions:?}");

        // No machine pool yet: seed tasks only.
        let empty = Pool::new(&s, &[]);
        let demos = empty.demos(&s, &mut SplitMix64::for_attempt(3, 10, 0));
        assert_eq!(demos.len(), 8);
        assert!(demos.iter().all(|d| s.seed_tasks.iter().any(|t| t == d)));

        // Few seed tasks: machine tasks fill in; fewer in all than demos: all of them.
        let few = settings(r#"{"seed_tasks": ["Seed one here.", "Seed two here."]}"#);
        let pool = Pool::new(&few, &machine);
        let demos = pool.demos(&few, &mut SplitMix64::for_attempt(1, 1, 0));
        assert_eq!(demos.len(), 7);
        assert_eq!(demos.iter().filter(|d| d.starts_with("Seed")).count(), 2);
    }

    #[test]
    fn outputs_are_parsed_robustly() {
        for (output, want) in [
            (
                " Write a poem about the sea.",
                "Write a poem about the sea.",
            ),
            (
                "  write a poem  about the sea.\n10. Another task",
                "Write a poem about the sea.",
            ),
            (
                "\n\n\"Write a poem about the sea.\"",
                "Write a poem about the sea.",
            ),
            (
                "**Task:** Write a poem about the sea.",
                "Write a poem about the sea.",
            ),
            (
                "- Write a poem about the sea.",
                "Write a poem about the sea.",
            ),
            (
                "10. Write a poem about the sea.",
                "Write a poem about the sea.",
            ),
            ("", ""),
            ("   \n ", ""),
        ] {
            assert_eq!(parse_instruction(output), want, "{output:?}");
        }
    }

    #[test]
    fn the_papers_rules_reject_with_their_names() {
        let s = settings(SEEDS);
        let rule = |instruction: &str| {
            check_rules(&s, instruction)
                .err()
                .map(|e| e.split(':').next().unwrap().to_owned())
        };
        assert_eq!(rule("Write a limerick about cats."), None);
        assert_eq!(rule("").as_deref(), Some("empty"));
        assert_eq!(rule("Name a bird.").as_deref(), Some("too-short"));
        assert_eq!(rule(&"word ".repeat(151)).as_deref(), Some("too-long"));
        assert_eq!(
            rule("Describe the image below in detail.").as_deref(),
            Some("blacklisted")
        );
        assert_eq!(
            rule("Plot the data as a bar chart.").as_deref(),
            Some("blacklisted")
        );
        assert_eq!(
            rule("Tell me how to GO TO the station.").as_deref(),
            Some("blacklisted")
        );
        assert_eq!(rule("Explain how mapping functions work in Python."), None);
        assert_eq!(
            rule("Write a program that sorts numbers.").as_deref(),
            Some("write-a-program")
        );
        assert_eq!(
            rule("(Optional) describe your morning routine.").as_deref(),
            Some("starts-with-punctuation")
        );
        assert_eq!(
            rule("Écrivez un poème sur la mer.").as_deref(),
            Some("starts-with-non-ascii")
        );
        assert!(!contains_word("A file_name here", "file"));
        assert!(contains_word("Open the FILE.", "file"));
        assert!(contains_word("maps", "maps"));
        assert!(!contains_word("roadmaps", "maps"));
    }

    #[test]
    fn similar_instructions_are_rejected_by_rouge_l() {
        let s = settings(SEEDS);
        let machine = vec!["Write a short story about a lost dog.".to_owned()];
        let mut pool = Pool::new(&s, &machine);
        let e = pool
            .judge(&s, " Write a short story about a lost cat.")
            .unwrap_err();
        assert!(
            e.starts_with("too-similar: ROUGE-L 0.8750 with \"Write a short story"),
            "{e}"
        );
        let e = pool
            .judge(&s, " Give three tips for staying fit.")
            .unwrap_err();
        assert!(e.contains("Give three tips for staying healthy."), "{e}");

        let found = pool
            .judge(&s, " Compose a limerick about a sleepy cat.")
            .unwrap();
        assert_eq!(found.instruction, "Compose a limerick about a sleepy cat.");
        assert!(found.max_rouge_l <= 0.7 && found.max_rouge_l > 0.0);
        // Nothing in common: F 0 everywhere, and the first known instruction is named.
        let (f, similar) = pool.most_similar("zebra quokka");
        assert_eq!((f, similar), (0.0, "Give three tips for staying healthy."));
        let strict = settings(&SEEDS.replace("]}", "], \"max_rouge_l\": 0.0}"));
        let mut pool = Pool::new(&strict, &machine);
        assert!(
            pool.judge(&strict, "Compose a limerick about cats.")
                .is_err()
        );
    }

    #[test]
    fn rouge_l_matches_rouge_score() {
        // rouge_scorer.RougeScorer(["rougeL"]).score("the cat sat on the mat",
        //     "the cat lay on a mat")["rougeL"].fmeasure == 0.6666666666666666
        let mut scorer = RougeScorer::new(&[RougeType::L], false);
        let f = scorer.score("the cat sat on the mat", "the cat lay on a mat")[0].fmeasure;
        assert!((f - 2.0 / 3.0).abs() < 1e-12, "{f}");
    }

    #[test]
    fn bad_settings_name_the_field() {
        assert!(error("{}").contains("seed_tasks"));
        assert!(error(r#"{"seed_tasks": []}"#).starts_with("seed_tasks: "));
        assert!(error(r#"{"seed_tasks": [""]}"#).starts_with("seed_tasks[0]: "));
        assert!(error(r#"{"seed_tasks": [1]}"#).starts_with("seed_tasks[0]: "));
        let with = |extra: &str| error(&format!(r#"{{"seed_tasks": ["x"], {extra}}}"#));
        assert!(with(r#""demos": 0"#).starts_with("demos: "));
        assert!(with(r#""demos": 33"#).starts_with("demos: "));
        assert!(with(r#""demos": 2, "machine_demos": 3"#).starts_with("machine_demos: "));
        assert!(with(r#""max_rouge_l": 1.5"#).starts_with("max_rouge_l: "));
        assert!(with(r#""attempts": 0"#).starts_with("attempts: "));
        assert!(with(r#""min_words": 0"#).starts_with("min_words: "));
        assert!(with(r#""min_words": 5, "max_words": 4"#).starts_with("max_words: "));
        assert!(with(r#""blacklist": ["ok", " "]"#).starts_with("blacklist[1]: "));
        assert!(with(r#""temperature": -1"#).starts_with("temperature: "));
        assert!(with(r#""top_p": 0"#).starts_with("top_p: "));
        assert!(with(r#""max_instruction_tokens": 0"#).starts_with("max_instruction_tokens: "));
        assert!(with(r#""stemmer": true"#).contains("unknown field `stemmer`"));
    }
}
