//! The wasmtime runtime every plugin runs in.
//!
//! One [`PluginRuntime`] owns one `wasmtime::Engine` (epoch interruption on, a ticker thread
//! advancing the epoch every [`EPOCH_TICK`]; fuel metering only when its limits ask for it) and one `Linker` with every host
//! interface (WASI p2, `wasi:http`, `textnlp:plugin`); what a component may actually import is
//! decided per kind before instantiation ([`PluginRuntime::prepare`]). Each plugin instance gets
//! its own `Store<PluginState>` ([`PluginRuntime::new_store`], one per tenant and instance) with:
//! - a memory/table/instance cap ([`Limits`]), tracked so that a denied growth is reported as
//!   out-of-memory rather than as a bare trap;
//! - a wall-clock deadline set before every call ([`PluginStore::call`]), and a fuel budget
//!   where a deterministic one is wanted;
//! - a `ResourceTable` with a capped capacity;
//! - a WASI p2 context with no preopened directories, no environment, no arguments and no
//!   sockets, whose stdout and stderr go to size-capped in-memory pipes. What a plugin prints
//!   is forwarded to `tracing` after each call, and the stderr tail is attached to trap errors
//!   (a Rust guest's panic message lands there);
//! - its own settings (`config`), model access if granted, and an egress policy for
//!   `wasi:http` ([`Egress`]).

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use std::time::Instant;

use sha2::{Digest, Sha256};
use wasmtime::component::{
    Component, HasSelf, InstancePre, Linker, ResourceTable, ResourceTableError,
};
use wasmtime::{Config, Engine, ResourceLimiter, Store, StoreLimits, StoreLimitsBuilder, Trap};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::egress::Egress;
use super::error::{PluginError, TrapKind, describe};
use super::kind::PluginKind;
use super::model::{GenerationPolicy, ModelAccess};

/// How often the epoch advances; deadlines are counted in these ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Per-instance resource limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Maximum size of each linear memory, in bytes.
    pub memory_bytes: usize,
    /// Wall-clock budget of one call into the plugin (instantiation and `load` included).
    pub call_deadline: Duration,
    /// Maximum number of elements of each table.
    pub table_elements: usize,
    /// Maximum number of (core and component) instances a plugin may create.
    pub instances: usize,
    /// Maximum number of host resources (WASI streams, ...) a plugin may hold at once.
    pub resource_table_capacity: usize,
    /// Cap on what a plugin may write to stdout and to stderr (each), and on what it may send
    /// to the host log during one call. Writing past the stdout/stderr cap traps the plugin.
    pub output_bytes: usize,
    /// Fuel (roughly, wasm instructions) per call, for a deterministic budget; `None` leaves
    /// only the wall-clock deadline. Metering costs every plugin about 12 % of its speed
    /// (tokenizer encode: 7.7-7.9 MB/s without, 6.9-7.0 MB/s with), so a runtime meters fuel
    /// only when its own limits set a budget, and only its stores may use one.
    pub fuel: Option<u64>,
}

impl Default for Limits {
    /// Sized for tokenizer plugins. `tokenizer-bpe` over SmolLM2's 49k-token vocabulary uses
    /// 13 MiB of linear memory after loading and 15 MiB after encoding 1 MiB of text in one
    /// call; 256 MiB leaves room for 150k-token vocabularies and multi-megabyte inputs.
    fn default() -> Self {
        Limits {
            memory_bytes: 256 << 20,
            call_deadline: Duration::from_secs(10),
            table_elements: 20_000,
            instances: 64,
            resource_table_capacity: 1_000,
            output_bytes: 64 << 10,
            fuel: None,
        }
    }
}

/// The shared plugin runtime: one engine, one linker, a cache of compiled components.
///
/// Cheap to clone (clones share the engine and the cache); every method takes `&self`. The
/// epoch ticker stops once every clone and every store created from them are dropped.
#[derive(Clone)]
pub struct PluginRuntime {
    shared: Arc<Shared>,
    linker: Arc<Linker<PluginState>>,
    limits: Limits,
    /// Compiled components by the SHA-256 of their bytes.
    compiled: Arc<Mutex<HashMap<[u8; 32], Component>>>,
    /// Where compiled artifacts persist between processes (`None`: memory only).
    artifact_dir: Option<PathBuf>,
}

