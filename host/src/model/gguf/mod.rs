//! GGUF reader (versions 2 and 3, little-endian).
//!
//! GGUF files come from users, so everything here treats the bytes as hostile: every read is
//! bounds-checked, every size computation is checked, and every count is compared with the
//! bytes left in the file before anything is allocated for it. Parsing never panics; problems
//! come back as a [`GgufError`] that names the field and its byte offset.
//!
//! Layout (all integers little-endian):
//!
//! ```text
//! "GGUF" | u32 version | u64 tensor_count | u64 metadata_kv_count
//! metadata_kv[kv_count]:     string key | u32 value_type | value
//! tensor_info[tensor_count]: string name | u32 n_dims | u64 ne[n_dims] | u32 ggml_type | u64 offset
//! padding to the alignment | tensor data (tensor i at data_offset + offset_i)
//! string = u64 length + UTF-8 bytes; array = u32 elem_type + u64 count + elements
//! ```
//!
//! [`GgufFile::open`] memory-maps a file; [`GgufFile::from_bytes`] and [`parse`] work on bytes
//! in memory.

mod error;
mod reader;
mod value;

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::path::Path;

use textnlp_kernels::TensorType;

pub use error::GgufError;
pub use value::{Array, Metadata, Value, value_type};

use reader::{Field, Reader};

/// The four magic bytes at the start of every GGUF file.
pub const GGUF_MAGIC: [u8; 4] = *b"GGUF";
/// Metadata key of the data alignment.
pub const ALIGNMENT_KEY: &str = "general.alignment";
/// Alignment used when the file does not set `general.alignment`.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// Most dimensions a tensor may have.
pub const MAX_DIMS: u32 = 4;
/// Deepest nesting of metadata arrays accepted (an array directly in a key is depth 1).
pub const MAX_ARRAY_DEPTH: usize = 16;

/// Smallest possible encoded sizes, used to bound counts before allocating.
const MIN_KV_BYTES: u64 = 8 + 4 + 1; // empty key, type, one-byte value
const MIN_TENSOR_INFO_BYTES: u64 = 8 + 4 + 8 + 4 + 8; // empty name, n_dims, one dim, type, offset
const MIN_ARRAY_BYTES: u64 = 4 + 8; // element type, count

/// Where one tensor's data lives, as described by its tensor info.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    pub ty: TensorType,
    /// `ne`: the sizes of each dimension, `ne[0]` the contiguous (fastest) one.
    pub dims: Vec<u64>,
    /// Byte offset of the data, relative to the start of the data section.
    pub offset: u64,
    /// Size of the data in bytes, computed from `dims` and `ty`.
    pub n_bytes: u64,
}

impl TensorInfo {
    /// Number of elements (product of `dims`).
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().fold(1u64, |a, &d| a.saturating_mul(d))
    }
}

/// A tensor's info and its bytes.
#[derive(Clone, Copy, Debug)]
pub struct Tensor<'a> {
    pub info: &'a TensorInfo,
    pub data: &'a [u8],
}

/// Everything in a GGUF file except the tensor data: the result of [`parse`].
#[derive(Clone, Debug)]
pub struct GgufHeader {
    version: u32,
    alignment: u64,
    data_offset: u64,
    metadata: Metadata,
    tensors: Vec<TensorInfo>,
    tensor_index: HashMap<String, usize>,
}

impl GgufHeader {
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The data alignment (`general.alignment`, or 32).
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Absolute file offset where the tensor data section starts.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// Tensor infos in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    pub fn tensor_info(&self, name: &str) -> Option<&TensorInfo> {
        self.tensor_index
            .get(name)
            .and_then(|&i| self.tensors.get(i))
    }

    /// The bytes of tensor `info` within `file` (the bytes this header was parsed from).
    pub fn tensor_data<'a>(&self, file: &'a [u8], info: &TensorInfo) -> Option<&'a [u8]> {
        let start = usize::try_from(self.data_offset.checked_add(info.offset)?).ok()?;
        let len = usize::try_from(info.n_bytes).ok()?;
        file.get(start..start.checked_add(len)?)
    }
}

