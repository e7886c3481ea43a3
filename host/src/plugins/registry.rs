//! The plugin registry: which plugins are installed, for whom, with which grants.
//!
//! It lives in the host's store, one sled database under [`crate::paths::state_dir`], in two
//! trees:
//! - `plugins`: one [`Entry`] (JSON) per `(namespace, name)`; a namespace is a tenant id, or
//!   [`SHARED`] for plugins every tenant may use;
//! - `components`: the component bytes by the hex SHA-256 of their content, so that one build
//!   installed under several names or namespaces is stored once. A component is deleted when
//!   no entry refers to it any more.
//!
//! Nothing is installed before it passed every check the runtime makes before running a
//! plugin ([`PluginRuntime::prepare`]): it must be a component, declare a supported API
//! version, import only what its kind may, and export its kind's interface. What it may do at
//! run time is what the operator granted ([`GrantRequest`]), never more than its manifest asks.
//!
//! sled allows one process at a time on a database: a second `open` fails with a lock error.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use wasmtime::component::InstancePre;

use super::egress::{Credential, Egress};
use super::error::PluginError;
use super::kind::PluginKind;
use super::manifest::{Capabilities, Manifest, ManifestError};
use super::runtime::{
    InstanceSpec, Limits, PluginRuntime, PluginState, check_header, declared_api_version,
    read_leb_u32,
};

/// The namespace of plugins installed for every tenant (what the CLI installs into).
pub const SHARED: &str = "shared";
/// The most linear memory any plugin is granted, whatever its manifest asks.
pub const MAX_MEMORY_MIB: u32 = 1024;
/// The longest call deadline any plugin is granted, whatever its manifest asks.
pub const MAX_TIMEOUT_MS: u32 = 60_000;
/// The largest component accepted: it is kept in the database and read whole to compile it.
pub const MAX_COMPONENT_BYTES: usize = 256 << 20;
/// Longest namespace (tenant id).
const MAX_NAMESPACE_BYTES: usize = 128;

/// What the operator approved at install time.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GrantRequest {
    /// Approve model access (granted only if the manifest asks for it).
    pub model: bool,
    /// Approve these outbound hosts; each must be one the manifest asks for.
    pub outbound_hosts: Vec<String>,
    /// Approve everything the manifest asks for.
    pub requested: bool,
}

/// What an installed plugin may do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grants {
    /// May use the host `model` interface.
    pub model: bool,
    /// May send requests to these `host` / `host:port` entries (lower case).
    pub outbound_hosts: Vec<String>,
    /// Linear-memory cap, in MiB.
    pub memory_mib: u32,
    /// Deadline of one call, in milliseconds.
    pub timeout_ms: u32,
}

impl Grants {
    /// `base` with this plugin's memory cap and call deadline.
    pub fn limits(&self, base: &Limits) -> Limits {
        Limits {
            memory_bytes: (self.memory_mib as usize) << 20,
            call_deadline: Duration::from_millis(u64::from(self.timeout_ms)),
            ..base.clone()
        }
    }

    /// The outbound-HTTP policy: the granted hosts only (none: deny all).
    pub fn egress(&self, credential: Option<Credential>) -> Egress {
        if self.outbound_hosts.is_empty() {
            return Egress::deny_all();
        }
        Egress::allow(&self.outbound_hosts, credential)
    }
}

/// One installed plugin.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// A tenant id, or [`SHARED`].
    pub namespace: String,
    pub name: String,
    pub kind: PluginKind,
    /// The plugin's own version (from its manifest).
    pub version: String,
    /// The `textnlp:plugin` API version the component declares.
    pub api_version: String,
    /// Hex SHA-256 of the component: its key in the `components` tree.
    pub sha256: String,
    pub manifest: Manifest,
    pub grants: Grants,
    /// Seconds since the Unix epoch.
    pub installed_at: u64,
}

