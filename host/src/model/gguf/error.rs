//! Errors from reading GGUF files.

use std::path::PathBuf;

/// Everything that can go wrong while opening or reading a GGUF file, or while looking up a
/// metadata value.
///
/// Parse errors name the field they were reading (for example `tensor_infos[3].ne[1]` or
/// `metadata "general.name" value`) and the byte offset in the file where that field starts.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GgufError {
    /// The file could not be opened, inspected or memory-mapped.
    #[error("cannot read GGUF file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The first four bytes are not `GGUF`.
    #[error("bad magic {found:02x?} at offset 0: not a GGUF file (expected \"GGUF\")")]
    BadMagic { found: [u8; 4] },

    /// A GGUF version other than 2 or 3 (version 1 used 32-bit counts; big-endian files show up
    /// here with a byte-swapped version).
    #[error(
        "unsupported GGUF version {version} at offset {offset}{}; supported versions are 2 and 3",
        if matches!(version.swap_bytes(), 2 | 3) { " (a big-endian file?)" } else { "" }
    )]
    UnsupportedVersion { version: u32, offset: u64 },

    /// The data ends before a field does.
    #[error(
        "truncated GGUF: {field} needs {needed} bytes at offset {offset}, but only {available} remain"
    )]
    Truncated {
        field: String,
        offset: u64,
        needed: u64,
        available: u64,
    },

    /// A count (tensors, metadata pairs, array elements) that cannot possibly fit in the rest of
    /// the file. Raised before anything is allocated for it.
    #[error(
        "{field} at offset {offset}: count {count} needs at least {min_bytes} bytes, but only {remaining} remain"
    )]
    CountTooLarge {
        field: String,
        offset: u64,
        count: u64,
        /// The fewest bytes `count` items could take (saturated at `u64::MAX`).
        min_bytes: u64,
        remaining: u64,
    },

    /// A string that is not valid UTF-8.
    #[error("{field} at offset {offset}: string is not valid UTF-8")]
    InvalidUtf8 { field: String, offset: u64 },

    /// A bool byte other than 0 or 1.
    #[error("{field} at offset {offset}: bool byte is {value}, expected 0 or 1")]
    BadBool {
        field: String,
        offset: u64,
        value: u8,
    },

    /// A metadata value type id outside 0..=12.
    #[error("{field} at offset {offset}: unknown metadata value type {value_type}")]
    UnknownValueType {
        field: String,
        offset: u64,
        value_type: u32,
    },

    /// Arrays nested deeper than [`super::MAX_ARRAY_DEPTH`].
    #[error("{field} at offset {offset}: arrays nested deeper than {max_depth} levels")]
    ArrayTooDeep {
        field: String,
        offset: u64,
        max_depth: usize,
    },

    /// The same metadata key appears twice.
    #[error("duplicate metadata key {key:?} at offset {offset}")]
    DuplicateKey { key: String, offset: u64 },

    /// `general.alignment` is zero, not a multiple of 8, or larger than `u32::MAX`.
    #[error(
        "general.alignment = {value} (at offset {offset}) is invalid: it must be a nonzero multiple of 8 that fits in u32"
    )]
    BadAlignment { value: String, offset: u64 },

    /// A tensor with `n_dims` of 0 or more than 4.
    #[error("tensor {tensor:?}: n_dims {n_dims} at offset {offset} is not in 1..=4")]
    BadDimCount {
        tensor: String,
        offset: u64,
        n_dims: u32,
    },

    /// A tensor dimension of zero.
    #[error("tensor {tensor:?}: ne[{dim}] at offset {offset} is zero")]
    ZeroDim {
        tensor: String,
        offset: u64,
        dim: usize,
    },

    /// The element count or byte size of a tensor overflows.
    #[error("tensor {tensor:?}: dimensions {dims:?} (at offset {offset}) overflow")]
    DimOverflow {
        tensor: String,
        offset: u64,
        dims: Vec<u64>,
    },

    /// A ggml tensor type that is unknown, or known but not supported by textnlp's kernels.
    #[error(
        "tensor {tensor:?}: ggml type {ggml_type} ({}) at offset {offset} is not supported",
        type_name.unwrap_or("unknown")
    )]
    UnsupportedTensorType {
        tensor: String,
        offset: u64,
        ggml_type: u32,
        /// ggml's name for the type when the id is a known ggml type.
        type_name: Option<&'static str>,
    },

    /// `ne[0]` is not a whole number of quantization blocks.
    #[error(
        "tensor {tensor:?}: ne[0] = {ne0} (at offset {offset}) is not a multiple of the {ty} block size {block_elems}"
    )]
    BadRowSize {
        tensor: String,
        offset: u64,
        ty: &'static str,
        ne0: u64,
        block_elems: u64,
    },

    /// A tensor offset that is not a multiple of the file's alignment.
    #[error(
        "tensor {tensor:?}: data offset {tensor_offset} (field at offset {offset}) is not a multiple of the alignment {alignment}"
    )]
    MisalignedOffset {
        tensor: String,
        offset: u64,
        tensor_offset: u64,
        alignment: u64,
    },

    /// A tensor whose bytes reach past the end of the file.
    #[error(
        "tensor {tensor:?} (info at offset {offset}): data bytes {start}..{end} run past the end of the file ({file_len} bytes)"
    )]
    TensorPastEnd {
        tensor: String,
        offset: u64,
        /// Absolute file position of the tensor's first byte (saturated at `u64::MAX`).
        start: u64,
        /// Absolute file position one past its last byte (saturated at `u64::MAX`).
        end: u64,
        file_len: u64,
    },

    /// Two tensors with the same name.
    #[error("duplicate tensor name {tensor:?} at offset {offset}")]
    DuplicateTensor { tensor: String, offset: u64 },

    /// Two tensors whose data ranges overlap.
    #[error(
        "tensors {first:?} (data offset {first_offset}) and {second:?} (data offset {second_offset}) overlap"
    )]
    OverlappingTensors {
        first: String,
        first_offset: u64,
        second: String,
        second_offset: u64,
    },

    /// A metadata key that a typed getter required is absent.
    #[error("metadata key {key:?} is missing")]
    MissingKey { key: String },

    /// A metadata value of a different type than a typed getter accepts.
    #[error("metadata key {key:?}: expected {expected}, found {found}")]
    WrongType {
        key: String,
        expected: &'static str,
        found: &'static str,
    },

    /// A metadata value of the right type whose value does not fit the requested one
    /// (a negative count, an array element outside `i32`).
    #[error("metadata key {key:?}: value {value} does not fit {expected}")]
    OutOfRange {
        key: String,
        expected: &'static str,
        value: String,
    },
}
