//! safetensors files: memory-mapped reading (single files and sharded
//! models) and atomic writing.
//!
//! ```text
//! | u64 LE: header length N | N bytes of JSON header | data section ... |
//! header: { "name": { "dtype": "BF16", "shape": [576, 576], "data_offsets": [start, end] }, ...,
//!           "__metadata__": { "format": "pt" } }     offsets are relative to the data section
//! ```
//!
//! The header is validated here, with checked arithmetic, before any tensor
//! is touched: every error names the file and, where there is one, the
//! tensor. A tensor comes back as a view into the map (nothing is read until
//! it is used) unless its bytes are misaligned for its dtype, in which case
//! it is copied once. Files are assumed little-endian, as the format requires.

use crate::{numel, DType, Storage, Tensor, TensorError};
use memmap2::Mmap;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Headers larger than this are refused (the reference implementation's limit).
pub const MAX_HEADER_BYTES: u64 = 100_000_000;

/// What the header says about one tensor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    /// The dtype as the header spells it ("F32", "BF16", "I64", ...).
    pub dtype: String,
    pub shape: Vec<usize>,
    /// Byte range in the data section.
    pub data_offsets: (usize, usize),
}

/// One opened `.safetensors` file.
#[derive(Debug)]
pub struct SafetensorsFile {
    path: PathBuf,
    map: Arc<Mmap>,
    /// Byte offset of the data section in the file.
    data_start: usize,
    tensors: BTreeMap<String, TensorInfo>,
    metadata: BTreeMap<String, String>,
}

/// Bytes per element of every safetensors dtype (hone computes with three of them,
/// but checks the sizes of all, so a file with an extra I64 buffer still opens).
fn dtype_bytes(dtype: &str) -> Option<usize> {
    Some(match dtype {
        "BOOL" | "U8" | "I8" | "F8_E5M2" | "F8_E4M3" => 1,
        "U16" | "I16" | "F16" | "BF16" => 2,
        "U32" | "I32" | "F32" => 4,
        "U64" | "I64" | "F64" => 8,
        _ => return None,
    })
}

impl SafetensorsFile {
    /// Opens and maps `path`, and validates its header.
    pub fn open(path: impl AsRef<Path>) -> Result<SafetensorsFile, TensorError> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| TensorError::io(path, e))?;
        // SAFETY: the map is read-only and private to this process. Like every
        // mmap-based reader, this assumes nobody truncates the file while it is
        // mapped (which would fault on access, not corrupt memory).
        let map = unsafe { Mmap::map(&file) }.map_err(|e| TensorError::io(path, e))?;
        Self::parse(path, Arc::new(map))
    }

    fn parse(path: &Path, map: Arc<Mmap>) -> Result<SafetensorsFile, TensorError> {
        let file = path.display().to_string();
        let len = map.len();
        let truncated = |detail: String| TensorError::Truncated { file: file.clone(), detail };
        let bad_header = |detail: String| TensorError::BadHeader { file: file.clone(), detail };

        let Some(len_bytes) = map.get(..8) else {
            return Err(truncated(format!("{len} bytes, but a safetensors file starts with an 8-byte header length")));
        };
        let header_len = u64::from_le_bytes(len_bytes.try_into().expect("8 bytes"));
        if header_len > MAX_HEADER_BYTES {
            return Err(bad_header(format!("header length {header_len} exceeds the {MAX_HEADER_BYTES}-byte limit")));
        }
        let header_len = header_len as usize;
        let data_start = 8 + header_len;
        if data_start > len {
            return Err(truncated(format!("the header claims {header_len} bytes but only {} follow", len - 8)));
        }
        let data_len = len - data_start;
        let text = std::str::from_utf8(&map[8..data_start]).map_err(|e| bad_header(format!("not UTF-8: {e}")))?;
        let json: Map<String, Value> =
            serde_json::from_str(text).map_err(|e| bad_header(format!("not a JSON object: {e}")))?;

        let mut tensors = BTreeMap::new();
        let mut metadata = BTreeMap::new();
        for (name, entry) in json {
            if name == "__metadata__" {
                let map = entry.as_object().ok_or_else(|| bad_header("__metadata__ is not an object".into()))?;
                for (k, v) in map {
                    metadata.insert(k.clone(), v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()));
                }
                continue;
            }
            let info = parse_entry(&file, &name, &entry)?;
            let (start, end) = info.data_offsets;
            let bad_offsets =
                |detail: String| TensorError::BadOffsets { file: file.clone(), tensor: name.clone(), detail };
            if start > end {
                return Err(bad_offsets(format!("data_offsets [{start}, {end}] run backwards")));
            }
            if end > data_len {
                return Err(bad_offsets(format!(
                    "data_offsets [{start}, {end}] reach past the {data_len}-byte data section (file truncated?)"
                )));
            }
            let elem = dtype_bytes(&info.dtype).ok_or_else(|| TensorError::UnsupportedDtype {
                file: file.clone(),
                tensor: name.clone(),
                dtype: info.dtype.clone(),
            })?;
            let expected = numel(&info.shape).and_then(|n| n.checked_mul(elem));
            if expected != Some(end - start) {
                return Err(TensorError::SizeMismatch {
                    file: file.clone(),
                    tensor: name.clone(),
                    shape: info.shape.clone(),
                    dtype: info.dtype.clone(),
                    expected: expected.unwrap_or(usize::MAX),
                    actual: end - start,
                });
            }
            tensors.insert(name, info);
        }

        // No two tensors may share bytes.
        let mut by_start: Vec<(&String, &TensorInfo)> =
            tensors.iter().filter(|(_, i)| i.data_offsets.0 < i.data_offsets.1).collect();
        by_start.sort_by_key(|(_, i)| i.data_offsets);
        for pair in by_start.windows(2) {
            let ((a, ai), (b, bi)) = (pair[0], pair[1]);
            if bi.data_offsets.0 < ai.data_offsets.1 {
                return Err(TensorError::BadOffsets {
                    file: file.clone(),
                    tensor: b.clone(),
                    detail: format!("data_offsets {:?} overlap tensor {a:?} at {:?}", bi.data_offsets, ai.data_offsets),
                });
            }
        }
        Ok(SafetensorsFile { path: path.to_path_buf(), map, data_start, tensors, metadata })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Tensor names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// What the header says about `name`.
    pub fn info(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.get(name)
    }

    /// The `__metadata__` table.
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    /// Tensor `name`: a view into the map (no copy) when its bytes are
    /// aligned for its dtype, otherwise an owned copy.
    pub fn tensor(&self, name: &str) -> Result<Tensor, TensorError> {
        let file = || self.path.display().to_string();
        let info =
            self.tensors.get(name).ok_or_else(|| TensorError::MissingTensor { file: file(), tensor: name.into() })?;
        let dtype = DType::from_safetensors_name(&info.dtype, || (file(), name.to_string()))?;
        let (start, end) = (self.data_start + info.data_offsets.0, self.data_start + info.data_offsets.1);
        let storage = if start % dtype.size() == 0 {
            Storage::Mapped { map: Arc::clone(&self.map), start, len: end - start, dtype }
        } else {
            copy_unaligned(&self.map[start..end], dtype)
        };
        Tensor::from_storage(storage, &info.shape)
    }
}

