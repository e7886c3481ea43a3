//! Longest common subsequences of token ids, bit-parallel (Allison–Dix / Crochemore et al.):
//! a whole row of the LCS table is one bit vector, updated with a few word operations per
//! 64 columns instead of one step per cell.
//!
//! Row `i` of the table, `t[i][j]` for `j = 0..=n`, is held as bit vector `V_i` over the
//! columns: bit `j - 1` is 0 exactly where `t[i][j] = t[i][j-1] + 1`. So `t[i][j]` is the number
//! of zero bits among the first `j`. `V_0` is all ones (row 0 is all zeros) and
//! `V_i = (V + (V & M)) | (V & !M)` with `V = V_{i-1}` and `M` the columns matching token `i`.

const NO_SLOT: u32 = u32::MAX;

/// The most table words (8 bytes each) that rougeLsum's backtracking holds at once before it
/// switches to checkpointed rows: 4 MiB, well inside a plugin's memory.
const TABLE_WORDS: usize = 1 << 19;

/// Reusable buffers for the LCS computations.
///
/// A token's column mask is `words` long. Holding one per distinct column token would cost
/// distinct tokens × m / 8 bytes (~112 MB for 30k mostly distinct words, over a plugin's
/// 64 MiB), so only frequent tokens, with at least `words` columns, get a stored mask: there
/// are at most 64 of them, about m bytes in all. A rarer token's mask words are built from
/// its column list during the row update, which costs O(its columns) ≤ O(words) more than
/// the update itself, so the time stays O(n·m/64) and the results are the same.
#[derive(Debug, Default)]
pub(crate) struct Lcs {
    /// Per token id, its slot among the distinct column tokens (or `NO_SLOT`).
    slot: Vec<u32>,
    /// Per slot, its columns: `columns[starts[s]..starts[s + 1]]`, ascending.
    starts: Vec<u32>,
    columns: Vec<u32>,
    /// Per slot, which mask of `masks` holds its columns (or `NO_SLOT` for a rare token).
    dense: Vec<u32>,
    /// `words` u64 per frequent column token: bit `j` set where column `j` is that token.
    masks: Vec<u64>,
    words: usize,
    /// Two rows (for the length only) or a block of rows (for backtracking).
    rows: Vec<u64>,
    /// Every `block`-th row of a table too large to hold whole (see `mark_within`).
    checkpoints: Vec<u64>,
}

impl Lcs {
    /// Indexes `columns` (token ids below `id_count`) as the table's columns.
    fn set_columns(&mut self, columns: &[u32], id_count: usize) {
        if self.slot.len() < id_count {
            self.slot.resize(id_count, NO_SLOT);
        }
        self.words = columns.len().div_ceil(64);
        // A slot per distinct token, and how many columns each has (in `starts[s + 1]`).
        self.starts.clear();
        self.starts.push(0);
        for &id in columns {
            let slot = &mut self.slot[id as usize];
            if *slot == NO_SLOT {
                *slot = (self.starts.len() - 1) as u32;
                self.starts.push(0);
            }
            self.starts[*slot as usize + 1] += 1;
        }
        // Each slot's columns in order (a counting sort); `starts[s]` walks up to its end and
        // is moved back to the start afterwards.
        let slots = self.starts.len() - 1;
        self.dense.clear();
        self.masks.clear();
        for s in 0..slots {
            let count = self.starts[s + 1];
            self.starts[s + 1] = self.starts[s] + count;
            let dense = count as usize >= self.words;
            self.dense.push(if dense {
                self.masks.resize(self.masks.len() + self.words, 0);
                (self.masks.len() / self.words - 1) as u32
            } else {
                NO_SLOT
            });
        }
        self.columns.clear();
        self.columns.resize(columns.len(), 0);
        for (j, &id) in columns.iter().enumerate() {
            let s = self.slot[id as usize] as usize;
            self.columns[self.starts[s] as usize] = j as u32;
            self.starts[s] += 1;
            let mask = self.dense[s];
            if mask != NO_SLOT {
                self.masks[mask as usize * self.words + j / 64] |= 1 << (j % 64);
            }
        }
        for s in (1..=slots).rev() {
            self.starts[s] = self.starts[s - 1];
        }
        self.starts[0] = 0;
    }

