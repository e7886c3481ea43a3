//! IP addresses: dotted-quad IPv4 (octets 0-255 without leading zeros, not part of a longer
//! dotted number) and IPv6 (eight groups, or fewer around one `::`, optionally ending in an
//! IPv4 address).

use super::scan::is_word;

/// Byte spans of the IPv4 and IPv6 addresses in `text`.
pub fn find(text: &str) -> Vec<(usize, usize)> {
    let bytes = text.as_bytes();
    let mut spans = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let found = if starts_token(bytes, i) {
            ipv6_at(bytes, i).or_else(|| ipv4_at(bytes, i).filter(|&end| ends_v4(bytes, end)))
        } else {
            None
        };
        match found {
            Some(end) => {
                spans.push((i, end));
                i = end;
            }
            None => i += 1,
        }
    }
    spans
}

fn starts_token(bytes: &[u8], i: usize) -> bool {
    let prev = i.checked_sub(1).map(|p| bytes[p]);
    let opens = bytes[i].is_ascii_hexdigit() || bytes[i..].starts_with(b"::");
    opens && !prev.is_some_and(|b| is_word(b) || matches!(b, b'.' | b':' | b'-'))
}

/// An IPv4 address ends where no digit, letter or further ".digit" follows ("1.2.3.4.5" is no
/// address).
fn ends_v4(bytes: &[u8], end: usize) -> bool {
    match bytes.get(end) {
        None => true,
        Some(&b) if is_word(b) => false,
        Some(b'.' | b'-') => !bytes.get(end + 1).is_some_and(u8::is_ascii_alphanumeric),
        Some(_) => true,
    }
}

/// The end of the dotted quad at `start`, without checking what follows.
fn ipv4_at(bytes: &[u8], start: usize) -> Option<usize> {
    let mut i = start;
    for octet in 0..4 {
        if octet > 0 {
            if bytes.get(i) != Some(&b'.') {
                return None;
            }
            i += 1;
        }
        i = octet_end(bytes, i)?;
    }
    Some(i)
}

fn octet_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut end = start;
    while end < start + 3 && bytes.get(end).is_some_and(u8::is_ascii_digit) {
        end += 1;
    }
    let digits = &bytes[start..end];
    let value = digits
        .iter()
        .fold(0u32, |acc, &d| acc * 10 + u32::from(d - b'0'));
    let leading_zero = digits.len() > 1 && digits[0] == b'0';
    (!digits.is_empty() && value <= 255 && !leading_zero).then_some(end)
}

/// The end of the IPv6 address at `start`: the longest run of hex digits, colons and dots that
/// parses as one, and ends cleanly.
fn ipv6_at(bytes: &[u8], start: usize) -> Option<usize> {
    let mut end = start;
    // 45 characters is the longest IPv6 text form; the cap keeps scanning linear.
    while end < bytes.len()
        && end - start < 45
        && (bytes[end].is_ascii_hexdigit() || matches!(bytes[end], b':' | b'.'))
    {
        end += 1;
    }
    if !bytes[start..end].contains(&b':') {
        return None;
    }
    // The run may take in punctuation after the address ("... fe80::1."): retry without it.
    loop {
        let clean_end = !bytes.get(end).is_some_and(|&b| is_word(b));
        if clean_end && valid_ipv6(&bytes[start..end]) {
            return Some(end);
        }
        if end > start && matches!(bytes[end - 1], b'.' | b':') {
            end -= 1;
        } else {
            return None;
        }
    }
}

/// Whether `s` is an IPv6 address in text form. Forms without a digit ("add::bad") are left
/// out: they read as code or words far more often than as addresses.
fn valid_ipv6(s: &[u8]) -> bool {
    if !s.iter().any(u8::is_ascii_digit) || !s.contains(&b':') {
        return false;
    }
    let text = String::from_utf8_lossy(s);
    let halves: Vec<&str> = text.split("::").collect();
    let groups = |half: &str, allow_v4: bool| -> Option<usize> {
        if half.is_empty() {
            return Some(0);
        }
        let parts: Vec<&str> = half.split(':').collect();
        let mut count = 0;
        for (k, part) in parts.iter().enumerate() {
            let last = k + 1 == parts.len();
            if last && allow_v4 && part.contains('.') {
                let v4 = part.as_bytes();
                (ipv4_at(v4, 0)? == v4.len()).then_some(())?;
                count += 2;
            } else if (1..=4).contains(&part.len()) && part.bytes().all(|b| b.is_ascii_hexdigit()) {
                count += 1;
            } else {
                return None;
            }
        }
        Some(count)
    };
    match halves[..] {
        [whole] => groups(whole, true) == Some(8),
        [left, right] => match (groups(left, false), groups(right, true)) {
            (Some(l), Some(r)) => l + r < 8,
            _ => false,
        },
        _ => false,
    }
}
