//! Host side of the `tokenizer-plugin` world: a synchronous [`TokenizerPlugin`] wrapper around
//! one sandboxed tokenizer instance.
//!
//! Every value the plugin returns is checked before the host uses it: token ids must lie inside
//! the vocabulary the host handed over, special ids too, and outputs must stay within sizes the
//! inputs can explain. A plugin that breaks the contract gets [`PluginError::InvalidOutput`].

use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use wasmtime::component::ResourceAny;

use super::error::{PluginError, TrapKind};
use super::kind::PluginKind;
use super::runtime::{InstanceSpec, Limits, PluginRuntime, PluginStore, declared_api_version};
use crate::model::vocab::Vocabulary;

use super::bindings::tokenizer as bindings;
use bindings::exports::textnlp::plugin::tokenizer as wit;

pub use wit::{ChatMessage, SpecialTokens};

/// An error the tokenizer plugin reported (the WIT `error` variant).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenizerError {
    /// The vocabulary description is not usable.
    #[error("invalid vocabulary: {0}")]
    InvalidVocabulary(String),
    /// An id outside the vocabulary was given to decode.
    #[error("unknown token id {0}")]
    UnknownToken(u32),
    /// The chat template failed to parse or render.
    #[error("chat template: {0}")]
    Template(String),
    /// The text could not be encoded.
    #[error("cannot encode: {0}")]
    Encode(String),
}

impl From<wit::Error> for TokenizerError {
    fn from(e: wit::Error) -> Self {
        match e {
            wit::Error::InvalidVocabulary(m) => TokenizerError::InvalidVocabulary(m),
            wit::Error::UnknownToken(id) => TokenizerError::UnknownToken(id),
            wit::Error::Template(m) => TokenizerError::Template(m),
            wit::Error::Encode(m) => TokenizerError::Encode(m),
        }
    }
}

impl From<Vocabulary> for wit::Vocabulary {
    fn from(v: Vocabulary) -> Self {
        wit::Vocabulary {
            model: v.model,
            pre: v.pre,
            tokens: v.tokens,
            token_types: v.token_types,
            merges: v.merges,
            bos_id: v.bos_id,
            eos_id: v.eos_id,
            unknown_id: v.unknown_id,
            padding_id: v.padding_id,
            add_bos: v.add_bos,
            chat_template: v.chat_template,
        }
    }
}

/// Distinguishes plugin instances, so a decoder handle cannot be used with another one.
static NEXT_INSTANCE: AtomicU64 = AtomicU64::new(1);

/// Guest decoders whose handles were dropped without `decode_finish`; freed on the next call.
type Graveyard = Arc<Mutex<Vec<ResourceAny>>>;

/// A streaming decoder living inside one [`TokenizerPlugin`] instance. Feed it with
/// [`TokenizerPlugin::decode_next`], end it with [`TokenizerPlugin::decode_finish`]; dropping it
/// instead frees the guest side on the plugin's next call.
pub struct DecoderHandle {
    owner: u64,
    resource: Option<ResourceAny>,
    graveyard: Weak<Mutex<Vec<ResourceAny>>>,
}

impl fmt::Debug for DecoderHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DecoderHandle")
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

impl Drop for DecoderHandle {
    fn drop(&mut self) {
        if let (Some(resource), Some(graveyard)) = (self.resource.take(), self.graveyard.upgrade())
        {
            graveyard
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(resource);
        }
    }
}

/// One loaded tokenizer plugin: its store, its instance and the guest tokenizer resource.
///
/// Calls are synchronous and run on the caller's thread under the instance's deadline and
/// memory cap. After a trap the instance is unusable ([`PluginError::Poisoned`]); load a new one.
pub struct TokenizerPlugin {
    store: PluginStore,
    bindings: bindings::TokenizerPlugin,
    tokenizer: ResourceAny,
    id: u64,
    checks: OutputChecks,
    graveyard: Graveyard,
    api_version: Option<String>,
    name: String,
}

impl fmt::Debug for TokenizerPlugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenizerPlugin")
            .field("id", &self.id)
            .field("n_vocab", &self.checks.n_vocab)
            .finish_non_exhaustive()
    }
}

