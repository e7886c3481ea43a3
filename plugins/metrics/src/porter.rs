//! NLTK's Porter stemmer (`nltk.stem.porter.PorterStemmer`, NLTK 3.10.4), reproduced exactly.
//!
//! rouge-score's `use_stemmer=True` builds `PorterStemmer()` in its default
//! [`Mode::NltkExtensions`], so ROUGE with stemming only matches the Python numbers when every
//! quirk of that mode is reproduced: the irregular-forms pool, the "words of two letters or fewer
//! are kept" rule, and the NLTK variants of steps 1a, 1b, 1c, 2 and of the `*o` condition. An
//! off-the-shelf Snowball (Porter2) stemmer gives different stems.
//!
//! Like Python, the algorithm works on Unicode scalar values: `len(word)` and `word[i]` count
//! characters, not bytes. Every suffix the rules look for is ASCII, so an ASCII word (the only
//! kind rouge-score's tokenizer produces) is stemmed in place in its byte buffer; other words go
//! through a `Vec<char>`.

/// Which variant of the algorithm to run (NLTK's `mode` argument).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// NLTK's default: Martin Porter's extensions plus NLTK's own (`NLTK_EXTENSIONS`).
    #[default]
    NltkExtensions,
    /// Only the changes found in Martin Porter's own implementations (`MARTIN_EXTENSIONS`).
    MartinExtensions,
    /// The algorithm as published in 1980 (`ORIGINAL_ALGORITHM`).
    OriginalAlgorithm,
}

/// NLTK_EXTENSIONS' irregular forms: looked up (after lowercasing) before any rule runs.
const IRREGULAR_FORMS: &[(&str, &str)] = &[
    ("sky", "sky"),
    ("skies", "sky"),
    ("dying", "die"),
    ("lying", "lie"),
    ("tying", "tie"),
    ("news", "news"),
    ("innings", "inning"),
    ("inning", "inning"),
    ("outings", "outing"),
    ("outing", "outing"),
    ("cannings", "canning"),
    ("canning", "canning"),
    ("howe", "howe"),
    ("proceed", "proceed"),
    ("exceed", "exceed"),
    ("succeed", "succeed"),
];

/// A Porter stemmer in one of NLTK's three modes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PorterStemmer {
    mode: Mode,
}

impl PorterStemmer {
    /// A stemmer running `mode`.
    pub fn new(mode: Mode) -> PorterStemmer {
        PorterStemmer { mode }
    }

    /// The mode this stemmer runs.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The stem of `word`, as NLTK's `PorterStemmer(mode).stem(word)` returns it: lowercased
    /// first (Python's `str.lower()`), then stemmed. Allocates only the returned `String` for
    /// an ASCII word.
    pub fn stem(&self, word: &str) -> String {
        let mut lower = if word.is_ascii() {
            word.to_ascii_lowercase()
        } else {
            // Full Unicode lowercasing, as Python's: U+0130 becomes "i\u{307}", U+212A a plain
            // "k", and a final sigma "ς".
            word.to_lowercase()
        };
        if self.mode == Mode::NltkExtensions
            && let Some(&(_, base)) = IRREGULAR_FORMS.iter().find(|(form, _)| *form == lower)
        {
            lower.clear();
            lower.push_str(base);
            return lower;
        }
        // NLTK measures the word as given, not its lowercase (they differ in length for U+0130).
        if self.mode != Mode::OriginalAlgorithm && word.chars().count() <= 2 {
            return lower;
        }
        if lower.is_ascii() {
            let mut letters = AsciiLetters(lower);
            self.run_steps(&mut letters);
            letters.0
        } else {
            let mut letters: Vec<char> = lower.chars().collect();
            self.run_steps(&mut letters);
            letters.into_iter().collect()
        }
    }

    fn run_steps(&self, w: &mut impl Letters) {
        self.step1a(w);
        self.step1b(w);
        self.step1c(w);
        self.step2(w);
        step3(w);
        step4(w);
        step5a(self.mode, w);
        step5b(w);
    }

    /// SSES → SS, IES → I, SS → SS, S → "" (NLTK: a four-letter "ies" word keeps "ie").
    fn step1a(&self, w: &mut impl Letters) {
        if self.mode == Mode::NltkExtensions && w.len() == 4 && w.ends_with("ies") {
            w.replace_suffix(3, "ie");
            return;
        }
        apply_first_rule(
            w,
            &[
                ("sses", "ss", always),
                ("ies", "i", always),
                ("ss", "ss", always),
                ("s", "", always),
            ],
        );
    }

    /// (m>0) EED → EE; (*v*) ED → ""; (*v*) ING → "", then the clean-ups of the stem.
    fn step1b(&self, w: &mut impl Letters) {
        if self.mode == Mode::NltkExtensions && w.ends_with("ied") {
            let replacement = if w.len() == 4 { "ie" } else { "i" };
            w.replace_suffix(3, replacement);
            return;
        }
        if w.ends_with("eed") {
            if measure(w, w.len() - 3) > 0 {
                w.truncate(w.len() - 1);
            }
            return;
        }
        // NLTK tries "ed" then "ing" and takes the first whose stem has a vowel.
        let Some(suffix_len) = [2, 3].into_iter().find(|&n| {
            let suffix = if n == 2 { "ed" } else { "ing" };
            w.ends_with(suffix) && contains_vowel(w, w.len() - n)
        }) else {
            return;
        };
        w.truncate(w.len() - suffix_len);
        let len = w.len();
        if w.ends_with("at") || w.ends_with("bl") || w.ends_with("iz") {
            w.push_str("e");
        } else if ends_double_consonant(w, len) || w.ends_with("*d") {
            // The `*d` rule: NLTK's rule list also matches the literal suffix "*d" (its rule
            // marker), which only a word containing '*' can reach; kept for exactness.
            let last = w.at(len - 1);
            if !matches!(last, 'l' | 's' | 'z') {
                w.truncate(len - 2);
                w.push(last);
            }
        } else if measure(w, len) == 1 && ends_cvc(self.mode, w, len) {
            w.push_str("e");
        }
    }

