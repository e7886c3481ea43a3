use super::*;
use textnlp_plugin_sdk::manifest::{Kind, PluginManifest};

fn settings(json: &str) -> Settings {
    Settings::parse(json).unwrap()
}

/// Every applicable rule `text` fails, by setting name.
fn failing(settings: &Settings, text: &str) -> Vec<&'static str> {
    let stats = Stats::of(text);
    let scores = metrics(&stats);
    settings
        .rules()
        .into_iter()
        .filter(|rule| {
            let value = scores.iter().find(|m| m.name == rule.metric).unwrap().value;
            settings.applies(rule, &stats) && rule.fails(value)
        })
        .map(|rule| rule.setting)
        .collect()
}

const CLEAN: &str = "The old lighthouse stood at the edge of the cliff for more than a century. \
Sailors relied on its steady beam to find the narrow channel between the rocks, and the keeper \
wrote every passing ship into a heavy leather logbook.\n\nWhen the automated light arrived, the \
keeper moved into town. He still walked to the headland each evening, watching the lamp turn \
without him.";

#[test]
fn the_manifest_is_valid() {
    let manifest = Quality::manifest().unwrap();
    assert_eq!(
        (manifest.name.as_str(), manifest.kind),
        ("quality", Kind::Validator)
    );
}

#[test]
fn clean_natural_text_passes_every_rule() {
    let all_on = settings(r#"{"min_unique_word_ratio": 0.5}"#);
    assert_eq!(failing(&all_on, CLEAN), Vec::<&str>::new());
    assert_eq!(failing(&settings("{}"), "Hello there."), Vec::<&str>::new());
}

/// `n` distinct five-letter words, repeated once within unique filler words so that the
/// repeat holds about `share` of the text's characters.
fn repeated_passage(n: usize, share: f64) -> String {
    const WORDS: [&str; 10] = [
        "amber", "blaze", "cedar", "dunes", "ember", "frost", "grove", "haven", "ivory", "jolly",
    ];
    let passage = WORDS[..n].join(" ");
    let target = (5 * n) as f64 / share;
    let mut filler = Vec::new();
    let mut k = 0usize;
    while ((2 * passage.len() + 2) as f64)
        + filler.iter().map(|w: &String| w.len() + 1).sum::<usize>() as f64
        <= target
    {
        // "qa", "qb", ... "qza": distinct and unlike the passage words.
        let mut word = String::from("q");
        let mut i = k;
        loop {
            word.push(char::from(b'a' + (i % 26) as u8));
            i /= 26;
            if i == 0 {
                break;
            }
        }
        word.push_str("ox");
        filler.push(word);
        k += 1;
    }
    let half = filler.len() / 2;
    format!(
        "{passage} {} {passage} {}",
        filler[..half].join(" "),
        filler[half..].join(" ")
    )
}

#[test]
fn each_rule_trips_alone() {
    let long_words: Vec<String> = (0..20).map(|i| format!("extraordinarily{i}")).collect();
    let repeat_rules = r#""max_top_2gram_char_frac": null, "max_top_3gram_char_frac": null,
        "max_top_4gram_char_frac": null"#;
    let cases: Vec<(String, String, &str)> = vec![
        ("{}".into(), "".into(), "min_words"),
        (r#"{"max_words": 3}"#.into(), "one two three four".into(), "max_words"),
        (
            "{}".into(),
            "a an ox is at by on up go me we he us it do so no am if or to".into(),
            "min_mean_word_length",
        ),
        ("{}".into(), long_words.join(" "), "max_mean_word_length"),
        (
            "{}".into(),
            "#rust #wasm are nice tools for building fast plugins today".into(),
            "max_symbol_ratio",
        ),
        (
            "{}".into(),
            "- apples are red and sweet\n- pears are green and soft\n- plums are purple and juicy"
                .into(),
            "max_bullet_lines",
        ),
        (
            "{}".into(),
            "The first line is plain and simple\nThe second line trails off...\nThe third line ends normally"
                .into(),
            "max_ellipsis_lines",
        ),
        ("{}".into(), "Totals: 12 34 56 78 90 and more".into(), "min_alpha_words"),
        (
            r#"{"min_unique_word_ratio": 0.9}"#.into(),
            "red blue red green blue yellow red pink".into(),
            "min_unique_word_ratio",
        ),
        ("{}".into(), "hello\u{7}world is here".into(), "max_non_printable_ratio"),
        (
            "{}".into(),
            "Yes.\n\nYes.\n\nThe river bends east here\nthen turns toward the hills\nand fades into the marsh"
                .into(),
            "max_dup_para_frac",
        ),
        (
            // A duplicated paragraph's lines are duplicated lines too.
            r#"{"max_dup_line_char_frac": null}"#.into(),
            "Pneumonoultramicroscopicsilicovolcanoconiosis\n\nA short note\n\nAnother one\n\nPneumonoultramicroscopicsilicovolcanoconiosis"
                .into(),
            "max_dup_para_char_frac",
        ),
        (
            "{}".into(),
            "Yes\nThe weather was mild for most of the afternoon today\nYes".into(),
            "max_dup_line_frac",
        ),
        (
            "{}".into(),
            "Pneumonoultramicroscopicsilicovolcanoconiosis\na short line\nanother one\nPneumonoultramicroscopicsilicovolcanoconiosis"
                .into(),
            "max_dup_line_char_frac",
        ),
        (
            "{}".into(),
            "red apple one red apple two red apple three".into(),
            "max_top_2gram_char_frac",
        ),
        (
            "{}".into(),
            "We brewed green tea leaves in the morning, then later we dried green tea leaves under \
             the warm sun before dinner tonight."
                .into(),
            "max_top_3gram_char_frac",
        ),
        (
            "{}".into(),
            "We brewed hot green tea leaves in the morning, and later still we dried hot green tea \
             leaves under the warm afternoon sun before a quiet dinner with friends at the old \
             farmhouse near the river tonight."
                .into(),
            "max_top_4gram_char_frac",
        ),
        (format!("{{{repeat_rules}}}"), repeated_passage(5, 0.2), "max_dup_5gram_char_frac"),
        (format!("{{{repeat_rules}}}"), repeated_passage(6, 0.16), "max_dup_6gram_char_frac"),
        (format!("{{{repeat_rules}}}"), repeated_passage(7, 0.147), "max_dup_7gram_char_frac"),
        (format!("{{{repeat_rules}}}"), repeated_passage(8, 0.134), "max_dup_8gram_char_frac"),
        (format!("{{{repeat_rules}}}"), repeated_passage(9, 0.122), "max_dup_9gram_char_frac"),
        (format!("{{{repeat_rules}}}"), repeated_passage(10, 0.111), "max_dup_10gram_char_frac"),
    ];
    for (json, text, rule) in &cases {
        let s = settings(json);
        assert_eq!(
            failing(&s, text),
            [*rule],
            "{text:?}: {:?}",
            metrics(&Stats::of(text))
        );
    }
    // Every rule has its case.
    let tested: Vec<&str> = cases.iter().map(|c| c.2).collect();
    let all = settings(r#"{"min_unique_word_ratio": 0.5}"#);
    assert!(all.rules().iter().all(|r| tested.contains(&r.setting)));
}

#[test]
fn the_reason_names_the_first_failing_rule() {
    let s = settings("{}");
    let report = report(&s, &["", CLEAN, "Totals: 12 34 56 78 90 and more"]);
    let reasons: Vec<Option<&str>> = report
        .samples
        .iter()
        .map(|r| r.verdict.reason.as_deref())
        .collect();
    assert_eq!(
        reasons,
        [
            Some("words 0 below min 1"),
            None,
            Some("alpha-words 0.375 below min 0.8")
        ]
    );
    let text = repeated_passage(5, 0.42);
    let s = settings(
        r#"{"max_top_2gram_char_frac": null, "max_top_3gram_char_frac": null, "max_top_4gram_char_frac": null}"#,
    );
    let reason = report_reason(&s, &text);
    assert!(reason.starts_with("dup-5gram-char-frac 0.4"), "{reason}");
    assert!(reason.ends_with(" above max 0.15"), "{reason}");
}

fn report_reason(settings: &Settings, text: &str) -> String {
    report(settings, &[text]).samples[0]
        .verdict
        .reason
        .clone()
        .unwrap()
}

#[test]
fn the_corpus_counts_rejections_per_rule() {
    let s = settings(r#"{"max_words": 30}"#);
    let report = report(&s, &["", CLEAN, "ok then", "some bad\u{0}text here"]);
    let get = |name: &str| {
        report
            .corpus
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.value)
    };
    assert_eq!(get("count"), Some(4.0));
    assert_eq!(get("kept"), Some(1.0));
    assert_eq!(get("rejected-by-min-words"), Some(1.0));
    assert_eq!(get("rejected-by-max-words"), Some(1.0));
    assert_eq!(get("rejected-by-max-non-printable-ratio"), Some(1.0));
    assert_eq!(get("rejected-by-max-dup-10gram-char-frac"), Some(0.0));
    // Rules that are off have no counter.
    assert_eq!(get("rejected-by-min-unique-word-ratio"), None);
    let names: Vec<&str> = report.samples[1]
        .scores
        .iter()
        .map(|m| m.name.as_str())
        .collect();
    assert_eq!(names.len(), 21);
    assert!(names.contains(&"top-3gram-char-frac") && names.contains(&"dup-10gram-char-frac"));
}

#[test]
fn null_turns_a_rule_off() {
    let s = settings(r#"{"min_words": null}"#);
    assert!(report(&s, &[""]).samples[0].verdict.keep);
}

#[test]
fn bad_settings_name_the_setting() {
    let err = |json| Settings::parse(json).unwrap_err();
    assert!(err(r#"{"min_words": -1}"#).starts_with("min_words: "));
    assert!(err(r#"{"max_words": 5, "min_words": 10}"#).starts_with("max_words: "));
    assert!(err(r#"{"min_mean_word_length": 12}"#).starts_with("max_mean_word_length: "));
    assert!(err(r#"{"max_symbol_ratio": 1.5}"#).starts_with("max_symbol_ratio: "));
    assert!(err(r#"{"min_alpha_words": -0.1}"#).starts_with("min_alpha_words: "));
    assert!(err(r#"{"max_dup_5gram_char_frac": "high"}"#).starts_with("max_dup_5gram_char_frac: "));
    assert!(err(r#"{"min_words_for_stats": null}"#).starts_with("min_words_for_stats: "));
    assert!(err(r#"{"max_top_5gram_char_frac": 0.1}"#).contains("max_top_5gram_char_frac"));
    assert!(err("[]").contains("JSON object"));
}

#[test]
fn odd_input_does_not_panic() {
    let huge = "word ".repeat(200_000);
    let s = settings("{}");
    for text in [
        "",
        " ",
        "\n\n\n",
        "…",
        "#",
        "🙂 🙂 🙂",
        "\u{0}",
        "e\u{301}",
        huge.as_str(),
    ] {
        let report = report(&s, &[text]);
        assert!(report.samples[0].scores.iter().all(|m| m.value.is_finite()));
    }
}
