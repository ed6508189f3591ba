//! Image and video embeddings, content-addressed: (model identity, `MediaId`) → the vision
//! tower's output and the media's layout in the prompt. Kept in memory and, for a cache with a
//! directory, on disk, so that a second request or run over the same pictures skips the
//! encoder. Both tiers are bounded in size (least recently used entries go first); a corrupt
//! disk entry reads as a miss and is removed.
//!
//! Sessions consult it ([`crate::Session::set_embedding_cache`]) before running the vision
//! tower and store what they encode; `compare` and the server give their sessions one.
//!
//! Disk entry layout: `VLMEMB02`, u32 LE header length, JSON header (`layout`, `views`,
//! `seq`, `dim`), the features as f32 LE, then the SHA-256 of everything before it.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::features::MediaFeatures;
use crate::processor::{MediaId, MediaLayout};
use crate::{Engine, Result};

const MAGIC: &[u8; 8] = b"VLMEMB02";
const EXTENSION: &str = "emb";

/// Default size cap: 512 MiB.
pub(crate) const DEFAULT_MAX_BYTES: u64 = 512 << 20;

/// The memory tier of a cache with a directory holds at most this much: the disk is the
/// large tier, memory only spares repeated reads of the same pictures.
const MEMORY_TIER_MAX_BYTES: u64 = 128 << 20;

/// Cached image and video embeddings, shared by every clone (clones are cheap and may be used
/// from several threads).
#[derive(Debug, Clone)]
pub struct EmbeddingCache {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: Option<PathBuf>,
    max_bytes: u64,
    memory: Mutex<Memory>,
}

#[derive(Debug, Default)]
struct Memory {
    entries: HashMap<String, Entry>,
    bytes: u64,
    clock: u64,
    stats: CacheStats,
}

#[derive(Debug)]
struct Entry {
    features: MediaFeatures,
    bytes: u64,
    used: u64,
}

/// What a cache has answered since it was made.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Look-ups answered from memory or disk.
    pub hits: u64,
    /// Look-ups with no entry.
    pub misses: u64,
    /// Disk entries found unreadable (and removed).
    pub(crate) corrupt: u64,
    /// Why the last unreadable entry was unreadable.
    pub(crate) last_corrupt: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Header {
    layout: MediaLayout,
    views: usize,
    seq: usize,
    dim: usize,
}

impl EmbeddingCache {
    /// A cache in `dir` (created on first store) holding at most `max_bytes` on disk, with a
    /// smaller memory tier in front of it.
    pub fn new(dir: impl Into<PathBuf>, max_bytes: u64) -> Self {
        Self::with(Some(dir.into()), max_bytes)
    }

    /// A cache in memory only, holding at most `max_bytes` of features.
    pub fn in_memory(max_bytes: u64) -> Self {
        Self::with(None, max_bytes)
    }

    fn with(dir: Option<PathBuf>, max_bytes: u64) -> Self {
        EmbeddingCache {
            inner: Arc::new(Inner {
                dir,
                max_bytes,
                memory: Mutex::new(Memory::default()),
            }),
        }
    }

    /// `$XDG_CACHE_HOME/vlm/embeddings`, else `~/.cache/vlm/embeddings`.
    pub fn default_dir() -> Option<PathBuf> {
        crate::paths::cache_dir("embeddings")
    }

    /// The directory, for a cache on disk.
    pub fn dir(&self) -> Option<&Path> {
        self.inner.dir.as_deref()
    }

    /// What the cache has answered so far.
    pub fn stats(&self) -> CacheStats {
        self.memory().stats.clone()
    }

    /// Total size of the entries on disk (in memory, for a memory-only cache), in bytes.
    pub fn size(&self) -> u64 {
        match &self.inner.dir {
            Some(_) => self.entries().iter().map(|(_, len, _)| len).sum(),
            None => self.memory().bytes,
        }
    }

    fn memory(&self) -> MutexGuard<'_, Memory> {
        // A panic while the lock was held cannot leave an entry half-written: entries are
        // inserted whole. The cache stays usable.
        self.inner
            .memory
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn memory_cap(&self) -> u64 {
        match &self.inner.dir {
            Some(_) => self.inner.max_bytes.min(MEMORY_TIER_MAX_BYTES),
            None => self.inner.max_bytes,
        }
    }

    /// The entry name of `id` embedded by `engine`: the media id already covers the pixels
    /// and the preprocessing, so only the weights are added.
    fn key(engine: &Engine, id: &MediaId) -> String {
        let mut h = Sha256::new();
        h.update(concat!("vlm ", env!("CARGO_PKG_VERSION"), "\n"));
        h.update(model_identity(engine).as_bytes());
        h.update(id.as_bytes());
        hex(&h.finalize())
    }

