//! The kinds of plugin, each a world of `wit/worlds.wit`, and what each may import.

use std::fmt;
use std::str::FromStr;

/// Interfaces of the Rust standard library on wasm32-wasip2 that every kind may import: they
/// are inert here (no preopened directories, no environment, no network, capped stdio).
const WASI_STD: &[&str] = &[
    "wasi:io/",
    "wasi:cli/",
    "wasi:clocks/",
    "wasi:random/",
    "wasi:filesystem/",
];

/// A plugin kind.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum PluginKind {
    Tokenizer,
    Strategy,
    Validator,
    Provider,
}

impl PluginKind {
    pub const ALL: [PluginKind; 4] = [
        PluginKind::Tokenizer,
        PluginKind::Strategy,
        PluginKind::Validator,
        PluginKind::Provider,
    ];

    pub fn name(self) -> &'static str {
        match self {
            PluginKind::Tokenizer => "tokenizer",
            PluginKind::Strategy => "strategy",
            PluginKind::Validator => "validator",
            PluginKind::Provider => "provider",
        }
    }

    /// The world a component of this kind targets.
    pub fn world(self) -> &'static str {
        match self {
            PluginKind::Tokenizer => "textnlp:plugin/tokenizer-plugin@0.1.2",
            PluginKind::Strategy => "textnlp:plugin/strategy-plugin@0.1.2",
            PluginKind::Validator => "textnlp:plugin/validator-plugin@0.1.2",
            PluginKind::Provider => "textnlp:plugin/provider-plugin@0.1.2",
        }
    }

    /// The interface a component of this kind exports.
    pub fn export(self) -> &'static str {
        match self {
            PluginKind::Tokenizer => "textnlp:plugin/tokenizer@0.1.2",
            PluginKind::Strategy => "textnlp:plugin/strategy@0.1.2",
            PluginKind::Validator => "textnlp:plugin/validator@0.1.2",
            PluginKind::Provider => "textnlp:plugin/provider@0.1.2",
        }
    }

    /// The `textnlp:plugin` interfaces this kind may import (any 0.1.x).
    fn host_interfaces(self) -> &'static [&'static str] {
        match self {
            PluginKind::Tokenizer => &["textnlp:plugin/log@0.1."],
            PluginKind::Strategy | PluginKind::Validator => &[
                "textnlp:plugin/log@0.1.",
                "textnlp:plugin/config@0.1.",
                "textnlp:plugin/model@0.1.",
                "textnlp:plugin/types@0.1.",
            ],
            PluginKind::Provider => &[
                "textnlp:plugin/log@0.1.",
                "textnlp:plugin/config@0.1.",
                "textnlp:plugin/types@0.1.",
                // Outbound HTTP, checked per request against the install's allow-list.
                "wasi:http/outgoing-handler@0.2.",
                "wasi:http/types@0.2.",
            ],
        }
    }

    /// Whether a component of this kind may import the interface `name`.
    pub fn may_import(self, name: &str) -> bool {
        let allowed = |prefix: &&str| name.starts_with(prefix);
        WASI_STD.iter().any(allowed) || self.host_interfaces().iter().any(allowed)
    }
}

impl fmt::Display for PluginKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown kind name.
#[derive(Debug, thiserror::Error)]
#[error("unknown plugin kind `{0}` (expected tokenizer, strategy, validator or provider)")]
pub struct UnknownKind(pub String);

impl FromStr for PluginKind {
    type Err = UnknownKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PluginKind::ALL
            .into_iter()
            .find(|kind| kind.name() == s)
            .ok_or_else(|| UnknownKind(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_imports_only_what_it_needs() {
        use PluginKind::*;
        let model = "textnlp:plugin/model@0.1.2";
        let http = "wasi:http/outgoing-handler@0.2.6";
        let sockets = "wasi:sockets/tcp@0.2.6";
        assert!(Validator.may_import(model) && Strategy.may_import(model));
        assert!(!Tokenizer.may_import(model) && !Provider.may_import(model));
        assert!(Provider.may_import(http));
        assert!(PluginKind::ALL.iter().all(|k| !k.may_import(sockets)));
        assert!(
            [Tokenizer, Strategy, Validator]
                .iter()
                .all(|k| !k.may_import(http))
        );
        assert!(!Validator.may_import("textnlp:plugin/model@0.2.0"));
        for kind in PluginKind::ALL {
            assert_eq!(kind.name().parse::<PluginKind>().ok(), Some(kind));
            assert!(kind.may_import("wasi:cli/environment@0.2.0"));
        }
    }
}
