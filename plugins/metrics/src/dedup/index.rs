//! A streaming deduplication index: texts arrive one at a time, each is checked against the
//! texts kept so far, and only a text that duplicates none of them is kept (first one wins).
//!
//! Memory per kept text: a 16-byte hash of its exact key, its shingle set (8 bytes per distinct
//! word window) and one LSH bucket entry per band; duplicates are not stored at all. A check
//! costs the text's shingling and signature, one hash lookup per band, and at most
//! [`MAX_CHECKS`] exact Jaccard verifications, whatever the number of texts kept.

use rustc_hash::FxHashMap;
use xxhash_rust::xxh3::xxh3_128;
use xxhash_rust::xxh64::Xxh64;

use super::cluster::NearParams;
use super::minhash::{Permutations, jaccard, shingles};
use super::normalize::{exact_key, simplify};

/// What [`DedupIndex::check`] found. `of` is the insertion number of the kept text matched:
/// kept texts are numbered 0, 1, 2, ... in the order they entered the index (the value
/// [`DedupIndex::len`] had just before), so duplicates take no number.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Duplicate {
    /// Matches no kept text.
    Unique,
    /// Same [`exact_key`](super::exact_key) as kept text `of`.
    Exact { of: usize },
    /// Exact Jaccard `jaccard` (at least the threshold) with kept text `of`, the earliest kept
    /// text that verified among the LSH candidates.
    Near { of: usize, jaccard: f64 },
}

/// LSH bucket members scanned per band and check. Texts that are similar but below the
/// threshold (templated samples under a strict threshold) all land in the same buckets and are
/// all kept, so a bucket can grow with the index; scanning only its first members (the
/// earliest kept, which first-one-wins prefers anyway) keeps a check O(1). The price, as in
/// the batch clustering's `MAX_CHECKS`: a near duplicate of a text beyond the first
/// `MAX_BUCKET_SCAN` of every bucket they share is missed; with 14 bands that takes a flood of
/// templated texts.
const MAX_BUCKET_SCAN: usize = 256;

/// Jaccard verifications per check at most: the candidates sharing the most bands (the
/// likeliest to verify), earliest first among equals.
const MAX_CHECKS: usize = 32;

/// End of a bucket's chain.
const NONE: usize = usize::MAX;

/// Incremental, deterministic exact and near-duplicate index over the texts kept so far.
///
/// ```
/// use textnlp_metrics::dedup::{DedupIndex, Duplicate, NearParams};
///
/// let mut index = DedupIndex::new(Some(NearParams::default())).unwrap();
/// assert_eq!(index.check_and_insert("The cat sat on the mat."), Duplicate::Unique);
/// assert_eq!(index.check_and_insert("the cat  sat on the mat."), Duplicate::Exact { of: 0 });
/// assert_eq!(index.len(), 1);
/// ```
#[derive(Clone, Debug)]
pub struct DedupIndex {
    /// xxh3-128 of each kept text's exact key → its insertion number (the first, when
    /// [`DedupIndex::insert`] added the same key twice). A hash rather than the key keeps the
    /// memory per text constant; two different keys collide with probability ~n² / 2^129.
    exact: FxHashMap<u128, usize>,
    near: Option<NearIndex>,
    len: usize,
}

#[derive(Clone, Debug)]
struct NearIndex {
    params: NearParams,
    permutations: Permutations,
    /// Per band: band key (a hash of the band's MinHash values) → the bucket's chain of kept
    /// texts, in insertion order.
    bands: Vec<FxHashMap<u64, Chain>>,
    /// `next[id * buckets + band]`: the next kept text in `id`'s bucket of `band`, or [`NONE`].
    next: Vec<usize>,
    /// Each kept text's sorted, de-duplicated shingles (empty for a text without words).
    shingles: Vec<Box<[u64]>>,
}

#[derive(Clone, Copy, Debug)]
struct Chain {
    first: usize,
    last: usize,
}

