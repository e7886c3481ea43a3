//! `textnlp serve`: the HTTP server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use textnlp_kernels::cpu::matmul::Isa;
use textnlp_kernels::cpu::sampling::SamplingParams;

use super::ModelArgs;
use crate::api::metrics::Metrics;
use crate::api::{AppState, router};
use crate::engine::{Engine, EngineConfig, Event, Priority, Request};
use crate::jobs::{Runner, Store};
use crate::model::{Backend, Llama};
use crate::paths;
use crate::plugins::{Catalog, ModelAccess, PluginRuntime, Registry};
use crate::tenancy::Tenancy;
use crate::text::TokenizerPool;

/// The dataset-job runner, with the jobs an earlier process left unfinished resumed; none
/// (and a warning) when the job store cannot be opened.
fn start_jobs(
    args: &ServeArgs,
    model: Arc<ModelAccess>,
    catalog: Arc<Catalog>,
    tenancy: Arc<Tenancy>,
) -> Option<Arc<Runner>> {
    let started = || -> Result<Arc<Runner>> {
        let dir = args.jobs_dir.clone().unwrap_or_else(paths::jobs_dir);
        let store = Store::open(&dir)?;
        let tokenizer = super::job::plugin_ref(&args.model.tokenizer_path())?;
        let runner = Arc::new(
            Runner::new(store, model, catalog, &args.model.model_path(), tokenizer)?
                .with_tenancy(tenancy),
        );
        let resumed = runner.resume_all()?;
        if !resumed.is_empty() {
            tracing::info!("resumed jobs: {}", resumed.join(", "));
        }
        Ok(runner)
    };
    started()
        .inspect_err(|e| tracing::warn!("dataset jobs disabled: {e:#}"))
        .ok()
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Sequences in one batched step at most [default: 64 on the CPU, 256 on a GPU]
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=4096))]
    max_running: Option<u32>,
    /// Tokens in one forward step at most (prefill chunks share what decodes leave).
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..))]
    step_tokens: u32,
    /// KV-cache pool size in tokens (prompt + max_tokens is reserved per sequence) [default:
    /// 131072 on the CPU; on a GPU, what its KV pages hold]
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    kv_tokens: Option<u32>,
    /// Requests waiting for admission at most; more get 429 with Retry-After.
    #[arg(long, default_value_t = 256)]
    max_waiting: u32,
    /// Requests one API key may have waiting at most.
    #[arg(long, default_value_t = 128)]
    max_waiting_per_client: u32,
    /// Serve at most this context length (prompt + completion), below the model's own.
    #[arg(long, value_parser = clap::value_parser!(u32).range(2..))]
    max_model_len: Option<u32>,
    /// Tokenizer plugin instances shared by all requests.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    tokenizer_instances: u32,
    /// The dataset jobs' database [default: $TEXTNLP_HOME/jobs]
    #[arg(long, value_name = "DIR")]
    jobs_dir: Option<std::path::PathBuf>,
    /// On SIGTERM/SIGINT: seconds to let in-flight requests finish before cancelling them.
    #[arg(long, default_value_t = 5.0)]
    shutdown_grace: f64,
    /// The host's state: tenants, keys, usage, audit log, installed plugins
    /// [default: $TEXTNLP_HOME/state]
    #[arg(long, value_name = "DIR")]
    state_dir: Option<std::path::PathBuf>,
    /// Serve `/metrics` without a key (for a scraper on a private network); by default it
    /// needs an admin key.
    #[arg(long)]
    public_metrics: bool,
    /// A file holding the bootstrap admin key, for automated deployments (also
    /// `$TEXTNLP_ADMIN_KEY_FILE`, or the key itself in `$TEXTNLP_ADMIN_KEY`; never an
    /// argument, which `ps` would show). Without one, a key is made on first start and
    /// printed once.
    #[arg(long, value_name = "PATH")]
    admin_key_file: Option<std::path::PathBuf>,
}

