//! Image embeddings on disk, content-addressed: (image bytes, model identity, preprocessing
//! settings) → the vision tower's output, so a second run over the same screenshots skips the
//! encoder. Bounded in size (oldest entries go first); a corrupt entry reads as a miss.
//!
//! Entry layout: `VLMEMB01`, u32 LE header length, JSON header (`rows`, `cols`, `views`,
//! `seq`, `dim`), the features as f32 LE, then the SHA-256 of everything before it.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{Engine, ImageEmbedding, ProcessorOptions, Result};

const MAGIC: &[u8; 8] = b"VLMEMB01";
const EXTENSION: &str = "emb";

/// Default size cap: 512 MiB.
pub const DEFAULT_MAX_BYTES: u64 = 512 << 20;

/// A directory of cached image embeddings.
#[derive(Debug, Clone)]
pub struct EmbeddingCache {
    dir: PathBuf,
    max_bytes: u64,
}

/// The outcome of a look-up.
#[derive(Debug)]
pub enum Lookup {
    /// The embedding was there and intact.
    Hit(ImageEmbedding),
    /// No entry.
    Miss,
    /// An entry was there but unreadable; it was removed.
    Corrupt(String),
}

#[derive(Serialize, Deserialize)]
struct Header {
    rows: usize,
    cols: usize,
    views: usize,
    seq: usize,
    dim: usize,
}

impl EmbeddingCache {
    /// A cache in `dir` (created on first store) holding at most `max_bytes`.
    pub fn new(dir: impl Into<PathBuf>, max_bytes: u64) -> Self {
        EmbeddingCache {
            dir: dir.into(),
            max_bytes,
        }
    }

    /// `$XDG_CACHE_HOME/vlm/embeddings`, else `~/.cache/vlm/embeddings`.
    pub fn default_dir() -> Option<PathBuf> {
        crate::paths::cache_dir("embeddings")
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The entry name for an image (by its SHA-256) embedded by `engine` as `opts` says.
    pub fn key(&self, engine: &Engine, image_sha256: &str, opts: &ProcessorOptions) -> String {
        // The splitting actually applied: leaving it to the checkpoint and naming the
        // checkpoint's choice give the same features. The alpha mode changes the pixels; the
        // image limits only refuse images, so they are not part of the key.
        let splitting = opts
            .image_splitting
            .unwrap_or_else(|| engine.processor().splits_images());
        let mut h = Sha256::new();
        h.update(concat!("vlm ", env!("CARGO_PKG_VERSION"), "\n"));
        h.update(image_sha256.as_bytes());
        h.update(model_identity(engine).as_bytes());
        h.update(format!("\nsplitting {splitting}\nalpha {:?}\n", opts.alpha).as_bytes());
        h.update(format!("{:?}", engine.config().preprocessor).as_bytes());
        hex(&h.finalize())
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.{EXTENSION}"))
    }

    /// Reads an entry; a damaged one is deleted and reported, so the caller re-encodes.
    pub fn load(&self, key: &str, engine: &Engine) -> Lookup {
        let path = self.path(key);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(_) => return Lookup::Miss,
        };
        match decode(&bytes, engine) {
            Ok(embedding) => {
                // Recently used entries are the last to be evicted.
                if let Ok(f) = fs::File::options().append(true).open(&path) {
                    let _ = f.set_modified(SystemTime::now());
                }
                Lookup::Hit(embedding)
            }
            Err(why) => {
                let _ = fs::remove_file(&path);
                Lookup::Corrupt(why)
            }
        }
    }

    /// Writes an entry (atomically: a reader never sees half of it), then evicts the oldest
    /// entries while the cache is over its cap.
    pub fn store(&self, key: &str, embedding: &ImageEmbedding) -> Result<()> {
        let io = |e: std::io::Error| crate::Error::Io {
            path: self.dir.clone(),
            source: e,
        };
        fs::create_dir_all(&self.dir).map_err(io)?;
        let bytes = encode(embedding)?;
        let tmp = self.dir.join(format!(".{key}.{}.tmp", std::process::id()));
        let mut f = fs::File::create(&tmp).map_err(io)?;
        f.write_all(&bytes).map_err(io)?;
        drop(f);
        fs::rename(&tmp, self.path(key)).map_err(io)?;
        self.evict();
        Ok(())
    }

    /// Total size of the entries, in bytes.
    pub fn size(&self) -> u64 {
        self.entries().iter().map(|(_, len, _)| len).sum()
    }

