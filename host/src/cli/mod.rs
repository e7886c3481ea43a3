//! The `textnlp` command line.

mod bench;
mod generate;
mod job;
mod logits;
mod perplexity;
mod plugin;
mod serve;
mod tenant;
mod validate;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use crate::engine::{Engine, EngineConfig};
use crate::model::Llama;
use crate::model::backend::{self, Backend, BackendRequest};
use crate::model::gguf::GgufFile;
use crate::model::vocab::{Vocabulary, vocabulary_from_gguf};
use crate::paths;
use crate::plugins::{ModelAccess, PluginError, PluginRuntime, Registry, TokenizerPlugin};
use crate::text::TokenizerPool;

/// textnlp: a WebAssembly-plugin model host for synthetic text data.
#[derive(Debug, Parser)]
#[command(name = "textnlp", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the token ids of TEXT as a JSON array.
    Tokenize {
        #[command(flatten)]
        model: ModelArgs,
        text: String,
    },
    /// Generate text after PROMPT (a user message in the chat template unless --raw).
    Generate(generate::GenerateArgs),
    /// Perplexity of a text file, computed as llama-perplexity does.
    Perplexity(perplexity::PerplexityArgs),
    /// Teacher-forced top-K next-token logits at every position of an id sequence.
    Logits(logits::LogitsArgs),
    /// llama-bench-style throughput numbers as JSON lines.
    Bench(bench::BenchArgs),
    /// Serve the OpenAI-compatible and native HTTP API.
    Serve(serve::ServeArgs),
    /// Install, list, inspect and remove plugins, or start a new one.
    Plugin(plugin::PluginArgs),
    /// Run validator plugins over a JSONL or CSV file: a summary table and a JSON report.
    Validate(validate::ValidateArgs),
    /// Generate a synthetic dataset from a spec; inspect, export or cancel dataset jobs.
    Job(job::JobArgs),
    /// Create, list and delete tenants (while no server runs; else its admin API).
    Tenant(tenant::TenantArgs),
    /// Create, list and revoke API keys, or print a fresh one for TEXTNLP_ADMIN_KEY.
    Key(tenant::KeyArgs),
}

/// Which model and tokenizer plugin to use.
#[derive(Debug, Args)]
struct ModelArgs {
    /// GGUF model file [default: the installed default model]
    #[arg(long, value_name = "PATH")]
    model: Option<PathBuf>,
    /// Tokenizer plugin component [default: the installed tokenizer-bpe plugin]
    #[arg(long, value_name = "PATH")]
    tokenizer_plugin: Option<PathBuf>,
    /// Compute backend: `auto` uses CUDA where the driver, NVRTC and a GPU are usable, else the
    /// CPU (saying why in one log line)
    #[arg(long, value_enum, default_value_t = BackendRequest::Auto)]
    backend: BackendRequest,
}

impl ModelArgs {
    fn model_path(&self) -> PathBuf {
        self.model.clone().unwrap_or_else(paths::default_model)
    }

    fn open_file(&self) -> Result<GgufFile> {
        let path = self.model_path();
        if !path.exists() {
            anyhow::bail!(
                "model file {} not found (run scripts/setup.sh to install the default model, or pass --model)",
                path.display()
            );
        }
        GgufFile::open(&path).with_context(|| format!("reading model {}", path.display()))
    }

    fn load_model(&self) -> Result<Llama> {
        self.load_model_on_backend().map(|(model, _)| model)
    }

    /// The model, moved to the backend `--backend` asks for, and that backend.
    fn load_model_on_backend(&self) -> Result<(Llama, Backend)> {
        let file = self.open_file()?;
        let mut model = Llama::load(file)
            .with_context(|| format!("loading model {}", self.model_path().display()))?;
        let backend = backend::place(&mut model, self.backend, &paths::ptx_cache())
            .context("cannot use --backend cuda")?;
        Ok((model, backend))
    }

