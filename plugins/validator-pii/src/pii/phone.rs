//! Phone numbers. Two shapes count:
//!
//! - international: `+` (or the `00` call prefix) and a country code, 8 to 15 digits in all
//!   (E.164), separators optional (`+14155552671`, `+44 20 7946 0958`, `0044 20 7946 0958`,
//!   `+1 (555) 123-4567`);
//! - national, always with separators, all the same between plain groups: North American
//!   `555-123-4567`, `(555) 123-4567`, `1-800-555-0199` (area code not starting with 0 or
//!   1), or trunk-prefixed `0…` numbers of 10 or 11 digits in groups of 2 to 7 digits
//!   (`020 7946 0958`, `06 12 34 56 78`, `(030) 1234567`, `07700 900123`).
//!
//! Plain digit runs, dates, versions, IPs, SSNs and card numbers fail these shapes; a number
//! glued to other digits or words is not a phone number either.

use super::scan::{digits_end, number_ends, number_starts};

/// One group of digits of a candidate, and how it is delimited.
#[derive(Clone, Copy, Debug)]
struct Part {
    /// Where the digits start.
    start: usize,
    digits: usize,
    /// Inside parentheses: "(555)".
    paren: bool,
    /// The separator before the group; none for the first or right after a ")".
    sep: Option<u8>,
    end: usize,
}

/// Byte spans of the phone numbers in `text`.
pub fn find(text: &str) -> Vec<(usize, usize)> {
    let bytes = text.as_bytes();
    let mut spans = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if !(b.is_ascii_digit() || b == b'+' || b == b'(') || !number_starts(bytes, i) {
            i += 1;
            continue;
        }
        let plus = b == b'+';
        let parts = parts(bytes, if plus { i + 1 } else { i });
        match longest_valid(bytes, &parts, plus) {
            Some(end) => {
                spans.push((i, end));
                i = end;
            }
            // Skipping the whole candidate keeps its tail ("1234 555-123-4567") from matching.
            None => i = parts.last().map_or(i + 1, |p| p.end.max(i + 1)),
        }
    }
    spans
}

/// The digit groups from `start`: plain or parenthesized, each after at most one separator
/// (space, hyphen or dot; a space may also follow a ")").
fn parts(bytes: &[u8], start: usize) -> Vec<Part> {
    let mut parts: Vec<Part> = Vec::new();
    let mut i = start;
    // A cap keeps pathological input linear; no phone number has this many groups.
    while parts.len() < 8 {
        let mut sep = None;
        let mut at = i;
        if !parts.is_empty() {
            match bytes.get(i) {
                Some(&s @ (b' ' | b'-' | b'.')) => {
                    sep = Some(s);
                    at = i + 1;
                }
                _ if parts.last().is_some_and(|p| p.paren) => {}
                _ => break,
            }
        }
        let Some(part) = group_at(bytes, at, sep) else {
            break;
        };
        i = part.end;
        parts.push(part);
    }
    parts
}

fn group_at(bytes: &[u8], at: usize, sep: Option<u8>) -> Option<Part> {
    let paren = bytes.get(at) == Some(&b'(');
    let digits_start = if paren { at + 1 } else { at };
    let digits_end = digits_end(bytes, digits_start);
    let digits = digits_end - digits_start;
    if digits == 0 || (paren && bytes.get(digits_end) != Some(&b')')) {
        return None;
    }
    Some(Part {
        start: digits_start,
        digits,
        paren,
        sep,
        end: if paren { digits_end + 1 } else { digits_end },
    })
}

/// The end of the longest prefix of `parts` that is a phone number and ends cleanly (a trailing
/// group after a space may be something else: "call 555-123-4567 2 times").
fn longest_valid(bytes: &[u8], parts: &[Part], plus: bool) -> Option<usize> {
    let first_digit = |p: &Part| bytes[p.start];
    (1..=parts.len()).rev().find_map(|n| {
        let prefix = &parts[..n];
        let end = prefix[n - 1].end;
        let next_sep = parts.get(n).and_then(|p| p.sep);
        let cut_cleanly = matches!(next_sep, None | Some(b' '));
        // "00" is the international call prefix of most countries: "0044 20 7946 0958".
        let dialed_abroad =
            !plus && prefix[0].digits >= 3 && bytes[prefix[0].start..].starts_with(b"00");
        let valid = if plus {
            international(prefix)
        } else if dialed_abroad {
            // Grouped, like every national form: "0012345678" is a plain number.
            n >= 2
                && (8..=15).contains(&(digit_count(prefix) - 2))
                && !prefix[0].paren
                && bytes[prefix[0].start + 2] != b'0'
        } else {
            north_american(prefix, first_digit) || trunk_prefixed(prefix, first_digit)
        };
        (valid && cut_cleanly && number_ends(bytes, end)).then_some(end)
    })
}

fn digit_count(parts: &[Part]) -> usize {
    parts.iter().map(|p| p.digits).sum()
}

fn international(parts: &[Part]) -> bool {
    (8..=15).contains(&digit_count(parts)) && !parts[0].paren
}

/// Separators between plain groups agree ("555-123 4567" is fine after a parenthesis only).
fn consistent(parts: &[Part]) -> bool {
    let mut seps = parts
        .iter()
        .skip(1)
        .zip(parts)
        .filter(|(_, before)| !before.paren)
        .map(|(p, _)| p.sep);
    match seps.next() {
        Some(first) => seps.all(|s| s == first),
        None => true,
    }
}

fn north_american(parts: &[Part], first_digit: impl Fn(&Part) -> u8) -> bool {
    let shape: Vec<usize> = parts.iter().map(|p| p.digits).collect();
    let area = match shape[..] {
        [3, 3, 4] => 0,
        [1, 3, 3, 4] if first_digit(&parts[0]) == b'1' => 1,
        _ => return false,
    };
    // Area codes never start with 0 or 1. (Exchanges don't either, but "555-123-4567" is how
    // made-up numbers look, and they should count.) Only the area code may be parenthesized.
    first_digit(&parts[area]) >= b'2'
        && parts[area + 1..].iter().all(|p| !p.paren)
        && (area == 0 || !parts[0].paren)
        && consistent(parts)
}

fn trunk_prefixed(parts: &[Part], first_digit: impl Fn(&Part) -> u8) -> bool {
    parts.len() >= 2
        && first_digit(&parts[0]) == b'0'
        && (10..=11).contains(&digit_count(parts))
        && parts.iter().all(|p| (2..=7).contains(&p.digits))
        && parts[1..].iter().all(|p| !p.paren)
        && consistent(parts)
}
