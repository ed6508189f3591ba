//! A GGUF v3 writer: header, typed metadata, tensor infos, then aligned tensor data, streamed
//! one tensor at a time so a multi-gigabyte model never has to be held in memory.
//!
//! Written here rather than with Candle's `gguf_file::write` because that one writes GGUF
//! version 2, only knows Candle's own value types (no way to say "array of i32" for llama.cpp's
//! `tokenizer.ggml.token_type`), and wants every tensor in memory at once. The layout is the
//! one gguf-py's `GGUFWriter` produces; the project's reader ([`super::gguf::GgufFile`]) and
//! llama.cpp both read it.

use std::io::Write;
use std::path::{Path, PathBuf};

use candle_core::quantized::GgmlDType;

use super::gguf::dtype_id;
use crate::error::{Error, Result};

/// Alignment of the tensor data section and of every tensor in it. It is the GGUF default, so
/// the `general.alignment` key is not written (as gguf-py does).
const ALIGNMENT: usize = 32;

const MAGIC: &[u8; 4] = b"GGUF";
const VERSION: u32 = 3;

/// A typed metadata value, with GGUF's value types.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum MetaValue {
    /// `UINT32`: counts, sizes and token ids, as llama.cpp writes them.
    U32(u32),
    /// `FLOAT32`: epsilons, RoPE base.
    F32(f32),
    /// `BOOL`.
    Bool(bool),
    /// `STRING` (UTF-8).
    String(String),
    /// `ARRAY` of one element type.
    Array(MetaArray),
}

/// A homogeneous metadata array.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum MetaArray {
    /// Array of `INT32` (token types).
    I32(Vec<i32>),
    /// Array of `FLOAT32` (image mean and std).
    F32(Vec<f32>),
    /// Array of `STRING` (tokens, merges).
    String(Vec<String>),
}

impl From<&str> for MetaValue {
    fn from(s: &str) -> Self {
        MetaValue::String(s.to_string())
    }
}

impl From<String> for MetaValue {
    fn from(s: String) -> Self {
        MetaValue::String(s)
    }
}

impl From<bool> for MetaValue {
    fn from(b: bool) -> Self {
        MetaValue::Bool(b)
    }
}

impl From<f32> for MetaValue {
    fn from(v: f32) -> Self {
        MetaValue::F32(v)
    }
}

impl From<u32> for MetaValue {
    fn from(v: u32) -> Self {
        MetaValue::U32(v)
    }
}

/// One tensor the file will hold.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TensorSpec {
    /// GGUF tensor name.
    pub(crate) name: String,
    /// Shape in PyTorch order (outermost first); the file stores the reverse, ggml's `ne`.
    pub(crate) shape: Vec<usize>,
    /// Storage type.
    pub(crate) dtype: GgmlDType,
}

impl TensorSpec {
    /// Bytes of the tensor's data (whole blocks of the storage type).
    fn byte_len(&self) -> Result<usize> {
        let elems: usize = self.shape.iter().product();
        let row = self.shape.last().copied().unwrap_or(0);
        let block = self.dtype.block_size();
        if self.shape.is_empty() || self.shape.len() > 4 || elems == 0 || !row.is_multiple_of(block)
        {
            return Err(Error::Weight {
                name: self.name.clone(),
                problem: format!(
                    "shape {:?} cannot be stored as {:?} (1 to 4 dimensions, rows of whole {block}-element blocks)",
                    self.shape, self.dtype
                ),
            });
        }
        Ok(elems / block * self.dtype.type_size())
    }
}

/// A GGUF file being written: the header and tensor table go out on [`GgufWriter::new`], then
/// each tensor's data, in the order the specs were given, through [`GgufWriter::write_tensor`].
pub(crate) struct GgufWriter<W: Write> {
    out: W,
    tensors: Vec<(TensorSpec, usize)>,
    next: usize,
    pos: u64,
    path: PathBuf,
}

impl GgufWriter<std::io::BufWriter<std::fs::File>> {
    /// Creates (or truncates) `path` and writes the header there.
    pub(crate) fn create(
        path: &Path,
        metadata: &[(String, MetaValue)],
        tensors: Vec<TensorSpec>,
    ) -> Result<Self> {
        let file = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
        let mut w = Self::new(std::io::BufWriter::new(file), metadata, tensors)?;
        w.path = path.to_path_buf();
        Ok(w)
    }
}

impl<W: Write> GgufWriter<W> {
    /// Writes the header, the metadata and the tensor table to `out`. Sizes and offsets are
    /// known from the specs alone, so the data can follow tensor by tensor.
    pub(crate) fn new(
        out: W,
        metadata: &[(String, MetaValue)],
        tensors: Vec<TensorSpec>,
    ) -> Result<Self> {
        let mut sized = Vec::with_capacity(tensors.len());
        for spec in tensors {
            let len = spec.byte_len()?;
            sized.push((spec, len));
        }
        let mut w = GgufWriter {
            out,
            tensors: sized,
            next: 0,
            pos: 0,
            path: PathBuf::from("<gguf output>"),
        };
        w.header(metadata)?;
        Ok(w)
    }

