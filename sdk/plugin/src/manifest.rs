//! The install-time manifest, `textnlp-plugin.json` in the plugin crate's root.
//!
//! Every `register_*!` macro embeds that file, byte for byte, as the custom section
//! [`MANIFEST_SECTION`](crate::MANIFEST_SECTION); the host reads it before it instantiates
//! anything. At run time the same bytes are [`PluginManifest::JSON`], and the default
//! `describe()` of every kind answers from them, so the two never disagree.
//!
//! ```json
//! {
//!   "name": "length",
//!   "version": "0.1.0",
//!   "kind": "validator",
//!   "description": "Keeps samples whose length is within bounds.",
//!   "config_schema": { "type": "object", "properties": {} },
//!   "capabilities": { "model": false, "outbound_hosts": [], "memory_mib": 64, "timeout_ms": 5000 }
//! }
//! ```
//!
//! A strategy that grows from its own output (self-instruct's instruction pool) also sets
//! `"context": N` (at most [`MAX_CONTEXT`]): the host then passes it, in each
//! `record-request.context`, up to `N` prompts the dataset accepted before the record's round.

use serde::Deserialize;

use crate::types::PluginInfo;

/// The kind of plugin a manifest declares; it must match the `register_*!` macro used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Tokenizer,
    Strategy,
    Validator,
    Provider,
}

/// What a plugin asks the operator for at install time.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    /// Wants the host `model` interface (strategies and validators only).
    pub model: bool,
    /// `host[:port]` entries the plugin wants to reach (providers only).
    pub outbound_hosts: Vec<String>,
    /// Requested linear-memory cap, in MiB.
    pub memory_mib: u32,
    /// Requested deadline per call, in milliseconds.
    pub timeout_ms: u32,
}

/// Most earlier prompts a strategy may ask for in [`Manifest::context`]; the host applies the
/// same limit.
pub const MAX_CONTEXT: u32 = 10_000;

/// The parsed `textnlp-plugin.json`. Unknown keys are refused, as the host refuses them.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// `[a-z0-9][a-z0-9-]{0,63}`.
    pub name: String,
    /// The plugin's own version (semver).
    pub version: String,
    pub kind: Kind,
    pub description: String,
    /// JSON Schema of the settings the plugin reads through [`crate::config`].
    pub config_schema: serde_json::Value,
    pub capabilities: Capabilities,
    /// Strategies only: how many prompts accepted earlier in the dataset the strategy wants in
    /// `record-request.context` (0, the default: none). At most [`MAX_CONTEXT`].
    #[serde(default)]
    pub context: u32,
}

impl Manifest {
    /// Parses a manifest and checks the rules the host applies at install time.
    pub fn parse(json: &[u8]) -> Result<Manifest, String> {
        let manifest: Manifest =
            serde_json::from_slice(json).map_err(|e| format!("textnlp-plugin.json: {e}"))?;
        manifest.check()?;
        Ok(manifest)
    }

    /// The rules a parsed manifest must also follow; the message names the offending key.
    fn check(&self) -> Result<(), String> {
        if !valid_name(&self.name) {
            return Err(format!(
                "textnlp-plugin.json: name `{}` must match [a-z0-9][a-z0-9-]{{0,63}}",
                self.name
            ));
        }
        if !valid_semver(&self.version) {
            return Err(format!(
                "textnlp-plugin.json: version `{}` is not MAJOR.MINOR.PATCH",
                self.version
            ));
        }
        if !self.config_schema.is_object() {
            return Err("textnlp-plugin.json: config_schema must be a JSON object".into());
        }
        let caps = &self.capabilities;
        if caps.model && !matches!(self.kind, Kind::Strategy | Kind::Validator) {
            return Err(
                "textnlp-plugin.json: capabilities.model is for strategies and validators only"
                    .into(),
            );
        }
        if !caps.outbound_hosts.is_empty() && self.kind != Kind::Provider {
            return Err(
                "textnlp-plugin.json: capabilities.outbound_hosts is for providers only".into(),
            );
        }
        if self.context > 0 && self.kind != Kind::Strategy {
            return Err("textnlp-plugin.json: context is for strategies only".into());
        }
        if self.context > MAX_CONTEXT {
            return Err(format!(
                "textnlp-plugin.json: context {} is more than {MAX_CONTEXT}",
                self.context
            ));
        }
        if caps.memory_mib == 0 || caps.timeout_ms == 0 {
            return Err(
                "textnlp-plugin.json: capabilities.memory_mib and timeout_ms must be positive"
                    .into(),
            );
        }
        Ok(())
    }

