//! Bounds-checked little-endian reading of untrusted GGUF bytes.
//!
//! Every read goes through [`Reader`], which never indexes out of bounds and never does
//! unchecked arithmetic. Errors carry a [`Field`] (rendered to text only when an error is
//! actually raised) and the byte offset where the field starts.

use std::fmt;

use super::GgufError;

/// Which field is being read, for error messages.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Field<'a> {
    Magic,
    Version,
    TensorCount,
    KvCount,
    Key {
        index: u64,
    },
    ValueType {
        key: &'a str,
    },
    Value {
        key: &'a str,
    },
    ArrayType {
        key: &'a str,
        depth: usize,
    },
    ArrayLen {
        key: &'a str,
        depth: usize,
    },
    ArrayElem {
        key: &'a str,
        depth: usize,
        index: u64,
    },
    TensorName {
        index: u64,
    },
    NDims {
        tensor: &'a str,
    },
    Dim {
        tensor: &'a str,
        dim: u32,
    },
    TensorType {
        tensor: &'a str,
    },
    TensorOffset {
        tensor: &'a str,
    },
}

impl fmt::Display for Field<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn nested(f: &mut fmt::Formatter<'_>, key: &str, depth: usize) -> fmt::Result {
            write!(f, "metadata {key:?} array")?;
            if depth > 0 {
                write!(f, " (nested {depth} deep)")?;
            }
            Ok(())
        }
        match *self {
            Field::Magic => f.write_str("header magic"),
            Field::Version => f.write_str("header version"),
            Field::TensorCount => f.write_str("header tensor_count"),
            Field::KvCount => f.write_str("header metadata_kv_count"),
            Field::Key { index } => write!(f, "metadata[{index}] key"),
            Field::ValueType { key } => write!(f, "metadata {key:?} value type"),
            Field::Value { key } => write!(f, "metadata {key:?} value"),
            Field::ArrayType { key, depth } => {
                nested(f, key, depth)?;
                f.write_str(" element type")
            }
            Field::ArrayLen { key, depth } => {
                nested(f, key, depth)?;
                f.write_str(" length")
            }
            Field::ArrayElem { key, depth, index } => {
                nested(f, key, depth)?;
                write!(f, " element {index}")
            }
            Field::TensorName { index } => write!(f, "tensor_infos[{index}] name"),
            Field::NDims { tensor } => write!(f, "tensor {tensor:?} n_dims"),
            Field::Dim { tensor, dim } => write!(f, "tensor {tensor:?} ne[{dim}]"),
            Field::TensorType { tensor } => write!(f, "tensor {tensor:?} type"),
            Field::TensorOffset { tensor } => write!(f, "tensor {tensor:?} offset"),
        }
    }
}

/// A cursor over the file bytes.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Bytes promised to items that a count has announced but that are not read yet (each at
    /// its minimum size). Counts read later must fit in what is left after these, which keeps
    /// the total of all capacities ever reserved proportional to the file size, however the
    /// counts nest.
    reserved: u64,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader {
            buf,
            pos: 0,
            reserved: 0,
        }
    }

    /// Current position as a file offset.
    pub(crate) fn pos(&self) -> u64 {
        self.pos as u64
    }

    fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or(&[])
    }

    pub(crate) fn remaining(&self) -> u64 {
        self.rest().len() as u64
    }

    fn truncated(&self, field: Field<'_>, needed: u64) -> GgufError {
        GgufError::Truncated {
            field: field.to_string(),
            offset: self.pos(),
            needed,
            available: self.remaining(),
        }
    }

    /// The next `n` bytes.
    pub(crate) fn bytes(&mut self, n: u64, field: Field<'_>) -> Result<&'a [u8], GgufError> {
        let rest = self.rest();
        match usize::try_from(n).ok().and_then(|n| rest.get(..n)) {
            Some(s) => {
                self.pos = self.pos.saturating_add(s.len());
                Ok(s)
            }
            None => Err(self.truncated(field, n)),
        }
    }

    pub(crate) fn array<const N: usize>(&mut self, field: Field<'_>) -> Result<[u8; N], GgufError> {
        match self.rest().first_chunk::<N>() {
            Some(&a) => {
                self.pos = self.pos.saturating_add(N);
                Ok(a)
            }
            None => Err(self.truncated(field, N as u64)),
        }
    }

    pub(crate) fn u8(&mut self, field: Field<'_>) -> Result<u8, GgufError> {
        self.array::<1>(field).map(|[b]| b)
    }

    pub(crate) fn u32(&mut self, field: Field<'_>) -> Result<u32, GgufError> {
        self.array(field).map(u32::from_le_bytes)
    }

    pub(crate) fn u64(&mut self, field: Field<'_>) -> Result<u64, GgufError> {
        self.array(field).map(u64::from_le_bytes)
    }

    pub(crate) fn bool(&mut self, field: Field<'_>) -> Result<bool, GgufError> {
        let offset = self.pos();
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(GgufError::BadBool {
                field: field.to_string(),
                offset,
                value,
            }),
        }
    }

    /// A `gguf_string`: u64 length, then that many UTF-8 bytes.
    pub(crate) fn string(&mut self, field: Field<'_>) -> Result<String, GgufError> {
        let offset = self.pos();
        let len = self.u64(field)?;
        let bytes = self.bytes(len, field)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Err(GgufError::InvalidUtf8 {
                field: field.to_string(),
                offset,
            }),
        }
    }

    /// Promises `n` bytes to items announced but not read yet.
    pub(crate) fn reserve(&mut self, n: u64) {
        self.reserved = self.reserved.saturating_add(n);
    }

    /// Takes back bytes promised by [`Self::reserve`], before reading the item they were for.
    pub(crate) fn release(&mut self, n: u64) {
        self.reserved = self.reserved.saturating_sub(n);
    }

    /// A u64 count of items that each take at least `min_size` bytes. Fails unless that many
    /// items could fit in the rest of the file (less the bytes already promised to other
    /// items), so the result is safe to allocate for: a `Vec::with_capacity(count)` holds at
    /// most `remaining / min_size` items.
    pub(crate) fn count(&mut self, field: Field<'_>, min_size: u64) -> Result<usize, GgufError> {
        let offset = self.pos();
        let count = self.u64(field)?;
        let remaining = self.remaining().saturating_sub(self.reserved);
        let max = remaining.checked_div(min_size).unwrap_or(remaining);
        match usize::try_from(count) {
            Ok(n) if count <= max => Ok(n),
            _ => Err(GgufError::CountTooLarge {
                field: field.to_string(),
                offset,
                count,
                min_bytes: count.saturating_mul(min_size),
                remaining,
            }),
        }
    }

    /// `count` fixed-size little-endian items, converted by `conv`.
    pub(crate) fn fixed<const N: usize, T>(
        &mut self,
        count: usize,
        field: Field<'_>,
        conv: impl Fn([u8; N]) -> T,
    ) -> Result<Vec<T>, GgufError> {
        let n = (count as u64).saturating_mul(N as u64);
        let bytes = self.bytes(n, field)?;
        let (chunks, _) = bytes.as_chunks::<N>();
        Ok(chunks.iter().map(|&c| conv(c)).collect())
    }
}
