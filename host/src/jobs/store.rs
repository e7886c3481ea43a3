//! Durable job state in sled (`$TEXTNLP_HOME/jobs`).
//!
//! Per job three things are stored:
//! - the job itself (`jobs` tree, JSON): spec, state, provenance, counters;
//! - its **decisions** (`decisions:<id>`, keyed by big-endian record index): for every
//!   candidate index in order, whether it was accepted (with the record) or why not. Indices
//!   `0..n` are decided with no gaps, so `n` is the resume point;
//! - its **candidates** (`candidates:<id>`): generated and validated records not yet decided
//!   (their lower neighbours were still running). A resumed job takes them from here instead
//!   of generating them again.
//!
//! A decision and the job's counters are written in one sled batch per tree and flushed before
//! anyone is told about them, so a `kill -9` loses at most work that was never reported.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{Candidate, Decision, Job};

/// Why the job store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the job store {path} is in use by another textnlp process (sled allows one at a time): {message}"
    )]
    Locked { path: String, message: String },
    #[error("job store: {0}")]
    Sled(#[from] sled::Error),
    #[error("job store: corrupt entry in {tree}: {message}")]
    Corrupt { tree: String, message: String },
}

/// The job database.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    jobs: sled::Tree,
}

impl Store {
    /// Opens (creating) the store at `dir`.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let db = sled::open(dir).map_err(|e| match e {
            sled::Error::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock => {
                StoreError::Locked {
                    path: dir.display().to_string(),
                    message: io.to_string(),
                }
            }
            sled::Error::Io(io) if io.to_string().contains("lock") => StoreError::Locked {
                path: dir.display().to_string(),
                message: io.to_string(),
            },
            other => StoreError::Sled(other),
        })?;
        let jobs = db.open_tree("jobs")?;
        Ok(Store { db, jobs })
    }

    pub fn job(&self, id: &str) -> Result<Option<Job>, StoreError> {
        self.jobs
            .get(id)?
            .map(|bytes| decode("jobs", &bytes))
            .transpose()
    }

    /// Every job, oldest first.
    pub fn jobs(&self) -> Result<Vec<Job>, StoreError> {
        let mut jobs = self
            .jobs
            .iter()
            .map(|entry| decode("jobs", &entry?.1))
            .collect::<Result<Vec<Job>, _>>()?;
        jobs.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok(jobs)
    }

    /// Writes the job and flushes.
    pub fn put_job(&self, job: &Job) -> Result<(), StoreError> {
        self.jobs.insert(job.id.as_bytes(), encode(job))?;
        self.db.flush()?;
        Ok(())
    }

    /// Removes a job and everything stored for it.
    pub fn delete_job(&self, id: &str) -> Result<(), StoreError> {
        self.jobs.remove(id)?;
        self.db.drop_tree(decisions_tree(id))?;
        self.db.drop_tree(candidates_tree(id))?;
        self.db.flush()?;
        Ok(())
    }

    /// Keeps a finished candidate until it is decided (not flushed: losing it costs only its
    /// regeneration).
    pub fn put_candidate(&self, id: &str, candidate: &Candidate) -> Result<(), StoreError> {
        self.db
            .open_tree(candidates_tree(id))?
            .insert(candidate.index.to_be_bytes(), encode(candidate))?;
        Ok(())
    }

    /// Candidates not decided yet, by index.
    pub fn candidates(&self, id: &str) -> Result<Vec<Candidate>, StoreError> {
        let tree = self.db.open_tree(candidates_tree(id))?;
        tree.iter()
            .map(|entry| decode(&candidates_tree(id), &entry?.1))
            .collect()
    }

    /// Commits decisions (consecutive, in index order) with the job's new counters, and
    /// flushes; only then may they be reported.
    pub fn commit(&self, job: &Job, decisions: &[Decision]) -> Result<(), StoreError> {
        let tree = self.db.open_tree(decisions_tree(&job.id))?;
        let candidates = self.db.open_tree(candidates_tree(&job.id))?;
        let mut batch = sled::Batch::default();
        let mut done = sled::Batch::default();
        for decision in decisions {
            batch.insert(&decision.index.to_be_bytes(), encode(decision));
            done.remove(&decision.index.to_be_bytes());
        }
        tree.apply_batch(batch)?;
        self.jobs.insert(job.id.as_bytes(), encode(job))?;
        self.db.flush()?;
        // Decided candidates are dead weight; a crash before this only leaves them to be
        // skipped on resume (their index is below the decided count).
        candidates.apply_batch(done)?;
        Ok(())
    }

    /// Every decision of a job, in index order.
    pub fn decisions(&self, id: &str) -> Result<Vec<Decision>, StoreError> {
        let tree = self.db.open_tree(decisions_tree(id))?;
        tree.iter()
            .map(|entry| decode(&decisions_tree(id), &entry?.1))
            .collect()
    }
}

