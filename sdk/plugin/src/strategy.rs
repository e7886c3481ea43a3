//! Strategy plugins: turn a dataset request into prompt records, and optionally drive
//! generation through the host's model.
//!
//! Implement [`Strategy`] and register it with [`register_strategy!`](crate::register_strategy).
//!
//! A registered strategy exports two interfaces (world `record-strategy-plugin`): `strategy`
//! (`describe`, `expand`, `generate`: batches of records) and, since 0.1.2, `record-generator`
//! ([`Strategy::generate_record`]: one record per call, with an [`Outcome`] the host counts and
//! the dataset's earlier prompts as [`RecordRequest::context`]). Strategies that only build
//! prompts implement `expand` and get both for free; strategies that parse, filter and retry
//! model output override `generate_record`, drawing each attempt's randomness from
//! [`SplitMix64::for_attempt`] and looping with [`retry`].

use std::marker::PhantomData;

pub use crate::bindings::strategy::exports::textnlp::plugin::record_generator::{
    Error as RecordError, Generated, Outcome, RecordRequest,
};
pub use crate::bindings::strategy::exports::textnlp::plugin::strategy::{
    Error as StrategyError, ExpandRequest, GeneratedRecord, PromptRecord,
};
pub use crate::types::{ChatMessage, PluginInfo};

use crate::bindings::strategy::exports::textnlp::plugin::record_generator::Guest as RecordGuest;
use crate::bindings::strategy::exports::textnlp::plugin::strategy::Guest;
use crate::manifest::{self, PluginManifest};
use crate::model::{self, GenerationRequest, ModelError};
use crate::rng::SplitMix64;

/// A prompt strategy. Only `expand` is required: by default `describe` answers from the
/// embedded manifest and `generate` expands the records, then asks the host model for each
/// one's completion with [`Strategy::generation_request`]. (The supertrait [`PluginManifest`] is
/// implemented by [`register_strategy!`](crate::register_strategy).)
pub trait Strategy: PluginManifest {
    /// Name, version, description and settings schema; by default those of
    /// `textnlp-plugin.json`.
    fn describe() -> PluginInfo {
        manifest::describe::<Self>()
    }

    /// Records `start..start+count` (fewer only when the dataset is exhausted). Record `i` must
    /// depend only on (seed, i) and the settings: draw randomness from
    /// [`SplitMix64::for_record`].
    fn expand(request: ExpandRequest) -> Result<Vec<PromptRecord>, StrategyError>;

    /// The model request for one expanded record, used by the default `generate`: the record's
    /// chat with [`model::chat_request`]'s defaults (512 tokens, temperature 0.7, top-p 0.95)
    /// and a seed derived from (seed, index), so a resumed job regenerates the same text.
    fn generation_request(seed: u64, record: &PromptRecord) -> GenerationRequest {
        let mut request = model::chat_request(record.messages.clone());
        request.seed = Some(SplitMix64::for_record(seed, record.index).next_u64());
        request
    }

    /// Records with their completions. By default: `expand`, then one `model::generate` per
    /// record, in order; a failed model call fails the batch with [`StrategyError::Model`].
    fn generate(request: ExpandRequest) -> Result<Vec<GeneratedRecord>, StrategyError> {
        let seed = request.seed;
        Self::expand(request)?
            .into_iter()
            .map(|record| {
                let completion = model::generate(&Self::generation_request(seed, &record))
                    .map_err(|e| {
                        StrategyError::Model(format!(
                            "record {}: {}",
                            record.index,
                            model::error_message(&e)
                        ))
                    })?;
                Ok(GeneratedRecord {
                    index: record.index,
                    messages: record.messages,
                    completion: completion.text,
                    metadata: record.metadata,
                })
            })
            .collect()
    }

