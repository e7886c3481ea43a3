//! Exact and near-duplicate detection: datatrove's MinHash deduplication with every LSH
//! candidate verified by exact Jaccard.
//!
//! Exact duplicates share their text after lowercasing and whitespace normalization
//! ([`exact_key`]). Near duplicates are found as in datatrove's MinHash deduplication (same text
//! normalization, word 5-gram shingles, 14 LSH bands of 8 MinHash values, 64-bit xxHash
//! shingles, `(a x + b) mod 2^61 - 1` permutations; see [`minhash`] for the differences), except
//! that each LSH candidate pair is verified: it only counts when the exact Jaccard similarity of
//! the two shingle sets reaches the threshold, so a match is never one that LSH made by chance.
//!
//! Two ways to use it:
//! - [`cluster()`], a whole batch at once (the `dedup` validator): verified pairs are merged with
//!   union-find, so clusters are transitive and the first sample of each is kept.
//! - [`DedupIndex`], a stream (the host's dataset jobs): each text is checked against the texts
//!   kept so far and kept only when it matches none of them (first one wins, like distilabel's
//!   streaming `MinHashDedup`); not transitive.

pub mod cluster;
mod index;
pub mod minhash;
pub mod normalize;

pub use cluster::{Clusters, MAX_HASHES, MAX_SHINGLE_SIZE, NearParams, Role, cluster};
pub use index::{DedupIndex, Duplicate, Fingerprint};
pub use minhash::{Permutations, jaccard, shingles};
pub use normalize::{exact_key, simplify};
