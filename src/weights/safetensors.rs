//! Locating and validating safetensors files (single or sharded).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};

/// `model.safetensors` if present, else the shards named by `model.safetensors.index.json`.
pub(crate) fn files_in_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(vec![single]);
    }
    let index = dir.join("model.safetensors.index.json");
    if !index.is_file() {
        return Err(Error::MissingFile {
            path: dir.join("model.safetensors (or model.safetensors.index.json)"),
        });
    }
    #[derive(Deserialize)]
    struct Index {
        weight_map: std::collections::HashMap<String, String>,
    }
    let text = crate::error::read_text(&index)?;
    let parsed: Index = serde_json::from_str(&text).map_err(|e| Error::InvalidConfig {
        path: index.clone(),
        problem: format!("not a valid safetensors index: {e}"),
    })?;
    let shards: BTreeSet<&String> = parsed.weight_map.values().collect();
    if shards.is_empty() {
        return Err(Error::InvalidConfig {
            path: index,
            problem: "the weight map is empty".into(),
        });
    }
    let mut files = Vec::with_capacity(shards.len());
    for shard in shards {
        // Shard names are file names inside the checkpoint; refuse anything that would leave it.
        if shard.contains('/') || shard.contains('\\') || shard.starts_with('.') {
            return Err(Error::InvalidConfig {
                path: index,
                problem: format!("shard name `{shard}` is not a plain file name"),
            });
        }
        let path = dir.join(shard);
        if !path.is_file() {
            return Err(Error::MissingFile { path });
        }
        files.push(path);
    }
    Ok(files)
}

/// Checks that `path` is a complete safetensors file whose tensors are float32, bfloat16 or
/// float16, so that a truncated or foreign file fails here with its name rather than later.
pub(crate) fn validate(path: &Path) -> Result<()> {
    let bad = |problem: String| Error::WeightFile {
        path: path.to_path_buf(),
        problem,
    };
    let file = std::fs::File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::MissingFile {
            path: path.to_path_buf(),
        },
        _ => Error::io(path, e),
    })?;
    // SAFETY: read-only map of a file we just opened; see `Weights::from_safetensors`.
    let mmap = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
    let tensors = safetensors::SafeTensors::deserialize(&mmap)
        .map_err(|e| bad(format!("not a valid safetensors file ({e})")))?;
    for (name, view) in tensors.tensors() {
        use safetensors::Dtype;
        match view.dtype() {
            Dtype::F32 | Dtype::BF16 | Dtype::F16 => {}
            other => {
                return Err(bad(format!(
                    "tensor `{name}` has dtype {other:?}; only F32, BF16 and F16 are supported"
                )))
            }
        }
    }
    Ok(())
}
