//! Cleaning model output that a strategy must parse: small models wrap the one line asked for
//! in list numbers, bullets, quotes, markdown, labels ("Text:") and preambles ("Sure! Here is
//! the rewritten prompt:"). Each function removes one kind of wrapping and leaves anything it
//! does not recognise alone; [`tidy`] applies them all in a sensible order.
//!
//! ```
//! use textnlp_plugin_sdk::clean;
//!
//! let raw = "Sure! Here is a new task:\n\n**Task:** \"Write a haiku about rain.\"";
//! assert_eq!(clean::tidy(raw, &["task"]), "Write a haiku about rain.");
//! assert_eq!(clean::strip_list_marker("12. Name three birds."), "Name three birds.");
//! ```

/// Words separated by Unicode whitespace (Python's `len(text.split())`).
pub fn word_count(text: &str) -> usize {
    text.split_whitespace().count()
}

/// Every run of whitespace collapsed to one space, trimmed (`re.sub(r"\s+", " ", t).strip()`).
pub fn squash_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Words whose "N:" or "N." after them is a list label ("Task 3: ...", "Instruction 2. ...").
const NUMBERED_LABELS: [&str; 6] = [
    "task",
    "instruction",
    "question",
    "prompt",
    "example",
    "step",
];

/// `line` without a leading list marker: a number ("1.", "2)", "(3)", "4:", "5 -"), a bullet
/// ("-", "*", "•", "+", "–") or a numbered label ("Task 3:"), each followed by whitespace.
/// Markers nest once ("- 1. x"). A number that is part of the text ("3.5 kg", "2024 was")
/// stays.
pub fn strip_list_marker(line: &str) -> &str {
    let mut rest = line.trim_start();
    for _ in 0..2 {
        match strip_one_marker(rest) {
            Some(stripped) => rest = stripped.trim_start(),
            None => break,
        }
    }
    rest
}

fn strip_one_marker(text: &str) -> Option<&str> {
    let followed_by_space = |rest: &str| rest.is_empty() || rest.starts_with(char::is_whitespace);
    // Bullets. "**bold**" is emphasis, not a bullet.
    for bullet in ['-', '*', '•', '+', '–', '—', '·', '▪'] {
        if let Some(rest) = text.strip_prefix(bullet)
            && followed_by_space(rest)
        {
            return Some(rest);
        }
    }
    // Numbers: "1.", "1)", "(1)", "1:", "1 -".
    let (open, body) = match text.strip_prefix('(') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let digits = body.bytes().take_while(u8::is_ascii_digit).count();
    if (1..=4).contains(&digits) {
        let after = &body[digits..];
        let closers: &[&str] = if open {
            &[")"]
        } else {
            &[".", ")", ":", " -", " –", "-"]
        };
        for closer in closers {
            if let Some(rest) = after.strip_prefix(closer)
                && followed_by_space(rest)
            {
                return Some(rest);
            }
        }
    }
    // Numbered labels: "Task 3:", "Instruction 2.".
    let word_len = text.bytes().take_while(u8::is_ascii_alphabetic).count();
    let word = &text[..word_len];
    if NUMBERED_LABELS.iter().any(|l| word.eq_ignore_ascii_case(l)) {
        let after = text[word_len..]
            .trim_start_matches(' ')
            .trim_start_matches('#');
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 {
            let after = &after[digits..];
            for closer in [":", "."] {
                if let Some(rest) = after.strip_prefix(closer)
                    && followed_by_space(rest)
                {
                    return Some(rest);
                }
            }
        }
    }
    None
}

/// Pairs of quotes that may wrap a whole output.
const QUOTES: [(char, char); 7] = [
    ('"', '"'),
    ('\'', '\''),
    ('`', '`'),
    ('“', '”'),
    ('‘', '’'),
    ('«', '»'),
    ('„', '“'),
];

/// `text` (trimmed) without quotes that wrap all of it, repeatedly (`"'x'"` → `x`). A pair is
/// only removed when the closing quote does not also occur inside, so `"a" and "b"` stays.
/// A lone double quote at either end, with no other quote of its kind in the text (a model
/// that opened a quotation and never closed it), is removed too.
pub fn strip_wrapping_quotes(text: &str) -> &str {
    let mut rest = text.trim();
    'outer: loop {
        for (open, close) in QUOTES {
            if let Some(inner) = rest.strip_prefix(open).and_then(|r| r.strip_suffix(close))
                && !inner.contains(close)
                && !(open != close && inner.contains(open))
            {
                rest = inner.trim();
                continue 'outer;
            }
        }
        for quote in ['"', '“', '”'] {
            let lone = rest.matches(['"', '“', '”']).count() == 1;
            if lone && let Some(inner) = rest.strip_prefix(quote) {
                rest = inner.trim();
                continue 'outer;
            }
            if lone && let Some(inner) = rest.strip_suffix(quote) {
                rest = inner.trim();
                continue 'outer;
            }
        }
        return rest;
    }
}

