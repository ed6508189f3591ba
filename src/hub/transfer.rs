//! HTTP against a Hugging Face Hub endpoint: a file's metadata (HEAD), its bytes into a
//! resumable temporary file with their SHA-256, and a repository's file list.
//!
//! This is written over `ureq` rather than through `hf-hub`'s download API, which (0.4): takes
//! a proxy from `HTTPS_PROXY`/`ALL_PROXY` with no `NO_PROXY` exemption, so a local or intranet
//! `HF_ENDPOINT` is unreachable behind a proxy; moves its `.part` file into the cache without
//! checking its length or digest; resumes a `.part` by appending whatever the server sends,
//! even a whole file when the server ignored the Range header; and reports no 404 details
//! (repository or file missing, the commit to record the absence under).

use std::fs;
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::cache::{hash_prefix, hex, is_safe_component};

/// What the Hub says about one file at one revision.
#[derive(Debug, Clone)]
pub(crate) struct Meta {
    /// The commit the revision resolved to.
    pub(crate) commit: String,
    /// The blob's name in the cache: the LFS SHA-256, or the git object id of small files.
    pub(crate) etag: String,
    /// Size in bytes.
    pub(crate) size: u64,
    /// Where the bytes are (the Hub redirects LFS files to a CDN).
    url: String,
}

/// Why a request failed.
#[derive(Debug)]
pub(crate) enum HttpError {
    /// HTTP 404, with the commit the server named (for recording the absence).
    NotFound {
        commit: Option<String>,
        problem: String,
    },
    /// The connection failed or ended early: worth another attempt.
    Transient(String),
    /// Anything else.
    Fatal(String),
}

impl HttpError {
    pub(crate) fn message(self) -> String {
        match self {
            HttpError::NotFound { problem, .. } => problem,
            HttpError::Transient(m) | HttpError::Fatal(m) => m,
        }
    }
}

pub(crate) struct Http {
    /// Follows no redirects: the Hub's metadata is on the redirect itself.
    head: ureq::Agent,
    get: ureq::Agent,
    endpoint: String,
    token: Option<String>,
}

impl Http {
    pub(crate) fn new(
        endpoint: &str,
        token: Option<String>,
        proxy: Option<&str>,
    ) -> Result<Http, String> {
        let agent = |redirects: u32| -> Result<ureq::Agent, String> {
            let mut builder = ureq::AgentBuilder::new()
                .try_proxy_from_env(false)
                .redirects(redirects)
                .redirect_auth_headers(ureq::RedirectAuthHeaders::SameHost)
                .timeout_connect(Duration::from_secs(30))
                .timeout_read(Duration::from_secs(60))
                .user_agent(concat!("vlm/", env!("CARGO_PKG_VERSION"), "; rust"));
            if let Some(proxy) = proxy {
                let proxy = ureq::Proxy::new(proxy).map_err(|e| format!("proxy `{proxy}`: {e}"))?;
                builder = builder.proxy(proxy);
            }
            Ok(builder.build())
        };
        Ok(Http {
            head: agent(0)?,
            get: agent(5)?,
            endpoint: endpoint.trim_end_matches('/').to_string(),
            token,
        })
    }

    /// The token only goes to the endpoint itself, never to the CDN it redirects to.
    fn request(&self, agent: &ureq::Agent, method: &str, url: &str) -> ureq::Request {
        let request = agent
            .request(method, url)
            .set("Accept-Encoding", "identity");
        match &self.token {
            Some(token) if url.starts_with(&self.endpoint) => {
                request.set("Authorization", &format!("Bearer {token}"))
            }
            _ => request,
        }
    }

    /// The URL of a file, as the Hub lays them out.
    fn file_url(&self, repo: &str, revision: &str, file: &str) -> String {
        format!(
            "{}/{repo}/resolve/{}/{}",
            self.endpoint,
            encode(revision, false),
            encode(file, true)
        )
    }

