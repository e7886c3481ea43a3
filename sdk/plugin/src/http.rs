//! A small blocking HTTP client over `wasi:http/outgoing-handler`, for provider plugins
//! (cargo feature `http`).
//!
//! The host lets a provider reach only the hosts its operator allowed, and it adds the API key
//! to each allowed request itself: never set `Authorization` (or any other credential header).
//! A denied host comes back as a [`Error::Transport`] (`HttpRequestDenied`).
//!
//! ```no_run
//! use textnlp_plugin_sdk::http::{self, Method, Request};
//!
//! # fn main() -> Result<(), http::Error> {
//! let request = Request::new(Method::Post, "https://api.example.com/v1/chat/completions")
//!     .header("content-type", "application/json")
//!     .body(br#"{"model":"m","messages":[]}"#.to_vec());
//! let response = http::send(&request)?;
//! let status = response.status;
//! let text = response.text()?;
//! # Ok(())
//! # }
//! ```
//!
//! Only provider components should use this module: a component that calls it imports
//! `wasi:http/outgoing-handler`, which the host refuses for every other kind of plugin.

use std::fmt;

use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, IncomingBody, IncomingResponse, OutgoingBody, OutgoingRequest, Scheme,
};
use wasip2::io::streams::{InputStream, StreamError};

pub use wasip2::http::types::Method;

/// Bytes written per `blocking-write-and-flush` call: the most WASI promises to accept at once.
const WRITE_CHUNK: usize = 4096;
/// Bytes asked for per body read; the host may return fewer.
const READ_CHUNK: u64 = 64 * 1024;

