//! One group of files (one revision of one repository) → a snapshot directory in the cache:
//! each file found and checked, or downloaded into a verified blob and linked there, all from
//! one commit.

use std::path::PathBuf;
use std::time::Duration;

use super::cache::{check_file, Check, RepoCache};
use super::plan::Group;
use super::transfer::HttpError;
use super::{describe_missing, Hub, HubProgress};
use crate::error::{Error, Result};
use crate::registry::RemoteFile;

pub(super) struct Fetched {
    pub(crate) dir: PathBuf,
    pub(crate) paths: Vec<Option<PathBuf>>,
}

impl Hub {
    /// Brings one group into the cache and returns its snapshot directory and file paths
    /// (`None` for optional files the repository lacks).
    pub(super) fn fetch_group(
        &self,
        group: &Group,
        check: Check,
        on_progress: &mut dyn FnMut(HubProgress),
    ) -> Result<Fetched> {
        let cache = RepoCache::new(&self.config.cache_dir, &group.repo);
        let cached_commit = cache.commit(&group.revision);
        let mut paths: Vec<Option<PathBuf>> = vec![None; group.files.len()];
        let mut todo = Vec::new();
        for (i, file) in group.files.iter().enumerate() {
            let found = cached_commit
                .as_deref()
                .map(|c| (c, cache.file(c, &file.name)));
            match found {
                Some((_, Some(path))) => {
                    if check == Check::Hash {
                        on_progress(HubProgress::Verify {
                            repo: group.repo.clone(),
                            file: file.name.clone(),
                        });
                    }
                    match check_file(&path, file, check) {
                        Ok(()) => paths[i] = Some(path),
                        Err(problem) if self.config.offline => {
                            return Err(Error::Hub {
                                repo: group.repo.clone(),
                                file: file.name.clone(),
                                problem: format!(
                                    "the cached copy {} {problem}, so it is corrupt; delete it, or go online to download it again",
                                    path.display()
                                ),
                            })
                        }
                        Err(problem) => {
                            on_progress(HubProgress::Corrupt {
                                repo: group.repo.clone(),
                                file: file.name.clone(),
                                problem: format!("{} {problem}", path.display()),
                            });
                            cache.remove(&path);
                            todo.push(i);
                        }
                    }
                }
                Some((commit, None)) if file.optional && cache.known_absent(commit, &file.name) => {
                }
                _ if self.config.offline => {}
                _ => todo.push(i),
            }
        }
        // Downloads after the first are pinned to the commit it resolved to, so a branch
        // moving meanwhile cannot mix two commits in one snapshot.
        let mut pinned: Option<String> = None;
        for i in todo {
            let file = &group.files[i];
            let revision = pinned.clone().unwrap_or_else(|| group.revision.clone());
            match self.download(&cache, &group.repo, &revision, file, on_progress) {
                Ok((path, commit)) => {
                    paths[i] = Some(path);
                    pinned.get_or_insert(commit);
                }
                Err(HttpError::NotFound { commit, .. }) if file.optional => {
                    if let Some(commit) = commit {
                        let _ = cache.mark_absent(&commit, &file.name);
                        pinned.get_or_insert(commit);
                    }
                }
                Err(e) => {
                    return Err(Error::Hub {
                        repo: group.repo.clone(),
                        file: file.name.clone(),
                        problem: e.message(),
                    })
                }
            }
        }
        let commit = match (&pinned, cached_commit) {
            (Some(c), _) => c.clone(),
            (None, Some(c)) => c,
            (None, None) => {
                return Err(Error::NotCached {
                    cache: self.config.cache_dir.clone(),
                    missing: group
                        .files
                        .iter()
                        .map(|f| describe_missing(&group.repo, f))
                        .collect(),
                })
            }
        };
        if group.one_dir {
            let snapshot = cache.snapshot(&commit);
            for (i, path) in paths.iter_mut().enumerate() {
                let elsewhere = path.as_ref().is_some_and(|p| !p.starts_with(&snapshot));
                if elsewhere {
                    let file = &group.files[i];
                    let (p, _) = self
                        .download(&cache, &group.repo, &commit, file, on_progress)
                        .map_err(|e| Error::Hub {
                            repo: group.repo.clone(),
                            file: file.name.clone(),
                            problem: e.message(),
                        })?;
                    *path = Some(p);
                }
            }
        }
        if let (false, Some(name)) = (self.config.offline, &group.record_ref) {
            if cache.commit(name).as_deref() != Some(commit.as_str()) {
                cache
                    .set_ref(name, &commit)
                    .map_err(|e| Error::io(cache.snapshot(&commit), e))?;
            }
        }
        Ok(Fetched {
            dir: cache.snapshot(&commit),
            paths,
        })
    }

