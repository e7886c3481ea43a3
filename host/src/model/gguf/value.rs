//! GGUF metadata values and the ordered key/value map.

use std::collections::HashMap;

use super::GgufError;

/// Metadata value type ids as stored in the file.
pub mod value_type {
    pub const U8: u32 = 0;
    pub const I8: u32 = 1;
    pub const U16: u32 = 2;
    pub const I16: u32 = 3;
    pub const U32: u32 = 4;
    pub const I32: u32 = 5;
    pub const F32: u32 = 6;
    pub const BOOL: u32 = 7;
    pub const STRING: u32 = 8;
    pub const ARRAY: u32 = 9;
    pub const U64: u32 = 10;
    pub const I64: u32 = 11;
    pub const F64: u32 = 12;
}

/// One metadata value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    Array(Array),
    U64(u64),
    I64(i64),
    F64(f64),
}

/// A metadata array, stored as a typed vector. Arrays of arrays hold one [`Array`] per element,
/// and each inner array has its own element type.
#[derive(Clone, Debug, PartialEq)]
#[allow(clippy::enum_variant_names)] // `Array::Array` mirrors the GGUF value type names.
pub enum Array {
    U8(Vec<u8>),
    I8(Vec<i8>),
    U16(Vec<u16>),
    I16(Vec<i16>),
    U32(Vec<u32>),
    I32(Vec<i32>),
    F32(Vec<f32>),
    Bool(Vec<bool>),
    String(Vec<String>),
    Array(Vec<Array>),
    U64(Vec<u64>),
    I64(Vec<i64>),
    F64(Vec<f64>),
}

/// Name of a value type id, for messages.
pub(crate) fn type_name(id: u32) -> &'static str {
    match id {
        value_type::U8 => "u8",
        value_type::I8 => "i8",
        value_type::U16 => "u16",
        value_type::I16 => "i16",
        value_type::U32 => "u32",
        value_type::I32 => "i32",
        value_type::F32 => "f32",
        value_type::BOOL => "bool",
        value_type::STRING => "string",
        value_type::ARRAY => "array",
        value_type::U64 => "u64",
        value_type::I64 => "i64",
        value_type::F64 => "f64",
        _ => "unknown",
    }
}

impl Value {
    /// The GGUF value type id.
    pub fn type_id(&self) -> u32 {
        match self {
            Value::U8(_) => value_type::U8,
            Value::I8(_) => value_type::I8,
            Value::U16(_) => value_type::U16,
            Value::I16(_) => value_type::I16,
            Value::U32(_) => value_type::U32,
            Value::I32(_) => value_type::I32,
            Value::F32(_) => value_type::F32,
            Value::Bool(_) => value_type::BOOL,
            Value::String(_) => value_type::STRING,
            Value::Array(_) => value_type::ARRAY,
            Value::U64(_) => value_type::U64,
            Value::I64(_) => value_type::I64,
            Value::F64(_) => value_type::F64,
        }
    }

    /// A short name of the value's type (`"u32"`, `"string"`, `"array"`, ...).
    pub fn type_name(&self) -> &'static str {
        type_name(self.type_id())
    }

    /// The value as a signed 128-bit integer, when it is an integer of any width.
    pub fn as_integer(&self) -> Option<i128> {
        Some(match *self {
            Value::U8(v) => v.into(),
            Value::I8(v) => v.into(),
            Value::U16(v) => v.into(),
            Value::I16(v) => v.into(),
            Value::U32(v) => v.into(),
            Value::I32(v) => v.into(),
            Value::U64(v) => v.into(),
            Value::I64(v) => v.into(),
            _ => return None,
        })
    }

    /// The value as `u64`, when it is a non-negative integer of any width.
    pub fn as_u64(&self) -> Option<u64> {
        self.as_integer().and_then(|v| u64::try_from(v).ok())
    }

    /// The value as `f64`, when it is an `f32` or `f64`.
    pub fn as_float(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v.into()),
            Value::F64(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&Array> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
}

impl Array {
    /// The GGUF value type id of the elements.
    pub fn elem_type_id(&self) -> u32 {
        match self {
            Array::U8(_) => value_type::U8,
            Array::I8(_) => value_type::I8,
            Array::U16(_) => value_type::U16,
            Array::I16(_) => value_type::I16,
            Array::U32(_) => value_type::U32,
            Array::I32(_) => value_type::I32,
            Array::F32(_) => value_type::F32,
            Array::Bool(_) => value_type::BOOL,
            Array::String(_) => value_type::STRING,
            Array::Array(_) => value_type::ARRAY,
            Array::U64(_) => value_type::U64,
            Array::I64(_) => value_type::I64,
            Array::F64(_) => value_type::F64,
        }
    }