    fn header(&mut self, metadata: &[(String, MetaValue)]) -> Result<()> {
        let mut buf = Vec::new();
        buf.extend_from_slice(MAGIC);
        buf.extend(VERSION.to_le_bytes());
        buf.extend((self.tensors.len() as u64).to_le_bytes());
        buf.extend((metadata.len() as u64).to_le_bytes());
        for (key, value) in metadata {
            put_string(&mut buf, key);
            buf.extend(value_type(value).to_le_bytes());
            put_value(&mut buf, value);
        }
        let mut offset = 0u64;
        for (spec, len) in &self.tensors {
            put_string(&mut buf, &spec.name);
            buf.extend((spec.shape.len() as u32).to_le_bytes());
            for d in spec.shape.iter().rev() {
                buf.extend((*d as u64).to_le_bytes());
            }
            buf.extend(dtype_id(spec.dtype).to_le_bytes());
            buf.extend(offset.to_le_bytes());
            offset += padded(*len as u64);
        }
        self.emit(&buf)?;
        self.pad()
    }

    /// Writes the data of the next tensor, which must be `name` and have exactly its byte size.
    pub(crate) fn write_tensor(&mut self, name: &str, data: &[u8]) -> Result<()> {
        let Some((spec, len)) = self.tensors.get(self.next) else {
            return Err(Error::Weight {
                name: name.to_string(),
                problem: format!(
                    "not in the tensor table of {} (all {} tensors are written)",
                    self.path.display(),
                    self.tensors.len()
                ),
            });
        };
        if spec.name != name || data.len() != *len {
            return Err(Error::Weight {
                name: name.to_string(),
                problem: format!(
                    "written as tensor #{} of {} with {} bytes, but the table has `{}` there with {len} bytes",
                    self.next,
                    self.path.display(),
                    data.len(),
                    spec.name
                ),
            });
        }
        self.emit(data)?;
        self.pad()?;
        self.next += 1;
        Ok(())
    }

    /// Checks every tensor was written, flushes, and hands back the sink.
    pub(crate) fn finish(mut self) -> Result<W> {
        if let Some((spec, _)) = self.tensors.get(self.next) {
            return Err(Error::Weight {
                name: spec.name.clone(),
                problem: format!(
                    "was never written to {} ({} of {} tensors written)",
                    self.path.display(),
                    self.next,
                    self.tensors.len()
                ),
            });
        }
        self.out.flush().map_err(|e| Error::io(&self.path, e))?;
        Ok(self.out)
    }

    fn emit(&mut self, bytes: &[u8]) -> Result<()> {
        self.out
            .write_all(bytes)
            .map_err(|e| Error::io(&self.path, e))?;
        self.pos += bytes.len() as u64;
        Ok(())
    }

    fn pad(&mut self) -> Result<()> {
        let n = (padded(self.pos) - self.pos) as usize;
        self.emit(&[0u8; ALIGNMENT][..n])
    }
}

fn padded(n: u64) -> u64 {
    n.div_ceil(ALIGNMENT as u64) * ALIGNMENT as u64
}

fn put_string(buf: &mut Vec<u8>, s: &str) {
    buf.extend((s.len() as u64).to_le_bytes());
    buf.extend_from_slice(s.as_bytes());
}

/// GGUF value type ids (`gguf_type` in ggml).
fn value_type(v: &MetaValue) -> u32 {
    match v {
        MetaValue::U32(_) => 4,
        MetaValue::F32(_) => 6,
        MetaValue::Bool(_) => 7,
        MetaValue::String(_) => 8,
        MetaValue::Array(_) => 9,
    }
}

