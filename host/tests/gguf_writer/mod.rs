//! A tiny GGUF writer for tests and fuzz seeds.
//!
//! It writes well-formed files from [`Value`]s and tensor specs, and has knobs (raw key/value
//! payloads, raw tensor type ids, explicit offsets and dimension counts) for crafting broken
//! files.

#![allow(dead_code)]

use textnlp_host::model::gguf::{Array, Value};
use textnlp_kernels::TensorType;

/// Little-endian byte sink.
#[derive(Default)]
pub struct Bytes(pub Vec<u8>);

impl Bytes {
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn raw(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(b);
        self
    }
    /// A gguf_string.
    pub fn str(&mut self, s: &str) -> &mut Self {
        self.u64(s.len() as u64).raw(s.as_bytes())
    }

    /// A value's type id followed by its payload.
    pub fn value(&mut self, v: &Value) -> &mut Self {
        self.u32(v.type_id());
        self.payload(v)
    }

    /// A value's payload (no type id).
    pub fn payload(&mut self, v: &Value) -> &mut Self {
        match v {
            Value::U8(x) => self.raw(&x.to_le_bytes()),
            Value::I8(x) => self.raw(&x.to_le_bytes()),
            Value::U16(x) => self.raw(&x.to_le_bytes()),
            Value::I16(x) => self.raw(&x.to_le_bytes()),
            Value::U32(x) => self.raw(&x.to_le_bytes()),
            Value::I32(x) => self.raw(&x.to_le_bytes()),
            Value::F32(x) => self.raw(&x.to_le_bytes()),
            Value::Bool(x) => self.u8(u8::from(*x)),
            Value::String(s) => self.str(s),
            Value::Array(a) => self.array(a),
            Value::U64(x) => self.raw(&x.to_le_bytes()),
            Value::I64(x) => self.raw(&x.to_le_bytes()),
            Value::F64(x) => self.raw(&x.to_le_bytes()),
        }
    }

    /// An array: element type, count, elements.
    pub fn array(&mut self, a: &Array) -> &mut Self {
        self.u32(a.elem_type_id()).u64(a.len() as u64);
        match a {
            Array::U8(v) => v.iter().for_each(|x| {
                self.raw(&x.to_le_bytes());
            }),
            Array::I8(v) => v.iter().for_each(|x| {
                self.raw(&x.to_le_bytes());
            }),
            Array::U16(v) => v.iter().for_each(|x| {
                self.raw(&x.to_le_bytes());
            }),
            Array::I16(v) => v.iter().for_each(|x| {
                self.raw(&x.to_le_bytes());
            }),
            Array::U32(v) => v.iter().for_each(|x| {
                self.raw(&x.to_le_bytes());
            }),
            Array::I32(v) => v.iter().for_each(|x| {
                self.raw(&x.to_le_bytes());
            }),
            Array::F32(v) => v.iter().for_each(|x| {
                self.raw(&x.to_le_bytes());
            }),
            Array::Bool(v) => v.iter().for_each(|x| {
                self.u8(u8::from(*x));
            }),
            Array::String(v) => v.iter().for_each(|x| {
                self.str(x);
            }),
            Array::Array(v) => v.iter().for_each(|x| {
                self.array(x);
            }),
            Array::U64(v) => v.iter().for_each(|x| {
                self.raw(&x.to_le_bytes());
            }),
            Array::I64(v) => v.iter().for_each(|x| {
                self.raw(&x.to_le_bytes());
            }),
            Array::F64(v) => v.iter().for_each(|x| {
                self.raw(&x.to_le_bytes());
            }),
        }
        self
    }
}

/// One metadata entry to write.
pub enum Kv {
    /// A well-formed key/value pair.
    Value(String, Value),
    /// A key, a raw type id and raw payload bytes (for broken values).
    Raw(String, u32, Vec<u8>),
}

