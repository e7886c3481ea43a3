//! `validator-pii` (manifest name `pii`): finds personal data and secrets in samples: emails,
//! phone numbers, payment card numbers, IBANs, IP addresses, US SSNs, URLs with credentials and
//! API keys. Detection and redaction live in [`pii`], callable on their own.
//!
//! Settings: `types` (the enabled types, default all: "email", "phone", "credit-card", "iban",
//! "ip-address", "ssn", "url-credentials", "secret").
//!
//! Each sample scores `pii-<type>` for each type found (its count) and always `pii-total`; a
//! sample with any finding is rejected ("pii: 2 email, 1 phone"). The corpus metrics are
//! `count`, `samples-with-pii`, `pii-total` and `pii-<type>` totals for every enabled type.
//!
//! The plugin also rewrites (the host's `redact` action): each finding of an enabled type is
//! replaced by its typed placeholder (`[EMAIL]`, `[PHONE]`, ...). Whether a rejected sample is
//! dropped, only reported or redacted is the host's choice, per run.

pub mod pii;

use serde::Deserialize;
use textnlp_plugin_sdk::validator::{
    Metric, Report, Rewriter, Sample, SampleResult, Validator, ValidatorError, Verdict,
};

use crate::pii::{Counts, PiiType, detect_types, redact_spans};

struct Pii;

textnlp_plugin_sdk::register_rewriting_validator!(Pii);

impl Validator for Pii {
    fn score(samples: Vec<Sample>) -> Result<Report, ValidatorError> {
        let settings = Settings::load()?;
        let texts: Vec<&str> = samples.iter().map(|s| s.text.as_str()).collect();
        Ok(settings.report(&texts))
    }
}

impl Rewriter for Pii {
    fn rewrite(texts: Vec<String>) -> Result<Vec<Option<String>>, String> {
        let settings = Settings::load().map_err(|e| match e {
            ValidatorError::InvalidConfig(m)
            | ValidatorError::InvalidInput(m)
            | ValidatorError::Model(m) => m,
        })?;
        Ok(texts.iter().map(|t| settings.redact(t)).collect())
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Settings {
    types: Vec<PiiType>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            types: PiiType::ALL.to_vec(),
        }
    }
}

impl Settings {
    fn load() -> Result<Settings, ValidatorError> {
        Settings::parse(&textnlp_plugin_sdk::config::raw())
    }

    fn parse(json: &str) -> Result<Settings, ValidatorError> {
        let mut settings: Settings =
            textnlp_plugin_sdk::config::parse(json).map_err(ValidatorError::InvalidConfig)?;
        if settings.types.is_empty() {
            return Err(ValidatorError::InvalidConfig(
                "types: the list is empty, so nothing would be detected".into(),
            ));
        }
        settings.types.sort();
        settings.types.dedup();
        Ok(settings)
    }

    /// `text` with every finding of an enabled type replaced by its placeholder; `None` when
    /// there is none.
    fn redact(&self, text: &str) -> Option<String> {
        let spans = detect_types(text, &self.types);
        (!spans.is_empty()).then(|| redact_spans(text, &spans).text)
    }

    fn report(&self, texts: &[&str]) -> Report {
        let counts: Vec<Counts> = texts
            .iter()
            .map(|text| {
                let mut counts = Counts::default();
                counts.add(&detect_types(text, &self.types));
                counts
            })
            .collect();
        Report {
            corpus: self.corpus_metrics(&counts),
            samples: counts.iter().map(|c| self.sample_result(c)).collect(),
        }
    }

    fn sample_result(&self, counts: &Counts) -> SampleResult {
        let found: Vec<(PiiType, usize)> = PiiType::ALL
            .iter()
            .map(|&kind| (kind, counts.get(kind)))
            .filter(|&(_, n)| n > 0)
            .collect();
        let mut scores: Vec<Metric> = found
            .iter()
            .map(|&(kind, n)| Metric::new(format!("pii-{}", kind.name()), n as f64))
            .collect();
        scores.push(Metric::new("pii-total", counts.total() as f64));
        let verdict = if found.is_empty() {
            Verdict::keep()
        } else {
            let listed: Vec<String> = found
                .iter()
                .map(|&(kind, n)| format!("{n} {}", kind.name()))
                .collect();
            Verdict::reject(format!("pii: {}", listed.join(", ")))
        };
        SampleResult { scores, verdict }
    }

    fn corpus_metrics(&self, counts: &[Counts]) -> Vec<Metric> {
        let with_pii = counts.iter().filter(|c| c.total() > 0).count();
        let total: usize = counts.iter().map(Counts::total).sum();
        let mut metrics = vec![
            Metric::new("count", counts.len() as f64),
            Metric::new("samples-with-pii", with_pii as f64),
            Metric::new("pii-total", total as f64),
        ];
        metrics.extend(self.types.iter().map(|&kind| {
            let n: usize = counts.iter().map(|c| c.get(kind)).sum();
            Metric::new(format!("pii-{}", kind.name()), n as f64)
        }));
        metrics
    }
}

#[cfg(test)]
mod tests;
