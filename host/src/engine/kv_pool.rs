//! The KV-cache pool: a token budget that admission control reserves from, and a free list
//! of caches whose memory is reused by later sequences.

use crate::model::{KvCache, Llama};

/// Free caches kept for reuse.
const KEEP_FREE: usize = 64;
/// Largest cache kept for reuse (about 1,400 tokens of SmolLM2-135M).
const KEEP_BYTES: usize = 32 << 20;

/// A fixed budget of cached tokens shared by all running sequences.
///
/// A sequence reserves prompt + max_tokens when admitted and returns it when it ends, so a
/// running sequence can never run out of cache mid-generation and the process's cache memory
/// stays bounded by `capacity` tokens.
pub struct KvPool {
    capacity: usize,
    reserved: usize,
    free: Vec<KvCache>,
}

impl KvPool {
    pub fn new(capacity: usize) -> Self {
        KvPool {
            capacity,
            reserved: 0,
            free: Vec::new(),
        }
    }

    pub fn reserved(&self) -> usize {
        self.reserved
    }

    /// Reserves `tokens` and hands out an empty cache, or `None` when the budget lacks room.
    pub fn acquire(&mut self, model: &Llama, tokens: usize) -> Option<KvCache> {
        if tokens > self.capacity - self.reserved {
            return None;
        }
        self.reserved += tokens;
        Some(self.free.pop().unwrap_or_else(|| model.new_cache()))
    }

    /// Returns a sequence's cache and its reservation.
    pub fn release(&mut self, mut cache: KvCache, tokens: usize) {
        self.reserved -= tokens;
        cache.truncate(0);
        // Keep a few warm caches of ordinary size; give big or surplus ones back, so idle
        // memory stays small whatever the past traffic was.
        if self.free.len() < KEEP_FREE && cache.memory_bytes() <= KEEP_BYTES {
            self.free.push(cache);
        }
    }
}
