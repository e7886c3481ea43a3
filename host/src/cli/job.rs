//! `textnlp job run|status|export|cancel|schema`: dataset jobs in this process.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use super::ModelArgs;
use crate::engine::EngineConfig;
use crate::jobs::{self, Format, Job, JobState, Owner, PluginRef, Runner, Spec, Store, export};
use crate::paths;
use crate::plugins::{Catalog, Manifest, PluginRuntime, PluginScope, registry};

#[derive(Debug, Args)]
pub struct JobArgs {
    /// The job database [default: $TEXTNLP_HOME/jobs]
    #[arg(long, value_name = "DIR", global = true)]
    jobs_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: JobCommand,
}

#[derive(Debug, Subcommand)]
enum JobCommand {
    /// Generate the dataset a spec describes (resuming the job if it was interrupted), then
    /// export it with its dataset card.
    Run(RunArgs),
    /// One job's state and counts, or every job.
    Status {
        id: Option<String>,
        /// The job as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write a job's records to stdout (or --out) in one format.
    Export {
        id: String,
        #[arg(long, default_value = "jsonl")]
        format: Format,
        #[arg(long, value_name = "PATH")]
        out: Option<PathBuf>,
    },
    /// Stop a job; it keeps what it has.
    Cancel { id: String },
    /// Print the JSON Schema of dataset specs.
    Schema,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// The dataset spec (YAML or JSON).
    spec: PathBuf,
    #[command(flatten)]
    model: ModelArgs,
    /// Candidates generated at once [default: the spec's generation.concurrency]
    #[arg(long)]
    concurrency: Option<usize>,
    /// Records to generate instead of the spec's (a different dataset: a different job)
    #[arg(long)]
    records: Option<u64>,
    /// Where to export [default: the spec's output.dir, or NAME-output next to the spec]
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// No progress bar (a line per second on stderr instead).
    #[arg(long)]
    no_progress: bool,
}

pub fn run(args: JobArgs) -> Result<()> {
    let dir = args.jobs_dir.unwrap_or_else(paths::jobs_dir);
    if let JobCommand::Schema = args.command {
        println!("{}", serde_json::to_string_pretty(&Spec::json_schema())?);
        return Ok(());
    }
    let store = Store::open(&dir)?;
    match args.command {
        JobCommand::Run(run) => run_job(store, run),
        JobCommand::Status { id, json } => status(&store, id.as_deref(), json),
        JobCommand::Export { id, format, out } => {
            let job = find(&store, &id)?;
            let records = export::records(&store, &job)?;
            let mut bytes = Vec::new();
            export::write(format, &job, &records, &mut bytes)?;
            match out {
                Some(path) => std::fs::write(&path, bytes)
                    .with_context(|| format!("writing {}", path.display()))?,
                None => std::io::Write::write_all(&mut std::io::stdout(), &bytes)?,
            }
            Ok(())
        }
        JobCommand::Cancel { id } => {
            let mut job = find(&store, &id)?;
            if !job.state.is_final() {
                job.state = JobState::Cancelled;
                job.updated_at = jobs::now();
                store.put_job(&job)?;
            }
            println!("{} {}", job.id, state_name(job.state));
            Ok(())
        }
        JobCommand::Schema => unreachable!("handled above"),
    }
}

fn find(store: &Store, id: &str) -> Result<Job> {
    store.job(id)?.with_context(|| format!("no job `{id}`"))
}

fn run_job(store: Store, args: RunArgs) -> Result<()> {
    let mut spec =
        Spec::load(&args.spec).with_context(|| format!("spec {}", args.spec.display()))?;
    if let Some(concurrency) = args.concurrency {
        spec.generation.concurrency = concurrency;
    }
    if let Some(records) = args.records {
        spec.records = records;
    }
    let out = args.out.clone().unwrap_or_else(|| {
        let base = args.spec.parent().unwrap_or(Path::new("."));
        base.join(
            spec.output
                .dir
                .clone()
                .unwrap_or_else(|| PathBuf::from(format!("{}-output", spec.name))),
        )
    });
    let config = EngineConfig {
        max_running: EngineConfig::default()
            .max_running
            .max(spec.generation.concurrency),
        ..EngineConfig::default()
    };
    let (engine, model) = args.model.start_engine(config)?;
    let runtime = PluginRuntime::new().context("starting the plugin runtime")?;
    let registry = super::read_registry(&runtime);
    let catalog = Arc::new(Catalog::discover(
        runtime,
        Some(Arc::clone(&model)),
        registry,
    ));
    let tokenizer = plugin_ref(&args.model.tokenizer_path())?;
    // The CLI's user is the operator: a spec may grant its provider network hosts.
    let runner = Arc::new(
        Runner::new(
            store,
            model,
            Arc::clone(&catalog),
            &args.model.model_path(),
            tokenizer,
        )?
        .allowing_spec_hosts(),
    );
    // The card's corpus metrics may need the model: export before the engine stops.
    let exported = generate(&runner, spec, args.no_progress).and_then(|job| {
        let records = export::records(runner.store(), &job)?;
        let scope = PluginScope::uncapped(&job.owner.tenant);
        let files = export::export_all(&out, &job, &records, &catalog, &scope)
            .with_context(|| format!("exporting into {}", out.display()))?;
        Ok((job, files))
    });
    engine.shutdown(Duration::ZERO);
    let (job, files) = exported?;
    print_summary(&job, &files);
    match job.state {
        JobState::Completed => Ok(()),
        JobState::Failed => bail!(
            "job {} failed: {}",
            job.id,
            job.error.as_deref().unwrap_or("unknown error")
        ),
        state => bail!(
            "job {} ended {} with {} of {} records",
            job.id,
            state_name(state),
            job.counts.accepted,
            job.spec.records
        ),
    }
}

/// Creates or resumes the job and shows its progress until it stops.
fn generate(runner: &Arc<Runner>, spec: Spec, quiet_bar: bool) -> Result<Job> {
    let job = runner.create(spec, Owner::default())?;
    if job.state.is_final() {
        eprintln!("job {} is already {}", job.id, state_name(job.state));
        return Ok(job);
    }
    if job.counts.candidates > 0 {
        eprintln!(
            "resuming job {} at {}/{} records ({} candidates decided)",
            job.id, job.counts.accepted, job.spec.records, job.counts.candidates
        );
    } else {
        eprintln!("job {}: {} records", job.id, job.spec.records);
    }
    let handle = runner.start(&job.id)?;
    let bar = if quiet_bar {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(job.spec.records)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:30} {pos}/{len} records  {msg}  [{elapsed_precise}, eta {eta}]",
        )
        .expect("a valid template"),
    );
    bar.set_position(job.counts.accepted);
    let mut progress = handle.progress.clone();
    let mut last_line = std::time::Instant::now();
    while !handle.is_finished() {
        std::thread::sleep(Duration::from_millis(200));
        if !progress.has_changed().unwrap_or(false) {
            continue;
        }
        let p = progress.borrow_and_update().clone();
        let rejected: u64 = p.counts.rejected.values().sum();
        let message = format!(
            "{} rejected · {:.2} rec/s · {:.1} tok/s",
            rejected, p.records_per_s, p.tokens_per_s
        );
        bar.set_position(p.counts.accepted);
        bar.set_message(message.clone());
        if quiet_bar && last_line.elapsed() >= Duration::from_secs(1) {
            eprintln!("{}/{} records · {message}", p.counts.accepted, p.target);
            last_line = std::time::Instant::now();
        }
    }
    bar.finish_and_clear();
    Ok(handle.join()?)
}

