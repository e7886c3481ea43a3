//! Tokenizer plugins: text <-> token ids for one model, plus its chat template.
//!
//! Implement [`TokenizerPlugin`] (it only names the resource types), [`GuestTokenizer`] and
//! [`GuestIncrementalDecoder`], then register with
//! [`register_tokenizer!`](crate::register_tokenizer). The tokenizer world imports only `log`.

pub use crate::bindings::tokenizer::exports::textnlp::plugin::tokenizer::{
    ChatMessage, Error as TokenizerError, Guest as TokenizerPlugin, GuestIncrementalDecoder,
    GuestTokenizer, IncrementalDecoder, SpecialTokens, Tokenizer, Vocabulary,
};
