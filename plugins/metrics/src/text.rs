//! Python-compatible string helpers and fast token / n-gram interning.
//!
//! The reference implementations split with Python's `str.split()`, whose notion of whitespace
//! (`str.isspace()`) is wider than Rust's `char::is_whitespace`: it also includes the ASCII
//! information separators U+001C..U+001F. Using Rust's predicate would silently merge tokens
//! that Python separates, so every metric here splits with [`py_split`].
//!
//! The interners map tokens and n-grams to dense `u32` ids so the metrics can count with
//! integer keys instead of hashing strings or tuples of strings again for every n-gram order.

/// Python 3.11 `str.isspace()` for one character: Unicode bidirectional class WS, B or S, or
/// general category Zs (the list below is exhaustive for Python 3.11's Unicode 14 tables).
pub fn is_py_whitespace(c: char) -> bool {
    matches!(
        c,
        '\t'..='\r'
            | '\u{1c}'..='\u{20}'
            | '\u{85}'
            | '\u{a0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200a}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202f}'
            | '\u{205f}'
            | '\u{3000}'
    )
}

/// Python `str.split()` with no argument: the maximal runs of non-whitespace characters.
pub fn py_split(s: &str) -> impl Iterator<Item = &str> {
    s.split(is_py_whitespace).filter(|t| !t.is_empty())
}

/// Python `str.rstrip()` with no argument.
pub fn py_rstrip(s: &str) -> &str {
    s.trim_end_matches(is_py_whitespace)
}

/// Multiplier of Fibonacci hashing: spreads packed integer keys over the table's high bits.
const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// A multiply-rotate hash over 8-byte words (the FxHash construction): a few cycles per token,
/// against ~20 ns for SipHash. Hash flooding is no concern for a metric over our own batch.
/// Tails are read as overlapping fixed-size words, never copied byte by byte into a buffer:
/// that copy (and the stalled load after it) cost more than the rest of the lookup.
fn hash_bytes(bytes: &[u8]) -> u64 {
    let len = bytes.len();
    let mut h = (len as u64).wrapping_mul(GOLDEN);
    let mut mix = |word: u64| h = (h.rotate_left(5) ^ word).wrapping_mul(GOLDEN);
    match len {
        0 => {}
        1..=3 => {
            let (first, mid, last) = (bytes[0], bytes[len / 2], bytes[len - 1]);
            mix(u64::from(first) | u64::from(mid) << 8 | u64::from(last) << 16);
        }
        4..=8 => mix(word_u32(&bytes[..4]) | word_u32(&bytes[len - 4..]) << 32),
        _ => {
            for chunk in bytes.chunks_exact(8) {
                mix(word_u64(chunk));
            }
            mix(word_u64(&bytes[len - 8..]));
        }
    }
    h
}

/// The first 8 bytes of `bytes` (at least 8) as a little-endian word.
fn word_u64(bytes: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(word)
}

/// The first 4 bytes of `bytes` (at least 4) as a little-endian word.
fn word_u32(bytes: &[u8]) -> u64 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[..4]);
    u64::from(u32::from_le_bytes(word))
}

/// `a == b` for slices of equal length, eight bytes at a time: tokens are short, and the
/// generic comparison's call into `memcmp` cost more than the hashing.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let mut left = a.chunks_exact(8);
    let mut right = b.chunks_exact(8);
    for (x, y) in (&mut left).zip(&mut right) {
        if x != y {
            return false;
        }
    }
    left.remainder()
        .iter()
        .zip(right.remainder())
        .all(|(x, y)| x == y)
}

/// Slot index of a hash in a table of `1 << bits` slots: the high bits of a multiplication.
fn slot_of(hash: u64, bits: u32) -> usize {
    (hash.wrapping_mul(GOLDEN) >> (64 - bits)) as usize
}

/// A slot of a [`StampedTable`]: what it holds, its hash, and the generation it was written in
/// (a slot stamped with an older generation is free).
trait Slot: Copy + Default {
    fn hash(&self) -> u64;
    fn stamp(&self) -> u32;
    fn set_stamp(&mut self, stamp: u32);
}