    /// Y → I when the stem qualifies: NLTK wants a consonant before the Y (and more than one
    /// letter), the other modes a vowel anywhere in the stem.
    fn step1c(&self, w: &mut impl Letters) {
        if !w.ends_with("y") {
            return;
        }
        let stem = w.len() - 1;
        let qualifies = if self.mode == Mode::NltkExtensions {
            stem > 1 && is_consonant(w, stem - 1)
        } else {
            contains_vowel(w, stem)
        };
        if qualifies {
            w.replace_suffix(1, "i");
        }
    }

    /// The (m>0) double-suffix rules (ATIONAL → ATE, …).
    fn step2<W: Letters>(&self, w: &mut W) {
        // NLTK first turns a qualifying ALLI into AL and runs step 2 again on the result.
        if self.mode == Mode::NltkExtensions && w.ends_with("alli") && measure(w, w.len() - 4) > 0 {
            w.truncate(w.len() - 2);
        }
        let bli: Rule<W> = if self.mode == Mode::OriginalAlgorithm {
            ("abli", "able", positive_measure)
        } else {
            ("bli", "ble", positive_measure)
        };
        let common: [Rule<W>; 20] = [
            ("ational", "ate", positive_measure),
            ("tional", "tion", positive_measure),
            ("enci", "ence", positive_measure),
            ("anci", "ance", positive_measure),
            ("izer", "ize", positive_measure),
            bli,
            ("alli", "al", positive_measure),
            ("entli", "ent", positive_measure),
            ("eli", "e", positive_measure),
            ("ousli", "ous", positive_measure),
            ("ization", "ize", positive_measure),
            ("ation", "ate", positive_measure),
            ("ator", "ate", positive_measure),
            ("alism", "al", positive_measure),
            ("iveness", "ive", positive_measure),
            ("fulness", "ful", positive_measure),
            ("ousness", "ous", positive_measure),
            ("aliti", "al", positive_measure),
            ("iviti", "ive", positive_measure),
            ("biliti", "ble", positive_measure),
        ];
        if apply_first_rule(w, &common) != Applied::NoMatch {
            return;
        }
        match self.mode {
            Mode::NltkExtensions => {
                // NLTK's LOGI rule measures the stem with its "l" ("...l" + "ogi").
                let extra: [Rule<W>; 2] = [
                    ("fulli", "ful", positive_measure),
                    ("logi", "log", |w, stem| measure(w, stem + 1) > 0),
                ];
                apply_first_rule(w, &extra);
            }
            Mode::MartinExtensions => {
                apply_first_rule(w, &[("logi", "log", positive_measure)]);
            }
            Mode::OriginalAlgorithm => {}
        }
    }
}

/// (m>0) ICATE → IC, ATIVE → "", ALIZE → AL, ICITI → IC, ICAL → IC, FUL → "", NESS → "".
fn step3(w: &mut impl Letters) {
    apply_first_rule(
        w,
        &[
            ("icate", "ic", positive_measure),
            ("ative", "", positive_measure),
            ("alize", "al", positive_measure),
            ("iciti", "ic", positive_measure),
            ("ical", "ic", positive_measure),
            ("ful", "", positive_measure),
            ("ness", "", positive_measure),
        ],
    );
}

/// (m>1) removal of AL, ANCE, …, IZE; ION only after S or T.
fn step4<W: Letters>(w: &mut W) {
    let rules: [Rule<W>; 19] = [
        ("al", "", measure_above_one),
        ("ance", "", measure_above_one),
        ("ence", "", measure_above_one),
        ("er", "", measure_above_one),
        ("ic", "", measure_above_one),
        ("able", "", measure_above_one),
        ("ible", "", measure_above_one),
        ("ant", "", measure_above_one),
        ("ement", "", measure_above_one),
        ("ment", "", measure_above_one),
        ("ent", "", measure_above_one),
        ("ion", "", |w, stem| {
            measure(w, stem) > 1 && matches!(w.at(stem - 1), 's' | 't')
        }),
        ("ou", "", measure_above_one),
        ("ism", "", measure_above_one),
        ("ate", "", measure_above_one),
        ("iti", "", measure_above_one),
        ("ous", "", measure_above_one),
        ("ive", "", measure_above_one),
        ("ize", "", measure_above_one),
    ];
    apply_first_rule(w, &rules);
}

/// (m>1) E → ""; (m=1 and not *o) E → "".
fn step5a(mode: Mode, w: &mut impl Letters) {
    if !w.ends_with("e") {
        return;
    }
    let stem = w.len() - 1;
    let m = measure(w, stem);
    if m > 1 || (m == 1 && !ends_cvc(mode, w, stem)) {
        w.truncate(stem);
    }
}

