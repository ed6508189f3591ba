//! A name → the directory under which vlm keeps that kind of cached data
//! (`$XDG_CACHE_HOME/vlm/<name>`, else `~/.cache/vlm/<name>`).

use std::path::PathBuf;

/// `$XDG_CACHE_HOME/vlm/<sub>`, else `~/.cache/vlm/<sub>`; `None` without either base.
pub(crate) fn cache_dir(sub: &str) -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        // The XDG base-directory spec says a relative value is invalid and must be ignored.
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("vlm").join(sub))
}