/// Plain storage for the OpenAI-compatible file and batch objects (`/v1/files`,
/// `/v1/batches`), which run on the same database and durability rules as jobs.
impl Store {
    /// Writes `value` under `key` in `tree` and flushes.
    pub fn put_object<T: Serialize>(
        &self,
        tree: &str,
        key: &str,
        value: &T,
    ) -> Result<(), StoreError> {
        self.db
            .open_tree(tree)?
            .insert(key.as_bytes(), encode(value))?;
        self.db.flush()?;
        Ok(())
    }

    pub fn object<T: for<'de> Deserialize<'de>>(
        &self,
        tree: &str,
        key: &str,
    ) -> Result<Option<T>, StoreError> {
        self.db
            .open_tree(tree)?
            .get(key.as_bytes())?
            .map(|bytes| decode(tree, &bytes))
            .transpose()
    }

    /// Every object of `tree`, in key order.
    pub fn objects<T: for<'de> Deserialize<'de>>(&self, tree: &str) -> Result<Vec<T>, StoreError> {
        self.db
            .open_tree(tree)?
            .iter()
            .map(|entry| decode(tree, &entry?.1))
            .collect()
    }

    /// Stores bytes (a file's content) and flushes.
    pub fn put_bytes(&self, tree: &str, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.db.open_tree(tree)?.insert(key.as_bytes(), bytes)?;
        self.db.flush()?;
        Ok(())
    }

    pub fn bytes(&self, tree: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .db
            .open_tree(tree)?
            .get(key.as_bytes())?
            .map(|b| b.to_vec()))
    }

    /// Commits one numbered result (a batch line) and flushes before it may be counted.
    pub fn put_result<T: Serialize>(
        &self,
        tree: &str,
        index: u64,
        value: &T,
    ) -> Result<(), StoreError> {
        self.db
            .open_tree(tree)?
            .insert(index.to_be_bytes(), encode(value))?;
        self.db.flush()?;
        Ok(())
    }

    /// Every numbered result of `tree`, by number.
    pub fn results<T: for<'de> Deserialize<'de>>(
        &self,
        tree: &str,
    ) -> Result<Vec<(u64, T)>, StoreError> {
        self.db
            .open_tree(tree)?
            .iter()
            .map(|entry| {
                let (key, value) = entry?;
                let index = u64::from_be_bytes(key.as_ref().try_into().map_err(|_| {
                    StoreError::Corrupt {
                        tree: tree.to_owned(),
                        message: "a key is not a record number".into(),
                    }
                })?);
                Ok((index, decode(tree, &value)?))
            })
            .collect()
    }
}

fn decisions_tree(id: &str) -> String {
    format!("decisions:{id}")
}

fn candidates_tree(id: &str) -> String {
    format!("candidates:{id}")
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("job state is JSON")
}

fn decode<T: for<'de> Deserialize<'de>>(tree: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        tree: tree.to_owned(),
        message: e.to_string(),
    })
}