enum Storage {
    Mmap(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl Storage {
    fn bytes(&self) -> &[u8] {
        match self {
            Storage::Mmap(m) => m,
            Storage::Owned(v) => v,
        }
    }
}

/// A parsed GGUF file together with its bytes (memory-mapped or owned).
pub struct GgufFile {
    storage: Storage,
    header: GgufHeader,
}

impl fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GgufFile")
            .field("len", &self.bytes().len())
            .field("mmapped", &matches!(self.storage, Storage::Mmap(_)))
            .field("header", &self.header)
            .finish()
    }
}

impl GgufFile {
    /// Memory-maps and parses the file at `path`.
    ///
    /// The map is read-only and private to this process, but like every memory map its
    /// contents would change if another process rewrote the file while it is open; model
    /// files are expected to stay put while loaded.
    pub fn open(path: &Path) -> Result<GgufFile, GgufError> {
        let io = |source| GgufError::Io {
            path: path.to_owned(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let storage = if len == 0 {
            // Mapping an empty file fails on some platforms; an empty buffer parses to a
            // proper "truncated" error instead.
            Storage::Owned(Vec::new())
        } else {
            // SAFETY: the map is read-only, and we only ever read it through bounds-checked
            // slices. The usual caveat of file-backed maps applies (see the doc comment).
            let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
            Storage::Mmap(map)
        };
        let header = parse(storage.bytes())?;
        Ok(GgufFile { storage, header })
    }

    /// Parses GGUF bytes held in memory.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<GgufFile, GgufError> {
        let header = parse(&bytes)?;
        Ok(GgufFile {
            storage: Storage::Owned(bytes),
            header,
        })
    }

    pub fn version(&self) -> u32 {
        self.header.version
    }

    /// The data alignment (`general.alignment`, or 32).
    pub fn alignment(&self) -> u64 {
        self.header.alignment
    }

    /// Absolute file offset where the tensor data section starts.
    pub fn data_offset(&self) -> u64 {
        self.header.data_offset
    }

    pub fn metadata(&self) -> &Metadata {
        &self.header.metadata
    }

    /// Tensor infos in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.header.tensors
    }

    pub fn tensor_info(&self, name: &str) -> Option<&TensorInfo> {
        self.header.tensor_info(name)
    }

    /// A tensor's info and bytes, by name.
    pub fn tensor(&self, name: &str) -> Option<Tensor<'_>> {
        let info = self.header.tensor_info(name)?;
        let data = self.header.tensor_data(self.bytes(), info)?;
        Some(Tensor { info, data })
    }

    /// All tensors with their bytes, in file order.
    pub fn iter_tensors(&self) -> impl Iterator<Item = Tensor<'_>> {
        let bytes = self.bytes();
        self.header.tensors.iter().filter_map(move |info| {
            let data = self.header.tensor_data(bytes, info)?;
            Some(Tensor { info, data })
        })
    }

    /// The whole file.
    pub fn bytes(&self) -> &[u8] {
        self.storage.bytes()
    }

    pub fn header(&self) -> &GgufHeader {
        &self.header
    }
}

/// ggml's name for a tensor type id, for error messages (including types textnlp cannot run).
pub fn ggml_type_name(id: u32) -> Option<&'static str> {
    if let Some(t) = TensorType::from_ggml(id) {
        return Some(t.name());
    }
    Some(match id {
        4 => "Q4_2 (removed)",
        5 => "Q4_3 (removed)",
        9 => "Q8_1",
        10 => "Q2_K",
        11 => "Q3_K",
        15 => "Q8_K",
        16 => "IQ2_XXS",
        17 => "IQ2_XS",
        18 => "IQ3_XXS",
        19 => "IQ1_S",
        20 => "IQ4_NL",
        21 => "IQ3_S",
        22 => "IQ2_S",
        23 => "IQ4_XS",
        24 => "I8",
        25 => "I16",
        26 => "I32",
        27 => "I64",
        28 => "F64",
        29 => "IQ1_M",
        34 => "TQ1_0",
        35 => "TQ2_0",
        39 => "MXFP4",
        _ => return None,
    })
}

