use super::*;
use textnlp_metrics::dedup::normalize;
use textnlp_plugin_sdk::manifest::{Kind, PluginManifest};

fn settings(json: &str) -> Settings {
    Settings::parse(json).unwrap()
}

fn metric(metrics: &[Metric], name: &str) -> f64 {
    metrics.iter().find(|m| m.name == name).unwrap().value
}

#[test]
fn the_manifest_is_valid() {
    let manifest = Dedup::manifest().unwrap();
    assert_eq!(
        (manifest.name.as_str(), manifest.kind),
        ("dedup", Kind::Validator)
    );
}

#[test]
fn bad_settings_name_the_setting() {
    let err = |json| match Settings::parse(json) {
        Err(ValidatorError::InvalidConfig(m)) => m,
        other => panic!("{other:?}"),
    };
    assert!(err(r#"{"threshold": 0}"#).starts_with("threshold: "));
    assert!(err(r#"{"threshold": 1.5}"#).starts_with("threshold: "));
    assert!(err(r#"{"threshold": "high"}"#).starts_with("threshold: "));
    assert!(err(r#"{"shingle_size": 0}"#).starts_with("shingle_size: "));
    assert!(err(r#"{"shingle_size": 65}"#).starts_with("shingle_size: "));
    assert_eq!(settings(r#"{"shingle_size": 64}"#).shingle_size, 64);
    assert!(err(r#"{"buckets": 0}"#).starts_with("buckets: "));
    assert!(err(r#"{"hashes_per_bucket": 0}"#).starts_with("hashes_per_bucket: "));
    assert!(err(r#"{"buckets": 100, "hashes_per_bucket": 100}"#).starts_with("buckets: "));
    assert!(err(r#"{"seed": -1}"#).starts_with("seed: "));
    assert!(err(r#"{"exact": true}"#).contains("exact"));
    assert!(err("[]").contains("JSON object"));
    let s = settings(r#"{"threshold": 1, "exact_only": true}"#);
    assert!(s.threshold == 1.0 && s.exact_only && s.buckets == 14);
}

#[test]
fn the_report_names_the_kept_sample() {
    let base = "The river rose slowly through the night and by morning the low fields near the old mill were under water again";
    let near = "the river rose slowly through the night, and by morning the low fields near the old mill were under water again!!";
    let edited = "The river rose slowly through the night and by morning the low fields near the old mill were under water once more";
    let texts = [base, "An unrelated sentence.", near, base, edited, ""];
    let report = settings("{}").report(&texts);
    assert_eq!(report.samples.len(), texts.len());
    let reasons: Vec<Option<&str>> = report
        .samples
        .iter()
        .map(|r| r.verdict.reason.as_deref())
        .collect();
    assert_eq!(reasons[..2], [None, None]);
    assert_eq!(
        reasons[2],
        Some("near duplicate of sample 0 (jaccard 1.00)")
    );
    assert_eq!(reasons[3], Some("exact duplicate of sample 0"));
    assert_eq!(
        reasons[4],
        Some("near duplicate of sample 0 (jaccard 0.84)")
    );
    assert_eq!(reasons[5], None);
    let scores =
        |i: usize| -> Vec<f64> { report.samples[i].scores.iter().map(|m| m.value).collect() };
    assert_eq!(scores(0), [0.0, 0.0, 0.0, 1.0]);
    assert_eq!(scores(1), [1.0, 0.0, 0.0, 0.0]);
    assert_eq!(scores(3), [0.0, 1.0, 0.0, 1.0]);
    assert_eq!(scores(4)[..3], [0.0, 0.0, 1.0]);
    let names: Vec<&str> = report.samples[0]
        .scores
        .iter()
        .map(|m| m.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "cluster",
            "exact-duplicate",
            "near-duplicate",
            "max-jaccard"
        ]
    );
    let corpus = &report.corpus;
    assert_eq!(metric(corpus, "count"), 6.0);
    assert_eq!(metric(corpus, "clusters"), 1.0);
    assert_eq!(metric(corpus, "exact-duplicates"), 1.0);
    assert_eq!(metric(corpus, "near-duplicates"), 2.0);
    assert_eq!(metric(corpus, "unique"), 3.0);
}

#[test]
fn exact_only_skips_near_duplicates() {
    let texts = ["a b c d e f g", "A b c d e f g!", "a  B c d e f g"];
    let report = settings(r#"{"exact_only": true}"#).report(&texts);
    let kept: Vec<bool> = report.samples.iter().map(|r| r.verdict.keep).collect();
    assert_eq!(kept, [true, true, false]);
}

#[test]
fn an_empty_batch_reports_a_zero_count() {
    let report = settings("{}").report(&[]);
    assert!(report.samples.is_empty());
    assert_eq!(metric(&report.corpus, "count"), 0.0);
}

#[test]
fn odd_inputs_do_not_panic() {
    let long = "word ".repeat(50_000);
    let texts = [
        "\u{0}\u{1}",
        "🙂🙂🙂",
        "٣٫١٤",
        "e\u{301}",
        long.as_str(),
        "x",
    ];
    let report =
        settings(r#"{"shingle_size": 1, "buckets": 1, "hashes_per_bucket": 1}"#).report(&texts);
    assert_eq!(report.samples.len(), texts.len());
}

/// A deterministic generator (64-bit LCG): the test corpus is the same on every run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, bound: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) % bound as u64) as usize
    }
}

/// About 3,000 pseudo-words of two or three syllables.
fn vocabulary(rng: &mut Lcg) -> Vec<String> {
    const SYLLABLES: [&str; 24] = [
        "ka", "lo", "mi", "ren", "tu", "sa", "vel", "dor", "pi", "ne", "bra", "qui", "zo", "fen",
        "gal", "ho", "ju", "ek", "ost", "ria", "mun", "tas", "lei", "cor",
    ];
    let mut words: Vec<String> = (0..4000)
        .map(|_| {
            let len = 2 + rng.next(2);
            (0..len)
                .map(|_| SYLLABLES[rng.next(SYLLABLES.len())])
                .collect()
        })
        .collect();
    words.sort();
    words.dedup();
    words
}

/// A copy of `words` with `swaps` adjacent-word swaps, a capitalized first word, and commas
/// and a final punctuation mark added: what normalization and shingling must see through.
fn variant(words: &[String], swaps: usize, rng: &mut Lcg) -> String {
    let mut words = words.to_vec();
    for _ in 0..swaps {
        let at = rng.next(words.len() - 1);
        words.swap(at, at + 1);
    }
    let mut text = String::new();
    for (i, word) in words.iter().enumerate() {
        if i > 0 {
            text.push_str(if rng.next(8) == 0 { ", " } else { " " });
        }
        if i == 0 || rng.next(10) == 0 {
            let mut chars = word.chars();
            text.extend(chars.next().map(|c| c.to_ascii_uppercase()));
            text.extend(chars);
        } else {
            text.push_str(word);
        }
    }
    text.push_str(["!", "?", "...", ""][rng.next(4)]);
    text
}

#[test]
fn planted_near_duplicates_are_found_and_sources_stay_apart() {
    let mut rng = Lcg(42);
    let vocabulary = vocabulary(&mut rng);
    let sources: Vec<Vec<String>> = (0..300)
        .map(|_| {
            let len = 40 + rng.next(41);
            (0..len)
                .map(|_| vocabulary[rng.next(vocabulary.len())].clone())
                .collect()
        })
        .collect();
    // Sources first, then one variant of each with 0, 1 and 2 swaps.
    let mut texts: Vec<String> = sources.iter().map(|w| w.join(" ")).collect();
    let mut planted = Vec::new();
    for swaps in 0..=2 {
        for (source, words) in sources.iter().enumerate() {
            planted.push((source, texts.len()));
            texts.push(variant(words, swaps, &mut rng));
        }
    }
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let params = settings("{}").near_params().unwrap();
    let clusters = cluster(&refs, Some(&params));

    let mut roots: Vec<usize> = clusters.cluster[..sources.len()].to_vec();
    roots.dedup();
    assert_eq!(roots.len(), sources.len(), "distinct sources were merged");

    // A variant whose true Jaccard to its source is below the threshold may not merge (or
    // only through a sibling variant); recall is measured on those that should.
    let similarity = |a: &str, b: &str| {
        minhash::jaccard(
            &minhash::shingles(&normalize::simplify(a), 5),
            &minhash::shingles(&normalize::simplify(b), 5),
        )
    };
    let (mut due, mut found, mut found_any) = (0, 0, 0);
    for &(source, index) in &planted {
        let merged = clusters.cluster[index] == source;
        found_any += usize::from(merged);
        if similarity(&texts[source], &texts[index]) >= 0.8 {
            due += 1;
            found += usize::from(merged);
        }
    }
    let recall = found as f64 / due as f64;
    let message = format!(
        "recall {recall:.4} ({found} of {due} variants with jaccard >= 0.8 merged with their \
         source; {found_any} of {} planted variants merged in all)",
        planted.len()
    );
    println!("{message}");
    assert!(recall >= 0.95, "{message}");
}
