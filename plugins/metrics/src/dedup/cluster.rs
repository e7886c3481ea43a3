//! Clustering: exact duplicates by their normalized key, then near duplicates among the
//! remaining texts by MinHash + LSH candidates, each verified by exact Jaccard before union-find
//! merges it.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::minhash::{Permutations, jaccard, shingles};
use super::normalize::{exact_key, simplify};

/// The most MinHash values per signature (`buckets × hashes_per_bucket`): 14 × 8 = 112 by
/// default; the cap keeps a typo from costing minutes.
pub const MAX_HASHES: usize = 1024;

/// The most words per shingle (5 by default): each window joins and hashes `shingle_size`
/// words, so the shingling costs O(words × shingle_size) and an unbounded size is quadratic
/// in the text's length.
pub const MAX_SHINGLE_SIZE: usize = 64;

/// How near-duplicate candidates are found and accepted. The default is datatrove's
/// (`MinhashConfig`: 5-word shingles, 14 bands of 8 hashes) with a Jaccard threshold of 0.8.
#[derive(Clone, Debug, PartialEq)]
pub struct NearParams {
    /// Smallest Jaccard similarity that merges two samples.
    pub threshold: f64,
    /// Words per shingle.
    pub shingle_size: usize,
    /// LSH bands.
    pub buckets: usize,
    /// MinHash values per band.
    pub hashes_per_bucket: usize,
    /// Seed of the MinHash permutations.
    pub seed: u64,
}

impl Default for NearParams {
    fn default() -> NearParams {
        NearParams {
            threshold: 0.8,
            shingle_size: 5,
            buckets: 14,
            hashes_per_bucket: 8,
            seed: 1,
        }
    }
}

impl NearParams {
    /// Checks the parameters a user may set: `threshold` in (0, 1], every count at least 1,
    /// `shingle_size` at most [`MAX_SHINGLE_SIZE`] and at most [`MAX_HASHES`] hashes in all.
    /// The message starts with the offending field's name (`"threshold: 1.5 is not in (0, 1]"`).
    pub fn check(&self) -> Result<(), String> {
        if !(self.threshold > 0.0 && self.threshold <= 1.0) {
            return Err(format!("threshold: {} is not in (0, 1]", self.threshold));
        }
        for (name, value) in [
            ("shingle_size", self.shingle_size),
            ("buckets", self.buckets),
            ("hashes_per_bucket", self.hashes_per_bucket),
        ] {
            if value == 0 {
                return Err(format!("{name}: must be at least 1"));
            }
        }
        if self.shingle_size > MAX_SHINGLE_SIZE {
            return Err(format!(
                "shingle_size: {} exceeds {MAX_SHINGLE_SIZE} words",
                self.shingle_size
            ));
        }
        if self.buckets.saturating_mul(self.hashes_per_bucket) > MAX_HASHES {
            return Err(format!(
                "buckets: {} buckets × {} hashes_per_bucket exceeds {MAX_HASHES} hashes",
                self.buckets, self.hashes_per_bucket
            ));
        }
        Ok(())
    }
}

/// Why a sample is (not) the one kept of its cluster.
#[derive(Clone, Debug, PartialEq)]
pub enum Role {
    /// The first sample of its cluster.
    Representative,
    /// Same normalized text as the earlier sample `of`.
    Exact { of: usize },
    /// Jaccard `jaccard` (≥ the threshold) with sample `partner`, its best verified match.
    Near { partner: usize, jaccard: f64 },
}

/// The outcome for a batch, one entry per sample.
pub struct Clusters {
    /// Index of the first sample of each sample's cluster.
    pub cluster: Vec<usize>,
    /// Whether each sample is kept, or whose duplicate it is.
    pub role: Vec<Role>,
    /// Highest verified Jaccard to another member of the cluster (1 for exact duplicates).
    pub max_jaccard: Vec<f64>,
    /// Each sample's shingle set (empty for exact duplicates and with `near` off), kept so the
    /// report can quote the similarity to the representative.
    pub shingles: Vec<Vec<u64>>,
}

