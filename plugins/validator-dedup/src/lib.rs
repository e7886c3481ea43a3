//! `validator-dedup` (manifest name `dedup`): drops exact and near duplicates within a batch.
//!
//! A thin wrapper over `textnlp_metrics::dedup` (shared with the host's dataset jobs). Exact
//! duplicates share their text after lowercasing and whitespace normalization. Near duplicates
//! are found as in datatrove's MinHash deduplication (same text normalization, word 5-gram
//! shingles, 14 LSH bands of 8 MinHash values, 64-bit xxHash shingles, `(a x + b) mod 2^61 - 1`
//! permutations; see `textnlp_metrics::dedup::minhash` for the differences), except that each
//! LSH candidate pair is verified: it only merges when the exact Jaccard similarity of the two
//! shingle sets reaches `threshold`, so a cluster never holds a pair that LSH matched by chance.
//! Verified pairs are merged with union-find.
//!
//! Settings: `threshold` (0.8), `shingle_size` (5, at most 64), `buckets` (14),
//! `hashes_per_bucket` (8; at most 1024 hashes in all), `seed` (1), `exact_only` (false).
//!
//! Each sample scores `cluster` (index of the first sample of its cluster, which is kept),
//! `exact-duplicate` and `near-duplicate` (0 or 1), and `max-jaccard` (highest verified Jaccard
//! to another member of its cluster; 1 for exact duplicates, 0 when alone). Every member but the
//! first is rejected ("exact duplicate of sample 3", "near duplicate of sample 3 (jaccard
//! 0.86)"). Corpus: `count`, `clusters` (clusters of two or more samples), `exact-duplicates`,
//! `near-duplicates`, `unique` (samples kept).

use serde::Deserialize;
use textnlp_metrics::dedup::{Clusters, NearParams, Role, cluster, minhash};
use textnlp_plugin_sdk::validator::{
    Metric, Report, Sample, SampleResult, Validator, ValidatorError, Verdict,
};

struct Dedup;

textnlp_plugin_sdk::register_validator!(Dedup);

impl Validator for Dedup {
    fn score(samples: Vec<Sample>) -> Result<Report, ValidatorError> {
        let settings = Settings::load()?;
        let texts: Vec<&str> = samples.iter().map(|s| s.text.as_str()).collect();
        Ok(settings.report(&texts))
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Settings {
    threshold: f64,
    shingle_size: usize,
    buckets: usize,
    hashes_per_bucket: usize,
    seed: u64,
    exact_only: bool,
}

impl Default for Settings {
    /// `textnlp_metrics::dedup::NearParams::default()`, datatrove's defaults.
    fn default() -> Settings {
        let NearParams {
            threshold,
            shingle_size,
            buckets,
            hashes_per_bucket,
            seed,
        } = NearParams::default();
        Settings {
            threshold,
            shingle_size,
            buckets,
            hashes_per_bucket,
            seed,
            exact_only: false,
        }
    }
}

impl Settings {
    fn load() -> Result<Settings, ValidatorError> {
        Settings::parse(&textnlp_plugin_sdk::config::raw())
    }

    fn parse(json: &str) -> Result<Settings, ValidatorError> {
        let settings: Settings =
            textnlp_plugin_sdk::config::parse(json).map_err(ValidatorError::InvalidConfig)?;
        // Checked also with `exact_only`, so a bad value never waits for the flag to flip.
        settings
            .params()
            .check()
            .map_err(ValidatorError::InvalidConfig)?;
        Ok(settings)
    }

    fn params(&self) -> NearParams {
        NearParams {
            threshold: self.threshold,
            shingle_size: self.shingle_size,
            buckets: self.buckets,
            hashes_per_bucket: self.hashes_per_bucket,
            seed: self.seed,
        }
    }

    fn near_params(&self) -> Option<NearParams> {
        (!self.exact_only).then(|| self.params())
    }

    fn report(&self, texts: &[&str]) -> Report {
        let clusters = cluster(texts, self.near_params().as_ref());
        let samples: Vec<SampleResult> = (0..texts.len())
            .map(|i| self.sample_result(&clusters, i))
            .collect();
        Report {
            corpus: corpus_metrics(&clusters),
            samples,
        }
    }

    fn sample_result(&self, clusters: &Clusters, i: usize) -> SampleResult {
        let role = &clusters.role[i];
        let flag = |yes: bool| if yes { 1.0 } else { 0.0 };
        SampleResult {
            scores: vec![
                Metric::new("cluster", clusters.cluster[i] as f64),
                Metric::new("exact-duplicate", flag(matches!(role, Role::Exact { .. }))),
                Metric::new("near-duplicate", flag(matches!(role, Role::Near { .. }))),
                Metric::new("max-jaccard", clusters.max_jaccard[i]),
            ],
            verdict: self.verdict(clusters, i),
        }
    }

    fn verdict(&self, clusters: &Clusters, i: usize) -> Verdict {
        match clusters.role[i] {
            Role::Representative => Verdict::keep(),
            Role::Exact { of } => Verdict::reject(format!("exact duplicate of sample {of}")),
            Role::Near { partner, jaccard } => {
                let first = clusters.cluster[i];
                let to_first = minhash::jaccard(&clusters.shingles[i], &clusters.shingles[first]);
                // Clusters are transitive: when the kept sample itself is not similar enough,
                // name the sample that links this one to it.
                if to_first >= self.threshold {
                    Verdict::reject(format!(
                        "near duplicate of sample {first} (jaccard {to_first:.2})"
                    ))
                } else {
                    Verdict::reject(format!(
                        "near duplicate of sample {first} via sample {partner} (jaccard {jaccard:.2})"
                    ))
                }
            }
        }
    }
}

fn corpus_metrics(clusters: &Clusters) -> Vec<Metric> {
    let count = clusters.role.len();
    let count_role = |pick: fn(&Role) -> bool| clusters.role.iter().filter(|r| pick(r)).count();
    let unique = count_role(|r| *r == Role::Representative);
    let exact = count_role(|r| matches!(r, Role::Exact { .. }));
    let near = count_role(|r| matches!(r, Role::Near { .. }));
    // A cluster of two or more samples is one whose first sample has a later member.
    let mut has_members = vec![false; count];
    for (i, &first) in clusters.cluster.iter().enumerate() {
        if first != i {
            has_members[first] = true;
        }
    }
    let clusters_found = has_members.iter().filter(|&&yes| yes).count();
    vec![
        Metric::new("count", count as f64),
        Metric::new("clusters", clusters_found as f64),
        Metric::new("exact-duplicates", exact as f64),
        Metric::new("near-duplicates", near as f64),
        Metric::new("unique", unique as f64),
    ]
}

#[cfg(test)]
mod tests;