/// Parses a GGUF header from `bytes` (the whole file) and validates every tensor against it.
pub fn parse(bytes: &[u8]) -> Result<GgufHeader, GgufError> {
    let mut r = Reader::new(bytes);

    let magic = r.array::<4>(Field::Magic)?;
    if magic != GGUF_MAGIC {
        return Err(GgufError::BadMagic { found: magic });
    }
    let version_offset = r.pos();
    let version = r.u32(Field::Version)?;
    if !matches!(version, 2 | 3) {
        return Err(GgufError::UnsupportedVersion {
            version,
            offset: version_offset,
        });
    }
    let tensor_count = r.count(Field::TensorCount, MIN_TENSOR_INFO_BYTES)?;
    let tensor_bytes = (tensor_count as u64).saturating_mul(MIN_TENSOR_INFO_BYTES);
    r.reserve(tensor_bytes);
    let kv_count = r.count(Field::KvCount, MIN_KV_BYTES)?;
    r.reserve((kv_count as u64).saturating_mul(MIN_KV_BYTES));

    // Metadata.
    let mut metadata = Metadata::with_capacity(kv_count);
    let mut alignment_offset = 0;
    for index in 0..kv_count as u64 {
        r.release(MIN_KV_BYTES);
        let key_offset = r.pos();
        let key = r.string(Field::Key { index })?;
        if metadata.contains_key(&key) {
            return Err(GgufError::DuplicateKey {
                key,
                offset: key_offset,
            });
        }
        let type_offset = r.pos();
        if key == ALIGNMENT_KEY {
            alignment_offset = type_offset;
        }
        let type_id = r.u32(Field::ValueType { key: &key })?;
        let value = read_value(&mut r, type_id, type_offset, &key)?;
        // Cannot fail: checked above.
        let _ = metadata.insert(key, value);
    }

    let alignment = match metadata.get(ALIGNMENT_KEY) {
        None => DEFAULT_ALIGNMENT,
        Some(v) => match v.as_integer() {
            Some(a) if a > 0 && a % 8 == 0 && a <= i128::from(u32::MAX) => a as u64,
            Some(a) => {
                return Err(GgufError::BadAlignment {
                    value: a.to_string(),
                    offset: alignment_offset,
                });
            }
            None => {
                return Err(GgufError::BadAlignment {
                    value: format!("a {} value", v.type_name()),
                    offset: alignment_offset,
                });
            }
        },
    };

    // Tensor infos.
    r.release(tensor_bytes);
    let mut tensors = Vec::with_capacity(tensor_count);
    let mut tensor_index = HashMap::with_capacity(tensor_count);
    // File offset of each tensor info, for errors raised after the loop.
    let mut info_offsets = Vec::with_capacity(tensor_count);
    for index in 0..tensor_count as u64 {
        let info_offset = r.pos();
        let name = r.string(Field::TensorName { index })?;
        if tensor_index.contains_key(&name) {
            return Err(GgufError::DuplicateTensor {
                tensor: name,
                offset: info_offset,
            });
        }
        let info = read_tensor_info(&mut r, name, alignment)?;
        tensor_index.insert(info.name.clone(), tensors.len());
        tensors.push(info);
        info_offsets.push(info_offset);
    }

    // Data section.
    let header_end = r.pos();
    let padding = (alignment - header_end % alignment) % alignment;
    let data_offset = header_end.saturating_add(padding);
    let file_len = bytes.len() as u64;
    for (info, &offset) in tensors.iter().zip(&info_offsets) {
        let start = data_offset.checked_add(info.offset);
        let end = start.and_then(|s| s.checked_add(info.n_bytes));
        if !matches!(end, Some(e) if e <= file_len) {
            return Err(GgufError::TensorPastEnd {
                tensor: info.name.clone(),
                offset,
                start: start.unwrap_or(u64::MAX),
                end: end.unwrap_or(u64::MAX),
                file_len,
            });
        }
    }

    // No two tensors may share bytes.
    let mut order: Vec<&TensorInfo> = tensors.iter().collect();
    order.sort_unstable_by_key(|t| t.offset);
    for pair in order.windows(2) {
        if let [a, b] = pair
            && a.offset.saturating_add(a.n_bytes) > b.offset
        {
            return Err(GgufError::OverlappingTensors {
                first: a.name.clone(),
                first_offset: a.offset,
                second: b.name.clone(),
                second_offset: b.offset,
            });
        }
    }

    Ok(GgufHeader {
        version,
        alignment,
        data_offset,
        metadata,
        tensors,
        tensor_index,
    })
}