/// What stores keep alive: the engine and its ticker.
pub(crate) struct Shared {
    engine: Engine,
    ticker: Option<EpochTicker>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Some(ticker) = self.ticker.take() {
            ticker.stop();
        }
    }
}

struct EpochTicker {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

impl EpochTicker {
    fn start(engine: Engine) -> std::io::Result<Self> {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("textnlp-plugin-epoch".into())
            .spawn(move || {
                // Stops on a message or when the sender is dropped.
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(EPOCH_TICK) {
                    engine.increment_epoch();
                }
            })?;
        Ok(EpochTicker { stop, thread })
    }

    fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}

impl PluginRuntime {
    /// A runtime whose instances get [`Limits::default`].
    pub fn new() -> Result<Self, PluginError> {
        Self::with_limits(Limits::default())
    }

    /// A runtime whose instances get `limits` unless a loader is given others.
    pub fn with_limits(limits: Limits) -> Result<Self, PluginError> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        config.consume_fuel(limits.fuel.is_some());
        config.cranelift_opt_level(wasmtime::OptLevel::Speed);
        let engine = Engine::new(&config).map_err(|e| PluginError::Runtime(describe(&e)))?;
        let ticker = EpochTicker::start(engine.clone())
            .map_err(|e| PluginError::Runtime(format!("cannot start the epoch ticker: {e}")))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .and_then(|()| wasmtime_wasi_http::p2::add_only_http_to_linker_sync(&mut linker))
            .and_then(|()| {
                // The validator world imports every `textnlp:plugin` host interface.
                super::bindings::validator::ValidatorPlugin::add_to_linker::<
                    PluginState,
                    HasSelf<PluginState>,
                >(&mut linker, |state| state)
            })
            .map_err(|e| PluginError::Runtime(describe(&e)))?;
        Ok(PluginRuntime {
            shared: Arc::new(Shared {
                engine,
                ticker: Some(ticker),
            }),
            linker: Arc::new(linker),
            limits,
            compiled: Arc::new(Mutex::new(HashMap::new())),
            artifact_dir: Some(crate::paths::home().join("cache").join("components")),
        })
    }

    /// Keeps compiled artifacts in `dir` (or only in memory with `None`). Artifacts there are
    /// written by this host only, never taken from tenants: loading one runs its machine code.
    pub fn with_artifact_dir(mut self, dir: Option<PathBuf>) -> Self {
        self.artifact_dir = dir;
        self
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.shared.engine
    }

    /// The default limits of this runtime's instances.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Reads and compiles the component at `path` (see [`PluginRuntime::compile`]).
    pub fn load_component(&self, path: &Path) -> Result<Component, PluginError> {
        let bytes = std::fs::read(path).map_err(|source| PluginError::Io {
            path: path.to_owned(),
            source,
        })?;
        self.compile(&bytes)
    }

    /// Compiles a WebAssembly component from its binary form. Compiled components are cached
    /// in memory by content hash, so loading the same plugin again is cheap. Core modules, text
    /// and precompiled artifacts are refused.
    pub fn compile(&self, wasm: &[u8]) -> Result<Component, PluginError> {
        check_header(wasm)?;
        let key: [u8; 32] = Sha256::digest(wasm).into();
        if let Some(component) = self.cache().get(&key) {
            return Ok(component.clone());
        }
        let artifact = self.artifact_path(&key);
        let component = match artifact.as_deref().and_then(|p| self.load_artifact(p)) {
            Some(component) => component,
            None => {
                let component = Component::from_binary(self.engine(), wasm)
                    .map_err(|e| PluginError::Compile(describe(&e)))?;
                if let Some(path) = &artifact {
                    store_artifact(&component, path);
                }
                component
            }
        };
        self.cache().insert(key, component.clone());
        Ok(component)
    }

    /// The artifact file for a component: its content hash plus the engine's compatibility
    /// hash (wasmtime version and settings), so a changed host never maps a stale artifact.
    fn artifact_path(&self, key: &[u8; 32]) -> Option<PathBuf> {
        let dir = self.artifact_dir.as_ref()?;
        let mut engine_hash = DefaultHasher::new();
        self.engine()
            .precompile_compatibility_hash()
            .hash(&mut engine_hash);
        let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
        Some(dir.join(format!("{hex}-{:016x}.cwasm", engine_hash.finish())))
    }

