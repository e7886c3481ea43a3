//! Byte-level helpers shared by the scanners. Every pattern is ASCII, so spans that start and
//! end on ASCII bytes are always valid `str` boundaries. Bytes of non-ASCII characters count as
//! word characters: a match glued to a letter like "é" is not a separate token.

/// A letter, digit, underscore or part of a non-ASCII character.
pub fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

/// Whether a number-like match may start at `start`: not glued to a word, and not the tail of
/// a longer number or code ("INV-2024", "1.2.3", "#123", "+44").
pub fn number_starts(bytes: &[u8], start: usize) -> bool {
    match start.checked_sub(1).map(|i| bytes[i]) {
        None => true,
        Some(b) => !is_word(b) && !matches!(b, b'-' | b'.' | b'/' | b'+' | b'#' | b'$' | b'@'),
    }
}

/// Whether a number-like match may end at `end`: not glued to a word, and not followed by a
/// separator that continues the number ("2024-01-15", "1.2.3.4.5").
pub fn number_ends(bytes: &[u8], end: usize) -> bool {
    match bytes.get(end) {
        None => true,
        Some(&b) if is_word(b) => false,
        Some(b'-' | b'.' | b'/' | b',' | b':') => {
            !bytes.get(end + 1).is_some_and(u8::is_ascii_digit)
        }
        Some(_) => true,
    }
}

/// The end of the run of ASCII digits starting at `i`.
pub fn digits_end(bytes: &[u8], mut i: usize) -> usize {
    while bytes.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    i
}

/// Digit groups separated by single separator bytes from `seps`, starting at `start`: the end
/// of each group and the separator that follows it (none for the last). At most `max_groups`.
pub fn digit_groups(bytes: &[u8], start: usize, seps: &[u8], max_groups: usize) -> Vec<Group> {
    let mut groups = Vec::new();
    let mut i = start;
    while groups.len() < max_groups {
        let end = digits_end(bytes, i);
        if end == i {
            break;
        }
        let sep = bytes.get(end).copied().filter(|b| seps.contains(b));
        let continues = sep.is_some() && bytes.get(end + 1).is_some_and(u8::is_ascii_digit);
        groups.push(Group {
            start: i,
            end,
            sep: if continues { sep } else { None },
        });
        if !continues {
            break;
        }
        i = end + 1;
    }
    groups
}

/// One run of digits.
#[derive(Clone, Copy, Debug)]
pub struct Group {
    pub start: usize,
    pub end: usize,
    /// The separator after the group, when another group follows it.
    pub sep: Option<u8>,
}

impl Group {
    /// How many digits.
    pub fn len(&self) -> usize {
        self.end - self.start
    }
}

/// Whether all the separators between `groups` are the same byte (vacuously for one group).
pub fn same_separator(groups: &[Group]) -> bool {
    let seps: Vec<Option<u8>> = groups[..groups.len().saturating_sub(1)]
        .iter()
        .map(|g| g.sep)
        .collect();
    seps.windows(2).all(|w| w[0] == w[1])
}

/// Shannon entropy of `bytes` in bits per byte.
pub fn entropy(bytes: &[u8]) -> f64 {
    if bytes.is_empty() {
        return 0.0;
    }
    let mut counts = [0usize; 256];
    for &b in bytes {
        counts[usize::from(b)] += 1;
    }
    let n = bytes.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

/// The positions of each occurrence of `needle` in `haystack`.
pub fn find_all<'a>(haystack: &'a [u8], needle: &'a [u8]) -> impl Iterator<Item = usize> + 'a {
    (0..haystack.len().saturating_sub(needle.len() - 1))
        .filter(move |&i| haystack[i..].starts_with(needle))
}
