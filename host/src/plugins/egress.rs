//! Outbound HTTP for provider plugins (`wasi:http/outgoing-handler`): only to the hosts the
//! operator allowed at install, with the API key added by the host on the way out.
//!
//! The plugin never holds the key: `authorization` and `x-api-key` are forbidden headers for
//! the guest (it cannot set or read them on outgoing requests), and the host inserts its own
//! after the allow-list check, so a malicious adapter cannot send the key anywhere else.

use std::sync::Arc;

use http::{HeaderName, HeaderValue};
use wasmtime_wasi_http::{
    DEFAULT_FORBIDDEN_HEADERS, ForbiddenHeaderFilter, RequestOptions, WasiBody, WasiHttpHooks,
};

/// A secret header the host adds to every allowed request.
#[derive(Clone)]
pub struct Credential {
    pub header: HeaderName,
    pub value: HeaderValue,
}

impl Credential {
    /// `Authorization: Bearer <key>`, the OpenAI convention.
    pub fn bearer(key: &str) -> Result<Self, http::header::InvalidHeaderValue> {
        let mut value = HeaderValue::from_str(&format!("Bearer {key}"))?;
        value.set_sensitive(true);
        Ok(Credential {
            header: http::header::AUTHORIZATION,
            value,
        })
    }
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credential({}: <redacted>)", self.header)
    }
}

/// A store's outbound-HTTP policy.
#[derive(Clone, Debug, Default)]
pub struct Egress {
    /// Allowed authorities: `host` (any port) or `host:port`, lower case.
    allow: Vec<String>,
    credential: Option<Credential>,
    /// The last refused authority, reported as the call's error.
    denied: Option<String>,
}

impl Egress {
    /// No outbound requests at all.
    pub fn deny_all() -> Self {
        Egress::default()
    }

    /// Requests to `allow` only, each carrying `credential` if given.
    pub fn allow(allow: &[String], credential: Option<Credential>) -> Self {
        Egress {
            allow: allow.iter().map(|a| a.to_ascii_lowercase()).collect(),
            credential,
            denied: None,
        }
    }

    fn allows(&self, host: &str, port: Option<u16>) -> bool {
        let host = host.to_ascii_lowercase();
        self.allow.iter().any(|entry| match entry.rsplit_once(':') {
            Some((h, p)) if p.parse::<u16>().is_ok() => {
                h == host && port.is_some_and(|port| p == port.to_string())
            }
            _ => *entry == host,
        })
    }

    pub(super) fn take_denied(&mut self) -> Option<String> {
        self.denied.take()
    }
}

/// The port a request goes to: the URI's own, else its scheme's default (as the connection
/// will use), so that a `host:443` entry allows `https://host/...`.
fn effective_port(uri: &http::Uri) -> Option<u16> {
    uri.port_u16().or(match uri.scheme_str() {
        Some("https") => Some(443),
        Some("http") => Some(80),
        _ => None,
    })
}

fn forbidden(name: &HeaderName) -> bool {
    name == http::header::AUTHORIZATION
        || name.as_str() == "x-api-key"
        || DEFAULT_FORBIDDEN_HEADERS.contains(name)
}

type SendResult = wasmtime_wasi_http::Result<(
    http::Response<WasiBody>,
    Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
)>;

impl WasiHttpHooks for Egress {
    fn is_forbidden_header(&mut self, name: &HeaderName) -> bool {
        forbidden(name)
    }

    fn forbidden_header_filter(&mut self) -> ForbiddenHeaderFilter {
        Arc::new(forbidden)
    }

    fn send_request(
        &mut self,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        drop(fut);
        let uri = request.uri();
        let host = uri.host().unwrap_or_default().to_owned();
        if !self.allows(&host, effective_port(uri)) {
            let authority = uri.authority().map_or(host, |a| a.to_string());
            tracing::warn!(%authority, "plugin request to a host outside its allow-list refused");
            self.denied = Some(authority);
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        }
        if let Some(credential) = &self.credential {
            request
                .headers_mut()
                .insert(credential.header.clone(), credential.value.clone());
        }
        Box::new(async move {
            use http_body_util::BodyExt;
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allow_list_matches_hosts_and_ports_exactly() {
        let egress = Egress::allow(&["API.example.com".into(), "127.0.0.1:8080".into()], None);
        assert!(egress.allows("api.example.com", None));
        assert!(egress.allows("api.example.com", Some(443)));
        assert!(egress.allows("127.0.0.1", Some(8080)));
        assert!(!egress.allows("127.0.0.1", Some(8081)));
        assert!(!egress.allows("127.0.0.1", None));
        assert!(!egress.allows("evil.example.com", None));
        assert!(!egress.allows("api.example.com.evil", None));
        assert!(!Egress::deny_all().allows("api.example.com", None));
    }

    #[test]
    fn a_port_entry_allows_urls_with_the_schemes_default_port() {
        let egress = Egress::allow(
            &["api.example.com:443".into(), "plain.example:80".into()],
            None,
        );
        let allows = |url: &str| {
            let uri: http::Uri = url.parse().expect("a valid URI");
            egress.allows(uri.host().unwrap_or_default(), effective_port(&uri))
        };
        assert!(allows("https://api.example.com/v1/models"));
        assert!(allows("https://api.example.com:443/v1/models"));
        assert!(!allows("http://api.example.com/v1/models"));
        assert!(!allows("https://api.example.com:8443/v1/models"));
        assert!(allows("http://plain.example/"));
        assert!(!allows("https://plain.example/"));
    }

    #[test]
    fn keys_cannot_be_set_by_the_guest_and_do_not_print() {
        assert!(forbidden(&http::header::AUTHORIZATION));
        assert!(forbidden(&HeaderName::from_static("x-api-key")));
        assert!(!forbidden(&http::header::CONTENT_TYPE));
        let credential = Credential::bearer("sk-secret").expect("valid");
        assert!(!format!("{credential:?}").contains("sk-secret"));
    }
}