/// One tensor to write.
#[derive(Clone)]
pub struct TensorSpec {
    pub name: String,
    /// ggml type id (raw, so unsupported ids can be written).
    pub ggml_type: u32,
    pub dims: Vec<u64>,
    /// Overrides the written n_dims (dims are still all written).
    pub n_dims: Option<u32>,
    /// Overrides the offset (relative to the data section); otherwise tensors are packed in
    /// order, each aligned.
    pub offset: Option<u64>,
    /// Data bytes; otherwise the size computed from dims and type, filled with a pattern.
    pub data: Option<Vec<u8>>,
}

impl TensorSpec {
    pub fn new(name: &str, ty: TensorType, dims: &[u64]) -> Self {
        TensorSpec {
            name: name.to_owned(),
            ggml_type: ty.ggml_id(),
            dims: dims.to_vec(),
            n_dims: None,
            offset: None,
            data: None,
        }
    }

    /// Byte size from dims and type (0 when it cannot be computed).
    pub fn n_bytes(&self) -> u64 {
        let Some(ty) = TensorType::from_ggml(self.ggml_type) else {
            return 0;
        };
        let Some((&ne0, rest)) = self.dims.split_first() else {
            return 0;
        };
        ty.row_bytes(ne0)
            .and_then(|r| rest.iter().try_fold(r, |a, &d| a.checked_mul(d)))
            .unwrap_or(0)
    }
}

/// A whole file to write.
pub struct GgufSpec {
    pub magic: [u8; 4],
    pub version: u32,
    pub kvs: Vec<Kv>,
    pub tensors: Vec<TensorSpec>,
    /// Alignment used for padding and packing (write `general.alignment` yourself in `kvs` to
    /// make the reader use it too).
    pub alignment: u64,
    /// Bytes to cut off the end.
    pub truncate_end: usize,
}

impl Default for GgufSpec {
    fn default() -> Self {
        GgufSpec {
            magic: *b"GGUF",
            version: 3,
            kvs: Vec::new(),
            tensors: Vec::new(),
            alignment: 32,
            truncate_end: 0,
        }
    }
}

fn pad_to(n: u64, align: u64) -> u64 {
    n.div_ceil(align) * align
}

impl GgufSpec {
    pub fn kv(mut self, key: &str, v: Value) -> Self {
        self.kvs.push(Kv::Value(key.to_owned(), v));
        self
    }

    pub fn tensor(mut self, t: TensorSpec) -> Self {
        self.tensors.push(t);
        self
    }

    /// Offsets the tensors will get (relative to the data section).
    pub fn offsets(&self) -> Vec<u64> {
        let mut next = 0u64;
        self.tensors
            .iter()
            .map(|t| {
                let off = t.offset.unwrap_or(next);
                let len = t.data.as_ref().map_or(t.n_bytes(), |d| d.len() as u64);
                next = pad_to(off + len, self.alignment);
                off
            })
            .collect()
    }

    /// Data bytes of tensor `i` (explicit, or a deterministic pattern).
    pub fn tensor_data(&self, i: usize) -> Vec<u8> {
        let t = &self.tensors[i];
        t.data.clone().unwrap_or_else(|| {
            (0..t.n_bytes())
                .map(|j| (j as u8).wrapping_mul(31).wrapping_add(i as u8))
                .collect()
        })
    }

    pub fn build(&self) -> Vec<u8> {
        let mut b = Bytes::default();
        b.raw(&self.magic).u32(self.version);
        b.u64(self.tensors.len() as u64).u64(self.kvs.len() as u64);
        for kv in &self.kvs {
            match kv {
                Kv::Value(k, v) => {
                    b.str(k).value(v);
                }
                Kv::Raw(k, ty, payload) => {
                    b.str(k).u32(*ty).raw(payload);
                }
            }
        }
        let offsets = self.offsets();
        for (t, &off) in self.tensors.iter().zip(&offsets) {
            b.str(&t.name).u32(t.n_dims.unwrap_or(t.dims.len() as u32));
            for &d in &t.dims {
                b.u64(d);
            }
            b.u32(t.ggml_type).u64(off);
        }
        let data_start = pad_to(b.0.len() as u64, self.alignment) as usize;
        b.0.resize(data_start, 0);
        for (i, &off) in offsets.iter().enumerate() {
            let data = self.tensor_data(i);
            if data.is_empty() {
                continue;
            }
            let start = data_start + off as usize;
            if b.0.len() < start {
                b.0.resize(start, 0);
            }
            let end = start + data.len();
            if b.0.len() < end {
                b.0.resize(end, 0);
            }
            b.0[start..end].copy_from_slice(&data);
        }
        let keep = b.0.len().saturating_sub(self.truncate_end);
        b.0.truncate(keep);
        b.0
    }
}