/// Why a request failed before a response (of any status) arrived, or while reading its body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// The request could not be built: a malformed URL or header.
    InvalidRequest(String),
    /// The host or the network failed it: a denied host, DNS, TLS, a reset connection, ...
    Transport(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidRequest(m) => write!(f, "invalid request: {m}"),
            Error::Transport(m) => write!(f, "transport error: {m}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<ErrorCode> for Error {
    fn from(code: ErrorCode) -> Error {
        Error::Transport(format!("{code:?}"))
    }
}

/// An outgoing request: method, absolute `http(s)` URL, headers and a body (may be empty).
#[derive(Clone, Debug)]
pub struct Request {
    pub method: Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn new(method: Method, url: impl Into<String>) -> Request {
        Request {
            method,
            url: url.into(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Adds a header (names are case-insensitive; repeated names are all sent).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Request {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn body(mut self, body: Vec<u8>) -> Request {
        self.body = body;
        self
    }
}

/// A response whose headers have arrived; its body is read on demand through [`Response::body`].
pub struct Response {
    pub status: u16,
    /// Header names are lower-case, values as sent (non-UTF-8 bytes replaced).
    pub headers: Vec<(String, String)>,
    pub body: BodyReader,
}

impl Response {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The whole body.
    pub fn bytes(mut self) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        while let Some(chunk) = self.body.read_chunk()? {
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// The whole body as text (invalid UTF-8 replaced).
    pub fn text(self) -> Result<String, Error> {
        Ok(String::from_utf8_lossy(&self.bytes()?).into_owned())
    }
}

/// The body of a response, read piece by piece as it arrives (for streamed answers).
pub struct BodyReader {
    // Field order is drop order: WASI requires the stream to go before its body, and the body
    // before the response it came from.
    stream: InputStream,
    _body: IncomingBody,
    _response: IncomingResponse,
    done: bool,
}

impl BodyReader {
    /// The next bytes of the body, blocking until some arrive; `None` at its end.
    pub fn read_chunk(&mut self) -> Result<Option<Vec<u8>>, Error> {
        while !self.done {
            match self.stream.blocking_read(READ_CHUNK) {
                Ok(bytes) if bytes.is_empty() => continue,
                Ok(bytes) => return Ok(Some(bytes)),
                Err(StreamError::Closed) => self.done = true,
                Err(StreamError::LastOperationFailed(e)) => {
                    self.done = true;
                    return Err(Error::Transport(e.to_debug_string()));
                }
            }
        }
        Ok(None)
    }
}

/// Sends a request and waits for the response headers. Any status is a response, not an error.
pub fn send(request: &Request) -> Result<Response, Error> {
    let url = Url::parse(&request.url)?;
    let outgoing = build(request, &url)?;
    let body = outgoing
        .body()
        .map_err(|()| Error::InvalidRequest("the request body was already taken".into()))?;
    let pending = outgoing_handler::handle(outgoing, None)?;
    write_body(body, &request.body)?;
    pending.subscribe().block();
    let response = pending
        .get()
        .ok_or_else(|| Error::Transport("the response was not ready after waiting".into()))?
        .map_err(|()| Error::Transport("the response was already taken".into()))??;
    read_head(response)
}

fn build(request: &Request, url: &Url<'_>) -> Result<OutgoingRequest, Error> {
    let entries: Vec<(String, Vec<u8>)> = request
        .headers
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.as_bytes().to_vec()))
        .collect();
    let headers = Fields::from_list(&entries)
        .map_err(|e| Error::InvalidRequest(format!("headers: {e:?}")))?;
    let outgoing = OutgoingRequest::new(headers);
    let invalid = |what: &str| Error::InvalidRequest(format!("{what} of `{}`", request.url));
    outgoing
        .set_method(&request.method)
        .map_err(|()| invalid("method"))?;
    outgoing
        .set_scheme(Some(&url.scheme))
        .map_err(|()| invalid("scheme"))?;
    outgoing
        .set_authority(Some(url.authority))
        .map_err(|()| invalid("authority"))?;
    outgoing
        .set_path_with_query(Some(url.path_with_query))
        .map_err(|()| invalid("path"))?;
    Ok(outgoing)
}

fn write_body(body: OutgoingBody, bytes: &[u8]) -> Result<(), Error> {
    {
        // The stream is a child of the body: it must be dropped before `finish`.
        let stream = body
            .write()
            .map_err(|()| Error::Transport("the request body stream was already taken".into()))?;
        for chunk in bytes.chunks(WRITE_CHUNK) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|e| match e {
                    StreamError::LastOperationFailed(e) => Error::Transport(e.to_debug_string()),
                    StreamError::Closed => {
                        Error::Transport("the request body stream closed".into())
                    }
                })?;
        }
    }
    OutgoingBody::finish(body, None)?;
    Ok(())
}

fn read_head(response: IncomingResponse) -> Result<Response, Error> {
    let status = response.status();
    let headers = response
        .headers()
        .entries()
        .into_iter()
        .map(|(name, value)| (name, String::from_utf8_lossy(&value).into_owned()))
        .collect();
    let body = response
        .consume()
        .map_err(|()| Error::Transport("the response body was already taken".into()))?;
    let stream = body
        .stream()
        .map_err(|()| Error::Transport("the response body stream was already taken".into()))?;
    Ok(Response {
        status,
        headers,
        body: BodyReader {
            stream,
            _body: body,
            _response: response,
            done: false,
        },
    })
}

/// The parts of an absolute `http(s)` URL that `wasi:http` wants separately.
#[derive(Debug)]
struct Url<'a> {
    scheme: Scheme,
    authority: &'a str,
    path_with_query: &'a str,
}

impl<'a> Url<'a> {
    fn parse(url: &'a str) -> Result<Url<'a>, Error> {
        let bad = |why: &str| Error::InvalidRequest(format!("url `{url}`: {why}"));
        let (scheme, rest) = if let Some(rest) = url.strip_prefix("https://") {
            (Scheme::Https, rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (Scheme::Http, rest)
        } else {
            return Err(bad("only http:// and https:// URLs are supported"));
        };
        let rest = rest.split('#').next().unwrap_or_default();
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        if authority.is_empty() || authority.contains('@') {
            return Err(bad(
                "expected a host (credentials in URLs are not supported)",
            ));
        }
        let path_with_query = match path {
            "" => "/",
            p if p.starts_with('?') => return Err(bad("a query needs a path (`/?...`)")),
            p => p,
        };
        Ok(Url {
            scheme,
            authority,
            path_with_query,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_urls() {
        let u = Url::parse("https://api.openai.com/v1/models?x=1#frag").unwrap();
        assert!(matches!(u.scheme, Scheme::Https));
        assert_eq!(u.authority, "api.openai.com");
        assert_eq!(u.path_with_query, "/v1/models?x=1");
        let u = Url::parse("http://localhost:8080").unwrap();
        assert_eq!((u.authority, u.path_with_query), ("localhost:8080", "/"));
        assert!(Url::parse("ftp://x/").is_err());
        assert!(Url::parse("https:///path").is_err());
        assert!(Url::parse("https://user:pw@host/").is_err());
    }
}
