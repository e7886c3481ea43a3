//! Text around the engine's token ids: tokenizer-plugin instances per tenant, and
//! [`TextStream`], which detokenizes a sequence incrementally and cuts it at stop strings
//! (matched on text, across token boundaries).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::plugins::{DecoderHandle, PluginError, SpecialTokens, TokenizerPlugin};

/// Builds a fresh tokenizer instance (to replace one that trapped).
pub type TokenizerLoader = Box<dyn Fn() -> Result<TokenizerPlugin, PluginError> + Send + Sync>;

/// Tenants whose tokenizer instances are kept; beyond it, the least recently used tenant's
/// are dropped (and made again on its next request).
const MAX_TENANTS: usize = 32;

/// The tokenizer of every tenant. Each tenant gets instances of its own, made on first use,
/// so whatever a tokenizer keeps between calls (the first-party one caches recent pieces, and
/// a cache hit is faster) never crosses tenants: one tenant's text cannot show in another's
/// tokenization time.
pub struct TokenizerPool {
    loader: Arc<TokenizerLoader>,
    per_tenant: usize,
    special: SpecialTokens,
    /// Most recently used last.
    tenants: Mutex<Vec<(String, Arc<Tokenizers>)>>,
}

impl TokenizerPool {
    /// A pool making `per_tenant` instances per tenant with `loader` (one is made now, to
    /// check the plugin and read its special tokens).
    pub fn new(loader: TokenizerLoader, per_tenant: usize) -> Result<Self, PluginError> {
        let special = loader()?.special_tokens()?;
        Ok(TokenizerPool {
            loader: Arc::new(loader),
            per_tenant: per_tenant.max(1),
            special,
            tenants: Mutex::default(),
        })
    }

    pub fn special_tokens(&self) -> &SpecialTokens {
        &self.special
    }

    /// `tenant`'s instances.
    pub fn tenant(&self, tenant: &str) -> Result<Arc<Tokenizers>, PluginError> {
        if let Some(found) = self.touch(tenant) {
            return Ok(found);
        }
        // Made outside the lock: instantiating takes a while, other tenants go on meanwhile.
        let made = Arc::new(Tokenizers::new(Arc::clone(&self.loader), self.per_tenant)?);
        let mut tenants = self.lock();
        if let Some(at) = tenants.iter().position(|(t, _)| t == tenant) {
            return Ok(Arc::clone(&tenants[at].1));
        }
        if tenants.len() == MAX_TENANTS {
            tenants.remove(0);
        }
        tenants.push((tenant.to_owned(), Arc::clone(&made)));
        Ok(made)
    }

    /// `tenant`'s instances if it has some, marked most recently used.
    fn touch(&self, tenant: &str) -> Option<Arc<Tokenizers>> {
        let mut tenants = self.lock();
        let at = tenants.iter().position(|(t, _)| t == tenant)?;
        let entry = tenants.remove(at);
        let found = Arc::clone(&entry.1);
        tenants.push(entry);
        Some(found)
    }

    fn lock(&self) -> MutexGuard<'_, Vec<(String, Arc<Tokenizers>)>> {
        self.tenants.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One tenant's tokenizer instances; each request picks one round-robin and keeps using it
/// (its streaming decoders live inside that instance). Calls take microseconds, so a plain
/// mutex per instance is enough.
pub struct Tokenizers {
    instances: Vec<Mutex<TokenizerPlugin>>,
    next: AtomicUsize,
    loader: Arc<TokenizerLoader>,
}

impl Tokenizers {
    fn new(loader: Arc<TokenizerLoader>, count: usize) -> Result<Self, PluginError> {
        let instances = (0..count.max(1))
            .map(|_| loader().map(Mutex::new))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Tokenizers {
            instances,
            next: AtomicUsize::new(0),
            loader,
        })
    }

    /// An instance index for a new request.
    pub fn pick(&self) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed) % self.instances.len()
    }

    /// Runs `f` on instance `i`. An instance that trapped is replaced before the next use
    /// (the requests holding decoders in it then fail cleanly).
    pub fn with<R>(
        &self,
        i: usize,
        f: impl FnOnce(&mut TokenizerPlugin) -> Result<R, PluginError>,
    ) -> Result<R, PluginError> {
        let mut guard = self.lock(i);
        if guard.is_poisoned() {
            tracing::warn!("tokenizer instance {i} trapped earlier; loading a fresh one");
            *guard = (self.loader)()?;
        }
        f(&mut guard)
    }

    /// Runs `f` on any instance.
    pub fn with_any<R>(
        &self,
        f: impl FnOnce(&mut TokenizerPlugin) -> Result<R, PluginError>,
    ) -> Result<R, PluginError> {
        self.with(self.pick(), f)
    }

    fn lock(&self, i: usize) -> MutexGuard<'_, TokenizerPlugin> {
        // A panic while holding the lock cannot leave the plugin half-updated on the host
        // side; the plugin's own state is guarded by its poisoning.
        self.instances[i].lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What a [`TextStream`] step produced.
#[derive(Debug, Default, PartialEq)]
pub struct Piece {
    /// Text that is final and may be sent.
    pub text: String,
    /// A stop string was found; nothing after it will be produced.
    pub stopped: bool,
}

/// Incremental detokenization of one sequence with stop strings.
///
/// Text that could still turn out to be the start of a stop string is held back until it is
/// either completed (then cut, with the stop string excluded, as OpenAI does) or ruled out.
pub struct TextStream {
    instance: usize,
    decoder: Option<DecoderHandle>,
    stops: Vec<String>,
    text: String,
    sent: usize,
    stopped: bool,
}

