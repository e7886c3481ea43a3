//! Guest SDK for textnlp plugins.
//!
//! A textnlp plugin is a WebAssembly component built from an ordinary Rust crate with
//! `cargo build --release --target wasm32-wasip2`. The crate depends only on this SDK, which
//! carries the WIT contract (package `textnlp:plugin@0.1.2`), the generated bindings, helpers and
//! one registration macro per kind of plugin. The host (`textnlp`) loads the component into its
//! own sandbox: no files, no environment, no sockets, a memory cap and a deadline per call.
//!
//! | kind      | implement                           | register with                   |
//! |-----------|-------------------------------------|---------------------------------|
//! | validator | [`validator::Validator`]            | [`register_validator!`]         |
//! | strategy  | [`strategy::Strategy`]              | [`register_strategy!`]          |
//! | provider  | [`provider::Provider`]              | [`register_provider!`]          |
//! | tokenizer | [`tokenizer::TokenizerPlugin`] etc. | [`register_tokenizer!`]         |
//!
//! Helpers: [`config`] (the plugin's settings, deserialized), [`model`] (the host's model, for
//! strategies and validators), [`log`], [`rng`] (per-record and per-attempt random streams),
//! [`clean`] (model output stripped of numbering, quotes, markdown and preambles), [`manifest`],
//! and `http` (outbound HTTP for providers; cargo feature `http`).
//!
//! A component imports only what its code calls: a validator that never calls [`model`] does
//! not import `textnlp:plugin/model`, and only a component that calls `http` imports
//! `wasi:http`. The host audits imports per kind and refuses anything else.
//!
//! # The crate
//!
//! ```toml
//! # Cargo.toml
//! [package]
//! name = "my-check"
//! version = "0.1.0"
//! edition = "2024"
//!
//! [lib]
//! crate-type = ["cdylib"]
//!
//! [dependencies]
//! textnlp-plugin-sdk = { path = "/path/to/textnlp/sdk/plugin" }
//! # provider plugins: textnlp-plugin-sdk = { path = "...", features = ["http"] }
//!
//! [profile.release]
//! lto = true
//! opt-level = "s"
//! strip = true
//! ```
//!
//! Next to `Cargo.toml` lies `textnlp-plugin.json`, the manifest (see [`manifest`]). The
//! registration macro embeds it as the custom section [`MANIFEST_SECTION`], along with the API
//! version ([`API_VERSION_SECTION`]); `describe()` answers from it by default.
//!
//! `textnlp plugin new --kind KIND NAME` writes such a crate, ready to build.
//!
//! # A validator
//!
//! ```ignore
//! use textnlp_plugin_sdk::serde::Deserialize;
//! use textnlp_plugin_sdk::validator::{
//!     Metric, Report, Sample, SampleResult, Validator, ValidatorError, Verdict,
//! };
//!
//! /// Settings: `{"banned": ["lorem"]}`; `{}` bans nothing.
//! #[derive(Deserialize, Default)]
//! #[serde(crate = "textnlp_plugin_sdk::serde", default, deny_unknown_fields)]
//! struct Settings {
//!     banned: Vec<String>,
//! }
//!
//! struct NoBannedWords;
//!
//! impl Validator for NoBannedWords {
//!     fn score(samples: Vec<Sample>) -> Result<Report, ValidatorError> {
//!         let settings: Settings =
//!             textnlp_plugin_sdk::config::get().map_err(ValidatorError::InvalidConfig)?;
//!         let results: Vec<SampleResult> = samples
//!             .iter()
//!             .map(|s| {
//!                 let hit = settings.banned.iter().find(|w| s.text.contains(w.as_str()));
//!                 SampleResult {
//!                     scores: vec![Metric::new("banned", f64::from(u8::from(hit.is_some())))],
//!                     verdict: match hit {
//!                         Some(w) => Verdict::reject(format!("contains banned word {w:?}")),
//!                         None => Verdict::keep(),
//!                     },
//!                 }
//!             })
//!             .collect();
//!         let kept = results.iter().filter(|r| r.verdict.keep).count();
//!         Ok(Report { corpus: vec![Metric::new("kept", kept as f64)], samples: results })
//!     }
//! }
//!
//! textnlp_plugin_sdk::register_validator!(NoBannedWords);
//! ```
//!
//! # A strategy
//!
//! Only `expand` is required. Every strategy exports two ways to generate (world
//! `record-strategy-plugin`): `generate`, a batch of records, and `generate_record`, one record
//! per call with an outcome (accepted, rejected, exhausted), which hosts prefer. By default
//! both send each record's chat to the host model ([`strategy::Strategy::generation_request`]:
//! 512 tokens, temperature 0.7, top-p 0.95, a seed derived from (seed, index)).
//!
//! ```ignore
//! use textnlp_plugin_sdk::rng::SplitMix64;
//! use textnlp_plugin_sdk::strategy::{
//!     ChatMessage, ExpandRequest, PromptRecord, Strategy, StrategyError,
//! };
//!
//! const TOPICS: [&str; 3] = ["tides", "volcanoes", "bees"];
//!
//! struct Topics;
//!
//! impl Strategy for Topics {
//!     fn expand(request: ExpandRequest) -> Result<Vec<PromptRecord>, StrategyError> {
//!         let records = (0..u64::from(request.count)).map(|i| {
//!             let index = request.start + i;
//!             // Record `index` depends only on (seed, index).
//!             let topic = TOPICS[SplitMix64::for_record(request.seed, index).below(3) as usize];
//!             PromptRecord {
//!                 index,
//!                 messages: vec![ChatMessage {
//!                     role: "user".into(),
//!                     content: format!("Explain {topic} to a child."),
//!                 }],
//!                 metadata: textnlp_plugin_sdk::serde_json::json!({ "topic": topic }).to_string(),
//!             }
//!         });
//!         Ok(records.collect())
//!     }
//! }
//!
//! textnlp_plugin_sdk::register_strategy!(Topics);
//! ```
//!
//! A strategy whose model output must be parsed or filtered overrides `generate_record`: each
//! attempt draws its randomness from (seed, index, attempt) ([`rng::SplitMix64::for_attempt`]),
//! [`strategy::retry`] retries unusable outputs, and a record that never passes is
//! [`strategy::Outcome::Rejected`] with the rule it broke. `request.context` carries earlier
//! accepted prompts when the manifest asks for them (`"context": N`, see [`manifest`]).
//!
//! ```ignore
//! use textnlp_plugin_sdk::model;
//! use textnlp_plugin_sdk::rng::SplitMix64;
//! use textnlp_plugin_sdk::strategy::{
//!     ChatMessage, Generated, Outcome, RecordError, RecordRequest, Retried, Strategy, retry,
//! };
//!
//! struct Questions;
//!
//! impl Strategy for Questions {
//!     // ... `expand` as above (the batch interface, `generate`, still uses it) ...
//!     fn generate_record(request: RecordRequest) -> Result<Outcome, RecordError> {
//!         let retried = retry(3, |attempt| {
//!             let mut rng = SplitMix64::for_attempt(request.seed, request.index, attempt);
//!             let mut ask = model::text_request("A question about bees:".into());
//!             ask.seed = Some(rng.next_u64());
//!             ask.stop = vec!["\n".into()];
//!             let text = model::generate(&ask)?.text;
//!             let question = text.trim().to_owned();
//!             Ok(if question.ends_with('?') {
//!                 Ok(question)
//!             } else {
//!                 Err("question-mark: the output is not a question".into())
//!             })
//!         })?;
//!         let (question, attempts) = match retried {
//!             Retried::Accepted { value, attempts } => (value, attempts),
//!             Retried::Rejected { reason, .. } => return Ok(Outcome::Rejected(reason)),
//!         };
//!         let messages = vec![ChatMessage { role: "user".into(), content: question }];
//!         let answer = model::generate(&model::chat_request(messages.clone()))?;
//!         Ok(Outcome::Accepted(Generated {
//!             messages,
//!             completion: answer.text,
//!             metadata: "{}".into(),
//!             attempts: attempts + 1,
//!         }))
//!     }
//! }
//! ```
//!
//! # A provider
//!
//! Only `complete` is required: `models` defaults to the `models` setting, `open_stream` to the
//! whole completion as one piece. Build with the SDK's `http` feature. Never set an
//! `Authorization` header: the host adds the key to allowed requests.
//!
//! ```ignore
//! use textnlp_plugin_sdk::http::{self, Method, Request};
//! use textnlp_plugin_sdk::provider::{ChatCompletion, ChatRequest, Provider, ProviderError};
//! use textnlp_plugin_sdk::serde_json::{Value, json};
//!
//! struct Echo;
//!
//! impl Provider for Echo {
//!     fn complete(request: ChatRequest) -> Result<ChatCompletion, ProviderError> {
//!         let body = json!({ "model": request.model, "prompt": request.messages[0].content });
//!         let request = Request::new(Method::Post, "https://echo.example.com/v1/complete")
//!             .header("content-type", "application/json")
//!             .body(body.to_string().into_bytes());
//!         let unavailable = |e: http::Error| ProviderError::Unavailable(e.to_string());
//!         let response = http::send(&request).map_err(unavailable)?;
//!         if response.status != 200 {
//!             return Err(ProviderError::Rejected(format!("HTTP {}", response.status)));
//!         }
//!         let answer: Value = textnlp_plugin_sdk::serde_json::from_slice(
//!             &response.bytes().map_err(unavailable)?,
//!         )
//!         .map_err(|e| ProviderError::Protocol(e.to_string()))?;
//!         Ok(ChatCompletion {
//!             text: answer["text"].as_str().unwrap_or_default().to_owned(),
//!             finish_reason: "stop".into(),
//!             usage: None,
//!         })
//!     }
//! }
//!
//! textnlp_plugin_sdk::register_provider!(Echo);
//! ```
//!
//! # A tokenizer
//!
//! ```ignore
//! use textnlp_plugin_sdk::tokenizer::{
//!     ChatMessage, GuestIncrementalDecoder, GuestTokenizer, IncrementalDecoder, SpecialTokens,
//!     Tokenizer, TokenizerError, TokenizerPlugin, Vocabulary,
//! };
//!
//! /// The plugin itself: only names its resource types.
//! struct Plugin;
//!
//! /// One loaded vocabulary. Methods take `&self`; use `Cell`/`RefCell` for state.
//! struct Chars {
//!     tokens: Vec<String>,
//! }
//!
//! /// A streaming decoder.
//! struct Stream;
//!
//! impl TokenizerPlugin for Plugin {
//!     type Tokenizer = Chars;
//!     type IncrementalDecoder = Stream;
//! }
//!
//! impl GuestTokenizer for Chars {
//!     fn load(vocab: Vocabulary) -> Result<Tokenizer, TokenizerError> {
//!         textnlp_plugin_sdk::log::info(&format!("{} tokens", vocab.tokens.len()));
//!         Ok(Tokenizer::new(Chars { tokens: vocab.tokens }))
//!     }
//!     fn vocab_size(&self) -> u32 {
//!         self.tokens.len() as u32
//!     }
//!     fn special_tokens(&self) -> SpecialTokens {
//!         SpecialTokens { bos: None, eos: None, unknown: None, padding: None,
//!                         end_of_turn: vec![], add_bos: false }
//!     }
//!     fn encode(&self, text: String, _parse_special: bool, _add_special: bool)
//!         -> Result<Vec<u32>, TokenizerError> {
//!         Ok(text.chars().filter_map(|c| {
//!             self.tokens.iter().position(|t| t.chars().eq([c])).map(|i| i as u32)
//!         }).collect())
//!     }
//!     fn decode(&self, ids: Vec<u32>, _skip_special: bool) -> Result<String, TokenizerError> {
//!         ids.iter().map(|&id| self.tokens.get(id as usize).map(String::as_str)
//!             .ok_or(TokenizerError::UnknownToken(id))).collect()
//!     }
//!     fn incremental_decoder(&self, _skip_special: bool) -> IncrementalDecoder {
//!         IncrementalDecoder::new(Stream)
//!     }
//!     fn apply_chat_template(&self, _messages: Vec<ChatMessage>, _add_generation_prompt: bool)
//!         -> Result<String, TokenizerError> {
//!         Err(TokenizerError::Template("no chat template".into()))
//!     }
//! }
//!
//! impl GuestIncrementalDecoder for Stream {
//!     fn push(&self, _id: u32) -> Result<String, TokenizerError> { Ok(String::new()) }
//!     fn finish(&self) -> String { String::new() }
//! }
//!
//! textnlp_plugin_sdk::register_tokenizer!(Plugin);
//! ```

