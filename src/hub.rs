//! Models from the Hugging Face Hub: a [`ModelRef`] → files in the standard Hugging Face cache
//! (downloaded once, verified, then used offline) → a [`ModelSource`] to load.
//!
//! ```no_run
//! use vlm::hub::{Hub, HubConfig, Need};
//! use vlm::registry::{Registry, DEFAULT_MODEL};
//! use vlm::{Engine, EngineOptions};
//!
//! let model = Registry::builtin()?.resolve(DEFAULT_MODEL)?;
//! let hub = Hub::new(HubConfig::from_env()?)?;
//! let source = hub.source(&model, Need::Everything, &mut |progress| eprintln!("{progress:?}"))?;
//! let engine = Engine::load(source, EngineOptions::default())?;
//! # Ok::<(), vlm::Error>(())
//! ```
//!
//! The environment is read only by [`HubConfig::from_env`]; everything else takes a
//! [`HubConfig`], so callers (and tests) can point a [`Hub`] anywhere without touching it.

mod cache;
mod config;
mod plan;
mod transfer;

use std::path::PathBuf;
use std::time::Duration;

use crate::engine::ModelSource;
use crate::error::{Error, Result};
use crate::registry::{ModelEntry, ModelRef, RemoteFile};
pub use crate::units::human_bytes;
use cache::{check_file, is_safe_component, Check, RepoCache};
pub use config::{HubConfig, DEFAULT_ENDPOINT};
use plan::{registry_groups, Group, Layout};
use transfer::{Http, HttpError};

/// What happens while model files are fetched.
///
/// This is its own type rather than a variant of [`crate::Progress`]: downloads happen
/// before an [`crate::Engine`] exists, name files (so the events own strings, where
/// generation progress is `Copy`), and exist only with the `hub` feature.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HubProgress {
    /// Bytes of a file are on disk (`done` includes what an earlier attempt left).
    Download {
        /// `owner/name`.
        repo: String,
        /// The file.
        file: String,
        /// Bytes so far.
        done: u64,
        /// Bytes in all.
        total: u64,
    },
    /// A cached file is being hashed.
    Verify {
        /// `owner/name`.
        repo: String,
        /// The file.
        file: String,
    },
    /// A file is complete, verified and in the cache.
    Done {
        /// `owner/name`.
        repo: String,
        /// The file.
        file: String,
    },
    /// A cached file failed its check; it was removed and is fetched again.
    Corrupt {
        /// `owner/name`.
        repo: String,
        /// The file.
        file: String,
        /// What was wrong with it.
        problem: String,
    },
}

/// Which files of a model to fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Everything [`crate::Engine::load`] reads.
    Everything,
    /// What [`crate::engine::load_processor`] reads: for registry models the JSON files only.
    Processor,
}

/// How much of a model is in the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// Every required file, with the expected sizes.
    Complete,
    /// Some required files.
    Partial {
        /// Required files missing or of the wrong size.
        missing: usize,
    },
    /// None.
    Missing,
}

struct Fetched {
    dir: PathBuf,
    paths: Vec<Option<PathBuf>>,
}

/// Fetches models into the Hugging Face cache.
pub struct Hub {
    config: HubConfig,
    http: Http,
}

impl Hub {
    /// A hub client; no request is made until files are needed.
    pub fn new(config: HubConfig) -> Result<Hub> {
        if !config.endpoint.starts_with("http://") && !config.endpoint.starts_with("https://") {
            return Err(Error::InvalidOption {
                name: "HF_ENDPOINT",
                reason: format!("`{}` is not an http(s) URL", config.endpoint),
            });
        }
        let http = Http::new(
            &config.endpoint,
            config.token.clone(),
            config.proxy.as_deref(),
        )
        .map_err(|reason| Error::InvalidOption {
            name: "proxy",
            reason,
        })?;
        Ok(Hub { config, http })
    }

    /// The configuration in use.
    pub fn config(&self) -> &HubConfig {
        &self.config
    }

    /// The local files of `model`, downloading what the cache lacks (unless offline). Cached
    /// files are checked against their known sizes; downloads against sizes and SHA-256.
    pub fn source(
        &self,
        model: &ModelRef,
        need: Need,
        on_progress: &mut dyn FnMut(HubProgress),
    ) -> Result<ModelSource> {
        self.fetch(model, need, Check::Size, on_progress)
    }

    /// Like [`Hub::source`] with [`Need::Everything`], and cached files are hashed too: what
    /// `vlm pull` runs to make sure a model is complete and intact.
    pub fn pull(
        &self,
        model: &ModelRef,
        on_progress: &mut dyn FnMut(HubProgress),
    ) -> Result<ModelSource> {
        self.fetch(model, Need::Everything, Check::Hash, on_progress)
    }