/// What the index needs of one text: its exact-key hash, shingles and LSH band keys. Computing
/// it is nearly all the cost of a check and needs only `&DedupIndex`, so a caller with many
/// texts can compute fingerprints in parallel ([`DedupIndex::fingerprint`]) and then feed them
/// in order ([`DedupIndex::check_and_insert_fingerprint`]); the verdicts are the same.
#[derive(Clone, Debug)]
pub struct Fingerprint {
    exact: u128,
    /// Empty without near-duplicate search or for a text without words.
    shingles: Box<[u64]>,
    /// One key per band; empty when `shingles` is.
    band_keys: Vec<u64>,
}

impl DedupIndex {
    /// An empty index; `params` `None` finds exact duplicates only. Fails, naming the field,
    /// when [`NearParams::check`] refuses the parameters.
    pub fn new(params: Option<NearParams>) -> Result<DedupIndex, String> {
        let near = match params {
            Some(params) => {
                params.check()?;
                Some(NearIndex {
                    permutations: Permutations::new(
                        params.buckets * params.hashes_per_bucket,
                        params.seed,
                    ),
                    bands: vec![FxHashMap::default(); params.buckets],
                    next: Vec::new(),
                    shingles: Vec::new(),
                    params,
                })
            }
            None => None,
        };
        Ok(DedupIndex {
            exact: FxHashMap::default(),
            near,
            len: 0,
        })
    }

    /// Rebuilds an index from the texts it kept (in their insertion order), e.g. after a
    /// restart: each is [`insert`](DedupIndex::insert)ed unchecked, so the `i`-th text keeps
    /// insertion number `i` and later verdicts are those the original index would give.
    pub fn from_kept<I, S>(params: Option<NearParams>, texts: I) -> Result<DedupIndex, String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut index = DedupIndex::new(params)?;
        for text in texts {
            index.insert(text.as_ref());
        }
        Ok(index)
    }

    /// The near-duplicate parameters; `None` when only exact duplicates are looked for.
    pub fn params(&self) -> Option<&NearParams> {
        self.near.as_ref().map(|near| &near.params)
    }

    /// How many texts the index holds (the kept ones).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the index holds no text.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Checks `text` against the kept texts without adding it.
    pub fn check(&self, text: &str) -> Duplicate {
        self.lookup(&self.fingerprint(text))
    }

    /// Checks `text` and keeps it when it is [`Duplicate::Unique`] (its insertion number is
    /// then `len() - 1`); a duplicate is not added.
    pub fn check_and_insert(&mut self, text: &str) -> Duplicate {
        let fingerprint = self.fingerprint(text);
        self.check_and_insert_fingerprint(fingerprint)
    }

    /// [`check_and_insert`](DedupIndex::check_and_insert) of a text whose fingerprint was
    /// computed by this index, or by one with the same parameters (another's gives meaningless
    /// verdicts, though never a panic).
    pub fn check_and_insert_fingerprint(&mut self, fingerprint: Fingerprint) -> Duplicate {
        let verdict = self.lookup(&fingerprint);
        if verdict == Duplicate::Unique {
            self.add(fingerprint);
        }
        verdict
    }

    /// Adds `text` without checking it and returns its insertion number.
    pub fn insert(&mut self, text: &str) -> usize {
        let fingerprint = self.fingerprint(text);
        self.add(fingerprint)
    }

    /// The fingerprint of `text` under this index's parameters (does not depend on the texts
    /// held).
    pub fn fingerprint(&self, text: &str) -> Fingerprint {
        let key = exact_key(text);
        let exact = xxh3_128(key.as_bytes());
        let Some(near) = &self.near else {
            return Fingerprint {
                exact,
                shingles: Box::default(),
                band_keys: Vec::new(),
            };
        };
        let shingles = shingles(&simplify(text), near.params.shingle_size).into_boxed_slice();
        let band_keys = if shingles.is_empty() {
            Vec::new()
        } else {
            near.permutations
                .signature(&shingles)
                .chunks_exact(near.params.hashes_per_bucket)
                .map(band_key)
                .collect()
        };
        Fingerprint {
            exact,
            shingles,
            band_keys,
        }
    }

    fn lookup(&self, fingerprint: &Fingerprint) -> Duplicate {
        if let Some(&of) = self.exact.get(&fingerprint.exact) {
            return Duplicate::Exact { of };
        }
        match &self.near {
            Some(near) => near.lookup(fingerprint),
            None => Duplicate::Unique,
        }
    }

    fn add(&mut self, fingerprint: Fingerprint) -> usize {
        let id = self.len;
        self.len += 1;
        self.exact.entry(fingerprint.exact).or_insert(id);
        if let Some(near) = &mut self.near {
            near.add(id, fingerprint);
        }
        id
    }
}

