//! Tenants, API keys, scopes, limits, usage and the audit log: who may do what on this host,
//! and how much.
//!
//! - [`keys`]: the key format (`tnlp_<id>_<secret>`), generation and argon2id hashing;
//! - [`store`]: the sled trees (tenants, keys, usage, audit) in the host's state database;
//! - [`limits`]: per-tenant token buckets and sequence counts, in memory;
//! - [`Tenancy`]: what the API uses: authenticate a bearer key, manage tenants and keys,
//!   charge usage, write the audit log.
//!
//! Invariants: a key is stored only as its argon2id hash (the full key exists once, in the
//! answer that created it); a revoked or expired key is refused by the next request; every
//! tenant's data and plugins live under its id, which no client chooses for another tenant.

pub mod keys;
pub mod limits;
pub mod store;

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::plugins::PluginScope;
use crate::plugins::registry::{MAX_MEMORY_MIB, MAX_TIMEOUT_MS, SHARED};
pub use limits::{Admission, Limiter, RateView, Refusal};
pub use store::TenantStore;

/// The operator's own tenant: the bootstrap admin key and the CLI's jobs belong to it.
pub const OPERATOR: &str = "operator";
/// Longest tenant id.
const MAX_TENANT_ID: usize = 64;

/// What a key may do. `admin` may do everything.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Scope {
    /// Manage tenants, keys, shared plugins and grants; read the audit log and all usage.
    #[serde(rename = "admin")]
    Admin,
    /// Completions, chat, `/v1/generate`, tokenize, validate.
    #[serde(rename = "generate")]
    Generate,
    /// Dataset jobs, files and batches.
    #[serde(rename = "jobs")]
    Jobs,
    /// Install and remove the tenant's own plugins.
    #[serde(rename = "plugins:install")]
    PluginsInstall,
    /// Read the tenant's jobs, records, files, batches, plugins and usage.
    #[serde(rename = "read")]
    Read,
}

impl Scope {
    pub const ALL: [Scope; 5] = [
        Scope::Admin,
        Scope::Generate,
        Scope::Jobs,
        Scope::PluginsInstall,
        Scope::Read,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Admin => "admin",
            Scope::Generate => "generate",
            Scope::Jobs => "jobs",
            Scope::PluginsInstall => "plugins:install",
            Scope::Read => "read",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = TenancyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| {
                TenancyError::Invalid(format!(
                    "unknown scope `{s}` (expected one of: admin, generate, jobs, plugins:install, read)"
                ))
            })
    }
}

/// A tenant's limits. `None` rates are unlimited.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantLimits {
    /// API requests per minute (a token bucket: bursts up to this many).
    #[serde(default)]
    pub requests_per_minute: Option<u64>,
    /// Tokens per minute: prompt + max_tokens of each generation request, the unused part
    /// given back when it ends.
    #[serde(default)]
    pub tokens_per_minute: Option<u64>,
    /// Sequences (choices) generating at once.
    pub max_concurrent_sequences: u32,
    /// Records one dataset job may ask for.
    pub max_job_records: u64,
    /// Linear memory of one of the tenant's plugin instances (caps what grants allow).
    pub plugin_memory_mib: u32,
    /// Deadline of one plugin call (caps what grants allow).
    pub plugin_timeout_ms: u32,
}

impl Default for TenantLimits {
    fn default() -> Self {
        TenantLimits {
            requests_per_minute: Some(600),
            tokens_per_minute: Some(200_000),
            max_concurrent_sequences: 32,
            max_job_records: 10_000,
            plugin_memory_mib: 256,
            plugin_timeout_ms: 30_000,
        }
    }
}

impl TenantLimits {
    /// The operator's limits: only the host's own caps.
    pub fn operator() -> Self {
        TenantLimits {
            requests_per_minute: None,
            tokens_per_minute: None,
            max_concurrent_sequences: 4096,
            max_job_records: 10_000_000,
            plugin_memory_mib: MAX_MEMORY_MIB,
            plugin_timeout_ms: MAX_TIMEOUT_MS,
        }
    }
}

/// A customer of the host.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tenant {
    /// `[a-z0-9][a-z0-9_-]*`, at most 64 bytes; names the tenant's plugin namespace.
    pub id: String,
    pub name: String,
    pub limits: TenantLimits,
    /// Unix seconds.
    pub created_at: u64,
}

impl Tenant {
    /// Whose plugins this tenant's work sees, capped by its limits.
    pub fn plugin_scope(&self) -> PluginScope {
        PluginScope {
            tenant: self.id.clone(),
            memory_mib: self.limits.plugin_memory_mib,
            timeout_ms: self.limits.plugin_timeout_ms,
        }
    }
}