    /// One file into the cache: its blob is reused when already there (another snapshot or
    /// another tool fetched it), otherwise downloaded to `<blob>.incomplete`, checked, and
    /// only then moved into place. Returns the snapshot path and the commit.
    fn download(
        &self,
        cache: &RepoCache,
        repo: &str,
        revision: &str,
        file: &RemoteFile,
        on_progress: &mut dyn FnMut(HubProgress),
    ) -> std::result::Result<(PathBuf, String), HttpError> {
        let io = |e: std::io::Error| {
            HttpError::Fatal(format!("cache {}: {e}", self.config.cache_dir.display()))
        };
        let meta = self.http.head(repo, revision, &file.name)?;
        if let Some(size) = file.size {
            if meta.size != size {
                return Err(HttpError::Fatal(format!(
                    "the server has {} bytes where {size} were expected; refusing it",
                    meta.size
                )));
            }
        }
        let expected = RemoteFile {
            size: Some(meta.size),
            ..file.clone()
        };
        let blob = cache.blob(&meta.etag);
        if blob.is_file() {
            if check_file(&blob, &expected, Check::Hash).is_ok() {
                let path = cache.link(&blob, &meta.commit, &file.name).map_err(io)?;
                on_progress(HubProgress::Done {
                    repo: repo.to_string(),
                    file: file.name.clone(),
                });
                return Ok((path, meta.commit));
            }
            std::fs::remove_file(&blob).map_err(io)?;
        }
        if let Some(dir) = blob.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let partial = blob.with_file_name(format!("{}.incomplete", meta.etag));
        let mut report = |done: u64| {
            on_progress(HubProgress::Download {
                repo: repo.to_string(),
                file: file.name.clone(),
                done,
                total: meta.size,
            })
        };
        let mut attempt = 0;
        let digest = loop {
            match self.http.download(&meta, &partial, &mut report) {
                Ok(digest) => break digest,
                Err(HttpError::Transient(m)) if attempt < self.config.retries => {
                    tracing::warn!("{repo}/{}: {m}; resuming", file.name);
                    attempt += 1;
                    std::thread::sleep(Duration::from_millis(250 << attempt.min(4)));
                }
                Err(HttpError::Transient(m)) => {
                    return Err(HttpError::Transient(format!(
                        "{m}; the partial download is kept in the cache and resumed next time"
                    )))
                }
                Err(e) => {
                    let _ = std::fs::remove_file(&partial);
                    return Err(e);
                }
            }
        };
        let want = file
            .sha256
            .clone()
            .or_else(|| crate::registry::is_sha256(&meta.etag).then(|| meta.etag.clone()));
        if let Some(want) = want {
            if digest != want {
                let _ = std::fs::remove_file(&partial);
                return Err(HttpError::Fatal(format!(
                    "the download has sha256 {digest} where {want} was expected; it was discarded"
                )));
            }
        }
        std::fs::rename(&partial, &blob).map_err(io)?;
        let path = cache.link(&blob, &meta.commit, &file.name).map_err(io)?;
        on_progress(HubProgress::Done {
            repo: repo.to_string(),
            file: file.name.clone(),
        });
        Ok((path, meta.commit))
    }
}