// The generated bindings name this crate by its absolute path (`::textnlp_plugin_sdk::...`),
// also from inside the crate itself.
extern crate self as textnlp_plugin_sdk;

/// The wit-bindgen runtime the bindings use; plugin crates need no wit-bindgen dependency.
#[doc(hidden)]
pub use wit_bindgen;

/// Re-exported so that plugins need no dependencies of their own for settings and metadata.
/// Deriving through the re-export needs `#[serde(crate = "textnlp_plugin_sdk::serde")]`.
pub use serde;
pub use serde_json;

#[doc(hidden)]
pub mod bindings;

pub mod clean;
pub mod config;
#[cfg(feature = "http")]
pub mod http;
pub mod log;
pub mod manifest;
pub mod model;
pub mod provider;
pub mod rng;
pub mod strategy;
pub mod tokenizer;
pub mod validator;

/// Types shared by several interfaces.
pub mod types {
    pub use crate::bindings::host::textnlp::plugin::types::{ChatMessage, Metric, PluginInfo};
}

/// Version of the WIT package (`textnlp:plugin`) this SDK implements.
pub const API_VERSION: &str = "0.1.2";

/// Name of the custom section that the `register_*!` macros add to a component; its content is
/// [`API_VERSION`] as UTF-8. The host reads it to tell which contract a plugin was built for.
pub const API_VERSION_SECTION: &str = "textnlp:plugin-api";