impl NearIndex {
    fn lookup(&self, fingerprint: &Fingerprint) -> Duplicate {
        if fingerprint.band_keys.is_empty() {
            return Duplicate::Unique;
        }
        let buckets = self.params.buckets;
        let mut members = Vec::new();
        for (band, (key, buckets_of_band)) in
            fingerprint.band_keys.iter().zip(&self.bands).enumerate()
        {
            let Some(chain) = buckets_of_band.get(key) else {
                continue;
            };
            let mut id = chain.first;
            for _ in 0..MAX_BUCKET_SCAN {
                if id == NONE {
                    break;
                }
                members.push(id);
                id = self.next[id * buckets + band];
            }
        }
        if members.is_empty() {
            return Duplicate::Unique;
        }
        // Each candidate with the number of bands it shares.
        members.sort_unstable();
        let mut candidates: Vec<(usize, usize)> = Vec::new();
        for id in members {
            match candidates.last_mut() {
                Some((last, hits)) if *last == id => *hits += 1,
                _ => candidates.push((id, 1)),
            }
        }
        if candidates.len() > MAX_CHECKS {
            candidates.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            candidates.truncate(MAX_CHECKS);
            candidates.sort_unstable();
        }
        for (id, _) in candidates {
            let similarity = jaccard(&self.shingles[id], &fingerprint.shingles);
            if similarity >= self.params.threshold {
                return Duplicate::Near {
                    of: id,
                    jaccard: similarity,
                };
            }
        }
        Duplicate::Unique
    }

    fn add(&mut self, id: usize, fingerprint: Fingerprint) {
        let buckets = self.params.buckets;
        self.next.resize((id + 1) * buckets, NONE);
        let keys = fingerprint.band_keys.into_iter();
        for (band, (key, buckets_of_band)) in keys.zip(&mut self.bands).enumerate() {
            buckets_of_band
                .entry(key)
                .and_modify(|chain| {
                    self.next[chain.last * buckets + band] = id;
                    chain.last = id;
                })
                .or_insert(Chain {
                    first: id,
                    last: id,
                });
        }
        self.shingles.push(fingerprint.shingles);
    }
}

/// A band's MinHash values as one key. Two different bands sharing a key (probability 2^-64
/// per pair) only add a candidate, which the Jaccard check then refuses.
fn band_key(rows: &[u64]) -> u64 {
    let mut hasher = Xxh64::new(0);
    for row in rows {
        hasher.update(&row.to_le_bytes());
    }
    hasher.digest()
}

#[cfg(test)]
mod tests {
    use super::super::cluster::{Role, cluster};
    use super::*;

    const BASE: &str = "the committee approved the new budget after a long debate about schools roads and parks in the city";
    const NEAR: &str = "The committee approved the new budget after a long debate about schools, roads and parks in the town.";

    fn index() -> DedupIndex {
        DedupIndex::new(Some(NearParams::default())).unwrap()
    }

