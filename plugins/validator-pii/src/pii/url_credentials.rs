//! URLs with credentials: `scheme://user:password@host[:port]`. The span ends after the host
//! and port, so a redacted URL keeps its path.

use super::scan::{find_all, is_word};

/// Byte spans of the URLs with credentials in `text`.
pub fn find(text: &str) -> Vec<(usize, usize)> {
    let bytes = text.as_bytes();
    find_all(bytes, b"://")
        .filter_map(|sep| {
            let start = scheme_start(bytes, sep)?;
            let at = userinfo_end(bytes, sep + 3)?;
            let end = host_end(bytes, at + 1)?;
            Some((start, end))
        })
        .collect()
}

/// Where the scheme ending at `sep` starts: a letter, then letters, digits, "+", "-", ".".
fn scheme_start(bytes: &[u8], sep: usize) -> Option<usize> {
    let mut start = sep;
    while start > 0
        && (bytes[start - 1].is_ascii_alphanumeric()
            || matches!(bytes[start - 1], b'+' | b'-' | b'.'))
    {
        start -= 1;
    }
    while start < sep && !bytes[start].is_ascii_alphabetic() {
        start += 1;
    }
    let glued = start > 0 && is_word(bytes[start - 1]);
    (start < sep && !glued).then_some(start)
}

/// The position of the "@" closing a `user:password` userinfo that starts at `start`: both
/// parts non-empty, made of the characters RFC 3986 allows there.
fn userinfo_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut i = start;
    let mut colon = None;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'@' => break,
            b':' if colon.is_none() => colon = Some(i),
            _ if b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=:".contains(&b) => {}
            _ => return None,
        }
        i += 1;
    }
    let colon = colon?;
    let has_parts = colon > start && i > colon + 1;
    (bytes.get(i) == Some(&b'@') && has_parts).then_some(i)
}

/// The end of the host (name, IPv4 or bracketed IPv6) and optional port starting at `start`.
fn host_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut i = start;
    if bytes.get(i) == Some(&b'[') {
        while bytes
            .get(i)
            .is_some_and(|&b| b != b']' && !b.is_ascii_whitespace())
        {
            i += 1;
        }
        if bytes.get(i) != Some(&b']') {
            return None;
        }
        i += 1;
    } else {
        while bytes
            .get(i)
            .is_some_and(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
        {
            i += 1;
        }
        // A trailing dot ends the sentence, not the host.
        while i > start && bytes[i - 1] == b'.' {
            i -= 1;
        }
    }
    if i == start {
        return None;
    }
    if bytes.get(i) == Some(&b':') && bytes.get(i + 1).is_some_and(u8::is_ascii_digit) {
        i = super::scan::digits_end(bytes, i + 1);
    }
    Some(i)
}