    fn entries(&self) -> Vec<(PathBuf, u64, SystemTime)> {
        let Ok(dir) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        dir.filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == EXTENSION))
            .filter_map(|e| {
                let meta = e.metadata().ok()?;
                Some((e.path(), meta.len(), meta.modified().ok()?))
            })
            .collect()
    }

    fn evict(&self) {
        let mut entries = self.entries();
        let mut total: u64 = entries.iter().map(|(_, len, _)| len).sum();
        entries.sort_by_key(|(_, _, modified)| *modified);
        for (path, len, _) in entries {
            if total <= self.max_bytes {
                break;
            }
            if fs::remove_file(&path).is_ok() {
                total = total.saturating_sub(len);
            }
        }
    }
}

/// What identifies the weights and settings behind an embedding: the model's description,
/// precision and geometry, and the size and modification time of its files.
fn model_identity(engine: &Engine) -> String {
    let info = engine.info();
    let mut id = format!(
        "{} {} {} {} {}\n",
        info.family, info.source, info.dtype, info.image_seq_len, info.tile_size
    );
    for part in info.source.split(" + ") {
        let path = Path::new(part);
        let files: Vec<PathBuf> = if path.is_dir() {
            let mut files: Vec<PathBuf> = fs::read_dir(path)
                .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
                .unwrap_or_default();
            files.retain(|p| {
                p.extension()
                    .is_some_and(|x| x == "safetensors" || x == "json" || x == "gguf")
            });
            files.sort();
            files
        } else {
            vec![path.to_path_buf()]
        };
        for file in files {
            if let Ok(meta) = fs::metadata(&file) {
                let modified = meta
                    .modified()
                    .ok()
                    .and_then(|m| m.duration_since(SystemTime::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos());
                id.push_str(&format!("{} {} {modified}\n", file.display(), meta.len()));
            }
        }
    }
    id
}

fn encode(embedding: &ImageEmbedding) -> Result<Vec<u8>> {
    let features = embedding.features().to_dtype(DType::F32)?;
    let (views, seq, dim) = features.dims3()?;
    let (rows, cols) = embedding.grid();
    let header = serde_json::to_vec(&Header {
        rows,
        cols,
        views,
        seq,
        dim,
    })
    .unwrap_or_default();
    let data: Vec<f32> = features.flatten_all()?.to_vec1()?;
    let mut out = Vec::with_capacity(8 + 4 + header.len() + data.len() * 4 + 32);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    out.extend_from_slice(&header);
    for x in data {
        out.extend_from_slice(&x.to_le_bytes());
    }
    let digest = Sha256::digest(&out);
    out.extend_from_slice(&digest);
    Ok(out)
}

fn decode(bytes: &[u8], engine: &Engine) -> std::result::Result<ImageEmbedding, String> {
    let body_len = bytes
        .len()
        .checked_sub(32)
        .ok_or("shorter than its checksum")?;
    let (body, digest) = bytes.split_at(body_len);
    if Sha256::digest(body).as_slice() != digest {
        return Err("checksum mismatch".into());
    }
    let rest = body
        .strip_prefix(MAGIC.as_slice())
        .ok_or("not an embedding")?;
    let len_bytes: [u8; 4] = rest
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or("truncated header")?;
    let header_len = u32::from_le_bytes(len_bytes) as usize;
    let header_bytes = rest.get(4..4 + header_len).ok_or("truncated header")?;
    let h: Header = serde_json::from_slice(header_bytes).map_err(|e| e.to_string())?;
    let data = &rest[4 + header_len..];
    let n = h
        .views
        .checked_mul(h.seq)
        .and_then(|x| x.checked_mul(h.dim))
        .ok_or("bad shape")?;
    if data.len() != n * 4 {
        return Err(format!(
            "{} bytes of features, expected {}",
            data.len(),
            n * 4
        ));
    }
    if h.seq != engine.info().image_seq_len {
        return Err("made for another model".into());
    }
    let values: Vec<f32> = data
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let model = engine.model();
    let features = Tensor::from_vec(values, (h.views, h.seq, h.dim), model.device())
        .and_then(|t| t.to_dtype(model.dtype()))
        .map_err(|e| e.to_string())?;
    ImageEmbedding::new(h.rows, h.cols, features).map_err(|e| e.to_string())
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of `bytes`, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}