    fn load_artifact(&self, path: &Path) -> Option<Component> {
        // Read, not mmapped: a file rewritten in place under a live mapping would SIGBUS us.
        let bytes = std::fs::read(path).ok()?;
        // SAFETY: files in the artifact directory are written only by `store_artifact` from
        // components this host compiled itself; wasmtime still rejects artifacts from an
        // incompatible engine or in a malformed container with an error.
        match unsafe { Component::deserialize(self.engine(), &bytes) } {
            Ok(component) => Some(component),
            Err(e) => {
                tracing::warn!(path = %path.display(), "ignoring unusable compiled artifact: {}", describe(&e));
                None
            }
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Component>> {
        // A panic while holding the lock cannot leave the map inconsistent.
        self.compiled
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Checks a component's imports against what plugins of `kind` may use. Anything else
    /// (sockets, `wasi:http` outside providers, the model for tokenizers, ...) is refused
    /// before instantiation.
    pub fn audit_imports(
        &self,
        component: &Component,
        kind: PluginKind,
    ) -> Result<(), PluginError> {
        let ty = component.component_type();
        for (name, _) in ty.imports(self.engine()) {
            if !kind.may_import(name) {
                return Err(PluginError::Link(format!(
                    "the plugin imports `{name}`, which a {kind} plugin may not use"
                )));
            }
        }
        Ok(())
    }

    /// Everything checked before a plugin of `kind` may run: the API version it declares,
    /// that it is a component, its imports, and that it exports the kind's interface with
    /// the right types. Returns the compiled component.
    pub fn prepare(
        &self,
        kind: PluginKind,
        wasm: &[u8],
    ) -> Result<InstancePre<PluginState>, PluginError> {
        check_header(wasm)?;
        self.check_declared_version(wasm)?;
        let component = self.compile(wasm)?;
        self.audit_imports(&component, kind)?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| PluginError::Link(format!("{} ({})", describe(&e), kind.world())))?;
        super::bindings::check_exports(kind, pre.clone())?;
        Ok(pre)
    }

    /// Accepts the API version a component declares, read before it is compiled. A
    /// component that declares none is compiled only to tell a malformed file (reported as
    /// such) from one built without the SDK.
    pub(crate) fn check_declared_version(&self, wasm: &[u8]) -> Result<(), PluginError> {
        let declared = declared_api_version(wasm);
        if declared.is_none() {
            self.compile(wasm)?;
        }
        check_api_version(declared.as_deref())
    }

    /// A fresh store for one plugin instance.
    pub fn new_store(&self, spec: InstanceSpec) -> PluginStore {
        let InstanceSpec {
            tenant,
            plugin: name,
            limits,
            config,
            model,
            egress,
        } = spec;
        let limits = &limits;
        let stdout = MemoryOutputPipe::new(limits.output_bytes);
        let stderr = MemoryOutputPipe::new(limits.output_bytes);
        // No preopens, no env, no args; network addresses and name lookups are all denied.
        let wasi = WasiCtxBuilder::new()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let mut table = ResourceTable::new();
        table.set_max_capacity(limits.resource_table_capacity);
        let limiter = Limiter {
            limits: StoreLimitsBuilder::new()
                .memory_size(limits.memory_bytes)
                .table_elements(limits.table_elements)
                .instances(limits.instances)
                .tables(limits.instances)
                .memories(limits.instances)
                .trap_on_grow_failure(false)
                .build(),
            memory_denied: false,
            memory_peak: 0,
            memory_limit: limits.memory_bytes,
        };
        let state = PluginState {
            name,
            tenant,
            config,
            model,
            sessions: 0,
            deadline: Instant::now(),
            http: WasiHttpCtx::new(),
            egress,
            wasi,
            table,
            limiter,
            stdout: CapturedOutput::new(stdout),
            stderr: CapturedOutput::new(stderr),
            log_budget: limits.output_bytes,
            log_budget_per_call: limits.output_bytes,
            log_dropped: false,
            policy: GenerationPolicy::default(),
        };
        let mut store = Store::new(self.engine(), state);
        store.limiter(|state| &mut state.limiter);
        store.epoch_deadline_trap();
        PluginStore {
            store,
            deadline: limits.call_deadline,
            fuel: limits.fuel,
            metered: self.limits.fuel.is_some(),
            output_cap: limits.output_bytes,
            resource_cap: limits.resource_table_capacity,
            poisoned: None,
            _shared: Arc::clone(&self.shared),
        }
    }
}

/// What one plugin instance is: whose, which plugin, its limits, settings and grants.
#[derive(Clone)]
pub struct InstanceSpec {
    pub tenant: String,
    pub plugin: String,
    pub limits: Limits,
    /// The plugin's settings as a JSON object (what `config.get` returns).
    pub config: String,
    /// Model access, when granted and a model is loaded.
    pub model: Option<Arc<ModelAccess>>,
    /// Outbound HTTP policy (deny-all unless granted).
    pub egress: Egress,
}

impl InstanceSpec {
    /// An instance with no settings, no model and no network.
    pub fn new(tenant: &str, plugin: &str, limits: Limits) -> Self {
        InstanceSpec {
            tenant: tenant.to_owned(),
            plugin: plugin.to_owned(),
            limits,
            config: "{}".into(),
            model: None,
            egress: Egress::deny_all(),
        }
    }
}

/// Refuses bytes that are not a WebAssembly component before anything reads further: text,
/// garbage, core modules and precompiled artifacts.
pub(crate) fn check_header(wasm: &[u8]) -> Result<(), PluginError> {
    const MAGIC: &[u8] = b"\0asm";
    if wasm.len() < 8 || &wasm[..4] != MAGIC {
        if Engine::detect_precompiled(wasm).is_some() {
            return Err(PluginError::Compile(
                "precompiled artifacts are not accepted; give the .wasm component".into(),
            ));
        }
        return Err(PluginError::Compile("not a WebAssembly binary".into()));
    }
    // Bytes 4..8: version 1 for a core module, `0d 00 01 00` for a component.
    if wasm[4..8] == [1, 0, 0, 0] {
        return Err(PluginError::Compile(
            "this is a core WebAssembly module, not a component; build the plugin with \
             `cargo build --target wasm32-wasip2`"
                .into(),
        ));
    }
    Ok(())
}

/// The plugin API versions this host links: `textnlp:plugin` 0.1.x.
pub const SUPPORTED_API: (u64, u64) = (0, 1);

/// Refuses a component that does not declare a `textnlp:plugin` version this host links.
fn check_api_version(declared: Option<&str>) -> Result<(), PluginError> {
    let Some(version) = declared else {
        return Err(PluginError::Version(
            "the component declares no textnlp:plugin API version (custom section \
             `textnlp:plugin-api`); build it with textnlp-plugin-sdk"
                .into(),
        ));
    };
    let mut parts = version.trim().split('.').map(str::parse::<u64>);
    let (major, minor) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(Ok(major)), Some(Ok(minor)), Some(Ok(_)), None) => (major, minor),
        _ => {
            return Err(PluginError::Version(format!(
                "the component declares API version `{}`, which is not a version number",
                version.escape_debug()
            )));
        }
    };
    if (major, minor) != SUPPORTED_API {
        return Err(PluginError::Version(format!(
            "the component was built against textnlp:plugin {version}; this host supports {}.{}.x",
            SUPPORTED_API.0, SUPPORTED_API.1
        )));
    }
    Ok(())
}