/// One tensor info after its name.
fn read_tensor_info(
    r: &mut Reader<'_>,
    name: String,
    alignment: u64,
) -> Result<TensorInfo, GgufError> {
    let tensor = name.as_str();
    let n_dims_offset = r.pos();
    let n_dims = r.u32(Field::NDims { tensor })?;
    if n_dims == 0 || n_dims > MAX_DIMS {
        return Err(GgufError::BadDimCount {
            tensor: name,
            offset: n_dims_offset,
            n_dims,
        });
    }
    let dims_offset = r.pos();
    let mut dims = Vec::with_capacity(MAX_DIMS as usize);
    for dim in 0..n_dims {
        let offset = r.pos();
        let ne = r.u64(Field::Dim { tensor, dim })?;
        if ne == 0 {
            return Err(GgufError::ZeroDim {
                tensor: name,
                offset,
                dim: dim as usize,
            });
        }
        dims.push(ne);
    }

    let type_offset = r.pos();
    let ggml_type = r.u32(Field::TensorType { tensor })?;
    let Some(ty) = TensorType::from_ggml(ggml_type) else {
        return Err(GgufError::UnsupportedTensorType {
            tensor: name,
            offset: type_offset,
            ggml_type,
            type_name: ggml_type_name(ggml_type),
        });
    };

    // Element count must fit in i64 (as in ggml), and the byte size in u64.
    let overflow = |dims: Vec<u64>| GgufError::DimOverflow {
        tensor: name.clone(),
        offset: dims_offset,
        dims,
    };
    let n_elements = dims.iter().try_fold(1u64, |a, &d| a.checked_mul(d));
    if !matches!(n_elements, Some(n) if n <= i64::MAX as u64) {
        return Err(overflow(dims));
    }
    let (&ne0, rest) = match dims.split_first() {
        Some(split) => split,
        None => return Err(overflow(dims)), // unreachable: n_dims >= 1
    };
    let block_elems = ty.block_elems() as u64;
    if !ne0.is_multiple_of(block_elems) {
        return Err(GgufError::BadRowSize {
            tensor: name,
            offset: dims_offset,
            ty: ty.name(),
            ne0,
            block_elems,
        });
    }
    let n_bytes = ty
        .row_bytes(ne0)
        .and_then(|row| rest.iter().try_fold(row, |a, &d| a.checked_mul(d)));
    let Some(n_bytes) = n_bytes else {
        return Err(overflow(dims));
    };

    let offset_offset = r.pos();
    let offset = r.u64(Field::TensorOffset { tensor })?;
    if !offset.is_multiple_of(alignment) {
        return Err(GgufError::MisalignedOffset {
            tensor: name,
            offset: offset_offset,
            tensor_offset: offset,
            alignment,
        });
    }

    Ok(TensorInfo {
        name,
        ty,
        dims,
        offset,
        n_bytes,
    })
}

/// A top-level metadata value of type `type_id` (read at `type_offset`).
fn read_value(
    r: &mut Reader<'_>,
    type_id: u32,
    type_offset: u64,
    key: &str,
) -> Result<Value, GgufError> {
    use value_type as t;
    let field = Field::Value { key };
    Ok(match type_id {
        t::U8 => Value::U8(r.u8(field)?),
        t::I8 => Value::I8(r.array(field).map(i8::from_le_bytes)?),
        t::U16 => Value::U16(r.array(field).map(u16::from_le_bytes)?),
        t::I16 => Value::I16(r.array(field).map(i16::from_le_bytes)?),
        t::U32 => Value::U32(r.u32(field)?),
        t::I32 => Value::I32(r.array(field).map(i32::from_le_bytes)?),
        t::F32 => Value::F32(r.array(field).map(f32::from_le_bytes)?),
        t::BOOL => Value::Bool(r.bool(field)?),
        t::STRING => Value::String(r.string(field)?),
        t::ARRAY => Value::Array(read_array(r, key, 0)?),
        t::U64 => Value::U64(r.u64(field)?),
        t::I64 => Value::I64(r.array(field).map(i64::from_le_bytes)?),
        t::F64 => Value::F64(r.array(field).map(f64::from_le_bytes)?),
        _ => {
            return Err(GgufError::UnknownValueType {
                field: Field::ValueType { key }.to_string(),
                offset: type_offset,
                value_type: type_id,
            });
        }
    })
}

