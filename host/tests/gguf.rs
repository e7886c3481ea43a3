//! GGUF reader: the real model, round trips through a tiny writer, crafted broken files, and
//! truncation/mutation robustness on the real header.

mod gguf_writer;

use std::path::Path;
use std::time::Instant;

use gguf_writer::{Bytes, GgufSpec, Kv, TensorSpec, every_value_type, sample_spec};
use textnlp_host::model::gguf::{self, Array, GgufError, GgufFile, GgufHeader, Value};
use textnlp_host::paths;
use textnlp_kernels::TensorType;

/// Start of the tensor data in the real model (from model_meta.txt).
const REAL_DATA_OFFSET: u64 = 1_785_664;
const REAL_FILE_LEN: u64 = 98_362_432;

/// The installed model, or `None` (with a note) when it is not installed.
fn real_model() -> Option<std::path::PathBuf> {
    let path = paths::default_model();
    if path.exists() {
        Some(path)
    } else {
        eprintln!(
            "skipping: {} not found (run scripts/setup.sh)",
            path.display()
        );
        None
    }
}

/// Reads every metadata value and tensor, the way the fuzz target does.
fn touch_all(h: &GgufHeader, bytes: &[u8]) -> u64 {
    fn array(a: &Array) -> u64 {
        match a {
            Array::String(v) => v.iter().map(|s| s.len() as u64).sum(),
            Array::Array(v) => v.iter().map(array).sum(),
            other => other.len() as u64,
        }
    }
    let mut n = 0u64;
    for (k, v) in h.metadata().iter() {
        n += k.len() as u64;
        n += match v {
            Value::Array(a) => array(a),
            Value::String(s) => s.len() as u64,
            other => u64::from(other.as_u64().is_some()),
        };
        assert!(h.metadata().get(k).is_some());
    }
    for t in h.tensors() {
        let data = h.tensor_data(bytes, t).expect("validated tensor has data");
        assert_eq!(data.len() as u64, t.n_bytes);
        n += data.first().copied().unwrap_or(0) as u64 + t.n_elements();
    }
    n
}

// ---------------------------------------------------------------------------------------------
// (a) The real model.

