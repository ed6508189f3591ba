//! GGUF files → metadata and tensors, read from a memory map with every length and offset
//! checked against the file before anything is allocated.
//!
//! Written by hand rather than with Candle's `gguf_file::Content::read` because that reader
//! trusts the header: a corrupt or hostile file that claims 2⁶⁰ tensors or a string of 2⁶⁰ bytes
//! makes it allocate that much (or abort) before any check. Here a count or length is accepted
//! only if the remaining bytes could hold it, and tensor data must lie inside the file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::quantized::{ggml_file::qtensor_from_ggml, GgmlDType, QTensor};
use candle_core::Device;

use crate::error::{Error, Result};

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Unsigned integer of any width.
    U64(u64),
    /// Signed integer of any width.
    I64(i64),
    /// f32 or f64.
    F64(f64),
    /// Boolean.
    Bool(bool),
    /// UTF-8 string.
    String(String),
    /// Array of values.
    Array(Vec<Value>),
}

impl Value {
    /// The value as an unsigned integer, if it is a non-negative integer.
    pub(crate) fn as_u64(&self) -> Option<u64> {
        match self {
            Value::U64(v) => Some(*v),
            Value::I64(v) => u64::try_from(*v).ok(),
            _ => None,
        }
    }

    /// The value as a float, if it is numeric.
    pub(crate) fn as_f64(&self) -> Option<f64> {
        match self {
            Value::F64(v) => Some(*v),
            Value::U64(v) => Some(*v as f64),
            Value::I64(v) => Some(*v as f64),
            _ => None,
        }
    }

    /// The value as a string.
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The value as a boolean.
    pub(crate) fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The value as an array.
    pub(crate) fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
}

/// Where one tensor lives in the file.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    /// Element type.
    pub dtype: GgmlDType,
    /// Shape in PyTorch order (outermost first; GGUF stores the reverse).
    pub shape: Vec<usize>,
    /// Byte offset of the data from the start of the file.
    pub(crate) offset: usize,
    /// Byte length of the data.
    len: usize,
}

/// An opened GGUF file.
pub struct GgufFile {
    path: PathBuf,
    mmap: memmap2::Mmap,
    /// Metadata key → value.
    pub metadata: BTreeMap<String, Value>,
    /// Tensor name → location.
    pub tensors: BTreeMap<String, TensorInfo>,
}

const MAGIC: &[u8; 4] = b"GGUF";
/// ggml tensors have at most 4 dimensions.
const MAX_DIMS: u32 = 4;
/// Arrays nested deeper than this are refused (GGUF writers never nest).
const MAX_DEPTH: u32 = 4;