    /// The features of `id` as `engine` computes them, from memory or disk.
    pub(crate) fn get(&self, engine: &Engine, id: &MediaId) -> Option<MediaFeatures> {
        let key = Self::key(engine, id);
        {
            let mut memory = self.memory();
            memory.clock += 1;
            let now = memory.clock;
            if let Some(entry) = memory.entries.get_mut(&key) {
                entry.used = now;
                let found = entry.features.clone();
                memory.stats.hits += 1;
                return Some(found);
            }
        }
        let found = self.load(&key, engine);
        let mut memory = self.memory();
        match found {
            Ok(Some(features)) => {
                memory.stats.hits += 1;
                drop(memory);
                self.remember(key, &features);
                Some(features)
            }
            Ok(None) => {
                memory.stats.misses += 1;
                None
            }
            Err(why) => {
                tracing::warn!("embedding cache entry {key} unusable ({why}); encoding again");
                memory.stats.corrupt += 1;
                memory.stats.misses += 1;
                memory.stats.last_corrupt = Some(why);
                None
            }
        }
    }

    /// Keeps `features` as `id`'s embedding by `engine`. A disk that cannot be written only
    /// costs a later run an encode, so disk errors are logged, not returned.
    pub(crate) fn put(&self, engine: &Engine, id: &MediaId, features: &MediaFeatures) {
        let key = Self::key(engine, id);
        self.remember(key.clone(), features);
        if self.inner.dir.is_some() {
            if let Err(e) = self.store(&key, features) {
                tracing::warn!("embedding cache: could not store {key}: {e}");
            }
        }
    }

    fn remember(&self, key: String, features: &MediaFeatures) {
        let bytes = features.features.elem_count() as u64 * 4;
        let cap = self.memory_cap();
        if bytes > cap {
            return;
        }
        let mut memory = self.memory();
        memory.clock += 1;
        let used = memory.clock;
        if let Some(old) = memory.entries.insert(
            key,
            Entry {
                features: features.clone(),
                bytes,
                used,
            },
        ) {
            memory.bytes -= old.bytes;
        }
        memory.bytes += bytes;
        while memory.bytes > cap {
            let Some(oldest) = memory
                .entries
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(e) = memory.entries.remove(&oldest) {
                memory.bytes -= e.bytes;
            }
        }
    }

    fn path(&self, dir: &Path, key: &str) -> PathBuf {
        dir.join(format!("{key}.{EXTENSION}"))
    }

    /// Reads a disk entry: `Ok(None)` when there is none; a damaged one is deleted and its
    /// fault returned, so the caller re-encodes.
    fn load(
        &self,
        key: &str,
        engine: &Engine,
    ) -> std::result::Result<Option<MediaFeatures>, String> {
        let Some(dir) = &self.inner.dir else {
            return Ok(None);
        };
        let path = self.path(dir, key);
        let Ok(bytes) = fs::read(&path) else {
            return Ok(None);
        };
        match decode(&bytes, engine) {
            Ok(features) => {
                // Recently used entries are the last to be evicted.
                if let Ok(f) = fs::File::options().append(true).open(&path) {
                    let _ = f.set_modified(SystemTime::now());
                }
                Ok(Some(features))
            }
            Err(why) => {
                let _ = fs::remove_file(&path);
                Err(why)
            }
        }
    }

    /// Writes a disk entry (atomically: a reader never sees half of it), then evicts the
    /// oldest entries while the directory is over its cap.
    fn store(&self, key: &str, features: &MediaFeatures) -> Result<()> {
        let Some(dir) = &self.inner.dir else {
            return Ok(());
        };
        let io = |e: std::io::Error| crate::Error::Io {
            path: dir.clone(),
            source: e,
        };
        fs::create_dir_all(dir).map_err(io)?;
        let bytes = encode(features)?;
        let tmp = dir.join(format!(".{key}.{}.tmp", std::process::id()));
        let mut f = fs::File::create(&tmp).map_err(io)?;
        f.write_all(&bytes).map_err(io)?;
        drop(f);
        fs::rename(&tmp, self.path(dir, key)).map_err(io)?;
        self.evict();
        Ok(())
    }

    fn entries(&self) -> Vec<(PathBuf, u64, SystemTime)> {
        let Some(Ok(dir)) = self.inner.dir.as_ref().map(fs::read_dir) else {
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
            if total <= self.inner.max_bytes {
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

fn encode(media: &MediaFeatures) -> Result<Vec<u8>> {
    let features = media.features.to_dtype(DType::F32)?;
    let (views, seq, dim) = features.dims3()?;
    let header = serde_json::to_vec(&Header {
        layout: media.layout.clone(),
        views,
        seq,
        dim,
    })
    .map_err(|e| crate::Error::InvalidOption {
        name: "embedding",
        reason: e.to_string(),
    })?;
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

fn decode(bytes: &[u8], engine: &Engine) -> std::result::Result<MediaFeatures, String> {
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
    MediaFeatures::new(h.layout, features).map_err(|e| e.to_string())
}

/// Lowercase hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of `bytes`, lowercase hex.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}