/// (m>1 and *d and *L) → single letter. NLTK measures the word less one "l".
fn step5b(w: &mut impl Letters) {
    if w.ends_with("ll") && measure(w, w.len() - 1) > 1 {
        w.truncate(w.len() - 1);
    }
}

/// A rule: suffix, replacement, and the condition on the word's first `stem` letters.
type Rule<W> = (&'static str, &'static str, fn(&W, usize) -> bool);

#[derive(Debug, PartialEq, Eq)]
enum Applied {
    NoMatch,
    Replaced,
    Refused,
}

/// NLTK's `_apply_rule_list`: the first rule whose suffix matches decides, whether or not its
/// condition holds; later rules are not tried.
fn apply_first_rule<W: Letters>(w: &mut W, rules: &[Rule<W>]) -> Applied {
    for &(suffix, replacement, condition) in rules {
        if w.ends_with(suffix) {
            let stem = w.len() - suffix.len();
            if condition(w, stem) {
                w.replace_suffix(suffix.len(), replacement);
                return Applied::Replaced;
            }
            return Applied::Refused;
        }
    }
    Applied::NoMatch
}

fn always<W: Letters>(_: &W, _: usize) -> bool {
    true
}

fn positive_measure<W: Letters>(w: &W, stem: usize) -> bool {
    measure(w, stem) > 0
}

fn measure_above_one<W: Letters>(w: &W, stem: usize) -> bool {
    measure(w, stem) > 1
}

fn is_vowel(c: char) -> bool {
    matches!(c, 'a' | 'e' | 'i' | 'o' | 'u')
}

/// Whether letter `i` is a consonant: not a vowel, and a Y only after a vowel-class letter (or
/// at the start). Y runs alternate, so walk back to the start of the run.
fn is_consonant(w: &impl Letters, i: usize) -> bool {
    let c = w.at(i);
    if is_vowel(c) {
        return false;
    }
    if c != 'y' {
        return true;
    }
    let mut j = i;
    let mut negate = false;
    while j > 0 && w.at(j) == 'y' {
        negate = !negate;
        j -= 1;
    }
    // The letter before the run decides the first Y; each further Y flips it.
    is_vowel(w.at(j)) == negate
}

/// Consonant (true) or vowel for each of the first `len` letters, in one left-to-right pass:
/// a Y is a consonant at the start or after a vowel. (NLTK also does this in one pass, since
/// walking back over Y runs at every position is quadratic.)
fn consonant_flags(w: &impl Letters, len: usize) -> impl Iterator<Item = bool> + '_ {
    let mut previous_consonant = true;
    (0..len).map(move |i| {
        let c = w.at(i);
        let consonant = !is_vowel(c) && (c != 'y' || i == 0 || !previous_consonant);
        previous_consonant = consonant;
        consonant
    })
}

/// The measure m of the first `len` letters: the number of vowel→consonant transitions.
fn measure(w: &impl Letters, len: usize) -> usize {
    let mut previous_consonant = true;
    consonant_flags(w, len)
        .filter(|&consonant| {
            let transition = consonant && !previous_consonant;
            previous_consonant = consonant;
            transition
        })
        .count()
}

/// `*v*`: the first `len` letters contain a vowel.
fn contains_vowel(w: &impl Letters, len: usize) -> bool {
    consonant_flags(w, len).any(|consonant| !consonant)
}

/// `*d`: the first `len` letters end in a doubled consonant.
fn ends_double_consonant(w: &impl Letters, len: usize) -> bool {
    len >= 2 && w.at(len - 1) == w.at(len - 2) && is_consonant(w, len - 1)
}

/// `*o`: the first `len` letters end consonant-vowel-consonant, the last not W, X or Y. NLTK
/// also accepts a two-letter vowel-consonant stem.
fn ends_cvc(mode: Mode, w: &impl Letters, len: usize) -> bool {
    (len >= 3
        && is_consonant(w, len - 3)
        && !is_consonant(w, len - 2)
        && is_consonant(w, len - 1)
        && !matches!(w.at(len - 1), 'w' | 'x' | 'y'))
        || (mode == Mode::NltkExtensions && len == 2 && !is_consonant(w, 0) && is_consonant(w, 1))
}

/// The word being stemmed, indexed by letter. The rules only ever remove or append ASCII
/// suffixes, or re-append one of the word's own letters.
trait Letters {
    fn len(&self) -> usize;
    fn at(&self, i: usize) -> char;
    fn truncate(&mut self, len: usize);
    fn push(&mut self, c: char);

    fn push_str(&mut self, ascii: &str) {
        ascii.chars().for_each(|c| self.push(c));
    }

    fn ends_with(&self, suffix: &str) -> bool {
        let (len, n) = (self.len(), suffix.len());
        n <= len
            && suffix
                .bytes()
                .enumerate()
                .all(|(k, b)| self.at(len - n + k) == b as char)
    }

    /// Replaces the last `n` letters (a matched ASCII suffix) with `replacement`.
    fn replace_suffix(&mut self, n: usize, replacement: &str) {
        self.truncate(self.len() - n);
        self.push_str(replacement);
    }
}

/// An all-ASCII word: letters are bytes, and stay ASCII since only ASCII is ever appended.
struct AsciiLetters(String);

