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
    let numbered = collapse_numbers(&lowered);
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

/// Replaces each number with "0", as datatrove's `NUMBERS_PATTERN` does: a run of digits,
/// optionally followed by one decimal separator and another run ("3.14" -> "0", "1,2,3" ->
/// "0,0").
fn collapse_numbers(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_numeric() {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        i = skip_digits(&chars, i);
        let separated = chars.get(i).is_some_and(|&c| is_decimal_separator(c));
        if separated && chars.get(i + 1).is_some_and(|c| c.is_numeric()) {
            i = skip_digits(&chars, i + 1);
        }
        out.push('0');
    }
    out
}

fn skip_digits(chars: &[char], mut i: usize) -> usize {
    while chars.get(i).is_some_and(|c| c.is_numeric()) {
        i += 1;
    }
    i
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