/// Owned storage from bytes that are not aligned for `dtype`.
fn copy_unaligned(bytes: &[u8], dtype: DType) -> Storage {
    match dtype {
        DType::F32 => Storage::F32(bytes.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect()),
        DType::BF16 => Storage::BF16(bytes.chunks_exact(2).map(|b| half::bf16::from_le_bytes([b[0], b[1]])).collect()),
        DType::F16 => Storage::F16(bytes.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]])).collect()),
    }
}

/// One header entry: `{"dtype": str, "shape": [usize], "data_offsets": [usize, usize]}`.
fn parse_entry(file: &str, name: &str, entry: &Value) -> Result<TensorInfo, TensorError> {
    let bad =
        |detail: &str| TensorError::BadHeader { file: file.to_string(), detail: format!("tensor {name:?}: {detail}") };
    let obj = entry.as_object().ok_or_else(|| bad("entry is not an object"))?;
    let dtype = obj.get("dtype").and_then(Value::as_str).ok_or_else(|| bad("missing or non-string \"dtype\""))?;
    let ints = |key: &str| -> Option<Vec<usize>> {
        obj.get(key)?.as_array()?.iter().map(|v| v.as_u64().and_then(|x| usize::try_from(x).ok())).collect()
    };
    let shape = ints("shape").ok_or_else(|| bad("missing or malformed \"shape\" (a list of non-negative integers)"))?;
    let offsets = ints("data_offsets").ok_or_else(|| bad("missing or malformed \"data_offsets\""))?;
    let [start, end] = offsets[..] else { return Err(bad("\"data_offsets\" must hold exactly two integers")) };
    Ok(TensorInfo { dtype: dtype.to_string(), shape, data_offsets: (start, end) })
}