/// The open-addressing table under [`IdMap`] and [`TokenMap`]: linear probing, a load factor
/// of at most 1/2, and O(1) `clear` by bumping the generation instead of wiping the slots, so
/// one table is reused for every segment.
#[derive(Debug, Clone)]
struct StampedTable<S> {
    slots: Vec<S>,
    generation: u32,
    bits: u32,
    len: u32,
}

impl<S: Slot> StampedTable<S> {
    fn new(bits: u32) -> Self {
        StampedTable {
            slots: vec![S::default(); 1 << bits],
            generation: 1,
            bits,
            len: 0,
        }
    }

    fn clear(&mut self) {
        self.len = 0;
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            // After 2^32 clears the stamps could alias; start over with a clean table.
            self.slots.fill(S::default());
            self.generation = 1;
        }
    }

    /// `Ok(slot)` of the live entry `matches` accepts, or `Err(free slot)` where one with
    /// `hash` would go.
    fn find(&self, hash: u64, matches: impl Fn(&S) -> bool) -> Result<usize, usize> {
        let mask = self.slots.len() - 1;
        let mut index = slot_of(hash, self.bits);
        loop {
            let slot = &self.slots[index];
            if slot.stamp() != self.generation {
                return Err(index);
            }
            if matches(slot) {
                return Ok(index);
            }
            index = (index + 1) & mask;
        }
    }

    /// Fills the free slot `index` (from [`find`](Self::find)) with `slot`.
    fn insert_at(&mut self, index: usize, mut slot: S) {
        slot.set_stamp(self.generation);
        self.slots[index] = slot;
        self.len += 1;
        // Keep the load factor at most 1/2 so probe sequences stay short.
        if (self.len as usize) * 2 > self.slots.len() {
            self.grow();
        }
    }

    fn grow(&mut self) {
        let live = self.generation;
        let old = std::mem::take(&mut self.slots);
        self.bits += 1;
        self.slots = vec![S::default(); 1 << self.bits];
        self.generation = 1;
        let mask = self.slots.len() - 1;
        for mut slot in old.into_iter().filter(|s| s.stamp() == live) {
            let mut index = slot_of(slot.hash(), self.bits);
            while self.slots[index].stamp() == self.generation {
                index = (index + 1) & mask;
            }
            slot.set_stamp(self.generation);
            self.slots[index] = slot;
        }
    }
}

/// One slot of an [`IdMap`], kept together so a probe touches one cache line.
#[derive(Debug, Clone, Copy, Default)]
struct MapSlot {
    key: u64,
    value: u32,
    stamp: u32,
}

impl Slot for MapSlot {
    fn hash(&self) -> u64 {
        self.key
    }
    fn stamp(&self) -> u32 {
        self.stamp
    }
    fn set_stamp(&mut self, stamp: u32) {
        self.stamp = stamp;
    }
}

/// An open-addressing map from `u64` keys to `u32` values, with O(1)
/// [`clear`](IdMap::clear) so one map can be reused for every segment.
#[derive(Debug, Clone)]
pub struct IdMap {
    table: StampedTable<MapSlot>,
}

impl Default for IdMap {
    fn default() -> Self {
        IdMap::new()
    }
}

impl IdMap {
    /// An empty map.
    pub fn new() -> IdMap {
        IdMap {
            table: StampedTable::new(6),
        }
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.table.len as usize
    }

    /// Whether the map holds no key.
    pub fn is_empty(&self) -> bool {
        self.table.len == 0
    }

    /// Forgets every key in O(1), keeping the allocation.
    pub fn clear(&mut self) {
        self.table.clear();
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: u64) -> Option<u32> {
        let slot = self.table.find(key, |s| s.key == key).ok()?;
        Some(self.table.slots[slot].value)
    }

    /// The value of `key`; when absent, inserts `value` and returns it.
    pub fn get_or_insert(&mut self, key: u64, value: u32) -> u32 {
        match self.table.find(key, |s| s.key == key) {
            Ok(slot) => self.table.slots[slot].value,
            Err(free) => {
                let slot = MapSlot {
                    key,
                    value,
                    stamp: 0,
                };
                self.table.insert_at(free, slot);
                value
            }
        }
    }

