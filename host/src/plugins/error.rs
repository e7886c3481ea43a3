//! Errors of the plugin host.

use std::fmt;
use std::path::PathBuf;

use super::tokenizer::TokenizerError;

/// Why a plugin trapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrapKind {
    /// The call ran past its wall-clock deadline (epoch interruption).
    Timeout,
    /// The plugin asked for more memory than its limit allows.
    OutOfMemory,
    /// The call used up its fuel budget.
    Fuel,
    /// The call recursed past the wasm stack.
    StackOverflow,
    /// The plugin filled its resource table (host handles such as streams or sessions).
    Resources,
    /// The plugin wrote more to stdout/stderr than its cap.
    Output,
    /// Anything else: a panic (`unreachable`), an out-of-bounds access, a value the host could
    /// not lift, output beyond its cap, ...
    Other,
}

impl fmt::Display for TrapKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TrapKind::Timeout => "timeout",
            TrapKind::OutOfMemory => "out of memory",
            TrapKind::Fuel => "out of fuel",
            TrapKind::StackOverflow => "stack overflow",
            TrapKind::Resources => "resource limit",
            TrapKind::Output => "output limit",
            TrapKind::Other => "other",
        })
    }
}

/// Everything that can go wrong between the host and a plugin. No plugin input or behaviour
/// makes the host panic; it gets one of these instead.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The plugin file could not be read.
    #[error("cannot read plugin {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The bytes are not a valid WebAssembly component.
    #[error("invalid plugin: {0}")]
    Compile(String),
    /// The component does not fit the plugin kind: wrong world, or imports it may not use.
    #[error("cannot link plugin: {0}")]
    Link(String),
    /// Instantiation failed (for a reason other than a trap or a limit).
    #[error("cannot instantiate plugin: {0}")]
    Instantiate(String),
    /// The component was built against a plugin API this host does not link.
    #[error("incompatible plugin: {0}")]
    Version(String),
    /// The plugin trapped; its instance is unusable afterwards.
    #[error("plugin `{plugin}` trapped ({kind}): {message}")]
    Trap {
        plugin: String,
        kind: TrapKind,
        message: String,
    },
    /// The tokenizer plugin reported an error of its own (its instance stays usable).
    #[error("plugin error: {0}")]
    Guest(#[from] TokenizerError),
    /// A strategy, validator or provider plugin reported an error of its own: `code` is the
    /// WIT error case (`invalid-config`, `rate-limited`, ...). The instance stays usable.
    #[error("plugin `{plugin}` failed ({code}): {message}")]
    Reported {
        plugin: String,
        code: &'static str,
        message: String,
    },
    /// The plugin returned a value that breaks the contract (an id outside the vocabulary, a
    /// NaN score, ...).
    #[error("plugin `{plugin}` returned invalid output: {message}")]
    InvalidOutput { plugin: String, message: String },
    /// The plugin tried something its grants do not allow (a host outside its allow-list).
    #[error("plugin `{plugin}` was denied: {message}")]
    Denied { plugin: String, message: String },
    /// The host misused the API (e.g. a decoder handle from another instance).
    #[error("invalid use of the plugin API: {0}")]
    Usage(String),
    /// An earlier call trapped, so the instance cannot be entered again; load a new one.
    #[error("plugin instance is unusable after an earlier failure: {0}")]
    Poisoned(String),
    /// The wasmtime engine could not be set up.
    #[error("cannot start the plugin runtime: {0}")]
    Runtime(String),
}

/// A wasmtime error with its chain of causes, on one line.
pub(crate) fn describe(e: &wasmtime::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let cause = cause.to_string();
        if out.contains(&cause) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&cause);
    }
    out
}
