//! Provider plugins: adapters for a remote model API.
//!
//! Implement [`Provider`] (only `complete` is required) and register it with
//! [`register_provider!`](crate::register_provider). Outbound HTTP goes through
//! `textnlp_plugin_sdk::http` (cargo feature `http`) to the hosts the operator allowed. The host adds the
//! API key to each allowed request: a provider never sees a key and never sets one.

use std::cell::RefCell;
use std::marker::PhantomData;

pub use crate::bindings::provider::exports::textnlp::plugin::provider::{
    ChatCompletion, ChatRequest, Error as ProviderError, ModelCard, Usage,
};
pub use crate::types::{ChatMessage, PluginInfo};

use crate::bindings::provider::exports::textnlp::plugin::provider::{
    CompletionStream, Guest, GuestCompletionStream,
};
use crate::manifest::{self, PluginManifest};

/// A remote-API adapter. (The supertrait [`PluginManifest`] is implemented by
/// [`register_provider!`](crate::register_provider).)
pub trait Provider: PluginManifest {
    /// Name, version, description and settings schema; by default those of
    /// `textnlp-plugin.json`.
    fn describe() -> PluginInfo {
        manifest::describe::<Self>()
    }

    /// The models callers may name. By default one card per id in the `models` setting (a list
    /// of strings), or none when it is absent.
    fn models() -> Result<Vec<ModelCard>, ProviderError> {
        let ids: Vec<String> = crate::config::value("models")
            .map_err(ProviderError::Rejected)?
            .unwrap_or_default();
        Ok(ids.into_iter().map(ModelCard::named).collect())
    }

    /// One whole completion.
    fn complete(request: ChatRequest) -> Result<ChatCompletion, ProviderError>;

    /// A streamed completion. By default `complete`, handed out as a single piece, so an
    /// adapter without streaming support needs nothing more.
    fn open_stream(request: ChatRequest) -> Result<Box<dyn Stream>, ProviderError> {
        Ok(Box::new(Whole::new(Self::complete(request)?)))
    }
}

/// A completion being streamed, pulled piece by piece by the host.
pub trait Stream {
    /// The next piece of text; `None` once the completion is over.
    fn next(&mut self) -> Result<Option<String>, ProviderError>;
    /// Why it ended and the usage; the host asks once `next` returned `None`.
    fn finish(&mut self) -> Result<ChatCompletion, ProviderError>;
}

impl ModelCard {
    /// A card with only an id.
    pub fn named(id: String) -> ModelCard {
        ModelCard {
            id,
            context_length: None,
            description: String::new(),
        }
    }
}

/// A whole completion as a stream: its text as one piece (none when empty), then the end.
pub struct Whole {
    completion: ChatCompletion,
    sent: bool,
}

impl Whole {
    pub fn new(completion: ChatCompletion) -> Whole {
        Whole {
            completion,
            sent: false,
        }
    }
}

impl Stream for Whole {
    fn next(&mut self) -> Result<Option<String>, ProviderError> {
        let first = !std::mem::replace(&mut self.sent, true);
        Ok((first && !self.completion.text.is_empty()).then(|| self.completion.text.clone()))
    }

    fn finish(&mut self) -> Result<ChatCompletion, ProviderError> {
        Ok(self.completion.clone())
    }
}

/// The exported `completion-stream` resource: any [`Stream`], behind a `RefCell` because the
/// generated resource methods take `&self` while streams advance with `&mut self`.
#[doc(hidden)]
pub struct StreamResource(RefCell<Box<dyn Stream>>);

impl StreamResource {
    fn with<R>(
        &self,
        f: impl FnOnce(&mut dyn Stream) -> Result<R, ProviderError>,
    ) -> Result<R, ProviderError> {
        // The host cannot re-enter a component during a call, so the borrow is always free;
        // still, a broken invariant becomes an error rather than a trap.
        let mut stream = self
            .0
            .try_borrow_mut()
            .map_err(|_| ProviderError::Protocol("the stream is already in use".into()))?;
        f(stream.as_mut())
    }
}

impl GuestCompletionStream for StreamResource {
    fn next(&self) -> Result<Option<String>, ProviderError> {
        self.with(|s| s.next())
    }
    fn finish(&self) -> Result<ChatCompletion, ProviderError> {
        self.with(|s| s.finish())
    }
}

/// The type [`register_provider!`](crate::register_provider) exports: forwards the generated
/// `Guest` trait to the author's [`Provider`].
#[doc(hidden)]
pub struct Export<T>(PhantomData<T>);

impl<T: Provider> Guest for Export<T> {
    type CompletionStream = StreamResource;

    fn describe() -> PluginInfo {
        T::describe()
    }
    fn models() -> Result<Vec<ModelCard>, ProviderError> {
        T::models()
    }
    fn complete(request: ChatRequest) -> Result<ChatCompletion, ProviderError> {
        T::complete(request)
    }
    fn open_stream(request: ChatRequest) -> Result<CompletionStream, ProviderError> {
        let stream = T::open_stream(request)?;
        Ok(CompletionStream::new(StreamResource(RefCell::new(stream))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(text: &str) -> Whole {
        Whole::new(ChatCompletion {
            text: text.into(),
            finish_reason: "stop".into(),
            usage: None,
        })
    }

    #[test]
    fn a_whole_completion_is_one_piece() {
        let mut s = whole("Hello");
        assert_eq!(s.next().unwrap().as_deref(), Some("Hello"));
        assert_eq!(s.next().unwrap(), None);
        assert_eq!(s.finish().unwrap().text, "Hello");
        assert_eq!(whole("").next().unwrap(), None);
    }
}