    /// Dense ids: the value of `key`, or the next id (`len()`) for a new key.
    pub fn intern(&mut self, key: u64) -> u32 {
        self.get_or_insert(key, self.table.len)
    }
}

/// One slot of a [`TokenMap`]: the token's hash, where its text lies in the arena, its value.
#[derive(Debug, Clone, Copy, Default)]
struct TokenSlot {
    hash: u64,
    start: u32,
    len: u32,
    value: u32,
    stamp: u32,
}

impl Slot for TokenSlot {
    fn hash(&self) -> u64 {
        self.hash
    }
    fn stamp(&self) -> u32 {
        self.stamp
    }
    fn set_stamp(&mut self, stamp: u32) {
        self.stamp = stamp;
    }
}

/// An open-addressing map from token strings to `u32` values, with O(1)
/// [`clear`](TokenMap::clear): the token ids of one segment, or of a whole corpus.
#[derive(Debug, Clone)]
pub struct TokenMap {
    /// The token strings, back to back (bytes: tokens are compared, never sliced as text).
    arena: Vec<u8>,
    table: StampedTable<TokenSlot>,
}

impl Default for TokenMap {
    fn default() -> Self {
        TokenMap::new()
    }
}

impl TokenMap {
    /// An empty map.
    pub fn new() -> TokenMap {
        TokenMap {
            arena: Vec::new(),
            table: StampedTable::new(7),
        }
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.table.len as usize
    }

    /// Whether the map holds no token.
    pub fn is_empty(&self) -> bool {
        self.table.len == 0
    }

    /// Forgets every token in O(1), keeping the allocations.
    pub fn clear(&mut self) {
        self.arena.clear();
        self.table.clear();
    }

    /// Dense ids: the value of `token`, or the next id (`len()`) for a new token.
    pub fn intern(&mut self, token: &str) -> u32 {
        self.get_or_insert(token, self.table.len)
    }

    /// The value of `token`; when absent, inserts `value` and returns it.
    pub fn get_or_insert(&mut self, token: &str, value: u32) -> u32 {
        let bytes = token.as_bytes();
        let hash = hash_bytes(bytes);
        let arena = &self.arena;
        let found = self.table.find(hash, |slot| {
            slot.hash == hash
                && slot.len as usize == bytes.len()
                && same_bytes(&arena[slot.start as usize..][..bytes.len()], bytes)
        });
        match found {
            Ok(slot) => self.table.slots[slot].value,
            Err(free) => {
                let slot = TokenSlot {
                    hash,
                    start: self.arena.len() as u32,
                    len: bytes.len() as u32,
                    value,
                    stamp: 0,
                };
                self.arena.extend_from_slice(bytes);
                self.table.insert_at(free, slot);
                value
            }
        }
    }
}

/// Interns token strings and n-grams into one space of dense `u32` ids (`0, 1, 2, ...`).
///
/// An n-gram's id is that of the pair (id of its first `n-1` tokens, id of its last token), so
/// equal n-grams get equal ids with one integer-keyed lookup per n-gram and order, and every id
/// names exactly one token sequence: ids of different orders never collide.
#[derive(Debug, Clone, Default)]
pub struct Interner {
    tokens: TokenMap,
    pairs: IdMap,
    next: u32,
}

impl Interner {
    /// An empty interner.
    pub fn new() -> Interner {
        Interner::default()
    }

    /// Number of distinct tokens interned so far (the vocabulary size).
    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    /// Total ids handed out (tokens and n-grams): a bound for id-indexed side tables.
    pub fn len(&self) -> usize {
        self.next as usize
    }

    /// Whether nothing was interned yet.
    pub fn is_empty(&self) -> bool {
        self.next == 0
    }

    /// The id of a token string.
    pub fn token(&mut self, token: &str) -> u32 {
        let id = self.tokens.get_or_insert(token, self.next);
        if id == self.next {
            self.next += 1;
        }
        id
    }

    /// The id of the n-gram made of the sequence `prefix` (a token or n-gram id) followed by
    /// token `last`.
    pub fn extend(&mut self, prefix: u32, last: u32) -> u32 {
        let key = (u64::from(prefix) << 32) | u64::from(last);
        let id = self.pairs.get_or_insert(key, self.next);
        if id == self.next {
            self.next += 1;
        }
        id
    }
}

