//! IBANs: country code, two check digits and the country's BBAN, written compactly or in
//! groups of four separated by single spaces, with the mod-97 checksum equal to 1. Only
//! countries with a known length count (SEPA and the other common IBAN countries).

use super::scan::is_word;

/// IBAN length by country.
#[rustfmt::skip]
const LENGTHS: [(&[u8; 2], usize); 60] = [
    (b"AD", 24), (b"AE", 23), (b"AL", 28), (b"AT", 20), (b"AZ", 28), (b"BA", 20), (b"BE", 16),
    (b"BG", 22), (b"BH", 22), (b"BR", 29), (b"CH", 21), (b"CR", 22), (b"CY", 28), (b"CZ", 24),
    (b"DE", 22), (b"DK", 18), (b"DO", 28), (b"EE", 20), (b"EG", 29), (b"ES", 24), (b"FI", 18),
    (b"FO", 18), (b"FR", 27), (b"GB", 22), (b"GE", 22), (b"GI", 23), (b"GL", 18), (b"GR", 27),
    (b"HR", 21), (b"HU", 28), (b"IE", 22), (b"IL", 23), (b"IS", 26), (b"IT", 27), (b"JO", 30),
    (b"KW", 30), (b"KZ", 20), (b"LB", 28), (b"LI", 21), (b"LT", 20), (b"LU", 20), (b"LV", 21),
    (b"MC", 27), (b"MT", 31), (b"NL", 18), (b"NO", 15), (b"PK", 24), (b"PL", 28), (b"PT", 25),
    (b"QA", 29), (b"RO", 24), (b"RS", 22), (b"SA", 24), (b"SE", 24), (b"SI", 19), (b"SK", 24),
    (b"SM", 27), (b"TN", 24), (b"TR", 26), (b"UA", 29),
];

/// Byte spans of the IBANs in `text`.
pub fn find(text: &str) -> Vec<(usize, usize)> {
    let bytes = text.as_bytes();
    let mut spans = Vec::new();
    let mut i = 0;
    while i + 4 <= bytes.len() {
        match iban_at(bytes, i) {
            Some(end) => {
                spans.push((i, end));
                i = end;
            }
            None => i += 1,
        }
    }
    spans
}

fn expected_length(country: &[u8]) -> Option<usize> {
    LENGTHS
        .iter()
        .find(|(code, _)| code[..] == *country)
        .map(|&(_, len)| len)
}

/// The end of an IBAN starting at `start`, if one does.
fn iban_at(bytes: &[u8], start: usize) -> Option<usize> {
    if start > 0 && is_word(bytes[start - 1]) {
        return None;
    }
    let head = bytes.get(start..start + 4)?;
    if !head[..2].iter().all(u8::is_ascii_uppercase) || !head[2..].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let length = expected_length(&head[..2])?;
    let grouped = bytes.get(start + 4) == Some(&b' ');
    let (chars, end) = collect(bytes, start, length, grouped)?;
    let clean_end = !bytes.get(end).is_some_and(|&b| is_word(b));
    (clean_end && checksum_ok(&chars)).then_some(end)
}

/// The `length` IBAN characters from `start` (uppercase letters and digits; with `grouped`,
/// a single space after every four), and where they end.
fn collect(bytes: &[u8], start: usize, length: usize, grouped: bool) -> Option<(Vec<u8>, usize)> {
    let mut chars = Vec::with_capacity(length);
    let mut i = start;
    while chars.len() < length {
        if grouped && !chars.is_empty() && chars.len() % 4 == 0 {
            if bytes.get(i) != Some(&b' ') {
                return None;
            }
            i += 1;
        }
        let &b = bytes.get(i)?;
        if !(b.is_ascii_uppercase() || b.is_ascii_digit()) {
            return None;
        }
        chars.push(b);
        i += 1;
    }
    Some((chars, i))
}

/// ISO 13616: with the first four characters moved to the end and letters read as 10..35, the
/// number is 1 modulo 97.
fn checksum_ok(chars: &[u8]) -> bool {
    let rotated = chars[4..].iter().chain(&chars[..4]);
    let remainder = rotated.fold(0u32, |acc, &c| {
        if c.is_ascii_digit() {
            (acc * 10 + u32::from(c - b'0')) % 97
        } else {
            (acc * 100 + u32::from(c - b'A') + 10) % 97
        }
    });
    remainder == 1
}
