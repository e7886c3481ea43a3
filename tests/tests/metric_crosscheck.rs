//! The `bleu`, `rouge` and `diversity` validator plugins, run as components, against the
//! Python packages they reproduce (sacrebleu 2.6.0, rouge-score 0.1.2 with nltk 3.10.4's
//! Porter stemmer, nltk's BLEU for Texygen's self-BLEU), on 600 varied pairs and on the
//! golden values of `tests/golden/metrics/`.
//!
//! Summation: the plugins sum left to right, as Python ≤ 3.11's `sum()` does (the Python
//! `scripts/setup.sh` installs here is 3.11, and `reference_py311.json` is matched bit for
//! bit); Python 3.12's compensated `sum()` differs in the last digits, so values are compared
//! at 1e-12 relative and the bit-exact count is reported.

use std::sync::OnceLock;

use serde_json::{Value, json};
use textnlp_host::plugins::validator::{Report, Sample};
use textnlp_host::plugins::{InstanceSpec, Limits, PluginRuntime, ValidatorPlugin};
use textnlp_tests::{Pair, built_component, golden_dir, metric_pairs, python_reference};

const PAIRS: usize = 600;
/// Hypotheses of the corpus scored for diversity (self-BLEU in Python is quadratic).
const DIVERSITY_TEXTS: usize = 150;
const SEED: u64 = 0x5eed_b1e0;

fn runtime() -> &'static PluginRuntime {
    static RUNTIME: OnceLock<PluginRuntime> = OnceLock::new();
    RUNTIME.get_or_init(|| PluginRuntime::new().expect("plugin runtime"))
}

fn plugin(file: &str, name: &str) -> ValidatorPlugin {
    let spec = InstanceSpec::new("tenant-a", name, Limits::default());
    ValidatorPlugin::new(runtime(), &built_component(file), spec, 1).expect("plugin loads")
}

fn samples(pairs: &[Pair]) -> Vec<Sample> {
    pairs
        .iter()
        .map(|p| Sample {
            text: p.hyp.clone(),
            references: p.refs.clone(),
        })
        .collect()
}

fn pairs_json(pairs: &[Pair]) -> Value {
    pairs
        .iter()
        .map(|p| json!({"hyp": p.hyp, "refs": p.refs}))
        .collect()
}

/// Compares values at 1e-12 relative, counting the bit-exact ones.
#[derive(Default)]
struct Tally {
    compared: usize,
    exact: usize,
    failed: usize,
    /// The first few failures, spelled out.
    failures: Vec<String>,
}

impl Tally {
    fn check(&mut self, what: impl FnOnce() -> String, ours: f64, theirs: f64) {
        self.compared += 1;
        if ours.to_bits() == theirs.to_bits() {
            self.exact += 1;
            return;
        }
        let scale = ours.abs().max(theirs.abs()).max(f64::MIN_POSITIVE);
        let close = (ours - theirs).abs() / scale <= 1e-12;
        // A NaN on either side compares false, so it fails too.
        if !close {
            self.failed += 1;
            if self.failures.len() < 20 {
                self.failures
                    .push(format!("{}: ours {ours:?}, Python {theirs:?}", what()));
            }
        }
    }

    /// Both sides must give as many values.
    fn same_len(&mut self, what: &str, ours: usize, theirs: usize) {
        self.check(
            || format!("{what}: number of values"),
            ours as f64,
            theirs as f64,
        );
    }

    fn assert_clean(&self, what: &str) {
        assert!(
            self.failed == 0,
            "{what}: {} values differ beyond 1e-12, the first ones:\n{}",
            self.failed,
            self.failures.join("\n")
        );
        assert!(self.compared > 0);
        eprintln!(
            "{what}: {} values within 1e-12 of Python, {} bit-exact",
            self.compared, self.exact
        );
    }
}

fn metric(metrics: &[textnlp_host::plugins::validator::Metric], name: &str) -> f64 {
    metrics
        .iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("no metric `{name}` in {metrics:?}"))
        .value
}

fn bleu_configs() -> Vec<Value> {
    let mut configs = Vec::new();
    for tokenize in ["13a", "none", "char"] {
        for smooth in ["exp", "floor", "add-k", "none"] {
            for effective_order in [false, true] {
                configs.push(json!({
                    "tokenize": tokenize,
                    "smooth_method": smooth,
                    "effective_order": effective_order,
                }));
            }
        }
    }
    configs.push(json!({"tokenize": "13a", "smooth_method": "exp", "lowercase": true}));
    configs.push(json!({"tokenize": "13a", "smooth_method": "floor", "smooth_value": 0.5}));
    configs.push(json!({"tokenize": "13a", "smooth_method": "add-k", "smooth_value": 2}));
    configs
}

fn rouge_configs() -> Vec<Value> {
    let types = ["rouge1", "rouge2", "rouge3", "rougeL", "rougeLsum"];
    [false, true]
        .map(|stem| json!({"rouge_types": types, "use_stemmer": stem}))
        .to_vec()
}

