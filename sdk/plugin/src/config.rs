//! The plugin's own settings, as the host hands them over: the install-time settings with the
//! call's overrides applied. They can change from one call to the next, so read them in each
//! call rather than caching them.
//!
//! ```no_run
//! #[derive(serde::Deserialize, Default)]
//! #[serde(default, deny_unknown_fields)]
//! struct Settings {
//!     min: u32,
//! }
//!
//! // `{}` (no settings) gives `Settings::default()`; a bad value names its key ("min: ...").
//! let settings: Settings = textnlp_plugin_sdk::config::get().unwrap_or_default();
//! ```

use serde::de::DeserializeOwned;

use crate::bindings::host::textnlp::plugin::config as host;

/// The settings as one JSON object (`{}` when none were given).
pub fn raw() -> String {
    host::get()
}

/// The settings, deserialized. The error names the offending key (`"max: invalid type ..."`).
pub fn get<T: DeserializeOwned>() -> Result<T, String> {
    parse(&raw())
}

/// One top-level setting, deserialized; `None` when it is absent.
pub fn value<T: DeserializeOwned>(key: &str) -> Result<Option<T>, String> {
    host::value(key)
        .map(|json| deserialize::<T>(&json).map_err(|e| format!("{key}: {e}")))
        .transpose()
}

/// Deserializes settings from JSON text, naming the path of the offending value in errors.
/// [`get`] uses it; it is public so a plugin can unit-test its settings type off-wasm.
pub fn parse<T: DeserializeOwned>(json: &str) -> Result<T, String> {
    // serde reads a struct from an array too; settings are always an object.
    if !json.trim_start().starts_with('{') {
        return Err("the settings must be a JSON object".into());
    }
    deserialize(json)
}

fn deserialize<T: DeserializeOwned>(json: &str) -> Result<T, String> {
    let mut de = serde_json::Deserializer::from_str(json);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            e.inner().to_string()
        } else {
            format!("{path}: {}", e.inner())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Default, Debug, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Settings {
        min: u32,
        names: Vec<String>,
    }

    #[test]
    fn empty_settings_give_the_defaults() {
        assert_eq!(parse::<Settings>("{}").unwrap(), Settings::default());
    }

    #[test]
    fn errors_name_the_setting() {
        let e = parse::<Settings>(r#"{"min": "x"}"#).unwrap_err();
        assert!(e.starts_with("min: invalid type"), "{e}");
        let e = parse::<Settings>(r#"{"names": ["a", 3]}"#).unwrap_err();
        assert!(e.starts_with("names[1]: invalid type"), "{e}");
        let e = parse::<Settings>(r#"{"mni": 1}"#).unwrap_err();
        assert!(e.contains("unknown field `mni`"), "{e}");
        assert!(parse::<Settings>("not json").is_err());
        assert!(parse::<Settings>("[]").is_err());
    }
}