/// The n-grams of a tokenized corpus, orders `1..=max_order`: per sentence and order, its
/// distinct n-grams (as [`Interner`] ids, ascending) with their counts. Distinct-n and
/// Self-BLEU both read their counts from here instead of re-hashing token tuples.
#[derive(Debug, Clone, Default)]
pub struct CorpusNgrams {
    max_order: usize,
    lengths: Vec<usize>,
    /// `(id, count)` runs; sentence `s`, order `n` is `entries[offsets[k]..offsets[k + 1]]`
    /// with `k = s * max_order + n - 1`.
    entries: Vec<(u32, u32)>,
    offsets: Vec<usize>,
    id_bound: usize,
    vocab_size: usize,
}

impl CorpusNgrams {
    /// Indexes `sentences` (token lists) up to order `max_order`. Orders beyond the longest
    /// sentence hold no n-gram, so they are not stored (a huge `max_order` costs nothing).
    pub fn new<S: AsRef<[T]>, T: AsRef<str>>(sentences: &[S], max_order: usize) -> CorpusNgrams {
        let longest = sentences
            .iter()
            .map(|s| s.as_ref().len())
            .max()
            .unwrap_or(0);
        let max_order = max_order.min(longest);
        let mut interner = Interner::new();
        let mut index = CorpusNgrams {
            max_order,
            offsets: vec![0],
            ..CorpusNgrams::default()
        };
        let (mut tokens, mut ids, mut scratch) = (Vec::new(), Vec::new(), Vec::new());
        for sentence in sentences {
            tokens.clear();
            tokens.extend(sentence.as_ref().iter().map(|t| interner.token(t.as_ref())));
            index.lengths.push(tokens.len());
            ids.clone_from(&tokens);
            for n in 1..=max_order {
                let starts = (tokens.len() + 1).saturating_sub(n);
                if n > 1 {
                    for i in 0..starts {
                        ids[i] = interner.extend(ids[i], tokens[i + n - 1]);
                    }
                }
                scratch.clear();
                scratch.extend_from_slice(&ids[..starts]);
                scratch.sort_unstable();
                for run in scratch.chunk_by(|a, b| a == b) {
                    index.entries.push((run[0], run.len() as u32));
                }
                index.offsets.push(index.entries.len());
            }
        }
        index.id_bound = interner.len();
        index.vocab_size = interner.vocab_size();
        index
    }

    /// Number of sentences.
    pub fn sentences(&self) -> usize {
        self.lengths.len()
    }

    /// Token counts of the sentences.
    pub fn lengths(&self) -> &[usize] {
        &self.lengths
    }

    /// The distinct order-`n` n-grams of sentence `s` with their counts (empty when out of
    /// range).
    pub fn ngrams(&self, s: usize, n: usize) -> &[(u32, u32)] {
        if n == 0 || n > self.max_order || s >= self.lengths.len() {
            return &[];
        }
        let k = s * self.max_order + n - 1;
        &self.entries[self.offsets[k]..self.offsets[k + 1]]
    }

    /// An upper bound (exclusive) of the n-gram ids, for id-indexed tables.
    pub fn id_bound(&self) -> usize {
        self.id_bound
    }