/// Name of the custom section that the `register_*!` macros add to a component; its content is
/// the plugin crate's `textnlp-plugin.json`, byte for byte (see [`manifest`]).
pub const MANIFEST_SECTION: &str = "textnlp:plugin-manifest";

#[doc(hidden)]
pub mod __private {
    /// Copies a byte string into an array, at compile time: a custom section is a static of a
    /// fixed size, while `include_bytes!` and `str::as_bytes` give slices.
    pub const fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
        let mut out = [0u8; N];
        let mut i = 0;
        while i < N {
            out[i] = bytes[i];
            i += 1;
        }
        out
    }
}

/// Embeds `textnlp-plugin.json` (from the crate being built) and the API version as custom
/// sections, and implements [`manifest::PluginManifest`] for the registered type.
#[doc(hidden)]
#[macro_export]
macro_rules! __embed_manifest {
    ($plugin:ty) => {
        const _: () = {
            const MANIFEST: &[u8] =
                include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/textnlp-plugin.json"));

            // Names must be literals here; they are `MANIFEST_SECTION` and `API_VERSION_SECTION`.
            #[cfg(target_arch = "wasm32")]
            #[unsafe(link_section = "textnlp:plugin-manifest")]
            #[used]
            static MANIFEST_SECTION: [u8; MANIFEST.len()] = $crate::__private::array(MANIFEST);

            #[cfg(target_arch = "wasm32")]
            #[unsafe(link_section = "textnlp:plugin-api")]
            #[used]
            static API_VERSION_SECTION: [u8; $crate::API_VERSION.len()] =
                $crate::__private::array($crate::API_VERSION.as_bytes());

            impl $crate::manifest::PluginManifest for $plugin {
                const JSON: &'static [u8] = MANIFEST;
            }
        };
    };
}

