//! Weight files → named tensors on a device, in the compute dtype, quantized where the file or
//! the quantization policy says so.
//!
//! The model definition asks for tensors by their Hugging Face names through [`Weights`];
//! safetensors checkpoints answer directly, GGUF pairs through the name table in `names`.
//! Differences between formats are data here (a quantized matrix, a RoPE layout), never a
//! second model definition.

pub mod gguf;
pub(crate) mod gguf_writer;
pub(crate) mod names;
mod quant;
mod safetensors;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::VarBuilder;

use crate::error::{Error, Result};
use gguf::GgufFile;
use names::GgufPart;
pub(crate) use quant::Target;
pub use quant::{QuantPolicy, QuantType};

/// A text GGUF and, for images, its mmproj GGUF.
pub(crate) struct GgufPair {
    /// The text model (`general.architecture = llama`).
    pub(crate) text: GgufFile,
    /// The vision projector (`general.architecture = clip`), if given.
    pub(crate) mmproj: Option<GgufFile>,
}

#[derive(Clone)]
enum Store {
    Safetensors(VarBuilder<'static>),
    Gguf(Arc<GgufPair>),
}

/// A matrix as a checkpoint (and the load-time quantization policy) keeps it.
#[derive(Debug)]
pub(crate) enum StoredMatrix {
    /// Dense values.
    Dense(Tensor),
    /// ggml blocks, multiplied or looked up without a dense copy.
    Blocks(QTensor),
}

/// What a matrix is for, which decides the quantization policy's rule for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MatrixUse {
    /// Multiplied with activations (a linear layer).
    Product,
    /// Rows looked up by token id (an embedding table).
    Lookup,
}

/// A view of a checkpoint's tensors under a name prefix.
#[derive(Clone)]
pub struct Weights {
    store: Store,
    prefix: String,
    dtype: DType,
    device: Device,
    quant: Option<QuantPolicy>,
}

impl Weights {
    /// Memory-maps safetensors files (one, or all shards of one checkpoint). Tensors are
    /// converted to `dtype` on `device` when read; `quant` quantizes matrices at load.
    pub(crate) fn from_safetensors(
        files: &[PathBuf],
        dtype: DType,
        device: &Device,
        quant: Option<QuantPolicy>,
    ) -> Result<Self> {
        for file in files {
            safetensors::validate(file)?;
        }
        // SAFETY: the files are memory-mapped read-only; like every mmap-based loader we rely on
        // them not being truncated or rewritten while the engine is alive.
        let vb =
            unsafe { VarBuilder::from_mmaped_safetensors(files, dtype, device) }.map_err(|e| {
                Error::WeightFile {
                    path: files.first().cloned().unwrap_or_default(),
                    problem: e.to_string(),
                }
            })?;
        Ok(Weights {
            store: Store::Safetensors(vb),
            prefix: String::new(),
            dtype,
            device: device.clone(),
            quant,
        })
    }

    /// Serves tensors held in memory under their Hugging Face names (a synthetic checkpoint)
    /// exactly as a safetensors checkpoint: converted to `dtype` on `device` when read,
    /// quantized at load by `quant`.
    pub(crate) fn from_tensors(
        tensors: std::collections::HashMap<String, Tensor>,
        dtype: DType,
        device: &Device,
        quant: Option<QuantPolicy>,
    ) -> Self {
        Weights {
            store: Store::Safetensors(VarBuilder::from_tensors(tensors, dtype, device)),
            prefix: String::new(),
            dtype,
            device: device.clone(),
            quant,
        }
    }

    /// Serves a GGUF pair under Hugging Face names. Activations use `dtype`; quantized
    /// matrices stay quantized.
    pub(crate) fn from_gguf(pair: Arc<GgufPair>, dtype: DType, device: &Device) -> Self {
        Weights {
            store: Store::Gguf(pair),
            prefix: String::new(),
            dtype,
            device: device.clone(),
            quant: None,
        }
    }

    /// Whether the weights come from GGUF files (whose Q/K rows are permuted for interleaved
    /// RoPE by llama.cpp's converter).
    pub(crate) fn is_gguf(&self) -> bool {
        matches!(self.store, Store::Gguf(_))
    }

    /// The same weights, with `prefix` appended to the name path.
    pub(crate) fn pp(&self, prefix: impl ToString) -> Weights {
        let mut w = self.clone();
        w.prefix = self.path(&prefix.to_string());
        w
    }

