//! The host interfaces every plugin kind may import, other than `model` (see
//! [`super::model`]): `log` and `config`, plus the types-only `types`.

use super::bindings::validator::textnlp::plugin::{config, log, types};
use super::runtime::PluginState;

/// Longest log message kept from a plugin; the rest is cut.
const MAX_LOG_MESSAGE: usize = 4096;

impl log::Host for PluginState {
    fn log(&mut self, level: log::Level, mut message: String) -> wasmtime::Result<()> {
        if message.len() > MAX_LOG_MESSAGE {
            let mut cut = MAX_LOG_MESSAGE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        if !self.take_log_budget(message.len()) {
            return Ok(());
        }
        let (plugin, tenant) = (self.name(), self.tenant());
        match level {
            log::Level::Trace => tracing::trace!(plugin, tenant, "{message}"),
            log::Level::Debug => tracing::debug!(plugin, tenant, "{message}"),
            log::Level::Info => tracing::info!(plugin, tenant, "{message}"),
            log::Level::Warn => tracing::warn!(plugin, tenant, "{message}"),
            log::Level::Error => tracing::error!(plugin, tenant, "{message}"),
        }
        Ok(())
    }
}

impl config::Host for PluginState {
    fn get(&mut self) -> wasmtime::Result<String> {
        Ok(self.config.clone())
    }

    fn value(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        // The settings were checked to be a JSON object when the instance was made.
        let settings: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&self.config).unwrap_or_default();
        Ok(settings.get(&key).map(ToString::to_string))
    }
}

impl types::Host for PluginState {}
