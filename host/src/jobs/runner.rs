//! Runs jobs: workers generate and validate candidates concurrently; one coordinator decides
//! them in index order and commits each decision before it counts.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use textnlp_metrics::dedup::{DedupIndex, Duplicate, NearParams};
use tokio::sync::watch;

use super::Owner;
use super::spec::Spec;
use super::store::{Store, StoreError};
use super::{
    Candidate, CandidateOutcome, Counts, Decision, Job, JobState, Message, PluginRef, Provenance,
    Record, Rejection, Usage, Verdict, now,
};
use crate::engine::Priority;
use crate::plugins::strategy::{ExpandRequest, Outcome, RecordRequest};
use crate::plugins::validator::Sample;
use crate::plugins::{
    Catalog, CatalogEntry, Credential, GenerationPolicy, ModelAccess, PluginKind, PluginScope,
    ProviderPlugin, RemoteModel, StrategyPlugin, TokenUsage,
};
use crate::tenancy::{self, Tenancy};
use crate::validation::{self, Action, ValidationError};

/// Times a worker tries a candidate whose plugin call failed before the job fails. Failures
/// are retried, never decided as rejections: a timeout under load must not change the data.
const ATTEMPTS: usize = 3;
/// Idle strategy instances kept (one per worker would be ideal; more costs memory).
const MAX_IDLE: usize = 64;

/// Why a job could not be created or run.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Spec(#[from] super::SpecError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no job `{0}`")]
    NotFound(String),
    #[error("strategy `{name}`: {message}")]
    Strategy { name: String, message: String },
    #[error("provider `{name}`: {message}")]
    Provider { name: String, message: String },
    #[error(transparent)]
    Validation(#[from] ValidationError),
    #[error("model file {path}: {message}")]
    Model { path: String, message: String },
    #[error("job `{id}` is {state:?}; it cannot run again")]
    Final { id: String, state: JobState },
    #[error("job `{0}` is already running")]
    Running(String),
    #[error("records: {records} is more than this tenant's limit of {limit} records per job")]
    TooLarge { records: u64, limit: u64 },
    #[error("{0}")]
    Failed(String),
}

/// A snapshot of a running job, published after every commit.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Progress {
    pub id: String,
    pub state: Option<JobState>,
    pub target: u64,
    pub counts: Counts,
    pub usage: Usage,
    /// Accepted records per second and completion tokens per second over this run.
    pub records_per_s: f64,
    pub tokens_per_s: f64,
    /// Seconds to go at the current rate, once there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eta_s: Option<f64>,
    pub elapsed_s: f64,
}

/// What jobs run with: the store, the model, the plugins.
pub struct Runner {
    store: Store,
    model: Arc<ModelAccess>,
    catalog: Arc<Catalog>,
    /// Tenants' limits and usage (none: the CLI, whose jobs are the operator's).
    tenancy: Option<Arc<Tenancy>>,
    provenance: Provenance,
    running: Mutex<BTreeMap<String, Running>>,
    /// Whether specs may grant their provider network hosts (the CLI).
    spec_hosts: bool,
}

/// A job running in this process: how to stop it and where it stands.
struct Running {
    cancel: Arc<AtomicBool>,
    progress: watch::Receiver<Progress>,
}

/// A job running on its own threads.
pub struct RunnerHandle {
    pub progress: watch::Receiver<Progress>,
    cancel: Arc<AtomicBool>,
    thread: JoinHandle<Result<Job, JobError>>,
}

impl RunnerHandle {
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    /// Whether the job has stopped (`join` then returns at once).
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }

    /// Waits for the job to stop; the job as stored then.
    pub fn join(self) -> Result<Job, JobError> {
        self.thread
            .join()
            .unwrap_or_else(|_| Err(JobError::Failed("the job's coordinator panicked".into())))
    }
}

impl Runner {
    /// `model_file` is hashed once here, for the jobs' provenance.
    pub fn new(
        store: Store,
        model: Arc<ModelAccess>,
        catalog: Arc<Catalog>,
        model_file: &Path,
        tokenizer: PluginRef,
    ) -> Result<Runner, JobError> {
        let model_sha256 = sha256_file(model_file).map_err(|e| JobError::Model {
            path: model_file.display().to_string(),
            message: e.to_string(),
        })?;
        let provenance = Provenance {
            model_file: model_file
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
            model_sha256,
            tokenizer,
            host: env!("CARGO_PKG_VERSION").to_owned(),
            ..Provenance::default()
        };
        Ok(Runner {
            store,
            model,
            catalog,
            tenancy: None,
            provenance,
            running: Mutex::new(BTreeMap::new()),
            spec_hosts: false,
        })
    }

    /// The plugins jobs use.
    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Applies tenants' limits to jobs and charges their usage.
    pub fn with_tenancy(mut self, tenancy: Arc<Tenancy>) -> Self {
        self.tenancy = Some(tenancy);
        self
    }

