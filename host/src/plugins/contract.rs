//! Checks on what guests return, shared by the plugin kinds: nothing a plugin returns is used
//! before it passes these (sizes, finiteness, JSON where JSON is promised).

use super::bindings::validator::textnlp::plugin::types::{Metric, PluginInfo};
use super::error::PluginError;

/// Longest name (of a metric, a model, a plugin) a plugin may return.
pub const MAX_NAME: usize = 256;
/// Longest short text (a reason, a description, a finish reason) a plugin may return.
pub const MAX_SHORT_TEXT: usize = 4096;
/// Longest generated or prompt text a plugin may return, per field.
pub const MAX_TEXT: usize = 4 << 20;
/// Most metrics per sample or per corpus.
pub const MAX_METRICS: usize = 256;

/// Builds the error for a broken contract.
pub fn invalid(plugin: &str, message: impl Into<String>) -> PluginError {
    PluginError::InvalidOutput {
        plugin: plugin.to_owned(),
        message: message.into(),
    }
}

/// `text` is at most `max` bytes.
pub fn bounded(plugin: &str, what: &str, text: &str, max: usize) -> Result<(), PluginError> {
    if text.len() > max {
        return Err(invalid(
            plugin,
            format!(
                "{what} is {} bytes, more than the {max} allowed",
                text.len()
            ),
        ));
    }
    Ok(())
}

/// Metrics have short names and finite values, and there are not too many.
pub fn metrics(plugin: &str, what: &str, metrics: &[Metric]) -> Result<(), PluginError> {
    if metrics.len() > MAX_METRICS {
        return Err(invalid(
            plugin,
            format!("{} {what} metrics, more than {MAX_METRICS}", metrics.len()),
        ));
    }
    let mut names = std::collections::HashSet::with_capacity(metrics.len());
    for metric in metrics {
        bounded(plugin, "a metric name", &metric.name, MAX_NAME)?;
        // Names key the metrics in reports (JSON objects): a repeated one would be lost.
        if !names.insert(metric.name.as_str()) {
            return Err(invalid(
                plugin,
                format!("{what} metric `{}` is given twice", metric.name),
            ));
        }
        if !metric.value.is_finite() {
            return Err(invalid(
                plugin,
                format!(
                    "{what} metric `{}` is {}, not a finite number",
                    metric.name, metric.value
                ),
            ));
        }
    }
    Ok(())
}

/// A JSON object, as metadata and settings must be.
pub fn json_object(plugin: &str, what: &str, text: &str) -> Result<(), PluginError> {
    bounded(plugin, what, text, MAX_TEXT)?;
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(_)) => Ok(()),
        _ => Err(invalid(plugin, format!("{what} is not a JSON object"))),
    }
}

/// What `describe` returned is well-formed.
pub fn info(plugin: &str, info: &PluginInfo) -> Result<(), PluginError> {
    bounded(plugin, "the plugin name", &info.name, MAX_NAME)?;
    bounded(plugin, "the plugin version", &info.version, MAX_NAME)?;
    bounded(plugin, "the description", &info.description, MAX_SHORT_TEXT)?;
    json_object(plugin, "the config schema", &info.config_schema)
}

/// A role of a chat message.
pub fn role(plugin: &str, role: &str) -> Result<(), PluginError> {
    match role {
        "system" | "user" | "assistant" => Ok(()),
        other => Err(invalid(
            plugin,
            format!("unknown chat role `{}`", other.escape_debug()),
        )),
    }
}
