//! rouge-score's tokenizer (`tokenize.tokenize`) in one pass, and the vocabulary that turns
//! tokens into integer ids so the scorers compare `u32`s instead of strings.

use rustc_hash::FxHashMap;

use crate::porter::PorterStemmer;

/// Beyond this many distinct token forms the vocabulary starts afresh (between two scorings),
/// so a long run over varied text cannot grow memory without bound.
const MAX_VOCABULARY: usize = 1 << 20;

/// Tokens shorter than this are never stemmed (rouge-score stems `len(token) > 3` only).
const MIN_STEMMED_LEN: usize = 4;

/// What [`scan`] finds, in text order.
pub(crate) enum Piece<'a> {
    Token(&'a str),
    Newline,
}

/// Calls `found` with each token of `text` and each "\n", exactly as rouge-score splits:
/// Python's `text.lower()`, then every run outside `[a-z0-9]` is a separator. Non-ASCII
/// characters are separators unless their lowercase holds ASCII letters: U+212A KELVIN SIGN
/// lowercases to "k", U+0130 to "i" + U+0307 (a separator). `token` is scratch space.
pub(crate) fn scan(text: &str, token: &mut String, mut found: impl FnMut(Piece<'_>)) {
    token.clear();
    let end_token = |token: &mut String, found: &mut dyn FnMut(Piece<'_>)| {
        if !token.is_empty() {
            found(Piece::Token(token.as_str()));
            token.clear();
        }
    };
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            token.push(c.to_ascii_lowercase());
        } else if c.is_ascii() {
            end_token(token, &mut found);
            if c == '\n' {
                found(Piece::Newline);
            }
        } else {
            for lower in c.to_lowercase() {
                if lower.is_ascii_lowercase() || lower.is_ascii_digit() {
                    token.push(lower);
                } else {
                    end_token(token, &mut found);
                }
            }
        }
    }
    end_token(token, &mut found);
}

/// The stem rouge-score gives `token` (already lowercase ASCII): tokens of three letters or
/// fewer are kept as they are.
pub(crate) fn stem_token(stemmer: Option<&PorterStemmer>, token: &str) -> Option<String> {
    match stemmer {
        Some(stemmer) if token.len() >= MIN_STEMMED_LEN => Some(stemmer.stem(token)),
        _ => None,
    }
}

/// A text's tokens as vocabulary ids, with where its lines break.
#[derive(Debug, Default)]
pub(crate) struct Tokens {
    pub ids: Vec<u32>,
    /// The token count at each "\n": line `k` holds `ids[breaks[k-1]..breaks[k]]`.
    breaks: Vec<usize>,
}

impl Tokens {
    /// The token ranges of the non-empty lines (rougeLsum's "sentences": `text.split("\n")`
    /// with empty lines dropped; a line without tokens contributes nothing either way).
    pub fn lines(&self) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
        let ends = self.breaks.iter().copied().chain([self.ids.len()]);
        let starts = [0].into_iter().chain(self.breaks.iter().copied());
        starts.zip(ends).filter(|(s, e)| s < e).map(|(s, e)| s..e)
    }
}

/// Token form → id, remembered across texts so each distinct token is hashed as a string (and
/// stemmed) once per form rather than once per occurrence.
#[derive(Debug, Default)]
pub(crate) struct Vocabulary {
    stemmer: Option<PorterStemmer>,
    /// Final forms (stems when stemming) → id; ids are dense, `0..forms.len()`.
    forms: FxHashMap<Box<str>, u32>,
    /// Stemmed tokens only: raw token → id of its stem, `None` when the stem is empty.
    stems: FxHashMap<Box<str>, Option<u32>>,
    scratch: String,
}

impl Vocabulary {
    pub fn new(stemmer: Option<PorterStemmer>) -> Vocabulary {
        Vocabulary {
            stemmer,
            ..Vocabulary::default()
        }
    }

    /// The number of ids handed out so far (ids are below it).
    pub fn len(&self) -> usize {
        self.forms.len()
    }

    /// Forgets every id once the vocabulary is large. Only call it between scorings: ids from
    /// before and after do not compare.
    pub fn trim(&mut self) {
        if self.forms.len() + self.stems.len() > MAX_VOCABULARY {
            self.forms = FxHashMap::default();
            self.stems = FxHashMap::default();
        }
    }

    /// Tokenizes `text` into `out` (cleared first).
    pub fn tokenize(&mut self, text: &str, out: &mut Tokens) {
        out.ids.clear();
        out.breaks.clear();
        let mut scratch = std::mem::take(&mut self.scratch);
        scan(text, &mut scratch, |piece| match piece {
            Piece::Token(token) => out.ids.extend(self.id(token)),
            Piece::Newline => out.breaks.push(out.ids.len()),
        });
        self.scratch = scratch;
    }

    fn id(&mut self, token: &str) -> Option<u32> {
        if self.stemmer.is_none() || token.len() < MIN_STEMMED_LEN {
            return Some(intern(&mut self.forms, token));
        }
        if let Some(&id) = self.stems.get(token) {
            return id;
        }
        let stem = stem_token(self.stemmer.as_ref(), token).unwrap_or_default();
        // A stem is never empty for a token of four letters or more; kept as a guard, since
        // rouge-score would drop an empty one (it fails `^[a-z0-9]+$`).
        let id = (!stem.is_empty()).then(|| intern(&mut self.forms, &stem));
        self.stems.insert(token.into(), id);
        id
    }
}

/// Interns `form`, allocating only the first time it is seen.
fn intern(forms: &mut FxHashMap<Box<str>, u32>, form: &str) -> u32 {
    if let Some(&id) = forms.get(form) {
        return id;
    }
    // Ids stay below `MAX_VOCABULARY` plus one text's tokens, far from `u32::MAX`.
    let id = forms.len() as u32;
    forms.insert(form.into(), id);
    id
}