    fn similarity(a: &str, b: &str) -> f64 {
        jaccard(&shingles(&simplify(a), 5), &shingles(&simplify(b), 5))
    }

    #[test]
    fn an_exact_duplicate_names_the_kept_text() {
        for params in [None, Some(NearParams::default())] {
            let mut index = DedupIndex::new(params).unwrap();
            assert_eq!(index.check_and_insert("Hello  World"), Duplicate::Unique);
            assert_eq!(index.check_and_insert("another text"), Duplicate::Unique);
            assert_eq!(
                index.check_and_insert("hello world\n"),
                Duplicate::Exact { of: 0 }
            );
            assert_eq!(
                index.check_and_insert("ANOTHER text"),
                Duplicate::Exact { of: 1 }
            );
            assert_eq!(index.len(), 2);
        }
    }

    #[test]
    fn a_near_duplicate_comes_with_its_jaccard() {
        let mut index = index();
        assert_eq!(index.check_and_insert(BASE), Duplicate::Unique);
        let expected = similarity(BASE, NEAR);
        assert!(expected >= 0.8, "{expected}");
        assert_eq!(
            index.check_and_insert(NEAR),
            Duplicate::Near {
                of: 0,
                jaccard: expected
            }
        );
        assert_eq!(index.len(), 1);
        // Exact-only: the same pair is two texts.
        let mut exact = DedupIndex::new(None).unwrap();
        assert_eq!(exact.check_and_insert(BASE), Duplicate::Unique);
        assert_eq!(exact.check_and_insert(NEAR), Duplicate::Unique);
        assert_eq!(exact.len(), 2);
    }

    #[test]
    fn a_different_text_is_unique_and_kept() {
        let mut index = index();
        index.check_and_insert(BASE);
        let other =
            "rain is expected over the northern hills tomorrow with strong winds from the west";
        assert_eq!(index.check(other), Duplicate::Unique);
        assert_eq!(index.len(), 1, "check does not insert");
        assert_eq!(index.check_and_insert(other), Duplicate::Unique);
        assert_eq!(index.len(), 2);
        assert_eq!(index.check(other), Duplicate::Exact { of: 1 });
    }

    #[test]
    fn fingerprints_computed_apart_give_the_same_verdicts() {
        let corpus = Corpus::new(5, 80, true);
        let mut by_text = index();
        let mut by_fingerprint = index();
        let fingerprints: Vec<Fingerprint> = corpus
            .texts
            .iter()
            .map(|t| by_fingerprint.fingerprint(t))
            .collect();
        for (text, fingerprint) in corpus.texts.iter().zip(fingerprints) {
            assert_eq!(
                by_fingerprint.check_and_insert_fingerprint(fingerprint),
                by_text.check_and_insert(text)
            );
        }
        assert_eq!(by_text.len(), by_fingerprint.len());
        // Another index's fingerprint is meaningless here, but harmless.
        let other = DedupIndex::new(Some(NearParams {
            buckets: 20,
            ..NearParams::default()
        }))
        .unwrap();
        by_text.check_and_insert_fingerprint(other.fingerprint(BASE));
        let exact_only = DedupIndex::new(None).unwrap();
        by_text.check_and_insert_fingerprint(exact_only.fingerprint("a new text"));
    }

    #[test]
    fn texts_without_words_only_meet_as_exact_duplicates() {
        let mut index = index();
        let verdicts: Vec<Duplicate> = ["", "!!!", "  ", "?"]
            .iter()
            .map(|t| index.check_and_insert(t))
            .collect();
        assert_eq!(
            verdicts,
            [
                Duplicate::Unique,
                Duplicate::Unique,
                Duplicate::Exact { of: 0 },
                Duplicate::Unique
            ]
        );
    }