fn print_summary(job: &Job, files: &[PathBuf]) {
    let secs = job.wall_ms as f64 / 1000.0;
    let rate = |n: u64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
    println!("job {} {}", job.id, state_name(job.state));
    println!(
        "  {:<28} {}/{}",
        "records", job.counts.accepted, job.spec.records
    );
    println!("  {:<28} {}", "candidates", job.counts.candidates);
    for (by, n) in &job.counts.rejected {
        println!("  {:<28} {n}", format!("rejected by {by}"));
    }
    println!(
        "  {:<28} {} / {}",
        "exact / near duplicates", job.counts.exact_duplicates, job.counts.near_duplicates
    );
    println!(
        "  {:<28} {} / {}",
        "prompt / completion tokens", job.usage.prompt_tokens, job.usage.completion_tokens
    );
    println!("  {:<28} {secs:.1} s over {} run(s)", "wall time", job.runs);
    println!(
        "  {:<28} {:.2} records/s · {:.1} completion tok/s",
        "throughput",
        rate(job.counts.accepted),
        rate(job.usage.completion_tokens)
    );
    for file in files {
        println!("  wrote {}", file.display());
    }
}

fn status(store: &Store, id: Option<&str>, json: bool) -> Result<()> {
    let jobs = match id {
        Some(id) => vec![find(store, id)?],
        None => store.jobs()?,
    };
    if json {
        let value = match id {
            Some(_) => serde_json::to_value(&jobs[0])?,
            None => serde_json::to_value(&jobs)?,
        };
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    for job in &jobs {
        let rejected: u64 = job.counts.rejected.values().sum();
        println!(
            "{:<32} {:<10} {:>7}/{:<7} records  {rejected} rejected  {:.1} s",
            job.id,
            state_name(job.state),
            job.counts.accepted,
            job.spec.records,
            job.wall_ms as f64 / 1000.0
        );
    }
    Ok(())
}

fn state_name(state: JobState) -> &'static str {
    match state {
        JobState::Pending => "pending",
        JobState::Running => "running",
        JobState::Completed => "completed",
        JobState::Exhausted => "exhausted",
        JobState::Cancelled => "cancelled",
        JobState::Failed => "failed",
    }
}

/// A plugin component's name, version and hash, for provenance.
pub(super) fn plugin_ref(path: &Path) -> Result<PluginRef> {
    let wasm = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let manifest = Manifest::from_component(&wasm)
        .with_context(|| format!("reading the manifest of {}", path.display()))?;
    Ok(PluginRef {
        name: manifest.name,
        version: manifest.version,
        sha256: registry::sha256_hex(&wasm),
    })
}
