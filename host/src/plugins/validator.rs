//! Host side of the `validator-plugin` world: score a batch of samples.

use super::bindings::validator as bindings;
use super::contract::{self, MAX_SHORT_TEXT, invalid};
use super::error::PluginError;
use super::kind::PluginKind;
use super::pool::{Plugin, world};

use bindings::exports::textnlp::plugin::validator as wit;
pub use bindings::textnlp::plugin::types::{Metric, PluginInfo};
pub use wit::{Report, Sample, SampleResult, Verdict};

world!(
    ValidatorWorld,
    PluginKind::Validator,
    ValidatorPluginPre,
    ValidatorPlugin
);

/// A validator plugin of one tenant, with its pool of instances.
pub type ValidatorPlugin = Plugin<ValidatorWorld>;

impl Plugin<ValidatorWorld> {
    pub fn describe(&self) -> Result<PluginInfo, PluginError> {
        let info = self.pool.call(None, |i| {
            i.store
                .call(|s| i.bindings.textnlp_plugin_validator().call_describe(s))
        })?;
        contract::info(self.pool.name(), &info)?;
        Ok(info)
    }

    /// Scores `samples`, with `config` (a JSON object) as the settings of this call if given.
    pub fn score(&self, samples: &[Sample], config: Option<&str>) -> Result<Report, PluginError> {
        let plugin = self.pool.name();
        let report = self
            .pool
            .call(config, |i| {
                i.store
                    .call(|s| i.bindings.textnlp_plugin_validator().call_score(s, samples))
            })?
            .map_err(|e| reported(plugin, e))?;
        check_report(plugin, samples.len(), &report)?;
        Ok(report)
    }
}

fn reported(plugin: &str, e: wit::Error) -> PluginError {
    let (code, message) = match e {
        wit::Error::InvalidConfig(m) => ("invalid-config", m),
        wit::Error::InvalidInput(m) => ("invalid-input", m),
        wit::Error::Model(m) => ("model", m),
    };
    PluginError::Reported {
        plugin: plugin.to_owned(),
        code,
        message: truncated(message),
    }
}

/// A guest's error message, cut to a sane size for logs and responses.
pub(super) fn truncated(mut message: String) -> String {
    if message.len() > MAX_SHORT_TEXT {
        let mut cut = MAX_SHORT_TEXT;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push('…');
    }
    message
}

fn check_report(plugin: &str, samples: usize, report: &Report) -> Result<(), PluginError> {
    if report.samples.len() != samples {
        return Err(invalid(
            plugin,
            format!(
                "{} results for {samples} samples (one per sample is required)",
                report.samples.len()
            ),
        ));
    }
    contract::metrics(plugin, "corpus", &report.corpus)?;
    for (i, result) in report.samples.iter().enumerate() {
        contract::metrics(plugin, &format!("sample {i}"), &result.scores)?;
        if let Some(reason) = &result.verdict.reason {
            contract::bounded(plugin, "a verdict reason", reason, MAX_SHORT_TEXT)?;
        }
    }
    Ok(())
}
