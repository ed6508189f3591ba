//! An `image_url` as a client sends it → the image's bytes, under the server's policy:
//! `data:` URLs always; `http(s)://` only with `--allow-remote-images` (size cap, timeout);
//! `file://` URLs and paths only inside the `--allow-local-files` directory, after resolving
//! `..` and symbolic links, so nothing outside it can be named.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;

use super::errors::ApiError;

/// What image sources the server accepts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ImagePolicy {
    /// Fetch `http(s)://` URLs.
    allow_remote: bool,
    /// The directory local files may come from, canonical (symbolic links resolved).
    local_root: Option<PathBuf>,
    /// Largest image, in bytes, from any source.
    max_bytes: usize,
    /// Time limit of a remote fetch.
    timeout: Duration,
}

impl ImagePolicy {
    /// A policy; `local_root` is resolved now so that later checks compare canonical paths.
    pub(crate) fn new(
        allow_remote: bool,
        local_root: Option<&Path>,
        max_bytes: usize,
        timeout: Duration,
    ) -> std::io::Result<Self> {
        let local_root = match local_root {
            Some(dir) => {
                let root = dir.canonicalize().map_err(|e| {
                    std::io::Error::new(
                        e.kind(),
                        format!("--allow-local-files {}: {e}", dir.display()),
                    )
                })?;
                if !root.is_dir() {
                    return Err(std::io::Error::other(format!(
                        "--allow-local-files {}: not a directory",
                        dir.display()
                    )));
                }
                Some(root)
            }
            None => None,
        };
        Ok(ImagePolicy {
            allow_remote,
            local_root,
            max_bytes,
            timeout,
        })
    }

    /// The bytes behind `url`. Blocking (file reads, network): call off the async threads.
    pub(crate) fn resolve(&self, url: &str, param: &str) -> Result<Vec<u8>, ApiError> {
        let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
        if lower.starts_with("data:") {
            self.data_url(url, param)
        } else if lower.starts_with("http://") || lower.starts_with("https://") {
            self.remote(url, param)
        } else {
            self.local(url, param)
        }
    }

    fn data_url(&self, url: &str, param: &str) -> Result<Vec<u8>, ApiError> {
        let Some((meta, payload)) = url["data:".len()..].split_once(',') else {
            return Err(ApiError::bad_param(
                param,
                "a data: URL needs a comma before its payload (data:image/png;base64,...)",
            ));
        };
        if !meta.to_ascii_lowercase().ends_with(";base64") {
            return Err(ApiError::bad_param(
                param,
                "only base64 data: URLs are accepted (data:image/png;base64,...)",
            ));
        }
        // Base64 grows data by 4/3: refuse before decoding what cannot fit.
        if payload.len() / 4 * 3 > self.max_bytes + 3 {
            return Err(self.too_big(param));
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(payload.trim())
            .map_err(|e| {
                ApiError::bad_param(param, format!("the data: URL is not valid base64: {e}"))
            })?;
        if bytes.len() > self.max_bytes {
            return Err(self.too_big(param));
        }
        Ok(bytes)
    }

    fn too_big(&self, param: &str) -> ApiError {
        ApiError::bad_param(
            param,
            format!(
                "the image is larger than the server's limit of {} bytes",
                self.max_bytes
            ),
        )
    }

    #[cfg(feature = "hub")]
    fn remote(&self, url: &str, param: &str) -> Result<Vec<u8>, ApiError> {
        use std::io::Read;
        if !self.allow_remote {
            return Err(remote_off(param));
        }
        let agent = ureq::AgentBuilder::new()
            .timeout(self.timeout)
            .redirects(3)
            .build();
        let response = agent
            .get(url)
            .call()
            .map_err(|e| ApiError::bad_param(param, format!("fetching {url}: {e}")))?;
        let mut bytes = Vec::new();
        response
            .into_reader()
            .take(self.max_bytes as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| ApiError::bad_param(param, format!("reading {url}: {e}")))?;
        if bytes.len() > self.max_bytes {
            return Err(self.too_big(param));
        }
        Ok(bytes)
    }

    #[cfg(not(feature = "hub"))]
    fn remote(&self, _url: &str, param: &str) -> Result<Vec<u8>, ApiError> {
        if !self.allow_remote {
            return Err(remote_off(param));
        }
        Err(ApiError::bad_param(
            param,
            "this vlm was built without an HTTP client (feature `hub`), so it cannot fetch http(s) image URLs; send the image as a data: URL",
        ))
    }

    fn local(&self, url: &str, param: &str) -> Result<Vec<u8>, ApiError> {
        let Some(root) = &self.local_root else {
            return Err(ApiError::bad_param(
                param,
                "local image paths are off; send a data: URL, or start the server with --allow-local-files DIR",
            ));
        };
        let raw = match url.strip_prefix("file://") {
            Some(rest) => percent_decode(rest).ok_or_else(|| {
                ApiError::bad_param(param, "the file:// URL has a malformed %-escape")
            })?,
            None if url.contains("://") => {
                return Err(ApiError::bad_param(
                    param,
                    "unsupported URL scheme; use data:, http(s):// or file://",
                ))
            }
            None => url.to_string(),
        };
        let path = root.join(&raw);
        let outside = || {
            ApiError::bad_param(
                param,
                format!("{raw}: not inside the directory the server may read images from"),
            )
        };
        // Canonicalising resolves `..` and every symbolic link, so the prefix check sees where
        // the file really is.
        let real = path.canonicalize().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                // Say "not found" only for names that would be inside the root, so that the
                // answer does not reveal which files exist elsewhere.
                if lexically_inside(root, Path::new(&raw)) {
                    ApiError::bad_param(param, format!("{raw}: no such image file"))
                } else {
                    outside()
                }
            }
            _ => outside(),
        })?;
        if !real.starts_with(root) {
            return Err(outside());
        }
        let meta = std::fs::metadata(&real)
            .map_err(|e| ApiError::bad_param(param, format!("{raw}: {e}")))?;
        if !meta.is_file() {
            return Err(ApiError::bad_param(param, format!("{raw}: not a file")));
        }
        if meta.len() > self.max_bytes as u64 {
            return Err(self.too_big(param));
        }
        std::fs::read(&real).map_err(|e| ApiError::bad_param(param, format!("{raw}: {e}")))
    }
}