/// An API key as stored: its argon2id hash, never the key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApiKey {
    /// The public part of the key (`tnlp_<id>_...`).
    pub id: String,
    pub tenant: String,
    pub name: String,
    pub scopes: BTreeSet<Scope>,
    /// argon2id PHC string of the whole key.
    pub hash: String,
    pub created_at: u64,
    #[serde(default)]
    pub expires_at: Option<u64>,
    #[serde(default)]
    pub revoked_at: Option<u64>,
}

impl ApiKey {
    /// The key as lists show it: everything but the hash.
    pub fn summary(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "prefix": keys::visible_prefix(&self.id),
            "tenant": self.tenant,
            "name": self.name,
            "scopes": self.scopes,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "revoked_at": self.revoked_at,
            "active": self.usable(now()).is_ok(),
        })
    }

    /// Whether the key may be used at `now` (Unix seconds).
    fn usable(&self, now: u64) -> Result<(), AuthError> {
        if self.revoked_at.is_some() {
            return Err(AuthError::Revoked);
        }
        if self.expires_at.is_some_and(|at| at <= now) {
            return Err(AuthError::Expired);
        }
        Ok(())
    }
}

/// What a tenant (or one of its keys) has used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub requests: u64,
    /// Requests refused with 429.
    pub rate_limited: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Records accepted into the tenant's dataset jobs.
    pub job_records: u64,
}

impl Usage {
    pub fn add(&mut self, other: &Usage) {
        self.requests += other.requests;
        self.rate_limited += other.rate_limited;
        self.prompt_tokens += other.prompt_tokens;
        self.completion_tokens += other.completion_tokens;
        self.job_records += other.job_records;
    }
}

/// One audit-log entry: who did what, to what, when, and whether it was allowed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Position in the log (assigned when appended).
    pub seq: u64,
    /// Unix seconds.
    pub at: u64,
    /// `tnlp_<id>` of the key that acted, `cli`, or `anonymous`.
    pub actor: String,
    /// The tenant acted on or for.
    pub tenant: Option<String>,
    /// `key.create`, `key.revoke`, `tenant.create`, `plugin.install`, `auth.failure`, ...
    pub action: String,
    pub target: String,
    /// `ok` or `denied`.
    pub outcome: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// An authenticated request's identity.
#[derive(Clone, Debug)]
pub struct Caller {
    pub tenant: Tenant,
    pub key_id: String,
    pub scopes: BTreeSet<Scope>,
}

impl Caller {
    /// Whether the key has `scope` (`admin` has every scope).
    pub fn allows(&self, scope: Scope) -> bool {
        self.scopes.contains(&Scope::Admin) || self.scopes.contains(&scope)
    }

    /// The audit log's name for this caller.
    pub fn actor(&self) -> String {
        keys::visible_prefix(&self.key_id)
    }

    /// Whom the engine's fair queue charges this caller's work to: its tenant.
    pub fn client(&self) -> String {
        format!("tenant:{}", self.tenant.id)
    }
}

/// Why a bearer key was not accepted (all answered 401).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no API key: send `Authorization: Bearer tnlp_...`")]
    Missing,
    #[error("the Authorization header is not `Bearer <key>` with a textnlp key")]
    Malformed,
    #[error("invalid API key")]
    Invalid,
    #[error("this API key was revoked")]
    Revoked,
    #[error("this API key has expired")]
    Expired,
}

/// What can go wrong managing tenants and keys.
#[derive(Debug, thiserror::Error)]
pub enum TenancyError {
    #[error("tenant store: {0}")]
    Store(#[from] sled::Error),
    #[error("tenant store is corrupt: {0}")]
    Corrupt(String),
    #[error("a tenant `{0}` exists already")]
    TenantExists(String),
    #[error("no tenant `{0}`")]
    NoTenant(String),
    #[error("no API key `{0}`")]
    NoKey(String),
    #[error("{0}")]
    Invalid(String),
}

/// Tenants, keys, limits, usage and audit, for one host process.
pub struct Tenancy {
    store: TenantStore,
    limiter: Arc<Limiter>,
    /// Fingerprints of keys verified since start, by key id: argon2 runs once per key and
    /// process, not per request.
    verified: Mutex<HashMap<String, [u8; 32]>>,
}

impl Tenancy {
    /// The tenancy trees of the host's state database.
    pub fn open(db: &sled::Db) -> Result<Self, TenancyError> {
        Ok(Tenancy {
            store: TenantStore::open(db)?,
            limiter: Arc::default(),
            verified: Mutex::default(),
        })
    }

