//! Text normalization: a light one for exact duplicates, and datatrove's `simplify_text` (its
//! default `TextNormConfig`) for shingling.

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// The key two samples share when they are exact duplicates: lowercase, whitespace runs
/// collapsed to one space, trimmed. Punctuation, digits and accents still count, so "exact"
/// keeps its everyday meaning; the near-duplicate pass sees through those.
pub fn exact_key(text: &str) -> String {
    let mut key = String::with_capacity(text.len());
    for word in text.split_whitespace() {
        if !key.is_empty() {
            key.push(' ');
        }
        key.extend(word.chars().flat_map(char::to_lowercase));
    }
    key
}

/// The words of `text` after datatrove's `simplify_text` with its defaults: lowercase; each
/// number (digits, optionally one decimal separator and more digits) becomes "0"; punctuation
/// becomes a space; whitespace collapses; diacritics are removed (NFD, combining marks dropped).
///
/// Datatrove then runs a language word tokenizer; on text already stripped of punctuation that
/// is a whitespace split, which is what this does. Two small differences: numbers are any
/// `char::is_numeric` run (datatrove: Unicode decimal digits only), and every combining mark
/// is dropped (datatrove: nonspacing marks only).
pub fn simplify(text: &str) -> Vec<String> {
    let lowered = text.to_lowercase();
    let spaced = collapse_numbers_and_punctuation(&lowered);
    spaced
        .split_whitespace()
        .map(|word| {
            // ASCII is its own NFD and holds no combining mark: the common case, 5× faster.
            if word.is_ascii() {
                word.to_owned()
            } else {
                word.nfd().filter(|&c| !is_combining_mark(c)).collect()
            }
        })
        .filter(|word: &String| !word.is_empty())
        .collect()
}

/// Replaces each number with "0", as datatrove's `NUMBERS_PATTERN` does: a run of digits,
/// optionally followed by one decimal separator and another run ("3.14" -> "0", "1,2,3" ->
/// "0,0"); then every punctuation character left with a space.
fn collapse_numbers_and_punctuation(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if !c.is_numeric() {
            out.push(if is_punctuation(c) { ' ' } else { c });
            rest = &rest[c.len_utf8()..];
            continue;
        }
        rest = rest.trim_start_matches(char::is_numeric);
        let mut next = rest.chars();
        if let (Some(separator), Some(digit)) = (next.next(), next.next())
            && is_decimal_separator(separator)
            && digit.is_numeric()
        {
            rest = rest[separator.len_utf8()..].trim_start_matches(char::is_numeric);
        }
        out.push('0');
    }
    out
}

fn is_decimal_separator(c: char) -> bool {
    matches!(c, '.' | ',' | '،' | '٫' | '⎖' | '⎗' | '⎘')
}

/// Datatrove's `PUNCTUATION` set (ASCII punctuation, control characters, common CJK and
/// typographic marks) plus the most common of its `TERMINAL_PUNCTUATION` (sentence ends of other
/// scripts). Also the left single quote, which datatrove's list misses next to its right one.
fn is_punctuation(c: char) -> bool {
    c.is_ascii_punctuation()
        || (c.is_control() && c != '\t' && c != '\n')
        || matches!(
            c,
            '—' | '–'
                | '“'
                | '”'
                | '„'
                | '‘'
                | '’'
                | '´'
                | '«'
                | '»'
                | '…'
                | '►'
                | '━'
                | '∶'
                | '％'
                | '１'
                | '〈'
                | '〉'
                | '、'
                | '【'
                | '】'
                | '「'
                | '」'
                | '，'
                | '；'
                | '《'
                | '》'
                | '．'
                | '（'
                | '）'
                | '？'
                | '！'
                | '：'
                | '～'
                | '。'
                | '｡'
                | '﹒'
                | '﹖'
                | '﹗'
                | '‼'
                | '‽'
                | '⁇'
                | '⁈'
                | '⁉'
                | '։'
                | '؞'
                | '؟'
                | '۔'
                | '܀'
                | '܁'
                | '܂'
                | '।'
                | '॥'
                | '၊'
                | '။'
                | '።'
                | '፧'
                | '፨'
                | '។'
                | '៕'
                | '᠃'
                | '᠉'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first implementation (a `Vec<char>` pass for numbers, one for punctuation, NFD of
    /// every word), which the faster one must reproduce exactly.
    fn simplify_reference(text: &str) -> Vec<String> {
        let chars: Vec<char> = text.to_lowercase().chars().collect();
        let skip_digits = |mut i: usize| {
            while chars.get(i).is_some_and(|c| c.is_numeric()) {
                i += 1;
            }
            i
        };
        let mut numbered = String::new();
        let mut i = 0;
        while i < chars.len() {
            if !chars[i].is_numeric() {
                numbered.push(chars[i]);
                i += 1;
                continue;
            }
            i = skip_digits(i);
            let separated = chars.get(i).is_some_and(|&c| is_decimal_separator(c));
            if separated && chars.get(i + 1).is_some_and(|c| c.is_numeric()) {
                i = skip_digits(i + 1);
            }
            numbered.push('0');
        }
        let spaced: String = numbered
            .chars()
            .map(|c| if is_punctuation(c) { ' ' } else { c })
            .collect();
        spaced
            .split_whitespace()
            .map(|word| word.nfd().filter(|&c| !is_combining_mark(c)).collect())
            .filter(|word: &String| !word.is_empty())
            .collect()
    }

    #[test]
    fn simplify_matches_the_reference_on_random_text() {
        const ALPHABET: [&str; 28] = [
            "a", "B", "z", " ", "  ", "\n", "\t", "0", "7", "٣", "٫", "،", ".", ",", "..", "!",
            "'", "’", "é", "e\u{301}", "\u{301}", "İ", "ß", "Ω", "ǅ", "\u{0}", "—", "１",
        ];
        let mut state = 1u64;
        for _ in 0..20_000 {
            let mut text = String::new();
            for _ in 0..(state >> 60) + 1 {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                text.push_str(ALPHABET[(state >> 33) as usize % ALPHABET.len()]);
            }
            assert_eq!(simplify(&text), simplify_reference(&text), "{text:?}");
        }
    }

    #[test]
    fn exact_key_folds_case_and_whitespace_only() {
        assert_eq!(exact_key("  Hello\n\tWORLD  "), "hello world");
        assert_eq!(exact_key("Hello, world!"), "hello, world!");
        assert_eq!(exact_key(""), "");
    }

    #[test]
    fn simplify_mirrors_datatrove() {
        assert_eq!(
            simplify("Héllo, WORLD!  It costs 3.50 (or 1,000)…"),
            ["hello", "world", "it", "costs", "0", "or", "0"]
        );
        assert_eq!(simplify("v1.2.3"), ["v0", "0"]);
        assert_eq!(
            simplify("Ça «marche» — très bien。"),
            ["ca", "marche", "tres", "bien"]
        );
        assert!(simplify(" ...!? ").is_empty());
        assert!(simplify("").is_empty());
    }
}