    /// How much of a registry model's variant is cached (sizes checked, nothing hashed).
    pub fn status(&self, model: &ModelEntry, variant: &str) -> CacheStatus {
        let Some((_, variant)) = model.variant(variant) else {
            return CacheStatus::Missing;
        };
        let (groups, _) = registry_groups(model, variant, Need::Everything);
        let (mut present, mut missing) = (0, 0);
        for group in &groups {
            let cache = RepoCache::new(&self.config.cache_dir, &group.repo);
            let commit = cache.commit(&group.revision);
            for file in group.files.iter().filter(|f| !f.optional) {
                let ok = commit
                    .as_deref()
                    .and_then(|c| cache.file(c, &file.name))
                    .is_some_and(|p| check_file(&p, file, Check::Size).is_ok());
                if ok {
                    present += 1;
                } else {
                    missing += 1;
                }
            }
        }
        match (present, missing) {
            (_, 0) => CacheStatus::Complete,
            (0, _) => CacheStatus::Missing,
            (_, missing) => CacheStatus::Partial { missing },
        }
    }

    fn fetch(
        &self,
        model: &ModelRef,
        need: Need,
        check: Check,
        on_progress: &mut dyn FnMut(HubProgress),
    ) -> Result<ModelSource> {
        let (groups, layout) = match model {
            ModelRef::Local(source) => return Ok(source.clone()),
            ModelRef::Registry { model, variant } => {
                let (_, v) = model.variant(variant).ok_or_else(|| Error::InvalidOption {
                    name: "model",
                    reason: format!("{} has no variant `{variant}`", model.alias()),
                })?;
                registry_groups(model, v, need)
            }
            ModelRef::Hub {
                repo,
                revision,
                quant,
            } => self.hub_groups(repo, revision, quant.as_deref(), need)?,
        };
        if self.config.offline {
            self.check_offline(&groups)?;
        }
        let fetched = groups
            .iter()
            .map(|g| self.fetch_group(g, check, on_progress))
            .collect::<Result<Vec<_>>>()?;
        let missing = |group: usize, index: usize| {
            let g = groups.get(group);
            Error::Hub {
                repo: g.map(|g| g.repo.clone()).unwrap_or_default(),
                file: g
                    .and_then(|g| g.files.get(index))
                    .map(|f| f.name.clone())
                    .unwrap_or_default(),
                problem: "not in the repository".into(),
            }
        };
        let path = |group: usize, index: usize| -> Result<PathBuf> {
            fetched
                .get(group)
                .and_then(|f| f.paths.get(index).cloned().flatten())
                .ok_or_else(|| missing(group, index))
        };
        let dir = |group: usize| -> Result<PathBuf> {
            fetched
                .get(group)
                .map(|f| f.dir.clone())
                .ok_or_else(|| missing(group, 0))
        };
        Ok(match layout {
            Layout::Dir => ModelSource::dir(dir(0)?),
            Layout::Gguf { mmproj, config } => {
                let model = path(0, 0)?;
                let mmproj = if mmproj { Some(path(0, 1)?) } else { None };
                if config {
                    ModelSource::gguf_with_config(model, mmproj, dir(1)?)
                } else {
                    ModelSource::gguf(model, mmproj)
                }
            }
        })
    }

    /// Offline, every required file must be cached; the error lists all that are not, so
    /// one `vlm pull` online fixes everything.
    fn check_offline(&self, groups: &[Group]) -> Result<()> {
        let mut missing = Vec::new();
        for group in groups {
            let cache = RepoCache::new(&self.config.cache_dir, &group.repo);
            let commit = cache.commit(&group.revision);
            for file in group.files.iter().filter(|f| !f.optional) {
                if commit
                    .as_deref()
                    .and_then(|c| cache.file(c, &file.name))
                    .is_none()
                {
                    missing.push(describe_missing(&group.repo, file));
                }
            }
        }
        if missing.is_empty() {
            Ok(())
        } else {
            Err(Error::NotCached {
                cache: self.config.cache_dir.clone(),
                missing,
            })
        }
    }

    /// Brings one group into the cache and returns its snapshot directory and file paths
    /// (`None` for optional files the repository lacks).
    fn fetch_group(
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

    /// Groups for a repository outside the registry, from its file list: a checkpoint
    /// directory when it has `config.json` and safetensors, otherwise a GGUF pair.
    fn hub_groups(
        &self,
        repo: &str,
        revision: &str,
        quant: Option<&str>,
        need: Need,
    ) -> Result<(Vec<Group>, Layout)> {
        let fail = |problem: String| Error::Hub {
            repo: repo.to_string(),
            file: String::new(),
            problem,
        };
        let (commit, files) = if self.config.offline {
            let cache = RepoCache::new(&self.config.cache_dir, repo);
            let commit = cache.commit(revision).ok_or_else(|| Error::NotCached {
                cache: self.config.cache_dir.clone(),
                missing: vec![format!("{repo}@{revision}")],
            })?;
            let files = cache.list(&commit);
            (commit, files)
        } else {
            self.http
                .list(repo, revision)
                .map_err(|e| fail(e.message()))?
        };
        if !is_safe_component(&commit) {
            return Err(fail(format!("unusable commit `{commit}`")));
        }
        plan::from_listing(repo, revision, &commit, files, quant, need).map_err(fail)
    }
}

fn describe_missing(repo: &str, file: &RemoteFile) -> String {
    match file.size {
        Some(size) => format!("{repo}/{} ({})", file.name, human_bytes(size)),
        None => format!("{repo}/{}", file.name),
    }
}