impl Entry {
    /// When the plugin was installed.
    pub fn installed_time(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.installed_at)
    }

    /// An instance of this plugin for `tenant`: `base` limits with the granted memory and
    /// deadline, egress to the granted hosts (no credential), no settings. Model access is
    /// left out: the caller adds its `ModelAccess` when [`Grants::model`] is set.
    pub fn instance_spec(&self, tenant: &str, base: &Limits) -> InstanceSpec {
        let mut spec = InstanceSpec::new(tenant, &self.name, self.grants.limits(base));
        spec.egress = self.grants.egress(None);
        spec
    }
}

/// What can go wrong in the registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("cannot open the plugin registry at {}: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: sled::Error,
    },
    #[error("plugin registry: {0}")]
    Store(#[from] sled::Error),
    #[error("plugin registry is corrupt: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Plugin(#[from] PluginError),
    #[error(
        "the component is truncated: a section runs to byte {needed} but the file has {size} \
         bytes (was it copied whole?)"
    )]
    Truncated { size: usize, needed: usize },
    #[error("the component is {0} bytes; the limit is {MAX_COMPONENT_BYTES}")]
    TooLarge(usize),
    #[error("invalid namespace `{0}`: 1 to 128 bytes, no control characters")]
    InvalidNamespace(String),
    #[error("plugin `{name}` is already installed (version {version}, sha256 {sha256})")]
    AlreadyInstalled {
        name: String,
        version: String,
        sha256: String,
    },
    #[error("plugin `{0}` is not installed")]
    NotInstalled(String),
    #[error("cannot grant `{host}`: the plugin does not ask for it (it asks for: {requested})")]
    HostNotRequested { host: String, requested: String },
}

/// The installed plugins.
pub struct Registry {
    db: sled::Db,
    plugins: sled::Tree,
    components: sled::Tree,
    runtime: PluginRuntime,
    /// Serializes writes, so a garbage collection never sees a component whose entry is
    /// about to be written. (sled's file lock keeps other processes out.)
    writes: Mutex<()>,
}

impl Registry {
    /// Opens (or creates) the registry at [`crate::paths::state_dir`].
    pub fn open_default(runtime: PluginRuntime) -> Result<Self, RegistryError> {
        Self::open(&crate::paths::state_dir(), runtime)
    }

    /// Opens (or creates) the registry database in `dir`. `runtime` checks what is added.
    pub fn open(dir: &Path, runtime: PluginRuntime) -> Result<Self, RegistryError> {
        let open_error = |source| RegistryError::Open {
            path: dir.to_owned(),
            source,
        };
        let db = sled::open(dir).map_err(open_error)?;
        let plugins = db.open_tree("plugins").map_err(open_error)?;
        let components = db.open_tree("components").map_err(open_error)?;
        Ok(Registry {
            db,
            plugins,
            components,
            runtime,
            writes: Mutex::new(()),
        })
    }

    /// The runtime that checks (and can instantiate) the registry's plugins.
    pub fn runtime(&self) -> &PluginRuntime {
        &self.runtime
    }

    /// Checks `wasm` and installs it into `namespace` under its manifest's name, with the
    /// grants `request` approves. An installed plugin of the same name is replaced only if
    /// `replace`.
    pub fn add(
        &self,
        namespace: &str,
        wasm: &[u8],
        request: &GrantRequest,
        replace: bool,
    ) -> Result<Entry, RegistryError> {
        check_namespace(namespace)?;
        if wasm.len() > MAX_COMPONENT_BYTES {
            return Err(RegistryError::TooLarge(wasm.len()));
        }
        let manifest = vet(&self.runtime, wasm)?;
        let grants = grant(&manifest, request)?;
        let entry = Entry {
            namespace: namespace.to_owned(),
            name: manifest.name.clone(),
            kind: manifest.kind,
            version: manifest.version.clone(),
            api_version: declared_api_version(wasm).unwrap_or_default(),
            sha256: sha256_hex(wasm),
            manifest,
            grants,
            installed_at: now(),
        };
        let _guard = self.lock();
        let key = entry_key(namespace, &entry.name);
        if !replace && let Some(old) = self.plugins.get(&key)? {
            let old = decode(&key, &old)?;
            return Err(RegistryError::AlreadyInstalled {
                name: old.name,
                version: old.version,
                sha256: old.sha256,
            });
        }
        // The component first: an entry must never point at bytes that are not there.
        if !self.components.contains_key(&entry.sha256)? {
            self.components.insert(&entry.sha256, wasm)?;
        }
        self.plugins.insert(key, encode(&entry)?)?;
        self.collect_garbage()?;
        self.db.flush()?;
        Ok(entry)
    }

