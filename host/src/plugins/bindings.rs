//! Host bindings of the plugin worlds (`wit/worlds.wit`).
//!
//! The validator world imports every host interface (`log`, `config`, `model`, `types`); its
//! generated modules are the ones the host implements, and the other worlds reuse them, so each
//! host interface has exactly one Rust trait.

use wasmtime::component::InstancePre;

use super::error::{PluginError, describe};
use super::kind::PluginKind;
use super::runtime::PluginState;

pub mod validator {
    wasmtime::component::bindgen!({
        world: "textnlp:plugin/validator-plugin@0.1.2",
        path: "../wit",
        // Host functions may end the call (a model call past the plugin's deadline).
        imports: { default: trappable },
        with: {
            "textnlp:plugin/model.session": crate::plugins::model::Session,
        },
    });
}

/// The optional `rewriter` export of a validator (world `rewriting-validator-plugin`), looked
/// up on its own so that a validator without it still loads.
pub mod rewriter {
    wasmtime::component::bindgen!({
        inline: "
            package textnlp:host;

            world rewriter {
                export textnlp:plugin/rewriter@0.1.2;
            }
        ",
        path: "../wit",
        world: "textnlp:host/rewriter",
    });
}

pub mod strategy {
    wasmtime::component::bindgen!({
        world: "textnlp:plugin/strategy-plugin@0.1.2",
        path: "../wit",
        with: {
            "textnlp:plugin/log": super::validator::textnlp::plugin::log,
            "textnlp:plugin/config": super::validator::textnlp::plugin::config,
            "textnlp:plugin/model": super::validator::textnlp::plugin::model,
            "textnlp:plugin/types": super::validator::textnlp::plugin::types,
        },
    });
}

/// The optional `record-generator` export of a strategy (world `record-strategy-plugin`),
/// looked up on its own so that a 0.1.0/0.1.1 strategy still loads.
pub mod record_generator {
    wasmtime::component::bindgen!({
        inline: "
            package textnlp:host;

            world record-generator {
                export textnlp:plugin/record-generator@0.1.2;
            }
        ",
        path: "../wit",
        world: "textnlp:host/record-generator",
        with: {
            "textnlp:plugin/types": super::validator::textnlp::plugin::types,
        },
    });
}

pub mod provider {
    wasmtime::component::bindgen!({
        world: "textnlp:plugin/provider-plugin@0.1.2",
        path: "../wit",
        with: {
            "textnlp:plugin/log": super::validator::textnlp::plugin::log,
            "textnlp:plugin/config": super::validator::textnlp::plugin::config,
            "textnlp:plugin/types": super::validator::textnlp::plugin::types,
        },
    });
}

pub mod tokenizer {
    wasmtime::component::bindgen!({
        world: "textnlp:plugin/tokenizer-plugin@0.1.2",
        path: "../wit",
        with: {
            "textnlp:plugin/log": super::validator::textnlp::plugin::log,
        },
    });
}

/// Checks that a linked component exports `kind`'s interface with the right types.
pub(super) fn check_exports(
    kind: PluginKind,
    pre: InstancePre<PluginState>,
) -> Result<(), PluginError> {
    let checked = match kind {
        PluginKind::Tokenizer => tokenizer::TokenizerPluginPre::new(pre).map(drop),
        PluginKind::Strategy => strategy::StrategyPluginPre::new(pre).map(drop),
        PluginKind::Validator => validator::ValidatorPluginPre::new(pre).map(drop),
        PluginKind::Provider => provider::ProviderPluginPre::new(pre).map(drop),
    };
    checked.map_err(|e| {
        PluginError::Link(format!(
            "not a {kind} plugin (world {}): {}",
            kind.world(),
            describe(&e)
        ))
    })
}