    /// Whose plugins `tenant`'s jobs see, under which caps.
    pub fn scope(&self, tenant: &str) -> Result<PluginScope, JobError> {
        match &self.tenancy {
            None => Ok(PluginScope::uncapped(tenant)),
            Some(t) => Ok(t
                .tenant(tenant)
                .map_err(|e| JobError::Failed(e.to_string()))?
                .plugin_scope()),
        }
    }

    /// The job of `spec` for `owner`: the stored one if this tenant submitted this spec (on
    /// this model file) before, else a new pending job. Limits, plugins and settings are
    /// checked first.
    pub fn create(&self, mut spec: Spec, owner: Owner) -> Result<Job, JobError> {
        spec.check()?;
        if let Some(tenancy) = &self.tenancy {
            let limits = tenancy
                .tenant(&owner.tenant)
                .map_err(|e| JobError::Failed(e.to_string()))?
                .limits;
            if spec.records > limits.max_job_records {
                return Err(JobError::TooLarge {
                    records: spec.records,
                    limit: limits.max_job_records,
                });
            }
            let most = limits.max_concurrent_sequences.max(1) as usize;
            spec.generation.concurrency = spec.generation.concurrency.min(most);
        }
        let id = job_id(&spec, &self.provenance.model_sha256, &owner.tenant);
        if let Some(mut job) = self.store.job(&id)? {
            // Same dataset; this run's concurrency.
            if !job.state.is_final() {
                job.spec.generation.concurrency = spec.generation.concurrency;
                self.store.put_job(&job)?;
            }
            return Ok(job);
        }
        let scope = self.scope(&owner.tenant)?;
        let strategy = self.strategy(&spec, &scope)?;
        let mut provenance = self.provenance.clone();
        provenance.strategy = strategy.reference.clone();
        provenance.validators = self.check_validators(&spec, &scope)?;
        if let Some((name, _)) = spec.remote_model() {
            let entry = self
                .catalog
                .find(&scope, PluginKind::Provider, name)
                .map_err(|e| JobError::Provider {
                    name: name.to_owned(),
                    message: e.to_string(),
                })?;
            provenance.provider = Some(plugin_ref(&entry));
        }
        let job = Job {
            id,
            owner,
            spec,
            state: JobState::Pending,
            created_at: now(),
            updated_at: now(),
            error: None,
            provenance,
            counts: Counts::default(),
            usage: Usage::default(),
            wall_ms: 0,
            runs: 0,
        };
        self.store.put_job(&job)?;
        Ok(job)
    }

    /// Stops a job: a running one at its next decision, a pending one at once.
    pub fn cancel(&self, id: &str) -> Result<Job, JobError> {
        if let Some(running) = self.lock_running().get(id) {
            running.cancel.store(true, Ordering::Relaxed);
        }
        let mut job = self
            .store
            .job(id)?
            .ok_or_else(|| JobError::NotFound(id.to_owned()))?;
        if !job.state.is_final() {
            job.state = JobState::Cancelled;
            job.updated_at = now();
            self.store.put_job(&job)?;
        }
        Ok(job)
    }

    /// Starts (or resumes) job `id` on new threads.
    pub fn start(self: &Arc<Self>, id: &str) -> Result<RunnerHandle, JobError> {
        let job = self
            .store
            .job(id)?
            .ok_or_else(|| JobError::NotFound(id.to_owned()))?;
        if job.state.is_final() {
            return Err(JobError::Final {
                id: job.id,
                state: job.state,
            });
        }
        let cancel = Arc::new(AtomicBool::new(false));
        let (publish, progress) = watch::channel(Progress {
            id: id.to_owned(),
            state: Some(JobState::Running),
            target: job.spec.records,
            counts: job.counts.clone(),
            usage: job.usage,
            ..Progress::default()
        });
        {
            let mut running = self.lock_running();
            if running.contains_key(id) {
                return Err(JobError::Running(id.to_owned()));
            }
            running.insert(
                id.to_owned(),
                Running {
                    cancel: Arc::clone(&cancel),
                    progress: progress.clone(),
                },
            );
        }
        let runner = Arc::clone(self);
        let flag = Arc::clone(&cancel);
        let thread = std::thread::Builder::new()
            .name(format!("job {id}"))
            .spawn(move || {
                let id = job.id.clone();
                let result = runner.run(job, &flag, &publish);
                runner.lock_running().remove(&id);
                result
            })
            .map_err(|e| JobError::Failed(format!("starting the job thread: {e}")))?;
        Ok(RunnerHandle {
            progress,
            cancel,
            thread,
        })
    }

    /// The live progress of a job running in this process.
    pub fn progress(&self, id: &str) -> Option<watch::Receiver<Progress>> {
        self.lock_running().get(id).map(|r| r.progress.clone())
    }

