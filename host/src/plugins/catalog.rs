//! Which plugin a name means for a tenant, and the loaded validators.
//!
//! A tenant sees, by name, first its own namespace of the [`Registry`], then the plugins an
//! operator installed for everyone ([`SHARED`]), then the first-party components
//! `scripts/setup.sh` puts in [`paths::plugins_dir`]. Nothing else: another tenant's
//! namespace is not a place a lookup can reach.
//!
//! Every instance runs in a store of its own tenant ([`PluginScope`]), under the plugin's
//! grants capped by the tenant's limits; loaded validators are kept per (tenant, component,
//! caps), so no two tenants ever share an instance, even of a shared plugin.
//!
//! Discovery of the first-party directory only reads manifests; a validator is compiled and
//! instantiated the first time it is used (the runtime caches compiled artifacts on disk).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use super::registry::{self, MAX_MEMORY_MIB, MAX_TIMEOUT_MS, SHARED};
use super::{
    GrantRequest, Grants, InstanceSpec, Limits, Manifest, ModelAccess, PluginKind, PluginRuntime,
    Registry, ValidatorPlugin,
};
use crate::paths;

/// Idle instances kept per loaded validator.
const MAX_IDLE: usize = 4;

/// Whose plugins a lookup sees, and the caps on their grants.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PluginScope {
    pub tenant: String,
    /// Linear memory of one instance at most (MiB).
    pub memory_mib: u32,
    /// Deadline of one call at most (milliseconds).
    pub timeout_ms: u32,
}

impl PluginScope {
    /// `tenant` with only the host's own caps.
    pub fn uncapped(tenant: &str) -> Self {
        PluginScope {
            tenant: tenant.to_owned(),
            memory_mib: MAX_MEMORY_MIB,
            timeout_ms: MAX_TIMEOUT_MS,
        }
    }

    /// `grants` with memory and deadline within this scope's caps.
    pub fn cap(&self, mut grants: Grants) -> Grants {
        grants.memory_mib = grants.memory_mib.min(self.memory_mib);
        grants.timeout_ms = grants.timeout_ms.min(self.timeout_ms);
        grants
    }

    /// A store spec for plugin `name` in this scope, under `grants`.
    pub fn instance(&self, name: &str, grants: &Grants) -> InstanceSpec {
        let mut spec = InstanceSpec::new(&self.tenant, name, grants.limits(&Limits::default()));
        spec.egress = grants.egress(None);
        spec
    }
}

/// A plugin a name resolved to.
pub struct CatalogEntry {
    pub manifest: Manifest,
    /// Hex SHA-256 of the component (provenance).
    pub sha256: String,
    /// Where it came from: `tenant`, `shared` or the first-party file's path.
    pub source: String,
    /// Its grants, capped by the scope it was found for.
    pub grants: Grants,
    pub wasm: Arc<Vec<u8>>,
}

/// A name that resolves to nothing, or a component that does not load.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CatalogError {
    #[error("unknown {kind} plugin `{name}` (available: {known})")]
    Unknown {
        kind: PluginKind,
        name: String,
        known: String,
    },
    #[error("{kind} plugin `{name}` could not be loaded: {message}")]
    Load {
        kind: PluginKind,
        name: String,
        message: String,
    },
}

type LoadKey = (PluginScope, String);

/// The plugins a host can run, for each tenant.
pub struct Catalog {
    runtime: PluginRuntime,
    model: Option<Arc<ModelAccess>>,
    registry: Option<Arc<Registry>>,
    first_party: BTreeMap<(PluginKind, String), Arc<CatalogEntry>>,
    /// Registry components by hash, read once.
    components: Mutex<HashMap<String, Arc<Vec<u8>>>>,
    /// Loaded validators by (scope, component hash).
    validators: Mutex<HashMap<LoadKey, Arc<ValidatorPlugin>>>,
}

impl Catalog {
    /// An empty catalog over `registry` (none: first-party plugins only) whose plugins run
    /// on `runtime`, with `model` for those granted model access.
    pub fn new(
        runtime: PluginRuntime,
        model: Option<Arc<ModelAccess>>,
        registry: Option<Arc<Registry>>,
    ) -> Self {
        Catalog {
            runtime,
            model,
            registry,
            first_party: BTreeMap::new(),
            components: Mutex::default(),
            validators: Mutex::default(),
        }
    }

    /// [`Catalog::new`] with the first-party plugins of [`paths::plugins_dir`].
    pub fn discover(
        runtime: PluginRuntime,
        model: Option<Arc<ModelAccess>>,
        registry: Option<Arc<Registry>>,
    ) -> Self {
        let mut catalog = Catalog::new(runtime, model, registry);
        catalog.add_dir(&paths::plugins_dir());
        catalog
    }

    /// Gives plugins granted model access this model (validators loaded already keep what
    /// they had: call it before running anything).
    pub fn set_model(&mut self, model: Arc<ModelAccess>) {
        self.model = Some(model);
    }

    /// The model plugins granted model access get.
    pub fn model(&self) -> Option<&Arc<ModelAccess>> {
        self.model.as_ref()
    }

    /// The runtime plugins run on.
    pub fn runtime(&self) -> &PluginRuntime {
        &self.runtime
    }