/// Clusters `texts`; `near` is `None` for exact duplicates only.
pub fn cluster(texts: &[&str], near: Option<&NearParams>) -> Clusters {
    let n = texts.len();
    let mut sets = UnionFind::new(n);
    let mut role = vec![Role::Representative; n];
    let mut max_jaccard = vec![0.0; n];
    let mut first_of: HashMap<String, usize> = HashMap::new();
    for (i, text) in texts.iter().enumerate() {
        let first = *first_of.entry(exact_key(text)).or_insert(i);
        if first != i {
            sets.union(first, i);
            role[i] = Role::Exact { of: first };
            max_jaccard[i] = 1.0;
            max_jaccard[first] = 1.0;
        }
    }
    let mut shingle_sets = vec![Vec::new(); n];
    if let Some(params) = near {
        for (i, text) in texts.iter().enumerate() {
            if role[i] == Role::Representative {
                shingle_sets[i] = shingles(&simplify(text), params.shingle_size);
            }
        }
        let mut search = NearSearch {
            sets: &mut sets,
            shingles: &shingle_sets,
            threshold: params.threshold,
            best: vec![None; n],
            rejected: HashSet::new(),
        };
        for group in candidate_groups(&shingle_sets, params) {
            search.resolve(&group);
        }
        for (i, best) in search.best.into_iter().enumerate() {
            if let Some((partner, jaccard)) = best {
                max_jaccard[i] = f64::max(max_jaccard[i], jaccard);
                if role[i] == Role::Representative && sets.find(i) != i {
                    role[i] = Role::Near { partner, jaccard };
                }
            }
        }
    }
    Clusters {
        cluster: (0..n).map(|i| sets.find(i)).collect(),
        role,
        max_jaccard,
        shingles: shingle_sets,
    }
}

/// The LSH buckets holding more than one sample: samples whose signatures agree on all the
/// hashes of one band. Each group lists its samples in batch order.
fn candidate_groups(shingle_sets: &[Vec<u64>], params: &NearParams) -> Vec<Vec<usize>> {
    let rows = params.hashes_per_bucket;
    let permutations = Permutations::new(params.buckets * rows, params.seed);
    let signatures: Vec<Vec<u64>> = shingle_sets
        .iter()
        .map(|set| {
            if set.is_empty() {
                Vec::new()
            } else {
                permutations.signature(set)
            }
        })
        .collect();
    let mut groups = Vec::new();
    for band in 0..params.buckets {
        let mut by_key: HashMap<&[u64], Vec<usize>> = HashMap::new();
        for (i, signature) in signatures.iter().enumerate() {
            if let Some(key) = signature.get(band * rows..(band + 1) * rows) {
                by_key.entry(key).or_default().push(i);
            }
        }
        groups.extend(by_key.into_values().filter(|g| g.len() > 1));
    }
    groups
}

/// Jaccard checks per member of one LSH group. Similar texts that stay below the threshold
/// (templated samples under a strict threshold) share LSH groups without ever merging: k of
/// them in a group would cost k² checks and k² remembered rejections. With the cap a member is
/// compared with the group's first clusters (by their first sample) until it has made this
/// many checks, so a group costs at most k × `MAX_CHECKS`. The price: in a group holding more
/// than `MAX_CHECKS` distinct clusters (templated samples just below the threshold), a near
/// duplicate whose partner is not among those checked is found only if the pair meets in a
/// smaller group in another band, which is likely but not guaranteed.
const MAX_CHECKS: usize = 32;

/// The most rejected pairs remembered (about 5 MiB): past it a rejection is recomputed if the
/// pair meets again in another band, which `MAX_CHECKS` bounds.
const MAX_REJECTED: usize = 1 << 18;

/// Verifies candidate pairs and merges those at or above the threshold.
struct NearSearch<'a> {
    sets: &'a mut UnionFind,
    shingles: &'a [Vec<u64>],
    threshold: f64,
    /// Each sample's best verified partner and Jaccard.
    best: Vec<Option<(usize, f64)>>,
    /// Pairs already verified below the threshold: the same pair often shares several bands.
    rejected: HashSet<(usize, usize)>,
}

impl NearSearch<'_> {
    /// Merges the members of one LSH group that verify. Rather than trying all pairs, a member is
    /// compared with the group's earlier members one cluster at a time, and stops at the first
    /// member of a cluster that verifies: a group of k near copies costs k comparisons, not k².
    fn resolve(&mut self, group: &[usize]) {
        // Earlier members, partitioned by cluster and keyed by the cluster's root. Only the
        // unions below change roots, and they re-key the parts they merge, so finding a
        // member's part is a lookup rather than a scan of all the parts.
        let mut parts: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for &j in group {
            let root = self.sets.find(j);
            let mut joined = Vec::new();
            let mut checks = 0;
            'parts: for (&r, part) in &parts {
                if r == root {
                    continue;
                }
                for &m in part {
                    if checks == MAX_CHECKS {
                        break 'parts;
                    }
                    checks += 1;
                    if self.verify(m, j) {
                        joined.push((r, m));
                        break;
                    }
                }
            }
            let mut members = parts.remove(&root).unwrap_or_default();
            for (r, m) in joined {
                self.sets.union(m, j);
                let mut other = parts.remove(&r).unwrap_or_default();
                // Append the smaller part to the larger.
                if other.len() > members.len() {
                    std::mem::swap(&mut members, &mut other);
                }
                members.extend(other);
            }
            members.push(j);
            parts.insert(self.sets.find(j), members);
        }
    }

    /// Whether `a` and `b` (a < b) reach the threshold; remembers the outcome.
    fn verify(&mut self, a: usize, b: usize) -> bool {
        if self.rejected.contains(&(a, b)) {
            return false;
        }
        let similarity = jaccard(&self.shingles[a], &self.shingles[b]);
        if similarity < self.threshold {
            if self.rejected.len() < MAX_REJECTED {
                self.rejected.insert((a, b));
            }
            return false;
        }
        for (me, other) in [(a, b), (b, a)] {
            if self.best[me].is_none_or(|(_, j)| similarity > j) {
                self.best[me] = Some((other, similarity));
            }
        }
        true
    }
}