impl TextStream {
    pub fn new(pool: &Tokenizers, stops: Vec<String>) -> Result<Self, PluginError> {
        let instance = pool.pick();
        let decoder = pool.with(instance, |t| t.incremental_decoder(true))?;
        Ok(TextStream {
            instance,
            decoder: Some(decoder),
            stops,
            text: String::new(),
            sent: 0,
            stopped: false,
        })
    }

    /// Feeds one generated id.
    pub fn push(&mut self, pool: &Tokenizers, id: u32) -> Result<Piece, PluginError> {
        if self.stopped {
            return Ok(Piece {
                stopped: true,
                ..Piece::default()
            });
        }
        let decoder = self.decoder.as_ref().expect("present until finish");
        let text = pool.with(self.instance, |t| t.decode_next(decoder, id))?;
        self.text.push_str(&text);
        Ok(self.advance(false))
    }

    /// Ends the sequence: returns the rest of the text (held-back text and any buffered
    /// partial character).
    pub fn finish(&mut self, pool: &Tokenizers) -> Result<Piece, PluginError> {
        if let Some(decoder) = self.decoder.take()
            && !self.stopped
        {
            let tail = pool.with(self.instance, |t| t.decode_finish(decoder))?;
            self.text.push_str(&tail);
        }
        if self.stopped {
            return Ok(Piece {
                stopped: true,
                ..Piece::default()
            });
        }
        Ok(self.advance(true))
    }

    /// The text sent so far (after the stop cut).
    pub fn sent_text(&self) -> &str {
        &self.text[..self.sent]
    }

    fn advance(&mut self, at_end: bool) -> Piece {
        let unsent = &self.text[self.sent..];
        // A stop string cannot start before `sent`: text that might begin one is never sent.
        let hit = self
            .stops
            .iter()
            .filter_map(|s| unsent.find(s.as_str()))
            .min();
        if let Some(at) = hit {
            let text = unsent[..at].to_owned();
            self.sent += at;
            self.text.truncate(self.sent);
            self.stopped = true;
            return Piece {
                text,
                stopped: true,
            };
        }
        let hold = if at_end {
            0
        } else {
            self.stops
                .iter()
                .map(|s| longest_suffix_prefix(unsent, s))
                .max()
                .unwrap_or(0)
        };
        let end = unsent.len() - hold;
        let text = unsent[..end].to_owned();
        self.sent += end;
        Piece {
            text,
            stopped: false,
        }
    }
}

/// Length of the longest suffix of `text` that is a proper prefix of `stop` (always at a
/// char boundary of `text`: UTF-8 is self-synchronising and `stop` starts at one).
fn longest_suffix_prefix(text: &str, stop: &str) -> usize {
    let max = text.len().min(stop.len().saturating_sub(1));
    (1..=max)
        .rev()
        .find(|&k| text.as_bytes()[text.len() - k..] == stop.as_bytes()[..k])
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A TextStream without a tokenizer, fed with text directly.
    fn stream(stops: &[&str]) -> TextStream {
        TextStream {
            instance: 0,
            decoder: None,
            stops: stops.iter().map(|s| s.to_string()).collect(),
            text: String::new(),
            sent: 0,
            stopped: false,
        }
    }

    fn feed(s: &mut TextStream, pieces: &[&str]) -> (String, bool) {
        let mut out = String::new();
        for p in pieces {
            s.text.push_str(p);
            let piece = s.advance(false);
            out.push_str(&piece.text);
            if piece.stopped {
                return (out, true);
            }
        }
        let piece = s.advance(true);
        out.push_str(&piece.text);
        (out, piece.stopped)
    }

    #[test]
    fn stop_split_across_tokens_is_cut_and_excluded() {
        let mut s = stream(&["\n\nUser:"]);
        assert_eq!(
            feed(&mut s, &["Hello", " there", "\n", "\nUs", "er:", " more"]),
            ("Hello there".to_owned(), true)
        );
        assert_eq!(s.sent_text(), "Hello there");
    }

    #[test]
    fn a_false_start_is_released() {
        let mut s = stream(&["STOP"]);
        let mut sent = Vec::new();
        for p in ["ab", "ST", "OX", "yz"] {
            s.text.push_str(p);
            sent.push(s.advance(false).text);
        }
        assert_eq!(sent, ["ab", "", "STOX", "yz"]);
    }

    #[test]
    fn held_text_is_flushed_at_the_end() {
        let mut s = stream(&["STOP"]);
        assert_eq!(feed(&mut s, &["abc", "STO"]), ("abcSTO".to_owned(), false));
    }

    #[test]
    fn earliest_of_several_stops_wins_and_multibyte_text_is_safe() {
        let mut s = stream(&["é!", "b"]);
        assert_eq!(feed(&mut s, &["aé", "!b"]), ("a".to_owned(), true));
        let mut s = stream(&["xyz"]);
        assert_eq!(
            feed(&mut s, &["日本", "語x"]),
            ("日本語x".to_owned(), false)
        );
    }

    #[test]
    fn suffix_prefix() {
        assert_eq!(longest_suffix_prefix("hello wor", "world"), 3);
        assert_eq!(longest_suffix_prefix("abc", "abc"), 0); // a whole match is not held
        assert_eq!(longest_suffix_prefix("", "abc"), 0);
    }
}
