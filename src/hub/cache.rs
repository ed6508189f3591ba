//! The Hugging Face cache layout, `models--owner--name/{refs,snapshots,blobs,.no_exist}` → the
//! path of a cached file, its integrity check, and linking a finished blob into a snapshot.
//!
//! The layout is the one `huggingface_hub` and `hf-hub` write, so files any of them downloaded
//! are found here and files downloaded here are found by them.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::registry::{is_sha256, RemoteFile};

/// One repository's folder in the cache.
pub(crate) struct RepoCache {
    root: PathBuf,
    hub_dir: PathBuf,
    repo: String,
}

impl RepoCache {
    pub(crate) fn new(cache_dir: &Path, repo: &str) -> Self {
        let folder = hf_hub::Repo::model(repo.to_string()).folder_name();
        RepoCache {
            root: cache_dir.join(folder),
            hub_dir: cache_dir.to_path_buf(),
            repo: repo.to_string(),
        }
    }

    /// The commit `revision` points at in the cache: the revision itself when a snapshot has
    /// its name, otherwise what `refs/<revision>` says.
    pub(crate) fn commit(&self, revision: &str) -> Option<String> {
        if is_safe_component(revision) && self.snapshot(revision).is_dir() {
            return Some(revision.to_string());
        }
        let text = fs::read_to_string(self.root.join("refs").join(revision)).ok()?;
        let commit = text.trim();
        is_safe_component(commit).then(|| commit.to_string())
    }

    pub(crate) fn snapshot(&self, commit: &str) -> PathBuf {
        self.root.join("snapshots").join(commit)
    }

    fn pointer(&self, commit: &str, file: &str) -> PathBuf {
        file.split('/')
            .fold(self.snapshot(commit), |path, part| path.join(part))
    }

    pub(crate) fn blob(&self, etag: &str) -> PathBuf {
        self.root.join("blobs").join(etag)
    }

    /// The cached file, if the snapshot has it (and, for links, its blob exists).
    pub(crate) fn file(&self, commit: &str, file: &str) -> Option<PathBuf> {
        let path = self.pointer(commit, file);
        path.is_file().then_some(path)
    }

    fn no_exist(&self, commit: &str, file: &str) -> PathBuf {
        file.split('/')
            .fold(self.root.join(".no_exist").join(commit), |p, part| {
                p.join(part)
            })
    }

    /// Whether an earlier request found that the repository lacks `file` at `commit`.
    pub(crate) fn known_absent(&self, commit: &str, file: &str) -> bool {
        self.no_exist(commit, file).exists()
    }

    pub(crate) fn mark_absent(&self, commit: &str, file: &str) -> std::io::Result<()> {
        let marker = self.no_exist(commit, file);
        if let Some(parent) = marker.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(marker, b"")
    }

    /// Points `refs/<revision>` at `commit`.
    pub(crate) fn set_ref(&self, revision: &str, commit: &str) -> std::io::Result<()> {
        let repo = hf_hub::Repo::with_revision(
            self.repo.clone(),
            hf_hub::RepoType::Model,
            revision.to_string(),
        );
        hf_hub::Cache::new(self.hub_dir.clone())
            .repo(repo)
            .create_ref(commit)
    }

    /// Makes `pointer` (in a snapshot) refer to `blob`: a relative symlink where the platform
    /// allows one, as the Python library does, and a copy otherwise.
    pub(crate) fn link(&self, blob: &Path, commit: &str, file: &str) -> std::io::Result<PathBuf> {
        let pointer = self.pointer(commit, file);
        if let Some(parent) = pointer.parent() {
            fs::create_dir_all(parent)?;
        }
        if fs::symlink_metadata(&pointer).is_ok() {
            fs::remove_file(&pointer)?;
        }
        let depth = 2 + file.split('/').count() - 1;
        let mut target = PathBuf::new();
        for _ in 0..depth {
            target.push("..");
        }
        target.push("blobs");
        if let Some(name) = blob.file_name() {
            target.push(name);
        }
        if symlink(&target, &pointer).is_err() {
            fs::copy(blob, &pointer)?;
        }
        Ok(pointer)
    }