/// Exports a validator plugin from this component.
///
/// The argument is a type implementing [`validator::Validator`]. Use it once, in the plugin's
/// `cdylib` crate, whose root must hold `textnlp-plugin.json`.
#[macro_export]
macro_rules! register_validator {
    ($plugin:ty) => {
        $crate::__embed_manifest!($plugin);
        const _: () = {
            type TextnlpValidator = $crate::validator::Export<$plugin>;
            $crate::bindings::validator::__export_validator_plugin!(
                TextnlpValidator with_types_in $crate::bindings::validator
            );
        };
    };
}

/// Exports a validator that can also rewrite samples: the type implements
/// [`validator::Rewriter`] (and so [`validator::Validator`]). Use it instead of
/// [`register_validator!`], once, in the plugin's `cdylib` crate.
#[macro_export]
macro_rules! register_rewriting_validator {
    ($plugin:ty) => {
        $crate::register_validator!($plugin);
        const _: () = {
            type TextnlpRewriter = $crate::validator::Export<$plugin>;
            $crate::bindings::rewriter::__export_rewriter!(
                TextnlpRewriter with_types_in $crate::bindings::rewriter
            );
        };
    };
}

/// Exports a strategy plugin from this component.
///
/// The argument is a type implementing [`strategy::Strategy`]. Use it once, in the plugin's
/// `cdylib` crate, whose root must hold `textnlp-plugin.json`.
#[macro_export]
macro_rules! register_strategy {
    ($plugin:ty) => {
        $crate::__embed_manifest!($plugin);
        const _: () = {
            type TextnlpStrategy = $crate::strategy::Export<$plugin>;
            $crate::bindings::strategy::__export_strategy_plugin!(
                TextnlpStrategy with_types_in $crate::bindings::strategy
            );
        };
    };
}

/// Exports a provider plugin from this component.
///
/// The argument is a type implementing [`provider::Provider`]. Use it once, in the plugin's
/// `cdylib` crate, whose root must hold `textnlp-plugin.json`.
#[macro_export]
macro_rules! register_provider {
    ($plugin:ty) => {
        $crate::__embed_manifest!($plugin);
        const _: () = {
            type TextnlpProvider = $crate::provider::Export<$plugin>;
            $crate::bindings::provider::__export_provider_plugin!(
                TextnlpProvider with_types_in $crate::bindings::provider
            );
        };
    };
}

/// Exports a tokenizer plugin from this component.
///
/// The argument is the name of a type implementing [`tokenizer::TokenizerPlugin`] (a plain
/// identifier: bring it into scope first). Use it once, in the plugin's `cdylib` crate, whose
/// root must hold `textnlp-plugin.json`.
#[macro_export]
macro_rules! register_tokenizer {
    ($plugin:ident) => {
        $crate::__embed_manifest!($plugin);
        $crate::bindings::tokenizer::__export_tokenizer_plugin!(
            $plugin with_types_in $crate::bindings::tokenizer
        );
    };
}
