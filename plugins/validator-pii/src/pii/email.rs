//! Email addresses: `local@domain.tld`, the domain of two or more labels and an alphabetic TLD.

use super::scan::is_word;

/// Asset names like "icon@2x.png" look like addresses; their "TLD" gives them away.
const FILE_EXTENSIONS: [&str; 8] = ["png", "jpg", "jpeg", "gif", "svg", "webp", "pdf", "txt"];

/// Byte spans of the email addresses in `text`.
pub fn find(text: &str) -> Vec<(usize, usize)> {
    let bytes = text.as_bytes();
    bytes
        .iter()
        .enumerate()
        .filter(|&(_, &b)| b == b'@')
        .filter_map(|(at, _)| Some((local_start(bytes, at)?, domain_end(bytes, at + 1)?)))
        .collect()
}

fn is_local(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-')
}

/// Where the local part before the `@` at `at` starts: a run of address characters that
/// neither starts nor ends with a dot, and is not glued to other text.
fn local_start(bytes: &[u8], at: usize) -> Option<usize> {
    let mut start = at;
    while start > 0 && is_local(bytes[start - 1]) {
        start -= 1;
    }
    while start < at && bytes[start] == b'.' {
        start += 1;
    }
    // After a "/" it is the user of a URL ("https://user@host"), not an address.
    let glued = start > 0 && (is_word(bytes[start - 1]) || matches!(bytes[start - 1], b'@' | b'/'));
    let len = at - start;
    (len > 0 && len <= 64 && bytes[at - 1] != b'.' && !glued).then_some(start)
}

/// Where the domain starting at `start` ends: labels of letters, digits and inner hyphens,
/// joined by dots, at least two, the last an alphabetic TLD of two or more letters.
fn domain_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut labels: Vec<(usize, usize)> = Vec::new();
    let mut i = start;
    loop {
        let label_start = i;
        while bytes
            .get(i)
            .is_some_and(|&b| b.is_ascii_alphanumeric() || b == b'-')
        {
            i += 1;
        }
        if i == label_start {
            break;
        }
        labels.push((label_start, i));
        let more =
            bytes.get(i) == Some(&b'.') && bytes.get(i + 1).is_some_and(u8::is_ascii_alphanumeric);
        if !more {
            break;
        }
        i += 1;
    }
    let &(tld_start, end) = labels.last()?;
    let tld = &bytes[tld_start..end];
    let valid = labels.len() >= 2
        && labels
            .iter()
            .all(|&(s, e)| bytes[s] != b'-' && bytes[e - 1] != b'-')
        && tld.len() >= 2
        && tld.iter().all(u8::is_ascii_alphabetic)
        && !FILE_EXTENSIONS
            .iter()
            .any(|ext| ext.as_bytes().eq_ignore_ascii_case(tld))
        && !bytes.get(end).is_some_and(|&b| is_word(b) || b == b'@');
    valid.then_some(end)
}
