//! sacreBLEU's word tokenizers, as token streams: each calls `emit` once per token of what
//! sacreBLEU's `tokenizer(line).split()` would produce, with slices of the input (no
//! per-token allocation).

use std::borrow::Cow;

use crate::text::{is_py_whitespace, py_split};

/// Which sacreBLEU tokenizer splits segments into words (`tokenize=` of `BLEU`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Tokenize {
    /// `13a` (the default): mteval-v13a.pl, punctuation split off, numbers kept whole.
    #[default]
    Tok13a,
    /// `none`: split on whitespace only.
    None,
    /// `char`: every non-whitespace character is a word.
    Char,
}

impl Tokenize {
    /// The name sacreBLEU uses, in settings and in the signature (`tok:13a`).
    pub fn name(self) -> &'static str {
        match self {
            Tokenize::Tok13a => "13a",
            Tokenize::None => "none",
            Tokenize::Char => "char",
        }
    }

    /// The tokenizer called `name`, if built (`intl`, `zh` and the others are not).
    pub fn from_name(name: &str) -> Option<Tokenize> {
        [Tokenize::Tok13a, Tokenize::None, Tokenize::Char]
            .into_iter()
            .find(|t| t.name() == name)
    }

    /// Calls `emit` for each token of `line`. Like sacreBLEU, callers pass the segment after
    /// `rstrip()` (and `lower()`); the 13a replacements of `-\n` depend on it.
    pub fn tokens(self, line: &str, emit: &mut impl FnMut(&str)) {
        match self {
            Tokenize::Tok13a => split_13a(&normalize_13a(line), emit),
            Tokenize::None => py_split(line).for_each(emit),
            Tokenize::Char => {
                for (i, c) in line.char_indices() {
                    if !is_py_whitespace(c) {
                        emit(&line[i..i + c.len_utf8()]);
                    }
                }
            }
        }
    }
}

/// The language-independent part of 13a: drop `<skipped>` and hyphenated line breaks, join
/// lines, unescape four XML entities. Borrowed unless the line holds `<`, `\n` or `&`, so the
/// common case copies nothing.
fn normalize_13a(line: &str) -> Cow<'_, str> {
    if !needs_normalizing(line.as_bytes()) {
        return Cow::Borrowed(line);
    }
    let mut s = line
        .replace("<skipped>", "")
        .replace("-\n", "")
        .replace('\n', " ");
    if s.contains('&') {
        // Sequential passes, as in sacreBLEU: `&amp;lt;` becomes `<`, `&amp;quot;` `&quot;`.
        s = s
            .replace("&quot;", "\"")
            .replace("&amp;", "&")
            .replace("&lt;", "<")
            .replace("&gt;", ">");
    }
    Cow::Owned(s)
}

/// Whether `bytes` holds `<`, `\n` or `&`, eight bytes at a time: this check runs on every
/// segment, and a byte-by-byte scan cost as much as the whole tokenization.
fn needs_normalizing(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // The classic "has a zero byte" test on the word XORed with each wanted byte.
    let has = |word: u64, b: u8| {
        let x = word ^ (ONES * u64::from(b));
        x.wrapping_sub(ONES) & !x & HIGHS != 0
    };
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_le_bytes(word);
        if has(word, b'<') || has(word, b'\n') || has(word, b'&') {
            return true;
        }
    }
    chunks
        .remainder()
        .iter()
        .any(|b| matches!(b, b'<' | b'\n' | b'&'))
}

/// ASCII punctuation the first 13a regex surrounds with spaces:
/// `[\{-\~\[-\` -\&\(-\+\:-\@\/]`. (Space is in that range too but is whitespace anyway.)
const fn is_13a_symbol(b: u8) -> bool {
    matches!(b, b'{'..=b'~' | b'['..=b'`' | b'!'..=b'&' | b'('..=b'+' | b':'..=b'@' | b'/')
}

/// Python whitespace in ASCII (`\t..\r`, `\x1c..\x1f`, space).
const fn is_ascii_py_space(b: u8) -> bool {
    matches!(b, b'\t'..=b'\r' | 0x1c..=b' ')
}