    /// Starts every job a previous process left pending or running (a crash, a restart).
    pub fn resume_all(self: &Arc<Self>) -> Result<Vec<String>, JobError> {
        let mut resumed = Vec::new();
        for job in self.store.jobs()? {
            if !job.state.is_final() && self.progress(&job.id).is_none() {
                // Detached: the job runs on its own threads and stores its end itself.
                drop(self.start(&job.id)?);
                resumed.push(job.id);
            }
        }
        Ok(resumed)
    }

    /// Charges what the job did since `accepted`/`usage` to its owner.
    fn account(&self, job: &Job, accepted: u64, usage: Usage) {
        if let Some(tenancy) = &self.tenancy {
            let delta = tenancy::Usage {
                job_records: job.counts.accepted - accepted,
                prompt_tokens: job.usage.prompt_tokens - usage.prompt_tokens,
                completion_tokens: job.usage.completion_tokens - usage.completion_tokens,
                ..tenancy::Usage::default()
            };
            tenancy.account(&job.owner.tenant, &job.owner.key, &delta);
        }
    }

    fn lock_running(&self) -> MutexGuard<'_, BTreeMap<String, Running>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs the job to its end (or cancellation, or failure), then stores its final state.
    fn run(
        &self,
        mut job: Job,
        cancel: &AtomicBool,
        publish: &watch::Sender<Progress>,
    ) -> Result<Job, JobError> {
        job.state = JobState::Running;
        job.runs += 1;
        job.error = None;
        self.store.put_job(&job)?;
        let result = self.scope(&job.owner.tenant).and_then(|scope| {
            let strategy = self.strategy(&job.spec, &scope)?;
            self.drive(&mut job, strategy, scope, cancel, publish)
        });
        job.state = match result {
            Ok(state) => state,
            Err(e) => {
                job.error = Some(e.to_string());
                JobState::Failed
            }
        };
        // Cancelled from outside while its last decisions were committed.
        if let Some(stored) = self.store.job(&job.id)?
            && stored.state == JobState::Cancelled
        {
            job.state = JobState::Cancelled;
        }
        job.updated_at = now();
        self.store.put_job(&job)?;
        publish.send_modify(|p| p.state = Some(job.state));
        Ok(job)
    }

    /// The strategy plugin of `spec`, its settings checked by a zero-record call.
    fn strategy(&self, spec: &Spec, scope: &PluginScope) -> Result<LoadedStrategy, JobError> {
        let name = &spec.strategy.plugin;
        let failed = |message: String| JobError::Strategy {
            name: name.clone(),
            message,
        };
        let entry = self
            .catalog
            .find(scope, PluginKind::Strategy, name)
            .map_err(|e| failed(e.to_string()))?;
        let mut instance = scope.instance(name, &entry.grants);
        if entry.grants.model {
            instance.model = Some(self.model_for(spec, scope)?);
        }
        let plugin = StrategyPlugin::new(self.catalog.runtime(), &entry.wasm, instance, MAX_IDLE)
            .map_err(|e| failed(e.to_string()))?;
        let config = Value::Object(spec.strategy.config.clone()).to_string();
        let probe = ExpandRequest {
            seed: spec.seed,
            start: 0,
            count: 0,
        };
        plugin
            .expand(probe, Some(&config))
            .map_err(|e| failed(format!("strategy.config: {e}")))?;
        Ok(LoadedStrategy {
            reference: plugin_ref(&entry),
            context: entry.manifest.context as usize,
            plugin,
            config,
        })
    }

    /// The model a job's strategy generates with: the host's, or the spec's provider model.
    fn model_for(&self, spec: &Spec, scope: &PluginScope) -> Result<Arc<ModelAccess>, JobError> {
        let Some((name, model)) = spec.remote_model() else {
            return Ok(Arc::clone(&self.model));
        };
        let failed = |message: String| JobError::Provider {
            name: name.to_owned(),
            message,
        };
        let entry = self
            .catalog
            .find(scope, PluginKind::Provider, name)
            .map_err(|e| failed(e.to_string()))?;
        let mut grants = entry.grants.clone();
        let settings = spec.provider.clone().unwrap_or_default();
        if !settings.hosts.is_empty() {
            if !self.spec_hosts {
                return Err(failed(
                    "provider.hosts: this server takes network grants from its operator \
                     (`textnlp plugin add --grant-host`), not from specs"
                        .into(),
                ));
            }
            grants.outbound_hosts.extend(settings.hosts.iter().cloned());
        }
        // The key stays with the host: the plugin sees only its settings.
        let key_var = format!("TEXTNLP_API_KEY_{}", name.to_uppercase().replace('-', "_"));
        let credential = match std::env::var(&key_var) {
            Ok(key) => Some(
                Credential::bearer(&key)
                    .map_err(|_| failed(format!("{key_var} is not a valid header value")))?,
            ),
            Err(_) => None,
        };
        let mut instance = scope.instance(name, &grants);
        instance.config = Value::Object(settings.config).to_string();
        instance.egress = grants.egress(credential);
        let provider = ProviderPlugin::new(self.catalog.runtime(), &entry.wasm, instance, MAX_IDLE)
            .map_err(|e| failed(e.to_string()))?;
        Ok(Arc::new(self.model.with_remote(RemoteModel {
            provider: Arc::new(provider),
            model: model.to_owned(),
        })))
    }

