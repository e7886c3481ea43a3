//! Strategy plugins: turn a dataset request into prompt records, and optionally drive
//! generation through the host's model.
//!
//! Implement [`Strategy`] and register it with [`register_strategy!`](crate::register_strategy).

use std::marker::PhantomData;

pub use crate::bindings::strategy::exports::textnlp::plugin::strategy::{
    Error as StrategyError, ExpandRequest, GeneratedRecord, PromptRecord,
};
pub use crate::types::{ChatMessage, PluginInfo};

use crate::bindings::strategy::exports::textnlp::plugin::strategy::Guest;
use crate::manifest::{self, PluginManifest};
use crate::model::{self, GenerationRequest};
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