/// `text` (trimmed) without markdown that wraps all of it: a heading's `#`s, `**bold**`,
/// `__bold__`, `*italic*`, `_italic_`, and a fenced code block (```` ```lang ... ``` ````).
pub fn strip_markdown(text: &str) -> &str {
    let mut rest = text.trim();
    loop {
        let before = rest;
        if let Some(inner) = rest.strip_prefix("```")
            && let Some(inner) = inner.strip_suffix("```")
        {
            // Drop the info string ("```text") with the fence's first line.
            rest = match inner.split_once('\n') {
                Some((info, body)) if !info.trim().contains(' ') => body,
                _ => inner,
            }
            .trim();
        }
        if rest.starts_with('#') {
            let hashes = rest.bytes().take_while(|&b| b == b'#').count();
            // "#Rewritten Prompt#" is a label, not a heading: only "# " opens a heading.
            if rest[hashes..].starts_with([' ', '\t']) {
                rest = rest[hashes..].trim();
            }
        }
        for wrap in ["**", "__", "*", "_"] {
            if let Some(inner) = rest.strip_prefix(wrap).and_then(|r| r.strip_suffix(wrap))
                && !inner.is_empty()
                && !inner.contains(wrap)
            {
                rest = inner.trim();
                break;
            }
        }
        if rest == before {
            return rest;
        }
    }
}

/// `text` (trimmed) without a leading label: one of `labels` (case-insensitive, spaces inside
/// a label match any whitespace) with optional markdown or `#` around it, followed by a colon
/// or the end of the line: `Text: x`, `**Text:** x`, `#Rewritten Prompt#:\n x`,
/// `### New task\n x`. Applied repeatedly, so `Output: Text: x` loses both.
pub fn strip_label<'a>(text: &'a str, labels: &[&str]) -> &'a str {
    let mut rest = text.trim();
    'outer: loop {
        let body = rest.trim_start_matches(['*', '#', '_', ' ']);
        for label in labels {
            if let Some(after) = strip_prefix_words(body, label) {
                let after = after.trim_start_matches(['*', '#', '_', ' ']);
                let after = if let Some(a) = after.strip_prefix(':') {
                    a
                } else if after.is_empty() || after.starts_with(['\n', '\r']) {
                    after
                } else {
                    continue;
                };
                rest = after.trim_start_matches(['*', '_']).trim();
                continue 'outer;
            }
        }
        return rest;
    }
}

/// `text` without `words` at its start, compared case-insensitively with runs of whitespace
/// in `words` matching any run of spaces or tabs; `None` when it does not start with them or
/// they end inside a word.
fn strip_prefix_words<'a>(text: &'a str, words: &str) -> Option<&'a str> {
    let mut rest = text;
    for (i, word) in words.split_whitespace().enumerate() {
        if i > 0 {
            let trimmed = rest.trim_start_matches([' ', '\t']);
            if trimmed.len() == rest.len() {
                return None;
            }
            rest = trimmed;
        }
        let head = rest.get(..word.len())?;
        if !head.eq_ignore_ascii_case(word) {
            return None;
        }
        rest = &rest[word.len()..];
    }
    match rest.chars().next() {
        Some(c) if c.is_alphanumeric() => None,
        _ => Some(rest),
    }
}

/// Words that open a line introducing what follows ("Here is the rewritten prompt:").
const PREAMBLE_OPENERS: [&str; 11] = [
    "here",
    "sure",
    "certainly",
    "okay",
    "ok",
    "of course",
    "absolutely",
    "below",
    "the following",
    "great",
    "alright",
];

/// Of those, the ones that make a short first line a preamble even without a colon
/// ("Sure!", "Certainly, I can help with that.").
const ASSENT_OPENERS: [&str; 6] = ["sure", "certainly", "okay", "ok", "of course", "absolutely"];

/// `text` (trimmed) without a first line that only introduces the rest: one that opens with
/// "Here", "Sure", "Certainly", ... and ends with a colon ("Here is a new task:"), or a short
/// assent ("Sure!", "Certainly, here you go."), when more text follows. A one-line output is
/// never touched, and "Here is my review.\n..." (no colon) keeps its first line.
pub fn strip_preamble(text: &str) -> &str {
    let text = text.trim();
    let Some((first, rest)) = text.split_once('\n') else {
        return text;
    };
    let rest = rest.trim();
    let first = first.trim().trim_start_matches(['*', '#', '_', ' ']);
    let opens_with = |words: &[&str]| words.iter().any(|w| strip_prefix_words(first, w).is_some());
    let introduces =
        first.trim_end_matches(['*', '_', ' ']).ends_with(':') && opens_with(&PREAMBLE_OPENERS);
    let assents = opens_with(&ASSENT_OPENERS) && word_count(first) <= 12;
    if (introduces || assents) && !rest.is_empty() {
        rest
    } else {
        text
    }
}