    /// Lets specs add network hosts for their provider (`provider.hosts`): for the CLI, whose
    /// user is the operator; never for the server.
    pub fn allowing_spec_hosts(mut self) -> Self {
        self.spec_hosts = true;
        self
    }

    /// Every validator of `spec` exists and accepts its settings (a run over no samples).
    fn check_validators(
        &self,
        spec: &Spec,
        scope: &PluginScope,
    ) -> Result<Vec<PluginRef>, JobError> {
        let steps: Vec<_> = spec.validators.iter().map(|v| v.step()).collect();
        validation::validate(&self.catalog, scope, &steps, Vec::new())?;
        spec.validators
            .iter()
            .map(|v| {
                let entry = self
                    .catalog
                    .find(scope, PluginKind::Validator, &v.plugin)
                    .map_err(ValidationError::from)?;
                Ok(plugin_ref(&entry))
            })
            .collect()
    }

    /// Generates, validates and decides candidates until the job has its records.
    fn drive(
        &self,
        job: &mut Job,
        strategy: LoadedStrategy,
        scope: PluginScope,
        cancel: &AtomicBool,
        publish: &watch::Sender<Progress>,
    ) -> Result<JobState, JobError> {
        let mut decider = Decider::restore(&self.store, job)?;
        let pending: BTreeMap<u64, Candidate> = self
            .store
            .candidates(&job.id)?
            .into_iter()
            .filter(|c| c.index >= decider.frontier)
            .map(|c| (c.index, c))
            .collect();
        if let Some(state) = decider.finished(&job.spec) {
            return Ok(state);
        }
        let shared = Arc::new(Shared::new(job, &decider, &pending));
        let (results, received) = mpsc::channel();
        let usage = Arc::new(TokenUsage::default());
        let work = Arc::new(Work {
            job_id: job.id.clone(),
            spec: job.spec.clone(),
            strategy,
            store: self.store.clone(),
            catalog: Arc::clone(&self.catalog),
            scope,
            usage: Arc::clone(&usage),
        });
        let workers: Vec<_> = (0..job.spec.generation.concurrency)
            .map(|n| {
                let (work, shared, results) =
                    (Arc::clone(&work), Arc::clone(&shared), results.clone());
                std::thread::Builder::new()
                    .name(format!("job worker {n}"))
                    .spawn(move || work.run(&shared, &results))
            })
            .collect::<Result<_, _>>()
            .map_err(|e| JobError::Failed(format!("starting job workers: {e}")))?;
        drop(results);
        let outcome = self.coordinate(
            job,
            &mut decider,
            pending,
            &shared,
            &received,
            &usage,
            cancel,
            publish,
        );
        shared.stop();
        for worker in workers {
            let _ = worker.join();
        }
        outcome
    }

    /// The coordinator loop: receive candidates, decide every one whose turn has come,
    /// commit, publish.
    #[allow(clippy::too_many_arguments)]
    fn coordinate(
        &self,
        job: &mut Job,
        decider: &mut Decider,
        mut pending: BTreeMap<u64, Candidate>,
        shared: &Shared,
        received: &mpsc::Receiver<Result<Candidate, String>>,
        usage: &TokenUsage,
        cancel: &AtomicBool,
        publish: &watch::Sender<Progress>,
    ) -> Result<JobState, JobError> {
        let started = Instant::now();
        let (wall_before, usage_before, accepted_before) =
            (job.wall_ms, job.usage, job.counts.accepted);
        loop {
            let mut decisions = Vec::new();
            while let Some(candidate) = pending.remove(&decider.frontier) {
                decisions.push(decider.decide(&job.spec, candidate));
                if decider.finished(&job.spec).is_some() {
                    break;
                }
            }
            if !decisions.is_empty() {
                let before = (job.counts.accepted, job.usage);
                job.counts = decider.counts.clone();
                job.usage = Usage {
                    prompt_tokens: usage_before.prompt_tokens
                        + usage.prompt_tokens.load(Ordering::Relaxed),
                    completion_tokens: usage_before.completion_tokens
                        + usage.completion_tokens.load(Ordering::Relaxed),
                };
                job.wall_ms = wall_before + started.elapsed().as_millis() as u64;
                job.updated_at = now();
                self.store.commit(job, &decisions)?;
                self.account(job, before.0, before.1);
                shared.advance(decider);
                publish.send_replace(progress(job, started, accepted_before, usage_before));
            }
            if let Some(state) = decider.finished(&job.spec) {
                return Ok(state);
            }
            if cancel.load(Ordering::Relaxed) {
                return Ok(JobState::Cancelled);
            }
            match received.recv_timeout(Duration::from_millis(200)) {
                Ok(Ok(candidate)) => {
                    pending.insert(candidate.index, candidate);
                }
                Ok(Err(error)) => return Err(JobError::Failed(error)),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(JobError::Failed(
                        "every worker stopped before the job had its records".into(),
                    ));
                }
            }
        }
    }
}

