//! Payment card numbers: 13 to 19 digits, contiguous or in the usual groups (4-4-4-4,
//! 4-6-5, 4-6-4, 4-4-4-4-3) joined by one kind of separator (space or hyphen), with a known
//! issuer prefix and length, and a valid Luhn checksum.

use super::scan::{digit_groups, number_ends, number_starts, same_separator};

const GROUPINGS: [&[usize]; 5] = [
    &[4, 4, 4, 4],
    &[4, 6, 5],
    &[4, 6, 4],
    &[4, 4, 4, 4, 3],
    &[4, 4, 4, 4, 2],
];

/// Byte spans of the card numbers in `text`.
pub fn find(text: &str) -> Vec<(usize, usize)> {
    let bytes = text.as_bytes();
    let mut spans = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if !bytes[i].is_ascii_digit() || !number_starts(bytes, i) {
            i += 1;
            continue;
        }
        let groups = digit_groups(bytes, i, b" -", 6);
        let end = groups.last().map_or(i + 1, |g| g.end);
        let lens: Vec<usize> = groups.iter().map(|g| g.len()).collect();
        let shaped = (groups.len() == 1 && (13..=19).contains(&lens[0]))
            || (GROUPINGS.contains(&&lens[..]) && same_separator(&groups));
        if shaped && number_ends(bytes, end) {
            let digits: Vec<u8> = groups
                .iter()
                .flat_map(|g| bytes[g.start..g.end].iter().map(|d| d - b'0'))
                .collect();
            if known_issuer(&digits) && luhn(&digits) {
                spans.push((i, end));
            }
        }
        i = end;
    }
    spans
}

/// The Luhn checksum: doubling every second digit from the right, the sum is a multiple of 10.
pub fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(k, &d)| {
            let d = u32::from(d);
            if k % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Whether the prefix (IIN) and length belong to a major card network: Visa, Mastercard,
/// American Express, Discover, Diners Club, JCB, UnionPay, Maestro.
fn known_issuer(digits: &[u8]) -> bool {
    let prefix = |n: usize| {
        digits[..n]
            .iter()
            .fold(0u32, |acc, &d| acc * 10 + u32::from(d))
    };
    let len = digits.len();
    let (p1, p2, p3, p4) = (prefix(1), prefix(2), prefix(3), prefix(4));
    match p1 {
        4 => matches!(len, 13 | 16 | 19),
        3 => {
            (matches!(p2, 34 | 37) && len == 15)
                || ((matches!(p2, 36 | 38) || (300..=305).contains(&p3)) && len == 14)
                || ((3528..=3589).contains(&p4) && (16..=19).contains(&len))
        }
        2 => (2221..=2720).contains(&p4) && len == 16,
        5 => {
            ((51..=55).contains(&p2) && len == 16)
                || (matches!(p2, 50 | 56..=58) && (13..=19).contains(&len))
        }
        6 => {
            let discover = p4 == 6011 || (644..=649).contains(&p3) || p2 == 65;
            let maestro = matches!(p4, 6304 | 6759 | 6761..=6763);
            (discover || p2 == 62 || maestro) && (16..=19).contains(&len)
        }
        _ => false,
    }
}