    /// What `describe()` returns: the manifest's name, version, description and schema.
    pub fn plugin_info(&self) -> PluginInfo {
        PluginInfo {
            name: self.name.clone(),
            version: self.version.clone(),
            description: self.description.clone(),
            config_schema: self.config_schema.to_string(),
        }
    }
}

/// The manifest a `register_*!` macro embedded. The macro implements this trait for the
/// registered type; do not implement it by hand.
pub trait PluginManifest {
    /// The bytes of the crate's `textnlp-plugin.json`.
    const JSON: &'static [u8];

    /// The embedded manifest, parsed and checked.
    fn manifest() -> Result<Manifest, String> {
        Manifest::parse(Self::JSON)
    }
}

/// The default `describe()`: the embedded manifest's [`Manifest::plugin_info`]. A manifest
/// that does not parse (the host would not have installed it) yields an info whose description
/// says why, rather than a trap.
pub fn describe<P: PluginManifest + ?Sized>() -> PluginInfo {
    P::manifest()
        .map(|m| m.plugin_info())
        .unwrap_or_else(|e| PluginInfo {
            name: String::new(),
            version: String::new(),
            description: e,
            config_schema: "{}".into(),
        })
}

fn valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    !bytes.is_empty()
        && bytes.len() <= 64
        && alnum(&bytes[0])
        && bytes.iter().all(|b| alnum(b) || *b == b'-')
}

/// `MAJOR.MINOR.PATCH` with optional `-pre` and `+build` parts (not checked further).
fn valid_semver(version: &str) -> bool {
    let core = version.split(['-', '+']).next().unwrap_or_default();
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes().all(|b| b.is_ascii_digit())
                && (p.len() == 1 || !p.starts_with('0'))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{
        "name": "length", "version": "0.1.0", "kind": "validator",
        "description": "d", "config_schema": {"type": "object"},
        "capabilities": {"model": false, "outbound_hosts": [], "memory_mib": 64, "timeout_ms": 5000}
    }"#;

    #[test]
    fn parses_a_valid_manifest() {
        let m = Manifest::parse(GOOD.as_bytes()).unwrap();
        assert_eq!(m.kind, Kind::Validator);
        assert_eq!(m.plugin_info().config_schema, r#"{"type":"object"}"#);
    }

    #[test]
    fn names_the_offending_key() {
        let bad = GOOD.replace("\"length\"", "\"Length\"");
        assert!(
            Manifest::parse(bad.as_bytes())
                .unwrap_err()
                .contains("name")
        );
        let bad = GOOD.replace("\"0.1.0\"", "\"0.1\"");
        assert!(
            Manifest::parse(bad.as_bytes())
                .unwrap_err()
                .contains("version")
        );
        let bad = GOOD.replace("\"outbound_hosts\": []", "\"outbound_hosts\": [\"x.org\"]");
        assert!(
            Manifest::parse(bad.as_bytes())
                .unwrap_err()
                .contains("outbound_hosts")
        );
        let bad = GOOD.replace("\"kind\"", "\"kinds\"");
        assert!(Manifest::parse(bad.as_bytes()).is_err());
    }

    #[test]
    fn context_is_for_strategies_and_bounded() {
        assert_eq!(Manifest::parse(GOOD.as_bytes()).unwrap().context, 0);
        let strategy = GOOD.replace("\"validator\"", "\"strategy\"");
        let with = |json: &str, n: &str| json.replacen('{', &format!("{{\"context\": {n},"), 1);
        assert_eq!(
            Manifest::parse(with(&strategy, "10000").as_bytes())
                .unwrap()
                .context,
            10_000
        );
        for (json, n) in [(&strategy, "10001"), (&strategy, "-1"), (&strategy, "1.5")] {
            let e = Manifest::parse(with(json, n).as_bytes()).unwrap_err();
            assert!(e.contains("context") || e.contains("invalid"), "{n}: {e}");
        }
        let e = Manifest::parse(with(GOOD, "5").as_bytes()).unwrap_err();
        assert!(e.contains("context is for strategies only"), "{e}");
        // 0 is the default, allowed for every kind.
        assert!(Manifest::parse(with(GOOD, "0").as_bytes()).is_ok());
    }
}
