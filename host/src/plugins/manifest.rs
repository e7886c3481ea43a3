//! The install-time manifest a plugin carries: its author's `textnlp-plugin.json`, embedded by
//! the SDK's `register_*!` macros as the custom section [`MANIFEST_SECTION`].
//!
//! The host reads it before anything of the plugin runs: the name and kind decide where the
//! plugin is installed and which world it is checked against, the capabilities are what the
//! operator is asked to grant. The rules here are the SDK's (`textnlp_plugin_sdk::manifest`);
//! every error names the offending field.

use serde::{Deserialize, Serialize};

use super::kind::PluginKind;
use super::runtime::find_custom_section;

/// Name of the custom section holding the manifest (the SDK's `MANIFEST_SECTION`).
pub const MANIFEST_SECTION: &str = "textnlp:plugin-manifest";

/// Longest accepted manifest: it is stored with every install and printed by `inspect`.
const MAX_MANIFEST_BYTES: usize = 64 << 10;

/// What a plugin asks the operator for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    /// Wants the host `model` interface (strategies and validators only).
    pub model: bool,
    /// `host` or `host:port` entries the plugin wants to reach (providers only).
    pub outbound_hosts: Vec<String>,
    /// Requested linear-memory cap, in MiB.
    pub memory_mib: u32,
    /// Requested deadline of one call, in milliseconds.
    pub timeout_ms: u32,
}

/// A plugin's parsed and checked `textnlp-plugin.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// `[a-z0-9][a-z0-9-]{0,63}`: the name the plugin is installed and referred to under.
    pub name: String,
    /// The plugin's own version (semver).
    pub version: String,
    pub kind: PluginKind,
    pub description: String,
    /// JSON Schema (an object) of the plugin's settings.
    pub config_schema: serde_json::Value,
    pub capabilities: Capabilities,
    /// Strategies only: how many earlier accepted prompts each record request carries
    /// (`record-request.context`; self-instruct's pool). 0: none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub context: u32,
}

/// Most earlier prompts a strategy may ask to see per record.
pub const MAX_CONTEXT: u32 = 10_000;

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Why a component's manifest was refused.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The component has no manifest section.
    #[error(
        "no manifest: build the plugin with textnlp-plugin-sdk and a textnlp-plugin.json \
         (custom section `{MANIFEST_SECTION}` not found)"
    )]
    Missing,
    /// The manifest is not JSON, or not of the expected shape.
    #[error("bad manifest: {0}")]
    Parse(String),
    /// A field breaks a rule.
    #[error("bad manifest: {field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
}

impl Manifest {
    /// The manifest embedded in a component (or in one of its core modules), parsed and checked.
    pub fn from_component(wasm: &[u8]) -> Result<Manifest, ManifestError> {
        let json = find_custom_section(wasm, MANIFEST_SECTION, 0).ok_or(ManifestError::Missing)?;
        Manifest::parse(json)
    }

    /// Parses `textnlp-plugin.json` and checks its rules.
    pub fn parse(json: &[u8]) -> Result<Manifest, ManifestError> {
        if json.len() > MAX_MANIFEST_BYTES {
            return Err(ManifestError::Parse(format!(
                "{} bytes, more than the {MAX_MANIFEST_BYTES} allowed",
                json.len()
            )));
        }
        let mut de = serde_json::Deserializer::from_slice(json);
        // The path names the field a type error is about (`capabilities.memory_mib: ...`).
        let manifest: Manifest = serde_path_to_error::deserialize(&mut de)
            .map_err(|e| ManifestError::Parse(describe_parse_error(&e)))?;
        de.end()
            .map_err(|e| ManifestError::Parse(format!("trailing data: {e}")))?;
        manifest.validate()?;
        Ok(manifest)
    }

    /// The rules beyond the JSON shape.
    pub fn validate(&self) -> Result<(), ManifestError> {
        check_name(&self.name)?;
        check_version(&self.version)?;
        if !self.config_schema.is_object() {
            return Err(invalid(
                "config_schema",
                "must be a JSON object (a JSON Schema)",
            ));
        }
        if self.context > 0 && self.kind != PluginKind::Strategy {
            return Err(invalid(
                "context",
                format!("only strategies get earlier records, not a {}", self.kind),
            ));
        }
        if self.context > MAX_CONTEXT {
            return Err(invalid(
                "context",
                format!("{} is more than the {MAX_CONTEXT} allowed", self.context),
            ));
        }
        self.check_capabilities()
    }

