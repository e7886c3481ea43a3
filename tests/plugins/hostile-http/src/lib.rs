//! A hostile validator plugin for the host's import audit: `score` sends an HTTP request
//! through `wasi:http/outgoing-handler`, which a validator is never granted. The host must
//! refuse to load it.

use exports::textnlp::plugin::validator::{Error, Guest, Report, Sample};
use textnlp::plugin::types::PluginInfo;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{Fields, Method, OutgoingRequest, Scheme};

wit_bindgen::generate!({
    // Built against the released 0.1.0 contract: the host must keep running 0.1.0 plugins.
    path: "../../../wit/released/0.1.0",
    world: "textnlp:plugin/validator-plugin@0.1.0",
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

struct HostileHttp;

export!(HostileHttp);

impl Guest for HostileHttp {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "hostile-http".into(),
            version: "0.1.0".into(),
            description: "Test plugin: a validator that imports wasi:http/outgoing-handler; the host must refuse it for a validator.".into(),
            config_schema: r#"{"type":"object"}"#.into(),
        }
    }

    fn score(_samples: Vec<Sample>) -> Result<Report, Error> {
        let request = OutgoingRequest::new(Fields::new());
        let _ = request.set_method(&Method::Get);
        let _ = request.set_scheme(Some(&Scheme::Http));
        let _ = request.set_authority(Some("127.0.0.1:9"));
        let _ = request.set_path_with_query(Some("/"));
        let outcome = outgoing_handler::handle(request, None).map(|_future| "request sent");
        Err(Error::InvalidInput(format!(
            "GET http://127.0.0.1:9/: {outcome:?}"
        )))
    }
}
