//! Per-sequence key/value cache.

use super::config::LlamaConfig;

/// Keys and values of every layer for one sequence, one row (all KV heads) per position.
///
/// Rows are appended as the sequence grows; memory is reserved in chunks so that appends
/// during decoding do not reallocate on every token.
#[derive(Clone, Debug)]
pub struct KvCache {
    layers: Vec<LayerKv>,
    kv_dim: usize,
    len: usize,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct LayerKv {
    pub keys: Vec<f32>,
    pub values: Vec<f32>,
}

impl KvCache {
    pub fn new(config: &LlamaConfig) -> Self {
        KvCache {
            layers: vec![LayerKv::default(); config.n_layer],
            kv_dim: config.kv_dim(),
            len: 0,
        }
    }

    /// Positions stored.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Forgets everything after the first `len` positions (e.g. to reuse a shared prefix).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
        let floats = self.len * self.kv_dim;
        for layer in &mut self.layers {
            layer.keys.truncate(floats);
            layer.values.truncate(floats);
        }
    }

    /// Bytes held (capacity, not just length).
    pub fn memory_bytes(&self) -> usize {
        self.layers
            .iter()
            .map(|l| (l.keys.capacity() + l.values.capacity()) * size_of::<f32>())
            .sum()
    }

    pub(crate) fn layer(&self, l: usize) -> &LayerKv {
        &self.layers[l]
    }

    /// Appends rows for layer `l`; `keys`/`values` hold whole rows.
    pub(crate) fn append(&mut self, l: usize, keys: &[f32], values: &[f32]) {
        let layer = &mut self.layers[l];
        reserve_chunked(&mut layer.keys, keys.len(), self.kv_dim);
        reserve_chunked(&mut layer.values, values.len(), self.kv_dim);
        layer.keys.extend_from_slice(keys);
        layer.values.extend_from_slice(values);
    }

    /// Marks `n` appended positions as complete (after every layer got its rows).
    pub(crate) fn commit(&mut self, n: usize) {
        self.len += n;
    }
}

/// Grows capacity 256 positions at a time (or more for long prefills).
fn reserve_chunked(v: &mut Vec<f32>, extra: usize, kv_dim: usize) {
    if v.capacity() - v.len() < extra {
        v.reserve(extra.max(256 * kv_dim));
    }
}
