//! The raw bindings generated from `wit/`. Prefer the re-exports in the kind modules
//! ([`crate::validator`], [`crate::strategy`], ...) and the helper modules.
//!
//! The host interfaces (`log`, `config`, `model`, `types`) are generated once, from a helper
//! world that only imports them ([`host`]); every plugin world maps its imports onto those
//! modules with `with`, so all kinds share one set of types (`ChatMessage`, `PluginInfo`, ...).
//!
//! What ends up in a component: `wit-component` keeps only the imports the core module really
//! calls, so a provider that never calls `model` does not import it. Each world's exports are
//! described by a custom section that its export macro emits (wit-bindgen does this for
//! `pub_export_macro`), so only the world an author registers is exported.

/// The host-provided interfaces, for every kind of plugin.
pub mod host {
    wit_bindgen::generate!({
        path: "../../wit",
        inline: "
            package textnlp:sdk;

            world host {
                import textnlp:plugin/log@0.1.2;
                import textnlp:plugin/config@0.1.2;
                import textnlp:plugin/model@0.1.2;
                import textnlp:plugin/types@0.1.2;
            }
        ",
        world: "textnlp:sdk/host",
        runtime_path: "::textnlp_plugin_sdk::wit_bindgen::rt",
        // The world's interfaces live in `textnlp:plugin`, not in its own package.
        generate_all,
    });
}

/// World `tokenizer-plugin`.
pub mod tokenizer {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "textnlp:plugin/tokenizer-plugin@0.1.2",
        runtime_path: "::textnlp_plugin_sdk::wit_bindgen::rt",
        with: {
            "textnlp:plugin/log@0.1.2": crate::bindings::host::textnlp::plugin::log,
        },
        pub_export_macro: true,
        export_macro_name: "__export_tokenizer_plugin",
        default_bindings_module: "::textnlp_plugin_sdk::bindings::tokenizer",
    });
}

/// World `validator-plugin`.
pub mod validator {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "textnlp:plugin/validator-plugin@0.1.2",
        runtime_path: "::textnlp_plugin_sdk::wit_bindgen::rt",
        with: {
            "textnlp:plugin/log@0.1.2": crate::bindings::host::textnlp::plugin::log,
            "textnlp:plugin/config@0.1.2": crate::bindings::host::textnlp::plugin::config,
            "textnlp:plugin/model@0.1.2": crate::bindings::host::textnlp::plugin::model,
            "textnlp:plugin/types@0.1.2": crate::bindings::host::textnlp::plugin::types,
        },
        pub_export_macro: true,
        export_macro_name: "__export_validator_plugin",
        default_bindings_module: "::textnlp_plugin_sdk::bindings::validator",
    });
}

/// World `record-strategy-plugin`: `strategy-plugin` plus the `record-generator` export. Every
/// strategy built with this SDK exports both (the trait gives `generate_record` a default).
pub mod strategy {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "textnlp:plugin/record-strategy-plugin@0.1.2",
        runtime_path: "::textnlp_plugin_sdk::wit_bindgen::rt",
        with: {
            "textnlp:plugin/log@0.1.2": crate::bindings::host::textnlp::plugin::log,
            "textnlp:plugin/config@0.1.2": crate::bindings::host::textnlp::plugin::config,
            "textnlp:plugin/model@0.1.2": crate::bindings::host::textnlp::plugin::model,
            "textnlp:plugin/types@0.1.2": crate::bindings::host::textnlp::plugin::types,
        },
        pub_export_macro: true,
        export_macro_name: "__export_strategy_plugin",
        default_bindings_module: "::textnlp_plugin_sdk::bindings::strategy",
    });
}

/// World `provider-plugin`.
pub mod provider {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "textnlp:plugin/provider-plugin@0.1.2",
        runtime_path: "::textnlp_plugin_sdk::wit_bindgen::rt",
        with: {
            "textnlp:plugin/log@0.1.2": crate::bindings::host::textnlp::plugin::log,
            "textnlp:plugin/config@0.1.2": crate::bindings::host::textnlp::plugin::config,
            "textnlp:plugin/types@0.1.2": crate::bindings::host::textnlp::plugin::types,
        },
        pub_export_macro: true,
        export_macro_name: "__export_provider_plugin",
        default_bindings_module: "::textnlp_plugin_sdk::bindings::provider",
    });
}

/// The `rewriter` export of world `rewriting-validator-plugin`, alone: a rewriting validator
/// registers it next to [`validator`]'s exports (wit-component merges the two worlds).
pub mod rewriter {
    wit_bindgen::generate!({
        path: "../../wit",
        inline: "
            package textnlp:sdk;

            world rewriter {
                export textnlp:plugin/rewriter@0.1.2;
            }
        ",
        world: "textnlp:sdk/rewriter",
        runtime_path: "::textnlp_plugin_sdk::wit_bindgen::rt",
        generate_all,
        pub_export_macro: true,
        export_macro_name: "__export_rewriter",
        default_bindings_module: "::textnlp_plugin_sdk::bindings::rewriter",
    });
}
