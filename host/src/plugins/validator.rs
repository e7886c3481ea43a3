//! Host side of the `validator-plugin` world: score a batch of samples.

use wasmtime::Store;
use wasmtime::component::InstancePre;

use super::bindings::rewriter::{Rewriter, RewriterIndices};
use super::bindings::validator as bindings;
use super::contract::{self, MAX_SHORT_TEXT, invalid};
use super::error::PluginError;
use super::kind::PluginKind;
use super::model::GenerationPolicy;
use super::pool::{Plugin, World};
use super::runtime::PluginState;

use bindings::exports::textnlp::plugin::validator as wit;
pub use bindings::textnlp::plugin::types::{Metric, PluginInfo};
pub use wit::{Report, Sample, SampleResult, Verdict};

/// The optional export of rewriting validators (any 0.1.x: the lookup is semver-aware).
const REWRITER: &str = "textnlp:plugin/rewriter@0.1.2";

/// The validator world, whose components may also export `rewriter`.
pub struct ValidatorWorld;

/// A linked validator: where its exports are, the rewriter's if it has one.
#[derive(Clone)]
pub struct ValidatorPre {
    pre: InstancePre<PluginState>,
    validator: bindings::ValidatorPluginIndices,
    rewriter: Option<RewriterIndices>,
}

/// The exports of one validator instance.
pub struct ValidatorBindings {
    validator: bindings::ValidatorPlugin,
    rewriter: Option<Rewriter>,
}

impl World for ValidatorWorld {
    const KIND: PluginKind = PluginKind::Validator;
    type Pre = ValidatorPre;
    type Bindings = ValidatorBindings;

    fn pre(pre: InstancePre<PluginState>) -> wasmtime::Result<ValidatorPre> {
        Ok(ValidatorPre {
            validator: bindings::ValidatorPluginIndices::new(&pre)?,
            // Optional: without the export it is a plain validator; with a mistyped one it
            // does not load (it would otherwise lose its `redact` action silently).
            rewriter: match pre.component().get_export_index(None, REWRITER) {
                Some(_) => Some(RewriterIndices::new(&pre)?),
                None => None,
            },
            pre,
        })
    }

    fn instantiate(
        pre: &ValidatorPre,
        store: &mut Store<PluginState>,
    ) -> wasmtime::Result<ValidatorBindings> {
        let instance = pre.pre.instantiate(&mut *store)?;
        Ok(ValidatorBindings {
            validator: pre.validator.load(&mut *store, &instance)?,
            rewriter: match &pre.rewriter {
                Some(indices) => Some(indices.load(&mut *store, &instance)?),
                None => None,
            },
        })
    }
}

/// A validator plugin of one tenant, with its pool of instances.
pub type ValidatorPlugin = Plugin<ValidatorWorld>;

impl Plugin<ValidatorWorld> {
    /// Whether the plugin can rewrite samples ([`rewrite`](Self::rewrite)).
    pub fn rewrites(&self) -> bool {
        self.pool.pre().rewriter.is_some()
    }

    /// The plugin's rewrite of each text (`None`: unchanged), with `config` as the settings
    /// of this call if given.
    pub fn rewrite(
        &self,
        texts: &[String],
        config: Option<&str>,
        policy: GenerationPolicy,
    ) -> Result<Vec<Option<String>>, PluginError> {
        let plugin = self.pool.name();
        let rewritten = self
            .pool
            .call_with(config, policy, |i| {
                let Some(rewriter) = &i.bindings.rewriter else {
                    return Err(PluginError::Usage(format!(
                        "plugin `{plugin}` does not rewrite samples (it exports no rewriter)"
                    )));
                };
                i.store
                    .call(|s| rewriter.textnlp_plugin_rewriter().call_rewrite(s, texts))
            })?
            .map_err(|message| PluginError::Reported {
                plugin: plugin.to_owned(),
                code: "invalid-input",
                message: truncated(message),
            })?;
        if rewritten.len() != texts.len() {
            return Err(invalid(
                plugin,
                format!(
                    "{} rewrites for {} texts (one per text is required)",
                    rewritten.len(),
                    texts.len()
                ),
            ));
        }
        for text in rewritten.iter().flatten() {
            contract::bounded(plugin, "a rewritten text", text, contract::MAX_TEXT)?;
        }
        Ok(rewritten)
    }

    pub fn describe(&self) -> Result<PluginInfo, PluginError> {
        let info = self.pool.call(None, |i| {
            i.store.call(|s| {
                i.bindings
                    .validator
                    .textnlp_plugin_validator()
                    .call_describe(s)
            })
        })?;
        contract::info(self.pool.name(), &info)?;
        Ok(info)
    }

    /// Scores `samples`, with `config` (a JSON object) as the settings of this call if given.
    pub fn score(&self, samples: &[Sample], config: Option<&str>) -> Result<Report, PluginError> {
        self.score_with(samples, config, GenerationPolicy::default())
    }

    /// [`score`](Self::score), with the plugin's model requests run under `policy` (a
    /// dataset job's background priority).
    pub fn score_with(
        &self,
        samples: &[Sample],
        config: Option<&str>,
        policy: GenerationPolicy,
    ) -> Result<Report, PluginError> {
        let plugin = self.pool.name();
        let report = self
            .pool
            .call_with(config, policy, |i| {
                i.store.call(|s| {
                    i.bindings
                        .validator
                        .textnlp_plugin_validator()
                        .call_score(s, samples)
                })
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
        contract::metrics(plugin, format_args!("sample {i}"), &result.scores)?;
        if let Some(reason) = &result.verdict.reason {
            contract::bounded(plugin, "a verdict reason", reason, MAX_SHORT_TEXT)?;
        }
    }
    Ok(())
}