    fn check_capabilities(&self) -> Result<(), ManifestError> {
        let caps = &self.capabilities;
        if caps.model && !matches!(self.kind, PluginKind::Strategy | PluginKind::Validator) {
            return Err(invalid(
                "capabilities.model",
                format!(
                    "only strategies and validators may use the model, not a {}",
                    self.kind
                ),
            ));
        }
        if !caps.outbound_hosts.is_empty() && self.kind != PluginKind::Provider {
            return Err(invalid(
                "capabilities.outbound_hosts",
                format!(
                    "only providers may make outbound requests, not a {}",
                    self.kind
                ),
            ));
        }
        for host in &caps.outbound_hosts {
            check_host(host)?;
        }
        if caps.memory_mib == 0 {
            return Err(invalid("capabilities.memory_mib", "must be greater than 0"));
        }
        if caps.timeout_ms == 0 {
            return Err(invalid("capabilities.timeout_ms", "must be greater than 0"));
        }
        Ok(())
    }
}

fn invalid(field: &'static str, message: impl Into<String>) -> ManifestError {
    ManifestError::Invalid {
        field,
        message: message.into(),
    }
}

/// `field: message`, or just the message for an error at the top level (bad JSON).
fn describe_parse_error(e: &serde_path_to_error::Error<serde_json::Error>) -> String {
    let path = e.path().to_string();
    if path.is_empty() || path == "." {
        e.inner().to_string()
    } else {
        format!("{path}: {}", e.inner())
    }
}

/// Whether `name` matches `[a-z0-9][a-z0-9-]{0,63}`.
pub fn valid_name(name: &str) -> bool {
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = name.as_bytes();
    (1..=64).contains(&bytes.len())
        && alnum(&bytes[0])
        && bytes.iter().all(|b| alnum(b) || *b == b'-')
}

fn check_name(name: &str) -> Result<(), ManifestError> {
    if valid_name(name) {
        return Ok(());
    }
    Err(invalid(
        "name",
        format!(
            "`{}` must match [a-z0-9][a-z0-9-]{{0,63}}",
            name.escape_debug()
        ),
    ))
}

fn check_version(version: &str) -> Result<(), ManifestError> {
    semver::Version::parse(version).map(drop).map_err(|e| {
        invalid(
            "version",
            format!(
                "`{}` is not a semantic version: {e}",
                version.escape_debug()
            ),
        )
    })
}

/// A well-formed `host` or `host:port`: a DNS name or IPv4 address, and a port in 1..=65535.
/// Egress matches these literally, so wildcards, schemes, paths and IPv6 literals are refused.
fn check_host(entry: &str) -> Result<(), ManifestError> {
    let bad = |why: &str| {
        invalid(
            "capabilities.outbound_hosts",
            format!("`{}` is not host or host:port: {why}", entry.escape_debug()),
        )
    };
    let (host, port) = match entry.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (entry, None),
    };
    if let Some(port) = port {
        match port.parse::<u16>() {
            Ok(p) if p > 0 => {}
            _ => return Err(bad("the port must be a number in 1..=65535")),
        }
    }
    if host.len() > 253 || !host.split('.').all(valid_label) {
        return Err(bad(
            "a host name is dot-separated labels of letters, digits and inner hyphens",
        ));
    }
    Ok(())
}

