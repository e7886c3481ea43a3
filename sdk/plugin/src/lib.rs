//! Guest SDK for textnlp plugins.
//!
//! A textnlp plugin is a WebAssembly component built from an ordinary Rust crate with
//! `cargo build --release --target wasm32-wasip2`. The crate depends only on this SDK, which
//! carries the WIT contract (package `textnlp:plugin@0.1.0`), the generated bindings, a logging
//! helper and a registration macro. The host (`textnlp`) loads the component into its own
//! sandbox: no files, no environment, no network, a memory cap and a wall-clock deadline per call.
//!
//! # A tokenizer plugin
//!
//! ```toml
//! # Cargo.toml
//! [lib]
//! crate-type = ["cdylib"]
//!
//! [dependencies]
//! textnlp-plugin-sdk = "0.1"
//! ```
//!
//! ```no_run
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
//!
//! `register_tokenizer!` exports the component's `tokenizer` interface and stamps the component
//! with the API version it was built against (custom section [`API_VERSION_SECTION`]).

// The generated bindings name this crate by its absolute path (`::textnlp_plugin_sdk::...`),
// also from inside the crate itself.
extern crate self as textnlp_plugin_sdk;

/// The wit-bindgen runtime the bindings use; plugin crates need no wit-bindgen dependency.
#[doc(hidden)]
pub use wit_bindgen;

/// The raw bindings generated from `wit/` (world `tokenizer-plugin`). Prefer the re-exports in
/// [`tokenizer`] and [`log`].
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "textnlp:plugin/tokenizer-plugin@0.1.0",
        runtime_path: "::textnlp_plugin_sdk::wit_bindgen::rt",
        pub_export_macro: true,
        export_macro_name: "__export_tokenizer_plugin",
        default_bindings_module: "::textnlp_plugin_sdk::bindings",
    });
}

/// Version of the WIT package (`textnlp:plugin`) this SDK implements.
pub const API_VERSION: &str = "0.1.0";

/// Name of the custom section that [`register_tokenizer!`] adds to a component; its content is
/// [`API_VERSION`] as UTF-8. The host reads it to tell which contract a plugin was built for.
pub const API_VERSION_SECTION: &str = "textnlp:plugin-api";

#[doc(hidden)]
pub const __API_VERSION_BYTES: [u8; API_VERSION.len()] = {
    let src = API_VERSION.as_bytes();
    let mut out = [0u8; API_VERSION.len()];
    let mut i = 0;
    while i < src.len() {
        out[i] = src[i];
        i += 1;
    }
    out
};

/// Everything a tokenizer plugin implements or returns, under friendly names.
pub mod tokenizer {
    pub use crate::bindings::exports::textnlp::plugin::tokenizer::{
        ChatMessage, Error as TokenizerError, Guest as TokenizerPlugin, GuestIncrementalDecoder,
        GuestTokenizer, IncrementalDecoder, SpecialTokens, Tokenizer, Vocabulary,
    };
}

/// Logging through the host. Messages are attributed to the plugin (and tenant) by the host,
/// which may truncate long messages or drop them when a plugin logs too much.
pub mod log {
    pub use crate::bindings::textnlp::plugin::log::Level;

    /// Sends one message to the host log.
    pub fn log(level: Level, message: &str) {
        crate::bindings::textnlp::plugin::log::log(level, message);
    }
    /// Logs at `trace` level.
    pub fn trace(message: &str) {
        log(Level::Trace, message);
    }
    /// Logs at `debug` level.
    pub fn debug(message: &str) {
        log(Level::Debug, message);
    }
    /// Logs at `info` level.
    pub fn info(message: &str) {
        log(Level::Info, message);
    }
    /// Logs at `warn` level.
    pub fn warn(message: &str) {
        log(Level::Warn, message);
    }
    /// Logs at `error` level.
    pub fn error(message: &str) {
        log(Level::Error, message);
    }
}

/// Exports a tokenizer plugin from this component.
///
/// The argument is the name of a type implementing [`tokenizer::TokenizerPlugin`] (a plain
/// identifier: bring it into scope first). Use it once, in the plugin's `cdylib` crate.
#[macro_export]
macro_rules! register_tokenizer {
    ($plugin:ident) => {
        $crate::bindings::__export_tokenizer_plugin!($plugin);

        #[cfg(target_arch = "wasm32")]
        #[unsafe(link_section = "textnlp:plugin-api")]
        #[used]
        static __TEXTNLP_PLUGIN_API_VERSION: [u8; $crate::API_VERSION.len()] =
            $crate::__API_VERSION_BYTES;
    };
}
