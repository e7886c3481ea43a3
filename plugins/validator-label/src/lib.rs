//! `validator-label` (manifest name `label`): checks a classification sample's label with the
//! host's model, as a zero-shot classifier scored by log-likelihood (lm-eval-harness style).
//!
//! Each sample's first reference is its expected label, one of `labels`. The prompt is
//! `template` with every `{text}` replaced by the sample's text (default `"Text: {text}\nLabel:"`).
//! For each label the continuation `label_prefix + label` (default `" positive"`) is scored by
//! teacher forcing through a model session: its log-probability is the sum of its tokens'
//! natural-log probabilities after the prompt. The predicted label is the most likely one (the
//! first in `labels` on a tie); the margin is the expected label's log-probability minus the
//! best other label's. A sample is kept when the prediction is right and the margin is at least
//! `min_margin` (0 by default).
//!
//! Calibration (on by default): a small model prefers some label words whatever the text says,
//! so every label's log-probability is first reduced by its log-probability after a
//! content-free text (`calibration_text`, `"N/A"`), as in contextual calibration (Zhao et al.
//! 2021, "Calibrate Before Use"). Set `calibration_text` to `null` to compare raw
//! log-probabilities.
//!
//! Tokenization: the prompt's trailing whitespace is moved to the front of the continuation (so
//! `"Label: "` with `label_prefix: ""` scores `" positive"`, not a lone space token followed by
//! `"positive"`), and the continuation's tokens are those of the whole `prompt + continuation`
//! after the prompt's own tokens, as the model would see the labelled text. When a token spans
//! the boundary (the whole text does not start with the prompt's tokens) the continuation is
//! tokenized on its own instead. No special tokens are added (like the perplexity validator).
//!
//! Cost: the session API has no fork or rewind, so each (sample, label) pair opens its own
//! session and prefills the prompt again: `labels × (prompt + label)` tokens per sample, where
//! a shared prompt cache would need `prompt + Σ label` tokens. Each session holds
//! `prompt + label` tokens of KV and is closed before the next opens.
//!
//! Settings: `labels` (required: at least two, unique, without leading or trailing
//! whitespace), `template`, `label_prefix` (`" "`), `min_margin` (0, in nats). Per sample:
//! `label-margin`, `label-correct` (0 or 1) and `label-logprob` (the expected label's). A sample
//! whose prompt and longest label do not fit in the model's context is dropped with a reason
//! that says so, and one whose prompt has no token (an empty text with template `"{text}"`)
//! cannot be scored and is kept; both report `tokens` (the prompt's) only. A dropped sample's
//! reason names the predicted label and the margin. Corpus: `count`, `scored`, and with any
//! scored sample `label-accuracy` (the share of scored samples predicted right).

use serde::Deserialize;
use textnlp_plugin_sdk::model::{self, Session};
use textnlp_plugin_sdk::validator::{
    Metric, Report, Sample, SampleResult, Validator, ValidatorError, Verdict, short_number,
};

struct Label;

textnlp_plugin_sdk::register_validator!(Label);

impl Validator for Label {
    fn score(samples: Vec<Sample>) -> Result<Report, ValidatorError> {
        let settings = Settings::load()?;
        // Every sample's label is checked before the model does any work.
        let expected = samples
            .iter()
            .enumerate()
            .map(|(i, sample)| settings.expected(i, sample))
            .collect::<Result<Vec<_>, _>>()?;
        let context = model::info().map_err(model_error)?.context_length as usize;
        let prior = match &settings.calibration_text {
            Some(text) if !samples.is_empty() => match settings.score_text(text, context)? {
                SampleScore::Scored { logprobs } => Some(logprobs),
                _ => {
                    return Err(ValidatorError::InvalidConfig(format!(
                        "calibration_text: {text:?} cannot be scored (no prompt token, or too long)"
                    )));
                }
            },
            _ => None,
        };
        let scores = samples
            .iter()
            .map(|sample| {
                let score = settings.score_text(&sample.text, context)?;
                Ok(score.calibrated(prior.as_deref()))
            })
            .collect::<Result<Vec<_>, ValidatorError>>()?;
        Ok(settings.report(&scores, &expected))
    }
}

const DEFAULT_TEMPLATE: &str = "Text: {text}\nLabel:";
const PLACEHOLDER: &str = "{text}";

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Settings {
    labels: Vec<String>,
    template: String,
    label_prefix: String,
    min_margin: f64,
    /// The content-free text whose label log-probabilities are subtracted; none: raw scores.
    calibration_text: Option<String>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            labels: Vec::new(),
            template: DEFAULT_TEMPLATE.to_owned(),
            label_prefix: " ".to_owned(),
            min_margin: 0.0,
            calibration_text: Some("N/A".to_owned()),
        }
    }
}

impl Settings {
    fn load() -> Result<Settings, ValidatorError> {
        Settings::parse(&textnlp_plugin_sdk::config::raw())
    }

