//! API keys and other secrets: tokens with a well-known prefix (OpenAI, GitHub, AWS, Slack,
//! Google), PEM private keys, and long high-entropy values assigned to a key-like name
//! (`api_key=...`, `"token": "..."`). A random-looking string alone (a git hash, a UUID) is not
//! a secret: without a prefix it needs the assignment.

use super::scan::{entropy, find_all, is_word};

/// A prefixed token: the prefix, the characters allowed after it, and how many at least.
struct Prefixed {
    prefix: &'static [u8],
    body: fn(u8) -> bool,
    min: usize,
    max: usize,
}

fn alnum(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

fn alnum_dash(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

fn upper_alnum(b: u8) -> bool {
    b.is_ascii_uppercase() || b.is_ascii_digit()
}

fn base64url_dotted(b: u8) -> bool {
    alnum_dash(b) || b == b'.'
}

fn alnum_underscore(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

const PREFIXED: [Prefixed; 13] = [
    // OpenAI: "sk-" and project keys "sk-proj-" (the longer prefix is a prefix of the body).
    Prefixed {
        prefix: b"sk-",
        body: alnum_dash,
        min: 20,
        max: 200,
    },
    // GitHub personal, OAuth, user-to-server, server-to-server and refresh tokens.
    Prefixed {
        prefix: b"ghp_",
        body: alnum,
        min: 36,
        max: 255,
    },
    Prefixed {
        prefix: b"gho_",
        body: alnum,
        min: 36,
        max: 255,
    },
    Prefixed {
        prefix: b"ghu_",
        body: alnum,
        min: 36,
        max: 255,
    },
    Prefixed {
        prefix: b"ghs_",
        body: alnum,
        min: 36,
        max: 255,
    },
    Prefixed {
        prefix: b"ghr_",
        body: alnum,
        min: 36,
        max: 255,
    },
    Prefixed {
        prefix: b"github_pat_",
        body: alnum_underscore,
        min: 22,
        max: 255,
    },
    // AWS access key ids: exactly 16 more characters.
    Prefixed {
        prefix: b"AKIA",
        body: upper_alnum,
        min: 16,
        max: 16,
    },
    Prefixed {
        prefix: b"ASIA",
        body: upper_alnum,
        min: 16,
        max: 16,
    },
    // Slack bot, app, user and other tokens ("xoxb-", "xoxa-", "xoxp-", "xoxr-", "xoxs-").
    Prefixed {
        prefix: b"xox",
        body: alnum_dash,
        min: 12,
        max: 255,
    },
    // Google API keys: exactly 35 more characters.
    Prefixed {
        prefix: b"AIza",
        body: alnum_dash,
        min: 35,
        max: 35,
    },
    // GitLab personal access tokens.
    Prefixed {
        prefix: b"glpat-",
        body: alnum_dash,
        min: 20,
        max: 255,
    },
    // JSON Web Tokens: base64url of '{"' opens the header; then payload and signature.
    Prefixed {
        prefix: b"eyJ",
        body: base64url_dotted,
        min: 30,
        max: 8192,
    },
];

/// Names whose assigned value is a secret when it looks random: `OPENAI_API_KEY`, `token`...
const KEY_NAMES: [&str; 9] = [
    "api_key",
    "apikey",
    "api-key",
    "secret",
    "token",
    "access_key",
    "private_key",
    "auth",
    "credential",
];

/// Byte spans of the secrets in `text`.
pub fn find(text: &str) -> Vec<(usize, usize)> {
    let bytes = text.as_bytes();
    let mut spans = prefixed(bytes);
    spans.extend(private_keys(bytes));
    spans.extend(assigned(bytes));
    spans
}

fn prefixed(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    for kind in &PREFIXED {
        for start in find_all(bytes, kind.prefix) {
            if start > 0 && is_word(bytes[start - 1]) {
                continue;
            }
            let mut body_start = start + kind.prefix.len();
            // Slack: one letter naming the token type, then a dash.
            if kind.prefix == b"xox" {
                let typed = bytes.get(body_start).is_some_and(|b| b"baprs".contains(b))
                    && bytes.get(body_start + 1) == Some(&b'-');
                if !typed {
                    continue;
                }
                body_start += 2;
            }
            // Scan at most `max + 1` body bytes: that is enough to tell a run is too long, and
            // keeps hostile input ("sk-sk-sk-...", where `-` is a body byte) linear instead of
            // scanning to the end of the text from every occurrence of the prefix.
            let limit = bytes.len().min(body_start + kind.max + 1);
            let mut end = body_start;
            while end < limit && (kind.body)(bytes[end]) {
                end += 1;
            }
            // The run goes on past the limit: too long for this kind, whatever dots end it.
            if end == limit && bytes.get(end).is_some_and(|&b| (kind.body)(b)) {
                continue;
            }
            // A sentence may end right after a dotted token.
            while end > body_start && bytes[end - 1] == b'.' {
                end -= 1;
            }
            let len = end - body_start;
            let clean_end = !bytes.get(end).is_some_and(|&b| is_word(b));
            let body = &bytes[body_start..end];
            // A real key mixes letters and digits; "sk-this-is-not-a-key-at-all" does not.
            let random =
                body.iter().any(u8::is_ascii_digit) && body.iter().any(u8::is_ascii_alphabetic);
            if (kind.min..=kind.max).contains(&len) && clean_end && random {
                spans.push((start, end));
            }
        }
    }
    spans
}

/// PEM private key blocks, from "-----BEGIN ... PRIVATE KEY-----" to the matching END line (or
/// the end of the text when it is cut off).
fn private_keys(bytes: &[u8]) -> Vec<(usize, usize)> {
    const END_MARK: &[u8] = b"PRIVATE KEY-----";
    // The longest real header, "-----BEGIN ENCRYPTED PRIVATE KEY-----", is 37 bytes. Looking
    // for its mark in a bounded window (not up to the next newline) keeps hostile input such as
    // "-----BEGIN -----BEGIN ..." without a newline linear.
    const MAX_HEADER: usize = 100;
    let mut spans = Vec::new();
    let mut from = 0;
    for start in find_all(bytes, b"-----BEGIN ") {
        if start < from {
            continue;
        }
        let window = &bytes[start..bytes.len().min(start + MAX_HEADER)];
        let window = window
            .iter()
            .position(|&b| b == b'\n')
            .map_or(window, |p| &window[..p]);
        let Some(mark) = find_all(window, END_MARK).next() else {
            continue;
        };
        let header_end = start + mark + END_MARK.len();
        // The block ends at the first mark after the first END line (one pass over the text: a
        // mark after a later END line is also after the first one).
        let end = find_all(&bytes[header_end..], b"-----END ")
            .next()
            .and_then(|p| {
                let p = header_end + p;
                find_all(&bytes[p..], END_MARK)
                    .next()
                    .map(|close| p + close + END_MARK.len())
            })
            .unwrap_or(bytes.len());
        spans.push((start, end));
        from = end;
    }
    spans
}

/// Values assigned to key-like names: `name = value`, `name: value`, `"name": "value"`,
/// `name=>value`. The value must be long and random-looking: at least 16 characters, letters
/// and digits both, and an entropy of at least 3 bits per character.
fn assigned(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if !alnum_dash(bytes[i]) || (i > 0 && alnum_dash(bytes[i - 1])) {
            i += 1;
            continue;
        }
        let mut name_end = i;
        while name_end < bytes.len() && alnum_dash(bytes[name_end]) {
            name_end += 1;
        }
        let name = String::from_utf8_lossy(&bytes[i..name_end]).to_ascii_lowercase();
        i = name_end;
        if KEY_NAMES.iter().any(|k| name.ends_with(k))
            && let Some((value_end, span)) = value_after(bytes, name_end)
        {
            spans.extend(span);
            // Resume after the value: names inside it ("token=token=token=...", where `=` is a
            // value byte) would each rescan the rest of it, quadratic on hostile input.
            i = value_end;
        }
    }
    spans
}

/// Values longer than this are not keys (and are not checked for entropy).
const MAX_VALUE: usize = 4096;

/// The value assigned right after a name ending at `i`, if any: where its run of value bytes
/// ends, and its span when it is random-looking.
fn value_after(bytes: &[u8], mut i: usize) -> Option<(usize, Option<(usize, usize)>)> {
    let skip = |i: &mut usize, set: &[u8]| {
        while bytes.get(*i).is_some_and(|b| set.contains(b)) {
            *i += 1;
        }
    };
    skip(&mut i, b"\"' \t");
    match bytes.get(i) {
        Some(b'=') if bytes.get(i + 1) == Some(&b'>') => i += 2,
        Some(b'=' | b':') => i += 1,
        _ => return None,
    }
    skip(&mut i, b"\"' \t");
    let start = i;
    let is_value = |b: u8| b.is_ascii_alphanumeric() || b"-_+/=.".contains(&b);
    while bytes.get(i).is_some_and(|&b| is_value(b)) {
        i += 1;
    }
    let run_end = i;
    // Trailing sentence punctuation is not part of the value.
    while i > start && bytes[i - 1] == b'.' {
        i -= 1;
    }
    let value = &bytes[start..i];
    let random = (16..=MAX_VALUE).contains(&value.len())
        && value.iter().any(u8::is_ascii_digit)
        && value.iter().any(u8::is_ascii_alphabetic)
        && entropy(value) >= 3.0;
    Some((run_end, random.then_some((start, i))))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// About 200 KB of `unit`, repeated.
    fn hostile(unit: &str) -> String {
        unit.repeat(200_000 / unit.len())
    }

    fn found(text: &str) -> Vec<&str> {
        find(text).into_iter().map(|(s, e)| &text[s..e]).collect()
    }

    #[test]
    fn prefixed_tokens_are_bounded_by_their_kind() {
        let body = "a1".repeat(100);
        let exact = format!("sk-{body}");
        assert_eq!(found(&exact), [exact.as_str()]);
        // One byte too many: not a key, however it ends.
        assert!(found(&format!("sk-{body}b")).is_empty());
        assert!(found(&format!("sk-{body}b...")).is_empty());
    }

    #[test]
    fn repeated_prefixes_stay_linear() {
        // Every "sk-" used to scan to the end of the text.
        let key = "sk-proj-abc123DEF456ghi789JKL012mno345";
        let text = format!("{} {key}", hostile("sk-"));
        assert_eq!(found(&text), [key]);
    }

    #[test]
    fn repeated_key_headers_stay_linear() {
        // Without a newline every "-----BEGIN " used to scan its "line" to the end of the text.
        let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA1b2c3d4\n-----END RSA PRIVATE KEY-----";
        let text = format!("{}\n{pem}", hostile("-----BEGIN "));
        assert_eq!(found(&text), [pem]);
        // Many END lines without a closing mark: the block runs to the end of the text.
        let cut = format!("-----BEGIN PRIVATE KEY-----\n{}", hostile("-----END "));
        assert_eq!(found(&cut), [cut.as_str()]);
        // A key pasted on one line (newlines escaped) ends at its END line.
        let inline = r"-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----";
        assert_eq!(found(&format!("{inline} tail")), [inline]);
    }

    #[test]
    fn repeated_assignments_stay_linear() {
        // `=` is a value byte: every "token" used to scan the rest of the text as its value.
        let value = "9f8e7d6c5b4a39281706f5e4d3c2b1a0";
        let text = format!("{} api_key={value}", hostile("token="));
        assert_eq!(found(&text), [value]);
        // A value over the cap is not a key.
        let long = "a1b2c3d4".repeat(MAX_VALUE / 8 + 1);
        assert!(found(&format!("token={long}")).is_empty());
    }
}