    /// Undoes [`set_columns`](Self::set_columns)' slot assignments.
    fn clear_columns(&mut self, columns: &[u32]) {
        for &id in columns {
            self.slot[id as usize] = NO_SLOT;
        }
    }

    /// Computes `V_row` from `V_{row-1}` (both `self.words` long) for token `id`.
    fn step(&self, previous: &[u64], next: &mut [u64], id: u32) {
        let slot = self.slot[id as usize];
        if slot == NO_SLOT {
            // No matching column: the row is unchanged.
            next.copy_from_slice(previous);
            return;
        }
        let slot = slot as usize;
        let dense = self.dense[slot];
        if dense != NO_SLOT {
            let mask = &self.masks[dense as usize * self.words..][..self.words];
            update(previous, next, mask.iter().copied());
            return;
        }
        // A rare token: its mask words from its (ascending) columns.
        let mut columns = self.columns[self.starts[slot] as usize..self.starts[slot + 1] as usize]
            .iter()
            .peekable();
        let mask = (0..self.words).map(|w| {
            let mut word = 0;
            while let Some(j) = columns.next_if(|&&j| j as usize / 64 == w) {
                word |= 1 << (j % 64);
            }
            word
        });
        update(previous, next, mask);
    }

    /// The length of an LCS of `a` and `b` (token ids below `id_count`).
    pub fn length(&mut self, a: &[u32], b: &[u32], id_count: usize) -> usize {
        // Rows cost one pass over the columns' words each: make the shorter text the rows.
        let (rows, columns) = if a.len() <= b.len() { (a, b) } else { (b, a) };
        if rows.is_empty() {
            return 0;
        }
        self.set_columns(columns, id_count);
        let mut row = std::mem::take(&mut self.rows);
        row.clear();
        row.resize(2 * self.words, u64::MAX);
        let (mut current, mut next) = row.split_at_mut(self.words);
        for &id in rows {
            self.step(current, next, id);
            std::mem::swap(&mut current, &mut next);
        }
        let length = zeros_before(current, columns.len());
        self.rows = row;
        self.clear_columns(columns);
        length
    }

    /// Runs `f` with `columns` indexed as the table's columns, for [`mark`](Self::mark).
    pub fn with_columns<R>(
        &mut self,
        columns: &[u32],
        id_count: usize,
        f: impl FnOnce(&mut Self) -> R,
    ) -> R {
        self.set_columns(columns, id_count);
        let result = f(self);
        self.clear_columns(columns);
        result
    }

    /// Marks in `hits` (indexed like `reference`) the reference positions of one LCS of
    /// `reference` and `candidate`: the one rouge-score's `_backtrack_norec` reads out of the
    /// full table, going left when `t[i][j-1] > t[i-1][j]` and up otherwise. Only call it
    /// inside [`with_columns`](Self::with_columns) for `candidate`.
    pub fn mark(&mut self, reference: &[u32], candidate: &[u32], hits: &mut [bool]) {
        self.mark_within(reference, candidate, hits, TABLE_WORDS);
    }

    /// [`mark`](Self::mark) holding at most about `budget` words of the table at a time: a
    /// larger table is kept as every `block`-th row, and each block of rows is recomputed
    /// from its checkpoint when the backtracking reaches it (twice the row work, a square
    /// root of the memory).
    pub(super) fn mark_within(
        &mut self,
        reference: &[u32],
        candidate: &[u32],
        hits: &mut [bool],
        budget: usize,
    ) {
        if reference.is_empty() || candidate.is_empty() {
            return;
        }
        let words = self.words;
        let n = reference.len();
        let block = if (n + 1) * words <= budget {
            n
        } else {
            n.isqrt().max(1)
        };
        // Row 0 is all ones; rows block, 2·block, … come from one forward pass.
        let mut checkpoints = std::mem::take(&mut self.checkpoints);
        checkpoints.clear();
        checkpoints.resize(words, u64::MAX);
        if block < n {
            // Only for tables over the budget, so these allocations are rare.
            let mut current = vec![u64::MAX; words];
            let mut next = vec![0; words];
            for (i, &id) in reference.iter().enumerate().take(n - 1) {
                self.step(&current, &mut next, id);
                if (i + 1) % block == 0 {
                    checkpoints.extend_from_slice(&next);
                }
                std::mem::swap(&mut current, &mut next);
            }
        }
        let mut rows = std::mem::take(&mut self.rows);
        let (mut i, mut j) = (n, candidate.len());
        while i > 0 && j > 0 {
            // Rows start..=end of the block holding rows i - 1 and i.
            let start = (i - 1) / block * block;
            let end = (start + block).min(n);
            rows.clear();
            rows.extend_from_slice(&checkpoints[start / block * words..][..words]);
            rows.resize((end - start + 1) * words, 0);
            for k in 0..end - start {
                let (done, rest) = rows.split_at_mut((k + 1) * words);
                self.step(&done[k * words..], &mut rest[..words], reference[start + k]);
            }
            let row = |i: usize| &rows[(i - start) * words..][..words];
            while i > start && j > 0 {
                if reference[i - 1] == candidate[j - 1] {
                    hits[i - 1] = true;
                    i -= 1;
                    j -= 1;
                } else if zeros_before(row(i), j - 1) > zeros_before(row(i - 1), j) {
                    j -= 1;
                } else {
                    i -= 1;
                }
            }
        }
        self.rows = rows;
        self.checkpoints = checkpoints;
    }
}