/// A loaded strategy and what the job passes it.
struct LoadedStrategy {
    reference: PluginRef,
    plugin: StrategyPlugin,
    /// Earlier prompts it wants per record (its manifest's `context`).
    context: usize,
    config: String,
}

/// What workers share: which indices to hand out, and the accepted prompts for context.
struct Shared {
    state: Mutex<Dispenser>,
    wake: Condvar,
}

struct Dispenser {
    next: u64,
    /// Indices decided (all below are).
    frontier: u64,
    accepted: u64,
    target: u64,
    /// Candidates tried at most.
    limit: u64,
    /// The strategy's dataset ends here.
    end: u64,
    /// Indices being generated, or generated and not yet decided.
    outstanding: BTreeSet<u64>,
    /// Rounds, for strategies that see earlier records (0: none).
    round_size: u64,
    /// Accepted candidates' (index, prompt), in index order.
    prompts: Vec<(u64, String)>,
    /// Balanced values whose quota is full among the decided candidates.
    full: BTreeSet<String>,
    stopped: bool,
    concurrency: u64,
}

impl Shared {
    fn new(job: &Job, decider: &Decider, pending: &BTreeMap<u64, Candidate>) -> Shared {
        Shared {
            state: Mutex::new(Dispenser {
                next: decider.frontier,
                frontier: decider.frontier,
                accepted: decider.counts.accepted,
                target: job.spec.records,
                limit: job.spec.max_candidates(),
                end: u64::MAX,
                outstanding: pending.keys().copied().collect(),
                round_size: job.spec.generation.round_size,
                prompts: decider.prompts.clone(),
                full: decider.full_values(),
                stopped: false,
                concurrency: job.spec.generation.concurrency as u64,
            }),
            wake: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Dispenser> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next index to generate, with the prompts it may build on (when `context` > 0);
    /// waits while enough work is under way; `None` when the job needs no more.
    fn take(&self, context: usize) -> Option<(u64, Vec<String>)> {
        let mut d = self.lock();
        loop {
            if d.stopped {
                return None;
            }
            while d.outstanding.contains(&d.next) {
                d.next += 1;
            }
            let index = d.next;
            if index >= d.limit.min(d.end) {
                return None;
            }
            let round_start = index - index % d.round_size;
            let ready = (context == 0 || d.frontier >= round_start) && d.wanted();
            if ready {
                d.next += 1;
                d.outstanding.insert(index);
                let prompts = match context {
                    0 => Vec::new(),
                    n => {
                        let before = d.prompts.partition_point(|(i, _)| *i < round_start);
                        let from = before.saturating_sub(n);
                        d.prompts[from..before]
                            .iter()
                            .map(|(_, p)| p.clone())
                            .collect()
                    }
                };
                return Some((index, prompts));
            }
            d = self.wake.wait(d).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// The strategy's dataset ends at `index`.
    fn exhausted(&self, index: u64) {
        let mut d = self.lock();
        d.end = d.end.min(index);
        self.wake.notify_all();
    }

    fn advance(&self, decider: &Decider) {
        let mut d = self.lock();
        d.frontier = decider.frontier;
        d.accepted = decider.counts.accepted;
        let frontier = d.frontier;
        d.outstanding.retain(|&i| i >= frontier);
        let known = d.prompts.len();
        d.prompts.extend(decider.prompts[known..].iter().cloned());
        d.full = decider.full_values();
        self.wake.notify_all();
    }

    /// Balanced values with a full quota (monotone: a quota never empties).
    fn full(&self) -> BTreeSet<String> {
        self.lock().full.clone()
    }

    fn stop(&self) {
        self.lock().stopped = true;
        self.wake.notify_all();
    }
}

impl Dispenser {
    /// Whether another candidate is worth starting: the undecided ones, at the acceptance
    /// rate so far, are not expected to fill the dataset, and the reorder window (four
    /// rounds of workers past the first undecided index) has room.
    fn wanted(&self) -> bool {
        let decided = self.frontier.max(1) as f64;
        let rate = if self.frontier == 0 {
            1.0
        } else {
            (self.accepted as f64 / decided).max(0.05)
        };
        let needed = self.target.saturating_sub(self.accepted) as f64;
        let expected = self.outstanding.len() as f64 * rate;
        expected < needed && self.next < self.frontier + 4 * self.concurrency.max(1)
    }
}

/// What a worker needs.
struct Work {
    job_id: String,
    spec: Spec,
    strategy: LoadedStrategy,
    store: Store,
    catalog: Arc<Catalog>,
    scope: PluginScope,
    usage: Arc<TokenUsage>,
}

impl Work {
    fn run(&self, shared: &Shared, results: &mpsc::Sender<Result<Candidate, String>>) {
        while let Some((index, context)) = shared.take(self.strategy.context) {
            let result = match self.over_quota(index, &shared.full()) {
                Some(metadata) => Ok(Candidate {
                    index,
                    outcome: CandidateOutcome::OverQuota { metadata },
                }),
                None => self.candidate(index, context),
            };
            if let Ok(candidate) = &result {
                if candidate.outcome == CandidateOutcome::Exhausted {
                    shared.exhausted(index);
                }
                if let Err(e) = self.store.put_candidate(&self.job_id, candidate) {
                    let _ = results.send(Err(e.to_string()));
                    return;
                }
            }
            if results.send(result).is_err() {
                return;
            }
        }
    }

    /// The prompt metadata of `index` when its balanced value is in `full`: the decision
    /// would reject it whatever it generated, so nothing is generated. Only strategies that
    /// expand prompts without the model can tell; the others are generated in full.
    fn over_quota(&self, index: u64, full: &BTreeSet<String>) -> Option<Map<String, Value>> {
        let field = &self.spec.balance.as_ref()?.field;
        if full.is_empty() {
            return None;
        }
        let request = ExpandRequest {
            seed: self.spec.seed,
            start: index,
            count: 1,
        };
        let record = self
            .strategy
            .plugin
            .expand(request, Some(&self.strategy.config))
            .ok()?
            .pop()?;
        let Ok(Value::Object(metadata)) = serde_json::from_str(&record.metadata) else {
            return None;
        };
        let value = metadata.get(field).and_then(Value::as_str)?;
        full.contains(value).then_some(metadata)
    }

    /// Candidate `index`, retried when a plugin call fails.
    fn candidate(&self, index: u64, context: Vec<String>) -> Result<Candidate, String> {
        let request = RecordRequest {
            seed: self.spec.seed,
            index,
            context,
        };
        let mut policy = self.spec.generation_policy();
        policy.usage = Some(Arc::clone(&self.usage));
        let mut last_error = String::new();
        for _ in 0..ATTEMPTS {
            let outcome = self
                .strategy
                .plugin
                .generate_record(&request, Some(&self.strategy.config), policy.clone())
                .map_err(|e| format!("record {index}: {e}"))
                .and_then(|outcome| self.validated(index, outcome));
            match outcome {
                Ok(outcome) => return Ok(Candidate { index, outcome }),
                Err(e) => {
                    tracing::warn!(job = %self.job_id, "{e}; retrying");
                    last_error = e;
                }
            }
        }
        Err(format!("{last_error} (failed {ATTEMPTS} times)"))
    }

    /// The strategy's outcome with the validators' verdicts.
    fn validated(&self, index: u64, outcome: Outcome) -> Result<CandidateOutcome, String> {
        let generated = match outcome {
            Outcome::Accepted(generated) => generated,
            Outcome::Rejected(reason) => return Ok(CandidateOutcome::Rejected { reason }),
            Outcome::Exhausted => return Ok(CandidateOutcome::Exhausted),
        };
        let metadata = match serde_json::from_str(&generated.metadata) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        };
        let mut record = Record {
            messages: generated
                .messages
                .into_iter()
                .map(|m| Message {
                    role: m.role,
                    content: m.content,
                })
                .collect(),
            completion: generated.completion,
            metadata,
            attempts: generated.attempts,
            validation: Map::new(),
        };
        let mut dropped_by = None;
        // Background like the generation, but without its overrides: those are the
        // strategy's (a judge validator keeps its own token budget).
        let policy = &GenerationPolicy {
            priority: Priority::Background,
            ..GenerationPolicy::default()
        };
        for (label, v) in self.spec.labelled_validators() {
            let sample = Sample {
                text: record.completion.clone(),
                references: v.references(&record.metadata),
            };
            let report = validation::validate_with(
                &self.catalog,
                &self.scope,
                &[v.step()],
                vec![sample],
                policy,
            )
            .map_err(|e| format!("record {index}: validator `{label}`: {e}"))?;
            let result = &report.samples[0];
            if let Some(text) = &result.text {
                record.completion = text.clone();
            }
            if let Some(value) = result.results.values().next() {
                record.validation.insert(label.clone(), value.clone());
            }
            if v.action == Action::Drop
                && dropped_by.is_none()
                && let Some(by) = &result.dropped_by
            {
                dropped_by = Some(Rejection {
                    by: label,
                    reason: by.reason.clone(),
                });
            }
        }
        Ok(CandidateOutcome::Generated { record, dropped_by })
    }
}

/// The in-order decisions and everything they depend on.
struct Decider {
    frontier: u64,
    counts: Counts,
    dedup: Option<DedupIndex>,
    /// Record index of each text kept by the dedup index, by insertion number.
    kept: Vec<u64>,
    quotas: Option<Quotas>,
    prompts: Vec<(u64, String)>,
    ended: bool,
}

impl Decider {
    /// The decider as the stored decisions left it.
    fn restore(store: &Store, job: &Job) -> Result<Decider, JobError> {
        let spec = &job.spec;
        let near = spec.dedup.near.map(|threshold| NearParams {
            threshold,
            ..NearParams::default()
        });
        let dedup = (spec.dedup.exact || near.is_some())
            .then(|| DedupIndex::new(near))
            .transpose()
            .map_err(|e| JobError::Failed(format!("dedup: {e}")))?;
        let quotas = Quotas::new(spec)?;
        let mut decider = Decider {
            frontier: 0,
            counts: Counts::default(),
            dedup,
            kept: Vec::new(),
            quotas,
            prompts: Vec::new(),
            ended: false,
        };
        for decision in store.decisions(&job.id)? {
            if decision.index != decider.frontier {
                return Err(JobError::Failed(format!(
                    "job store: decision {} follows {} (a gap)",
                    decision.index, decider.frontier
                )));
            }
            decider.apply(&decision);
        }
        Ok(decider)
    }

    /// A decision's effects: counters, the dedup index, quotas, the prompt pool.
    fn apply(&mut self, decision: &Decision) {
        let index = decision.index;
        self.frontier = index + 1;
        self.counts.candidates += 1;
        match &decision.verdict {
            Verdict::Accepted { record } => {
                if let Some(dedup) = &mut self.dedup {
                    dedup.insert(&record.completion);
                    self.kept.push(index);
                }
                self.accept(index, record);
            }
            Verdict::Rejected(rejection) => {
                if rejection.by == "dedup" {
                    if rejection.reason.starts_with("exact") {
                        self.counts.exact_duplicates += 1;
                    } else {
                        self.counts.near_duplicates += 1;
                    }
                }
                *self
                    .counts
                    .rejected
                    .entry(rejection.by.clone())
                    .or_default() += 1;
            }
            Verdict::End => self.ended = true,
        }
    }

    fn accept(&mut self, index: u64, record: &Record) {
        self.counts.accepted += 1;
        if let Some(quotas) = &mut self.quotas {
            quotas.count(&record.metadata);
        }
        self.prompts.push((index, record.prompt().to_owned()));
    }

    /// Decides the candidate at the frontier.
    fn decide(&mut self, spec: &Spec, candidate: Candidate) -> Decision {
        let index = candidate.index;
        let verdict = match candidate.outcome {
            CandidateOutcome::Exhausted => Verdict::End,
            CandidateOutcome::Rejected { reason } => Verdict::Rejected(Rejection {
                by: "strategy".into(),
                reason,
            }),
            CandidateOutcome::OverQuota { metadata } => Verdict::Rejected(Rejection {
                by: "balance".into(),
                reason: self
                    .quotas
                    .as_ref()
                    .and_then(|q| q.refusal(&metadata))
                    .unwrap_or_else(|| "its balanced value had its quota".into()),
            }),
            CandidateOutcome::Failed { error } => Verdict::Rejected(Rejection {
                by: "error".into(),
                reason: error,
            }),
            CandidateOutcome::Generated {
                dropped_by: Some(rejection),
                ..
            } => Verdict::Rejected(rejection),
            CandidateOutcome::Generated {
                record,
                dropped_by: None,
            } => self.admit(spec, record),
        };
        let decision = Decision { index, verdict };
        self.apply(&decision);
        decision
    }

    /// Quota, then duplicates of the records accepted so far.
    fn admit(&self, spec: &Spec, record: Record) -> Verdict {
        if let Some(reason) = self
            .quotas
            .as_ref()
            .and_then(|q| q.refusal(&record.metadata))
        {
            return Verdict::Rejected(Rejection {
                by: "balance".into(),
                reason,
            });
        }
        if let Some(dedup) = &self.dedup {
            let found = dedup.check(&record.completion);
            let reason = match found {
                Duplicate::Unique => None,
                Duplicate::Exact { of } => {
                    Some(format!("exact duplicate of record {}", self.kept[of]))
                }
                Duplicate::Near { of, jaccard } if spec.dedup.near.is_some() => Some(format!(
                    "near duplicate of record {} (jaccard {jaccard:.2})",
                    self.kept[of]
                )),
                Duplicate::Near { .. } => None,
            };
            if let Some(reason) = reason {
                return Verdict::Rejected(Rejection {
                    by: "dedup".into(),
                    reason,
                });
            }
        }
        Verdict::Accepted { record }
    }

    /// Balanced values whose quota is full.
    fn full_values(&self) -> BTreeSet<String> {
        self.quotas
            .as_ref()
            .map_or_else(BTreeSet::new, Quotas::full)
    }

    /// The job's final state, once it has one.
    fn finished(&self, spec: &Spec) -> Option<JobState> {
        if self.counts.accepted >= spec.records {
            Some(JobState::Completed)
        } else if self.ended || self.frontier >= spec.max_candidates() {
            Some(JobState::Exhausted)
        } else {
            None
        }
    }
}

/// Per-value quotas of a balanced metadata field: `records / values` each, the first
/// `records % values` values one more.
#[derive(Clone, Debug)]
struct Quotas {
    field: String,
    /// Per value: (accepted so far, quota).
    values: BTreeMap<String, (u64, u64)>,
}

impl Quotas {
    fn new(spec: &Spec) -> Result<Option<Quotas>, JobError> {
        let (Some(balance), Some(values)) = (&spec.balance, spec.balance_values()?) else {
            return Ok(None);
        };
        let n = values.len() as u64;
        let values = values
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                (
                    v,
                    (
                        0,
                        spec.records / n + u64::from((i as u64) < spec.records % n),
                    ),
                )
            })
            .collect();
        Ok(Some(Quotas {
            field: balance.field.clone(),
            values,
        }))
    }

    fn value<'a>(&self, metadata: &'a Map<String, Value>) -> Option<&'a str> {
        metadata.get(&self.field).and_then(Value::as_str)
    }

    /// Why a record with `metadata` cannot be accepted now, if it cannot.
    fn refusal(&self, metadata: &Map<String, Value>) -> Option<String> {
        let field = &self.field;
        let value = self.value(metadata);
        match value.and_then(|v| self.values.get(v)) {
            None => Some(format!(
                "`{field}` is {}, not one of the balanced values",
                value.map_or("missing".into(), |v| format!("`{v}`"))
            )),
            Some((accepted, quota)) if accepted >= quota => Some(format!(
                "`{field}` `{}` has its {quota} records",
                value.unwrap_or_default()
            )),
            Some(_) => None,
        }
    }

    fn full(&self) -> BTreeSet<String> {
        self.values
            .iter()
            .filter(|(_, (accepted, quota))| accepted >= quota)
            .map(|(v, _)| v.clone())
            .collect()
    }

    fn count(&mut self, metadata: &Map<String, Value>) {
        if let Some(v) = metadata.get(&self.field).and_then(Value::as_str)
            && let Some(quota) = self.values.get_mut(v)
        {
            quota.0 += 1;
        }
    }
}