/// An array (element type, count, elements) inside `depth` enclosing arrays.
fn read_array(r: &mut Reader<'_>, key: &str, depth: usize) -> Result<Array, GgufError> {
    use value_type as t;
    let type_offset = r.pos();
    if depth >= MAX_ARRAY_DEPTH {
        return Err(GgufError::ArrayTooDeep {
            field: Field::ArrayType { key, depth }.to_string(),
            offset: type_offset,
            max_depth: MAX_ARRAY_DEPTH,
        });
    }
    let elem_type = r.u32(Field::ArrayType { key, depth })?;
    let min_size = match elem_type {
        t::U8 | t::I8 | t::BOOL => 1,
        t::U16 | t::I16 => 2,
        t::U32 | t::I32 | t::F32 => 4,
        t::U64 | t::I64 | t::F64 | t::STRING => 8,
        t::ARRAY => MIN_ARRAY_BYTES,
        _ => {
            return Err(GgufError::UnknownValueType {
                field: Field::ArrayType { key, depth }.to_string(),
                offset: type_offset,
                value_type: elem_type,
            });
        }
    };
    let n = r.count(Field::ArrayLen { key, depth }, min_size)?;
    let field = Field::ArrayElem {
        key,
        depth,
        index: 0,
    };
    Ok(match elem_type {
        t::U8 => Array::U8(r.bytes(n as u64, field)?.to_vec()),
        t::I8 => Array::I8(r.fixed(n, field, i8::from_le_bytes)?),
        t::U16 => Array::U16(r.fixed(n, field, u16::from_le_bytes)?),
        t::I16 => Array::I16(r.fixed(n, field, i16::from_le_bytes)?),
        t::U32 => Array::U32(r.fixed(n, field, u32::from_le_bytes)?),
        t::I32 => Array::I32(r.fixed(n, field, i32::from_le_bytes)?),
        t::F32 => Array::F32(r.fixed(n, field, f32::from_le_bytes)?),
        t::U64 => Array::U64(r.fixed(n, field, u64::from_le_bytes)?),
        t::I64 => Array::I64(r.fixed(n, field, i64::from_le_bytes)?),
        t::F64 => Array::F64(r.fixed(n, field, f64::from_le_bytes)?),
        t::BOOL => {
            let start = r.pos();
            let bytes = r.bytes(n as u64, field)?;
            let mut out = Vec::with_capacity(bytes.len());
            for (index, &b) in (0u64..).zip(bytes) {
                match b {
                    0 => out.push(false),
                    1 => out.push(true),
                    value => {
                        return Err(GgufError::BadBool {
                            field: Field::ArrayElem { key, depth, index }.to_string(),
                            offset: start.saturating_add(index),
                            value,
                        });
                    }
                }
            }
            Array::Bool(out)
        }
        t::STRING => {
            let mut out = Vec::with_capacity(n);
            for index in 0..n as u64 {
                out.push(r.string(Field::ArrayElem { key, depth, index })?);
            }
            Array::String(out)
        }
        // t::ARRAY (the only type left after the min_size match).
        _ => {
            let mut out = Vec::with_capacity(n);
            r.reserve((n as u64).saturating_mul(MIN_ARRAY_BYTES));
            for _ in 0..n {
                r.release(MIN_ARRAY_BYTES);
                out.push(read_array(r, key, depth + 1)?);
            }
            Array::Array(out)
        }
    })
}
