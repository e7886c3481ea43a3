//! Per-sequence key/value cache.

use half::f16;
use half::slice::HalfFloatSliceExt;

use super::config::LlamaConfig;

/// Keys and values of every layer for one sequence, one row (all KV heads) per position,
/// stored as f16 (as llama.cpp does by default): attention over many sequences is bound by
/// reading the cache, and f16 halves that traffic.
///
/// Rows are appended as the sequence grows; memory is reserved in chunks so that appends
/// during decoding do not reallocate on every token.
///
/// On the CUDA backend the rows live in the GPU's paged cache instead: the cache holds the
/// sequence's pages, and `layers` stays empty.
#[derive(Debug)]
pub struct KvCache {
    layers: Vec<LayerKv>,
    kv_dim: usize,
    len: usize,
    #[cfg(feature = "cuda")]
    device: Option<super::cuda::DevicePages>,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct LayerKv {
    pub keys: Vec<f16>,
    pub values: Vec<f16>,
}

impl KvCache {
    pub fn new(config: &LlamaConfig) -> Self {
        KvCache {
            layers: vec![LayerKv::default(); config.n_layer],
            kv_dim: config.kv_dim(),
            len: 0,
            #[cfg(feature = "cuda")]
            device: None,
        }
    }

    /// An empty cache whose rows live in the GPU pages of `pages`.
    #[cfg(feature = "cuda")]
    pub(crate) fn on_device(config: &LlamaConfig, pages: super::cuda::DevicePages) -> Self {
        KvCache {
            layers: Vec::new(),
            kv_dim: config.kv_dim(),
            len: 0,
            device: Some(pages),
        }
    }

    /// Whether the rows live on the GPU.
    pub fn is_on_device(&self) -> bool {
        #[cfg(feature = "cuda")]
        return self.device.is_some();
        #[cfg(not(feature = "cuda"))]
        false
    }

    #[cfg(feature = "cuda")]
    pub(crate) fn device_pages(&mut self) -> Option<&mut super::cuda::DevicePages> {
        self.device.as_mut()
    }

    /// The GPU pages holding the rows, in position order (none on the CPU).
    #[cfg(feature = "cuda")]
    pub(crate) fn device_page_ids(&self) -> &[i32] {
        self.device.as_ref().map_or(&[], |p| p.ids())
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
        #[cfg(feature = "cuda")]
        if let Some(pages) = &mut self.device {
            pages.truncate(self.len);
        }
    }

    /// Host bytes held (capacity, not just length).
    pub fn memory_bytes(&self) -> usize {
        self.layers
            .iter()
            .map(|l| (l.keys.capacity() + l.values.capacity()) * size_of::<f16>())
            .sum()
    }

    pub(crate) fn layer(&self, l: usize) -> &LayerKv {
        &self.layers[l]
    }

    /// Appends rows for layer `l`; `keys`/`values` hold whole rows.
    pub(crate) fn append(&mut self, l: usize, keys: &[f32], values: &[f32]) {
        let layer = &mut self.layers[l];
        append_f16(&mut layer.keys, keys, self.kv_dim);
        append_f16(&mut layer.values, values, self.kv_dim);
    }

    /// Marks `n` appended positions as complete (after every layer got its rows).
    pub(crate) fn commit(&mut self, n: usize) {
        self.len += n;
    }
}

/// Converts and appends rows, growing capacity 256 positions at a time (or more for long
/// prefills) so decoding does not reallocate on every token.
fn append_f16(dst: &mut Vec<f16>, src: &[f32], kv_dim: usize) {
    if dst.capacity() - dst.len() < src.len() {
        dst.reserve(src.len().max(256 * kv_dim));
    }
    let start = dst.len();
    dst.resize(start + src.len(), f16::ZERO);
    dst[start..].convert_from_f32_slice(src);
}