impl ServeArgs {
    /// The bootstrap admin key the operator gave, if any.
    fn given_admin_key(&self) -> Result<Option<String>> {
        let file = self
            .admin_key_file
            .clone()
            .or_else(|| std::env::var_os("TEXTNLP_ADMIN_KEY_FILE").map(Into::into));
        match file {
            Some(path) => std::fs::read_to_string(&path)
                .with_context(|| format!("reading the admin key file {}", path.display()))
                .map(|k| Some(k.trim().to_owned())),
            None => Ok(std::env::var("TEXTNLP_ADMIN_KEY").ok()),
        }
    }
}

/// The state database (registry and tenancy), with the operator's admin key in place.
fn open_state(args: &ServeArgs, runtime: &PluginRuntime) -> Result<(Arc<Registry>, Arc<Tenancy>)> {
    let dir = args.state_dir.clone().unwrap_or_else(paths::state_dir);
    let registry = Registry::open(&dir, runtime.clone()).context(
        "opening the host's state (is another `textnlp serve` or `textnlp plugin` running on it?)",
    )?;
    let tenancy = Tenancy::open(registry.db()).context("opening the tenant store")?;
    if let Some(key) = tenancy
        .bootstrap(args.given_admin_key()?.as_deref())
        .context("the bootstrap admin key")?
    {
        // Shown once, on the terminal only: the log never carries keys.
        eprintln!(
            "\n  A bootstrap admin key was created. It is shown this once; store it now:\n\n    {key}\n\n  \
             (`Authorization: Bearer <key>`; create tenants and their keys with it.)\n"
        );
    }
    Ok((Arc::new(registry), Arc::new(tenancy)))
}