    /// The plugins of `namespace`, by name.
    pub fn list(&self, namespace: &str) -> Result<Vec<Entry>, RegistryError> {
        check_namespace(namespace)?;
        self.plugins
            .scan_prefix(entry_key(namespace, ""))
            .map(|item| {
                let (key, value) = item?;
                decode(&key, &value)
            })
            .collect()
    }

    /// The plugin `name` of `namespace`, if installed.
    pub fn get(&self, namespace: &str, name: &str) -> Result<Option<Entry>, RegistryError> {
        check_namespace(namespace)?;
        let key = entry_key(namespace, name);
        self.plugins
            .get(&key)?
            .map(|value| decode(&key, &value))
            .transpose()
    }

    /// The component with this hex SHA-256, checked against it (it is about to be run).
    pub fn component(&self, sha256: &str) -> Result<Option<Vec<u8>>, RegistryError> {
        let Some(bytes) = self.components.get(sha256)? else {
            return Ok(None);
        };
        if sha256_hex(&bytes) != sha256 {
            return Err(RegistryError::Corrupt(format!(
                "the component stored as {sha256} does not have that hash"
            )));
        }
        Ok(Some(bytes.to_vec()))
    }

    /// The checked, linked component of an installed plugin, ready to instantiate.
    pub fn instance_pre(&self, entry: &Entry) -> Result<InstancePre<PluginState>, RegistryError> {
        let wasm = self.component(&entry.sha256)?.ok_or_else(|| {
            RegistryError::Corrupt(format!(
                "the component of `{}` ({}) is missing",
                entry.name, entry.sha256
            ))
        })?;
        Ok(self.runtime.prepare(entry.kind, &wasm)?)
    }

    /// Replaces the grants of an installed plugin with what `request` approves (within what
    /// its manifest asks, as at install).
    pub fn set_grants(
        &self,
        namespace: &str,
        name: &str,
        request: &GrantRequest,
    ) -> Result<Entry, RegistryError> {
        check_namespace(namespace)?;
        let _guard = self.lock();
        let key = entry_key(namespace, name);
        let old = self
            .plugins
            .get(&key)?
            .ok_or_else(|| RegistryError::NotInstalled(name.to_owned()))?;
        let mut entry = decode(&key, &old)?;
        entry.grants = grant(&entry.manifest, request)?;
        self.plugins.insert(key, encode(&entry)?)?;
        self.db.flush()?;
        Ok(entry)
    }

    /// The database the registry lives in (the host's state: tenancy trees share it).
    pub fn db(&self) -> &sled::Db {
        &self.db
    }

    /// Uninstalls `name` from `namespace`; returns what was installed.
    pub fn remove(&self, namespace: &str, name: &str) -> Result<Entry, RegistryError> {
        check_namespace(namespace)?;
        let _guard = self.lock();
        let key = entry_key(namespace, name);
        let old = self
            .plugins
            .remove(&key)?
            .ok_or_else(|| RegistryError::NotInstalled(name.to_owned()))?;
        let old = decode(&key, &old)?;
        self.collect_garbage()?;
        self.db.flush()?;
        Ok(old)
    }