    /// Record `request.index` with its completion, one per call (interface `record-generator`).
    /// By default: [`Strategy::expand`] with `start = index, count = 1`; no record is
    /// [`Outcome::Exhausted`]; otherwise one `model::generate` of
    /// [`Strategy::generation_request`], accepted as is (`attempts: 1`). A failed model call is
    /// [`RecordError::Model`]; an `expand` error keeps its meaning (see the `From` impl).
    ///
    /// Override it to parse, filter or retry the model's output: draw attempt `a`'s randomness
    /// from [`SplitMix64::for_attempt`]`(seed, index, a)`, loop with [`retry`], and give up with
    /// [`Outcome::Rejected`] naming the rule the last output broke. `request.context` holds the
    /// dataset's earlier accepted prompts when the manifest asks for them (`"context": n`).
    fn generate_record(request: RecordRequest) -> Result<Outcome, RecordError> {
        let records = Self::expand(ExpandRequest {
            seed: request.seed,
            start: request.index,
            count: 1,
        })?;
        let Some(record) = records.into_iter().next() else {
            return Ok(Outcome::Exhausted);
        };
        let completion = model::generate(&Self::generation_request(request.seed, &record))?;
        Ok(Outcome::Accepted(Generated {
            messages: record.messages,
            completion: completion.text,
            metadata: record.metadata,
            attempts: 1,
        }))
    }
}

impl From<StrategyError> for RecordError {
    /// `invalid-config` and `model` keep their meaning; `invalid-request` (which `expand` of one
    /// record should never answer) becomes `invalid-config`, prefixed with "invalid request".
    fn from(error: StrategyError) -> RecordError {
        match error {
            StrategyError::InvalidConfig(m) => RecordError::InvalidConfig(m),
            StrategyError::InvalidRequest(m) => {
                RecordError::InvalidConfig(format!("invalid request: {m}"))
            }
            StrategyError::Model(m) => RecordError::Model(m),
        }
    }
}

impl From<ModelError> for RecordError {
    /// [`RecordError::Model`] with [`model::error_message`]'s text.
    fn from(error: ModelError) -> RecordError {
        RecordError::Model(model::error_message(&error))
    }
}

/// A batch `generate` for strategies whose records only [`Strategy::generate_record`] can make
/// (their prompts are written by the model): records `start..start+count`, each generated
/// with an empty `context`. A rejected record fails the batch with
/// [`StrategyError::InvalidRequest`] naming it (the batch interface cannot skip a record;
/// hosts ask plugins that export `record-generator` record by record and count rejections).
/// Use it as the body of `generate`.
pub fn generate_by_record<T: Strategy + ?Sized>(
    request: ExpandRequest,
) -> Result<Vec<GeneratedRecord>, StrategyError> {
    let mut records = Vec::new();
    for i in 0..u64::from(request.count) {
        let Some(index) = request.start.checked_add(i) else {
            break;
        };
        let outcome = T::generate_record(RecordRequest {
            seed: request.seed,
            index,
            context: Vec::new(),
        })
        .map_err(|e| match e {
            RecordError::InvalidConfig(m) => StrategyError::InvalidConfig(m),
            RecordError::Model(m) => StrategyError::Model(format!("record {index}: {m}")),
        })?;
        match outcome {
            Outcome::Accepted(record) => records.push(GeneratedRecord {
                index,
                messages: record.messages,
                completion: record.completion,
                metadata: record.metadata,
            }),
            Outcome::Rejected(reason) => {
                return Err(StrategyError::InvalidRequest(format!(
                    "record {index} was rejected ({reason}); record-generator.generate-record \
                     reports rejections record by record"
                )));
            }
            Outcome::Exhausted => break,
        }
    }
    Ok(records)
}

/// The `expand` of a strategy whose prompts are written by the model, so that no prompt exists
/// before generation: a request for no records (hosts probe a strategy's settings that way;
/// check them before calling this) gets none, any other is refused with
/// [`StrategyError::InvalidRequest`] pointing to generation.
///
/// ```ignore
/// fn expand(request: ExpandRequest) -> Result<Vec<PromptRecord>, StrategyError> {
///     Settings::parse(&config::raw())?;
///     expand_model_written("magpie", &request)
/// }
/// ```
pub fn expand_model_written(
    strategy: &str,
    request: &ExpandRequest,
) -> Result<Vec<PromptRecord>, StrategyError> {
    if request.count == 0 {
        return Ok(Vec::new());
    }
    Err(StrategyError::InvalidRequest(format!(
        "{strategy} writes its prompts with the model, so it cannot expand prompts alone: \
         generate records (record-generator.generate-record or strategy.generate)"
    )))
}

/// What [`retry`] ends with.
#[derive(Clone, Debug, PartialEq)]
pub enum Retried<T> {
    /// The first usable value, and how many attempts it took (1 when the first one did).
    Accepted { value: T, attempts: u32 },
    /// Every attempt was unusable: the last one's reason, and the number of attempts made.
    Rejected { reason: String, attempts: u32 },
}