/// Writes `tensors` to `path` as a safetensors file, atomically: the bytes
/// go to a temporary file in the same directory, which is flushed to disk
/// and then renamed over `path`. A crash leaves either the old file or the
/// new one under `path`, never a half-written one.
pub fn save(
    path: impl AsRef<Path>,
    tensors: &[(&str, &Tensor)],
    metadata: &BTreeMap<String, String>,
) -> Result<(), TensorError> {
    let path = path.as_ref();
    let mut header = Map::new();
    if !metadata.is_empty() {
        header.insert(
            "__metadata__".into(),
            Value::Object(metadata.iter().map(|(k, v)| (k.clone(), v.clone().into())).collect()),
        );
    }
    let mut sorted: Vec<&(&str, &Tensor)> = tensors.iter().collect();
    sorted.sort_by_key(|(name, _)| *name);
    let contiguous: Vec<Tensor> = sorted.iter().map(|(_, t)| t.contiguous()).collect();
    let mut offset = 0usize;
    for ((name, _), t) in sorted.iter().zip(&contiguous) {
        let bytes = t.numel() * t.dtype().size();
        let entry = serde_json::json!({ "dtype": t.dtype().safetensors_name(), "shape": t.shape(), "data_offsets": [offset, offset + bytes] });
        header.insert(name.to_string(), entry);
        offset += bytes;
    }
    let mut header = serde_json::to_string(&Value::Object(header)).expect("JSON of strings and numbers");
    // Pad so the data section starts 8-byte aligned: every tensor of the
    // file can then be mapped without a copy.
    header.push_str(&" ".repeat((8 - (8 + header.len()) % 8) % 8));

    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::io::BufWriter::new(File::create(&tmp)?);
        f.write_all(&(header.len() as u64).to_le_bytes())?;
        f.write_all(header.as_bytes())?;
        for t in &contiguous {
            let bytes = t.storage().bytes();
            let size = t.dtype().size();
            f.write_all(&bytes[t.offset() * size..(t.offset() + t.numel()) * size])?;
        }
        let f = f.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // Make the rename itself durable.
        File::open(dir)?.sync_all()
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        TensorError::io(path, e)
    })
}

/// The weights of a model: one `model.safetensors`, or the shards named by
/// `model.safetensors.index.json`.
#[derive(Debug)]
pub struct Weights {
    /// The index file or the single file, for error messages.
    source: String,
    files: Vec<SafetensorsFile>,
    /// Tensor name -> index into `files`.
    index: BTreeMap<String, usize>,
}

impl Weights {
    /// Opens a model directory (sharded index if present, else
    /// `model.safetensors`) or a single `.safetensors` file.
    pub fn open(path: impl AsRef<Path>) -> Result<Weights, TensorError> {
        let path = path.as_ref();
        if path.is_file() {
            return Ok(Weights::single(SafetensorsFile::open(path)?));
        }
        let index_path = path.join("model.safetensors.index.json");
        if index_path.is_file() {
            return Weights::sharded(&index_path);
        }
        let single = path.join("model.safetensors");
        if single.is_file() {
            return Ok(Weights::single(SafetensorsFile::open(single)?));
        }
        Err(TensorError::io(
            path,
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no model.safetensors or model.safetensors.index.json in this directory",
            ),
        ))
    }

    fn single(file: SafetensorsFile) -> Weights {
        let index = file.names().map(|n| (n.to_string(), 0)).collect();
        Weights { source: file.path().display().to_string(), files: vec![file], index }
    }

    fn sharded(index_path: &Path) -> Result<Weights, TensorError> {
        let name = index_path.display().to_string();
        let bad = |detail: String| TensorError::BadIndex { file: name.clone(), detail };
        let text = std::fs::read_to_string(index_path).map_err(|e| TensorError::io(index_path, e))?;
        let json: Value = serde_json::from_str(&text).map_err(|e| bad(format!("not JSON: {e}")))?;
        let map =
            json.get("weight_map").and_then(Value::as_object).ok_or_else(|| bad("no \"weight_map\" object".into()))?;
        let dir = index_path.parent().unwrap_or(Path::new("."));
        let mut files: Vec<SafetensorsFile> = Vec::new();
        let mut shard_ids: BTreeMap<String, usize> = BTreeMap::new();
        let mut index = BTreeMap::new();
        for (tensor, shard) in map {
            let shard = shard.as_str().ok_or_else(|| bad(format!("weight_map[{tensor:?}] is not a file name")))?;
            let id = match shard_ids.get(shard) {
                Some(&id) => id,
                None => {
                    let shard_path = dir.join(shard);
                    if !shard_path.is_file() {
                        return Err(bad(format!("tensor {tensor:?} is in shard {shard:?}, which does not exist")));
                    }
                    files.push(SafetensorsFile::open(&shard_path)?);
                    shard_ids.insert(shard.to_string(), files.len() - 1);
                    files.len() - 1
                }
            };
            if files[id].info(tensor).is_none() {
                return Err(TensorError::MissingTensor {
                    file: files[id].path().display().to_string(),
                    tensor: tensor.clone(),
                });
            }
            index.insert(tensor.clone(), id);
        }
        Ok(Weights { source: name, files, index })
    }

    /// Tensor names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.index.keys().map(String::as_str)
    }

    /// Tensor `name`, from whichever shard holds it (zero-copy when aligned).
    pub fn tensor(&self, name: &str) -> Result<Tensor, TensorError> {
        match self.index.get(name) {
            Some(&id) => self.files[id].tensor(name),
            None => Err(TensorError::MissingTensor { file: self.source.clone(), tensor: name.to_string() }),
        }
    }

    /// What the header says about `name`.
    pub fn info(&self, name: &str) -> Option<&TensorInfo> {
        self.files[*self.index.get(name)?].info(name)
    }
}