/// Name of the custom section in which the plugin SDK records the WIT package version a plugin
/// was built against (`textnlp-plugin-sdk`'s `API_VERSION_SECTION`).
pub const API_VERSION_SECTION: &str = "textnlp:plugin-api";

/// The API version a plugin component declares (see [`API_VERSION_SECTION`]), looked up in the
/// component's own custom sections and in those of its core modules. `None` when absent or
/// when the bytes are not a well-formed component.
pub fn declared_api_version(wasm: &[u8]) -> Option<String> {
    let content = find_custom_section(wasm, API_VERSION_SECTION, 0)?;
    std::str::from_utf8(content).ok().map(str::to_owned)
}

/// Reads an unsigned LEB128 `u32` at `*pos`.
pub(crate) fn read_leb_u32(bytes: &[u8], pos: &mut usize) -> Option<u32> {
    let mut value: u32 = 0;
    for shift in (0..35).step_by(7) {
        let byte = *bytes.get(*pos)?;
        *pos += 1;
        value |= u32::from(byte & 0x7f).checked_shl(shift)?;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// Walks the sections of a module or component (nested modules and components too, up to a
/// small depth) for a custom section called `name`.
pub(crate) fn find_custom_section<'a>(wasm: &'a [u8], name: &str, depth: u32) -> Option<&'a [u8]> {
    const CUSTOM: u8 = 0;
    const CORE_MODULE: u8 = 1;
    const COMPONENT: u8 = 4;
    if depth > 4 || wasm.len() < 8 || &wasm[..4] != b"\0asm" {
        return None;
    }
    let is_component = wasm[4..8] != [1, 0, 0, 0];
    let mut pos = 8;
    while pos < wasm.len() {
        let id = wasm[pos];
        pos += 1;
        let len = read_leb_u32(wasm, &mut pos)? as usize;
        let body = wasm.get(pos..pos.checked_add(len)?)?;
        pos += len;
        match id {
            CUSTOM => {
                let mut at = 0;
                let name_len = read_leb_u32(body, &mut at)? as usize;
                let section_name = body.get(at..at.checked_add(name_len)?)?;
                if section_name == name.as_bytes() {
                    return body.get(at + name_len..);
                }
            }
            CORE_MODULE | COMPONENT if is_component => {
                if let Some(found) = find_custom_section(body, name, depth + 1) {
                    return Some(found);
                }
            }
            _ => {}
        }
    }
    None
}

