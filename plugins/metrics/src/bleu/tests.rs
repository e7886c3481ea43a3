//! Golden values from `shared/golden/metrics/reference_py311.json` (sacrebleu 2.6.0 on Python
//! 3.11.7; key named at each test), compared bit for bit, plus the upstream test vectors of
//! sacreBLEU's `test/test_sentence_bleu.py`.

use super::*;

const HYPS: [&str; 3] = [
    "The cat sat on the mat.",
    "There is a dog in the garden!",
    "Hello world",
];
const REFS: [[&str; 1]; 3] = [
    ["The cat is sitting on the mat."],
    ["There's a dog in the garden."],
    ["Hello there world"],
];
const RO_SYS: &str = "Producția de zahăr primă va fi exprimată în ceea ce privește zahărul alb;";
const RO_REF: &str = "producţia de zahăr brut se exprimă în zahăr alb;";

fn bleu(config: BleuConfig) -> Bleu {
    Bleu::new(config).unwrap()
}

fn corpus(config: BleuConfig) -> BleuScore {
    bleu(config).corpus_score(&HYPS, &REFS)
}

fn sentence(smoothing: Smoothing, hyp: &str, reference: &str) -> BleuScore {
    let config = BleuConfig {
        smoothing,
        effective_order: true,
        ..BleuConfig::default()
    };
    bleu(config).sentence_score(hyp, &[reference])
}

#[test]
fn corpus_scores_match_the_golden_values() {
    // Keys "corpus|<method>|eff=<False|True>".
    let plain = (
        47.82790714816793,
        [13.0, 8.0, 5.0, 3.0],
        [17.0, 14.0, 11.0, 9.0],
        [
            76.47058823529412,
            57.142857142857146,
            45.45454545454545,
            33.333333333333336,
        ],
    );
    let add_k = (
        51.894601938873194,
        [13.0, 9.0, 6.0, 4.0],
        [17.0, 15.0, 12.0, 10.0],
        [76.47058823529412, 60.0, 50.0, 40.0],
    );
    let cases = [
        (Smoothing::Exp, "exp", plain),
        (Smoothing::Floor(0.1), "floor[0.10]", plain),
        (Smoothing::AddK(1.0), "add-k[1.00]", add_k),
        (Smoothing::None, "none", plain),
    ];
    for (smoothing, smooth_sig, (score, counts, totals, precisions)) in cases {
        for effective_order in [false, true] {
            let config = BleuConfig {
                smoothing,
                effective_order,
                ..BleuConfig::default()
            };
            let s = corpus(config);
            assert_eq!(s.score, score, "{smooth_sig} {effective_order}");
            assert_eq!(s.counts, counts);
            assert_eq!(s.totals, totals);
            assert_eq!(s.precisions, precisions);
            assert_eq!(s.bp, 0.9428731438548749);
            assert_eq!((s.sys_len, s.ref_len), (17, 18));
            let eff = if effective_order { "yes" } else { "no" };
            assert_eq!(
                bleu(config).signature(uniform_ref_count(REFS.iter().map(|r| r.len()))),
                format!("nrefs:1|case:mixed|eff:{eff}|tok:13a|smooth:{smooth_sig}|version:2.6.0")
            );
        }
    }
}

#[test]
fn corpus_variants_match_the_golden_values() {
    // "corpus|tok=none|floor0.1|eff"
    let s = corpus(BleuConfig {
        tokenize: Tokenize::None,
        smoothing: Smoothing::Floor(0.1),
        effective_order: true,
        ..BleuConfig::default()
    });
    assert_eq!(s.score, 34.006353767595556);
    // "corpus|lc|exp"
    let config = BleuConfig {
        lowercase: true,
        ..BleuConfig::default()
    };
    assert_eq!(corpus(config).score, 47.82790714816793);
    assert_eq!(
        bleu(config).signature(Some(1)),
        "nrefs:1|case:lc|eff:no|tok:13a|smooth:exp|version:2.6.0"
    );
}

#[test]
fn sentence_scores_match_the_golden_values() {
    // Keys "sentence|Hello world|<method>|<value>" and "sentence|ro|<method>|<value>".
    let cases = [
        (
            Smoothing::Exp,
            42.88819424803536,
            [100.0, 50.0, 0.0, 0.0],
            8.493098745313148,
        ),
        (
            Smoothing::Floor(0.1),
            19.180183554164504,
            [100.0, 10.0, 0.0, 0.0],
            4.516881220954753,
        ),
        (
            Smoothing::Floor(0.5),
            42.88819424803536,
            [100.0, 50.0, 0.0, 0.0],
            10.100053456347073,
        ),
        (
            Smoothing::AddK(1.0),
            51.0029457493824,
            [100.0, 50.0, 100.0, 100.0],
            14.882560178972215,
        ),
        (
            Smoothing::AddK(2.0),
            54.80623193671369,
            [100.0, 66.66666666666667, 100.0, 100.0],
            21.389460275371086,
        ),
        (Smoothing::None, 0.0, [100.0, 0.0, 0.0, 0.0], 0.0),
    ];
    for (smoothing, hello, precisions, ro) in cases {
        let s = sentence(smoothing, "Hello world", "Hello there world");
        assert_eq!(s.score, hello, "{smoothing:?}");
        assert_eq!(s.precisions, precisions, "{smoothing:?}");
        assert_eq!(s.bp, 0.6065306597126334);
        assert_eq!(
            sentence(smoothing, RO_SYS, RO_REF).score,
            ro,
            "{smoothing:?}"
        );
    }
}

