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
mod fetch;
mod plan;
mod transfer;

use std::path::PathBuf;

use crate::engine::ModelSource;
use crate::error::{Error, Result};
use crate::registry::{ModelEntry, ModelRef, RemoteFile};
pub use crate::units::human_bytes;
use cache::{check_file, is_safe_component, Check, RepoCache};
pub use config::HubConfig;
use plan::{registry_groups, Group, Layout};
use transfer::Http;

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
