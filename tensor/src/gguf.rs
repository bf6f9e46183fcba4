//! Reading llama.cpp's GGUF files (versions 2 and 3), memory-mapped.
//!
//! ```text
//! "GGUF" u32 version  u64 tensor_count  u64 kv_count
//! kv_count × (string key, u32 type, value)        metadata: architecture, sizes, tokenizer, ...
//! tensor_count × (string name, u32 n_dims, u64 dims[n_dims], u32 ggml_type, u64 offset)
//! padding to `general.alignment` (default 32), then the tensor data
//! ```
//! Strings are a u64 length and UTF-8 bytes; all integers little-endian.
//! Dimensions are ggml's `ne`, fastest-varying first: a `(rows, cols)`
//! matrix is stored as `[cols, rows]`; [`GgufFile::tensor`] returns the
//! row-major shape. Every length and offset is checked against the file
//! before it is used; bad input is an error naming the file (and tensor).

use crate::{Tensor, TensorError};
use kernels::quant::{dequantize, QuantType};
use memmap2::Mmap;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A metadata value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Int(i64),
    UInt(u64),
    Float(f64),
    Bool(bool),
    Str(String),
    Array(Vec<Value>),
}

impl Value {
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::UInt(u) => Some(u),
            Value::Int(i) if i >= 0 => Some(i as u64),
            _ => None,
        }
    }
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::Float(f) => Some(f),
            Value::UInt(u) => Some(u as f64),
            Value::Int(i) => Some(i as f64),
            _ => None,
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
}

/// Where a tensor lives and what it is.
#[derive(Clone, Debug)]
pub struct TensorInfo {
    pub name: String,
    /// ggml order: fastest-varying first.
    pub dims: Vec<usize>,
    pub ggml_type: u32,
    /// Absolute byte range in the file.
    pub start: usize,
    pub len: usize,
}

impl TensorInfo {
    /// The row-major shape (`dims` reversed).
    pub fn shape(&self) -> Vec<usize> {
        self.dims.iter().rev().copied().collect()
    }
}

pub struct GgufFile {
    path: PathBuf,
    map: Mmap,
    pub version: u32,
    pub metadata: BTreeMap<String, Value>,
    pub tensors: Vec<TensorInfo>,
}

/// A bounds-checked cursor over the header.
struct Reader<'a> {
    b: &'a [u8],
    at: usize,
    file: &'a str,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], TensorError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.b.len()).ok_or_else(|| TensorError::Truncated {
            file: self.file.to_string(),
            detail: format!("the header needs {n} more bytes at offset {}, the file has {}", self.at, self.b.len()),
        })?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32, TensorError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn u64(&mut self) -> Result<u64, TensorError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    /// A count that must fit in what is left of the file (each item ≥ `min_size` bytes).
    fn count(&mut self, min_size: usize) -> Result<usize, TensorError> {
        let n = self.u64()?;
        let left = (self.b.len() - self.at) as u64;
        if n.saturating_mul(min_size as u64) > left {
            return Err(self.bad(format!("a count of {n} at offset {} cannot fit in the file", self.at - 8)));
        }
        Ok(n as usize)
    }
    fn string(&mut self) -> Result<String, TensorError> {
        let n = self.count(1)?;
        let at = self.at;
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| self.bad(format!("a string at offset {at} is not UTF-8")))
    }
    fn value(&mut self, kind: u32, depth: usize) -> Result<Value, TensorError> {
        Ok(match kind {
            0 => Value::UInt(self.take(1)?[0] as u64),
            1 => Value::Int(self.take(1)?[0] as i8 as i64),
            2 => Value::UInt(u16::from_le_bytes(self.take(2)?.try_into().expect("2")) as u64),
            3 => Value::Int(i16::from_le_bytes(self.take(2)?.try_into().expect("2")) as i64),
            4 => Value::UInt(self.u32()? as u64),
            5 => Value::Int(self.u32()? as i32 as i64),
            6 => Value::Float(f32::from_bits(self.u32()?) as f64),
            7 => Value::Bool(self.take(1)?[0] != 0),
            8 => Value::Str(self.string()?),
            9 if depth == 0 => {
                let inner = self.u32()?;
                let n = self.count(1)?;
                (0..n).map(|_| self.value(inner, depth + 1)).collect::<Result<_, _>>().map(Value::Array)?
            }
            10 => Value::UInt(self.u64()?),
            11 => Value::Int(self.u64()? as i64),
            12 => Value::Float(f64::from_bits(self.u64()?)),
            _ => return Err(self.bad(format!("unknown metadata value type {kind} at offset {}", self.at))),
        })
    }
    fn bad(&self, detail: String) -> TensorError {
        TensorError::BadHeader { file: self.file.to_string(), detail }
    }
}