/// What the host knows independently of the plugin, to check its outputs against. Each
/// check returns what is wrong, for [`TokenizerPlugin::invalid`] to name the plugin.
#[derive(Clone, Copy, Debug)]
struct OutputChecks {
    /// Number of tokens in the vocabulary the host passed in.
    n_vocab: u32,
    /// Length of the longest token string, to bound decode outputs.
    max_token_len: usize,
}

impl OutputChecks {
    fn id(&self, what: &str, id: u32) -> Result<(), String> {
        if id < self.n_vocab {
            return Ok(());
        }
        Err(format!(
            "{what} id {id} is outside the vocabulary ({} tokens)",
            self.n_vocab
        ))
    }

    fn special_tokens(&self, special: &SpecialTokens) -> Result<(), String> {
        for (what, id) in [
            ("bos", special.bos),
            ("eos", special.eos),
            ("unknown", special.unknown),
            ("padding", special.padding),
        ] {
            if let Some(id) = id {
                self.id(what, id)?;
            }
        }
        for &id in &special.end_of_turn {
            self.id("end-of-turn", id)?;
        }
        if let Some(eos) = special.eos
            && !special.end_of_turn.contains(&eos)
        {
            return Err("end-of-turn does not include eos".into());
        }
        if special.add_bos && special.bos.is_none() {
            return Err("add-bos is set but there is no bos".into());
        }
        Ok(())
    }

    /// Ids for `text_len` bytes of text: every token covers at least one byte, except a few
    /// added specials.
    fn encoded(&self, ids: &[u32], text_len: usize) -> Result<(), String> {
        if ids.len() > text_len + 8 {
            return Err(format!("{} ids for {text_len} bytes of text", ids.len()));
        }
        ids.iter().try_for_each(|&id| self.id("token", id))
    }

    /// Bound on the text `n` ids can decode to: the longest token, each byte possibly
    /// rendered as U+FFFD (3 bytes), plus a buffered tail.
    fn text(&self, text: &str, n: usize) -> Result<(), String> {
        let bound = 3 * (n + 1) * (self.max_token_len + 4);
        if text.len() > bound {
            return Err(format!("{} bytes of text for {n} token(s)", text.len()));
        }
        Ok(())
    }
}

impl TokenizerPlugin {
    /// Loads the tokenizer plugin at `wasm_path` and builds `vocab` in it, with the runtime's
    /// default limits.
    pub fn load(
        runtime: &PluginRuntime,
        wasm_path: &Path,
        vocab: Vocabulary,
    ) -> Result<Self, PluginError> {
        Self::load_with_limits(runtime, wasm_path, vocab, runtime.limits())
    }

