//! The tenancy trees of the host's state database (the one the plugin registry lives in):
//!
//! - `tenants`: [`Tenant`] by id;
//! - `api_keys`: [`ApiKey`] (hash only) by key id;
//! - `usage`: [`Usage`] by `tenant \0 key id` (job work is charged to the key that created
//!   the job);
//! - `audit`: [`AuditEvent`] by a big-endian sequence number: append-only, nothing deletes
//!   from it.
//!
//! Writes that change who may do what (tenants, keys) are flushed before they return.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{ApiKey, AuditEvent, TenancyError, Tenant, Usage};

/// Typed access to the tenancy trees.
#[derive(Clone)]
pub struct TenantStore {
    db: sled::Db,
    tenants: sled::Tree,
    keys: sled::Tree,
    usage: sled::Tree,
    audit: sled::Tree,
}

impl TenantStore {
    /// The tenancy trees of `db` (created if missing).
    pub fn open(db: &sled::Db) -> Result<Self, TenancyError> {
        Ok(TenantStore {
            db: db.clone(),
            tenants: db.open_tree("tenants")?,
            keys: db.open_tree("api_keys")?,
            usage: db.open_tree("usage")?,
            audit: db.open_tree("audit")?,
        })
    }

    pub fn tenant(&self, id: &str) -> Result<Option<Tenant>, TenancyError> {
        get(&self.tenants, id)
    }

    pub fn tenants(&self) -> Result<Vec<Tenant>, TenancyError> {
        all(&self.tenants)
    }

    /// Stores `tenant`; with `create`, only if no tenant has its id.
    pub fn put_tenant(&self, tenant: &Tenant, create: bool) -> Result<(), TenancyError> {
        let value = serde_json::to_vec(tenant).expect("a tenant is JSON");
        if create {
            self.tenants
                .compare_and_swap(&tenant.id, None::<&[u8]>, Some(value))?
                .map_err(|_| TenancyError::TenantExists(tenant.id.clone()))?;
        } else {
            self.tenants.insert(&tenant.id, value)?;
        }
        self.db.flush()?;
        Ok(())
    }

    pub fn delete_tenant(&self, id: &str) -> Result<(), TenancyError> {
        self.tenants.remove(id)?;
        self.db.flush()?;
        Ok(())
    }

    pub fn key(&self, id: &str) -> Result<Option<ApiKey>, TenancyError> {
        get(&self.keys, id)
    }

    /// Every key (of one tenant, if given).
    pub fn keys(&self, tenant: Option<&str>) -> Result<Vec<ApiKey>, TenancyError> {
        Ok(all::<ApiKey>(&self.keys)?
            .into_iter()
            .filter(|k| tenant.is_none_or(|t| k.tenant == t))
            .collect())
    }

    pub fn put_key(&self, key: &ApiKey) -> Result<(), TenancyError> {
        self.keys
            .insert(&key.id, serde_json::to_vec(key).expect("a key is JSON"))?;
        self.db.flush()?;
        Ok(())
    }

    /// Adds `delta` to the usage of (`tenant`, `key`).
    pub fn add_usage(&self, tenant: &str, key: &str, delta: &Usage) -> Result<(), TenancyError> {
        let id = usage_key(tenant, key);
        self.usage.update_and_fetch(&id, |old| {
            let mut usage: Usage = old
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or_default();
            usage.add(delta);
            Some(serde_json::to_vec(&usage).expect("usage is JSON"))
        })?;
        Ok(())
    }

    /// Usage by key, of one tenant or of all: `(tenant, key id, usage)`.
    pub fn usage(
        &self,
        tenant: Option<&str>,
    ) -> Result<Vec<(String, String, Usage)>, TenancyError> {
        let prefix = tenant.map_or_else(Vec::new, |t| usage_key(t, "").into_bytes());
        self.usage
            .scan_prefix(prefix)
            .map(|item| {
                let (k, v) = item?;
                let k = String::from_utf8_lossy(&k).into_owned();
                let (tenant, key) = k.split_once('\0').unwrap_or((&k, ""));
                let usage = serde_json::from_slice(&v)
                    .map_err(|e| TenancyError::Corrupt(format!("usage of {tenant}: {e}")))?;
                Ok((tenant.to_owned(), key.to_owned(), usage))
            })
            .collect()
    }

    /// Appends `event` to the audit log; with `flush`, durably before returning (sled
    /// flushes the rest within half a second).
    pub fn append_audit(&self, mut event: AuditEvent, flush: bool) -> Result<(), TenancyError> {
        // From 1, so `after=0` (the default) lists from the start.
        let seq = self.db.generate_id()? + 1;
        event.seq = seq;
        self.audit.insert(
            seq.to_be_bytes(),
            serde_json::to_vec(&event).expect("an event is JSON"),
        )?;
        if flush {
            self.db.flush()?;
        }
        Ok(())
    }

    /// Audit events after sequence number `after`, oldest first, matching `keep`, at most
    /// `limit`.
    pub fn audit(
        &self,
        after: u64,
        limit: usize,
        keep: impl Fn(&AuditEvent) -> bool,
    ) -> Result<Vec<AuditEvent>, TenancyError> {
        let mut events = Vec::new();
        for item in self.audit.range((after + 1).to_be_bytes()..) {
            let (_, v) = item?;
            let event: AuditEvent = serde_json::from_slice(&v)
                .map_err(|e| TenancyError::Corrupt(format!("audit event: {e}")))?;
            if keep(&event) {
                events.push(event);
                if events.len() == limit {
                    break;
                }
            }
        }
        Ok(events)
    }
}

fn usage_key(tenant: &str, key: &str) -> String {
    format!("{tenant}\0{key}")
}

fn get<T: DeserializeOwned>(tree: &sled::Tree, id: &str) -> Result<Option<T>, TenancyError> {
    tree.get(id)?
        .map(|v| {
            serde_json::from_slice(&v).map_err(|e| TenancyError::Corrupt(format!("{id}: {e}")))
        })
        .transpose()
}

fn all<T: DeserializeOwned + Serialize>(tree: &sled::Tree) -> Result<Vec<T>, TenancyError> {
    tree.iter()
        .map(|item| {
            let (k, v) = item?;
            serde_json::from_slice(&v)
                .map_err(|e| TenancyError::Corrupt(format!("{}: {e}", String::from_utf8_lossy(&k))))
        })
        .collect()
}