    /// The model on a running engine, with tokenizer instances for plugins' model access.
    fn start_engine(&self, config: EngineConfig) -> Result<(Engine, Arc<ModelAccess>)> {
        let model = Arc::new(self.load_model()?);
        let source = self.tokenizer_source(model.file())?;
        let tokenizers = TokenizerPool::new(Box::new(move || source.instance()), 2)
            .context("loading the tokenizer plugin")?;
        let id = self
            .model_path()
            .file_stem()
            .map_or_else(|| "model".into(), |s| s.to_string_lossy().into_owned());
        let engine = Engine::start(model, config);
        let access = ModelAccess::new(engine.handle(), Arc::new(tokenizers), id);
        Ok((engine, Arc::new(access)))
    }

    /// The tokenizer plugin's path.
    fn tokenizer_path(&self) -> PathBuf {
        self.tokenizer_plugin
            .clone()
            .unwrap_or_else(paths::tokenizer_plugin)
    }

    fn load_tokenizer(&self, file: &GgufFile) -> Result<(PluginRuntime, TokenizerPlugin)> {
        let source = self.tokenizer_source(file)?;
        let tokenizer = source.load()?;
        Ok((source.runtime, tokenizer))
    }

    /// What loading instances of the tokenizer plugin for `file` needs.
    fn tokenizer_source(&self, file: &GgufFile) -> Result<TokenizerSource> {
        let plugin = self.tokenizer_path();
        if !plugin.exists() {
            anyhow::bail!(
                "tokenizer plugin {} not found (run scripts/setup.sh, or pass --tokenizer-plugin)",
                plugin.display()
            );
        }
        let vocab =
            vocabulary_from_gguf(file.metadata()).context("reading the model's vocabulary")?;
        let runtime = PluginRuntime::new().context("starting the plugin runtime")?;
        Ok(TokenizerSource {
            runtime,
            plugin,
            vocab,
        })
    }
}

/// A tokenizer plugin component with the vocabulary of one model: loads instances of it.
struct TokenizerSource {
    runtime: PluginRuntime,
    plugin: PathBuf,
    vocab: Vocabulary,
}

impl TokenizerSource {
    /// A new instance (the plugin's own error, for callers that keep loading instances).
    fn instance(&self) -> Result<TokenizerPlugin, PluginError> {
        TokenizerPlugin::load(&self.runtime, &self.plugin, self.vocab.clone())
    }

    fn load(&self) -> Result<TokenizerPlugin> {
        self.instance()
            .with_context(|| format!("loading tokenizer plugin {}", self.plugin.display()))
    }
}

impl Cli {
    pub fn run(self) -> Result<()> {
        match self.command {
            Command::Tokenize { model, text } => {
                let file = model.open_file()?;
                let (_runtime, mut tok) = model.load_tokenizer(&file)?;
                let ids = tok.encode(&text, true, true)?;
                println!("{}", serde_json::to_string(&ids)?);
                Ok(())
            }
            Command::Generate(args) => generate::run(args),
            Command::Perplexity(args) => perplexity::run(args),
            Command::Logits(args) => logits::run(args),
            Command::Bench(args) => bench::run(args),
            Command::Serve(args) => serve::run(args),
            Command::Plugin(args) => plugin::run(args),
            Command::Validate(args) => validate::run(args),
            Command::Job(args) => job::run(args),
            Command::Tenant(args) => tenant::run_tenant(args),
            Command::Key(args) => tenant::run_key(args),
        }
    }
}

/// The plugin registry, for commands that only read it: none (with a warning) when it cannot
/// be opened, e.g. while a server holds it (its shared plugins are then not offered).
fn read_registry(runtime: &PluginRuntime) -> Option<Arc<Registry>> {
    Registry::open_default(runtime.clone())
        .inspect_err(|e| tracing::warn!("installed plugins not available: {e}"))
        .ok()
        .map(Arc::new)
}