/// Union-find whose root is always the smallest index of its set, i.e. the first sample.
struct UnionFind {
    parent: Vec<usize>,
}

impl UnionFind {
    fn new(n: usize) -> UnionFind {
        UnionFind {
            parent: (0..n).collect(),
        }
    }

    fn find(&mut self, mut i: usize) -> usize {
        let mut root = i;
        while self.parent[root] != root {
            root = self.parent[root];
        }
        // Path compression keeps later finds flat.
        while self.parent[i] != root {
            let next = self.parent[i];
            self.parent[i] = root;
            i = next;
        }
        root
    }

    fn union(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.find(a), self.find(b));
        let (low, high) = if ra < rb { (ra, rb) } else { (rb, ra) };
        self.parent[high] = low;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> NearParams {
        NearParams::default()
    }

    #[test]
    fn union_find_roots_at_the_smallest_index() {
        let mut sets = UnionFind::new(5);
        sets.union(4, 2);
        sets.union(3, 4);
        assert_eq!((sets.find(3), sets.find(4), sets.find(2)), (2, 2, 2));
        sets.union(4, 0);
        assert_eq!(sets.find(3), 0);
        assert_eq!(sets.find(1), 1);
    }

    #[test]
    fn exact_and_near_duplicates_cluster() {
        let base = "the committee approved the new budget after a long debate about schools roads and parks in the city";
        let near = "The committee approved the new budget after a long debate about schools, roads and parks in the town.";
        let texts = [
            base,
            "something else entirely",
            "THE committee approved the new budget after a long debate about schools roads and parks in the city",
            near,
        ];
        let out = cluster(&texts, Some(&defaults()));
        assert_eq!(out.cluster, [0, 1, 0, 0]);
        assert_eq!(out.role[2], Role::Exact { of: 0 });
        match out.role[3] {
            Role::Near {
                partner: 0,
                jaccard,
            } => assert!(jaccard >= 0.8, "{jaccard}"),
            ref other => panic!("{other:?}"),
        }
        let exact_only = cluster(&texts, None);
        assert_eq!(exact_only.cluster, [0, 1, 0, 3]);
    }

    #[test]
    fn similar_samples_below_the_threshold_stay_cheap() {
        // 3,000 samples of one 200-word template, one inner word replaced in each: pairwise Jaccard
        // about 0.9, so LSH groups them by the thousand, and a strict threshold merges none.
        // Every group used to cost k² checks and remember k² rejected pairs. (Two samples that
        // replace the same position have a Jaccard of 0.95, under the threshold too.)
        // Digits shingle as "0": spell numbers in letters.
        let letters = |mut n: usize| {
            let mut word = String::from("w");
            loop {
                word.push(char::from(b'a' + (n % 26) as u8));
                n /= 26;
                if n == 0 {
                    return word;
                }
            }
        };
        let template: Vec<String> = (0..200).map(letters).collect();
        let mut texts: Vec<String> = (0..3_000)
            .map(|s| {
                let mut words = template.clone();
                words[10 + (s * 7919) % 180] = format!("u{}", letters(s));
                words.join(" ")
            })
            .collect();
        // A true near duplicate (same words, other punctuation) of the first sample.
        texts.push(format!("{}!", texts[0].replacen(' ', ", ", 3)));
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let params = NearParams {
            threshold: 0.96,
            ..defaults()
        };
        let out = cluster(&refs, Some(&params));
        let last = texts.len() - 1;
        let merged: Vec<usize> = (0..last).filter(|&i| out.cluster[i] != i).collect();
        assert!(merged.is_empty(), "{} false merges", merged.len());
        assert_eq!(out.cluster[last], 0);
        assert_eq!(
            out.role[last],
            Role::Near {
                partner: 0,
                jaccard: 1.0
            }
        );
    }

    #[test]
    fn texts_without_words_only_meet_as_exact_duplicates() {
        let out = cluster(&["", "!!!", "  ", "?"], Some(&defaults()));
        assert_eq!(out.cluster, [0, 1, 0, 3]);
    }
}
