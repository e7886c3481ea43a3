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

/// Metrics have short names and finite values, and there are not too many. `what` names the
/// list in errors; it is formatted only then (this runs for every sample of a batch).
pub fn metrics(
    plugin: &str,
    what: impl std::fmt::Display,
    metrics: &[Metric],
) -> Result<(), PluginError> {
    if metrics.len() > MAX_METRICS {
        return Err(invalid(
            plugin,
            format!("{} {what} metrics, more than {MAX_METRICS}", metrics.len()),
        ));
    }
    // Names key the metrics in reports (JSON objects): a repeated one would be lost.
    if let Some(name) = repeated_name(metrics) {
        return Err(invalid(
            plugin,
            format!("{what} metric `{name}` is given twice"),
        ));
    }
    for metric in metrics {
        bounded(plugin, "a metric name", &metric.name, MAX_NAME)?;
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

/// A metric name given twice, if any. Per-sample lists are a handful of metrics, checked for
/// every sample of a batch: those are compared pairwise, without allocating.
fn repeated_name(metrics: &[Metric]) -> Option<&str> {
    if metrics.len() <= 16 {
        return metrics
            .iter()
            .enumerate()
            .find(|(i, m)| metrics[..*i].iter().any(|o| o.name == m.name))
            .map(|(_, m)| m.name.as_str());
    }
    let mut names = std::collections::HashSet::with_capacity(metrics.len());
    metrics
        .iter()
        .find(|m| !names.insert(m.name.as_str()))
        .map(|m| m.name.as_str())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn named(names: &[&str]) -> Vec<Metric> {
        names
            .iter()
            .map(|n| Metric {
                name: n.to_string(),
                value: 1.0,
            })
            .collect()
    }

    #[test]
    fn a_repeated_metric_name_is_refused_in_short_and_long_lists() {
        assert!(metrics("p", "corpus", &named(&["a", "b", "c"])).is_ok());
        let err = metrics("p", "corpus", &named(&["a", "b", "a"])).unwrap_err();
        assert!(err.to_string().contains("`a` is given twice"), "{err}");
        let mut long: Vec<String> = (0..40).map(|i| format!("m{i}")).collect();
        assert!(
            metrics(
                "p",
                "x",
                &named(&long.iter().map(String::as_str).collect::<Vec<_>>())
            )
            .is_ok()
        );
        long.push("m7".into());
        let long: Vec<&str> = long.iter().map(String::as_str).collect();
        let err = metrics("p", "sample 3", &named(&long)).unwrap_err();
        assert!(
            err.to_string()
                .contains("sample 3 metric `m7` is given twice"),
            "{err}"
        );
    }
}
