//! A streamed completion: the body of a `"stream": true` answer, read only as far as the host
//! has pulled pieces.

use textnlp_plugin_sdk::http::BodyReader;
use textnlp_plugin_sdk::provider::{ChatCompletion, ProviderError, Stream, Usage};

use crate::api;
use crate::sse::SseParser;

/// Where the event-stream bytes come from: the response body, or a test's chunks.
pub trait Chunks {
    /// The next bytes; `None` at the end.
    fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, ProviderError>;
}

impl Chunks for BodyReader {
    fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, ProviderError> {
        self.read_chunk()
            .map_err(|e| ProviderError::Unavailable(e.to_string()))
    }
}

pub struct ChatStream<B> {
    body: B,
    events: SseParser,
    /// Everything handed out so far, for `finish`.
    text: String,
    finish_reason: Option<String>,
    usage: Option<Usage>,
    /// `[DONE]` seen, or the body ended after a finish reason.
    done: bool,
    /// The body has no more bytes.
    eof: bool,
}

impl<B: Chunks> ChatStream<B> {
    pub fn new(body: B) -> ChatStream<B> {
        ChatStream {
            body,
            events: SseParser::default(),
            text: String::new(),
            finish_reason: None,
            usage: None,
            done: false,
            eof: false,
        }
    }

    /// Applies one event's data; returns its text, if it carries any.
    fn apply(&mut self, data: &str) -> Result<Option<String>, ProviderError> {
        if data.trim() == "[DONE]" {
            self.done = true;
            return Ok(None);
        }
        let delta = api::delta(data)?;
        if delta.finish_reason.is_some() {
            self.finish_reason = delta.finish_reason;
        }
        if delta.usage.is_some() {
            self.usage = delta.usage;
        }
        Ok(delta.text.filter(|t| !t.is_empty()))
    }

    /// Reads more of the body into the parser.
    fn read_more(&mut self) -> Result<(), ProviderError> {
        let protocol = ProviderError::Protocol;
        match self.body.next_chunk()? {
            Some(bytes) => self.events.feed(&bytes).map_err(protocol),
            None => {
                self.eof = true;
                self.events.end().map_err(protocol)
            }
        }
    }
}

impl<B: Chunks> Stream for ChatStream<B> {
    fn next(&mut self) -> Result<Option<String>, ProviderError> {
        loop {
            if self.done {
                return Ok(None);
            }
            if let Some(data) = self.events.pop() {
                match self.apply(&data)? {
                    Some(piece) => {
                        self.text.push_str(&piece);
                        return Ok(Some(piece));
                    }
                    None => continue,
                }
            }
            if self.eof {
                // Some servers close without `[DONE]`; a finish reason says the answer is whole.
                if self.finish_reason.is_some() {
                    self.done = true;
                    continue;
                }
                return Err(ProviderError::Unavailable(
                    "the stream ended before the completion finished".into(),
                ));
            }
            self.read_more()?;
        }
    }

    /// Reads whatever the host did not pull yet, then reports the whole completion.
    fn finish(&mut self) -> Result<ChatCompletion, ProviderError> {
        while self.next()?.is_some() {}
        Ok(ChatCompletion {
            text: self.text.clone(),
            finish_reason: self
                .finish_reason
                .clone()
                .unwrap_or_else(|| api::UNKNOWN_REASON.into()),
            usage: self.usage,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Chunks given up front, oldest first.
    struct Given(Vec<&'static [u8]>);

    impl Chunks for Given {
        fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, ProviderError> {
            Ok((!self.0.is_empty()).then(|| self.0.remove(0).to_vec()))
        }
    }

    fn stream(chunks: Vec<&'static [u8]>) -> ChatStream<Given> {
        ChatStream::new(Given(chunks))
    }

    fn pieces(s: &mut ChatStream<Given>) -> Result<Vec<String>, ProviderError> {
        std::iter::from_fn(|| s.next().transpose()).collect()
    }

    const CHUNKS: [&[u8]; 5] = [
        b"data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\nda",
        b"ta: {\"choices\":[{\"delta\":{\"content\":\"He\"}}]}\n\n",
        b"data: {\"choices\":[{\"delta\":{\"content\":\"llo\"},\"finish_reason\":\"length\"}]}\n\n",
        b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2}}\n\n",
        b"data: [DONE]\n\n",
    ];

    #[test]
    fn yields_pieces_then_the_summary() {
        let mut s = stream(CHUNKS.to_vec());
        assert_eq!(pieces(&mut s).unwrap(), ["He", "llo"]);
        let done = s.finish().unwrap();
        assert_eq!(
            (done.text.as_str(), done.finish_reason.as_str()),
            ("Hello", "length")
        );
        assert_eq!(
            done.usage.map(|u| (u.prompt_tokens, u.completion_tokens)),
            Some((5, 2))
        );
    }

    #[test]
    fn finish_reads_what_was_not_pulled() {
        let mut s = stream(CHUNKS.to_vec());
        assert_eq!(s.next().unwrap().as_deref(), Some("He"));
        assert_eq!(s.finish().unwrap().text, "Hello");
    }

    #[test]
    fn a_close_after_the_finish_reason_is_the_end() {
        let mut s = stream(CHUNKS[..3].to_vec());
        assert_eq!(pieces(&mut s).unwrap(), ["He", "llo"]);
        assert!(s.finish().unwrap().usage.is_none());
    }

    #[test]
    fn a_cut_stream_is_an_error() {
        let mut s = stream(CHUNKS[..2].to_vec());
        assert!(matches!(pieces(&mut s), Err(ProviderError::Unavailable(_))));
        let mut s = stream(vec![b"data: {\"error\":{\"message\":\"overloaded\"}}\n\n"]);
        assert!(
            matches!(pieces(&mut s), Err(ProviderError::Unavailable(m)) if m.contains("overloaded"))
        );
        let mut s = stream(vec![b"data: {not json}\n\n"]);
        assert!(matches!(pieces(&mut s), Err(ProviderError::Protocol(_))));
    }
}