/// One metadata value of every type, including nested and empty arrays.
pub fn every_value_type() -> Vec<(String, Value)> {
    let s = |x: &str| x.to_owned();
    vec![
        (s("t.u8"), Value::U8(200)),
        (s("t.i8"), Value::I8(-100)),
        (s("t.u16"), Value::U16(65_000)),
        (s("t.i16"), Value::I16(-32_000)),
        (s("t.u32"), Value::U32(4_000_000_000)),
        (s("t.i32"), Value::I32(-2_000_000_000)),
        (s("t.f32"), Value::F32(1.5e-5)),
        (s("t.bool.true"), Value::Bool(true)),
        (s("t.bool.false"), Value::Bool(false)),
        (s("t.string"), Value::String(s("héllo, GGUF ✓"))),
        (s("t.string.empty"), Value::String(String::new())),
        (s("t.u64"), Value::U64(u64::MAX - 7)),
        (s("t.i64"), Value::I64(i64::MIN + 3)),
        (s("t.f64"), Value::F64(-2.25e300)),
        (s("a.u8"), Value::Array(Array::U8(vec![0, 1, 255]))),
        (s("a.i8"), Value::Array(Array::I8(vec![-128, 0, 127]))),
        (s("a.u16"), Value::Array(Array::U16(vec![1, 65_535]))),
        (s("a.i16"), Value::Array(Array::I16(vec![-32_768, 5]))),
        (s("a.u32"), Value::Array(Array::U32(vec![7, u32::MAX]))),
        (s("a.i32"), Value::Array(Array::I32(vec![1, -2, 3, 6]))),
        (s("a.f32"), Value::Array(Array::F32(vec![0.5, -1.0, 3.25]))),
        (
            s("a.bool"),
            Value::Array(Array::Bool(vec![true, false, true])),
        ),
        (
            s("a.string"),
            Value::Array(Array::String(vec![s("a b"), s(""), s("Ġt he")])),
        ),
        (s("a.u64"), Value::Array(Array::U64(vec![u64::MAX, 0]))),
        (s("a.i64"), Value::Array(Array::I64(vec![i64::MIN, -1]))),
        (s("a.f64"), Value::Array(Array::F64(vec![1e-300, 2.0]))),
        (s("a.empty"), Value::Array(Array::F32(vec![]))),
        (
            s("a.nested"),
            Value::Array(Array::Array(vec![
                Array::I32(vec![1, 2]),
                Array::String(vec![s("x")]),
                Array::Array(vec![Array::Bool(vec![false]), Array::U8(vec![])]),
                Array::Array(vec![]),
            ])),
        ),
    ]
}

/// A small, valid file: every value type and a few tensors of different types.
pub fn sample_spec(version: u32) -> GgufSpec {
    let mut spec = GgufSpec {
        version,
        ..GgufSpec::default()
    };
    spec = spec
        .kv("general.architecture", Value::String("llama".into()))
        .kv("general.alignment", Value::U32(32));
    for (k, v) in every_value_type() {
        spec = spec.kv(&k, v);
    }
    spec.tensor(TensorSpec::new("norm.weight", TensorType::F32, &[8]))
        .tensor(TensorSpec::new("emb.weight", TensorType::Q8_0, &[64, 3]))
        .tensor(TensorSpec::new(
            "blk.0.q.weight",
            TensorType::Q4_1,
            &[32, 2, 1, 2],
        ))
        .tensor(TensorSpec::new("h.weight", TensorType::F16, &[3, 5]))
        .tensor(TensorSpec::new("k.weight", TensorType::Q4_K, &[256, 1]))
}
