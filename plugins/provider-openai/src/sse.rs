//! An incremental parser of server-sent events (the `text/event-stream` format): bytes go in as
//! they arrive, the `data` of each complete event comes out. Only `data` fields matter to the
//! chat completions API; `event`, `id`, `retry` and comments are skipped.

use std::collections::VecDeque;

/// Longest line kept while waiting for its end: a server that never sends a newline gets an
/// error instead of all of the plugin's memory.
const MAX_LINE: usize = 1 << 20;

#[derive(Debug, Default)]
pub struct SseParser {
    /// Bytes of the line not yet ended.
    partial: Vec<u8>,
    /// The data lines of the event being read, joined with `\n`.
    data: Option<String>,
    /// Complete events' data, oldest first.
    ready: VecDeque<String>,
}

impl SseParser {
    /// Adds bytes from the stream.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), String> {
        let mut buffer = std::mem::take(&mut self.partial);
        buffer.extend_from_slice(bytes);
        let mut rest = buffer.as_slice();
        while let Some(len) = rest.iter().position(|&b| b == b'\n') {
            self.line(&rest[..len])?;
            rest = &rest[len + 1..];
        }
        self.partial = rest.to_vec();
        if self.partial.len() > MAX_LINE {
            return Err(format!(
                "an event-stream line is longer than {MAX_LINE} bytes"
            ));
        }
        Ok(())
    }

    /// The stream ended: an unterminated last line and event still count, since some servers
    /// close right after `data: [DONE]`.
    pub fn end(&mut self) -> Result<(), String> {
        let line = std::mem::take(&mut self.partial);
        if !line.is_empty() {
            self.line(&line)?;
        }
        self.line(b"")
    }

    /// The data of the next complete event.
    pub fn pop(&mut self) -> Option<String> {
        self.ready.pop_front()
    }

    fn line(&mut self, line: &[u8]) -> Result<(), String> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let line = std::str::from_utf8(line)
            .map_err(|_| "the event stream is not valid UTF-8".to_owned())?;
        if line.is_empty() {
            if let Some(data) = self.data.take() {
                self.ready.push_back(data);
            }
            return Ok(());
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        if field == "data" {
            let value = value.strip_prefix(' ').unwrap_or(value);
            match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(parser: &mut SseParser) -> Vec<String> {
        std::iter::from_fn(|| parser.pop()).collect()
    }

    #[test]
    fn splits_events_across_chunks() {
        let mut p = SseParser::default();
        p.feed(b": keep-alive\n\ndata: {\"a\"").unwrap();
        assert!(events(&mut p).is_empty());
        p.feed(b":1}\r\n\r\nevent: x\ndata: one\ndata:two\n\ndata: [DONE]\n\n")
            .unwrap();
        assert_eq!(events(&mut p), ["{\"a\":1}", "one\ntwo", "[DONE]"]);
    }

    #[test]
    fn the_end_flushes_an_unterminated_event() {
        let mut p = SseParser::default();
        p.feed(b"data: [DONE]").unwrap();
        assert!(events(&mut p).is_empty());
        p.end().unwrap();
        assert_eq!(events(&mut p), ["[DONE]"]);
    }

    #[test]
    fn refuses_endless_lines_and_bad_utf8() {
        let mut p = SseParser::default();
        assert!(p.feed(&vec![b'x'; MAX_LINE + 1]).is_err());
        let mut p = SseParser::default();
        assert!(p.feed(b"data: \xff\n").is_err());
    }
}