    fn parse(json: &str) -> Result<Settings, ValidatorError> {
        let settings: Settings =
            textnlp_plugin_sdk::config::parse(json).map_err(ValidatorError::InvalidConfig)?;
        settings.check().map_err(ValidatorError::InvalidConfig)?;
        Ok(settings)
    }

    fn check(&self) -> Result<(), String> {
        if self.labels.len() < 2 {
            return Err(format!(
                "labels: {} given; a classification needs at least 2",
                self.labels.len()
            ));
        }
        for (i, label) in self.labels.iter().enumerate() {
            if label.trim().is_empty() {
                return Err(format!("labels[{i}]: empty"));
            }
            if label.trim() != label {
                return Err(format!(
                    "labels[{i}]: {label:?} has leading or trailing whitespace (label_prefix \
                     sets what comes before each label)"
                ));
            }
            if let Some(first) = self.labels[..i].iter().position(|l| l == label) {
                return Err(format!("labels[{i}]: {label:?} repeats labels[{first}]"));
            }
        }
        if !self.template.contains(PLACEHOLDER) {
            return Err(format!(
                "template: {:?} has no {PLACEHOLDER} placeholder",
                self.template
            ));
        }
        if !(self.min_margin.is_finite() && self.min_margin >= 0.0) {
            return Err(format!(
                "min_margin: {} is not a number of nats ≥ 0",
                self.min_margin
            ));
        }
        Ok(())
    }

    /// The index in `labels` of sample `i`'s expected label, its first reference (surrounding
    /// whitespace ignored).
    fn expected(&self, i: usize, sample: &Sample) -> Result<usize, ValidatorError> {
        let Some(reference) = sample.references.first() else {
            return Err(ValidatorError::InvalidInput(format!(
                "sample {i} has no reference; its first reference is its expected label"
            )));
        };
        let wanted = reference.trim();
        self.labels
            .iter()
            .position(|label| label == wanted)
            .ok_or_else(|| {
                ValidatorError::InvalidInput(format!(
                    "sample {i}: label {wanted:?} is not one of labels {:?}",
                    self.labels
                ))
            })
    }

    /// The prompt for `text`, and the whitespace it ended with (which goes before every
    /// continuation instead).
    fn prompt(&self, text: &str) -> (String, String) {
        let mut prompt = self.template.replace(PLACEHOLDER, text);
        let kept = prompt.trim_end().len();
        let trailing = prompt.split_off(kept);
        (prompt, trailing)
    }

    /// Scores every label's continuation after `text`'s prompt.
    fn score_text(&self, text: &str, context: usize) -> Result<SampleScore, ValidatorError> {
        let (prompt, trailing) = self.prompt(text);
        let prompt_tokens = model::tokenize(&prompt, false).map_err(model_error)?;
        if prompt_tokens.is_empty() {
            return Ok(SampleScore::NoPrompt);
        }
        let mut continuations = Vec::with_capacity(self.labels.len());
        for label in &self.labels {
            let continuation = format!("{trailing}{}{label}", self.label_prefix);
            let whole =
                model::tokenize(&(prompt.clone() + &continuation), false).map_err(model_error)?;
            let tokens = match continuation_tokens(&prompt_tokens, &whole) {
                Some(tokens) => tokens.to_vec(),
                None => model::tokenize(&continuation, false).map_err(model_error)?,
            };
            if tokens.is_empty() {
                return Err(ValidatorError::Model(format!(
                    "the continuation {continuation:?} has no token"
                )));
            }
            continuations.push(tokens);
        }
        let longest = continuations.iter().map(Vec::len).max().unwrap_or(0);
        let tokens = prompt_tokens.len() + longest;
        if tokens > context {
            return Ok(SampleScore::TooLong { tokens, context });
        }
        let logprobs = continuations
            .iter()
            .map(|continuation| continuation_logprob(&prompt_tokens, continuation))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SampleScore::Scored { logprobs })
    }

    fn report(&self, scores: &[SampleScore], expected: &[usize]) -> Report {
        let samples: Vec<SampleResult> = scores
            .iter()
            .zip(expected)
            .map(|(score, &expected)| self.judge(score, expected))
            .collect();
        let decisions: Vec<Decision> = scores
            .iter()
            .zip(expected)
            .filter_map(|(score, &expected)| match score {
                SampleScore::Scored { logprobs } => Some(decide(logprobs, expected)),
                _ => None,
            })
            .collect();
        let correct = decisions.iter().filter(|d| d.correct()).count();
        let mut corpus = vec![
            Metric::new("count", scores.len() as f64),
            Metric::new("scored", decisions.len() as f64),
        ];
        if !decisions.is_empty() {
            corpus.push(Metric::new(
                "label-accuracy",
                correct as f64 / decisions.len() as f64,
            ));
        }
        Report { corpus, samples }
    }

    fn judge(&self, score: &SampleScore, expected: usize) -> SampleResult {
        match score {
            SampleScore::Scored { logprobs } => {
                let decision = decide(logprobs, expected);
                SampleResult {
                    scores: vec![
                        Metric::new("label-margin", decision.margin),
                        Metric::new("label-correct", f64::from(u8::from(decision.correct()))),
                        Metric::new("label-logprob", decision.logprob),
                    ],
                    verdict: self.verdict(&decision),
                }
            }
            SampleScore::NoPrompt => SampleResult {
                scores: vec![Metric::new("tokens", 0.0)],
                verdict: Verdict::keep(),
            },
            SampleScore::TooLong { tokens, context } => SampleResult {
                scores: vec![Metric::new("tokens", *tokens as f64)],
                verdict: Verdict::reject(format!(
                    "prompt and label longer than the model's context ({tokens} > {context} \
                     tokens)"
                )),
            },
        }
    }

    fn verdict(&self, decision: &Decision) -> Verdict {
        let predicted = &self.labels[decision.predicted];
        let mut margin = short_number(decision.margin);
        if !decision.correct() {
            return Verdict::reject(format!(
                "predicted {predicted:?}, expected {:?} (margin {margin})",
                self.labels[decision.expected]
            ));
        }
        if decision.margin < self.min_margin {
            let min = short_number(self.min_margin);
            // "margin 0.5 below min_margin 0.5" would read as a bug: then every digit is shown.
            if margin == min {
                margin = decision.margin.to_string();
            }
            return Verdict::reject(format!(
                "predicted {predicted:?} with margin {margin} below min_margin {min}"
            ));
        }
        Verdict::keep()
    }
}