    /// Adds every plugin component in `dir` (unreadable files are skipped with a log line).
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
                tracing::debug!("{}: skipped ({e})", path.display());
            }
        }
    }

    /// Adds the component at `path` as a first-party plugin, granted everything its manifest
    /// asks for (trusted as far as its manifest goes, and no further).
    pub fn add_file(&mut self, path: &Path) -> Result<(), String> {
        let wasm = std::fs::read(path).map_err(|e| e.to_string())?;
        let manifest = Manifest::from_component(&wasm).map_err(|e| e.to_string())?;
        let everything = GrantRequest {
            requested: true,
            ..GrantRequest::default()
        };
        let grants = registry::grant(&manifest, &everything).map_err(|e| e.to_string())?;
        let key = (manifest.kind, manifest.name.clone());
        let entry = CatalogEntry {
            sha256: registry::sha256_hex(&wasm),
            manifest,
            source: path.display().to_string(),
            grants,
            wasm: Arc::new(wasm),
        };
        self.first_party.insert(key, Arc::new(entry));
        Ok(())
    }

    /// The `kind` plugin called `name` for `scope`: the tenant's own, else a shared one, else
    /// a first-party one.
    pub fn find(
        &self,
        scope: &PluginScope,
        kind: PluginKind,
        name: &str,
    ) -> Result<Arc<CatalogEntry>, CatalogError> {
        let load = |message: String| CatalogError::Load {
            kind,
            name: name.to_owned(),
            message,
        };
        if let Some(registry) = &self.registry {
            for (namespace, source) in [(scope.tenant.as_str(), "tenant"), (SHARED, "shared")] {
                let Some(entry) = registry
                    .get(namespace, name)
                    .map_err(|e| load(e.to_string()))?
                    .filter(|e| e.kind == kind)
                else {
                    continue;
                };
                let wasm = self.component(registry, &entry.sha256).map_err(load)?;
                return Ok(Arc::new(CatalogEntry {
                    grants: scope.cap(entry.grants),
                    manifest: entry.manifest,
                    sha256: entry.sha256,
                    source: source.into(),
                    wasm,
                }));
            }
        }
        let entry = self
            .first_party
            .get(&(kind, name.to_owned()))
            .ok_or_else(|| CatalogError::Unknown {
                kind,
                name: name.to_owned(),
                known: self.names(scope, kind).join(", "),
            })?;
        Ok(Arc::new(CatalogEntry {
            manifest: entry.manifest.clone(),
            sha256: entry.sha256.clone(),
            source: entry.source.clone(),
            grants: scope.cap(entry.grants.clone()),
            wasm: Arc::clone(&entry.wasm),
        }))
    }

    /// The first-party plugins, by kind and name.
    pub fn first_party(&self) -> impl Iterator<Item = &CatalogEntry> {
        self.first_party.values().map(AsRef::as_ref)
    }

    /// The names of the `kind` plugins `scope` can use, sorted.
    pub fn names(&self, scope: &PluginScope, kind: PluginKind) -> Vec<String> {
        let mut names: Vec<String> = self
            .first_party
            .keys()
            .filter(|(k, _)| *k == kind)
            .map(|(_, n)| n.clone())
            .collect();
        if let Some(registry) = &self.registry {
            for namespace in [scope.tenant.as_str(), SHARED] {
                let entries = registry.list(namespace).unwrap_or_default();
                names.extend(
                    entries
                        .into_iter()
                        .filter(|e| e.kind == kind)
                        .map(|e| e.name),
                );
            }
        }
        names.sort();
        names.dedup();
        names
    }

    /// The validator `name` of `scope`, loaded (compiled and linked on first use).
    pub fn validator(
        &self,
        scope: &PluginScope,
        name: &str,
    ) -> Result<(Arc<CatalogEntry>, Arc<ValidatorPlugin>), CatalogError> {
        let entry = self.find(scope, PluginKind::Validator, name)?;
        let key = (
            scope.clone(),
            format!("{}:{}", entry.sha256, grants_key(&entry.grants)),
        );
        let mut loaded = lock(&self.validators);
        if let Some(plugin) = loaded.get(&key) {
            return Ok((entry, Arc::clone(plugin)));
        }
        let mut spec = scope.instance(name, &entry.grants);
        if entry.grants.model {
            spec.model = self.model.clone();
        }
        let plugin =
            ValidatorPlugin::new(&self.runtime, &entry.wasm, spec, MAX_IDLE).map_err(|e| {
                CatalogError::Load {
                    kind: PluginKind::Validator,
                    name: name.to_owned(),
                    message: e.to_string(),
                }
            })?;
        let plugin = Arc::new(plugin);
        loaded.insert(key, Arc::clone(&plugin));
        Ok((entry, plugin))
    }

    /// Whether any of the validators `names` is granted model access (a caller may load the
    /// model only then).
    pub fn needs_model<'a>(
        &self,
        scope: &PluginScope,
        mut names: impl Iterator<Item = &'a str>,
    ) -> bool {
        names.any(|n| {
            self.find(scope, PluginKind::Validator, n)
                .is_ok_and(|e| e.grants.model)
        })
    }

    fn component(&self, registry: &Registry, sha256: &str) -> Result<Arc<Vec<u8>>, String> {
        if let Some(wasm) = lock(&self.components).get(sha256) {
            return Ok(Arc::clone(wasm));
        }
        let wasm = registry
            .component(sha256)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("the registry has no component {sha256}"))?;
        let wasm = Arc::new(wasm);
        lock(&self.components).insert(sha256.to_owned(), Arc::clone(&wasm));
        Ok(wasm)
    }
}

/// What about a plugin's grants changes its instances (a re-approval makes new ones).
fn grants_key(grants: &Grants) -> String {
    format!(
        "{}:{}:{}:{}",
        grants.model,
        grants.memory_mib,
        grants.timeout_ms,
        grants.outbound_hosts.join(",")
    )
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
