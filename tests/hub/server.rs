//! A Hugging Face Hub on loopback for the tests: `/{repo}/resolve/{revision}/{file}` (HEAD and
//! GET, ranged or not) and `/api/models/{repo}/revision/{revision}`, serving the committed
//! fixtures, with faults to inject (dropped connections, ignored ranges, garbled bytes).

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use vlm::hub::HubConfig;

use crate::common::{fixtures, model_dir};

pub const CHECKPOINT: &str = "test-org/tiny-smolvlm";
pub const GGUF_REPO: &str = "test-org/tiny-smolvlm-GGUF";
pub const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
pub const GGUF_COMMIT: &str = "89abcdef0123456789abcdef0123456789abcdef";
pub const TEXT: &str = "tiny-smolvlm-q8_0.gguf";
pub const MMPROJ: &str = "mmproj-tiny-smolvlm-q8_0.gguf";

struct Repo {
    commit: &'static str,
    files: BTreeMap<String, Vec<u8>>,
}

#[derive(Default)]
pub struct Faults {
    /// File → (bytes sent before the connection is dropped, how many more times).
    pub drops: HashMap<String, (usize, usize)>,
    /// Answer ranged requests with the whole file, as some mirrors do.
    pub ignore_range: bool,
    /// File → how many more times its body has a flipped byte.
    pub garble: HashMap<String, usize>,
}

pub struct State {
    repos: HashMap<&'static str, Repo>,
    log: Mutex<Vec<String>>,
    pub faults: Mutex<Faults>,
}

pub struct HubServer {
    pub url: String,
    pub state: Arc<State>,
}

impl HubServer {
    pub fn start() -> HubServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(State {
            repos: fixture_repos(),
            log: Mutex::new(Vec::new()),
            faults: Mutex::new(Faults::default()),
        });
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = shared.clone();
                std::thread::spawn(move || {
                    let _ = serve(stream, &state);
                });
            }
        });
        HubServer { url, state }
    }

    pub fn requests(&self) -> Vec<String> {
        self.state.log.lock().unwrap().clone()
    }

    pub fn drop_after(&self, file: &str, bytes: usize, times: usize) {
        let mut faults = self.state.faults.lock().unwrap();
        faults.drops.insert(file.to_string(), (bytes, times));
    }

    pub fn config(&self, cache: &Path) -> HubConfig {
        HubConfig {
            retries: 0,
            ..HubConfig::new(self.url.clone(), cache)
        }
    }
}

fn fixture_repos() -> HashMap<&'static str, Repo> {
    let read_dir = |dir: &Path, only: Option<&[&str]>| -> BTreeMap<String, Vec<u8>> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.path().is_file())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| only.is_none_or(|o| o.contains(&name.as_str())))
            .map(|name| {
                let bytes = std::fs::read(dir.join(&name)).unwrap();
                (name, bytes)
            })
            .collect()
    };
    let gguf = [
        TEXT,
        MMPROJ,
        "tiny-smolvlm-f32.gguf",
        "mmproj-tiny-smolvlm-f32.gguf",
    ];
    HashMap::from([
        (
            CHECKPOINT,
            Repo {
                commit: COMMIT,
                files: read_dir(&model_dir("tiny-smolvlm"), None),
            },
        ),
        (
            GGUF_REPO,
            Repo {
                commit: GGUF_COMMIT,
                files: read_dir(&fixtures().join("gguf"), Some(&gguf)),
            },
        ),
    ])
}