    fn lock(&self) -> MutexGuard<'_, ()> {
        // The guarded data is `()`: a panic elsewhere cannot have left it inconsistent.
        self.writes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Deletes the components no entry refers to (those of replaced or removed plugins, and
    /// any left behind by a crash between writing a component and its entry). Called with
    /// the write lock held.
    fn collect_garbage(&self) -> Result<(), RegistryError> {
        let mut referenced = HashSet::new();
        for item in self.plugins.iter() {
            let (key, value) = item?;
            match serde_json::from_slice::<EntryRef>(&value) {
                Ok(entry) => referenced.insert(entry.sha256),
                Err(e) => {
                    // Which component it needs is unknown: keep them all.
                    tracing::warn!(key = %String::from_utf8_lossy(&key), "unreadable registry entry, skipping clean-up: {e}");
                    return Ok(());
                }
            };
        }
        for item in self.components.iter() {
            let (sha, _) = item?;
            if !referenced.contains(&*String::from_utf8_lossy(&sha)) {
                self.components.remove(sha)?;
            }
        }
        Ok(())
    }
}

/// The part of a stored entry the garbage collection needs.
#[derive(Deserialize)]
struct EntryRef {
    sha256: String,
}

/// Everything checked before a component is installed; returns its manifest. The cheap,
/// structural checks come first, so garbage or a truncated file is reported as such, and the
/// declared API version is read before anything is compiled.
fn vet(runtime: &PluginRuntime, wasm: &[u8]) -> Result<Manifest, RegistryError> {
    check_header(wasm)?;
    if let Some(needed) = truncated_at(wasm) {
        return Err(RegistryError::Truncated {
            size: wasm.len(),
            needed,
        });
    }
    runtime.check_declared_version(wasm)?;
    let manifest = Manifest::from_component(wasm)?;
    runtime.prepare(manifest.kind, wasm)?;
    Ok(manifest)
}

/// Where a WebAssembly binary whose last top-level section runs past its end should have
/// ended; `None` if its sections fit (or it is not WebAssembly at all).
fn truncated_at(wasm: &[u8]) -> Option<usize> {
    if wasm.len() < 8 || &wasm[..4] != b"\0asm" {
        return None;
    }
    let mut pos = 8;
    while pos < wasm.len() {
        pos += 1; // section id
        let Some(len) = read_leb_u32(wasm, &mut pos) else {
            // The size itself is cut off.
            return (pos >= wasm.len()).then_some(wasm.len() + 1);
        };
        let end = pos.saturating_add(len as usize);
        if end > wasm.len() {
            return Some(end);
        }
        pos = end;
    }
    None
}

/// The grants `request` gives a plugin whose manifest is `manifest`.
pub fn grant(manifest: &Manifest, request: &GrantRequest) -> Result<Grants, RegistryError> {
    let asked = &manifest.capabilities;
    Ok(Grants {
        model: asked.model && (request.model || request.requested),
        outbound_hosts: granted_hosts(asked, request)?,
        memory_mib: asked.memory_mib.min(MAX_MEMORY_MIB),
        timeout_ms: asked.timeout_ms.min(MAX_TIMEOUT_MS),
    })
}

/// The requested hosts the operator approved, in the manifest's order, lower case.
fn granted_hosts(
    asked: &Capabilities,
    request: &GrantRequest,
) -> Result<Vec<String>, RegistryError> {
    let asked_hosts: Vec<String> = asked
        .outbound_hosts
        .iter()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    let approved: Vec<String> = request
        .outbound_hosts
        .iter()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    if let Some(host) = approved.iter().find(|h| !asked_hosts.contains(h)) {
        let requested = if asked_hosts.is_empty() {
            "nothing".to_owned()
        } else {
            asked_hosts.join(", ")
        };
        return Err(RegistryError::HostNotRequested {
            host: host.clone(),
            requested,
        });
    }
    let mut granted: Vec<String> = Vec::new();
    for host in asked_hosts {
        if (request.requested || approved.contains(&host)) && !granted.contains(&host) {
            granted.push(host);
        }
    }
    Ok(granted)
}

fn check_namespace(namespace: &str) -> Result<(), RegistryError> {
    let ok = (1..=MAX_NAMESPACE_BYTES).contains(&namespace.len())
        && !namespace.chars().any(char::is_control);
    if ok {
        Ok(())
    } else {
        Err(RegistryError::InvalidNamespace(
            namespace.escape_debug().to_string(),
        ))
    }
}

/// `namespace NUL name`: namespaces hold no NUL, so a prefix scan of `namespace NUL` lists
/// exactly one namespace.
fn entry_key(namespace: &str, name: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(namespace.len() + 1 + name.len());
    key.extend_from_slice(namespace.as_bytes());
    key.push(0);
    key.extend_from_slice(name.as_bytes());
    key
}

fn encode(entry: &Entry) -> Result<Vec<u8>, RegistryError> {
    serde_json::to_vec(entry)
        .map_err(|e| RegistryError::Corrupt(format!("cannot encode an entry: {e}")))
}

fn decode(key: &[u8], value: &[u8]) -> Result<Entry, RegistryError> {
    serde_json::from_slice(value).map_err(|e| {
        RegistryError::Corrupt(format!(
            "entry `{}` is unreadable: {e}",
            String::from_utf8_lossy(key).replace('\0', "/")
        ))
    })
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn now() -> u64 {
    // A clock before 1970 is a misconfiguration, not a reason to fail an install.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(kind: PluginKind, model: bool, hosts: &[&str]) -> Manifest {
        Manifest {
            name: "p".into(),
            version: "1.0.0".into(),
            kind,
            description: String::new(),
            config_schema: serde_json::json!({}),
            capabilities: Capabilities {
                model,
                outbound_hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
                memory_mib: 4096,
                timeout_ms: 100,
            },
            context: 0,
        }
    }

    fn request(model: bool, hosts: &[&str], requested: bool) -> GrantRequest {
        GrantRequest {
            model,
            outbound_hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
            requested,
        }
    }

    #[test]
    fn grants_only_what_is_asked_and_approved() {
        let validator = manifest(PluginKind::Validator, true, &[]);
        assert!(
            !grant(&validator, &GrantRequest::default())
                .expect("grant")
                .model
        );
        assert!(
            grant(&validator, &request(true, &[], false))
                .expect("grant")
                .model
        );
        assert!(
            grant(&validator, &request(false, &[], true))
                .expect("grant")
                .model
        );
        let no_model = manifest(PluginKind::Validator, false, &[]);
        assert!(
            !grant(&no_model, &request(true, &[], true))
                .expect("grant")
                .model
        );

        let provider = manifest(
            PluginKind::Provider,
            false,
            &["api.openai.com", "Example.org:8443"],
        );
        let g = grant(&provider, &request(false, &["API.openai.com"], false)).expect("grant");
        assert_eq!(g.outbound_hosts, ["api.openai.com"]);
        let g = grant(&provider, &request(false, &[], true)).expect("grant");
        assert_eq!(g.outbound_hosts, ["api.openai.com", "example.org:8443"]);
        assert!(
            grant(&provider, &GrantRequest::default())
                .expect("grant")
                .outbound_hosts
                .is_empty()
        );
        let err = grant(&provider, &request(false, &["evil.com"], true)).expect_err("unrequested");
        assert!(err.to_string().contains("evil.com"), "{err}");
    }

    #[test]
    fn clamps_memory_and_timeout_to_the_host_maxima() {
        let mut m = manifest(PluginKind::Validator, false, &[]);
        m.capabilities.timeout_ms = 10 * MAX_TIMEOUT_MS;
        let g = grant(&m, &GrantRequest::default()).expect("grant");
        assert_eq!(
            (g.memory_mib, g.timeout_ms),
            (MAX_MEMORY_MIB, MAX_TIMEOUT_MS)
        );
        let limits = g.limits(&Limits::default());
        assert_eq!(limits.memory_bytes, (MAX_MEMORY_MIB as usize) << 20);
        assert_eq!(
            limits.call_deadline,
            Duration::from_millis(u64::from(MAX_TIMEOUT_MS))
        );
        assert_eq!(limits.table_elements, Limits::default().table_elements);
    }

    #[test]
    fn tells_a_truncated_binary() {
        // A component with one 5-byte custom section.
        let whole = b"\0asm\x0d\0\x01\0\0\x05\x01abcd";
        assert_eq!(truncated_at(whole), None);
        for end in 10..whole.len() {
            assert_eq!(truncated_at(&whole[..end]), Some(whole.len()), "{end}");
        }
        // The size cut off in the middle of its LEB128 encoding.
        assert!(truncated_at(b"\0asm\x0d\0\x01\0\0\x80").is_some());
        assert_eq!(truncated_at(b"garbage, not wasm"), None);
    }

    #[test]
    fn keys_separate_namespaces() {
        assert!(entry_key("a", "bc").starts_with(&entry_key("a", "")));
        assert!(!entry_key("ab", "c").starts_with(&entry_key("a", "")));
        assert!(check_namespace("tenant-42").is_ok());
        for bad in ["", "a\0b", "a\nb", &"x".repeat(129)] {
            assert!(check_namespace(bad).is_err(), "{bad:?}");
        }
    }

    fn open(dir: &Path) -> Registry {
        let runtime = PluginRuntime::new()
            .expect("runtime")
            .with_artifact_dir(None);
        Registry::open(dir, runtime).expect("open")
    }

    #[test]
    fn refuses_what_is_not_a_plugin_and_stores_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let registry = open(dir.path());
        for (bytes, expected) in [
            (&b"not wasm at all"[..], "not a WebAssembly binary"),
            (b"\0asm\x01\0\0\0", "core WebAssembly module"),
        ] {
            let err = registry
                .add(SHARED, bytes, &GrantRequest::default(), false)
                .expect_err("refused");
            assert!(err.to_string().contains(expected), "{err}");
        }
        // A well-formed component built without the SDK: no API version (checked before the
        // manifest, so nothing of it is trusted).
        let err = registry
            .add(
                SHARED,
                b"\0asm\x0d\0\x01\0",
                &GrantRequest::default(),
                false,
            )
            .expect_err("refused");
        assert!(
            err.to_string()
                .contains("declares no textnlp:plugin API version"),
            "{err}"
        );
        assert!(registry.list(SHARED).expect("list").is_empty());
        assert_eq!(registry.components.len(), 0);
        assert!(matches!(
            registry.remove(SHARED, "nothing"),
            Err(RegistryError::NotInstalled(_))
        ));
        assert_eq!(registry.get(SHARED, "nothing").expect("get"), None);
        assert_eq!(
            registry.component(&sha256_hex(b"x")).expect("component"),
            None
        );
    }

