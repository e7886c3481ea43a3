//! `validator-perplexity` (manifest name `perplexity`): how surprised the host's model is by
//! each sample, through the WIT `model` session (the plugin → host compute path).
//!
//! A sample's tokens `t0 .. tn` (no special tokens added) are fed to a fresh session: `t0`
//! is appended as context and `t1 .. tn` are scored in one teacher-forced pass, so the
//! perplexity is `exp(-mean ln p(t_i | t_<i))` over the `n` scored tokens. The first token
//! has no context and is not scored (as llama.cpp's perplexity leaves unscored the tokens
//! it uses as context).
//!
//! Settings: `{"max": x, "min": y}`, both optional (a perplexity is at least 1). Per sample:
//! `perplexity`, `nll` (mean negative log-likelihood in nats per scored token) and `tokens`
//! (the sample's tokens, all but the first of them scored). The host's tokenizer parses
//! special-token strings, so a sample holding `<|im_start|>` is scored with that control
//! token. A sample with
//! fewer than two tokens cannot be scored and is kept with `tokens` only; one longer than the
//! model's context is dropped with a reason that says so (never scored on a silently cut
//! prefix). Corpus: `count`, `scored-tokens`, and for a batch with any scored sample
//! `perplexity` (token-weighted: `exp` of the mean NLL over all scored tokens, the corpus
//! perplexity) and `mean-perplexity` (the plain mean over scored samples).

use serde::Deserialize;
use textnlp_plugin_sdk::model::{self, Session};
use textnlp_plugin_sdk::validator::{
    Bounds, Metric, Report, Sample, SampleResult, Validator, ValidatorError, Verdict,
};

struct Perplexity;

textnlp_plugin_sdk::register_validator!(Perplexity);

impl Validator for Perplexity {
    fn score(samples: Vec<Sample>) -> Result<Report, ValidatorError> {
        let settings = Settings::load()?;
        let context = model::info().map_err(model_error)?.context_length as usize;
        let scores = samples
            .iter()
            .map(|s| score_text(&s.text, context))
            .collect::<Result<Vec<_>, _>>()?;
        let results = scores.iter().map(|s| settings.judge(s)).collect();
        Ok(Report {
            corpus: corpus_metrics(&scores),
            samples: results,
        })
    }
}

/// What scoring one sample found.
#[derive(Debug, Clone, PartialEq)]
enum SampleScore {
    /// Sum of the scored tokens' negative log-likelihoods (nats), and how many there were.
    Scored { nll: f64, tokens: usize },
    /// Fewer than two tokens: nothing to predict.
    TooShort { tokens: usize },
    /// More tokens than the model's context.
    TooLong { tokens: usize, context: usize },
}

impl SampleScore {
    fn perplexity(&self) -> Option<f64> {
        match *self {
            SampleScore::Scored { nll, tokens } => Some(perplexity(nll, tokens)),
            _ => None,
        }
    }
}

/// `exp` of the mean NLL, saturated: text the model finds hopeless (a mean NLL above ~709
/// nats) still gets a finite, maximal perplexity, where `inf` would void the whole report.
fn perplexity(nll: f64, tokens: usize) -> f64 {
    (nll / tokens as f64).exp().min(f64::MAX)
}

fn score_text(text: &str, context: usize) -> Result<SampleScore, ValidatorError> {
    let tokens = model::tokenize(text, false).map_err(model_error)?;
    if tokens.len() < 2 {
        return Ok(SampleScore::TooShort {
            tokens: tokens.len(),
        });
    }
    if tokens.len() > context {
        return Ok(SampleScore::TooLong {
            tokens: tokens.len(),
            context,
        });
    }
    // A session per sample: each starts from an empty cache, so a score never depends on
    // the samples before it.
    let session = Session::open(tokens.len() as u32).map_err(model_error)?;
    session.append(&tokens[..1]).map_err(model_error)?;
    let logprobs = session.score(&tokens[1..]).map_err(model_error)?;
    if logprobs.len() != tokens.len() - 1 {
        return Err(ValidatorError::Model(format!(
            "the host scored {} of {} tokens",
            logprobs.len(),
            tokens.len() - 1
        )));
    }
    Ok(SampleScore::Scored {
        nll: -logprobs.iter().map(|&lp| f64::from(lp)).sum::<f64>(),
        tokens: logprobs.len(),
    })
}