    /// Number of distinct tokens in the corpus.
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every character Python 3.11 `str.isspace()` accepts (generated with
    /// `[hex(c) for c in range(0x110000) if chr(c).isspace()]`).
    const PY_SPACES: [u32; 29] = [
        0x9, 0xa, 0xb, 0xc, 0xd, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x85, 0xa0, 0x1680, 0x2000, 0x2001,
        0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200a, 0x2028, 0x2029,
        0x202f, 0x205f, 0x3000,
    ];

    #[test]
    fn whitespace_matches_python_exactly() {
        let ours: Vec<u32> = (0..=0x10ffff)
            .filter_map(char::from_u32)
            .filter(|&c| is_py_whitespace(c))
            .map(u32::from)
            .collect();
        assert_eq!(ours, PY_SPACES);
        // Where Rust's predicate disagrees with Python's.
        for c in ['\u{1c}', '\u{1d}', '\u{1e}', '\u{1f}'] {
            assert!(is_py_whitespace(c) && !c.is_whitespace());
        }
        for c in ['\u{180e}', '\u{200b}', '\u{feff}', 'a', '0'] {
            assert!(!is_py_whitespace(c));
        }
    }

    #[test]
    fn split_and_rstrip_match_python() {
        let s = "\u{1c}a\u{1f}b\u{85}c\u{a0}d\u{3000} e\t\n";
        assert_eq!(py_split(s).collect::<Vec<_>>(), ["a", "b", "c", "d", "e"]);
        assert_eq!(py_split("").count(), 0);
        assert_eq!(py_split(" \u{2028} ").count(), 0);
        assert_eq!(py_split("a\u{200b}b").collect::<Vec<_>>(), ["a\u{200b}b"]);
        assert_eq!(py_rstrip(" x \u{1e}\u{205f}"), " x");
        assert_eq!(py_rstrip(""), "");
    }

    #[test]
    fn id_map_interns_densely_and_clears() {
        let mut map = IdMap::new();
        for key in 0..1000u64 {
            assert_eq!(map.intern(key * 7919), key as u32);
        }
        assert_eq!(map.intern(7919 * 3), 3);
        assert_eq!(map.len(), 1000);
        map.clear();
        assert!(map.is_empty());
        assert_eq!(map.get(0), None);
        assert_eq!(map.intern(u64::MAX), 0);
        assert_eq!(map.get(u64::MAX), Some(0));
    }

    #[test]
    fn token_map_interns_densely_and_clears() {
        let mut map = TokenMap::new();
        let words: Vec<String> = (0..500).map(|i| format!("token number {i}")).collect();
        for (i, w) in words.iter().enumerate() {
            assert_eq!(map.intern(w), i as u32);
        }
        assert_eq!(map.intern(&words[7]), 7);
        map.clear();
        assert!(map.is_empty());
        assert_eq!(map.intern(&words[7]), 0);
        assert_eq!(map.intern(""), 1);
        assert_eq!(map.len(), 2);
    }

    #[test]
    fn interner_gives_one_id_per_sequence() {
        let mut interner = Interner::new();
        let words: Vec<String> = (0..2000).map(|i| format!("w{i}")).collect();
        let ids: Vec<u32> = words.iter().map(|w| interner.token(w)).collect();
        let again: Vec<u32> = words.iter().map(|w| interner.token(w)).collect();
        assert_eq!(ids, again);
        assert_eq!(interner.vocab_size(), 2000);
        let empty = interner.token("");
        assert_eq!(interner.token(""), empty);
        let ab = interner.extend(ids[0], ids[1]);
        let ba = interner.extend(ids[1], ids[0]);
        assert_ne!(ab, ba);
        assert_eq!(interner.extend(ids[0], ids[1]), ab);
        let abc = interner.extend(ab, ids[2]);
        assert!(![ab, ba].contains(&abc) && !ids.contains(&abc));
        assert_eq!(interner.len(), 2004);
    }

    #[test]
    fn corpus_ngrams_count_per_sentence() {
        let corpus = [vec!["a", "b", "a", "b"], vec![], vec!["b"]];
        let index = CorpusNgrams::new(&corpus, 100);
        assert_eq!(index.lengths(), [4, 0, 1]);
        let counts = |s, n| -> Vec<u32> { index.ngrams(s, n).iter().map(|e| e.1).collect() };
        assert_eq!(counts(0, 1), [2, 2]);
        assert_eq!(counts(0, 2), [2, 1]);
        assert_eq!(counts(0, 4), [1]);
        assert!(index.ngrams(0, 5).is_empty() && index.ngrams(1, 1).is_empty());
        let b = index.ngrams(2, 1)[0].0;
        assert!(index.ngrams(0, 1).iter().any(|&(id, _)| id == b));
        assert_eq!(index.vocab_size(), 2);
        assert!(
            CorpusNgrams::new::<Vec<&str>, &str>(&[], 3)
                .ngrams(0, 1)
                .is_empty()
        );
    }
}