    /// Metadata of a file, following the Hub's relative redirects (renamed repositories) and
    /// stopping at the first absolute one (the CDN), whose headers carry the LFS metadata.
    pub(crate) fn head(&self, repo: &str, revision: &str, file: &str) -> Result<Meta, HttpError> {
        let mut url = self.file_url(repo, revision, file);
        for _ in 0..5 {
            let response = self
                .request(&self.head, "HEAD", &url)
                .call()
                .map_err(|e| map_error(e, &url))?;
            if (300..400).contains(&response.status()) {
                let location = response.header("location").ok_or_else(|| {
                    HttpError::Fatal(format!("{url} redirects without a Location header"))
                })?;
                if location.starts_with('/') {
                    url = format!("{}{location}", origin(&self.endpoint));
                    continue;
                }
                let target = location.to_string();
                return meta_from(&response, target, &url);
            }
            return meta_from(&response, url.clone(), &url);
        }
        Err(HttpError::Fatal(format!("{url}: too many redirects")))
    }

    /// Downloads `meta.url` into `partial`, resuming what an earlier attempt left there, and
    /// returns the SHA-256 of the whole file. `on_bytes` sees the bytes on disk so far.
    pub(crate) fn download(
        &self,
        meta: &Meta,
        partial: &Path,
        on_bytes: &mut dyn FnMut(u64),
    ) -> Result<String, HttpError> {
        let io = |e: std::io::Error| HttpError::Fatal(format!("{}: {e}", partial.display()));
        let mut start = fs::metadata(partial).map_or(0, |m| m.len());
        if start >= meta.size {
            start = 0;
        }
        let mut request = self.request(&self.get, "GET", &meta.url);
        if start > 0 {
            request = request.set("Range", &format!("bytes={start}-"));
        }
        let response = request.call().map_err(|e| map_error(e, &meta.url))?;
        let resumed = start > 0
            && response.status() == 206
            && content_range_start(response.header("content-range")) == Some(start);
        if !resumed && response.status() != 200 {
            return Err(HttpError::Fatal(format!(
                "{} answered HTTP {} to a download",
                meta.url,
                response.status()
            )));
        }
        let mut hasher = Sha256::new();
        let mut file = if resumed {
            hash_prefix(partial, start, &mut hasher).map_err(io)?;
            fs::OpenOptions::new()
                .append(true)
                .open(partial)
                .map_err(io)?
        } else {
            start = 0;
            fs::File::create(partial).map_err(io)?
        };
        let mut done = start;
        on_bytes(done);
        let mut reader = response.into_reader();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    file.flush().map_err(io)?;
                    return Err(HttpError::Transient(format!(
                        "the connection broke after {done} of {} bytes ({e})",
                        meta.size
                    )));
                }
            };
            if done + n as u64 > meta.size {
                return Err(HttpError::Fatal(format!(
                    "{} sent more than the {} bytes it announced",
                    meta.url, meta.size
                )));
            }
            file.write_all(&buf[..n]).map_err(io)?;
            hasher.update(&buf[..n]);
            done += n as u64;
            on_bytes(done);
        }
        file.sync_all().map_err(io)?;
        if done != meta.size {
            return Err(HttpError::Transient(format!(
                "the connection ended after {done} of {} bytes",
                meta.size
            )));
        }
        Ok(hex(&hasher.finalize()))
    }

    /// The commit a revision resolves to and the repository's files, from the Hub's API.
    pub(crate) fn list(
        &self,
        repo: &str,
        revision: &str,
    ) -> Result<(String, Vec<String>), HttpError> {
        #[derive(Deserialize)]
        struct Sibling {
            rfilename: String,
        }
        #[derive(Deserialize)]
        struct Info {
            sha: String,
            siblings: Vec<Sibling>,
        }
        let url = format!(
            "{}/api/models/{repo}/revision/{}",
            self.endpoint,
            encode(revision, false)
        );
        let response = self
            .request(&self.get, "GET", &url)
            .call()
            .map_err(|e| map_error(e, &url))?;
        let text = response
            .into_string()
            .map_err(|e| HttpError::Transient(format!("{url}: {e}")))?;
        let info: Info = serde_json::from_str(&text)
            .map_err(|e| HttpError::Fatal(format!("{url} answered something unexpected: {e}")))?;
        if !is_safe_component(&info.sha) {
            return Err(HttpError::Fatal(format!(
                "{url} named an unusable commit `{}`",
                info.sha
            )));
        }
        Ok((
            info.sha,
            info.siblings.into_iter().map(|s| s.rfilename).collect(),
        ))
    }
}

