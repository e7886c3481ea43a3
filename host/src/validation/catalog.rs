//! Which validators this host can run, by name: the first-party components `scripts/setup.sh`
//! installs into [`paths::plugins_dir`], and the validators an operator installed for every
//! tenant in the plugin registry (which win over a first-party one of the same name).
//!
//! Discovery only reads manifests; a validator is compiled and instantiated the first time it
//! is used (compiled artifacts are cached on disk by the runtime), so a host with many
//! plugins starts at once.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::paths;
use crate::plugins::registry::{self, SHARED};
use crate::plugins::{
    GrantRequest, Grants, Limits, Manifest, ModelAccess, PluginKind, PluginRuntime, Registry,
    ValidatorPlugin,
};

use super::ValidationError;

/// Idle instances kept per validator.
const MAX_IDLE: usize = 4;

/// The validators a host can run.
pub struct Catalog {
    runtime: PluginRuntime,
    model: Option<Arc<ModelAccess>>,
    entries: BTreeMap<String, CatalogEntry>,
}

/// One validator: what it is, where its component is, and its instances once loaded.
pub struct CatalogEntry {
    pub manifest: Manifest,
    /// Hex SHA-256 of the component (provenance).
    pub sha256: String,
    /// Where it came from: a file path, or `registry`.
    pub source: String,
    grants: Grants,
    wasm: Vec<u8>,
    plugin: Mutex<Option<Arc<ValidatorPlugin>>>,
}

impl Catalog {
    /// An empty catalog whose validators run on `runtime`, with `model` for those granted
    /// model access.
    pub fn new(runtime: PluginRuntime, model: Option<Arc<ModelAccess>>) -> Self {
        Catalog {
            runtime,
            model,
            entries: BTreeMap::new(),
        }
    }

    /// Gives validators granted model access this model (those loaded already keep what
    /// they had: call it before running anything).
    pub fn set_model(&mut self, model: Arc<ModelAccess>) {
        self.model = Some(model);
    }

    /// The first-party validators, then the registry's shared ones. The registry is read
    /// once and closed again (sled allows one process at a time); if another process holds
    /// it, its validators are skipped with a warning.
    pub fn discover(runtime: PluginRuntime, model: Option<Arc<ModelAccess>>) -> Self {
        let mut catalog = Catalog::new(runtime, model);
        catalog.add_dir(&paths::plugins_dir());
        catalog.add_registry();
        catalog
    }

    /// Adds every validator component in `dir` (other kinds and unreadable files are
    /// skipped: the directory also holds the tokenizer and strategies).
    pub fn add_dir(&mut self, dir: &Path) {
        let Ok(listing) = std::fs::read_dir(dir) else {
            tracing::warn!(
                "no plugin directory at {} (run scripts/setup.sh)",
                dir.display()
            );
            return;
        };
        let mut files: Vec<_> = listing
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
            .collect();
        files.sort();
        for path in files {
            if let Err(e) = self.add_file(&path) {
                tracing::debug!("{}: not a validator ({e})", path.display());
            }
        }
    }

    /// Adds the validator component at `path`, granted everything its manifest asks for (a
    /// first-party plugin is trusted as far as its manifest goes, and no further).
    pub fn add_file(&mut self, path: &Path) -> Result<(), ValidationError> {
        let load = |message: String| ValidationError::Load {
            validator: path.display().to_string(),
            message,
        };
        let wasm = std::fs::read(path).map_err(|e| load(e.to_string()))?;
        let manifest = Manifest::from_component(&wasm).map_err(|e| load(e.to_string()))?;
        if manifest.kind != PluginKind::Validator {
            return Err(load(format!("a {} plugin", manifest.kind)));
        }
        let everything = GrantRequest {
            requested: true,
            ..GrantRequest::default()
        };
        let grants = registry::grant(&manifest, &everything).map_err(|e| load(e.to_string()))?;
        self.insert(manifest, wasm, grants, path.display().to_string());
        Ok(())
    }

    fn add_registry(&mut self) {
        let registry = match Registry::open_default(self.runtime.clone()) {
            Ok(registry) => registry,
            Err(e) => {
                tracing::warn!("plugin registry not read ({e}); installed validators skipped");
                return;
            }
        };
        let entries = match registry.list(SHARED) {
            Ok(entries) => entries,
            Err(e) => return tracing::warn!("plugin registry not read ({e})"),
        };
        for entry in entries
            .into_iter()
            .filter(|e| e.kind == PluginKind::Validator)
        {
            match registry.component(&entry.sha256) {
                Ok(Some(wasm)) => {
                    self.insert(entry.manifest, wasm, entry.grants, "registry".into());
                }
                other => tracing::warn!("validator `{}` not loaded: {other:?}", entry.name),
            }
        }
    }

    fn insert(&mut self, manifest: Manifest, wasm: Vec<u8>, grants: Grants, source: String) {
        let name = manifest.name.clone();
        if let Some(old) = self.entries.get(&name) {
            tracing::info!(
                "validator `{name}` from {source} replaces the one from {}",
                old.source
            );
        }
        let entry = CatalogEntry {
            sha256: registry::sha256_hex(&wasm),
            manifest,
            source,
            grants,
            wasm,
            plugin: Mutex::new(None),
        };
        self.entries.insert(name, entry);
    }

    /// The names of the validators, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// The validator called `name`.
    pub fn entry(&self, name: &str) -> Result<&CatalogEntry, ValidationError> {
        self.entries
            .get(name)
            .ok_or_else(|| ValidationError::UnknownValidator {
                name: name.to_owned(),
                known: self.names().collect::<Vec<_>>().join(", "),
            })
    }

    /// The loaded plugin called `name` (compiled and linked on first use).
    pub fn plugin(&self, name: &str) -> Result<Arc<ValidatorPlugin>, ValidationError> {
        let entry = self.entry(name)?;
        let mut slot = entry.plugin.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(plugin) = &*slot {
            return Ok(Arc::clone(plugin));
        }
        let mut spec = crate::plugins::InstanceSpec::new(
            SHARED,
            name,
            entry.grants.limits(&Limits::default()),
        );
        if entry.grants.model {
            spec.model = self.model.clone();
        }
        let plugin =
            ValidatorPlugin::new(&self.runtime, &entry.wasm, spec, MAX_IDLE).map_err(|e| {
                ValidationError::Load {
                    validator: name.to_owned(),
                    message: e.to_string(),
                }
            })?;
        let plugin = Arc::new(plugin);
        *slot = Some(Arc::clone(&plugin));
        Ok(plugin)
    }

    /// Whether any of `names` is granted model access (a caller may load the model only
    /// then).
    pub fn needs_model<'a>(&self, mut names: impl Iterator<Item = &'a str>) -> bool {
        names.any(|n| self.entries.get(n).is_some_and(|e| e.grants.model))
    }
}