/// What scoring one sample found.
#[derive(Debug, Clone, PartialEq)]
enum SampleScore {
    /// Each label's continuation log-probability (natural log), in `labels` order.
    Scored { logprobs: Vec<f64> },
    /// The prompt has no token: nothing to condition the labels on.
    NoPrompt,
    /// The prompt and the longest continuation do not fit in the model's context.
    TooLong { tokens: usize, context: usize },
}

impl SampleScore {
    /// The scores less each label's content-free log-probability, when calibrating.
    fn calibrated(self, prior: Option<&[f64]>) -> SampleScore {
        match (self, prior) {
            (SampleScore::Scored { logprobs }, Some(prior)) => SampleScore::Scored {
                logprobs: logprobs.iter().zip(prior).map(|(l, p)| l - p).collect(),
            },
            (score, _) => score,
        }
    }
}

/// The model's answer for one sample.
#[derive(Debug, Clone, PartialEq)]
struct Decision {
    expected: usize,
    /// The most likely label (the first on a tie).
    predicted: usize,
    /// The expected label's log-probability minus the best other label's.
    margin: f64,
    /// The expected label's log-probability.
    logprob: f64,
}

impl Decision {
    fn correct(&self) -> bool {
        self.predicted == self.expected
    }
}

/// Decides from each label's log-probability (at least two) which label the model predicts.
fn decide(logprobs: &[f64], expected: usize) -> Decision {
    let mut predicted = 0;
    for (i, &logprob) in logprobs.iter().enumerate() {
        if logprob > logprobs[predicted] {
            predicted = i;
        }
    }
    let best_other = logprobs
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != expected)
        .map(|(_, &logprob)| logprob)
        .fold(f64::NEG_INFINITY, f64::max);
    Decision {
        expected,
        predicted,
        margin: logprobs[expected] - best_other,
        logprob: logprobs[expected],
    }
}

/// The tokens `whole` (prompt and continuation tokenized together) adds after the prompt's
/// own tokens; `None` when a token spans the boundary, so `whole` does not start with them.
fn continuation_tokens<'a>(prompt: &[u32], whole: &'a [u32]) -> Option<&'a [u32]> {
    whole
        .strip_prefix(prompt)
        .filter(|continuation| !continuation.is_empty())
}

/// The continuation's log-probability after the prompt: a fresh session (each starts from an
/// empty cache, so a score never depends on the labels or samples before it) holding the
/// prompt, then the continuation scored by teacher forcing.
fn continuation_logprob(prompt: &[u32], continuation: &[u32]) -> Result<f64, ValidatorError> {
    let session = Session::open((prompt.len() + continuation.len()) as u32).map_err(model_error)?;
    session.append(prompt).map_err(model_error)?;
    let logprobs = session.score(continuation).map_err(model_error)?;
    if logprobs.len() != continuation.len() {
        return Err(ValidatorError::Model(format!(
            "the host scored {} of {} tokens",
            logprobs.len(),
            continuation.len()
        )));
    }
    Ok(logprobs.iter().map(|&lp| f64::from(lp)).sum())
}

fn model_error(e: model::ModelError) -> ValidatorError {
    ValidatorError::Model(model::error_message(&e))
}

#[cfg(test)]
mod tests;
