//! PII detection and redaction, usable on its own: [`detect`] finds the spans, [`redact`]
//! replaces each with a typed placeholder (`[EMAIL]`, `[PHONE]`, ...).
//!
//! One hand-written scanner per type returns byte spans; overlapping spans are resolved so the
//! longest wins, and among equal lengths the most specific type (secrets and credentials before
//! contact data before bare numbers).

mod card;
mod email;
mod iban;
mod ip;
mod phone;
mod scan;
mod secret;
mod ssn;
mod url_credentials;

use std::cmp::Reverse;
use std::collections::BTreeMap;

use serde::Deserialize;

/// A kind of personal or secret data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PiiType {
    Email,
    Phone,
    #[serde(alias = "credit_card")]
    CreditCard,
    Iban,
    #[serde(alias = "ip_address")]
    IpAddress,
    Ssn,
    #[serde(alias = "url_credentials")]
    UrlCredentials,
    Secret,
}

impl PiiType {
    /// Every type, in report order.
    pub const ALL: [PiiType; 8] = [
        PiiType::Email,
        PiiType::Phone,
        PiiType::CreditCard,
        PiiType::Iban,
        PiiType::IpAddress,
        PiiType::Ssn,
        PiiType::UrlCredentials,
        PiiType::Secret,
    ];

    /// The kebab-case name used in settings and metric names ("credit-card").
    pub fn name(self) -> &'static str {
        match self {
            PiiType::Email => "email",
            PiiType::Phone => "phone",
            PiiType::CreditCard => "credit-card",
            PiiType::Iban => "iban",
            PiiType::IpAddress => "ip-address",
            PiiType::Ssn => "ssn",
            PiiType::UrlCredentials => "url-credentials",
            PiiType::Secret => "secret",
        }
    }

    /// The text that replaces a span of this type in [`redact`].
    pub fn placeholder(self) -> &'static str {
        match self {
            PiiType::Email => "[EMAIL]",
            PiiType::Phone => "[PHONE]",
            PiiType::CreditCard => "[CREDIT_CARD]",
            PiiType::Iban => "[IBAN]",
            PiiType::IpAddress => "[IP_ADDRESS]",
            PiiType::Ssn => "[SSN]",
            PiiType::UrlCredentials => "[URL_CREDENTIALS]",
            PiiType::Secret => "[SECRET]",
        }
    }

    /// Tie-break between overlapping spans of equal length: lower wins.
    fn specificity(self) -> u8 {
        match self {
            PiiType::Secret => 0,
            PiiType::UrlCredentials => 1,
            PiiType::Email => 2,
            PiiType::Iban => 3,
            PiiType::CreditCard => 4,
            PiiType::Ssn => 5,
            PiiType::IpAddress => 6,
            PiiType::Phone => 7,
        }
    }

    fn scanner(self) -> fn(&str) -> Vec<(usize, usize)> {
        match self {
            PiiType::Email => email::find,
            PiiType::Phone => phone::find,
            PiiType::CreditCard => card::find,
            PiiType::Iban => iban::find,
            PiiType::IpAddress => ip::find,
            PiiType::Ssn => ssn::find,
            PiiType::UrlCredentials => url_credentials::find,
            PiiType::Secret => secret::find,
        }
    }
}

/// One detection: a byte range of the text, on character boundaries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
    /// What was found.
    pub kind: PiiType,
}

/// How many spans of each type, indexed like [`PiiType::ALL`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts([usize; 8]);

impl Counts {
    /// The count of one type.
    pub fn get(&self, kind: PiiType) -> usize {
        self.0[kind as usize]
    }

    /// All spans, whatever their type.
    pub fn total(&self) -> usize {
        self.0.iter().sum()
    }

    /// Adds the spans of `spans` to the counts.
    pub fn add(&mut self, spans: &[Span]) {
        for span in spans {
            self.0[span.kind as usize] += 1;
        }
    }
}

/// The redacted text and what was replaced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redaction {
    /// The text with placeholders.
    pub text: String,
    /// How many spans of each type were replaced.
    pub counts: Counts,
}

/// All PII spans of every type in `text`, non-overlapping, in text order.
pub fn detect(text: &str) -> Vec<Span> {
    detect_types(text, &PiiType::ALL)
}

/// The non-overlapping PII spans of the given types in `text`, in text order.
pub fn detect_types(text: &str, types: &[PiiType]) -> Vec<Span> {
    let candidates: Vec<Span> = types
        .iter()
        .flat_map(|&kind| {
            (kind.scanner())(text)
                .into_iter()
                .map(move |(start, end)| Span { start, end, kind })
        })
        .collect();
    resolve_overlaps(candidates)
}

/// Keeps the longest of overlapping spans (the most specific type among equals).
fn resolve_overlaps(mut candidates: Vec<Span>) -> Vec<Span> {
    candidates.sort_by_key(|s| (Reverse(s.end - s.start), s.kind.specificity(), s.start));
    // Kept spans by start. They never overlap, so a new span can only collide with the last
    // kept span starting before its end.
    let mut kept: BTreeMap<usize, Span> = BTreeMap::new();
    for span in candidates {
        let collides = kept
            .range(..span.end)
            .next_back()
            .is_some_and(|(_, k)| k.end > span.start);
        if !collides {
            kept.insert(span.start, span);
        }
    }
    kept.into_values().collect()
}

/// `text` with every PII span replaced by its type's placeholder.
pub fn redact(text: &str) -> Redaction {
    redact_spans(text, &detect(text))
}

/// `text` with the given spans (in text order, non-overlapping, as [`detect`] returns them)
/// replaced by their placeholders.
pub fn redact_spans(text: &str, spans: &[Span]) -> Redaction {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for span in spans {
        out.push_str(&text[at..span.start]);
        out.push_str(span.kind.placeholder());
        at = span.end;
    }
    out.push_str(&text[at..]);
    let mut counts = Counts::default();
    counts.add(spans);
    Redaction { text: out, counts }
}

#[cfg(test)]
mod tests;