impl GgufFile {
    pub fn open(path: impl AsRef<Path>) -> Result<GgufFile, TensorError> {
        let path = path.as_ref();
        let file = std::fs::File::open(path).map_err(|e| TensorError::Io { path: path.to_path_buf(), source: e })?;
        // SAFETY: the map is read-only; hone never writes through it. As with
        // any mapped file, another process truncating it meanwhile is outside
        // what we can guard against (the same caveat as every mmap reader).
        let map = unsafe { Mmap::map(&file) }.map_err(|e| TensorError::Io { path: path.to_path_buf(), source: e })?;
        let name = path.display().to_string();
        let mut r = Reader { b: &map, at: 0, file: &name };
        if r.take(4)? != b"GGUF" {
            return Err(r.bad("not a GGUF file (the magic bytes are not \"GGUF\")".into()));
        }
        let version = r.u32()?;
        if !(2..=3).contains(&version) {
            return Err(r.bad(format!("GGUF version {version} is not supported (hone reads versions 2 and 3)")));
        }
        let n_tensors = r.count(24)?;
        let n_kv = r.count(12)?;
        let mut metadata = BTreeMap::new();
        for _ in 0..n_kv {
            let key = r.string()?;
            let kind = r.u32()?;
            metadata.insert(key, r.value(kind, 0)?);
        }
        let mut infos = Vec::with_capacity(n_tensors);
        for _ in 0..n_tensors {
            let tname = r.string()?;
            let n_dims = r.u32()? as usize;
            if n_dims > 4 {
                return Err(r.bad(format!("tensor {tname:?} has {n_dims} dimensions (at most 4)")));
            }
            let dims = (0..n_dims).map(|_| r.u64().map(|d| d as usize)).collect::<Result<Vec<_>, _>>()?;
            let ggml_type = r.u32()?;
            let offset = r.u64()?;
            infos.push((tname, dims, ggml_type, offset));
        }
        let align = metadata.get("general.alignment").and_then(Value::as_u64).unwrap_or(32).max(1) as usize;
        let data_start = r.at.div_ceil(align) * align;
        let mut tensors = Vec::with_capacity(n_tensors);
        for (tname, dims, ggml_type, offset) in infos {
            let bad = |detail: String| TensorError::BadOffsets { file: name.clone(), tensor: tname.clone(), detail };
            let n = dims
                .iter()
                .try_fold(1usize, |a, &d| a.checked_mul(d))
                .ok_or_else(|| bad(format!("dims {dims:?} overflow")))?;
            let len = match QuantType::from_ggml(ggml_type) {
                Some(t) => t.bytes_for(n).ok_or_else(|| bad(format!("{n} weights are not whole {t:?} blocks")))?,
                None => 0, // an unsupported type is reported when the tensor is read
            };
            let start = (offset as usize).checked_add(data_start).ok_or_else(|| bad("offset overflows".into()))?;
            if start.checked_add(len).is_none_or(|end| end > map.len()) {
                return Err(bad(format!(
                    "data {start}..{} is past the end of the file ({} bytes)",
                    start.saturating_add(len),
                    map.len()
                )));
            }
            tensors.push(TensorInfo { name: tname, dims, ggml_type, start, len });
        }
        Ok(GgufFile { path: path.to_path_buf(), map, version, metadata, tensors })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.get(key)
    }

    pub fn info(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// A tensor dequantised to f32, in its row-major shape.
    pub fn tensor(&self, name: &str) -> Result<Tensor, TensorError> {
        let file = self.path.display().to_string();
        let info = self
            .info(name)
            .ok_or_else(|| TensorError::MissingTensor { file: file.clone(), tensor: name.to_string() })?;
        let t = QuantType::from_ggml(info.ggml_type).ok_or_else(|| TensorError::UnsupportedDtype {
            file: file.clone(),
            tensor: name.to_string(),
            dtype: format!("ggml type {} (hone reads F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K and Q6_K)", info.ggml_type),
        })?;
        let shape = info.shape();
        let mut out = vec![0.0f32; shape.iter().product()];
        dequantize(t, &self.map[info.start..info.start + info.len], &mut out)?;
        Tensor::from_vec(out, &shape)
    }
}