fn meta_from(response: &ureq::Response, url: String, asked: &str) -> Result<Meta, HttpError> {
    let missing = |header: &str| {
        HttpError::Fatal(format!(
            "{asked} answered without a usable {header} header; is the endpoint a Hugging Face Hub?"
        ))
    };
    let commit = response
        .header("x-repo-commit")
        .map(str::trim)
        .filter(|c| is_safe_component(c))
        .ok_or_else(|| missing("X-Repo-Commit"))?
        .to_string();
    let etag = response
        .header("x-linked-etag")
        .or_else(|| response.header("etag"))
        .map(|e| {
            e.trim()
                .trim_start_matches("W/")
                .trim_matches('"')
                .to_string()
        })
        .filter(|e| is_safe_component(e))
        .ok_or_else(|| missing("ETag"))?;
    let size = response
        .header("x-linked-size")
        .or_else(|| response.header("content-length"))
        .and_then(|s| s.trim().parse::<u64>().ok())
        .ok_or_else(|| missing("Content-Length"))?;
    Ok(Meta {
        commit,
        etag,
        size,
        url,
    })
}

fn map_error(error: ureq::Error, url: &str) -> HttpError {
    match error {
        ureq::Error::Status(code, response) => {
            let commit = response
                .header("x-repo-commit")
                .filter(|c| is_safe_component(c))
                .map(str::to_string);
            match (code, response.header("x-error-code")) {
                (404, Some("RepoNotFound")) => HttpError::NotFound {
                    commit,
                    problem: format!(
                        "no such repository at {url} (HTTP 404); if it is private or gated, set HF_TOKEN"
                    ),
                },
                (404, Some("RevisionNotFound")) => HttpError::NotFound {
                    commit,
                    problem: format!("no such revision at {url} (HTTP 404)"),
                },
                (404, _) => HttpError::NotFound {
                    commit,
                    problem: format!("not found at {url} (HTTP 404)"),
                },
                (401 | 403, _) => HttpError::Fatal(format!(
                    "access denied at {url} (HTTP {code}); the repository may be gated or private: accept its terms on the Hub and set HF_TOKEN"
                )),
                (429 | 500..=599, _) => HttpError::Transient(format!("HTTP {code} from {url}")),
                _ => HttpError::Fatal(format!("HTTP {code} from {url}")),
            }
        }
        ureq::Error::Transport(t) => HttpError::Transient(format!("cannot reach {url}: {t}")),
    }
}

/// `bytes START-END/TOTAL` → START.
fn content_range_start(header: Option<&str>) -> Option<u64> {
    let range = header?.trim().strip_prefix("bytes ")?;
    range.split('-').next()?.trim().parse().ok()
}

/// `scheme://host[:port]` of a URL.
fn origin(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(i) => &url[..after_scheme + i],
        None => url,
    }
}

/// Percent-encodes a URL path segment (or a path, keeping `/` when `keep_slash`).
fn encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        let plain = b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_' | b'~')
            || (keep_slash && b == b'/');
        if plain {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_follow_the_hub_layout() {
        let http = Http::new("http://h:1/", None, None).unwrap();
        assert_eq!(
            http.file_url("o/n", "refs/pr/1", "sub dir/a.json"),
            "http://h:1/o/n/resolve/refs%2Fpr%2F1/sub%20dir/a.json"
        );
        assert_eq!(origin("https://hf.co/mirror/x"), "https://hf.co");
        assert_eq!(origin("http://h:1"), "http://h:1");
        assert_eq!(content_range_start(Some("bytes 10-99/100")), Some(10));
        assert_eq!(content_range_start(Some("items 1-2/3")), None);
    }
}