/// A plugin instance's store, with the bookkeeping every call needs.
pub struct PluginStore {
    store: Store<PluginState>,
    deadline: Duration,
    fuel: Option<u64>,
    /// The engine meters fuel, so every call must be given some.
    metered: bool,
    output_cap: usize,
    resource_cap: usize,
    /// Set once a call has trapped: the instance cannot be entered again.
    poisoned: Option<String>,
    /// Keeps the engine's ticker running while this store lives.
    _shared: Arc<Shared>,
}

impl PluginStore {
    /// Runs one call into the plugin under the deadline and the limits. A trap (or any other
    /// failure of the call itself) poisons the instance; later calls fail fast.
    pub fn call<R>(
        &mut self,
        f: impl FnOnce(&mut Store<PluginState>) -> wasmtime::Result<R>,
    ) -> Result<R, PluginError> {
        if let Some(why) = &self.poisoned {
            return Err(PluginError::Poisoned(why.clone()));
        }
        let ticks = self.deadline.as_micros().div_ceil(EPOCH_TICK.as_micros()) as u64;
        self.store.set_epoch_deadline(ticks.max(1));
        match (self.metered, self.fuel) {
            (true, fuel) => self
                .store
                .set_fuel(fuel.unwrap_or(u64::MAX))
                .map_err(|e| PluginError::Runtime(describe(&e)))?,
            (false, Some(_)) => {
                return Err(PluginError::Usage(
                    "a fuel budget needs a runtime whose limits set one (Limits::fuel)".into(),
                ));
            }
            (false, None) => {}
        }
        let state = self.store.data_mut();
        state.deadline = Instant::now() + self.deadline;
        state.limiter.memory_denied = false;
        state.log_budget = state.log_budget_per_call;
        state.log_dropped = false;
        let result = f(&mut self.store);
        let state = self.store.data_mut();
        state.forward_output();
        let denied = state.take_denied();
        let value = result.map_err(|e| {
            let error = self.classify(&e);
            self.poisoned = Some(error.to_string());
            error
        })?;
        // Whatever the plugin made of a refused request, the call fails as a denial.
        match denied {
            Some(authority) => Err(PluginError::Denied {
                plugin: self.store.data().name.clone(),
                message: format!("`{authority}` is not on its outbound-host allow-list"),
            }),
            None => Ok(value),
        }
    }

    /// Replaces the plugin's settings (a JSON object) for the next calls.
    pub fn set_config(&mut self, config: String) {
        self.store.data_mut().config = config;
    }

    /// Sets how the next calls' model requests run.
    pub fn set_policy(&mut self, policy: GenerationPolicy) {
        self.store.data_mut().policy = policy;
    }

