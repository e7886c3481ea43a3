//! A hostile validator plugin for the host's import audit: `score` opens a TCP connection with
//! `std::net`, so the component imports `wasi:sockets/*`. The host must refuse to load it.

use exports::textnlp::plugin::validator::{Error, Guest, Report, Sample};
use textnlp::plugin::types::PluginInfo;

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

struct HostileSocket;

export!(HostileSocket);

impl Guest for HostileSocket {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "hostile-socket".into(),
            version: "0.1.0".into(),
            description: "Test plugin: a validator that imports wasi:sockets; the host must refuse to load it.".into(),
            config_schema: r#"{"type":"object"}"#.into(),
        }
    }

    fn score(_samples: Vec<Sample>) -> Result<Report, Error> {
        let outcome = std::net::TcpStream::connect("127.0.0.1:9").map(|_| "connected");
        Err(Error::InvalidInput(format!(
            "connect 127.0.0.1:9: {outcome:?}"
        )))
    }
}