    /// [`TokenizerPlugin::load`] with explicit limits for this instance.
    pub fn load_with_limits(
        runtime: &PluginRuntime,
        wasm_path: &Path,
        vocab: Vocabulary,
        limits: &Limits,
    ) -> Result<Self, PluginError> {
        let bytes = std::fs::read(wasm_path).map_err(|source| PluginError::Io {
            path: wasm_path.to_owned(),
            source,
        })?;
        let name = wasm_path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "tokenizer".into());
        Self::from_bytes(runtime, &name, &bytes, vocab, limits)
    }

    /// Loads a tokenizer plugin from the component's bytes; `name` attributes its logs.
    pub fn from_bytes(
        runtime: &PluginRuntime,
        name: &str,
        wasm: &[u8],
        vocab: Vocabulary,
        limits: &Limits,
    ) -> Result<Self, PluginError> {
        let pre = runtime.prepare(PluginKind::Tokenizer, wasm)?;
        let pre = bindings::TokenizerPluginPre::new(pre)
            .map_err(|e| PluginError::Link(super::error::describe(&e)))?;

        let n_vocab = u32::try_from(vocab.tokens.len()).map_err(|_| {
            PluginError::Guest(TokenizerError::InvalidVocabulary(
                "more than 2^32 tokens".into(),
            ))
        })?;
        let max_token_len = vocab.tokens.iter().map(String::len).max().unwrap_or(0);
        let vocab = wit::Vocabulary::from(vocab);

        let mut store = runtime.new_store(InstanceSpec::new("host", name, limits.clone()));
        // Failures other than traps and memory denials are instantiation failures.
        let bindings = store.call(|s| pre.instantiate(s)).map_err(|e| match e {
            PluginError::Trap {
                kind: TrapKind::Other,
                message,
                ..
            } => PluginError::Instantiate(message),
            other => other,
        })?;
        let tokenizer = store
            .call(|s| {
                bindings
                    .textnlp_plugin_tokenizer()
                    .tokenizer()
                    .call_load(s, &vocab)
            })?
            .map_err(TokenizerError::from)?;

        let mut plugin = TokenizerPlugin {
            store,
            bindings,
            tokenizer,
            id: NEXT_INSTANCE.fetch_add(1, Ordering::Relaxed),
            checks: OutputChecks {
                n_vocab,
                max_token_len,
            },
            graveyard: Arc::new(Mutex::new(Vec::new())),
            api_version: declared_api_version(wasm),
            name: name.to_owned(),
        };
        let size = plugin.vocab_size()?;
        if size != n_vocab {
            return Err(plugin.invalid(format!(
                "vocab-size is {size} but the vocabulary has {n_vocab} tokens"
            )));
        }
        plugin.special_tokens()?;
        Ok(plugin)
    }

    /// The plugin broke the contract: `message` says how.
    fn invalid(&self, message: String) -> PluginError {
        PluginError::InvalidOutput {
            plugin: self.name.clone(),
            message,
        }
    }

    /// Frees guest decoders whose handles were dropped.
    fn bury_dropped_decoders(&mut self) -> Result<(), PluginError> {
        let dropped: Vec<ResourceAny> =
            std::mem::take(&mut *self.graveyard.lock().unwrap_or_else(|p| p.into_inner()));
        for resource in dropped {
            self.store.call(|s| resource.resource_drop(s))?;
        }
        Ok(())
    }

    /// The number of tokens in the vocabulary (a round trip into the plugin).
    pub fn vocab_size(&mut self) -> Result<u32, PluginError> {
        let this = self.tokenizer;
        let api = self.bindings.textnlp_plugin_tokenizer().tokenizer();
        self.store.call(|s| api.call_vocab_size(s, this))
    }

    /// The special ids, validated against the vocabulary.
    pub fn special_tokens(&mut self) -> Result<SpecialTokens, PluginError> {
        let this = self.tokenizer;
        let api = self.bindings.textnlp_plugin_tokenizer().tokenizer();
        let special = self.store.call(|s| api.call_special_tokens(s, this))?;
        self.checks
            .special_tokens(&special)
            .map_err(|m| self.invalid(m))?;
        Ok(special)
    }

    /// Encodes `text`. With `parse_special`, special-token strings in the text become their
    /// ids; with `add_special`, the model's BOS is prepended when it asks for one.
    pub fn encode(
        &mut self,
        text: &str,
        parse_special: bool,
        add_special: bool,
    ) -> Result<Vec<u32>, PluginError> {
        self.bury_dropped_decoders()?;
        let this = self.tokenizer;
        let api = self.bindings.textnlp_plugin_tokenizer().tokenizer();
        let ids = self
            .store
            .call(|s| api.call_encode(s, this, text, parse_special, add_special))?
            .map_err(TokenizerError::from)?;
        self.checks
            .encoded(&ids, text.len())
            .map_err(|m| self.invalid(m))?;
        Ok(ids)
    }

    /// Decodes ids to text; control tokens are dropped when `skip_special` is true.
    pub fn decode(&mut self, ids: &[u32], skip_special: bool) -> Result<String, PluginError> {
        self.bury_dropped_decoders()?;
        let this = self.tokenizer;
        let api = self.bindings.textnlp_plugin_tokenizer().tokenizer();
        let text = self
            .store
            .call(|s| api.call_decode(s, this, ids, skip_special))?
            .map_err(TokenizerError::from)?;
        self.checks
            .text(&text, ids.len())
            .map_err(|m| self.invalid(m))?;
        Ok(text)
    }

    /// Starts a streaming decoder in the plugin.
    pub fn incremental_decoder(
        &mut self,
        skip_special: bool,
    ) -> Result<DecoderHandle, PluginError> {
        self.bury_dropped_decoders()?;
        let this = self.tokenizer;
        let api = self.bindings.textnlp_plugin_tokenizer().tokenizer();
        let resource = self
            .store
            .call(|s| api.call_incremental_decoder(s, this, skip_special))?;
        Ok(DecoderHandle {
            owner: self.id,
            resource: Some(resource),
            graveyard: Arc::downgrade(&self.graveyard),
        })
    }

    fn decoder_resource(&self, d: &DecoderHandle) -> Result<ResourceAny, PluginError> {
        match d.resource {
            Some(resource) if d.owner == self.id => Ok(resource),
            _ => Err(PluginError::Usage(
                "decoder handle belongs to another tokenizer instance".into(),
            )),
        }
    }

    /// Feeds one id to a streaming decoder; returns the text that became complete (possibly
    /// empty, never a broken character).
    pub fn decode_next(&mut self, d: &DecoderHandle, id: u32) -> Result<String, PluginError> {
        let resource = self.decoder_resource(d)?;
        let api = self
            .bindings
            .textnlp_plugin_tokenizer()
            .incremental_decoder();
        let text = self
            .store
            .call(|s| api.call_push(s, resource, id))?
            .map_err(TokenizerError::from)?;
        self.checks.text(&text, 1).map_err(|m| self.invalid(m))?;
        Ok(text)
    }

    /// Ends a streaming decoder: returns what was still buffered (an incomplete character
    /// becomes U+FFFD) and frees it.
    pub fn decode_finish(&mut self, mut d: DecoderHandle) -> Result<String, PluginError> {
        let resource = self.decoder_resource(&d)?;
        d.resource = None;
        let api = self
            .bindings
            .textnlp_plugin_tokenizer()
            .incremental_decoder();
        let text = self.store.call(|s| api.call_finish(s, resource))?;
        self.store.call(|s| resource.resource_drop(s))?;
        self.checks.text(&text, 1).map_err(|m| self.invalid(m))?;
        Ok(text)
    }

    /// Renders the model's chat template over `messages`.
    pub fn apply_chat_template(
        &mut self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String, PluginError> {
        self.bury_dropped_decoders()?;
        let this = self.tokenizer;
        let api = self.bindings.textnlp_plugin_tokenizer().tokenizer();
        Ok(self
            .store
            .call(|s| api.call_apply_chat_template(s, this, messages, add_generation_prompt))?
            .map_err(TokenizerError::from)?)
    }

    /// The largest linear memory the plugin has used so far, in bytes.
    pub fn memory_peak(&self) -> usize {
        self.store.memory_peak()
    }

    /// The plugin API version the component says it was built against, if it says.
    pub fn api_version(&self) -> Option<&str> {
        self.api_version.as_deref()
    }

    /// Changes the wall-clock budget of each later call into this instance.
    pub fn set_call_deadline(&mut self, deadline: std::time::Duration) {
        self.store.set_call_deadline(deadline);
    }

    /// Whether an earlier call trapped (every later call fails with `Poisoned`).
    pub fn is_poisoned(&self) -> bool {
        self.store.is_poisoned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHECKS: OutputChecks = OutputChecks {
        n_vocab: 100,
        max_token_len: 10,
    };

    fn invalid<T: fmt::Debug>(r: Result<T, String>) -> String {
        match r {
            Err(m) => m,
            other => panic!("expected a violation, got {other:?}"),
        }
    }

    fn special() -> SpecialTokens {
        SpecialTokens {
            bos: Some(1),
            eos: Some(2),
            unknown: None,
            padding: Some(2),
            end_of_turn: vec![2, 7],
            add_bos: true,
        }
    }

    #[test]
    fn lying_outputs_are_invalid() {
        assert!(CHECKS.encoded(&[0, 99], 2).is_ok());
        assert!(invalid(CHECKS.encoded(&[0, 100], 2)).contains("token id 100"));
        assert!(invalid(CHECKS.encoded(&[1; 20], 4)).contains("20 ids for 4 bytes"));

        assert!(CHECKS.special_tokens(&special()).is_ok());
        let mut s = special();
        s.eos = Some(100);
        assert!(invalid(CHECKS.special_tokens(&s)).contains("eos id 100"));
        let mut s = special();
        s.end_of_turn = vec![7];
        assert!(invalid(CHECKS.special_tokens(&s)).contains("does not include eos"));
        let mut s = special();
        s.end_of_turn.push(u32::MAX);
        assert!(invalid(CHECKS.special_tokens(&s)).contains("end-of-turn id"));
        let mut s = special();
        s.bos = None;
        assert!(invalid(CHECKS.special_tokens(&s)).contains("no bos"));

        assert!(CHECKS.text(&"x".repeat(42), 1).is_ok());
        assert!(invalid(CHECKS.text(&"x".repeat(1000), 1)).contains("1000 bytes"));
    }
}
