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
