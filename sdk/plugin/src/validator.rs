//! Validator plugins: score a batch of samples and decide which to keep.
//!
//! Implement [`Validator`] and register it with [`register_validator!`](crate::register_validator).

use std::marker::PhantomData;

pub use crate::bindings::validator::exports::textnlp::plugin::validator::{
    Error as ValidatorError, Report, Sample, SampleResult, Verdict,
};
pub use crate::types::{Metric, PluginInfo};

use crate::bindings::rewriter::exports::textnlp::plugin::rewriter::Guest as RewriterGuest;
use crate::bindings::validator::exports::textnlp::plugin::validator::Guest;
use crate::manifest::{self, PluginManifest};

/// A validator. `describe` defaults to the embedded manifest; `score` is the plugin's own. (The
/// supertrait [`PluginManifest`] is implemented by
/// [`register_validator!`](crate::register_validator).)
pub trait Validator: PluginManifest {
    /// Name, version, description and settings schema; by default those of
    /// `textnlp-plugin.json`.
    fn describe() -> PluginInfo {
        manifest::describe::<Self>()
    }

    /// Scores a batch. The report must hold exactly one result per sample, in order, and every
    /// metric value must be finite (the host checks both).
    fn score(samples: Vec<Sample>) -> Result<Report, ValidatorError>;
}

impl Verdict {
    /// Keep the sample.
    pub fn keep() -> Verdict {
        Verdict {
            keep: true,
            reason: None,
        }
    }

    /// Drop the sample; `reason` names the failing rule ("shorter than min 5 words").
    pub fn reject(reason: impl Into<String>) -> Verdict {
        Verdict {
            keep: false,
            reason: Some(reason.into()),
        }
    }
}

/// Optional bounds on one score, and the verdict they give, so that every validator words its
/// reasons alike ("bleu 12.3457 below min 20"). Plugins keep `min` and `max` as fields of their
/// own settings (serde's `deny_unknown_fields` does not combine with `flatten`) and judge with
/// `Bounds { min, max }`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Bounds {
    pub min: Option<f64>,
    pub max: Option<f64>,
}

impl Bounds {
    /// Checks that each bound is a finite number and that `max` is not below `min`; the
    /// message starts with the offending setting's name (`min_key` or `max_key`).
    pub fn check(&self, min_key: &str, max_key: &str) -> Result<(), String> {
        for (key, bound) in [(min_key, self.min), (max_key, self.max)] {
            if let Some(b) = bound
                && !b.is_finite()
            {
                return Err(format!("{key}: {b} is not a finite number"));
            }
        }
        match (self.min, self.max) {
            (Some(min), Some(max)) if max < min => Err(format!(
                "{max_key}: {} is below {min_key} {}",
                short_number(max),
                short_number(min)
            )),
            _ => Ok(()),
        }
    }

    /// Keeps `value` when it is within the bounds; otherwise rejects, naming `what`, the value
    /// and the bound it broke.
    pub fn judge(&self, what: &str, value: f64) -> Verdict {
        let broken = match (self.min, self.max) {
            (Some(min), _) if value < min => Some(("below min", min)),
            (_, Some(max)) if value > max => Some(("above max", max)),
            _ => None,
        };
        match broken {
            Some((side, bound)) => {
                let (mut shown, limit) = (short_number(value), short_number(bound));
                // "0.7 above max 0.7" would read as a bug: then every digit is shown.
                if shown == limit {
                    shown = value.to_string();
                }
                Verdict::reject(format!("{what} {shown} {side} {limit}"))
            }
            None => Verdict::keep(),
        }
    }
}

/// A number for a reason: at most four decimals, without trailing zeros ("0.82", "20").
pub fn short_number(value: f64) -> String {
    let text = format!("{value:.4}");
    match text.contains('.') {
        true => text.trim_end_matches('0').trim_end_matches('.').to_owned(),
        false => text,
    }
}

impl Metric {
    /// A named value. Non-finite values become 0, since the host refuses them.
    pub fn new(name: impl Into<String>, value: f64) -> Metric {
        Metric {
            name: name.into(),
            value: if value.is_finite() { value } else { 0.0 },
        }
    }
}

/// The type [`register_validator!`](crate::register_validator) exports: forwards the
/// generated `Guest` trait to the author's [`Validator`].
#[doc(hidden)]
pub struct Export<T>(PhantomData<T>);

impl<T: Validator> Guest for Export<T> {
    fn describe() -> PluginInfo {
        T::describe()
    }
    fn score(samples: Vec<Sample>) -> Result<Report, ValidatorError> {
        T::score(samples)
    }
}

/// A validator that can also rewrite samples (the `redact` action, e.g. personal data
/// replaced by typed placeholders). Register it with
/// [`register_rewriting_validator!`](crate::register_rewriting_validator).
pub trait Rewriter: Validator {
    /// Exactly one entry per text, in order: the rewritten text, or `None` to leave it as it
    /// is. An error message names what could not be rewritten.
    fn rewrite(texts: Vec<String>) -> Result<Vec<Option<String>>, String>;
}

impl<T: Rewriter> RewriterGuest for Export<T> {
    fn rewrite(texts: Vec<String>) -> Result<Vec<Option<String>>, String> {
        T::rewrite(texts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_judge_and_check() {
        let b = Bounds {
            min: Some(20.0),
            max: Some(90.0),
        };
        assert!(b.judge("bleu", 20.0).keep && b.judge("bleu", 90.0).keep);
        let reason = |v| b.judge("bleu", v).reason.unwrap();
        assert_eq!(reason(12.345_67), "bleu 12.3457 below min 20");
        assert_eq!(reason(100.0), "bleu 100 above max 90");
        assert_eq!(reason(90.000_001), "bleu 90.000001 above max 90");
        assert!(Bounds::default().judge("x", f64::MAX).keep);
        assert_eq!(b.check("min", "max"), Ok(()));
        let bad = Bounds {
            min: Some(0.5),
            max: Some(0.25),
        };
        assert_eq!(
            bad.check("min_f.rougeL", "max_f.rougeL"),
            Err("max_f.rougeL: 0.25 is below min_f.rougeL 0.5".into())
        );
        let nan = Bounds {
            min: Some(f64::NAN),
            max: None,
        };
        assert!(nan.check("min", "max").unwrap_err().starts_with("min: "));
        assert_eq!(short_number(0.1), "0.1");
        assert_eq!(short_number(-3.0), "-3");
    }
}