    /// A short name of the element type.
    pub fn elem_type_name(&self) -> &'static str {
        type_name(self.elem_type_id())
    }

    pub fn len(&self) -> usize {
        match self {
            Array::U8(v) => v.len(),
            Array::I8(v) => v.len(),
            Array::U16(v) => v.len(),
            Array::I16(v) => v.len(),
            Array::U32(v) => v.len(),
            Array::I32(v) => v.len(),
            Array::F32(v) => v.len(),
            Array::Bool(v) => v.len(),
            Array::String(v) => v.len(),
            Array::Array(v) => v.len(),
            Array::U64(v) => v.len(),
            Array::I64(v) => v.len(),
            Array::F64(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `i` as a signed 128-bit integer, for integer arrays.
    pub fn integer_at(&self, i: usize) -> Option<i128> {
        match self {
            Array::U8(v) => v.get(i).map(|&x| x.into()),
            Array::I8(v) => v.get(i).map(|&x| x.into()),
            Array::U16(v) => v.get(i).map(|&x| x.into()),
            Array::I16(v) => v.get(i).map(|&x| x.into()),
            Array::U32(v) => v.get(i).map(|&x| x.into()),
            Array::I32(v) => v.get(i).map(|&x| x.into()),
            Array::U64(v) => v.get(i).map(|&x| x.into()),
            Array::I64(v) => v.get(i).map(|&x| x.into()),
            _ => None,
        }
    }

    /// The strings of a string array.
    pub fn as_strings(&self) -> Option<&[String]> {
        match self {
            Array::String(v) => Some(v),
            _ => None,
        }
    }

    /// Converts every element of an integer array to `T`, or reports the first one that does not
    /// fit (as `Err(Some(value))`). `Err(None)` means the array does not hold integers.
    fn integers<T: TryFrom<i128>>(&self) -> Result<Vec<T>, Option<i128>> {
        fn conv<T: TryFrom<i128>, S: Copy + Into<i128>>(v: &[S]) -> Result<Vec<T>, Option<i128>> {
            v.iter()
                .map(|&x| {
                    let x: i128 = x.into();
                    T::try_from(x).map_err(|_| Some(x))
                })
                .collect()
        }
        match self {
            Array::U8(v) => conv(v),
            Array::I8(v) => conv(v),
            Array::U16(v) => conv(v),
            Array::I16(v) => conv(v),
            Array::U32(v) => conv(v),
            Array::I32(v) => conv(v),
            Array::U64(v) => conv(v),
            Array::I64(v) => conv(v),
            _ => Err(None),
        }
    }
}

/// Metadata key/value pairs in file order, with lookups by key.
#[derive(Clone, Debug, Default)]
pub struct Metadata {
    entries: Vec<(String, Value)>,
    index: HashMap<String, usize>,
}

impl PartialEq for Metadata {
    fn eq(&self, other: &Self) -> bool {
        self.entries == other.entries
    }
}

impl Metadata {
    pub(crate) fn with_capacity(n: usize) -> Self {
        Metadata {
            entries: Vec::with_capacity(n),
            index: HashMap::with_capacity(n),
        }
    }

    /// Adds a pair; returns the pair back when the key is already present.
    pub(crate) fn insert(&mut self, key: String, value: Value) -> Result<(), (String, Value)> {
        if self.index.contains_key(&key) {
            return Err((key, value));
        }
        self.index.insert(key.clone(), self.entries.len());
        self.entries.push((key, value));
        Ok(())
    }

    pub(crate) fn contains_key(&self, key: &str) -> bool {
        self.index.contains_key(key)
    }

    /// Number of key/value pairs (as stored in the file; no `GGUF.*` pseudo keys).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        let &i = self.index.get(key)?;
        self.entries.get(i).map(|(_, v)| v)
    }

    /// The pairs in file order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The keys in file order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _)| k.as_str())
    }

    fn require(&self, key: &str) -> Result<&Value, GgufError> {
        self.get(key).ok_or_else(|| GgufError::MissingKey {
            key: key.to_owned(),
        })
    }

    fn wrong_type(key: &str, expected: &'static str, found: &Value) -> GgufError {
        GgufError::WrongType {
            key: key.to_owned(),
            expected,
            found: found.type_name(),
        }
    }

    /// An integer of any width, which must be non-negative.
    pub fn get_uint(&self, key: &str) -> Result<u64, GgufError> {
        let v = self.require(key)?;
        let i = v
            .as_integer()
            .ok_or_else(|| Self::wrong_type(key, "an integer", v))?;
        u64::try_from(i).map_err(|_| GgufError::OutOfRange {
            key: key.to_owned(),
            expected: "a non-negative integer",
            value: i.to_string(),
        })
    }

    /// An `f32`, or an `f64` converted to `f32`.
    pub fn get_f32(&self, key: &str) -> Result<f32, GgufError> {
        let v = self.require(key)?;
        match *v {
            Value::F32(x) => Ok(x),
            Value::F64(x) => Ok(x as f32),
            _ => Err(Self::wrong_type(key, "f32 or f64", v)),
        }
    }

    pub fn get_bool(&self, key: &str) -> Result<bool, GgufError> {
        let v = self.require(key)?;
        v.as_bool().ok_or_else(|| Self::wrong_type(key, "bool", v))
    }

    pub fn get_str(&self, key: &str) -> Result<&str, GgufError> {
        let v = self.require(key)?;
        v.as_str().ok_or_else(|| Self::wrong_type(key, "string", v))
    }

    /// Any array.
    pub fn get_array(&self, key: &str) -> Result<&Array, GgufError> {
        let v = self.require(key)?;
        v.as_array()
            .ok_or_else(|| Self::wrong_type(key, "array", v))
    }

    /// An array of strings (borrowed; no copying).
    pub fn get_str_array(&self, key: &str) -> Result<&[String], GgufError> {
        let a = self.get_array(key)?;
        a.as_strings().ok_or_else(|| GgufError::WrongType {
            key: key.to_owned(),
            expected: "array of string",
            found: array_found(a),
        })
    }

    /// An array of integers of any width whose elements all fit in `i32`.
    pub fn get_i32_array(&self, key: &str) -> Result<Vec<i32>, GgufError> {
        let a = self.get_array(key)?;
        if let Array::I32(v) = a {
            return Ok(v.clone());
        }
        a.integers::<i32>().map_err(|bad| match bad {
            Some(value) => GgufError::OutOfRange {
                key: key.to_owned(),
                expected: "i32",
                value: value.to_string(),
            },
            None => GgufError::WrongType {
                key: key.to_owned(),
                expected: "array of integers",
                found: array_found(a),
            },
        })
    }

    /// Like [`Self::get_uint`], but `Ok(None)` when the key is absent.
    pub fn opt_uint(&self, key: &str) -> Result<Option<u64>, GgufError> {
        self.optional(key, Self::get_uint)
    }

    /// Like [`Self::get_f32`], but `Ok(None)` when the key is absent.
    pub fn opt_f32(&self, key: &str) -> Result<Option<f32>, GgufError> {
        self.optional(key, Self::get_f32)
    }

    /// Like [`Self::get_bool`], but `Ok(None)` when the key is absent.
    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>, GgufError> {
        self.optional(key, Self::get_bool)
    }

    /// Like [`Self::get_str`], but `Ok(None)` when the key is absent.
    pub fn opt_str(&self, key: &str) -> Result<Option<&str>, GgufError> {
        self.optional(key, Self::get_str)
    }

    /// Like [`Self::get_str_array`], but `Ok(None)` when the key is absent.
    pub fn opt_str_array(&self, key: &str) -> Result<Option<&[String]>, GgufError> {
        self.optional(key, Self::get_str_array)
    }

    /// Like [`Self::get_i32_array`], but `Ok(None)` when the key is absent.
    pub fn opt_i32_array(&self, key: &str) -> Result<Option<Vec<i32>>, GgufError> {
        self.optional(key, Self::get_i32_array)
    }

    fn optional<'a, T>(
        &'a self,
        key: &str,
        get: impl FnOnce(&'a Self, &str) -> Result<T, GgufError>,
    ) -> Result<Option<T>, GgufError> {
        if self.index.contains_key(key) {
            get(self, key).map(Some)
        } else {
            Ok(None)
        }
    }
}

fn array_found(a: &Array) -> &'static str {
    match a {
        Array::U8(_) => "array of u8",
        Array::I8(_) => "array of i8",
        Array::U16(_) => "array of u16",
        Array::I16(_) => "array of i16",
        Array::U32(_) => "array of u32",
        Array::I32(_) => "array of i32",
        Array::F32(_) => "array of f32",
        Array::Bool(_) => "array of bool",
        Array::String(_) => "array of string",
        Array::Array(_) => "array of array",
        Array::U64(_) => "array of u64",
        Array::I64(_) => "array of i64",
        Array::F64(_) => "array of f64",
    }
}
