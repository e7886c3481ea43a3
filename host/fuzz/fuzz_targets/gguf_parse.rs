//! Fuzz target: `GgufFile::from_bytes` on arbitrary bytes must return Ok or a clean Err, never
//! panic, overflow, over-allocate or hang; when Ok, every metadata value and tensor must be
//! readable and consistent.

#![no_main]

use libfuzzer_sys::fuzz_target;

// The reader is included from the host crate's source rather than depended on through
// `textnlp-host`, which would drag wasmtime into the instrumented build. It is the same code:
// it only uses `textnlp_kernels`, `thiserror` and `memmap2`.
#[allow(dead_code)]
#[path = "../../src/model/gguf/mod.rs"]
mod gguf;

use gguf::{Array, GgufFile, Value};

fn touch_array(a: &Array) -> usize {
    match a {
        Array::String(v) => v.iter().fold(0, |n, s| n.wrapping_add(s.len())),
        Array::Array(v) => v.iter().fold(0, |n, a| n.wrapping_add(touch_array(a))),
        Array::F32(v) => v.iter().filter(|x| x.is_nan()).count(),
        other => other.len() + usize::from(other.integer_at(0).is_some()),
    }
}

/// Reads everything; returns a checksum (wrapping: values are arbitrary) so nothing is
/// optimised away.
fn touch(f: &GgufFile) -> usize {
    let mut n = 0usize;
    let mut add = |x: usize| n = n.wrapping_add(x);
    assert!(matches!(f.version(), 2 | 3));
    assert!(f.alignment() > 0 && f.alignment().is_multiple_of(8));
    assert!(f.data_offset().is_multiple_of(f.alignment()));
    add(f.alignment() as usize);
    let md = f.metadata();
    for (key, value) in md.iter() {
        // (By address: values may be NaN.)
        assert!(md.get(key).is_some_and(|v| std::ptr::eq(v, value)));
        add(match value {
            Value::String(s) => s.len(),
            Value::Array(a) => touch_array(a),
            Value::F32(x) => usize::from(x.is_nan()),
            Value::F64(x) => usize::from(x.is_nan()),
            other => usize::from(other.as_u64().is_some()),
        });
        // The typed getters must agree with the value or fail cleanly.
        add(md
            .get_uint(key)
            .map_or_else(|e| e.to_string().len(), |v| v as usize));
        add(md.get_f32(key).map_or(0, |v| usize::from(v.is_nan())));
        add(md.get_bool(key).map_or(0, usize::from));
        add(md.get_str(key).map_or(0, str::len));
        add(md.get_str_array(key).map_or(0, <[String]>::len));
        add(md.get_i32_array(key).map_or(0, |v| v.len()));
    }
    for info in f.tensors() {
        let t = f
            .tensor(&info.name)
            .expect("every tensor info has its bytes");
        assert_eq!(t.data.len() as u64, info.n_bytes);
        assert!(info.offset.is_multiple_of(f.alignment()));
        assert!(!info.dims.is_empty() && info.dims.len() <= 4);
        add(t.data.first().copied().unwrap_or(0) as usize);
        add(info.n_elements() as usize);
    }
    n
}

fuzz_target!(|data: &[u8]| {
    match GgufFile::from_bytes(data.to_vec()) {
        Ok(f) => {
            std::hint::black_box(touch(&f));
        }
        Err(e) => {
            std::hint::black_box(e.to_string());
        }
    }
});
