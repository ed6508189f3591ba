//! A folder → its image files in name order, and the entries that are not images (frame
//! directories, screenshot folders).

use std::path::{Path, PathBuf};

/// File extensions read as images (compared without case).
const IMAGE_EXTENSIONS: [&str; 5] = ["png", "jpg", "jpeg", "webp", "gif"];

/// A directory's entries split by [`image_files`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ImageFiles {
    /// Files with an image extension ([`IMAGE_EXTENSIONS`]), sorted by name.
    pub(crate) images: Vec<PathBuf>,
    /// Other files and sub-directories, sorted by name, for a caller to warn about.
    pub(crate) skipped: Vec<PathBuf>,
}

/// The image files of `dir` by extension (frame directories, screenshot folders). Hidden
/// entries are left out silently.
pub(crate) fn image_files(dir: &Path) -> std::io::Result<ImageFiles> {
    let mut out = ImageFiles::default();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        let is_image = path.is_file()
            && path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| e.eq_ignore_ascii_case(x)));
        if is_image {
            out.images.push(path);
        } else {
            out.skipped.push(path);
        }
    }
    out.images.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    out.skipped
        .sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(out)
}