#[test]
fn python_312_values_agree_to_1e12() {
    // reference_py312.json: the same keys under Python 3.12's compensated `sum()`.
    let close = |a: f64, b: f64| ((a - b) / b).abs() < 1e-12;
    let add_k = corpus(BleuConfig {
        smoothing: Smoothing::AddK(1.0),
        ..BleuConfig::default()
    });
    assert!(close(add_k.score, 51.89460193887315));
    assert!(close(
        sentence(Smoothing::Exp, RO_SYS, RO_REF).score,
        8.493098745313143
    ));
    let floor = corpus(BleuConfig {
        tokenize: Tokenize::None,
        smoothing: Smoothing::Floor(0.1),
        effective_order: true,
        ..BleuConfig::default()
    });
    assert!(close(floor.score, 34.00635376759554));
}

#[test]
fn upstream_sentence_vectors() {
    // sacreBLEU test/test_sentence_bleu.py (tolerance 1e-3, effective order).
    let score = |tokenize, lowercase| {
        let config = BleuConfig {
            tokenize,
            lowercase,
            effective_order: true,
            ..BleuConfig::default()
        };
        bleu(config).sentence_score(RO_SYS, &[RO_REF]).score
    };
    assert!((score(Tokenize::None, false) - 7.347).abs() < 1e-3);
    assert!((score(Tokenize::Char, false) - 40.8759).abs() < 1e-3);
    assert!((score(Tokenize::Char, true) - 42.0267).abs() < 1e-3);
    for smoothing in [
        Smoothing::Exp,
        Smoothing::Floor(0.1),
        Smoothing::AddK(1.0),
        Smoothing::None,
    ] {
        assert_eq!(
            sentence(smoothing, "this is a cat", "okay thanks").score,
            0.0
        );
    }
}

#[test]
fn identical_sentence_scores_python_s_100() {
    let s = sentence(Smoothing::Exp, "a b c d e", "a b c d e");
    assert_eq!(s.score, 100.00000000000004);
}

#[test]
fn without_effective_order_short_segments_score_zero() {
    let mut b = bleu(BleuConfig::default());
    let s = b.sentence_score("Hello world", &["Hello there world"]);
    assert_eq!(s.score, 0.0);
    assert_eq!(s.precisions, [100.0, 50.0, 0.0, 0.0]);
}

#[test]
fn multiple_references_merge_by_max_and_pick_the_closest_length() {
    let mut b = bleu(BleuConfig::default());
    // "a a" is clipped to 2 by the second reference; lengths 1 and 3 tie for 2: the shorter.
    let stats = b.segment_stats("a a", &["a", "a a x"]);
    assert_eq!((stats.sys_len, stats.ref_len), (2, 1));
    assert_eq!(stats.correct[..2], [2, 1]);
    assert_eq!(stats.total[..2], [2, 1]);
    let stats = b.segment_stats("a a", &["a x", "x a"]);
    assert_eq!(stats.correct[..2], [1, 0]);
    // Variable reference counts print as "var".
    assert_eq!(uniform_ref_count([1, 2]), None);
    assert_eq!(uniform_ref_count([]), None);
    assert_eq!(uniform_ref_count([3, 3]), Some(3));
    assert!(b.signature(None).starts_with("nrefs:var|"));
}

#[test]
fn degenerate_inputs_do_not_panic() {
    let mut b = bleu(BleuConfig {
        max_ngram_order: MAX_NGRAM_ORDER,
        ..BleuConfig::default()
    });
    let empty: [&str; 0] = [];
    assert_eq!(b.sentence_score("", &[""]).score, 0.0);
    assert_eq!(b.sentence_score("x", &empty).score, 0.0);
    assert_eq!(b.corpus_score::<&str, [&str; 1], &str>(&[], &[]).score, 0.0);
    let long = "w ".repeat(50);
    assert!(b.sentence_score(&long, &[&long]).score > 99.0);
    assert!(b.sentence_score("ß ǅ 𝔘 \u{1c}", &["ß"]).score.is_finite());
}

#[test]
fn bad_configs_are_refused() {
    let with = |max_ngram_order, smoothing| {
        Bleu::new(BleuConfig {
            max_ngram_order,
            smoothing,
            ..BleuConfig::default()
        })
        .err()
    };
    assert_eq!(
        with(0, Smoothing::Exp),
        Some(BleuConfigError::NgramOrder(0))
    );
    assert_eq!(
        with(10, Smoothing::Exp),
        Some(BleuConfigError::NgramOrder(10))
    );
    assert!(with(4, Smoothing::Floor(f64::NAN)).is_some());
    assert!(with(4, Smoothing::AddK(-1.0)).is_some());
    assert_eq!(with(9, Smoothing::AddK(0.0)), None);
    assert_eq!(
        Smoothing::from_name("add-k", None),
        Some(Smoothing::AddK(1.0))
    );
    assert_eq!(Smoothing::from_name("exp", Some(3.0)), Some(Smoothing::Exp));
    assert_eq!(Smoothing::from_name("bogus", None), None);
}