impl Letters for AsciiLetters {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn at(&self, i: usize) -> char {
        char::from(self.0.as_bytes()[i])
    }
    fn truncate(&mut self, len: usize) {
        self.0.truncate(len);
    }
    fn push(&mut self, c: char) {
        self.0.push(c);
    }
    fn push_str(&mut self, ascii: &str) {
        self.0.push_str(ascii);
    }
}

impl Letters for Vec<char> {
    fn len(&self) -> usize {
        <[char]>::len(self)
    }
    fn at(&self, i: usize) -> char {
        self[i]
    }
    fn truncate(&mut self, len: usize) {
        Vec::truncate(self, len);
    }
    fn push(&mut self, c: char) {
        Vec::push(self, c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `porter_nltk_ext` and `porter_original` of `shared/golden/metrics/reference_py311.json`.
    #[test]
    fn matches_the_reference_goldens() {
        let nltk = PorterStemmer::default();
        let original = PorterStemmer::new(Mode::OriginalAlgorithm);
        for (word, nltk_stem, original_stem) in [
            ("caresses", "caress", "caress"),
            ("ponies", "poni", "poni"),
            ("ties", "tie", "ti"),
            ("caress", "caress", "caress"),
            ("cats", "cat", "cat"),
            ("feed", "feed", "feed"),
            ("agreed", "agre", "agre"),
            ("plastered", "plaster", "plaster"),
            ("motoring", "motor", "motor"),
            ("sing", "sing", "sing"),
            ("conflated", "conflat", "conflat"),
            ("troubled", "troubl", "troubl"),
            ("sized", "size", "size"),
            ("hopping", "hop", "hop"),
            ("falling", "fall", "fall"),
            ("hissing", "hiss", "hiss"),
            ("filing", "file", "file"),
            ("happy", "happi", "happi"),
            ("sky", "sky", "sky"),
            ("skies", "sky", "ski"),
            ("dying", "die", "dy"),
            ("lying", "lie", "ly"),
            ("news", "news", "new"),
            ("innings", "inning", "in"),
            ("generalizations", "gener", "gener"),
            ("oscillators", "oscil", "oscil"),
            ("relational", "relat", "relat"),
            ("running", "run", "run"),
            ("quickly", "quickli", "quickli"),
            ("was", "wa", "wa"),
            ("its", "it", "it"),
            ("ran", "ran", "ran"),
            ("dogs", "dog", "dog"),
        ] {
            assert_eq!(nltk.stem(word), nltk_stem, "{word}");
            assert_eq!(original.stem(word), original_stem, "{word}");
        }
    }

    #[test]
    fn matches_nltk_in_every_mode() {
        let stemmers = [
            PorterStemmer::new(Mode::NltkExtensions),
            PorterStemmer::new(Mode::MartinExtensions),
            PorterStemmer::new(Mode::OriginalAlgorithm),
        ];
        for &(word, nltk, martin, original) in EXPECTED {
            for (stemmer, expected) in stemmers.iter().zip([nltk, martin, original]) {
                assert_eq!(
                    stemmer.stem(word),
                    expected,
                    "{word:?} in {:?}",
                    stemmer.mode()
                );
            }
        }
    }

    #[test]
    fn survives_hostile_words() {
        // Expected values from NLTK (identical in the three modes).
        let long_y = "y".repeat(10_000);
        let long_y_stem = format!("{}i", "y".repeat(9_999));
        for stemmer in [
            Mode::NltkExtensions,
            Mode::MartinExtensions,
            Mode::OriginalAlgorithm,
        ]
        .map(PorterStemmer::new)
        {
            for (word, expected) in [
                (long_y.as_str(), long_y_stem.as_str()),
                ("yyyyyyyying", "yyyyyyyi"),
                ("\u{0}\u{0}ing", "\u{0}\u{0}ing"),
                ("***d", "***d"),
                ("eed", "eed"),
                ("ied", "i"),
            ] {
                assert_eq!(stemmer.stem(word), expected, "{:?}", stemmer.mode());
            }
        }
    }

    /// Word, then its stem in the NLTK_EXTENSIONS, MARTIN_EXTENSIONS and ORIGINAL_ALGORITHM
    /// modes of NLTK 3.10.4 (Python 3.11.7). Regenerated with
    /// `python3 -m venv /tmp/nltkvenv && /tmp/nltkvenv/bin/pip install nltk==3.10.4`, then for
    /// each word `w`: `[PorterStemmer(m).stem(w) for m in (PorterStemmer.NLTK_EXTENSIONS,
    /// PorterStemmer.MARTIN_EXTENSIONS, PorterStemmer.ORIGINAL_ALGORITHM)]`.
    const EXPECTED: &[(&str, &str, &str, &str)] = &[
        ("caresses", "caress", "caress", "caress"),
        ("ponies", "poni", "poni", "poni"),
        ("ties", "tie", "ti", "ti"),
        ("caress", "caress", "caress", "caress"),
        ("cats", "cat", "cat", "cat"),
        ("feed", "feed", "feed", "feed"),
        ("agreed", "agre", "agre", "agre"),
        ("plastered", "plaster", "plaster", "plaster"),
        ("motoring", "motor", "motor", "motor"),
        ("sing", "sing", "sing", "sing"),
        ("conflated", "conflat", "conflat", "conflat"),
        ("troubled", "troubl", "troubl", "troubl"),
        ("sized", "size", "size", "size"),
        ("hopping", "hop", "hop", "hop"),
        ("falling", "fall", "fall", "fall"),
        ("hissing", "hiss", "hiss", "hiss"),
        ("filing", "file", "file", "file"),
        ("happy", "happi", "happi", "happi"),
        ("sky", "sky", "sky", "sky"),
        ("skies", "sky", "ski", "ski"),
        ("dying", "die", "dy", "dy"),
        ("lying", "lie", "ly", "ly"),
        ("tying", "tie", "ty", "ty"),
        ("news", "news", "new", "new"),
        ("innings", "inning", "in", "in"),
        ("inning", "inning", "in", "in"),
        ("outings", "outing", "out", "out"),
        ("outing", "outing", "out", "out"),
        ("cannings", "canning", "can", "can"),
        ("canning", "canning", "can", "can"),
        ("howe", "howe", "how", "how"),
        ("proceed", "proceed", "proce", "proce"),
        ("exceed", "exceed", "exce", "exce"),
        ("succeed", "succeed", "succe", "succe"),
        ("generalizations", "gener", "gener", "gener"),
        ("oscillators", "oscil", "oscil", "oscil"),
        ("relational", "relat", "relat", "relat"),
        ("running", "run", "run", "run"),
        ("quickly", "quickli", "quickli", "quickli"),
        ("was", "wa", "wa", "wa"),
        ("its", "it", "it", "it"),
        ("ran", "ran", "ran", "ran"),
        ("dogs", "dog", "dog", "dog"),
        ("a", "a", "a", "a"),
        ("i", "i", "i", "i"),
        ("as", "as", "as", "a"),
        ("is", "is", "is", "i"),
        ("us", "us", "us", "u"),
        ("at", "at", "at", "at"),
        ("be", "be", "be", "be"),
        ("by", "by", "by", "by"),
        ("go", "go", "go", "go"),
        ("he", "he", "he", "he"),
        ("me", "me", "me", "me"),
        ("my", "my", "my", "my"),
        ("no", "no", "no", "no"),
        ("of", "of", "of", "of"),
        ("on", "on", "on", "on"),
        ("or", "or", "or", "or"),
        ("so", "so", "so", "so"),
        ("to", "to", "to", "to"),
        ("up", "up", "up", "up"),
        ("we", "we", "we", "we"),
        ("ox", "ox", "ox", "ox"),
        ("ax", "ax", "ax", "ax"),
        ("y", "y", "y", "y"),
        ("yy", "yy", "yy", "yy"),
        ("yyy", "yyy", "yyi", "yyi"),
        ("yyyy", "yyyi", "yyyi", "yyyi"),
        ("ayy", "ayi", "ayi", "ayi"),
        ("sly", "sli", "sly", "sly"),
        ("spy", "spi", "spy", "spy"),
        ("fly", "fli", "fly", "fly"),
        ("try", "tri", "try", "try"),
        ("cry", "cri", "cry", "cry"),
        ("dry", "dri", "dry", "dry"),
        ("shy", "shi", "shy", "shy"),
        ("bled", "bled", "bled", "bled"),
        ("tied", "tie", "ti", "ti"),
        ("died", "die", "di", "di"),
        ("lied", "lie", "li", "li"),
        ("cried", "cri", "cri", "cri"),
        ("spied", "spi", "spi", "spi"),
        ("flied", "fli", "fli", "fli"),
        ("tries", "tri", "tri", "tri"),
        ("flies", "fli", "fli", "fli"),
        ("dies", "die", "di", "di"),
        ("pies", "pie", "pi", "pi"),
        ("lies", "lie", "li", "li"),
        ("skied", "ski", "ski", "ski"),
        ("ski", "ski", "ski", "ski"),
        ("conditional", "condit", "condit", "condit"),
        ("rational", "ration", "ration", "ration"),
        ("valenci", "valenc", "valenc", "valenc"),
        ("hesitanci", "hesit", "hesit", "hesit"),
        ("digitizer", "digit", "digit", "digit"),
        ("conformabli", "conform", "conform", "conform"),
        ("radicalli", "radic", "radic", "radic"),
        ("differentli", "differ", "differ", "differ"),
        ("vileli", "vile", "vile", "vile"),
        ("analogousli", "analog", "analog", "analog"),
        ("vietnamization", "vietnam", "vietnam", "vietnam"),
        ("predication", "predic", "predic", "predic"),
        ("operator", "oper", "oper", "oper"),
        ("feudalism", "feudal", "feudal", "feudal"),
        ("decisiveness", "decis", "decis", "decis"),
        ("hopefulness", "hope", "hope", "hope"),
        ("callousness", "callous", "callous", "callous"),
        ("formaliti", "formal", "formal", "formal"),
        ("sensitiviti", "sensit", "sensit", "sensit"),
        ("sensibiliti", "sensibl", "sensibl", "sensibl"),
        ("triplicate", "triplic", "triplic", "triplic"),
        ("formative", "form", "form", "form"),
        ("formalize", "formal", "formal", "formal"),
        ("electriciti", "electr", "electr", "electr"),
        ("electrical", "electr", "electr", "electr"),
        ("hopeful", "hope", "hope", "hope"),
        ("goodness", "good", "good", "good"),
        ("revival", "reviv", "reviv", "reviv"),
        ("allowance", "allow", "allow", "allow"),
        ("inference", "infer", "infer", "infer"),
        ("airliner", "airlin", "airlin", "airlin"),
        ("gyroscopic", "gyroscop", "gyroscop", "gyroscop"),
        ("adjustable", "adjust", "adjust", "adjust"),
        ("defensible", "defens", "defens", "defens"),
        ("irritant", "irrit", "irrit", "irrit"),
        ("replacement", "replac", "replac", "replac"),
        ("adjustment", "adjust", "adjust", "adjust"),
        ("dependent", "depend", "depend", "depend"),
        ("adoption", "adopt", "adopt", "adopt"),
        ("homologou", "homolog", "homolog", "homolog"),
        ("communism", "commun", "commun", "commun"),
        ("activate", "activ", "activ", "activ"),
        ("angulariti", "angular", "angular", "angular"),
        ("homologous", "homolog", "homolog", "homolog"),
        ("effective", "effect", "effect", "effect"),
        ("bowdlerize", "bowdler", "bowdler", "bowdler"),
        ("probate", "probat", "probat", "probat"),
        ("rate", "rate", "rate", "rate"),
        ("cease", "ceas", "ceas", "ceas"),
        ("controll", "control", "control", "control"),
        ("roll", "roll", "roll", "roll"),
        ("generalization", "gener", "gener", "gener"),
        ("generalize", "gener", "gener", "gener"),
        ("general", "gener", "gener", "gener"),
        ("generally", "gener", "gener", "gener"),
        ("generous", "gener", "gener", "gener"),
        ("generosity", "generos", "generos", "generos"),
        ("organization", "organ", "organ", "organ"),
        ("organizational", "organiz", "organiz", "organiz"),
        ("organize", "organ", "organ", "organ"),
        ("organizer", "organ", "organ", "organ"),
        ("national", "nation", "nation", "nation"),
        ("nationality", "nation", "nation", "nation"),
        ("nationalization", "nation", "nation", "nation"),
        ("nationalism", "nation", "nation", "nation"),
        ("rationally", "ration", "ration", "ration"),
        ("optionally", "option", "option", "option"),
        ("traditionally", "tradit", "tradition", "tradition"),
        ("emotionally", "emot", "emotion", "emotion"),
        ("additionally", "addit", "addition", "addition"),
        ("fully", "fulli", "fulli", "fulli"),
        ("hopefully", "hope", "hopefulli", "hopefulli"),
        ("carefully", "care", "carefulli", "carefulli"),
        ("beautifully", "beauti", "beautifulli", "beautifulli"),
        ("faithfully", "faith", "faithfulli", "faithfulli"),
        ("wonderfully", "wonder", "wonderfulli", "wonderfulli"),
        ("skilfully", "skil", "skilfulli", "skilfulli"),
        ("analogy", "analog", "analog", "analogi"),
        ("analogies", "analog", "analog", "analogi"),
        ("biology", "biolog", "biologi", "biologi"),
        ("biological", "biolog", "biolog", "biolog"),
        ("theology", "theolog", "theologi", "theologi"),
        ("apology", "apolog", "apolog", "apologi"),
        ("chronologically", "chronolog", "chronolog", "chronolog"),
        ("psychologically", "psycholog", "psycholog", "psycholog"),
        ("enjoy", "enjoy", "enjoi", "enjoi"),
        ("enjoyed", "enjoy", "enjoi", "enjoi"),
        ("enjoying", "enjoy", "enjoi", "enjoi"),
        ("enjoyment", "enjoy", "enjoy", "enjoy"),
        ("employ", "employ", "emploi", "emploi"),
        ("employs", "employ", "emploi", "emploi"),
        ("destroy", "destroy", "destroi", "destroi"),
        ("destroying", "destroy", "destroi", "destroi"),
        ("boy", "boy", "boi", "boi"),
        ("boys", "boy", "boi", "boi"),
        ("toy", "toy", "toi", "toi"),
        ("toys", "toy", "toi", "toi"),
        ("say", "say", "sai", "sai"),
        ("says", "say", "sai", "sai"),
        ("saying", "say", "sai", "sai"),
        ("day", "day", "dai", "dai"),
        ("days", "day", "dai", "dai"),
        ("played", "play", "plai", "plai"),
        ("playing", "play", "plai", "plai"),
        ("happiness", "happi", "happi", "happi"),
        ("happier", "happier", "happier", "happier"),
        ("happiest", "happiest", "happiest", "happiest"),
        ("happily", "happili", "happili", "happili"),
        ("business", "busi", "busi", "busi"),
        ("busy", "busi", "busi", "busi"),
        ("busily", "busili", "busili", "busili"),
        ("mess", "mess", "mess", "mess"),
        ("messy", "messi", "messi", "messi"),
        ("messed", "mess", "mess", "mess"),
        ("missing", "miss", "miss", "miss"),
        ("kissed", "kiss", "kiss", "kiss"),
        ("buzzing", "buzz", "buzz", "buzz"),
        ("fizzed", "fizz", "fizz", "fizz"),
        ("fizz", "fizz", "fizz", "fizz"),
        ("tanned", "tan", "tan", "tan"),
        ("tanning", "tan", "tan", "tan"),
        ("hopped", "hop", "hop", "hop"),
        ("hoped", "hope", "hope", "hope"),
        ("hoping", "hope", "hope", "hope"),
        ("filed", "file", "file", "file"),
        ("failing", "fail", "fail", "fail"),
        ("fail", "fail", "fail", "fail"),
        ("agreement", "agreement", "agreement", "agreement"),
        ("engagement", "engag", "engag", "engag"),
        ("measurement", "measur", "measur", "measur"),
        ("government", "govern", "govern", "govern"),
        ("settlement", "settlement", "settlement", "settlement"),
        ("statement", "statement", "statement", "statement"),
        ("element", "element", "element", "element"),
        ("cement", "cement", "cement", "cement"),
        ("conditionally", "condit", "condition", "condition"),
        ("probability", "probabl", "probabl", "probabl"),
        ("capability", "capabl", "capabl", "capabl"),
        ("sensibility", "sensibl", "sensibl", "sensibl"),
        ("responsibility", "respons", "respons", "respons"),
        ("possibility", "possibl", "possibl", "possibl"),
        ("ability", "abil", "abil", "abil"),
        ("agility", "agil", "agil", "agil"),
        ("sportingly", "sportingli", "sportingli", "sportingli"),
        ("amazingly", "amazingli", "amazingli", "amazingli"),
        ("exceedingly", "exceedingli", "exceedingli", "exceedingli"),
        ("seemingly", "seemingli", "seemingli", "seemingli"),
        ("feelingly", "feelingli", "feelingli", "feelingli"),
        ("abate", "abat", "abat", "abat"),
        ("abated", "abat", "abat", "abat"),
        ("abating", "abat", "abat", "abat"),
        ("abatement", "abat", "abat", "abat"),
        ("abatements", "abat", "abat", "abat"),
        ("care", "care", "care", "care"),
        ("cared", "care", "care", "care"),
        ("careful", "care", "care", "care"),
        ("carefulness", "care", "care", "care"),
        ("careless", "careless", "careless", "careless"),
        ("carelessness", "careless", "careless", "careless"),
        ("caring", "care", "care", "care"),
        ("connect", "connect", "connect", "connect"),
        ("connected", "connect", "connect", "connect"),
        ("connecting", "connect", "connect", "connect"),
        ("connection", "connect", "connect", "connect"),
        ("connections", "connect", "connect", "connect"),
        ("connective", "connect", "connect", "connect"),
        ("connectivity", "connect", "connect", "connect"),
        ("oscillate", "oscil", "oscil", "oscil"),
        ("oscillated", "oscil", "oscil", "oscil"),
        ("oscillating", "oscil", "oscil", "oscil"),
        ("oscillation", "oscil", "oscil", "oscil"),
        ("oscillations", "oscil", "oscil", "oscil"),
        ("oscillator", "oscil", "oscil", "oscil"),
        ("run", "run", "run", "run"),
        ("runs", "run", "run", "run"),
        ("runner", "runner", "runner", "runner"),
        ("runners", "runner", "runner", "runner"),
        ("runnings", "run", "run", "run"),
        ("sses", "ss", "ss", "ss"),
        ("ies", "i", "i", "i"),
        ("ied", "i", "i", "i"),
        ("eed", "eed", "eed", "eed"),
        ("ing", "ing", "ing", "ing"),
        ("ed", "ed", "ed", "ed"),
        ("s", "s", "s", ""),
        ("ss", "ss", "ss", "ss"),
        ("yes", "ye", "ye", "ye"),
        ("eyes", "eye", "ey", "ey"),
        ("skating", "skate", "skate", "skate"),
        ("skater", "skater", "skater", "skater"),
        ("skated", "skate", "skate", "skate"),
        ("hopelessness", "hopeless", "hopeless", "hopeless"),
        ("relativity", "rel", "rel", "rel"),
        ("creativity", "creativ", "creativ", "creativ"),
        ("activities", "activ", "activ", "activ"),
        ("activity", "activ", "activ", "activ"),
        ("traditional", "tradit", "tradit", "tradit"),
        ("tradition", "tradit", "tradit", "tradit"),
        ("traditions", "tradit", "tradit", "tradit"),
        ("conventional", "convent", "convent", "convent"),
        ("convention", "convent", "convent", "convent"),
        ("lovely", "love", "love", "love"),
        ("loveliness", "loveli", "loveli", "loveli"),
        ("lovingly", "lovingli", "lovingli", "lovingli"),
        ("bowling", "bowl", "bowl", "bowl"),
        ("rolling", "roll", "roll", "roll"),
        ("polling", "poll", "poll", "poll"),
        ("controlling", "control", "control", "control"),
        ("patrolling", "patrol", "patrol", "patrol"),
        ("compelling", "compel", "compel", "compel"),
        ("feeds", "feed", "feed", "feed"),
        ("needed", "need", "need", "need"),
        ("bleeds", "bleed", "bleed", "bleed"),
        ("speeding", "speed", "speed", "speed"),
        ("breeding", "breed", "breed", "breed"),
        ("pitied", "piti", "piti", "piti"),
        ("pitying", "piti", "piti", "piti"),
        ("studies", "studi", "studi", "studi"),
        ("studying", "studi", "studi", "studi"),
        ("studied", "studi", "studi", "studi"),
        ("apples", "appl", "appl", "appl"),
        ("bananas", "banana", "banana", "banana"),
        ("cherries", "cherri", "cherri", "cherri"),
        ("potatoes", "potato", "potato", "potato"),
        ("tomatoes", "tomato", "tomato", "tomato"),
        ("heroes", "hero", "hero", "hero"),
        ("echoes", "echo", "echo", "echo"),
        ("alleluia", "alleluia", "alleluia", "alleluia"),
        ("aaron", "aaron", "aaron", "aaron"),
        ("abaissiez", "abaissiez", "abaissiez", "abaissiez"),
        ("abandon", "abandon", "abandon", "abandon"),
        ("abandoned", "abandon", "abandon", "abandon"),
        ("abase", "abas", "abas", "abas"),
        ("abash", "abash", "abash", "abash"),
        ("zzz", "zzz", "zzz", "zzz"),
        ("xxx", "xxx", "xxx", "xxx"),
        ("www", "www", "www", "www"),
        ("oddity", "odditi", "odditi", "odditi"),
        ("odd", "odd", "odd", "odd"),
        ("added", "ad", "ad", "ad"),
        ("adding", "ad", "ad", "ad"),
        ("addition", "addit", "addit", "addit"),
        ("hypothesis", "hypothesi", "hypothesi", "hypothesi"),
        ("hypotheses", "hypothes", "hypothes", "hypothes"),
        ("analysis", "analysi", "analysi", "analysi"),
        ("analyses", "analys", "analys", "analys"),
        ("crisis", "crisi", "crisi", "crisi"),
        ("crises", "crise", "crise", "crise"),
        ("interrogation", "interrog", "interrog", "interrog"),
        ("interrogative", "interrog", "interrog", "interrog"),
        (
            "interrogatory",
            "interrogatori",
            "interrogatori",
            "interrogatori",
        ),
        ("laboratory", "laboratori", "laboratori", "laboratori"),
        ("Caresses", "caress", "caress", "caress"),
        ("PONIES", "poni", "poni", "poni"),
        ("Running", "run", "run", "run"),
        ("QuickLy", "quickli", "quickli", "quickli"),
        ("NEWS", "news", "new", "new"),
        ("SkIeS", "sky", "ski", "ski"),
        ("caf\u{e9}", "caf\u{e9}", "caf\u{e9}", "caf\u{e9}"),
        ("na\u{ef}ve", "na\u{ef}v", "na\u{ef}v", "na\u{ef}v"),
        (
            "r\u{e9}sum\u{e9}",
            "r\u{e9}sum\u{e9}",
            "r\u{e9}sum\u{e9}",
            "r\u{e9}sum\u{e9}",
        ),
        ("se\u{f1}or", "se\u{f1}or", "se\u{f1}or", "se\u{f1}or"),
        ("\u{fc}ber", "\u{fc}ber", "\u{fc}ber", "\u{fc}ber"),
        ("stra\u{df}e", "stra\u{df}e", "stra\u{df}e", "stra\u{df}e"),
        (
            "\u{fb01}nish",
            "\u{fb01}nish",
            "\u{fb01}nish",
            "\u{fb01}nish",
        ),
        (
            "\u{130}stanbul",
            "i\u{307}stanbul",
            "i\u{307}stanbul",
            "i\u{307}stanbul",
        ),
        ("KELVIN", "kelvin", "kelvin", "kelvin"),
        ("\u{1c5}emal", "\u{1c6}emal", "\u{1c6}emal", "\u{1c6}emal"),
        ("fa\u{e7}ade", "fa\u{e7}ad", "fa\u{e7}ad", "fa\u{e7}ad"),
        (
            "jalape\u{f1}o",
            "jalape\u{f1}o",
            "jalape\u{f1}o",
            "jalape\u{f1}o",
        ),
        ("ties4", "ties4", "ties4", "ties4"),
        ("abc123ing", "abc123", "abc123", "abc123"),
        ("x*ding", "x*ding", "x*ding", "x*ding"),
        ("ab*ding", "abd", "abd", "abd"),
        ("3.5", "3.5", "3.5", "3.5"),
        ("don't", "don't", "don't", "don't"),
        ("civilization", "civil", "civil", "civil"),
        ("civilizations", "civil", "civil", "civil"),
        ("civilize", "civil", "civil", "civil"),
        ("civilized", "civil", "civil", "civil"),
        ("civilizing", "civil", "civil", "civil"),
        ("ownership", "ownership", "ownership", "ownership"),
        ("friendship", "friendship", "friendship", "friendship"),
        ("membership", "membership", "membership", "membership"),
        ("leadership", "leadership", "leadership", "leadership"),
        ("", "", "", ""),
        ("KELVIN\u{212a}", "kelvink", "kelvink", "kelvink"),
        ("\u{212a}ates", "kate", "kate", "kate"),
        ("\u{130}ng", "i\u{307}ng", "i\u{307}ng", "i\u{307}ng"),
        ("\u{130}s", "i\u{307}s", "i\u{307}s", "i\u{307}"),
        (
            "\u{3a3}\u{391}\u{3a3}",
            "\u{3c3}\u{3b1}\u{3c2}",
            "\u{3c3}\u{3b1}\u{3c2}",
            "\u{3c3}\u{3b1}\u{3c2}",
        ),
        ("caf\u{e9}s", "caf\u{e9}", "caf\u{e9}", "caf\u{e9}"),
        ("\u{e9}tudes", "\u{e9}tude", "\u{e9}tude", "\u{e9}tude"),
    ];
}
