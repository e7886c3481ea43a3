//! Seeded corpora of hypothesis/reference pairs. [`metric_pairs`] is adversarial, for checking
//! text metrics against their Python reference implementations: punctuation, Unicode,
//! numbers, HTML entities, line breaks, Python-only whitespace and empty strings, with
//! hypotheses that overlap their references partly (so every n-gram order and smoothing path
//! is exercised). [`prose_pairs`] is plain English sentences, what a dataset mostly holds.

/// One hypothesis with its references (one to three).
#[derive(Clone, Debug)]
pub struct Pair {
    pub hyp: String,
    pub refs: Vec<String>,
}

const WORDS: &[&str] = &[
    "the",
    "cat",
    "sat",
    "on",
    "mat",
    "dog",
    "running",
    "runs",
    "ran",
    "quickly",
    "garden",
    "house",
    "it's",
    "don't",
    "U.S.A.",
    "e.g.",
    "3.5",
    "1,000.00",
    "$20",
    "12-3",
    "50%",
    "café",
    "naïve",
    "Producția",
    "zahăr",
    "über",
    "日本語",
    "東京",
    "emoji🙂",
    "Straße",
    "ﬁne",
    "İstanbul",
    "KELVIN",
    "a&amp;b",
    "&lt;tag&gt;",
    "&quot;q&quot;",
    "(x)",
    "[y]",
    "{z}",
    "x/y",
    "--",
    "—",
    "…",
    "!",
    "?",
    ";",
    ":",
    ",",
    ".",
    "\"",
    "'",
    "#hash",
    "@user",
    "co-operate",
    "well-known",
    "v1.2.3",
    "2024-01-15",
    "generalizations",
    "relational",
    "ponies",
    "caresses",
    "skies",
    "dying",
    "innings",
    "news",
    "police",
    "killed",
    "gunman",
    "A",
    "THE",
    "Cat",
    "Dog",
];

/// Separators between words: mostly spaces, sometimes Python-only whitespace or a newline.
const SEPARATORS: &[&str] = &[
    " ", " ", " ", " ", " ", " ", "  ", "\t", "\n", "\u{1c}", "\u{a0}",
];

/// xorshift64*: small, seeded, good enough to vary test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// `n` pairs from `seed`.
pub fn metric_pairs(n: usize, seed: u64) -> Vec<Pair> {
    let mut rng = Rng(seed.max(1));
    (0..n).map(|_| pair(&mut rng)).collect()
}

fn pair(rng: &mut Rng) -> Pair {
    let base: Vec<&str> = (0..rng.below(30)).map(|_| rng.pick(WORDS)).collect();
    let mut refs = Vec::new();
    for _ in 0..1 + rng.below(3) {
        let words = perturb(rng, &base);
        refs.push(join(rng, &words));
    }
    // Now and then an empty hypothesis, or one unrelated to its references.
    let words = match rng.below(20) {
        0 => Vec::new(),
        1 => (0..rng.below(12)).map(|_| rng.pick(WORDS)).collect(),
        _ => perturb(rng, &base),
    };
    let hyp = join(rng, &words);
    Pair { hyp, refs }
}

/// `words` with some dropped, replaced, swapped or added.
fn perturb<'a>(rng: &mut Rng, words: &[&'a str]) -> Vec<&'a str> {
    let mut out = Vec::with_capacity(words.len() + 2);
    for &w in words {
        match rng.below(10) {
            0 => {}
            1 => out.push(rng.pick(WORDS)),
            2 => {
                out.push(w);
                out.push(rng.pick(WORDS));
            }
            _ => out.push(w),
        }
    }
    if out.len() > 1 && rng.below(3) == 0 {
        let i = rng.below(out.len() - 1);
        out.swap(i, i + 1);
    }
    out
}

fn join(rng: &mut Rng, words: &[&str]) -> String {
    let mut text = String::new();
    for (i, w) in words.iter().enumerate() {
        if i > 0 {
            text.push_str(rng.pick(SEPARATORS));
        }
        text.push_str(w);
    }
    // Trailing whitespace: sacreBLEU strips it, rouge-score splits on it.
    if rng.below(8) == 0 {
        text.push_str(rng.pick(SEPARATORS));
    }
    text
}

const PROSE: &[&str] = &[
    "the",
    "a",
    "of",
    "to",
    "and",
    "in",
    "is",
    "that",
    "for",
    "it",
    "with",
    "as",
    "was",
    "on",
    "be",
    "by",
    "this",
    "are",
    "from",
    "at",
    "or",
    "an",
    "have",
    "not",
    "they",
    "which",
    "we",
    "model",
    "data",
    "system",
    "users",
    "results",
    "method",
    "training",
    "language",
    "text",
    "new",
    "large",
    "small",
    "first",
    "each",
    "more",
    "most",
    "other",
    "some",
    "time",
    "work",
    "used",
    "shows",
    "improves",
    "generates",
    "reports",
    "answers",
    "question",
    "customer",
    "order",
    "product",
    "service",
    "review",
    "quality",
    "price",
    "delivery",
    "support",
    "team",
    "weather",
    "city",
    "river",
    "market",
    "school",
    "student",
    "teacher",
    "book",
    "story",
    "quickly",
    "carefully",
    "really",
    "also",
    "only",
    "very",
    "often",
    "never",
    "always",
];

/// `n` pairs of plain English sentences (10 to 30 words, commas, a full stop or a question
/// mark) from `seed`, each with one reference that rewords it slightly.
pub fn prose_pairs(n: usize, seed: u64) -> Vec<Pair> {
    let mut rng = Rng(seed.max(1));
    (0..n)
        .map(|_| {
            let words: Vec<&str> = (0..10 + rng.below(21)).map(|_| rng.pick(PROSE)).collect();
            let reference = perturb(&mut rng, &words);
            Pair {
                hyp: sentence(&mut rng, &words),
                refs: vec![sentence(&mut rng, &reference)],
            }
        })
        .collect()
}

fn sentence(rng: &mut Rng, words: &[&str]) -> String {
    let mut text = String::new();
    for (i, w) in words.iter().enumerate() {
        if i == 0 {
            let mut chars = w.chars();
            text.extend(chars.next().map(|c| c.to_ascii_uppercase()));
            text.push_str(chars.as_str());
            continue;
        }
        text.push_str(if rng.below(9) == 0 { ", " } else { " " });
        text.push_str(w);
    }
    text.push(if rng.below(5) == 0 { '?' } else { '.' });
    text
}