/// `V_i = (V + (V & M)) | (V & !M)`, a carry running through the words.
fn update(previous: &[u64], next: &mut [u64], mask: impl Iterator<Item = u64>) {
    let mut carry = false;
    for ((out, &v), m) in next.iter_mut().zip(previous).zip(mask) {
        let (sum, c1) = v.overflowing_add(v & m);
        let (sum, c2) = sum.overflowing_add(u64::from(carry));
        carry = c1 || c2;
        *out = sum | (v & !m);
    }
}

/// `t[i][j]`: the zero bits among the first `j` bits of row `V_i`.
fn zeros_before(row: &[u64], j: usize) -> usize {
    let full = j / 64;
    let mut ones: usize = row[..full].iter().map(|w| w.count_ones() as usize).sum();
    let rest = j % 64;
    if rest > 0 {
        ones += (row[full] & ((1u64 << rest) - 1)).count_ones() as usize;
    }
    j - ones
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `t[la][lb]` by the textbook two-row dynamic programme.
    fn reference_length(a: &[u32], b: &[u32]) -> usize {
        let mut previous = vec![0; b.len() + 1];
        let mut current = previous.clone();
        for &x in a {
            for (j, &y) in b.iter().enumerate() {
                current[j + 1] = if x == y {
                    previous[j] + 1
                } else {
                    current[j].max(previous[j + 1])
                };
            }
            std::mem::swap(&mut previous, &mut current);
        }
        previous[b.len()]
    }

    #[test]
    fn distinct_tokens_do_not_get_a_mask_each() {
        // 30k mostly distinct tokens used to need a 469-word mask each: ~112 MB.
        let m = 30_000;
        let columns: Vec<u32> = (0..m).map(|j| if j % 10 == 0 { 0 } else { j }).collect();
        let rows: Vec<u32> = (0..2_000).map(|i| (i * 7) % m).collect();
        let mut lcs = Lcs::default();
        let length = lcs.length(&rows, &columns, m as usize);
        assert_eq!(length, reference_length(&rows, &columns));
        // Only token 0 (every 10th column) is frequent enough for a stored mask.
        assert_eq!(lcs.masks.len(), lcs.words);
    }

    #[test]
    fn rare_and_frequent_tokens_give_the_same_lcs() {
        // Mixed alphabets: a few frequent tokens (stored masks) among many rare ones (built
        // during the update), over lengths crossing several words.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = |below: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % below
        };
        let mut lcs = Lcs::default();
        for _ in 0..60 {
            let mut text = || -> Vec<u32> {
                (0..next(700))
                    .map(|_| if next(3) == 0 { next(4) } else { 4 + next(400) } as u32)
                    .collect()
            };
            let (a, b) = (text(), text());
            let length = reference_length(&a, &b);
            assert_eq!(lcs.length(&a, &b, 404), length);
            // rougeLsum's backtracking reads out an LCS, with and without checkpoints.
            let mut hits = vec![false; a.len()];
            lcs.with_columns(&b, 404, |lcs| lcs.mark(&a, &b, &mut hits));
            assert_eq!(hits.iter().filter(|&&hit| hit).count(), length);
            let mut checkpointed = vec![false; a.len()];
            lcs.with_columns(&b, 404, |lcs| lcs.mark_within(&a, &b, &mut checkpointed, 0));
            assert_eq!(checkpointed, hits);
        }
    }
}