impl GgufFile {
    /// Opens and indexes a GGUF file. Tensor data is not read until asked for.
    pub fn open(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::MissingFile {
                path: path.to_path_buf(),
            },
            _ => Error::io(path, e),
        })?;
        // SAFETY: read-only map; like every mmap-based loader we rely on the file not being
        // truncated or rewritten while it is open.
        let mmap = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        let (metadata, tensors) = parse(&mmap).map_err(|problem| Error::WeightFile {
            path: path.to_path_buf(),
            problem,
        })?;
        Ok(GgufFile {
            path: path.to_path_buf(),
            mmap,
            metadata,
            tensors,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A metadata value.
    pub(crate) fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.get(key)
    }

    /// A required string value.
    pub(crate) fn str(&self, key: &str) -> Result<&str> {
        self.get(key)
            .and_then(Value::as_str)
            .ok_or_else(|| self.missing(key, "a string"))
    }

    /// A required non-negative integer value.
    pub fn usize(&self, key: &str) -> Result<usize> {
        self.get(key)
            .and_then(Value::as_u64)
            .and_then(|v| usize::try_from(v).ok())
            .ok_or_else(|| self.missing(key, "a non-negative integer"))
    }

    /// A required numeric value.
    pub(crate) fn f64(&self, key: &str) -> Result<f64> {
        self.get(key)
            .and_then(Value::as_f64)
            .ok_or_else(|| self.missing(key, "a number"))
    }

    fn missing(&self, key: &str, what: &str) -> Error {
        Error::WeightFile {
            path: self.path.clone(),
            problem: match self.get(key) {
                None => format!("metadata key `{key}` is missing"),
                Some(v) => format!("metadata key `{key}` should be {what}, found {v:?}"),
            },
        }
    }

    /// Reads tensor `name` onto `device` (quantized types stay quantized).
    pub fn tensor(&self, name: &str, device: &Device) -> Result<QTensor> {
        let info = self.tensors.get(name).ok_or_else(|| Error::Weight {
            name: name.to_string(),
            problem: format!("missing from {}", self.path.display()),
        })?;
        let bytes = &self.mmap[info.offset..info.offset + info.len];
        // Candle reinterprets the bytes as blocks of f32/f16 fields; keep them aligned even
        // when a file's alignment setting is smaller than the element's.
        let aligned: Vec<u64>;
        let bytes = if bytes.as_ptr().align_offset(8) == 0 {
            bytes
        } else {
            let mut buf = vec![0u64; info.len.div_ceil(8)];
            // SAFETY: `buf` owns at least `info.len` bytes and u8 has no alignment needs.
            let dst =
                unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<u8>(), info.len) };
            dst.copy_from_slice(bytes);
            aligned = buf;
            // SAFETY: as above; the view lives as long as `aligned`.
            unsafe { std::slice::from_raw_parts(aligned.as_ptr().cast::<u8>(), info.len) }
        };
        let tensor =
            qtensor_from_ggml(info.dtype, bytes, info.shape.clone(), device).map_err(|e| {
                Error::Weight {
                    name: name.to_string(),
                    problem: e.to_string(),
                }
            })?;
        self.release(info.offset, info.len);
        Ok(tensor)
    }

    /// Drops the file pages of a tensor that has been copied out. The loaded model owns its
    /// weights, so without this the mapped file would stay resident beside them and peak
    /// memory would hold every weight twice.
    fn release(&self, offset: usize, len: usize) {
        // Whole 64 KiB units inside the tensor: aligned for any page size, and never touching
        // a neighbour's bytes (freeing them would only cost a re-read, but stay tidy).
        const UNIT: usize = 64 * 1024;
        let start = offset.div_ceil(UNIT) * UNIT;
        let end = (offset + len) / UNIT * UNIT;
        if end <= start {
            return;
        }
        #[cfg(unix)]
        {
            // SAFETY: the map is read-only and file-backed, so dropped pages are read back
            // from the file if touched again; no reference into this range outlives
            // `tensor()`, which has copied the bytes out. A failure only leaves pages resident.
            let _ = unsafe {
                self.mmap.unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    start,
                    end - start,
                )
            };
        }
    }
}

/// ggml type id → Candle type. Types Candle cannot run are refused by name.
fn dtype_from_id(id: u32) -> std::result::Result<GgmlDType, String> {
    Ok(match id {
        0 => GgmlDType::F32,
        1 => GgmlDType::F16,
        2 => GgmlDType::Q4_0,
        3 => GgmlDType::Q4_1,
        6 => GgmlDType::Q5_0,
        7 => GgmlDType::Q5_1,
        8 => GgmlDType::Q8_0,
        9 => GgmlDType::Q8_1,
        10 => GgmlDType::Q2K,
        11 => GgmlDType::Q3K,
        12 => GgmlDType::Q4K,
        13 => GgmlDType::Q5K,
        14 => GgmlDType::Q6K,
        15 => GgmlDType::Q8K,
        30 => GgmlDType::BF16,
        other => return Err(format!("tensor type {other} is not supported (supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K–Q6_K)")),
    })
}

/// Candle type → ggml type id (for writing).
pub(crate) fn dtype_id(dtype: GgmlDType) -> u32 {
    match dtype {
        GgmlDType::F32 => 0,
        GgmlDType::F16 => 1,
        GgmlDType::Q4_0 => 2,
        GgmlDType::Q4_1 => 3,
        GgmlDType::Q5_0 => 6,
        GgmlDType::Q5_1 => 7,
        GgmlDType::Q8_0 => 8,
        GgmlDType::Q8_1 => 9,
        GgmlDType::Q2K => 10,
        GgmlDType::Q3K => 11,
        GgmlDType::Q4K => 12,
        GgmlDType::Q5K => 13,
        GgmlDType::Q6K => 14,
        GgmlDType::Q8K => 15,
        GgmlDType::BF16 => 30,
    }
}

struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    fn take(&mut self, n: usize, what: &str) -> std::result::Result<&'a [u8], String> {
        if n > self.remaining() {
            return Err(format!(
                "truncated: {what} needs {n} bytes at offset {} but the file has {} left",
                self.pos,
                self.remaining()
            ));
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u32(&mut self, what: &str) -> std::result::Result<u32, String> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self, what: &str) -> std::result::Result<u64, String> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// A count of items of at least `min_item` bytes each, checked against the bytes left.
    fn count(&mut self, min_item: usize, what: &str) -> std::result::Result<usize, String> {
        let n = self.u64(what)?;
        let fits = usize::try_from(n).ok().filter(|n| {
            n.checked_mul(min_item)
                .is_some_and(|b| b <= self.remaining())
        });
        fits.ok_or_else(|| {
            format!(
                "{what} is {n}, more than the {} bytes left in the file could hold",
                self.remaining()
            )
        })
    }

    fn string(&mut self, what: &str) -> std::result::Result<String, String> {
        let len = self.count(1, what)?;
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| format!("{what} is not valid UTF-8"))
    }

    fn value(&mut self, ty: u32, key: &str, depth: u32) -> std::result::Result<Value, String> {
        let what = || format!("value of `{key}`");
        Ok(match ty {
            0 => Value::U64(self.take(1, &what())?[0] as u64),
            1 => Value::I64(self.take(1, &what())?[0] as i8 as i64),
            2 => {
                let b = self.take(2, &what())?;
                Value::U64(u16::from_le_bytes([b[0], b[1]]) as u64)
            }
            3 => {
                let b = self.take(2, &what())?;
                Value::I64(i16::from_le_bytes([b[0], b[1]]) as i64)
            }
            4 => Value::U64(self.u32(&what())? as u64),
            5 => Value::I64(self.u32(&what())? as i32 as i64),
            6 => Value::F64(f32::from_bits(self.u32(&what())?) as f64),
            7 => Value::Bool(self.take(1, &what())?[0] != 0),
            8 => Value::String(self.string(&what())?),
            9 => {
                if depth >= MAX_DEPTH {
                    return Err(format!("`{key}` nests arrays more than {MAX_DEPTH} deep"));
                }
                let item_ty = self.u32(&what())?;
                let min = match item_ty {
                    0 | 1 | 7 => 1,
                    2 | 3 => 2,
                    4..=6 => 4,
                    8 | 10..=12 => 8,
                    9 => 12,
                    other => return Err(format!("`{key}` has arrays of unknown type {other}")),
                };
                let n = self.count(min, &format!("length of array `{key}`"))?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.value(item_ty, key, depth + 1)?);
                }
                Value::Array(items)
            }
            10 => Value::U64(self.u64(&what())?),
            11 => Value::I64(self.u64(&what())? as i64),
            12 => Value::F64(f64::from_bits(self.u64(&what())?)),
            other => return Err(format!("`{key}` has unknown value type {other}")),
        })
    }
}

type Parsed = (BTreeMap<String, Value>, BTreeMap<String, TensorInfo>);