fn compare_bleu(tally: &mut Tally, report: &Report, theirs: &Value, config: &Value) {
    let corpus = &theirs["corpus"];
    let at = |what: &str| format!("{config} corpus {what}");
    tally.check(
        || at("score"),
        metric(&report.corpus, "bleu"),
        f(&corpus["score"]),
    );
    tally.check(
        || at("bp"),
        metric(&report.corpus, "bleu-bp"),
        f(&corpus["bp"]),
    );
    for (key, name) in [("sys_len", "bleu-sys-len"), ("ref_len", "bleu-ref-len")] {
        tally.check(|| at(key), metric(&report.corpus, name), f(&corpus[key]));
    }
    for n in 1..=4 {
        for (key, name) in [
            ("precisions", "precision"),
            ("counts", "correct"),
            ("totals", "total"),
        ] {
            let ours = metric(&report.corpus, &format!("bleu-{name}-{n}"));
            tally.check(|| at(&format!("{key}[{n}]")), ours, f(&corpus[key][n - 1]));
        }
    }
    let signature = format!("bleu|{}", corpus["signature"].as_str().unwrap());
    assert!(
        report.corpus.iter().any(|m| m.name == signature),
        "{config}: no metric named {signature}"
    );
    let sentences = theirs["sentence"].as_array().unwrap();
    tally.same_len(
        &format!("{config} sentences"),
        report.samples.len(),
        sentences.len(),
    );
    for (i, (sample, theirs)) in report
        .samples
        .iter()
        .zip(theirs["sentence"].as_array().unwrap())
        .enumerate()
    {
        tally.check(
            || format!("{config} sentence {i}"),
            metric(&sample.scores, "bleu"),
            f(theirs),
        );
    }
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn bleu_and_rouge_match_the_python_packages_on_600_pairs() {
    let pairs = metric_pairs(PAIRS, SEED);
    let (bleu_configs, rouge_configs) = (bleu_configs(), rouge_configs());
    let reference = python_reference(&json!({
        "mode": "values",
        "pairs": pairs_json(&pairs),
        "bleu": bleu_configs,
        "rouge": rouge_configs,
        "diversity": {
            "texts": pairs[..DIVERSITY_TEXTS].iter().map(|p| p.hyp.as_str()).collect::<Vec<_>>(),
            "self_bleu": [2, 3, 4],
            "distinct": [1, 2, 3],
        },
    }));
    let samples = samples(&pairs);

    let bleu = plugin("validator_bleu", "bleu");
    let mut tally = Tally::default();
    for (config, theirs) in bleu_configs
        .iter()
        .zip(reference["bleu"].as_array().unwrap())
    {
        let report = bleu
            .score(&samples, Some(&config.to_string()))
            .unwrap_or_else(|e| panic!("{config}: {e}"));
        compare_bleu(&mut tally, &report, theirs, config);
    }
    tally.assert_clean("BLEU");

    let rouge = plugin("validator_rouge", "rouge");
    let mut tally = Tally::default();
    for (config, theirs) in rouge_configs
        .iter()
        .zip(reference["rouge"].as_array().unwrap())
    {
        let report = rouge
            .score(&samples, Some(&config.to_string()))
            .unwrap_or_else(|e| panic!("{config}: {e}"));
        let pairs = theirs.as_array().unwrap();
        tally.same_len(
            &format!("{config} samples"),
            report.samples.len(),
            pairs.len(),
        );
        for (i, (sample, theirs)) in report.samples.iter().zip(pairs).enumerate() {
            for (rouge_type, prf) in theirs.as_object().unwrap() {
                for (k, suffix) in ["p", "r", "f"].iter().enumerate() {
                    let name = format!("{rouge_type}-{suffix}");
                    tally.check(
                        || format!("{config} sample {i} {name}"),
                        metric(&sample.scores, &name),
                        f(&prf[k]),
                    );
                }
            }
        }
    }
    tally.assert_clean("ROUGE");

    let diversity = plugin("validator_diversity", "diversity");
    let config = json!({"n": [1, 2, 3], "self_bleu": [2, 3, 4]}).to_string();
    let report = diversity
        .score(&samples[..DIVERSITY_TEXTS], Some(&config))
        .expect("diversity scores");
    let theirs = &reference["diversity"];
    let mut tally = Tally::default();
    for n in 2..=4 {
        let name = format!("self-bleu-{n}");
        let per_sentence = theirs["self_bleu"][n.to_string()].as_array().unwrap();
        tally.same_len(&name, report.samples.len(), per_sentence.len());
        for (i, (sample, theirs)) in report.samples.iter().zip(per_sentence).enumerate() {
            tally.check(
                || format!("{name} sentence {i}"),
                metric(&sample.scores, &name),
                f(theirs),
            );
        }
        // Texygen's mean: sum(result) / len(result), left to right.
        let mean = per_sentence.iter().map(f).sum::<f64>() / per_sentence.len() as f64;
        tally.check(
            || format!("{name} mean"),
            metric(&report.corpus, &name),
            mean,
        );
    }
    for n in 1..=3 {
        let [a, b, c] = [0, 1, 2].map(|k| f(&theirs["distinct"][n.to_string()][k]));
        for (suffix, value) in [("", a), ("-per-token", b), ("-sentence-mean", c)] {
            let name = format!("distinct-{n}{suffix}");
            tally.check(|| name.clone(), metric(&report.corpus, &name), value);
        }
    }
    tally.assert_clean("self-BLEU and distinct-n");
}

fn golden() -> Value {
    let path = golden_dir().join("metrics/reference_py311.json");
    serde_json::from_str(&std::fs::read_to_string(&path).expect("golden file")).expect("JSON")
}

fn sample(text: &str, references: &[&str]) -> Sample {
    Sample {
        text: text.into(),
        references: references.iter().map(|r| r.to_string()).collect(),
    }
}

/// Every sacreBLEU value of the golden file, through the plugin, bit for bit (Python 3.11).
#[test]
fn the_golden_bleu_values_through_the_plugin() {
    let golden = golden();
    let bleu = plugin("validator_bleu", "bleu");
    let corpus = [
        sample(
            "The cat sat on the mat.",
            &["The cat is sitting on the mat."],
        ),
        sample(
            "There is a dog in the garden!",
            &["There's a dog in the garden."],
        ),
        sample("Hello world", &["Hello there world"]),
    ];
    let mut checked = 0;
    for smooth in ["exp", "floor", "add-k", "none"] {
        for eff in [false, true] {
            let key = format!("corpus|{smooth}|eff={}", if eff { "True" } else { "False" });
            let want = &golden["sacrebleu"][&key];
            let config = json!({"smooth_method": smooth, "effective_order": eff}).to_string();
            let report = bleu.score(&corpus, Some(&config)).unwrap();
            assert_eq!(metric(&report.corpus, "bleu"), f(&want["score"]), "{key}");
            assert_eq!(metric(&report.corpus, "bleu-bp"), f(&want["bp"]), "{key}");
            for n in 1..=4 {
                let p = metric(&report.corpus, &format!("bleu-precision-{n}"));
                assert_eq!(p, f(&want["precisions"][n - 1]), "{key} precision {n}");
            }
            let signature = format!("bleu|{}", want["signature"].as_str().unwrap());
            assert!(
                report.corpus.iter().any(|m| m.name == signature),
                "{key}: {signature}"
            );
            checked += 1;
        }
    }
    let cases = [
        ("Hello world", "Hello there world", "Hello world"),
        (
            "Producția de zahăr primă va fi exprimată în ceea ce privește zahărul alb;",
            "producţia de zahăr brut se exprimă în zahăr alb;",
            "ro",
        ),
    ];
    for (hyp, reference, label) in cases {
        // (smoothing, smooth_value, how the golden key spells the value)
        for (smooth, value, value_key) in [
            ("exp", None, "None"),
            ("floor", None, "None"),
            ("floor", Some(0.5), "0.5"),
            ("add-k", None, "None"),
            ("add-k", Some(2.0), "2"),
            ("none", None, "None"),
        ] {
            let key = format!("sentence|{label}|{smooth}|{value_key}");
            let Some(want) = golden["sacrebleu"].get(&key) else {
                continue;
            };
            let config = json!({"smooth_method": smooth, "smooth_value": value}).to_string();
            let report = bleu
                .score(&[sample(hyp, &[reference])], Some(&config))
                .unwrap();
            assert_eq!(
                metric(&report.samples[0].scores, "bleu"),
                f(&want["score"]),
                "{key}"
            );
            checked += 1;
        }
    }
    let config = json!({"tokenize": "none", "smooth_method": "floor", "smooth_value": 0.1, "effective_order": true});
    let report = bleu.score(&corpus, Some(&config.to_string())).unwrap();
    let want = &golden["sacrebleu"]["corpus|tok=none|floor0.1|eff"]["score"];
    assert_eq!(metric(&report.corpus, "bleu"), f(want));
    let report = bleu.score(&corpus, Some(r#"{"lowercase": true}"#)).unwrap();
    assert_eq!(
        metric(&report.corpus, "bleu"),
        f(&golden["sacrebleu"]["corpus|lc|exp"]["score"])
    );
    assert_eq!(checked, 8 + 12);
}

/// The golden ROUGE values, with and without the stemmer, through the plugin.
#[test]
fn the_golden_rouge_values_through_the_plugin() {
    let golden = golden();
    let rouge = plugin("validator_rouge", "rouge");
    let pair = [sample(
        "The quick brown dog jumps on the log.\nThe fox ran quickly!",
        &["The quick brown fox jumps over the lazy dog.\nIt was running quickly."],
    )];
    for stem in [false, true] {
        let key = format!("stem={}", if stem { "True" } else { "False" });
        let config = json!({"use_stemmer": stem}).to_string();
        let report = rouge.score(&pair, Some(&config)).unwrap();
        for (rouge_type, want) in golden["rouge"][&key].as_object().unwrap() {
            for k in ["p", "r", "f"] {
                let name = format!("{rouge_type}-{k}");
                assert_eq!(
                    metric(&report.samples[0].scores, &name),
                    f(&want[k]),
                    "{key} {name}"
                );
            }
        }
    }
}