fn progress(job: &Job, started: Instant, accepted_before: u64, usage_before: Usage) -> Progress {
    let elapsed = started.elapsed().as_secs_f64().max(1e-9);
    let records_per_s = (job.counts.accepted - accepted_before) as f64 / elapsed;
    let tokens_per_s =
        (job.usage.completion_tokens - usage_before.completion_tokens) as f64 / elapsed;
    let remaining = job.spec.records.saturating_sub(job.counts.accepted) as f64;
    Progress {
        id: job.id.clone(),
        state: Some(JobState::Running),
        target: job.spec.records,
        counts: job.counts.clone(),
        usage: job.usage,
        records_per_s,
        tokens_per_s,
        eta_s: (records_per_s > 0.0).then(|| remaining / records_per_s),
        elapsed_s: elapsed,
    }
}

/// `NAME-HASH12`, from whose it is and what determines the dataset: the tenant, the spec
/// (less its concurrency, which does not change the records) and the model file. Two tenants
/// submitting one spec get two jobs: a job id never leads to another tenant's job.
fn job_id(spec: &Spec, model_sha256: &str, tenant: &str) -> String {
    let mut identity = spec.clone();
    identity.generation.concurrency = 0;
    let mut hasher = Sha256::new();
    hasher.update(tenant.as_bytes());
    hasher.update([0]);
    hasher.update(serde_json::to_vec(&identity).expect("a spec is JSON"));
    hasher.update(model_sha256.as_bytes());
    let hash = hasher.finalize();
    let hex: String = hash[..6].iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{hex}", spec.name)
}

fn plugin_ref(entry: &CatalogEntry) -> PluginRef {
    PluginRef {
        name: entry.manifest.name.clone(),
        version: entry.manifest.version.clone(),
        sha256: entry.sha256.clone(),
    }
}

fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)?;
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}