pub fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One request per connection, as the Hub's `/resolve/` and `/api/models/` routes answer
/// them: `X-Repo-Commit`, `ETag`/`X-Linked-Etag` (the SHA-256, as for LFS files),
/// `X-Linked-Size`, `Content-Length`, and `206` + `Content-Range` for ranged requests.
fn serve(stream: TcpStream, state: &State) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    let mut parts = request.split_whitespace();
    let (method, target) = (
        parts.next().unwrap_or("").to_string(),
        parts.next().unwrap_or("").to_string(),
    );
    let mut range = None;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = header.split_once(':') {
            if k.eq_ignore_ascii_case("range") {
                range = Some(v.trim().to_string());
            }
        }
    }
    let entry = match &range {
        Some(r) => format!("{method} {target} {r}"),
        None => format!("{method} {target}"),
    };
    state.log.lock().unwrap().push(entry);
    let mut out = stream;

    let path = target.split('?').next().unwrap_or("");
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    if segments.len() == 5 && segments[0] == "api" && segments[1] == "models" {
        return respond(&mut out, "404 Not Found", &[], b"", true);
    }
    if segments.len() == 6 && segments[..2] == ["api", "models"] && segments[4] == "revision" {
        let repo = format!("{}/{}", segments[2], segments[3]);
        let Some(r) = state.repos.get(repo.as_str()) else {
            let headers = [("X-Error-Code", "RepoNotFound".to_string())];
            return respond(&mut out, "404 Not Found", &headers, b"", true);
        };
        let siblings: Vec<_> = r
            .files
            .keys()
            .map(|f| serde_json::json!({ "rfilename": f }))
            .collect();
        let body = serde_json::json!({ "sha": r.commit, "siblings": siblings }).to_string();
        let headers = [("Content-Type", "application/json".to_string())];
        return respond(&mut out, "200 OK", &headers, body.as_bytes(), true);
    }
    if segments.len() < 5 || segments[2] != "resolve" {
        return respond(&mut out, "404 Not Found", &[], b"", true);
    }
    let repo = format!("{}/{}", segments[0], segments[1]);
    let revision = segments[3];
    let file = segments[4..].join("/");
    let Some(r) = state.repos.get(repo.as_str()) else {
        let headers = [("X-Error-Code", "RepoNotFound".to_string())];
        return respond(&mut out, "404 Not Found", &headers, b"", true);
    };
    if revision != "main" && revision != r.commit {
        let headers = [("X-Error-Code", "RevisionNotFound".to_string())];
        return respond(&mut out, "404 Not Found", &headers, b"", true);
    }
    let Some(data) = r.files.get(&file) else {
        let headers = [
            ("X-Error-Code", "EntryNotFound".to_string()),
            ("X-Repo-Commit", r.commit.to_string()),
        ];
        return respond(&mut out, "404 Not Found", &headers, b"", true);
    };
    let digest = sha256(data);
    let mut headers = vec![
        ("X-Repo-Commit", r.commit.to_string()),
        ("ETag", format!("\"{digest}\"")),
        ("X-Linked-Etag", format!("\"{digest}\"")),
        ("X-Linked-Size", data.len().to_string()),
        ("Accept-Ranges", "bytes".to_string()),
    ];
    if method == "HEAD" {
        headers.push(("Content-Length", data.len().to_string()));
        return respond_head(&mut out, &headers);
    }
    let mut faults = state.faults.lock().unwrap();
    let start = match range.as_deref().and_then(|r| r.strip_prefix("bytes=")) {
        Some(spec) if !faults.ignore_range => spec
            .split('-')
            .next()
            .and_then(|s| s.parse::<usize>().ok())
            .unwrap_or(0),
        _ => 0,
    };
    let mut body = data[start.min(data.len())..].to_vec();
    let status = if start > 0 || (range.is_some() && !faults.ignore_range) {
        let end = data.len().saturating_sub(1);
        let last = if range.as_deref() == Some("bytes=0-0") {
            0
        } else {
            end
        };
        body.truncate(last + 1 - start);
        headers.push((
            "Content-Range",
            format!("bytes {start}-{last}/{}", data.len()),
        ));
        "206 Partial Content"
    } else {
        "200 OK"
    };
    let probe = range.as_deref() == Some("bytes=0-0");
    if let Some(times) = faults.garble.get_mut(&file) {
        if *times > 0 && !probe && !body.is_empty() {
            *times -= 1;
            let mid = body.len() / 2;
            body[mid] ^= 0xff;
        }
    }
    if let Some((keep, times)) = faults.drops.get_mut(&file) {
        if *times > 0 && !probe {
            *times -= 1;
            let keep = (*keep).min(body.len());
            drop(faults);
            headers.push(("Content-Length", body.len().to_string()));
            write_head(&mut out, status, &headers)?;
            out.write_all(&body[..keep])?;
            out.flush()?;
            return out.shutdown(Shutdown::Both);
        }
    }
    drop(faults);
    respond(&mut out, status, &headers, &body, true)
}

fn write_head(
    out: &mut TcpStream,
    status: &str,
    headers: &[(&str, String)],
) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    out.write_all(head.as_bytes())
}

fn respond_head(out: &mut TcpStream, headers: &[(&str, String)]) -> std::io::Result<()> {
    write_head(out, "200 OK", headers)?;
    out.flush()
}

fn respond(
    out: &mut TcpStream,
    status: &str,
    headers: &[(&str, String)],
    body: &[u8],
    with_length: bool,
) -> std::io::Result<()> {
    let mut headers = headers.to_vec();
    if with_length {
        headers.push(("Content-Length", body.len().to_string()));
    }
    write_head(out, status, &headers)?;
    out.write_all(body)?;
    out.flush()
}