/// Words that end a short introduction to a quotation (`The text is "..."`).
const INTRO_ENDINGS: [&str; 6] = ["is", "was", "are", "reads", "be", "says"];

/// The quotation in an output that only introduces and quotes it: `The text is: "Great food."`,
/// `Here's my review: “Great food.”`, `Text would be "Great food".` become `Great food.`. The
/// introduction must be at most 16 words ending with a colon, or at most 8 ending with "is",
/// "was", "are", "reads", "be" or "says", and the quotation must run to the end (a final `.`
/// aside) with no closing quote inside. Anything else is returned trimmed, unchanged.
pub fn unquote_introduced(text: &str) -> &str {
    let text = text.trim();
    let Some((at, open)) = text
        .char_indices()
        .find(|(_, c)| matches!(c, '"' | '“' | '«'))
    else {
        return text;
    };
    let close = match open {
        '“' => '”',
        '«' => '»',
        _ => '"',
    };
    let intro = text[..at].trim();
    let words = word_count(intro);
    let intro_ok = !intro.is_empty()
        && ((intro.ends_with(':') && words <= 16)
            || (words <= 8
                && intro
                    .rsplit(char::is_whitespace)
                    .next()
                    .is_some_and(|w| INTRO_ENDINGS.iter().any(|e| w.eq_ignore_ascii_case(e)))));
    let body = text[at + open.len_utf8()..].trim_end();
    let body = body.strip_suffix('.').unwrap_or(body).trim_end();
    match body.strip_suffix(close) {
        Some(inner) if intro_ok && !inner.contains(close) && !inner.trim().is_empty() => {
            inner.trim()
        }
        _ => text,
    }
}