pub fn run(args: ServeArgs) -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let model_path = args.model.model_path();
    let (model, backend) = args.model.load_model_on_backend()?;
    let model = Arc::new(model);
    let tokenizers = tokenizer_pool(&args, &model)?;
    let model_id = model_path
        .file_stem()
        .map_or_else(|| "model".into(), |s| s.to_string_lossy().into_owned());
    let n_vocab = model.config().n_vocab;
    let defaults = engine_defaults(backend);
    let engine = Engine::start(
        Arc::clone(&model),
        EngineConfig {
            max_running: args
                .max_running
                .map_or(defaults.max_running, |n| n as usize),
            step_tokens: args.step_tokens as usize,
            kv_tokens: args.kv_tokens.map_or(defaults.kv_tokens, |n| n as usize),
            max_waiting: args.max_waiting as usize,
            max_waiting_per_client: args.max_waiting_per_client as usize,
            max_model_len: args.max_model_len.map(|m| m as usize),
        },
    );
    let access = Arc::new(ModelAccess::new(
        engine.handle(),
        Arc::clone(&tokenizers),
        model_id.clone(),
    ));
    let runtime = PluginRuntime::new().context("starting the plugin runtime")?;
    let (registry, tenancy) = open_state(&args, &runtime)?;
    let catalog = Arc::new(Catalog::discover(
        runtime,
        Some(Arc::clone(&access)),
        Some(Arc::clone(&registry)),
    ));
    tracing::info!(
        "first-party plugins: {}",
        catalog
            .first_party()
            .map(|e| e.manifest.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let state = Arc::new(AppState {
        engine: engine.handle(),
        tokenizers,
        catalog: Arc::clone(&catalog),
        jobs: start_jobs(&args, access, catalog, Arc::clone(&tenancy)),
        registry,
        tenancy,
        public_metrics: args.public_metrics,
        batches: Default::default(),
        validation_slots: Default::default(),
        metrics: Metrics::new(),
        model_id,
        created: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        fingerprint: fingerprint(backend),
        n_vocab,
        ready: Default::default(),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("textnlp-http")
        .build()
        .context("starting the async runtime")?;
    let grace = Duration::from_secs_f64(args.shutdown_grace.clamp(0.0, 300.0));
    runtime.block_on(serve(Arc::clone(&state), args.addr, grace))?;
    // Whatever is still running was cancelled above; stop the thread.
    engine.shutdown(Duration::ZERO);
    runtime.shutdown_timeout(Duration::from_secs(1));
    tracing::info!("stopped");
    Ok(())
}

/// The OpenAI `system_fingerprint`: the build and the backend the model runs on (with the CPU's
/// kernel ISA, which decides the exact floating-point results).
/// Batch and KV defaults for `backend`. A GPU decodes hundreds of sequences in the time a CPU
/// decodes a few, and its KV budget is its page pool (the engine caps any request at it).
fn engine_defaults(backend: Backend) -> EngineConfig {
    match backend {
        Backend::Cpu => EngineConfig {
            max_running: 64,
            kv_tokens: 131_072,
            ..EngineConfig::default()
        },
        Backend::Cuda => EngineConfig {
            max_running: 256,
            kv_tokens: usize::MAX,
            ..EngineConfig::default()
        },
    }
}

fn fingerprint(backend: Backend) -> String {
    let version = env!("CARGO_PKG_VERSION");
    match backend {
        Backend::Cpu => format!("textnlp-{version}-cpu-{}", Isa::best()),
        Backend::Cuda => format!("textnlp-{version}-cuda"),
    }
}

fn tokenizer_pool(args: &ServeArgs, model: &Llama) -> Result<Arc<TokenizerPool>> {
    let source = args.model.tokenizer_source(model.file())?;
    let loader = Box::new(move || source.instance());
    let pool = TokenizerPool::new(loader, args.tokenizer_instances as usize)
        .context("loading the tokenizer plugin")?;
    Ok(Arc::new(pool))
}

/// Serves until SIGTERM/SIGINT, then: stop accepting (readiness and new requests fail), let
/// in-flight requests finish for `grace`, cancel the rest, and return within a few seconds
/// more even if a client holds its connection open.
async fn serve(state: Arc<AppState>, addr: SocketAddr, grace: Duration) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    tracing::info!(model = %state.model_id, fingerprint = %state.fingerprint, "serving");
    tracing::info!("listening on http://{}", listener.local_addr()?);
    warm_up(&state).await?;
    crate::api::resume_batches(&state);
    let app = router(Arc::clone(&state));
    let stopping = Arc::new(tokio::sync::Notify::new());
    let on_signal = {
        let (state, stopping) = (Arc::clone(&state), Arc::clone(&stopping));
        async move {
            shutdown_signal().await;
            tracing::info!("shutting down: refusing new requests, finishing in-flight ones");
            state.ready.store(false, Ordering::SeqCst);
            state.engine.drain();
            stopping.notify_one();
            let engine = state.engine.clone();
            tokio::spawn(async move {
                tokio::time::sleep(grace).await;
                if !engine.is_idle() {
                    tracing::warn!("grace period over: cancelling the remaining requests");
                }
                engine.abort();
            });
        }
    };
    let server = axum::serve(listener, app).with_graceful_shutdown(on_signal);
    tokio::select! {
        result = server => result.context("serving HTTP"),
        () = async {
            stopping.notified().await;
            tokio::time::sleep(grace + Duration::from_secs(2)).await;
        } => {
            tracing::warn!("connections still open after the grace period; closing them");
            Ok(())
        }
    }
}

/// One token through the engine, so `/readyz` turns ready only when generation works.
async fn warm_up(state: &AppState) -> Result<()> {
    let bos = state.tokenizers.special_tokens().bos.unwrap_or(0);
    let mut events = state.engine.submit(Request {
        client: "warm-up".into(),
        prompt: vec![bos],
        max_tokens: 1,
        sampling: SamplingParams::default(),
        stop_tokens: Vec::new(),
        logit_bias: Vec::new(),
        top_logprobs: None,
        priority: Priority::Interactive,
    })?;
    while let Some(event) = events.recv().await {
        match event {
            Event::Token { .. } => {}
            Event::Finished(_) => {
                state.ready.store(true, Ordering::SeqCst);
                tracing::info!("ready");
                return Ok(());
            }
            Event::Failed(why) => anyhow::bail!("warm-up step failed: {why}"),
        }
    }
    anyhow::bail!("the engine stopped during warm-up")
}

async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}