fn model_error(e: model::ModelError) -> ValidatorError {
    ValidatorError::Model(model::error_message(&e))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Settings {
    max: Option<f64>,
    min: Option<f64>,
}

impl Settings {
    fn load() -> Result<Settings, ValidatorError> {
        Settings::parse(&textnlp_plugin_sdk::config::raw())
    }

    fn parse(json: &str) -> Result<Settings, ValidatorError> {
        let s: Settings =
            textnlp_plugin_sdk::config::parse(json).map_err(ValidatorError::InvalidConfig)?;
        // A perplexity is at least 1: a bound below it is a mistake (a probability, a log).
        for (key, bound) in [("min", s.min), ("max", s.max)] {
            if let Some(b) = bound
                && b < 1.0
            {
                return Err(ValidatorError::InvalidConfig(format!(
                    "{key}: {b} is below 1, the lowest perplexity"
                )));
            }
        }
        s.bounds()
            .check("min", "max")
            .map_err(ValidatorError::InvalidConfig)?;
        Ok(s)
    }

    fn bounds(&self) -> Bounds {
        Bounds {
            min: self.min,
            max: self.max,
        }
    }

    fn judge(&self, score: &SampleScore) -> SampleResult {
        let verdict = match (score, score.perplexity()) {
            (SampleScore::TooLong { tokens, context }, _) => Verdict::reject(format!(
                "longer than the model's context ({tokens} > {context} tokens)"
            )),
            (_, Some(ppl)) => self.bounds().judge("perplexity", ppl),
            (_, None) => Verdict::keep(),
        };
        SampleResult {
            scores: sample_metrics(score),
            verdict,
        }
    }
}

fn sample_metrics(score: &SampleScore) -> Vec<Metric> {
    match *score {
        SampleScore::Scored { nll, tokens } => vec![
            Metric::new("perplexity", perplexity(nll, tokens)),
            Metric::new("nll", nll / tokens as f64),
            // The first token is context, not scored.
            Metric::new("tokens", (tokens + 1) as f64),
        ],
        SampleScore::TooShort { tokens } | SampleScore::TooLong { tokens, .. } => {
            vec![Metric::new("tokens", tokens as f64)]
        }
    }
}

fn corpus_metrics(scores: &[SampleScore]) -> Vec<Metric> {
    let (mut nll, mut tokens, mut ppl_sum, mut scored) = (0.0, 0usize, 0.0, 0usize);
    for score in scores {
        if let SampleScore::Scored { nll: n, tokens: t } = *score {
            nll += n;
            tokens += t;
            ppl_sum += perplexity(n, t);
            scored += 1;
        }
    }
    let mut metrics = vec![
        Metric::new("count", scores.len() as f64),
        Metric::new("scored-tokens", tokens as f64),
    ];
    if scored > 0 {
        metrics.push(Metric::new("perplexity", perplexity(nll, tokens)));
        metrics.push(Metric::new("mean-perplexity", ppl_sum / scored as f64));
    }
    metrics
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scored(nll: f64, tokens: usize) -> SampleScore {
        SampleScore::Scored { nll, tokens }
    }

    #[test]
    fn thresholds_name_the_bound() {
        let s = Settings::parse(r#"{"min": 2, "max": 50}"#).unwrap();
        let reason = |score| s.judge(&score).verdict.reason;
        assert_eq!(
            reason(scored(0.5 * 10.0, 10)),
            Some("perplexity 1.6487 below min 2".into())
        );
        assert_eq!(
            reason(scored(4.0 * 3.0, 3)),
            Some("perplexity 54.5982 above max 50".into())
        );
        assert_eq!(reason(scored(2.0 * 3.0, 3)), None);
        assert_eq!(reason(SampleScore::TooShort { tokens: 1 }), None);
        assert_eq!(
            reason(SampleScore::TooLong {
                tokens: 9000,
                context: 8192
            }),
            Some("longer than the model's context (9000 > 8192 tokens)".into())
        );
    }

    #[test]
    fn a_hopeless_sample_gets_a_finite_perplexity() {
        let ppl = scored(800.0 * 3.0, 3).perplexity().unwrap();
        assert_eq!(ppl, f64::MAX);
        assert!(
            corpus_metrics(&[scored(800.0, 1)])
                .iter()
                .all(|m| m.value.is_finite())
        );
    }

    #[test]
    fn bad_settings_name_the_setting() {
        let err = |json| match Settings::parse(json) {
            Err(ValidatorError::InvalidConfig(m)) => m,
            other => panic!("{other:?}"),
        };
        assert!(err(r#"{"max": 0}"#).starts_with("max: "));
        assert!(err(r#"{"min": 0.5}"#).starts_with("min: "));
        assert!(err(r#"{"min": 5, "max": 2}"#).starts_with("max: "));
        assert!(err(r#"{"limit": 2}"#).contains("limit"));
    }

    #[test]
    fn corpus_perplexity_is_token_weighted() {
        let scores = [
            scored(1.0 * 4.0, 4),
            scored(3.0 * 2.0, 2),
            SampleScore::TooShort { tokens: 1 },
        ];
        let metrics = corpus_metrics(&scores);
        let get = |name| metrics.iter().find(|m| m.name == name).unwrap().value;
        assert_eq!(get("count"), 3.0);
        assert_eq!(get("scored-tokens"), 6.0);
        assert!((get("perplexity") - (10.0f64 / 6.0).exp()).abs() < 1e-12);
        assert!((get("mean-perplexity") - (1f64.exp() + 3f64.exp()) / 2.0).abs() < 1e-12);
        assert_eq!(corpus_metrics(&[]).len(), 2);
    }
}