    pub fn store(&self) -> &TenantStore {
        &self.store
    }

    pub fn limiter(&self) -> &Arc<Limiter> {
        &self.limiter
    }

    /// Makes sure the operator tenant exists and has an admin key: `given` (from the
    /// environment or a file, for automated deployments) is installed if new; with none
    /// given and no usable admin key, a new one is made and returned, to be shown once.
    pub fn bootstrap(&self, given: Option<&str>) -> Result<Option<String>, TenancyError> {
        if self.store.tenant(OPERATOR)?.is_none() {
            let operator = Tenant {
                id: OPERATOR.into(),
                name: "the operator".into(),
                limits: TenantLimits::operator(),
                created_at: now(),
            };
            self.store.put_tenant(&operator, false)?;
        }
        let admin = BTreeSet::from([Scope::Admin]);
        if let Some(key) = given {
            let presented = keys::parse(key.trim()).ok_or_else(|| {
                TenancyError::Invalid(
                    "the bootstrap admin key must look like tnlp_<12 hex>_<48 hex> \
                     (`textnlp key generate` prints one)"
                        .into(),
                )
            })?;
            return match self.store.key(presented.id)? {
                Some(stored) if keys::verify(presented.full, &stored.hash) => {
                    stored.usable(now()).map_err(|e| {
                        TenancyError::Invalid(format!("the bootstrap admin key: {e}"))
                    })?;
                    Ok(None)
                }
                Some(_) => Err(TenancyError::Invalid(format!(
                    "another key has the bootstrap key's id {}",
                    presented.id
                ))),
                None => {
                    let stored = self.store_key(
                        presented.id,
                        presented.full,
                        OPERATOR,
                        "bootstrap",
                        admin,
                        None,
                    )?;
                    self.audit(
                        "system",
                        Some(OPERATOR),
                        "key.create",
                        &stored.id,
                        "ok",
                        Some("bootstrap key from the environment"),
                    );
                    Ok(None)
                }
            };
        }
        let has_admin = self
            .store
            .keys(Some(OPERATOR))?
            .iter()
            .any(|k| k.scopes.contains(&Scope::Admin) && k.usable(now()).is_ok());
        if has_admin {
            return Ok(None);
        }
        let (id, full) = keys::generate();
        self.store_key(&id, &full, OPERATOR, "bootstrap", admin, None)?;
        self.audit(
            "system",
            Some(OPERATOR),
            "key.create",
            &id,
            "ok",
            Some("bootstrap key"),
        );
        Ok(Some(full))
    }

    /// Creates a tenant.
    pub fn create_tenant(
        &self,
        actor: &str,
        id: &str,
        name: &str,
        limits: TenantLimits,
    ) -> Result<Tenant, TenancyError> {
        check_tenant_id(id)?;
        let tenant = Tenant {
            id: id.to_owned(),
            name: name.to_owned(),
            limits,
            created_at: now(),
        };
        self.store.put_tenant(&tenant, true)?;
        self.audit(actor, Some(id), "tenant.create", id, "ok", None);
        Ok(tenant)
    }

    /// Changes a tenant's limits (effective at its next request).
    pub fn set_limits(
        &self,
        actor: &str,
        id: &str,
        limits: TenantLimits,
    ) -> Result<Tenant, TenancyError> {
        let mut tenant = self.tenant(id)?;
        tenant.limits = limits;
        self.store.put_tenant(&tenant, false)?;
        self.audit(actor, Some(id), "tenant.update", id, "ok", None);
        Ok(tenant)
    }

    /// Deletes a tenant and revokes its keys (its plugins are the caller's to remove).
    pub fn delete_tenant(&self, actor: &str, id: &str) -> Result<Tenant, TenancyError> {
        if id == OPERATOR {
            return Err(TenancyError::Invalid(
                "the operator tenant cannot be deleted".into(),
            ));
        }
        let tenant = self.tenant(id)?;
        for key in self.store.keys(Some(id))? {
            if key.revoked_at.is_none() {
                self.revoke_key(actor, &key.id)?;
            }
        }
        self.store.delete_tenant(id)?;
        self.audit(actor, Some(id), "tenant.delete", id, "ok", None);
        Ok(tenant)
    }

    pub fn tenant(&self, id: &str) -> Result<Tenant, TenancyError> {
        self.store
            .tenant(id)?
            .ok_or_else(|| TenancyError::NoTenant(id.to_owned()))
    }