    /// Turns a failed call into a [`PluginError::Trap`] naming the plugin and the limit it
    /// hit, if any.
    fn classify(&self, e: &wasmtime::Error) -> PluginError {
        let state = self.store.data();
        let table_full = e
            .chain()
            .any(|c| matches!(c.downcast_ref(), Some(ResourceTableError::Full)));
        let kind = match e.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => TrapKind::Timeout,
            Some(Trap::OutOfFuel) => TrapKind::Fuel,
            Some(Trap::StackOverflow) => TrapKind::StackOverflow,
            _ if state.limiter.memory_denied => TrapKind::OutOfMemory,
            _ if table_full => TrapKind::Resources,
            _ if state.output_full(self.output_cap) => TrapKind::Output,
            _ => TrapKind::Other,
        };
        let mut message = describe(e);
        let limit = match kind {
            TrapKind::Timeout => Some(format!(
                "the call ran past its {:?} deadline",
                self.deadline
            )),
            TrapKind::Fuel => self
                .fuel
                .map(|fuel| format!("the call used up its fuel budget of {fuel}")),
            TrapKind::StackOverflow => Some("the call overflowed the wasm stack".into()),
            TrapKind::OutOfMemory => Some(format!(
                "memory limit of {} bytes reached",
                state.limiter.memory_limit
            )),
            TrapKind::Resources => Some(format!(
                "the resource table limit of {} handles was reached",
                self.resource_cap
            )),
            TrapKind::Output => Some(format!(
                "the output limit of {} bytes on stdout/stderr was reached",
                self.output_cap
            )),
            TrapKind::Other => None,
        };
        if let Some(limit) = limit {
            message = format!("{limit} ({message})");
        }
        let stderr = state.stderr.tail(2048);
        if !stderr.is_empty() {
            message.push_str("; stderr: ");
            message.push_str(stderr.trim_end());
        }
        PluginError::Trap {
            plugin: state.name.clone(),
            kind,
            message,
        }
    }

    /// Changes the wall-clock budget of each later call.
    pub fn set_call_deadline(&mut self, deadline: Duration) {
        self.deadline = deadline;
    }

    /// Whether an earlier call trapped.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.is_some()
    }

    /// The largest linear memory size the plugin has reached, in bytes.
    pub fn memory_peak(&self) -> usize {
        self.store.data().limiter.memory_peak
    }

    /// Everything the plugin wrote to stderr so far (up to the output cap), lossily decoded.
    pub fn stderr(&self) -> String {
        self.store.data().stderr.all()
    }
}

/// The data of a plugin's store.
pub struct PluginState {
    name: String,
    tenant: String,
    /// The plugin's settings, a JSON object.
    pub(super) config: String,
    pub(super) model: Option<Arc<ModelAccess>>,
    /// Model sessions currently open.
    pub(super) sessions: usize,
    /// When the current call must end (host calls that wait stop there too).
    deadline: Instant,
    http: WasiHttpCtx,
    egress: Egress,
    wasi: WasiCtx,
    pub(super) table: ResourceTable,
    limiter: Limiter,
    stdout: CapturedOutput,
    stderr: CapturedOutput,
    /// Bytes of log messages the plugin may still send during this call.
    log_budget: usize,
    log_budget_per_call: usize,
    log_dropped: bool,
    /// How this call's model requests run (a dataset job's priority and limits).
    pub(super) policy: GenerationPolicy,
}

impl PluginState {
    /// The plugin's name, for attributing its logs.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The tenant this instance belongs to.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// When the current call must end.
    pub(super) fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Whether stdout or stderr reached its cap (writes past it fail in the guest).
    fn output_full(&self, cap: usize) -> bool {
        self.stdout.len() >= cap || self.stderr.len() >= cap
    }

    /// The outbound request refused during the last call, if any.
    pub(super) fn take_denied(&mut self) -> Option<String> {
        self.egress.take_denied()
    }

    /// Takes `len` bytes from the log budget; false (once reported) when it is spent.
    pub(crate) fn take_log_budget(&mut self, len: usize) -> bool {
        if len <= self.log_budget {
            self.log_budget -= len;
            return true;
        }
        if !self.log_dropped {
            self.log_dropped = true;
            tracing::warn!(plugin = %self.name, "plugin log budget spent; dropping its messages until the next call");
        }
        false
    }