/// What a byte means to [`split_13a`].
#[derive(Clone, Copy, PartialEq, Eq)]
enum ByteClass {
    /// Part of a word: letters, digits, `'` and the like.
    Plain,
    /// ASCII whitespace (Python's definition).
    Space,
    /// A [`is_13a_symbol`] character: always a token of its own.
    Symbol,
    /// `.` or `,`.
    Dot,
    /// `-`.
    Dash,
    /// The first or a later byte of a non-ASCII character.
    NonAscii,
}

/// [`ByteClass`] of every byte, so the scan over plain bytes is one load and compare each.
const BYTE_CLASSES: [ByteClass; 256] = {
    let mut classes = [ByteClass::NonAscii; 256];
    let mut b = 0;
    while b < 0x80 {
        classes[b] = match b as u8 {
            b'.' | b',' => ByteClass::Dot,
            b'-' => ByteClass::Dash,
            c if is_ascii_py_space(c) => ByteClass::Space,
            c if is_13a_symbol(c) => ByteClass::Symbol,
            _ => ByteClass::Plain,
        };
        b += 1;
    }
    classes
};

/// The regex part of 13a in one pass. sacreBLEU runs four `re.sub` passes over `f" {line} "`
/// and then splits on whitespace; the boundaries they add reduce to these rules, checked
/// against the passes on random strings (see the tests):
///
/// 1. every [`is_13a_symbol`] character is a token of its own;
/// 2. `-` right after an ASCII digit is a token of its own;
/// 3. a run of `k` periods/commas, preceded by `x` and followed by `y` (a space when the run
///    touches whitespace, a symbol or the line's ends): the run is split into single
///    characters, and split from `x` and `y`, except that
///    - it stays glued to both when `x` and `y` are digits and `k == 1` (`1,000.5`);
///    - its last character stays glued to a digit `y` unless the second pass (`([^0-9])([.,])`,
///      which matches every other character of the run, starting with the first when `x` is
///      not a digit and with the second when it is) has already put a space after it.
fn split_13a(line: &str, emit: &mut impl FnMut(&str)) {
    let bytes = line.as_bytes();
    let mut start = 0; // start of the pending token
    let mut i = 0;
    while i < bytes.len() {
        match BYTE_CLASSES[usize::from(bytes[i])] {
            ByteClass::Plain => {}
            ByteClass::NonAscii => {
                // Only whitespace matters (every other character is a plain letter).
                let c = line[i..].chars().next().unwrap_or(' ');
                let len = c.len_utf8();
                if is_py_whitespace(c) {
                    flush(line, start, i, emit);
                    start = i + len;
                }
                i += len;
                continue;
            }
            ByteClass::Space => {
                flush(line, start, i, emit);
                start = i + 1;
            }
            ByteClass::Symbol => {
                flush(line, start, i, emit);
                emit(&line[i..i + 1]);
                start = i + 1;
            }
            ByteClass::Dash => {
                if i > start && bytes[i - 1].is_ascii_digit() {
                    flush(line, start, i, emit);
                    emit("-");
                    start = i + 1;
                }
            }
            ByteClass::Dot => {
                let run_end = i + bytes[i..]
                    .iter()
                    .take_while(|&&c| c == b'.' || c == b',')
                    .count();
                let run = run_end - i;
                let x_digit = i > start && bytes[i - 1].is_ascii_digit();
                let y_digit = bytes.get(run_end).is_some_and(u8::is_ascii_digit);
                if x_digit && y_digit && run == 1 {
                    i = run_end; // a decimal or thousands separator: part of the number
                    continue;
                }
                // Whether pass 2 matched the run's last character (and spaced it off).
                let last_spaced = (run % 2 == 1) != x_digit;
                let last_glued = y_digit && !last_spaced;
                flush(line, start, i, emit);
                let singles = if last_glued { run_end - 1 } else { run_end };
                for j in i..singles {
                    emit(&line[j..j + 1]);
                }
                start = singles;
                i = run_end;
                continue;
            }
        }
        i += 1;
    }
    flush(line, start, bytes.len(), emit);
}