#[test]
fn real_model_parses() {
    let Some(path) = real_model() else { return };
    let t0 = Instant::now();
    let f = GgufFile::open(&path).expect("real model parses");
    let elapsed = t0.elapsed();
    eprintln!("GgufFile::open on the real model: {elapsed:?}");
    if !cfg!(debug_assertions) {
        assert!(
            elapsed.as_millis() < 100,
            "parsing took {elapsed:?}, expected well under 100 ms"
        );
    }

    assert_eq!(f.version(), 3);
    assert_eq!(f.alignment(), 32);
    assert_eq!(f.data_offset(), REAL_DATA_OFFSET);
    assert_eq!(f.bytes().len() as u64, REAL_FILE_LEN);
    assert_eq!(f.tensors().len(), 272);
    // model_meta.txt lists 3 GGUF.* pseudo keys on top of the 33 stored pairs.
    assert_eq!(f.metadata().len(), 33);
    assert!(f.metadata().get("GGUF.version").is_none());

    let md = f.metadata();
    assert_eq!(md.get_uint("llama.block_count").unwrap(), 30);
    assert_eq!(md.get("llama.block_count"), Some(&Value::U32(30)));
    assert_eq!(md.get_uint("llama.context_length").unwrap(), 8192);
    assert_eq!(md.get_uint("llama.embedding_length").unwrap(), 576);
    assert_eq!(md.get_uint("llama.feed_forward_length").unwrap(), 1536);
    assert_eq!(md.get_uint("llama.attention.head_count").unwrap(), 9);
    assert_eq!(md.get_uint("llama.attention.head_count_kv").unwrap(), 3);
    assert_eq!(md.get_uint("llama.vocab_size").unwrap(), 49152);
    assert_eq!(md.get_uint("llama.rope.dimension_count").unwrap(), 64);
    assert_eq!(md.get_f32("llama.rope.freq_base").unwrap(), 100_000.0);
    assert_eq!(
        md.get_f32("llama.attention.layer_norm_rms_epsilon")
            .unwrap(),
        1e-5
    );
    assert_eq!(md.get_str("general.architecture").unwrap(), "llama");
    assert_eq!(md.get_str("tokenizer.ggml.model").unwrap(), "gpt2");
    assert_eq!(md.get_str("tokenizer.ggml.pre").unwrap(), "smollm");
    assert!(!md.get_bool("tokenizer.ggml.add_bos_token").unwrap());
    assert_eq!(md.get_uint("tokenizer.ggml.bos_token_id").unwrap(), 1);
    assert_eq!(md.get_uint("tokenizer.ggml.eos_token_id").unwrap(), 2);
    assert!(
        md.get_str("tokenizer.chat_template")
            .unwrap()
            .starts_with("{% for message in messages %}")
    );
    assert_eq!(md.opt_uint("general.alignment").unwrap(), None);

    let tokens = md.get_str_array("tokenizer.ggml.tokens").unwrap();
    assert_eq!(tokens.len(), 49152);
    assert_eq!(tokens[0], "<|endoftext|>");
    assert_eq!(tokens[1], "<|im_start|>");
    assert_eq!(tokens[49151], "ectable");
    let merges = md.get_str_array("tokenizer.ggml.merges").unwrap();
    assert_eq!(merges.len(), 48900);
    assert_eq!(merges[0], "Ġ t");
    let types = md.get_i32_array("tokenizer.ggml.token_type").unwrap();
    assert_eq!(types.len(), 49152);
    assert_eq!(types.iter().filter(|&&t| t == 3).count(), 17);
    assert_eq!(types.iter().filter(|&&t| t == 1).count(), 49135);
    assert_eq!(
        md.get_str_array("general.languages").unwrap(),
        &["en".to_owned()]
    );

    // Metadata is in file order.
    let keys: Vec<&str> = md.keys().collect();
    assert_eq!(keys[0], "general.architecture");
    assert_eq!(keys[32], "general.quantization_version");

    let emb = f.tensor("token_embd.weight").expect("token_embd.weight");
    assert_eq!(emb.info.ty, TensorType::Q8_0);
    assert_eq!(emb.info.dims, vec![576, 49152]);
    assert_eq!(emb.info.offset, 0);
    assert_eq!(emb.info.n_bytes, 30_081_024);
    assert_eq!(emb.data.len(), 30_081_024);
    assert_eq!(
        emb.data.as_ptr() as usize - f.bytes().as_ptr() as usize,
        REAL_DATA_OFFSET as usize
    );
    assert_eq!(f.tensors()[0].name, "token_embd.weight");

    let q = f.tensor("blk.0.ffn_down.weight").unwrap();
    assert_eq!(q.info.ty, TensorType::Q4_1);
    assert_eq!(q.info.dims, vec![1536, 576]);
    assert_eq!(q.info.n_bytes, 552_960);
    assert_eq!(q.info.offset, 31_868_992 - REAL_DATA_OFFSET);

    let last = f.tensor("output_norm.weight").unwrap();
    assert_eq!(last.info.ty, TensorType::F32);
    assert_eq!(
        REAL_DATA_OFFSET + last.info.offset + last.info.n_bytes,
        REAL_FILE_LEN
    );
    assert!(f.tensor("output.weight").is_none());

    let mut by_type = std::collections::BTreeMap::new();
    for t in f.tensors() {
        let e = by_type.entry(t.ty.name()).or_insert((0u32, 0u64));
        e.0 += 1;
        e.1 += t.n_bytes;
    }
    assert_eq!(by_type["Q8_0"], (1, 30_081_024));
    assert_eq!(by_type["F32"], (61, 140_544));
    assert_eq!(by_type["Q4_1"], (210, 66_355_200));
    assert_eq!(f.iter_tensors().count(), 272);
    touch_all(f.header(), f.bytes());

    // Typed getter errors.
    assert!(matches!(
        md.get_uint("no.such.key"),
        Err(GgufError::MissingKey { .. })
    ));
    assert!(matches!(
        md.get_str("llama.block_count"),
        Err(GgufError::WrongType {
            expected: "string",
            found: "u32",
            ..
        })
    ));
    assert!(matches!(
        md.get_i32_array("tokenizer.ggml.tokens"),
        Err(GgufError::WrongType { .. })
    ));
    assert_eq!(md.opt_str("no.such.key").unwrap(), None);
    assert!(md.opt_str("llama.block_count").is_err());
}