    /// Creates a key for `tenant`; returns it as stored and the full key (shown once).
    pub fn create_key(
        &self,
        actor: &str,
        tenant: &str,
        name: &str,
        scopes: BTreeSet<Scope>,
        expires_at: Option<u64>,
    ) -> Result<(ApiKey, String), TenancyError> {
        self.tenant(tenant)?;
        if scopes.is_empty() {
            return Err(TenancyError::Invalid(
                "a key needs at least one scope".into(),
            ));
        }
        let (id, full) = keys::generate();
        let key = self.store_key(&id, &full, tenant, name, scopes, expires_at)?;
        let detail = key
            .scopes
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(",");
        self.audit(
            actor,
            Some(tenant),
            "key.create",
            &key.id,
            "ok",
            Some(&detail),
        );
        Ok((key, full))
    }

    fn store_key(
        &self,
        id: &str,
        full: &str,
        tenant: &str,
        name: &str,
        scopes: BTreeSet<Scope>,
        expires_at: Option<u64>,
    ) -> Result<ApiKey, TenancyError> {
        let key = ApiKey {
            id: id.to_owned(),
            tenant: tenant.to_owned(),
            name: name.to_owned(),
            scopes,
            hash: keys::hash(full),
            created_at: now(),
            expires_at,
            revoked_at: None,
        };
        self.store.put_key(&key)?;
        Ok(key)
    }

    /// Revokes a key: refused from the next request on.
    pub fn revoke_key(&self, actor: &str, id: &str) -> Result<ApiKey, TenancyError> {
        let mut key = self
            .store
            .key(id)?
            .ok_or_else(|| TenancyError::NoKey(id.to_owned()))?;
        if key.revoked_at.is_none() {
            key.revoked_at = Some(now());
            self.store.put_key(&key)?;
        }
        self.lock_verified().remove(id);
        self.audit(actor, Some(&key.tenant), "key.revoke", id, "ok", None);
        Ok(key)
    }

    /// The caller a bearer key stands for. Runs argon2 the first time a key is seen (call it
    /// off the async runtime).
    pub fn authenticate(&self, key: &str) -> Result<Caller, AuthError> {
        let presented = keys::parse(key).ok_or(AuthError::Invalid)?;
        let stored = self
            .store
            .key(presented.id)
            .ok()
            .flatten()
            .ok_or(AuthError::Invalid)?;
        let fingerprint = keys::fingerprint(presented.full);
        let known = self
            .lock_verified()
            .get(presented.id)
            .is_some_and(|f| bool::from(f.ct_eq(&fingerprint)));
        if !known {
            if !keys::verify(presented.full, &stored.hash) {
                return Err(AuthError::Invalid);
            }
            self.lock_verified()
                .insert(presented.id.to_owned(), fingerprint);
        }
        // Checked on every request, after the secret: revocation and expiry act at once, and
        // only a key's holder learns that it was revoked.
        stored.usable(now())?;
        let tenant = self
            .store
            .tenant(&stored.tenant)
            .ok()
            .flatten()
            .ok_or(AuthError::Revoked)?;
        Ok(Caller {
            tenant,
            key_id: stored.id,
            scopes: stored.scopes,
        })
    }

    /// Adds to the usage of a tenant's key (a failure is logged: usage must not fail a
    /// request that already ran).
    pub fn account(&self, tenant: &str, key: &str, delta: &Usage) {
        if let Err(e) = self.store.add_usage(tenant, key, delta) {
            tracing::error!("usage of {tenant} not recorded: {e}");
        }
    }

    /// Appends a change to the audit log, durably (a failure is logged loudly; the change
    /// itself stands).
    pub fn audit(
        &self,
        actor: &str,
        tenant: Option<&str>,
        action: &str,
        target: &str,
        outcome: &str,
        detail: Option<&str>,
    ) {
        self.append(actor, tenant, action, target, outcome, detail, true);
    }

    /// Appends a refused request to the audit log, without waiting for the disk: failures
    /// come as fast as anyone can send them.
    pub fn audit_failure(
        &self,
        actor: &str,
        tenant: Option<&str>,
        action: &str,
        target: &str,
        detail: &str,
    ) {
        self.append(actor, tenant, action, target, "denied", Some(detail), false);
    }

    #[allow(clippy::too_many_arguments)]
    fn append(
        &self,
        actor: &str,
        tenant: Option<&str>,
        action: &str,
        target: &str,
        outcome: &str,
        detail: Option<&str>,
        flush: bool,
    ) {
        let event = AuditEvent {
            seq: 0,
            at: now(),
            actor: actor.to_owned(),
            tenant: tenant.map(str::to_owned),
            action: action.to_owned(),
            target: target.to_owned(),
            outcome: outcome.to_owned(),
            detail: detail.map(str::to_owned),
        };
        if let Err(e) = self.store.append_audit(event, flush) {
            tracing::error!("audit log not written ({action} {target}): {e}");
        }
    }