fn parse(data: &[u8]) -> std::result::Result<Parsed, String> {
    let mut c = Cursor { data, pos: 0 };
    let magic = c
        .take(4, "the magic number")
        .map_err(|_| "not a GGUF file (too short)".to_string())?;
    if magic != MAGIC {
        return Err("not a GGUF file (bad magic number)".into());
    }
    let version = c.u32("the version")?;
    if !(2..=3).contains(&version) {
        return Err(format!(
            "GGUF version {version} is not supported (2 and 3 are)"
        ));
    }
    // A tensor record is at least 8 (name length) + 4 (dims) + 4 (type) + 8 (offset) bytes, a
    // metadata record at least 8 (key length) + 4 (type) + 1 bytes.
    let n_tensors = c.count(24, "the tensor count")?;
    let n_kv = c.count(13, "the metadata count")?;
    let mut metadata = BTreeMap::new();
    for _ in 0..n_kv {
        let key = c.string("a metadata key")?;
        let ty = c.u32("a metadata type")?;
        let value = c.value(ty, &key, 0)?;
        metadata.insert(key, value);
    }
    let alignment = match metadata.get("general.alignment") {
        None => 32,
        Some(v) => v
            .as_u64()
            .filter(|a| a.is_power_of_two() && *a <= 1 << 16)
            .map(|a| a as usize)
            .ok_or_else(|| format!("general.alignment {v:?} is not a power of two"))?,
    };
    let mut raw = Vec::with_capacity(n_tensors);
    for _ in 0..n_tensors {
        let name = c.string("a tensor name")?;
        let n_dims = c.u32("a tensor rank")?;
        if n_dims == 0 || n_dims > MAX_DIMS {
            return Err(format!(
                "tensor `{name}` has {n_dims} dimensions (1 to {MAX_DIMS} allowed)"
            ));
        }
        let mut ne = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            ne.push(c.u64("a tensor dimension")?);
        }
        let ty = c.u32("a tensor type")?;
        let offset = c.u64("a tensor offset")?;
        raw.push((name, ne, ty, offset));
    }
    let data_start = c.pos.div_ceil(alignment) * alignment;
    if data_start > data.len() && n_tensors > 0 {
        return Err("truncated: the file ends before its tensor data".into());
    }
    let data_len = data.len().saturating_sub(data_start);
    let mut tensors = BTreeMap::new();
    for (name, ne, ty, offset) in raw {
        let dtype = dtype_from_id(ty).map_err(|e| format!("tensor `{name}`: {e}"))?;
        let elems = ne
            .iter()
            .try_fold(1u64, |acc, d| acc.checked_mul(*d))
            .filter(|e| *e > 0)
            .ok_or_else(|| format!("tensor `{name}` has an impossible shape {ne:?}"))?;
        let block = dtype.block_size() as u64;
        if ne[0] % block != 0 {
            return Err(format!(
                "tensor `{name}`: rows of {} elements are not whole {dtype:?} blocks of {block}",
                ne[0]
            ));
        }
        let len = (elems / block)
            .checked_mul(dtype.type_size() as u64)
            .ok_or_else(|| format!("tensor `{name}` is impossibly large"))?;
        let end = offset.checked_add(len).filter(|end| *end <= data_len as u64).ok_or_else(|| {
            format!(
                "truncated: tensor `{name}` needs bytes {offset}..{} of the data section, which has {data_len}",
                offset.saturating_add(len)
            )
        })?;
        if offset % alignment as u64 != 0 {
            return Err(format!(
                "tensor `{name}` is not aligned to {alignment} bytes"
            ));
        }
        let _ = end;
        let shape = ne.iter().rev().map(|d| *d as usize).collect();
        tensors.insert(
            name,
            TensorInfo {
                dtype,
                shape,
                offset: data_start + offset as usize,
                len: len as usize,
            },
        );
    }
    Ok((metadata, tensors))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(n_tensors: u64, n_kv: u64) -> Vec<u8> {
        let mut v = b"GGUF".to_vec();
        v.extend(3u32.to_le_bytes());
        v.extend(n_tensors.to_le_bytes());
        v.extend(n_kv.to_le_bytes());
        v
    }

    #[test]
    fn absurd_counts_are_refused_before_allocating() {
        let err = parse(&header(u64::MAX / 2, 0)).unwrap_err();
        assert!(err.contains("tensor count"), "{err}");
        let err = parse(&header(0, 1 << 60)).unwrap_err();
        assert!(err.contains("metadata count"), "{err}");
        let mut v = header(0, 1);
        v.extend(u64::MAX.to_le_bytes()); // key length
        v.extend([0u8; 16]);
        let err = parse(&v).unwrap_err();
        assert!(err.contains("metadata key"), "{err}");
    }

    #[test]
    fn tensors_must_lie_inside_the_file() {
        let mut v = header(1, 0);
        v.extend(1u64.to_le_bytes());
        v.push(b'w');
        v.extend(2u32.to_le_bytes());
        v.extend(1_000_000u64.to_le_bytes());
        v.extend(1_000_000u64.to_le_bytes());
        v.extend(0u32.to_le_bytes()); // F32
        v.extend(0u64.to_le_bytes());
        while !v.len().is_multiple_of(32) {
            v.push(0);
        }
        v.extend([0u8; 64]);
        let err = parse(&v).unwrap_err();
        assert!(err.contains("truncated: tensor `w`"), "{err}");
    }

    #[test]
    fn bad_magic_and_version() {
        assert!(parse(b"GGML....").unwrap_err().contains("bad magic"));
        let mut v = b"GGUF".to_vec();
        v.extend(1u32.to_le_bytes());
        assert!(parse(&v).unwrap_err().contains("version 1"));
        assert!(parse(b"GG").unwrap_err().contains("too short"));
    }
}