    #[test]
    fn bad_parameters_name_the_field() {
        let err = |params: NearParams| DedupIndex::new(Some(params)).unwrap_err();
        let defaults = NearParams::default;
        assert!(
            err(NearParams {
                threshold: 0.0,
                ..defaults()
            })
            .starts_with("threshold: ")
        );
        assert!(
            err(NearParams {
                buckets: 0,
                ..defaults()
            })
            .starts_with("buckets: ")
        );
        assert!(
            err(NearParams {
                buckets: usize::MAX,
                hashes_per_bucket: 2,
                ..defaults()
            })
            .starts_with("buckets: ")
        );
        assert!(
            err(NearParams {
                shingle_size: 65,
                ..defaults()
            })
            .starts_with("shingle_size: ")
        );
    }

    #[test]
    fn verdicts_are_deterministic_and_survive_a_rebuild() {
        let corpus = Corpus::new(7, 120, false);
        let run = || {
            let mut index = index();
            let verdicts: Vec<Duplicate> = corpus
                .texts
                .iter()
                .map(|t| index.check_and_insert(t))
                .collect();
            (index, verdicts)
        };
        let (first, verdicts) = run();
        let (_, again) = run();
        assert_eq!(verdicts, again);
        assert!(verdicts.iter().any(|v| matches!(v, Duplicate::Near { .. })));
        assert!(
            verdicts
                .iter()
                .any(|v| matches!(v, Duplicate::Exact { .. }))
        );

        let kept: Vec<&str> = corpus
            .texts
            .iter()
            .zip(&verdicts)
            .filter(|(_, v)| **v == Duplicate::Unique)
            .map(|(t, _)| t.as_str())
            .collect();
        let rebuilt = DedupIndex::from_kept(Some(NearParams::default()), &kept).unwrap();
        assert_eq!(rebuilt.len(), first.len());
        let probes = Corpus::new(8, 60, false);
        for text in probes.texts.iter().chain(&corpus.texts) {
            assert_eq!(rebuilt.check(text), first.check(text), "{text}");
        }
    }

    /// Every streaming verdict must be one the batch clustering backs: a text the stream drops
    /// is in the same batch cluster as the kept text it names (the stream checks the same LSH
    /// candidates with the same Jaccard), and a batch representative is kept. The converse only
    /// fails through transitivity (a text that matches nothing before it, but something after
    /// it that matches an earlier one), so on a corpus without partial edits, where every
    /// duplicate is an exact or a Jaccard-1 copy, the two agree exactly.
    #[test]
    fn streaming_verdicts_agree_with_the_batch_clustering() {
        for (seed, edits) in [(1, true), (2, true), (3, false), (4, false)] {
            let corpus = Corpus::new(seed, 300, edits);
            let refs: Vec<&str> = corpus.texts.iter().map(String::as_str).collect();
            let batch = cluster(&refs, Some(&NearParams::default()));
            let mut index = index();
            let mut kept = Vec::new(); // insertion number → corpus index
            let (mut near, mut exact) = (0, 0);
            for (i, text) in refs.iter().enumerate() {
                let verdict = index.check_and_insert(text);
                let representative = batch.role[i] == Role::Representative;
                match verdict {
                    Duplicate::Unique => {
                        if !edits {
                            assert!(representative, "seed {seed}: {i} kept, batch drops it");
                        }
                        kept.push(i);
                    }
                    Duplicate::Exact { of } => {
                        exact += 1;
                        assert!(!representative, "seed {seed}: {i}");
                        assert_eq!(batch.cluster[i], batch.cluster[kept[of]]);
                        assert_eq!(exact_key(text), exact_key(refs[kept[of]]));
                    }
                    Duplicate::Near { of, jaccard } => {
                        near += 1;
                        assert!(!representative, "seed {seed}: {i}");
                        assert_eq!(batch.cluster[i], batch.cluster[kept[of]]);
                        assert_eq!(jaccard, similarity(text, refs[kept[of]]));
                        assert!(jaccard >= 0.8);
                    }
                }
                if let Role::Exact { of } = batch.role[i]
                    && let Ok(at) = kept.binary_search(&of)
                {
                    assert_eq!(verdict, Duplicate::Exact { of: at }, "seed {seed}: {i}");
                }
            }
            assert!(
                near > 20 && exact > 20,
                "seed {seed}: {near} near, {exact} exact"
            );
            let representatives = batch
                .role
                .iter()
                .filter(|r| **r == Role::Representative)
                .count();
            assert!(kept.len() >= representatives);
            if !edits {
                assert_eq!(kept.len(), representatives, "seed {seed}");
            }
        }
    }