    /// Removes a cached file: its snapshot entry and the blob behind it.
    pub(crate) fn remove(&self, pointer: &Path) {
        if let (Ok(blob), Ok(root)) = (fs::canonicalize(pointer), fs::canonicalize(&self.root)) {
            if blob.starts_with(root) {
                let _ = fs::remove_file(blob);
            }
        }
        let _ = fs::remove_file(pointer);
    }

    /// Files of a cached snapshot, as repository paths.
    pub(crate) fn list(&self, commit: &str) -> Vec<String> {
        let mut out = Vec::new();
        let root = self.snapshot(commit);
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.is_file() {
                    if let Ok(rel) = path.strip_prefix(&root) {
                        let parts: Vec<String> = rel
                            .components()
                            .map(|c| c.as_os_str().to_string_lossy().into_owned())
                            .collect();
                        out.push(parts.join("/"));
                    }
                }
            }
        }
        out.sort();
        out
    }
}

#[cfg(unix)]
fn symlink(target: &Path, link: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

#[cfg(windows)]
fn symlink(target: &Path, link: &Path) -> std::io::Result<()> {
    std::os::windows::fs::symlink_file(target, link)
}

#[cfg(not(any(unix, windows)))]
fn symlink(_target: &Path, _link: &Path) -> std::io::Result<()> {
    Err(std::io::ErrorKind::Unsupported.into())
}

/// How thoroughly a cached file is checked before use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// Its size, when known: cheap enough for every run.
    Size,
    /// Its size and SHA-256, when known.
    Hash,
}

/// The SHA-256 a file must have: the registry's, or the blob's own name when the Hub named it
/// after its LFS digest.
pub(crate) fn expected_sha256(path: &Path, file: &RemoteFile) -> Option<String> {
    file.sha256.clone().or_else(|| {
        let blob = fs::canonicalize(path).ok()?;
        let name = blob.file_name()?.to_str()?;
        is_sha256(name).then(|| name.to_string())
    })
}

/// Checks a cached file against what is known of it; `Err` says what is wrong.
pub(crate) fn check_file(
    path: &Path,
    file: &RemoteFile,
    check: Check,
) -> std::result::Result<(), String> {
    let len = fs::metadata(path)
        .map_err(|e| format!("cannot be read: {e}"))?
        .len();
    if let Some(size) = file.size {
        if len != size {
            return Err(format!("is {len} bytes, expected {size}"));
        }
    }
    if check == Check::Hash {
        if let Some(expected) = expected_sha256(path, file) {
            let got = sha256_file(path).map_err(|e| format!("cannot be read: {e}"))?;
            if got != expected {
                return Err(format!("has sha256 {got}, expected {expected}"));
            }
        }
    }
    Ok(())
}

/// Lowercase hex SHA-256 of a file's contents.
pub(crate) fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    hash_prefix(path, u64::MAX, &mut hasher)?;
    Ok(hex(&hasher.finalize()))
}

/// Feeds the first `len` bytes of a file to `hasher`.
pub(crate) fn hash_prefix(path: &Path, len: u64, hasher: &mut Sha256) -> std::io::Result<()> {
    let mut reader = fs::File::open(path)?.take(len);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        hasher.update(&buf[..n]);
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A full commit hash: a revision that cannot move.
pub(crate) fn is_commit(revision: &str) -> bool {
    revision.len() == 40 && revision.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Whether a server-sent value (commit, etag) is safe as one path component.
pub(crate) fn is_safe_component(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Whether a repository path is safe to join under a snapshot directory.
pub(crate) fn is_safe_repo_path(name: &str) -> bool {
    !name.is_empty()
        && !name.contains('\\')
        && name
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != ".." && !part.contains(':'))
}