fn remote_off(param: &str) -> ApiError {
    ApiError::bad_param(
        param,
        "remote image URLs are off; send a data: URL, or start the server with --allow-remote-images",
    )
}

/// Whether `rel` (relative, or absolute under `root`) stays inside `root` by its components
/// alone.
fn lexically_inside(root: &Path, rel: &Path) -> bool {
    let rel = rel.strip_prefix(root).unwrap_or(rel);
    if rel.is_absolute() {
        return false;
    }
    let mut depth = 0i32;
    for c in rel.components() {
        match c {
            std::path::Component::ParentDir => depth -= 1,
            std::path::Component::Normal(_) => depth += 1,
            _ => {}
        }
        if depth < 0 {
            return false;
        }
    }
    true
}

/// `%20` → ` ` and so on; `None` for a malformed escape or bytes that are not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(root: Option<&Path>) -> ImagePolicy {
        ImagePolicy::new(false, root, 1000, Duration::from_secs(1)).unwrap()
    }

    #[test]
    fn data_urls_decode_and_respect_the_cap() {
        let p = policy(None);
        assert_eq!(
            p.resolve("data:image/png;base64,AAEC", "x").unwrap(),
            vec![0, 1, 2]
        );
        let big = format!("data:image/png;base64,{}", "A".repeat(4000));
        assert!(p.resolve(&big, "x").unwrap_err().message.contains("limit"));
        assert!(p.resolve("data:image/png,abc", "x").is_err());
        assert!(p.resolve("data:image/png;base64,@@", "x").is_err());
    }

    #[test]
    fn remote_and_local_are_off_by_default() {
        let p = policy(None);
        assert!(p
            .resolve("http://example.com/a.png", "x")
            .unwrap_err()
            .message
            .contains("--allow-remote-images"));
        assert!(p
            .resolve("/etc/passwd", "x")
            .unwrap_err()
            .message
            .contains("--allow-local-files"));
        assert!(p.resolve("ftp://host/a.png", "x").is_err());
    }

    #[test]
    fn local_files_stay_inside_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(root.join("a b.png"), b"png").unwrap();
        std::fs::write(tmp.path().join("secret.png"), b"secret").unwrap();
        let p = policy(Some(&root));
        assert_eq!(p.resolve("a b.png", "x").unwrap(), b"png");
        assert_eq!(p.resolve("file://a%20b.png", "x").unwrap(), b"png");
        let abs = format!("file://{}", root.join("a b.png").display());
        assert_eq!(p.resolve(&abs, "x").unwrap(), b"png");
        for escape in ["../secret.png", "file://../secret.png", "../nothing.png"] {
            let e = p.resolve(escape, "x").unwrap_err();
            assert!(e.message.contains("not inside"), "{escape}: {}", e.message);
        }
        let abs = tmp.path().join("secret.png");
        assert!(p.resolve(abs.to_str().unwrap(), "x").is_err());
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(tmp.path().join("secret.png"), root.join("link.png"))
                .unwrap();
            let e = p.resolve("link.png", "x").unwrap_err();
            assert!(e.message.contains("not inside"), "{}", e.message);
        }
        assert!(p
            .resolve("missing.png", "x")
            .unwrap_err()
            .message
            .contains("no such"));
    }
}