fn put_value(buf: &mut Vec<u8>, v: &MetaValue) {
    match v {
        MetaValue::U32(x) => buf.extend(x.to_le_bytes()),
        MetaValue::F32(x) => buf.extend(x.to_le_bytes()),
        MetaValue::Bool(x) => buf.push(u8::from(*x)),
        MetaValue::String(s) => put_string(buf, s),
        MetaValue::Array(a) => {
            let (item_type, len) = match a {
                MetaArray::I32(v) => (5u32, v.len()),
                MetaArray::F32(v) => (6, v.len()),
                MetaArray::String(v) => (8, v.len()),
            };
            buf.extend(item_type.to_le_bytes());
            buf.extend((len as u64).to_le_bytes());
            match a {
                MetaArray::I32(v) => v.iter().for_each(|x| buf.extend(x.to_le_bytes())),
                MetaArray::F32(v) => v.iter().for_each(|x| buf.extend(x.to_le_bytes())),
                MetaArray::String(v) => v.iter().for_each(|s| put_string(buf, s)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::weights::gguf::{GgufFile, Value};
    use candle_core::quantized::QTensor;
    use candle_core::{Device, Tensor};

    #[test]
    fn round_trips_through_the_reader() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.gguf");
        let meta = vec![
            ("general.architecture".to_string(), "llama".into()),
            ("a.u32".to_string(), MetaValue::U32(7)),
            ("a.f32".to_string(), MetaValue::F32(0.5)),
            ("a.bool".to_string(), true.into()),
            (
                "a.types".to_string(),
                MetaValue::Array(MetaArray::I32(vec![1, -3])),
            ),
            (
                "a.tokens".to_string(),
                MetaValue::Array(MetaArray::String(vec!["x".into(), "Ġ y".into()])),
            ),
        ];
        let w = Tensor::arange(0f32, 64., &Device::Cpu)
            .unwrap()
            .reshape((2, 32))
            .unwrap();
        let q = QTensor::quantize(&w, GgmlDType::Q8_0).unwrap();
        let bias = [1f32, 2., 3.];
        let specs = vec![
            TensorSpec {
                name: "w".into(),
                shape: vec![2, 32],
                dtype: GgmlDType::Q8_0,
            },
            TensorSpec {
                name: "b".into(),
                shape: vec![3],
                dtype: GgmlDType::F32,
            },
        ];
        let mut out = GgufWriter::create(&path, &meta, specs).unwrap();
        // Out of order is refused.
        assert!(out.write_tensor("b", &[0u8; 12]).is_err());
        out.write_tensor("w", &q.data().unwrap()).unwrap();
        let bytes: Vec<u8> = bias.iter().flat_map(|x| x.to_le_bytes()).collect();
        out.write_tensor("b", &bytes).unwrap();
        out.finish().unwrap();

        let f = GgufFile::open(&path).unwrap();
        assert_eq!(f.str("general.architecture").unwrap(), "llama");
        assert_eq!(f.usize("a.u32").unwrap(), 7);
        assert_eq!(f.f64("a.f32").unwrap(), 0.5);
        assert_eq!(f.get("a.bool"), Some(&Value::Bool(true)));
        assert_eq!(
            f.get("a.types"),
            Some(&Value::Array(vec![Value::I64(1), Value::I64(-3)]))
        );
        assert_eq!(
            f.get("a.tokens").and_then(Value::as_array).unwrap()[1],
            Value::String("Ġ y".into())
        );
        assert_eq!(f.tensors["w"].shape, vec![2, 32]);
        assert_eq!(f.tensors["w"].dtype, GgmlDType::Q8_0);
        let back = f.tensor("w", &Device::Cpu).unwrap();
        assert_eq!(back.data().unwrap(), q.data().unwrap());
        let b = f.tensor("b", &Device::Cpu).unwrap();
        let b = b
            .dequantize(&Device::Cpu)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(b, bias);
        assert!(f.tensors["b"].offset.is_multiple_of(ALIGNMENT));
    }

    #[test]
    fn a_missing_tensor_is_an_error() {
        let spec = TensorSpec {
            name: "w".into(),
            shape: vec![4],
            dtype: GgmlDType::F32,
        };
        let w = GgufWriter::new(Vec::new(), &[], vec![spec]).unwrap();
        assert!(w
            .finish()
            .unwrap_err()
            .to_string()
            .contains("never written"));
        let bad = TensorSpec {
            name: "q".into(),
            shape: vec![2, 33],
            dtype: GgmlDType::Q8_0,
        };
        assert!(GgufWriter::new(Vec::new(), &[], vec![bad]).is_err());
    }

    #[test]
    fn q8_0_requantizes_to_the_same_bytes() {
        // Dequantizing a Q8_0 file and quantizing it again (as a converter reading a Q8_0
        // checkpoint would) must not drift: each block's scale and integers come back exactly.
        let n = 32 * 64;
        let values: Vec<f32> = (0..n)
            .map(|i| {
                let x = (i as f32 * 0.618_034).fract() - 0.5;
                x * (1.0 + (i / 32) as f32 * 3.7)
            })
            .collect();
        let t = Tensor::from_vec(values, (64, 32), &Device::Cpu).unwrap();
        let q1 = QTensor::quantize(&t, GgmlDType::Q8_0).unwrap();
        let back = q1.dequantize(&Device::Cpu).unwrap();
        let q2 = QTensor::quantize(&back, GgmlDType::Q8_0).unwrap();
        assert_eq!(q1.data().unwrap(), q2.data().unwrap());
    }
}
