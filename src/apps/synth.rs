//! `synth`: a synthetic preset → a checkpoint on disk, as a Hugging Face directory
//! (`config.json`, tokenizer and processor files, `model.safetensors`) or, with a quantization
//! type, as a llama.cpp GGUF pair (text model + mmproj) next to the same JSON files. Other
//! runtimes (transformers, llama.cpp) can then be timed on exactly the weights
//! `--synthetic` builds in memory.
//!
//! The output directory must be new or empty: nothing already there is touched, and on error
//! the files written so far are removed.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};

use crate::apps::quantize::{write_pair, QuantizeOptions, QuantizeProgress};
use crate::config::CheckpointConfig;
use crate::synthetic::{self, Preset};
use crate::weights::{QuantType, Weights};
use crate::{Error, Result};

/// How to write the checkpoint.
#[derive(Debug, Clone, Default)]
pub struct SynthOptions {
    /// Write a GGUF pair quantized to this type instead of `model.safetensors`.
    pub quant: Option<QuantType>,
}

/// What [`synth`] is doing.
#[derive(Debug, Clone)]
pub enum SynthStep {
    /// Drawing the random weights in memory.
    Drawing,
    /// Writing `model.safetensors` (one call, no finer progress).
    Writing(PathBuf),
    /// One GGUF tensor written.
    Tensor(QuantizeProgress),
}

/// One file written.
#[derive(Debug, Clone)]
pub struct SynthFile {
    /// Where.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
}

/// What [`synth`] wrote.
#[derive(Debug, Clone)]
pub struct SynthReport {
    /// Number of weights.
    pub parameters: usize,
    /// Every file, JSON files first.
    pub files: Vec<SynthFile>,
    /// The GGUF pair (text model, mmproj) when quantized.
    pub gguf: Option<(PathBuf, PathBuf)>,
}

/// Writes `preset` with `synthetic::SEED` into `out`, which must not exist or be an empty
/// directory.
///
/// ```no_run
/// use vlm::apps::synth::{synth, SynthOptions};
/// use vlm::synthetic::Preset;
///
/// let report = synth(Preset::SmolVlm2_256M, "bench-256m".as_ref(), &SynthOptions::default(), &mut |_| {})?;
/// assert!(report.files.iter().any(|f| f.path.ends_with("model.safetensors")));
/// # Ok::<(), vlm::Error>(())
/// ```
pub fn synth(
    preset: Preset,
    out: &Path,
    opts: &SynthOptions,
    on_step: &mut dyn FnMut(SynthStep),
) -> Result<SynthReport> {
    let created = prepare_dir(out)?;
    let mut written = Vec::new();
    let result = write_all(preset, out, opts, on_step, &mut written);
    if result.is_err() {
        // The error being returned matters more than a leftover we could not remove.
        for path in &written {
            let _ = std::fs::remove_file(path);
        }
        if created {
            let _ = std::fs::remove_dir(out);
        }
    }
    result
}

/// Checks that `out` is new or an empty directory and creates it; `true` when it was created.
fn prepare_dir(out: &Path) -> Result<bool> {
    match std::fs::symlink_metadata(out) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
            Ok(true)
        }
        Err(e) => Err(Error::io(out, e)),
        Ok(meta) if !meta.is_dir() => Err(Error::InvalidOption {
            name: "out",
            reason: format!("{} exists and is not a directory", out.display()),
        }),
        Ok(_) => {
            let mut entries = std::fs::read_dir(out).map_err(|e| Error::io(out, e))?;
            if entries.next().is_some() {
                return Err(Error::InvalidOption {
                    name: "out",
                    reason: format!(
                        "{} is not empty; give a new or empty directory (nothing in it is overwritten)",
                        out.display()
                    ),
                });
            }
            Ok(false)
        }
    }
}

fn write_all(
    preset: Preset,
    out: &Path,
    opts: &SynthOptions,
    on_step: &mut dyn FnMut(SynthStep),
    written: &mut Vec<PathBuf>,
) -> Result<SynthReport> {
    for (name, contents) in preset.config_files() {
        let path = out.join(name);
        written.push(path.clone());
        std::fs::write(&path, contents).map_err(|e| Error::io(&path, e))?;
    }
    let mut gguf = None;
    match opts.quant {
        None => {
            on_step(SynthStep::Drawing);
            let tensors = preset.weights(synthetic::SEED)?;
            let path = out.join("model.safetensors");
            let partial = out.join("model.safetensors.partial");
            on_step(SynthStep::Writing(path.clone()));
            written.push(partial.clone());
            candle_core::safetensors::save(&tensors, &partial).map_err(|e| Error::WeightFile {
                path: partial.clone(),
                problem: format!("cannot write: {e}"),
            })?;
            written.push(path.clone());
            std::fs::rename(&partial, &path).map_err(|e| Error::io(&path, e))?;
        }
        Some(ty) => {
            let cfg = CheckpointConfig::from_dir(out)?;
            let weights = || {
                let tensors = preset.weights(synthetic::SEED)?;
                Ok(Weights::from_tensors(
                    tensors,
                    DType::F32,
                    &Device::Cpu,
                    None,
                ))
            };
            let names = crate::apps::quantize::output_names(preset.file_stem(), ty);
            written.push(out.join(&names.0));
            written.push(out.join(&names.1));
            on_step(SynthStep::Drawing);
            let report = write_pair(
                out,
                &cfg,
                preset.file_stem(),
                &weights,
                out,
                ty,
                &QuantizeOptions { force: false },
                &mut |p| on_step(SynthStep::Tensor(p)),
            )?;
            if let [text, mmproj] = report.files.as_slice() {
                gguf = Some((text.path.clone(), mmproj.path.clone()));
            }
        }
    }
    let mut files = Vec::new();
    for path in written.iter().filter(|p| p.exists()) {
        let bytes = std::fs::metadata(path)
            .map_err(|e| Error::io(path, e))?
            .len();
        files.push(SynthFile {
            path: path.clone(),
            bytes,
        });
    }
    Ok(SynthReport {
        parameters: preset.layout().parameters(),
        files,
        gguf,
    })
}
