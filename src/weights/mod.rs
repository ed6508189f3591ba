//! Weight files → named tensors on a device, in the compute dtype.
//!
//! The model definition asks for tensors by checkpoint name through [`Weights`]; where they come
//! from (safetensors today) is this module's business, so new formats slot in here and not in
//! the model code.

pub mod safetensors;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::VarBuilder;

use crate::error::{Error, Result};

/// A view of a checkpoint's tensors under a name prefix.
#[derive(Clone)]
pub struct Weights {
    vb: VarBuilder<'static>,
}

impl Weights {
    /// Memory-maps safetensors files (one, or all shards of one checkpoint). Tensors are
    /// converted to `dtype` on `device` when they are read.
    pub fn from_safetensors(files: &[PathBuf], dtype: DType, device: &Device) -> Result<Self> {
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
        Ok(Weights { vb })
    }

    /// The same weights, with `prefix` appended to the name path.
    pub fn pp(&self, prefix: impl ToString) -> Weights {
        Weights {
            vb: self.vb.pp(prefix),
        }
    }

    /// Full checkpoint name of `name` under this prefix.
    pub fn path(&self, name: &str) -> String {
        let prefix = self.vb.prefix();
        if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}.{name}")
        }
    }

    /// Whether a tensor named `name` exists under this prefix.
    pub fn contains(&self, name: &str) -> bool {
        self.vb.contains_tensor(name)
    }

    /// Reads tensor `name`, which must have `shape`.
    pub fn get(&self, shape: impl Into<Shape>, name: &str) -> Result<Tensor> {
        let shape: Shape = shape.into();
        self.vb.get(shape.clone(), name).map_err(|e| {
            let problem = if self.contains(name) {
                format!("expected shape {shape:?}: {e}")
            } else {
                "missing from the checkpoint".to_string()
            };
            Error::Weight {
                name: self.path(name),
                problem,
            }
        })
    }

    /// The compute dtype tensors are converted to.
    pub fn dtype(&self) -> DType {
        self.vb.dtype()
    }

    /// The device tensors are placed on.
    pub fn device(&self) -> &Device {
        self.vb.device()
    }
}

/// The safetensors files of a checkpoint directory: `model.safetensors`, or the shards listed
/// by `model.safetensors.index.json`.
pub fn safetensors_files(dir: &Path) -> Result<Vec<PathBuf>> {
    safetensors::files_in_dir(dir)
}