/// Runs `attempt(0)`, `attempt(1)`, ... until one gives a usable value (`Ok(Ok(value))`), at most
/// `attempts` times. `Ok(Err(reason))` is an unusable output (retried); `Err` (a model failure,
/// bad settings) stops at once. Each attempt must draw its randomness from its number (see
/// [`SplitMix64::for_attempt`]), so a resumed job retries exactly as the first run did.
///
/// ```
/// use textnlp_plugin_sdk::strategy::{Retried, retry};
///
/// let outcome = retry(3, |attempt| {
///     Ok(if attempt < 2 { Err(format!("attempt {attempt}: empty")) } else { Ok(attempt) })
/// });
/// assert!(matches!(outcome, Ok(Retried::Accepted { value: 2, attempts: 3 })));
/// ```
pub fn retry<T>(
    attempts: u32,
    mut attempt: impl FnMut(u32) -> Result<Result<T, String>, RecordError>,
) -> Result<Retried<T>, RecordError> {
    let mut reason = String::from("no attempts allowed (attempts is 0)");
    for a in 0..attempts {
        match attempt(a)? {
            Ok(value) => {
                return Ok(Retried::Accepted {
                    value,
                    attempts: a + 1,
                });
            }
            Err(why) => reason = why,
        }
    }
    Ok(Retried::Rejected { reason, attempts })
}

/// The type [`register_strategy!`](crate::register_strategy) exports: forwards the generated
/// `Guest` trait to the author's [`Strategy`].
#[doc(hidden)]
pub struct Export<T>(PhantomData<T>);

impl<T: Strategy> Guest for Export<T> {
    fn describe() -> PluginInfo {
        T::describe()
    }
    fn expand(request: ExpandRequest) -> Result<Vec<PromptRecord>, StrategyError> {
        T::expand(request)
    }
    fn generate(request: ExpandRequest) -> Result<Vec<GeneratedRecord>, StrategyError> {
        T::generate(request)
    }
}

impl<T: Strategy> RecordGuest for Export<T> {
    fn generate_record(request: RecordRequest) -> Result<Outcome, RecordError> {
        T::generate_record(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_stops_at_the_first_usable_value() {
        let mut calls = Vec::new();
        let outcome = retry(5, |a| {
            calls.push(a);
            Ok(if a == 1 { Ok(7) } else { Err("bad".into()) })
        });
        assert!(matches!(
            outcome,
            Ok(Retried::Accepted {
                value: 7,
                attempts: 2
            })
        ));
        assert_eq!(calls, [0, 1]);
    }

    #[test]
    fn retry_gives_up_with_the_last_reason() {
        let outcome = retry(3, |a| -> Result<Result<(), String>, RecordError> {
            Ok(Err(format!("rule {a}")))
        });
        assert!(matches!(
            outcome,
            Ok(Retried::Rejected { reason, attempts: 3 }) if reason == "rule 2"
        ));
        let outcome = retry(0, |_| Ok(Ok(())));
        assert!(matches!(outcome, Ok(Retried::Rejected { attempts: 0, .. })));
    }

    #[test]
    fn retry_stops_at_an_error() {
        let mut calls = 0;
        let outcome = retry(3, |_| -> Result<Result<(), String>, RecordError> {
            calls += 1;
            Err(RecordError::Model("down".into()))
        });
        assert!(matches!(outcome, Err(RecordError::Model(m)) if m == "down"));
        assert_eq!(calls, 1);
    }

    #[test]
    fn model_written_prompts_answer_only_probes() {
        let request = |count| ExpandRequest {
            seed: 1,
            start: 5,
            count,
        };
        assert!(
            expand_model_written("magpie", &request(0))
                .unwrap()
                .is_empty()
        );
        assert!(matches!(
            expand_model_written("magpie", &request(1)),
            Err(StrategyError::InvalidRequest(m)) if m.starts_with("magpie writes its prompts")
        ));
    }

    #[test]
    fn strategy_errors_convert() {
        assert!(matches!(
            RecordError::from(StrategyError::InvalidConfig("k: bad".into())),
            RecordError::InvalidConfig(m) if m == "k: bad"
        ));
        assert!(matches!(
            RecordError::from(StrategyError::Model("busy".into())),
            RecordError::Model(m) if m == "busy"
        ));
        assert!(matches!(
            RecordError::from(ModelError::Busy("queue full".into())),
            RecordError::Model(m) if m == "busy: queue full"
        ));
    }
}