    /// Full Hugging Face name of `name` under this prefix.
    fn path(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.prefix)
        }
    }

    /// The compute dtype.
    pub(crate) fn dtype(&self) -> DType {
        self.dtype
    }

    /// The device tensors are placed on.
    pub(crate) fn device(&self) -> &Device {
        &self.device
    }

    /// Reads tensor `name`, which must have `shape`, as a dense tensor in the compute dtype.
    pub(crate) fn get(&self, shape: impl Into<Shape>, name: &str) -> Result<Tensor> {
        let shape: Shape = shape.into();
        let full = self.path(name);
        match &self.store {
            Store::Safetensors(vb) => vb.get(shape.clone(), &full).map_err(|e| Error::Weight {
                problem: if vb.contains_tensor(&full) {
                    format!("expected shape {shape:?}: {e}")
                } else {
                    "missing from the checkpoint".to_string()
                },
                name: full,
            }),
            Store::Gguf(pair) => {
                let q = self.gguf_tensor(pair, &full, &shape)?;
                Ok(q.dequantize(&self.device)?.to_dtype(self.dtype)?)
            }
        }
    }

    /// The matrix `weight` under this prefix, `[rows, cols]`, as the file and the quantization
    /// policy keep it: ggml blocks, or dense (in the compute dtype unless the policy names
    /// another). `use` says which policy rule applies.
    pub(crate) fn matrix(&self, rows: usize, cols: usize, use_: MatrixUse) -> Result<StoredMatrix> {
        let full = self.path("weight");
        match &self.store {
            Store::Safetensors(_) => {
                let dense = self.get((rows, cols), "weight")?;
                let target = self.quant.map(|q| match use_ {
                    MatrixUse::Product => q.matrix(&full, cols),
                    MatrixUse::Lookup => q.embedding(cols),
                });
                match target {
                    Some(Target::Quant(ty)) => {
                        Ok(StoredMatrix::Blocks(self.quantize(&dense, ty, &full)?))
                    }
                    Some(Target::Dense(dt)) => Ok(StoredMatrix::Dense(dense.to_dtype(dt)?)),
                    None => Ok(StoredMatrix::Dense(dense)),
                }
            }
            Store::Gguf(pair) => Ok(StoredMatrix::Blocks(self.gguf_tensor(
                pair,
                &full,
                &Shape::from((rows, cols)),
            )?)),
        }
    }

    fn quantize(&self, dense: &Tensor, ty: GgmlDType, name: &str) -> Result<QTensor> {
        let f32 = dense.to_dtype(DType::F32)?;
        QTensor::quantize(&f32, ty).map_err(|e| Error::Weight {
            name: name.to_string(),
            problem: format!("cannot quantize to {ty:?}: {e}"),
        })
    }

    fn gguf_tensor(&self, pair: &GgufPair, hf: &str, shape: &Shape) -> Result<QTensor> {
        let (file, name) = gguf_location(pair, hf).ok_or_else(|| missing_gguf(pair, hf))?;
        let info = &file.tensors[&name];
        if info.shape.as_slice() == shape.dims() {
            return file.tensor(&name, &self.device);
        }
        // Older mmproj files call fc1 `ffn_down` and fc2 `ffn_up`: llama.cpp tells them apart by
        // shape, and so do we.
        if let Some(partner) = swapped_ffn_name(&name) {
            if file
                .tensors
                .get(&partner)
                .is_some_and(|p| p.shape.as_slice() == shape.dims())
            {
                return file.tensor(&partner, &self.device);
            }
        }
        Err(Error::Weight {
            name: format!("{name} (`{hf}`) in {}", file.path().display()),
            problem: format!("has shape {:?}, expected {:?}", info.shape, shape.dims()),
        })
    }
}

fn gguf_location<'a>(pair: &'a GgufPair, hf: &str) -> Option<(&'a GgufFile, String)> {
    let (part, name) = names::to_gguf(hf)?;
    let file = match part {
        GgufPart::Text => &pair.text,
        GgufPart::Mmproj => pair.mmproj.as_ref()?,
    };
    file.tensors.contains_key(&name).then_some((file, name))
}

fn missing_gguf(pair: &GgufPair, hf: &str) -> Error {
    match names::to_gguf(hf) {
        None => Error::Weight {
            name: hf.to_string(),
            problem: "has no GGUF counterpart".into(),
        },
        Some((GgufPart::Mmproj, name)) if pair.mmproj.is_none() => Error::Weight {
            name: format!("{name} (`{hf}`)"),
            problem: "belongs to the vision projector; pass its mmproj GGUF".into(),
        },
        Some((part, name)) => {
            let file = match part {
                GgufPart::Text => &pair.text,
                GgufPart::Mmproj => pair.mmproj.as_ref().unwrap_or(&pair.text),
            };
            Error::Weight {
                name: format!("{name} (`{hf}`)"),
                problem: format!("missing from {}", file.path().display()),
            }
        }
    }
}

fn swapped_ffn_name(name: &str) -> Option<String> {
    if !name.starts_with("v.blk.") {
        return None;
    }
    if name.contains(".ffn_up.") {
        Some(name.replace(".ffn_up.", ".ffn_down."))
    } else if name.contains(".ffn_down.") {
        Some(name.replace(".ffn_down.", ".ffn_up."))
    } else {
        None
    }
}

/// The safetensors files of a checkpoint directory: `model.safetensors`, or the shards listed
/// by `model.safetensors.index.json`.
pub(crate) fn safetensors_files(dir: &Path) -> Result<Vec<PathBuf>> {
    safetensors::files_in_dir(dir)
}