/// Emits `line[start..end]` when it is not empty.
fn flush(line: &str, start: usize, end: usize, emit: &mut impl FnMut(&str)) {
    if start < end {
        emit(&line[start..end]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tok(t: Tokenize, line: &str) -> String {
        let mut out = Vec::new();
        t.tokens(line, &mut |s| out.push(s.to_string()));
        out.join(" ")
    }

    /// The four `re.sub` passes of sacreBLEU's `TokenizerRegexp`, done literally on a byte
    /// string (all patterns are ASCII; a non-ASCII character only ever plays `[^0-9]`), so the
    /// one-pass tokenizer can be checked against them on arbitrary input.
    fn regex_passes(line: &str) -> String {
        fn sub(s: &[u8], len: usize, hit: impl Fn(&[u8]) -> bool, repl: &str) -> Vec<u8> {
            let (mut out, mut i) = (Vec::new(), 0);
            while i < s.len() {
                if i + len <= s.len() && hit(&s[i..i + len]) {
                    for c in repl.bytes() {
                        match c {
                            b'1' => out.push(s[i]),
                            b'2' => out.push(s[i + 1]),
                            c => out.push(c),
                        }
                    }
                    i += len;
                } else {
                    out.push(s[i]);
                    i += 1;
                }
            }
            out
        }
        let digit = |c: u8| c.is_ascii_digit();
        let dot = |c: u8| c == b'.' || c == b',';
        let s = format!(" {line} ").into_bytes();
        let s = sub(&s, 1, |w| is_13a_symbol(w[0]) || w[0] == b' ', " 1 ");
        let s = sub(&s, 2, |w| !digit(w[0]) && dot(w[1]), "1 2 ");
        let s = sub(&s, 2, |w| dot(w[0]) && !digit(w[1]), " 1 2");
        let s = sub(&s, 2, |w| digit(w[0]) && w[1] == b'-', "1 2 ");
        py_split(&String::from_utf8(s).unwrap())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn tok13a_matches_the_golden_table() {
        // golden/metrics/reference_py311.json, key "tok13a".
        let golden = [
            ("Hello, world!", "Hello , world !"),
            (
                "It's 3.5% of $1,000.00 -- e.g. U.S.A.",
                "It's 3.5 % of $ 1,000.00 -- e . g . U . S . A .",
            ),
            ("a&amp;b &lt;tag&gt; &quot;q&quot;", "a & b < tag > \" q \""),
            (
                "Producția de zahăr; 12-3 (x)",
                "Producția de zahăr ; 12 - 3 ( x )",
            ),
            ("end with period .", "end with period ."),
        ];
        for (line, want) in golden {
            assert_eq!(tok(Tokenize::Tok13a, line), want, "{line:?}");
        }
    }

    #[test]
    fn tok13a_preprocessing_follows_sacrebleu() {
        assert_eq!(tok(Tokenize::Tok13a, "a<skipped>b"), "ab");
        assert_eq!(tok(Tokenize::Tok13a, "hyph-\nen\nx"), "hyphen x");
        assert_eq!(tok(Tokenize::Tok13a, "&amp;quot; &amp;lt;"), "& quot ; <");
        assert_eq!(tok(Tokenize::Tok13a, ""), "");
        assert_eq!(tok(Tokenize::Tok13a, "a\u{1c}b\u{a0}c"), "a b c");
        assert_eq!(tok(Tokenize::Tok13a, "12345678&amp;"), "12345678 &");
        assert_eq!(tok(Tokenize::Tok13a, "1234567-\nx"), "1234567x");
    }

    #[test]
    fn tok13a_equals_the_regex_passes_on_random_lines() {
        let alphabet: Vec<char> = "ab01.,-.,9 $'é\u{1f}\u{a0}\t(".chars().collect();
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..20_000 {
            let mut line = String::new();
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = (state % 12) as usize;
            for _ in 0..len {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                line.push(alphabet[(state % alphabet.len() as u64) as usize]);
            }
            assert_eq!(
                tok(Tokenize::Tok13a, &line),
                regex_passes(&line),
                "{line:?}"
            );
        }
    }

    #[test]
    fn none_and_char_tokenizers() {
        assert_eq!(tok(Tokenize::None, " a,b  c\u{1d}d "), "a,b c d");
        assert_eq!(tok(Tokenize::Char, "ză r"), "z ă r");
        assert_eq!(Tokenize::from_name("13a"), Some(Tokenize::Tok13a));
        assert_eq!(Tokenize::from_name("intl"), None);
    }
}
