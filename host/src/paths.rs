//! Where textnlp keeps installed models and plugins.
//!
//! Everything lives under `$TEXTNLP_HOME` (default `$XDG_DATA_HOME/textnlp`, i.e.
//! `~/.local/share/textnlp`); `scripts/setup.sh` installs the default model and the first-party
//! plugins there.

use std::path::PathBuf;

/// File name of the embedded default model (SmolLM2-135M-Instruct, Q4_1).
pub const DEFAULT_MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
/// File name of the first-party byte-level BPE tokenizer plugin.
pub const TOKENIZER_PLUGIN_FILE: &str = "tokenizer-bpe.wasm";

/// The textnlp data directory.
pub fn home() -> PathBuf {
    if let Some(dir) = std::env::var_os("TEXTNLP_HOME") {
        return PathBuf::from(dir);
    }
    let data = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    data.join("textnlp")
}

/// Path of the installed default model.
pub fn default_model() -> PathBuf {
    home().join("models").join(DEFAULT_MODEL_FILE)
}

/// Where `scripts/setup.sh` installs the first-party plugin components.
pub fn plugins_dir() -> PathBuf {
    home().join("plugins")
}

/// Path of the installed first-party tokenizer plugin.
pub fn tokenizer_plugin() -> PathBuf {
    plugins_dir().join(TOKENIZER_PLUGIN_FILE)
}

/// The host's own state (the plugin registry's database).
pub fn state_dir() -> PathBuf {
    home().join("state")
}

/// The dataset jobs' database.
pub fn jobs_dir() -> PathBuf {
    home().join("jobs")
}

/// Compiled CUDA kernels (PTX), keyed by their source and target, so a GPU opens without
/// recompiling them.
pub fn ptx_cache() -> PathBuf {
    home().join("cache").join("ptx")
}