    /// Entries written directly (the checks of `add` are covered by the CLI tests, which have
    /// real components): garbage collection and listing per namespace.
    #[test]
    fn collects_components_no_entry_refers_to() {
        let dir = tempfile::tempdir().expect("tempdir");
        let registry = open(dir.path());
        let bytes = b"component bytes";
        let sha = sha256_hex(bytes);
        let entry = Entry {
            namespace: "t1".into(),
            name: "p".into(),
            kind: PluginKind::Validator,
            version: "1.0.0".into(),
            api_version: "0.1.0".into(),
            sha256: sha.clone(),
            manifest: manifest(PluginKind::Validator, false, &[]),
            grants: grant(
                &manifest(PluginKind::Validator, false, &[]),
                &GrantRequest::default(),
            )
            .expect("grant"),
            installed_at: now(),
        };
        registry
            .components
            .insert(&sha, &bytes[..])
            .expect("insert");
        for namespace in ["t1", "t2"] {
            let entry = Entry {
                namespace: namespace.into(),
                ..entry.clone()
            };
            registry
                .plugins
                .insert(entry_key(namespace, "p"), encode(&entry).expect("encode"))
                .expect("insert");
        }
        registry
            .components
            .insert("orphan", &b"x"[..])
            .expect("insert");
        assert_eq!(
            registry.list("t1").expect("list"),
            std::slice::from_ref(&entry)
        );
        assert!(registry.list("t").expect("list").is_empty());

        registry.remove("t1", "p").expect("remove");
        assert_eq!(
            registry.component(&sha).expect("component").as_deref(),
            Some(&bytes[..])
        );
        assert!(registry.components.get("orphan").expect("get").is_none());
        registry.remove("t2", "p").expect("remove");
        assert_eq!(registry.component(&sha).expect("component"), None);

        // A component that does not match its key is reported, not handed out.
        registry
            .components
            .insert(&sha, &b"tampered"[..])
            .expect("insert");
        assert!(matches!(
            registry.component(&sha),
            Err(RegistryError::Corrupt(_))
        ));
    }
}