#[test]
fn open_missing_file_is_io_error() {
    let path = Path::new("/nonexistent/dir/model.gguf");
    match GgufFile::open(path) {
        Err(GgufError::Io { path: p, .. }) => assert_eq!(p, path),
        other => panic!("expected Io error, got {other:?}"),
    }
}

#[test]
fn open_empty_and_tiny_files() {
    let dir = std::env::temp_dir().join(format!("textnlp-gguf-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let empty = dir.join("empty.gguf");
    std::fs::write(&empty, b"").unwrap();
    assert!(matches!(
        GgufFile::open(&empty),
        Err(GgufError::Truncated { .. })
    ));
    let small = dir.join("small.gguf");
    std::fs::write(&small, sample_spec(3).build()).unwrap();
    let f = GgufFile::open(&small).expect("small file opens");
    assert_eq!(f.tensors().len(), 5);
    // A directory cannot be mapped.
    assert!(matches!(GgufFile::open(&dir), Err(GgufError::Io { .. })));
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---------------------------------------------------------------------------------------------
// (b) Round trips through the test writer.

fn check_round_trip(version: u32) {
    let spec = sample_spec(version);
    let bytes = spec.build();
    let f = GgufFile::from_bytes(bytes.clone()).expect("sample parses");
    assert_eq!(f.version(), version);
    assert_eq!(f.alignment(), 32);
    assert_eq!(f.data_offset() % 32, 0);

    // Metadata: same pairs, same order.
    let expected: Vec<(String, Value)> = spec
        .kvs
        .iter()
        .map(|kv| match kv {
            Kv::Value(k, v) => (k.clone(), v.clone()),
            Kv::Raw(..) => unreachable!(),
        })
        .collect();
    let got: Vec<(String, Value)> = f
        .metadata()
        .iter()
        .map(|(k, v)| (k.to_owned(), v.clone()))
        .collect();
    assert_eq!(got, expected);
    for (k, v) in &expected {
        assert_eq!(f.metadata().get(k), Some(v), "{k}");
    }

    // Tensors: same infos, same bytes.
    let offsets = spec.offsets();
    assert_eq!(f.tensors().len(), spec.tensors.len());
    for (i, (t, info)) in spec.tensors.iter().zip(f.tensors()).enumerate() {
        assert_eq!(info.name, t.name);
        assert_eq!(info.ty.ggml_id(), t.ggml_type);
        assert_eq!(info.dims, t.dims);
        assert_eq!(info.offset, offsets[i]);
        assert_eq!(info.n_bytes, t.n_bytes());
        let tensor = f.tensor(&t.name).unwrap();
        assert_eq!(tensor.data, spec.tensor_data(i).as_slice());
    }
    assert_eq!(f.tensor("h.weight").unwrap().info.n_bytes, 3 * 5 * 2);
    assert_eq!(f.tensor("k.weight").unwrap().info.n_bytes, 144);
    assert_eq!(f.tensor("blk.0.q.weight").unwrap().info.n_bytes, 4 * 20);

    // Typed getters across widths.
    let md = f.metadata();
    assert_eq!(md.get_uint("t.u8").unwrap(), 200);
    assert_eq!(md.get_uint("t.u16").unwrap(), 65_000);
    assert_eq!(md.get_uint("t.u32").unwrap(), 4_000_000_000);
    assert_eq!(md.get_uint("t.u64").unwrap(), u64::MAX - 7);
    assert!(matches!(
        md.get_uint("t.i8"),
        Err(GgufError::OutOfRange { .. })
    ));
    assert!(matches!(
        md.get_uint("t.f32"),
        Err(GgufError::WrongType { .. })
    ));
    assert_eq!(md.get_f32("t.f32").unwrap(), 1.5e-5);
    assert_eq!(md.get_f32("t.f64").unwrap(), f32::NEG_INFINITY); // -2.25e300 overflows f32
    assert!(md.get_bool("t.bool.true").unwrap());
    assert!(!md.get_bool("t.bool.false").unwrap());
    assert_eq!(md.get_str("t.string").unwrap(), "héllo, GGUF ✓");
    assert_eq!(md.get_str("t.string.empty").unwrap(), "");
    assert_eq!(
        md.get_str_array("a.string").unwrap(),
        &["a b".to_owned(), String::new(), "Ġt he".to_owned()]
    );
    assert_eq!(md.get_i32_array("a.i32").unwrap(), vec![1, -2, 3, 6]);
    assert_eq!(md.get_i32_array("a.u8").unwrap(), vec![0, 1, 255]);
    assert_eq!(md.get_i32_array("a.i16").unwrap(), vec![-32_768, 5]);
    assert!(matches!(
        md.get_i32_array("a.u32"),
        Err(GgufError::OutOfRange { .. })
    ));
    assert!(matches!(
        md.get_i32_array("a.f32"),
        Err(GgufError::WrongType { .. })
    ));
    assert_eq!(md.opt_i32_array("a.empty.missing").unwrap(), None);
    assert_eq!(md.opt_uint("t.u8").unwrap(), Some(200));
    assert_eq!(md.opt_f32("t.f32").unwrap(), Some(1.5e-5));
    assert_eq!(md.opt_bool("t.bool.true").unwrap(), Some(true));
    assert!(md.opt_str_array("a.string").unwrap().is_some());
    match md.get("a.nested") {
        Some(Value::Array(Array::Array(inner))) => {
            assert_eq!(inner.len(), 4);
            assert_eq!(inner[2].len(), 2);
        }
        other => panic!("a.nested: {other:?}"),
    }

    // parse() on a borrowed buffer agrees with from_bytes.
    let h = gguf::parse(&bytes).unwrap();
    assert_eq!(h.metadata(), f.metadata());
    assert_eq!(h.tensors(), f.tensors());
}

#[test]
fn round_trip_v3() {
    check_round_trip(3);
}

#[test]
fn round_trip_v2() {
    check_round_trip(2);
}

#[test]
fn default_and_custom_alignment() {
    // No general.alignment: 32.
    let spec = GgufSpec::default().tensor(TensorSpec::new("a", TensorType::F32, &[3]));
    let f = GgufFile::from_bytes(spec.build()).unwrap();
    assert_eq!(f.alignment(), 32);
    assert_eq!(f.data_offset() % 32, 0);

    // general.alignment = 64 as u64 (any integer type is accepted).
    let mut spec = GgufSpec {
        alignment: 64,
        ..GgufSpec::default()
    }
    .kv("general.alignment", Value::U64(64));
    spec = spec
        .tensor(TensorSpec::new("a", TensorType::F32, &[3]))
        .tensor(TensorSpec::new("b", TensorType::F32, &[3]));
    let f = GgufFile::from_bytes(spec.build()).unwrap();
    assert_eq!(f.alignment(), 64);
    assert_eq!(f.data_offset() % 64, 0);
    assert_eq!(f.tensor("b").unwrap().info.offset, 64);

    // No tensors, no data, no padding: fine.
    let bytes = Bytes::default().raw(b"GGUF").u32(3).u64(0).u64(0).0.clone();
    let f = GgufFile::from_bytes(bytes).unwrap();
    assert!(f.tensors().is_empty() && f.metadata().is_empty());
}

/// Writes the seed corpus for the fuzz target when TEXTNLP_WRITE_FUZZ_SEEDS names a folder.
#[test]
fn write_fuzz_seeds() {
    let Some(dir) = std::env::var_os("TEXTNLP_WRITE_FUZZ_SEEDS") else {
        return;
    };
    let dir = Path::new(&dir);
    std::fs::create_dir_all(dir).unwrap();
    let mut seeds = vec![
        ("sample_v3.gguf".to_owned(), sample_spec(3).build()),
        ("sample_v2.gguf".to_owned(), sample_spec(2).build()),
    ];
    let small = GgufSpec::default()
        .kv("general.architecture", Value::String("llama".into()))
        .kv("llama.block_count", Value::U32(1))
        .kv(
            "tokenizer.ggml.tokens",
            Value::Array(Array::String(vec!["a".into(), "b".into()])),
        )
        .tensor(TensorSpec::new("w", TensorType::Q4_1, &[32, 1]));
    seeds.push(("small.gguf".to_owned(), small.build()));
    for (k, v) in every_value_type() {
        let spec =
            GgufSpec::default()
                .kv(&k, v)
                .tensor(TensorSpec::new("t", TensorType::F16, &[2]));
        seeds.push((format!("one_{k}.gguf"), spec.build()));
    }
    for (name, bytes) in seeds {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// Crafted broken files: each must give its specific error.

fn err(bytes: Vec<u8>) -> GgufError {
    match GgufFile::from_bytes(bytes) {
        Ok(_) => panic!("expected an error, parsed fine"),
        Err(e) => {
            // Every error renders.
            assert!(!e.to_string().is_empty());
            e
        }
    }
}

fn one_tensor(t: TensorSpec) -> Vec<u8> {
    GgufSpec::default().tensor(t).build()
}

#[test]
fn bad_magic() {
    let mut b = sample_spec(3).build();
    b[0..4].copy_from_slice(b"GGML");
    assert!(matches!(err(b), GgufError::BadMagic { found } if &found == b"GGML"));
    assert!(matches!(
        err(b"GG".to_vec()),
        GgufError::Truncated { offset: 0, .. }
    ));
}

#[test]
fn unsupported_versions() {
    for v in [0, 1, 4, 99, 0x0300_0000] {
        let b = GgufSpec {
            version: v,
            ..sample_spec(3)
        }
        .build();
        match err(b) {
            GgufError::UnsupportedVersion { version, offset: 4 } => assert_eq!(version, v),
            e => panic!("version {v}: {e:?}"),
        }
    }
}

#[test]
fn huge_counts() {
    // Tensor count.
    let mut b = sample_spec(3).build();
    b[8..16].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
    assert!(matches!(
        err(b),
        GgufError::CountTooLarge { offset: 8, count, .. } if count == u64::MAX / 2
    ));
    // KV count.
    let mut b = sample_spec(3).build();
    b[16..24].copy_from_slice(&1_000_000u64.to_le_bytes());
    assert!(matches!(
        err(b),
        GgufError::CountTooLarge { offset: 16, .. }
    ));
    // Tensor and KV counts that each fit alone but not together.
    let len = sample_spec(3).build().len() as u64;
    let mut b = sample_spec(3).build();
    b[8..16].copy_from_slice(&(len / 32 - 1).to_le_bytes());
    b[16..24].copy_from_slice(&(len / 13 - 1).to_le_bytes());
    assert!(matches!(
        err(b),
        GgufError::CountTooLarge { offset: 16, .. }
    ));

    // Array length, for fixed-size, string and nested elements.
    for elem_type in [0u32, 4, 8, 9, 12] {
        let payload = Bytes::default()
            .u32(elem_type)
            .u64(1 << 60)
            .u64(0)
            .0
            .clone();
        let b = GgufSpec {
            kvs: vec![Kv::Raw("big".into(), 9, payload)],
            ..GgufSpec::default()
        }
        .build();
        match err(b) {
            GgufError::CountTooLarge {
                count,
                offset,
                field,
                ..
            } => {
                assert_eq!(count, 1 << 60);
                assert_eq!(offset, 24 + 8 + 3 + 4 + 4);
                assert!(field.contains("\"big\""), "{field}");
            }
            e => panic!("elem type {elem_type}: {e:?}"),
        }
    }
}

#[test]
fn string_past_end() {
    let payload = Bytes::default().u64(1000).raw(b"short").0.clone();
    let b = GgufSpec {
        kvs: vec![Kv::Raw("s".into(), 8, payload)],
        ..GgufSpec::default()
    }
    .build();
    match err(b) {
        GgufError::Truncated {
            needed: 1000,
            offset,
            ..
        } => assert_eq!(offset, 24 + 8 + 1 + 4 + 8),
        e => panic!("{e:?}"),
    }
    // A key length of u64::MAX.
    let mut b = Bytes::default();
    b.raw(b"GGUF")
        .u32(3)
        .u64(0)
        .u64(1)
        .u64(u64::MAX)
        .raw(&[b'k'; 20]);
    assert!(matches!(
        err(b.0),
        GgufError::Truncated {
            needed: u64::MAX,
            offset: 32,
            ..
        }
    ));
}

#[test]
fn unknown_value_type() {
    let b = GgufSpec {
        kvs: vec![Kv::Raw("x".into(), 13, vec![0; 8])],
        ..GgufSpec::default()
    }
    .build();
    assert!(matches!(
        err(b),
        GgufError::UnknownValueType {
            value_type: 13,
            offset: 33,
            ..
        }
    ));
    // Inside an array.
    let payload = Bytes::default().u32(13).u64(1).0.clone();
    let b = GgufSpec {
        kvs: vec![Kv::Raw("x".into(), 9, payload)],
        ..GgufSpec::default()
    }
    .build();
    assert!(matches!(
        err(b),
        GgufError::UnknownValueType {
            value_type: 13,
            offset: 37,
            ..
        }
    ));
}

#[test]
fn bad_bool_and_utf8() {
    let b = GgufSpec {
        kvs: vec![Kv::Raw("b".into(), 7, vec![2])],
        ..GgufSpec::default()
    }
    .build();
    assert!(matches!(
        err(b),
        GgufError::BadBool {
            value: 2,
            offset: 37,
            ..
        }
    ));
    let payload = Bytes::default().u32(7).u64(3).raw(&[1, 0, 7]).0.clone();
    let b = GgufSpec {
        kvs: vec![Kv::Raw("b".into(), 9, payload)],
        ..GgufSpec::default()
    }
    .build();
    assert!(matches!(
        err(b),
        GgufError::BadBool {
            value: 7,
            offset: 51,
            ..
        }
    ));
    let payload = Bytes::default().u64(2).raw(&[0xC3, 0x28]).0.clone();
    let b = GgufSpec {
        kvs: vec![Kv::Raw("s".into(), 8, payload)],
        ..GgufSpec::default()
    }
    .build();
    assert!(matches!(err(b), GgufError::InvalidUtf8 { offset: 37, .. }));
    // Invalid UTF-8 in a key.
    let mut b = Bytes::default();
    b.raw(b"GGUF")
        .u32(3)
        .u64(0)
        .u64(1)
        .u64(1)
        .raw(&[0xFF])
        .u32(0)
        .u8(0);
    assert!(matches!(
        err(b.0),
        GgufError::InvalidUtf8 { offset: 24, .. }
    ));
}

#[test]
fn nesting_depth_is_limited() {
    let mut a = Array::U8(vec![1]);
    for _ in 0..gguf::MAX_ARRAY_DEPTH - 1 {
        a = Array::Array(vec![a]);
    }
    let ok = GgufSpec::default()
        .kv("deep", Value::Array(a.clone()))
        .build();
    GgufFile::from_bytes(ok).expect("MAX_ARRAY_DEPTH levels parse");
    let too_deep = GgufSpec::default()
        .kv("deep", Value::Array(Array::Array(vec![a])))
        .build();
    assert!(matches!(err(too_deep), GgufError::ArrayTooDeep { .. }));
}

#[test]
fn duplicate_keys_and_tensors() {
    let b = GgufSpec::default()
        .kv("k", Value::U8(1))
        .kv("k", Value::U8(2))
        .build();
    assert!(matches!(err(b), GgufError::DuplicateKey { key, offset: 38 } if key == "k"));
    let b = GgufSpec::default()
        .tensor(TensorSpec::new("t", TensorType::F32, &[8]))
        .tensor(TensorSpec::new("t", TensorType::F32, &[8]))
        .build();
    assert!(matches!(err(b), GgufError::DuplicateTensor { tensor, .. } if tensor == "t"));
}

#[test]
fn unsupported_tensor_types() {
    let mut t = TensorSpec::new("w", TensorType::F32, &[32]);
    t.ggml_type = 99;
    match err(one_tensor(t.clone())) {
        GgufError::UnsupportedTensorType {
            tensor,
            ggml_type: 99,
            type_name: None,
            offset,
        } => {
            assert_eq!(tensor, "w");
            assert_eq!(offset, 24 + 9 + 4 + 8);
        }
        e => panic!("{e:?}"),
    }
    t.ggml_type = 10;
    assert!(matches!(
        err(one_tensor(t)),
        GgufError::UnsupportedTensorType {
            ggml_type: 10,
            type_name: Some("Q2_K"),
            ..
        }
    ));
}

#[test]
fn bad_dims() {
    // n_dims 5 (and 0).
    let t = TensorSpec::new("w", TensorType::F32, &[1, 1, 1, 1, 1]);
    assert!(matches!(
        err(one_tensor(t)),
        GgufError::BadDimCount {
            n_dims: 5,
            offset: 33,
            ..
        }
    ));
    let mut t = TensorSpec::new("w", TensorType::F32, &[]);
    t.n_dims = Some(0);
    assert!(matches!(
        err(one_tensor(t)),
        GgufError::BadDimCount { n_dims: 0, .. }
    ));
    // A zero dimension.
    let t = TensorSpec::new("w", TensorType::F32, &[4, 0]);
    assert!(matches!(
        err(one_tensor(t)),
        GgufError::ZeroDim {
            dim: 1,
            offset: 45,
            ..
        }
    ));
    // Element count overflowing u64.
    let t = TensorSpec::new("w", TensorType::F32, &[1 << 32, 1 << 32, 2]);
    assert!(matches!(err(one_tensor(t)), GgufError::DimOverflow { .. }));
    // Element count over i64::MAX.
    let t = TensorSpec::new("w", TensorType::F32, &[1 << 32, 1 << 31]);
    assert!(matches!(err(one_tensor(t)), GgufError::DimOverflow { .. }));
    // Element count fine, byte size overflowing u64.
    let t = TensorSpec::new("w", TensorType::F32, &[1 << 62]);
    assert!(matches!(err(one_tensor(t)), GgufError::DimOverflow { .. }));
    // Rows that are not whole blocks.
    let t = TensorSpec::new("w", TensorType::Q4_1, &[33, 2]);
    assert!(matches!(
        err(one_tensor(t)),
        GgufError::BadRowSize {
            ne0: 33,
            block_elems: 32,
            ..
        }
    ));
}

#[test]
fn misaligned_offset() {
    let mut t = TensorSpec::new("w", TensorType::F32, &[8]);
    t.offset = Some(4);
    match err(one_tensor(t)) {
        GgufError::MisalignedOffset {
            tensor,
            tensor_offset: 4,
            alignment: 32,
            offset,
        } => {
            assert_eq!(tensor, "w");
            assert_eq!(offset, 24 + 9 + 4 + 8 + 4);
        }
        e => panic!("{e:?}"),
    }
}

#[test]
fn tensor_past_end() {
    let spec = GgufSpec {
        truncate_end: 1,
        ..GgufSpec::default()
    }
    .tensor(TensorSpec::new("w", TensorType::F32, &[8]));
    let b = spec.build();
    let len = b.len() as u64;
    assert!(matches!(
        err(b),
        GgufError::TensorPastEnd { end, file_len, .. } if end == len + 1 && file_len == len
    ));
    // An offset so large that offset + size overflows.
    let mut t = TensorSpec::new("w", TensorType::F32, &[8]);
    t.offset = Some(u64::MAX - 31);
    t.data = Some(vec![]);
    assert!(matches!(
        err(one_tensor(t)),
        GgufError::TensorPastEnd { end: u64::MAX, .. }
    ));
}

#[test]
fn overlapping_tensors() {
    let mut b = TensorSpec::new("b", TensorType::F32, &[16]);
    b.offset = Some(32);
    let mut a = TensorSpec::new("a", TensorType::F32, &[16]);
    a.offset = Some(0);
    let bytes = GgufSpec::default().tensor(b).tensor(a).build();
    assert!(matches!(
        err(bytes),
        GgufError::OverlappingTensors { first, second, .. } if first == "a" && second == "b"
    ));
}

#[test]
fn bad_alignment() {
    for (v, shown) in [
        (Value::U32(0), "0"),
        (Value::U32(7), "7"),
        (Value::U32(12), "12"),
        (Value::I32(-8), "-8"),
        (Value::U64(1 << 40), "1099511627776"),
        (Value::String("32".into()), "a string value"),
    ] {
        let b = GgufSpec::default()
            .kv("x", Value::U8(0))
            .kv("general.alignment", v)
            .tensor(TensorSpec::new("w", TensorType::F32, &[8]))
            .build();
        match err(b) {
            GgufError::BadAlignment { value, offset } => {
                assert_eq!(value, shown);
                assert_eq!(offset, 24 + 9 + 4 + 1 + 25);
            }
            e => panic!("{shown}: {e:?}"),
        }
    }
}

/// Every prefix of a small valid file is an error (never a panic, never Ok).
#[test]
fn every_prefix_of_sample_fails_cleanly() {
    for version in [2, 3] {
        let b = sample_spec(version).build();
        for n in 0..b.len() {
            assert!(gguf::parse(&b[..n]).is_err(), "prefix {n} parsed");
        }
        assert!(gguf::parse(&b).is_ok());
    }
}

/// Every single-byte mutation of a small valid file parses or fails cleanly.
#[test]
fn every_byte_mutation_of_sample() {
    let mut b = sample_spec(3).build();
    for i in 0..b.len() {
        let orig = b[i];
        for v in [0x00, 0xFF, orig ^ 0x01, orig ^ 0x80, orig.wrapping_add(1)] {
            b[i] = v;
            if let Ok(h) = gguf::parse(&b) {
                touch_all(&h, &b);
            }
        }
        b[i] = orig;
    }
}

// ---------------------------------------------------------------------------------------------
// (c) Robustness on the real header.

/// xorshift64*: deterministic pseudo-random offsets without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Fewer iterations without optimisations, where each full-header parse is much slower.
fn scaled(n: usize) -> usize {
    if cfg!(debug_assertions) { n / 8 } else { n }
}

#[test]
fn real_header_truncations_fail_cleanly() {
    let Some(path) = real_model() else { return };
    use std::io::Read;
    let keep = REAL_DATA_OFFSET as usize + 64 * 1024;
    let mut head = Vec::with_capacity(keep);
    std::fs::File::open(&path)
        .unwrap()
        .take(keep as u64)
        .read_to_end(&mut head)
        .unwrap();
    assert_eq!(head.len(), keep);

    let mut cuts: Vec<usize> = (0..=64).collect();
    let n = scaled(600);
    cuts.extend((0..n).map(|i| i * keep / n));
    // Densely around the end of the metadata / tensor infos.
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    cuts.extend(
        (0..scaled(200)).map(|_| REAL_DATA_OFFSET as usize - 1 - rng.below(20_000) as usize),
    );
    cuts.push(keep);
    let mut kinds = std::collections::BTreeMap::new();
    for &cut in &cuts {
        match gguf::parse(&head[..cut]) {
            Ok(_) => panic!("truncation at {cut} parsed"),
            Err(e) => {
                let kind = format!("{e:?}");
                let kind = kind.split([' ', '{']).next().unwrap().to_owned();
                *kinds.entry(kind).or_insert(0) += 1;
            }
        }
    }
    eprintln!("{} truncations: {kinds:?}", cuts.len());
}

#[test]
fn real_header_mutations_never_panic() {
    let Some(path) = real_model() else { return };
    // One buffer for the whole file, mutated in place and restored after each parse.
    let mut buf = std::fs::read(&path).unwrap();
    let header_len = REAL_DATA_OFFSET;
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let mut offsets: Vec<u64> = (0..64).collect();
    let n = scaled(3000) as u64;
    for i in 0..n {
        offsets.push(match i % 3 {
            // Anywhere in the header (mostly the token and merge strings).
            0 => rng.below(header_len),
            // The small metadata values before the vocabulary.
            1 => 24 + rng.below(4096),
            // The tensor infos at the end of the header.
            _ => header_len - 1 - rng.below(16_384),
        });
    }
    let (mut ok, mut errs) = (0u32, 0u32);
    let t0 = Instant::now();
    for (i, &off) in offsets.iter().enumerate() {
        let off = off as usize;
        let orig = buf[off];
        let kinds: &[u8] = if off < 64 {
            &[0x00, 0xFF, orig ^ 0x01, orig ^ 0x10, orig ^ 0x80]
        } else {
            &[[0x00, 0xFF, orig ^ (1 << (rng.below(8) as u8))][i % 3]]
        };
        for &v in kinds {
            buf[off] = v;
            match gguf::parse(&buf) {
                Ok(h) => {
                    touch_all(&h, &buf);
                    ok += 1;
                }
                Err(e) => {
                    assert!(!e.to_string().is_empty());
                    errs += 1;
                }
            }
        }
        buf[off] = orig;
    }
    eprintln!(
        "{} mutated parses in {:?}: {ok} ok, {errs} clean errors",
        ok + errs,
        t0.elapsed()
    );
    // The buffer is intact again.
    assert!(gguf::parse(&buf).is_ok());
}