/// A model output reduced to its content: preamble, code fence, markdown, `labels`, list
/// marker and wrapping quotes removed (in that order, twice, since wrappings nest), then
/// trimmed. Inner text is left as written. ([`unquote_introduced`] is not applied: an
/// instruction such as `Translate into French: "I love cats."` has that very shape; call it
/// where the output is only the quoted text.)
pub fn tidy(text: &str, labels: &[&str]) -> String {
    let mut rest = text.trim();
    for _ in 0..2 {
        rest = strip_preamble(rest);
        rest = strip_markdown(rest);
        rest = strip_label(rest, labels);
        rest = strip_list_marker(rest);
        rest = strip_markdown(rest);
        rest = strip_wrapping_quotes(rest);
    }
    rest.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_markers() {
        for (line, want) in [
            ("1. Write a poem.", "Write a poem."),
            ("  12) Write a poem.", "Write a poem."),
            ("(3) Write a poem.", "Write a poem."),
            ("4: Write", "Write"),
            ("5 - Write", "Write"),
            ("- Write", "Write"),
            ("* Write", "Write"),
            ("• Write", "Write"),
            ("- 2. Write", "Write"),
            ("Task 9: Write", "Write"),
            ("task #9: Write", "Write"),
            ("3.5 kg of flour", "3.5 kg of flour"),
            ("2024 was a year", "2024 was a year"),
            ("**Bold** start", "**Bold** start"),
            ("-minus", "-minus"),
            ("Tasks are fun", "Tasks are fun"),
            ("", ""),
            ("9.", ""),
        ] {
            assert_eq!(strip_list_marker(line), want, "{line:?}");
        }
    }

    #[test]
    fn wrapping_quotes() {
        assert_eq!(strip_wrapping_quotes(" \"Hello.\" "), "Hello.");
        assert_eq!(strip_wrapping_quotes("“'Hi'”"), "Hi");
        assert_eq!(strip_wrapping_quotes("\"a\" and \"b\""), "\"a\" and \"b\"");
        assert_eq!(strip_wrapping_quotes("\""), "");
        assert_eq!(strip_wrapping_quotes("\"\""), "");
        assert_eq!(strip_wrapping_quotes("plain"), "plain");
        assert_eq!(
            strip_wrapping_quotes("\"The sea is vast."),
            "The sea is vast."
        );
        assert_eq!(
            strip_wrapping_quotes("The sea is vast.”"),
            "The sea is vast."
        );
        assert_eq!(strip_wrapping_quotes("\"Hi\" she said"), "\"Hi\" she said");
        assert_eq!(strip_wrapping_quotes("She said \"hi"), "She said \"hi");
    }

    #[test]
    fn markdown() {
        assert_eq!(strip_markdown("**Write a poem.**"), "Write a poem.");
        assert_eq!(strip_markdown("## Write a poem."), "Write a poem.");
        assert_eq!(strip_markdown("*x*"), "x");
        assert_eq!(
            strip_markdown("```text\nWrite a poem.\n```"),
            "Write a poem."
        );
        assert_eq!(strip_markdown("```\nfn main() {}\n```"), "fn main() {}");
        assert_eq!(strip_markdown("**a** and **b**"), "**a** and **b**");
        assert_eq!(
            strip_markdown("#Rewritten Prompt#: x"),
            "#Rewritten Prompt#: x"
        );
        assert_eq!(strip_markdown("**"), "**");
    }

    #[test]
    fn labels() {
        let labels = ["text", "rewritten prompt", "output"];
        assert_eq!(strip_label("Text: Great film!", &labels), "Great film!");
        assert_eq!(strip_label("**Text:** Great film!", &labels), "Great film!");
        assert_eq!(strip_label("**Text**: Great film!", &labels), "Great film!");
        assert_eq!(
            strip_label("#Rewritten Prompt#:\n Explain tides.", &labels),
            "Explain tides."
        );
        assert_eq!(strip_label("Rewritten  prompt: x", &labels), "x");
        assert_eq!(strip_label("### Output\nx", &labels), "x");
        assert_eq!(strip_label("Output: Text: x", &labels), "x");
        assert_eq!(
            strip_label("Textbooks are heavy.", &labels),
            "Textbooks are heavy."
        );
        assert_eq!(
            strip_label("Text messages: rude?", &labels),
            "Text messages: rude?"
        );
        assert_eq!(strip_label("Text", &labels), "");
    }

    #[test]
    fn preambles() {
        assert_eq!(
            strip_preamble("Sure! Here is the rewritten prompt:\n\nExplain tides."),
            "Explain tides."
        );
        assert_eq!(
            strip_preamble("Certainly.\nExplain tides."),
            "Explain tides."
        );
        assert_eq!(strip_preamble("Here's a thought."), "Here's a thought.");
        assert_eq!(
            strip_preamble("Explain tides.\nUse examples."),
            "Explain tides.\nUse examples."
        );
        assert_eq!(strip_preamble("Sure:\n"), "Sure:");
        assert_eq!(strip_preamble("Hereford cattle:\nx"), "Hereford cattle:\nx");
        assert_eq!(
            strip_preamble("Here is what I think.\nIt is great."),
            "Here is what I think.\nIt is great."
        );
        assert_eq!(
            strip_preamble("**Here is the text:**\nIt is great."),
            "It is great."
        );
        assert_eq!(
            strip_preamble(
                "Sure, the weather was lovely and we walked for many hours along the shore.\nx"
            ),
            "Sure, the weather was lovely and we walked for many hours along the shore.\nx"
        );
    }

    #[test]
    fn introduced_quotations() {
        for (text, want) in [
            ("The text is: \"Great food.\"", "Great food."),
            ("The text is \"Great food\".", "Great food"),
            ("Here's my review: “Great food.”", "Great food."),
            (
                "The following text has a positive label and a formal tone: \"Good.\"",
                "Good.",
            ),
            ("My answer would be \"yes, gladly\"", "yes, gladly"),
            (
                "In this text, \"Positive\" is the label.",
                "In this text, \"Positive\" is the label.",
            ),
            ("He said \"hi\" and \"bye\"", "He said \"hi\" and \"bye\""),
            ("\"Great food.\"", "\"Great food.\""),
            (
                "One two three four five six seven eight nine is \"x\"",
                "One two three four five six seven eight nine is \"x\"",
            ),
            ("The text is: \"\"", "The text is: \"\""),
            ("The text is: \"unclosed", "The text is: \"unclosed"),
        ] {
            assert_eq!(unquote_introduced(text), want, "{text:?}");
        }
    }

    #[test]
    fn tidy_composes() {
        assert_eq!(tidy("  1. \"Name a bird.\"", &[]), "Name a bird.");
        assert_eq!(
            tidy("Here is my answer:\n**Text:** “I loved it.”", &["text"]),
            "I loved it."
        );
        assert_eq!(tidy("Text: ", &["text"]), "");
        assert_eq!(tidy("The end.", &["text"]), "The end.");
        let instruction = "Translate into French: \"I love cats.\"";
        assert_eq!(tidy(instruction, &["task"]), instruction);
        assert_eq!(word_count(" a  b\tc\n"), 3);
        assert_eq!(squash_whitespace(" a \n b  c "), "a b c");
    }
}