    /// Sends what the plugin printed since the last call to `tracing`.
    fn forward_output(&mut self) {
        if let Some(text) = self.stdout.take_new() {
            tracing::info!(plugin = %self.name, stream = "stdout", "{}", text.trim_end());
        }
        if let Some(text) = self.stderr.take_new() {
            tracing::warn!(plugin = %self.name, stream = "stderr", "{}", text.trim_end());
        }
    }
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for PluginState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.egress,
        }
    }
}

/// A capped in-memory pipe and how much of it has been forwarded.
struct CapturedOutput {
    pipe: MemoryOutputPipe,
    forwarded: usize,
}

impl CapturedOutput {
    fn new(pipe: MemoryOutputPipe) -> Self {
        CapturedOutput { pipe, forwarded: 0 }
    }

    fn take_new(&mut self) -> Option<String> {
        let all = self.pipe.contents();
        if all.len() <= self.forwarded {
            return None;
        }
        let text = String::from_utf8_lossy(&all[self.forwarded..]).into_owned();
        self.forwarded = all.len();
        Some(text)
    }

    fn len(&self) -> usize {
        self.pipe.contents().len()
    }

    fn all(&self) -> String {
        String::from_utf8_lossy(&self.pipe.contents()).into_owned()
    }

    /// The last `max` bytes written (lossily decoded).
    fn tail(&self, max: usize) -> String {
        let all = self.pipe.contents();
        let start = all.len().saturating_sub(max);
        String::from_utf8_lossy(&all[start..]).into_owned()
    }
}

/// `StoreLimits` plus what the host wants to know afterwards.
struct Limiter {
    limits: StoreLimits,
    /// A memory growth was refused during the current call.
    memory_denied: bool,
    /// The largest memory size granted so far.
    memory_peak: usize,
    /// The configured cap, for messages.
    memory_limit: usize,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let granted = self.limits.memory_growing(current, desired, maximum)?;
        if granted {
            self.memory_peak = self.memory_peak.max(desired);
        } else {
            self.memory_denied = true;
        }
        Ok(granted)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.memory_denied = true;
        self.limits.memory_grow_failed(error)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.limits.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}

/// Persists a compiled component (best effort: a failure only costs a recompile later).
/// Written to a temporary name and renamed, so a reader never maps a half-written file.
fn store_artifact(component: &Component, path: &Path) {
    let write = || -> std::io::Result<()> {
        let bytes = component
            .serialize()
            .map_err(|e| std::io::Error::other(describe(&e)))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join(format!(".{}.tmp", std::process::id()));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, path)
    };
    if let Err(e) = write() {
        tracing::warn!(path = %path.display(), "cannot cache the compiled component: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(id: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![id, u8::try_from(body.len()).expect("short section")];
        out.extend_from_slice(body);
        out
    }

    fn component_with_version(version: &str) -> Vec<u8> {
        let mut custom = vec![API_VERSION_SECTION.len() as u8];
        custom.extend_from_slice(API_VERSION_SECTION.as_bytes());
        custom.extend_from_slice(version.as_bytes());
        let mut module = b"\0asm\x01\0\0\0".to_vec();
        module.extend(section(0, &custom));
        let mut component = b"\0asm\x0d\0\x01\0".to_vec();
        component.extend(section(1, &module));
        component
    }

    #[test]
    fn finds_the_declared_api_version_in_a_nested_module() {
        let wasm = component_with_version("0.1.0");
        assert_eq!(declared_api_version(&wasm).as_deref(), Some("0.1.0"));
        // Every truncation and a few corruptions give None, never a panic.
        for end in 0..wasm.len() {
            assert_eq!(declared_api_version(&wasm[..end]), None, "prefix {end}");
        }
        for i in 8..wasm.len() {
            let mut bad = wasm.clone();
            bad[i] = 0xff;
            let _ = declared_api_version(&bad);
        }
        assert_eq!(declared_api_version(b"\0asm\x0d\0\x01\0"), None);
    }

    #[test]
    fn refuses_non_components_before_compiling() {
        let runtime = PluginRuntime::new().expect("runtime");
        for bytes in [&b""[..], b"\0asm", b"\0asm\x01\0\0\0", b"(component)"] {
            assert!(matches!(
                runtime.compile(bytes),
                Err(PluginError::Compile(_))
            ));
        }
        // The ticker thread stops with the runtime.
        drop(runtime);
    }
}