    #[test]
    fn similar_texts_below_the_threshold_stay_cheap() {
        // 5,000 texts of one 200-word template, one inner word replaced in each: pairwise
        // Jaccard about 0.9, so they share LSH buckets by the thousand, and a strict threshold
        // keeps them all. Each check must still cost O(1).
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
        let texts: Vec<String> = (0..5_000)
            .map(|s| {
                let mut words = template.clone();
                words[10 + (s * 7919) % 180] = format!("u{}", letters(s));
                words.join(" ")
            })
            .collect();
        let mut index = DedupIndex::new(Some(NearParams {
            threshold: 0.96,
            ..NearParams::default()
        }))
        .unwrap();
        let start = std::time::Instant::now();
        for text in &texts {
            index.check_and_insert(text);
        }
        assert_eq!(index.len(), texts.len());
        // A true near duplicate (same words, other punctuation) of the first text.
        let copy = format!("{}!", texts[0].replacen(' ', ", ", 3));
        assert_eq!(
            index.check(&copy),
            Duplicate::Near {
                of: 0,
                jaccard: 1.0
            }
        );
        println!("{} texts in {:?}", texts.len(), start.elapsed());
    }

    /// A deterministic generator (64-bit LCG).
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self, bound: usize) -> usize {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((self.0 >> 33) % bound as u64) as usize
        }
    }

    /// Random sources and, in random order, copies of them: exact ones (other case and
    /// spacing), Jaccard-1 ones (other punctuation and case), and with `edits` partial ones
    /// (a few words replaced, Jaccard anywhere from ~0.5 to 1).
    struct Corpus {
        texts: Vec<String>,
    }

    impl Corpus {
        fn new(seed: u64, sources: usize, edits: bool) -> Corpus {
            let mut rng = Lcg(seed);
            const SYLLABLES: [&str; 16] = [
                "ka", "lo", "mi", "ren", "tu", "sa", "vel", "dor", "pi", "ne", "bra", "qui", "zo",
                "fen", "gal", "ho",
            ];
            let vocabulary: Vec<String> = (0..3000)
                .map(|_| (0..3).map(|_| SYLLABLES[rng.next(16)]).collect())
                .collect();
            let sources: Vec<Vec<String>> = (0..sources)
                .map(|_| {
                    let len = 30 + rng.next(40);
                    (0..len)
                        .map(|_| vocabulary[rng.next(vocabulary.len())].clone())
                        .collect()
                })
                .collect();
            let mut texts: Vec<String> = sources.iter().map(|w| w.join(" ")).collect();
            for words in &sources {
                for _ in 0..rng.next(4) {
                    let text = match rng.next(if edits { 3 } else { 2 }) {
                        0 => words.join("  ").to_uppercase(),
                        1 => {
                            let mut text = words.join(", ");
                            text.push('!');
                            text.replacen("ka", "KA", 1)
                        }
                        _ => {
                            let mut words = words.clone();
                            for _ in 0..1 + rng.next(3) {
                                let at = rng.next(words.len());
                                words[at] = vocabulary[rng.next(vocabulary.len())].clone();
                            }
                            words.join(" ")
                        }
                    };
                    texts.push(text);
                }
            }
            // Fisher-Yates: copies may come before their source.
            for i in (1..texts.len()).rev() {
                texts.swap(i, rng.next(i + 1));
            }
            Corpus { texts }
        }
    }
}