    fn lock_verified(&self) -> MutexGuard<'_, HashMap<String, [u8; 32]>> {
        self.verified.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A tenant id names a plugin namespace and appears in metrics: short, lower case, and never
/// the shared namespace.
pub fn check_tenant_id(id: &str) -> Result<(), TenancyError> {
    let valid = !id.is_empty()
        && id.len() <= MAX_TENANT_ID
        && id.as_bytes()[0].is_ascii_alphanumeric()
        && id
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-'));
    if !valid || id == SHARED {
        return Err(TenancyError::Invalid(format!(
            "invalid tenant id `{id}`: 1-{MAX_TENANT_ID} of a-z, 0-9, `_`, `-`, starting with a letter or digit, not `{SHARED}`"
        )));
    }
    Ok(())
}

/// Unix seconds now.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenancy() -> (tempfile::TempDir, Tenancy) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        (dir, Tenancy::open(&db).unwrap())
    }

    #[test]
    fn keys_authenticate_until_revoked_or_expired() {
        let (_dir, t) = tenancy();
        t.create_tenant("cli", "acme", "Acme", TenantLimits::default())
            .unwrap();
        let scopes = BTreeSet::from([Scope::Generate]);
        let (key, full) = t
            .create_key("cli", "acme", "ci", scopes.clone(), None)
            .unwrap();
        let caller = t.authenticate(&full).unwrap();
        assert_eq!(caller.tenant.id, "acme");
        assert!(caller.allows(Scope::Generate) && !caller.allows(Scope::Jobs));
        // Cached: the second call does not need argon2 but still checks the secret.
        assert!(t.authenticate(&full).is_ok());
        let last = if full.ends_with('0') { '1' } else { '0' };
        let wrong = format!("{}{last}", &full[..full.len() - 1]);
        assert_eq!(t.authenticate(&wrong).unwrap_err(), AuthError::Invalid);
        t.revoke_key("cli", &key.id).unwrap();
        assert_eq!(t.authenticate(&full).unwrap_err(), AuthError::Revoked);
        let (_, expired) = t
            .create_key("cli", "acme", "old", scopes, Some(now() - 1))
            .unwrap();
        assert_eq!(t.authenticate(&expired).unwrap_err(), AuthError::Expired);
        assert_eq!(
            t.authenticate("sk-whatever").unwrap_err(),
            AuthError::Invalid
        );
    }

    #[test]
    fn bootstrap_makes_one_admin_key_or_installs_the_given_one() {
        let (_dir, t) = tenancy();
        let first = t.bootstrap(None).unwrap().expect("a new admin key");
        assert!(t.authenticate(&first).unwrap().allows(Scope::Admin));
        assert_eq!(t.bootstrap(None).unwrap(), None, "only on first start");
        let (_, given) = keys::generate();
        assert_eq!(t.bootstrap(Some(&given)).unwrap(), None);
        assert!(t.authenticate(&given).unwrap().allows(Scope::Admin));
        assert!(t.bootstrap(Some("not-a-key")).is_err());
        let audit = t.store().audit(0, 100, |_| true).unwrap();
        assert_eq!(audit.len(), 2);
        assert!(audit.iter().all(|e| e.action == "key.create"));
    }

    #[test]
    fn tenant_ids_are_checked_and_unique() {
        let (_dir, t) = tenancy();
        for bad in ["", "Acme", "shared", "-x", "a b", &"x".repeat(65)] {
            assert!(
                t.create_tenant("cli", bad, "", TenantLimits::default())
                    .is_err(),
                "{bad}"
            );
        }
        t.create_tenant("cli", "a-1", "", TenantLimits::default())
            .unwrap();
        assert!(matches!(
            t.create_tenant("cli", "a-1", "", TenantLimits::default()),
            Err(TenancyError::TenantExists(_))
        ));
    }

    #[test]
    fn usage_adds_up_per_key() {
        let (_dir, t) = tenancy();
        let one = Usage {
            requests: 1,
            prompt_tokens: 10,
            ..Usage::default()
        };
        t.account("a", "k1", &one);
        t.account("a", "k1", &one);
        t.account("a", "k2", &one);
        t.account("b", "k3", &one);
        let a = t.store().usage(Some("a")).unwrap();
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].2.requests, 2);
        assert_eq!(a[0].2.prompt_tokens, 20);
        assert_eq!(t.store().usage(None).unwrap().len(), 3);
    }
}