fn valid_label(label: &str) -> bool {
    let bytes = label.as_bytes();
    (1..=63).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{
        "name": "length", "version": "0.1.0", "kind": "validator",
        "description": "d", "config_schema": {"type": "object"},
        "capabilities": {"model": false, "outbound_hosts": [], "memory_mib": 64, "timeout_ms": 5000}
    }"#;

    fn error_of(json: &str) -> String {
        Manifest::parse(json.as_bytes())
            .expect_err("should be refused")
            .to_string()
    }

    fn provider(hosts: &str) -> String {
        GOOD.replace("\"validator\"", "\"provider\"").replace(
            "\"outbound_hosts\": []",
            &format!("\"outbound_hosts\": {hosts}"),
        )
    }

    #[test]
    fn parses_a_valid_manifest() {
        let m = Manifest::parse(GOOD.as_bytes()).expect("valid");
        assert_eq!(m.name, "length");
        assert_eq!(m.kind, PluginKind::Validator);
        assert_eq!(m.capabilities.memory_mib, 64);
        let again: Manifest =
            serde_json::from_str(&serde_json::to_string(&m).expect("ser")).expect("de");
        assert_eq!(again, m);
    }

    #[test]
    fn names_the_offending_field() {
        let cases = [
            (GOOD.replace("\"length\"", "\"Length\""), "name"),
            (GOOD.replace("\"length\"", "\"-x\""), "name"),
            (
                GOOD.replace("\"length\"", &format!("\"{}\"", "a".repeat(65))),
                "name",
            ),
            (GOOD.replace("\"0.1.0\"", "\"0.1\""), "version"),
            (GOOD.replace("\"validator\"", "\"filter\""), "kind"),
            (
                GOOD.replace("{\"type\": \"object\"}", "true"),
                "config_schema",
            ),
            (
                GOOD.replace("\"memory_mib\": 64", "\"memory_mib\": 0"),
                "capabilities.memory_mib",
            ),
            (
                GOOD.replace("\"timeout_ms\": 5000", "\"timeout_ms\": 0"),
                "capabilities.timeout_ms",
            ),
            (
                GOOD.replace("\"timeout_ms\": 5000", "\"timeout_ms\": -1"),
                "capabilities.timeout_ms",
            ),
            (
                GOOD.replace("\"outbound_hosts\": []", "\"outbound_hosts\": [\"x.org\"]"),
                "capabilities.outbound_hosts",
            ),
            (
                GOOD.replace("\"validator\"", "\"tokenizer\"")
                    .replace("false", "true"),
                "capabilities.model",
            ),
            (GOOD.replace("\"description\"", "\"summary\""), "summary"),
            (GOOD.replace("\"model\": false, ", ""), "model"),
            (
                GOOD.replace("\"description\"", "\"context\": 5, \"description\""),
                "context",
            ),
            (
                GOOD.replace("\"validator\"", "\"strategy\"")
                    .replace("\"description\"", "\"context\": 10001, \"description\""),
                "context",
            ),
        ];
        for (json, field) in cases {
            let message = error_of(&json);
            assert!(message.contains(field), "{field}: {message}");
        }
    }

    #[test]
    fn checks_outbound_hosts() {
        let ok = provider(r#"["api.openai.com", "localhost:8080", "127.0.0.1:1"]"#);
        assert!(Manifest::parse(ok.as_bytes()).is_ok());
        for bad in [
            "https://api.openai.com",
            "*.openai.com",
            "api.openai.com:0",
            "api.openai.com:99999",
            "api..com",
            "-a.com",
            "a.com/v1",
            "[::1]:80",
            "",
        ] {
            let message = error_of(&provider(&format!("[\"{bad}\"]")));
            assert!(
                message.contains("capabilities.outbound_hosts"),
                "{bad}: {message}"
            );
        }
    }

    #[test]
    fn refuses_malformed_json_without_panicking() {
        for bytes in [&b""[..], b"{", b"null", b"[]", b"\xff\xfe", b"{} {}"] {
            assert!(matches!(
                Manifest::parse(bytes),
                Err(ManifestError::Parse(_))
            ));
        }
        let trailing = format!("{GOOD} x");
        assert!(Manifest::parse(trailing.as_bytes()).is_err());
        let huge = vec![b' '; MAX_MANIFEST_BYTES + 1];
        assert!(Manifest::parse(&huge).is_err());
    }

    #[test]
    fn reads_the_manifest_section_of_a_component() {
        let mut custom = vec![MANIFEST_SECTION.len() as u8];
        custom.extend_from_slice(MANIFEST_SECTION.as_bytes());
        custom.extend_from_slice(GOOD.as_bytes());
        let len = u16::try_from(custom.len()).expect("short");
        let mut component = b"\0asm\x0d\0\x01\0".to_vec();
        // Section 0 with a two-byte LEB128 size.
        component.extend([0, (len & 0x7f) as u8 | 0x80, (len >> 7) as u8]);
        component.extend(custom);
        let m = Manifest::from_component(&component).expect("manifest");
        assert_eq!(m.name, "length");
        assert!(matches!(
            Manifest::from_component(b"\0asm\x0d\0\x01\0"),
            Err(ManifestError::Missing)
        ));
        assert!(matches!(
            Manifest::from_component(b"garbage"),
            Err(ManifestError::Missing)
        ));
        let message = ManifestError::Missing.to_string();
        assert!(message.starts_with("no manifest: build the plugin with textnlp-plugin-sdk"));
    }
}
