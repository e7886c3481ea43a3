//! Host side of the `provider-plugin` world: remote model APIs through an adapter that can
//! reach only its allow-listed hosts, with the key added by the host ([`super::egress`]).

use super::bindings::provider as bindings;
use super::contract::{self, MAX_NAME, MAX_TEXT, invalid};
use super::error::PluginError;
use super::kind::PluginKind;
use super::pool::{Plugin, world};
use super::validator::{PluginInfo, truncated};

use bindings::exports::textnlp::plugin::provider as wit;
pub use bindings::textnlp::plugin::types::ChatMessage;
pub use wit::{ChatCompletion, ChatRequest, ModelCard, Usage};

/// Most models a provider may list.
const MAX_MODELS: usize = 4096;
/// Most pieces one stream may deliver (a runaway stream ends the call).
const MAX_PIECES: usize = 1 << 20;

world!(
    ProviderWorld,
    PluginKind::Provider,
    ProviderPluginPre,
    ProviderPlugin
);

/// A provider adapter of one tenant, with its pool of instances.
pub type ProviderPlugin = Plugin<ProviderWorld>;

impl Plugin<ProviderWorld> {
    pub fn describe(&self) -> Result<PluginInfo, PluginError> {
        let info = self.pool.call(None, |i| {
            i.store
                .call(|s| i.bindings.textnlp_plugin_provider().call_describe(s))
        })?;
        contract::info(self.pool.name(), &info)?;
        Ok(info)
    }

    pub fn models(&self) -> Result<Vec<ModelCard>, PluginError> {
        let plugin = self.pool.name();
        let models = self
            .pool
            .call(None, |i| {
                i.store
                    .call(|s| i.bindings.textnlp_plugin_provider().call_models(s))
            })?
            .map_err(|e| reported(plugin, e))?;
        if models.len() > MAX_MODELS {
            return Err(invalid(plugin, format!("{} models listed", models.len())));
        }
        for model in &models {
            contract::bounded(plugin, "a model id", &model.id, MAX_NAME)?;
            contract::bounded(plugin, "a model description", &model.description, MAX_TEXT)?;
        }
        Ok(models)
    }

    pub fn complete(&self, request: &ChatRequest) -> Result<ChatCompletion, PluginError> {
        let plugin = self.pool.name();
        let completion = self
            .pool
            .call(None, |i| {
                i.store.call(|s| {
                    i.bindings
                        .textnlp_plugin_provider()
                        .call_complete(s, request)
                })
            })?
            .map_err(|e| reported(plugin, e))?;
        check_completion(plugin, &completion)?;
        Ok(completion)
    }

    /// Streams a completion: `on_piece` gets each piece of text as the plugin pulls it.
    pub fn stream(
        &self,
        request: &ChatRequest,
        mut on_piece: impl FnMut(&str),
    ) -> Result<ChatCompletion, PluginError> {
        let plugin = self.pool.name();
        self.pool.call(None, |i| {
            let api = i.bindings.textnlp_plugin_provider();
            let stream = i
                .store
                .call(|s| api.call_open_stream(s, request))?
                .map_err(|e| reported(plugin, e))?;
            let streams = api.completion_stream();
            let mut text_len = 0;
            let mut result = Ok(());
            for _ in 0..MAX_PIECES {
                match i.store.call(|s| streams.call_next(s, stream)) {
                    Ok(Ok(Some(piece))) => {
                        text_len += piece.len();
                        if text_len > MAX_TEXT {
                            result =
                                Err(invalid(plugin, "the streamed text exceeds its size limit"));
                            break;
                        }
                        on_piece(&piece);
                    }
                    Ok(Ok(None)) => break,
                    Ok(Err(e)) => {
                        result = Err(reported(plugin, e));
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
            let finished = result.and_then(|()| {
                i.store
                    .call(|s| streams.call_finish(s, stream))?
                    .map_err(|e| reported(plugin, e))
            });
            i.store.call(|s| stream.resource_drop(s))?;
            let completion = finished?;
            check_completion(plugin, &completion)?;
            Ok(completion)
        })
    }
}

fn check_completion(plugin: &str, completion: &ChatCompletion) -> Result<(), PluginError> {
    contract::bounded(plugin, "the completion", &completion.text, MAX_TEXT)?;
    contract::bounded(
        plugin,
        "the finish reason",
        &completion.finish_reason,
        MAX_NAME,
    )
}

fn reported(plugin: &str, e: wit::Error) -> PluginError {
    let (code, message) = match e {
        wit::Error::InvalidConfig(m) => ("invalid-config", m),
        wit::Error::Rejected(m) => ("rejected", m),
        wit::Error::Unauthorized(m) => ("unauthorized", m),
        wit::Error::RateLimited(after) => (
            "rate-limited",
            after.map_or("no retry time given".into(), |s| {
                format!("retry after {s} s")
            }),
        ),
        wit::Error::Unavailable(m) => ("unavailable", m),
        wit::Error::Protocol(m) => ("protocol", m),
    };
    PluginError::Reported {
        plugin: plugin.to_owned(),
        code,
        message: truncated(message),
    }
}
