//! A hostile tokenizer plugin for the host's isolation tests.
//!
//! - `load` succeeds and remembers the vocabulary size `n`; `vocab-size` and `special-tokens`
//!   are well-behaved.
//! - `encode` returns ids outside the vocabulary: `[0, n + 1000, 4_000_000_000]`.
//! - `decode` returns a `string` that is not UTF-8 (`66 ff fe`); the host must refuse to lift it.
//! - the incremental decoder's `push` returns a 10 MiB string for one id.
//! - `apply-chat-template` returns `"ok"`.

use exports::textnlp::plugin::tokenizer::{
    ChatMessage, Error, Guest, GuestIncrementalDecoder, GuestTokenizer, IncrementalDecoder,
    SpecialTokens, Tokenizer, Vocabulary,
};

wit_bindgen::generate!({
    // Built against the released 0.1.0 contract: the host must keep running 0.1.0 plugins.
    path: "../../../wit/released/0.1.0",
    world: "textnlp:plugin/tokenizer-plugin@0.1.0",
});

/// The WIT package version this plugin was built against (what the SDK stamps).
#[cfg(target_arch = "wasm32")]
#[used]
#[unsafe(link_section = "textnlp:plugin-api")]
static PLUGIN_API_VERSION: [u8; 5] = *b"0.1.0";

/// The install-time manifest.
#[cfg(target_arch = "wasm32")]
#[used]
#[unsafe(link_section = "textnlp:plugin-manifest")]
static PLUGIN_MANIFEST: [u8; include_bytes!("../textnlp-plugin.json").len()] =
    *include_bytes!("../textnlp-plugin.json");

struct Hostile;

export!(Hostile);

impl Guest for Hostile {
    type Tokenizer = HostileTokenizer;
    type IncrementalDecoder = HugeDecoder;
}

struct HostileTokenizer {
    n: u32,
    special: SpecialTokens,
}

impl GuestTokenizer for HostileTokenizer {
    fn load(vocab: Vocabulary) -> Result<Tokenizer, Error> {
        let n = u32::try_from(vocab.tokens.len())
            .map_err(|_| Error::InvalidVocabulary("too many tokens".into()))?;
        let special = SpecialTokens {
            bos: vocab.bos_id,
            eos: vocab.eos_id,
            unknown: vocab.unknown_id,
            padding: vocab.padding_id,
            end_of_turn: vocab.eos_id.into_iter().collect(),
            add_bos: vocab.add_bos,
        };
        Ok(Tokenizer::new(HostileTokenizer { n, special }))
    }

    fn vocab_size(&self) -> u32 {
        self.n
    }

    fn special_tokens(&self) -> SpecialTokens {
        self.special.clone()
    }

    fn encode(
        &self,
        _text: String,
        _parse_special: bool,
        _add_special: bool,
    ) -> Result<Vec<u32>, Error> {
        Ok(vec![0, self.n.saturating_add(1000), 4_000_000_000])
    }

    fn decode(&self, _ids: Vec<u32>, _skip_special: bool) -> Result<String, Error> {
        // Deliberately not UTF-8: the canonical ABI lowers the bytes as they are, and the host
        // must refuse to lift them.
        Ok(unsafe { String::from_utf8_unchecked(vec![0x66, 0xff, 0xfe]) })
    }

    fn incremental_decoder(&self, _skip_special: bool) -> IncrementalDecoder {
        IncrementalDecoder::new(HugeDecoder)
    }

    fn apply_chat_template(
        &self,
        _messages: Vec<ChatMessage>,
        _add_generation_prompt: bool,
    ) -> Result<String, Error> {
        Ok("ok".into())
    }
}

/// Returns 10 MiB of text for every id pushed.
struct HugeDecoder;

impl GuestIncrementalDecoder for HugeDecoder {
    fn push(&self, _id: u32) -> Result<String, Error> {
        Ok("d".repeat(10 << 20))
    }

    fn finish(&self) -> String {
        String::new()
    }
}
