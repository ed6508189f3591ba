//! `vlm serve` over real HTTP on 127.0.0.1 (ephemeral ports) with the tiny fixture model:
//! OpenAI-shaped errors for bad requests, concurrency without mixed-up answers, streaming,
//! constrained JSON, background jobs, and jobs surviving a SIGKILL.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

use crate::common::{fixtures, model_dir};

const MODEL: &str = "tiny-smolvlm";

/// A running `vlm serve`; killed when dropped.
struct Server {
    child: Child,
    addr: String,
}

impl Server {
    fn start(data_dir: &Path, extra: &[&str]) -> Server {
        let model = model_dir(MODEL);
        let mut child = Command::new(env!("CARGO_BIN_EXE_vlm"))
            .args(["serve", "--model", model.to_str().unwrap(), "--port", "0"])
            .args(["--data-dir", data_dir.to_str().unwrap()])
            .args(extra)
            .env_remove("VLM_MODEL")
            .env_remove("VLM_API_KEY")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("vlm serve starts");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        // Keep draining stderr so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(i) = line.find("http://") {
                    let addr = line[i + 7..].split_whitespace().next().unwrap_or("");
                    let _ = tx.send(Ok(addr.to_string()));
                } else {
                    let _ = tx.send(Err(line));
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(Ok(addr)) => return Server { child, addr },
                Ok(Err(line)) => seen.push(line),
                Err(_) => {
                    let _ = child.kill();
                    panic!("vlm serve did not report its address: {seen:?}");
                }
            }
        }
    }

    fn get(&self, path: &str, key: Option<&str>) -> Response {
        http(&self.addr, "GET", path, key, None)
    }

    fn post(&self, path: &str, key: Option<&str>, body: &Value) -> Response {
        http(
            &self.addr,
            "POST",
            path,
            key,
            Some(body.to_string().as_bytes()),
        )
    }

    fn assert_healthy(&self) {
        let r = self.get("/health", None);
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["status"], "ok");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Asserts an OpenAI error body with this status.
    fn assert_error(&self, status: u16, needle: &str) -> Value {
        assert_eq!(self.status, status, "{}", self.text());
        let body = self.json();
        let error = &body["error"];
        assert!(error["message"].is_string(), "{body}");
        assert!(error["type"].is_string(), "{body}");
        assert!(
            error.get("param").is_some() && error.get("code").is_some(),
            "{body}"
        );
        let message = error["message"].as_str().unwrap();
        assert!(message.contains(needle), "`{needle}` not in: {message}");
        body
    }
}

/// One HTTP/1.1 request on its own connection, read to the end.
fn http(addr: &str, method: &str, path: &str, key: Option<&str>, body: Option<&[u8]>) -> Response {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(k) = key {
        head.push_str(&format!("Authorization: Bearer {k}\r\n"));
    }
    let body = body.unwrap_or(b"");
    if method != "GET" {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    // The server may answer (413) and close before reading an oversized body.
    let _ = stream.write_all(body);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP head in {:?}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Response {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = data.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&data[..eol]).trim(), 16).unwrap_or(0);
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[eol + 2..eol + 2 + size]);
        data = &data[eol + 2 + size + 2..];
    }
}

fn image_path(name: &str) -> PathBuf {
    fixtures().join("images").join(name)
}

fn data_url(name: &str) -> String {
    let bytes = std::fs::read(image_path(name)).unwrap();
    format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(&bytes)
    )
}

fn chat(content: Value, max_tokens: usize) -> Value {
    json!({"model": MODEL, "messages": [{"role": "user", "content": content}],
           "max_tokens": max_tokens})
}

fn answer(r: &Response) -> String {
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn bad_requests_get_openai_errors_and_the_server_stays_healthy() {
    let data = tempfile::tempdir().unwrap();
    let allowed = tempfile::tempdir().unwrap();
    std::fs::copy(image_path("landscape.png"), allowed.path().join("shot.png")).unwrap();
    let server = Server::start(
        data.path(),
        &[
            "--api-key",
            "sekret",
            "--body-limit",
            "65536",
            "--max-images",
            "2",
            "--allow-local-files",
            allowed.path().to_str().unwrap(),
        ],
    );
    let key = Some("sekret");
    let img = |url: &str| json!({"type": "image_url", "image_url": {"url": url}});

    let raw = http(
        &server.addr,
        "POST",
        "/v1/chat/completions",
        key,
        Some(b"{\"model\": "),
    );
    raw.assert_error(400, "not a valid chat completion request");
    server.assert_healthy();

    let mut unknown = chat(json!("hi"), 4);
    unknown["model"] = json!("gpt-4o");
    let body = server
        .post("/v1/chat/completions", key, &unknown)
        .assert_error(404, "gpt-4o");
    assert_eq!(body["error"]["code"], "model_not_found");
    server.assert_healthy();

    let big = chat(json!("x".repeat(100_000)), 4);
    let body = server
        .post("/v1/chat/completions", key, &big)
        .assert_error(413, "65536");
    assert_eq!(body["error"]["code"], "request_too_large");
    server.assert_healthy();

    let tiny = data_url("tiny_17x9.png");
    let three = chat(
        json!([img(&tiny), img(&tiny), img(&tiny), {"type": "text", "text": "?"}]),
        4,
    );
    server
        .post("/v1/chat/completions", key, &three)
        .assert_error(400, "at most 2");
    server.assert_healthy();

    let outside = image_path("landscape.png");
    for url in [
        format!("file://{}", outside.display()),
        "../shot.png".to_string(),
        "file:///etc/passwd".to_string(),
    ] {
        let body = server
            .post("/v1/chat/completions", key, &chat(json!([img(&url)]), 4))
            .assert_error(400, "not inside");
        assert_eq!(
            body["error"]["param"],
            "messages[0].content[0].image_url.url"
        );
        server.assert_healthy();
    }

    server
        .post(
            "/v1/chat/completions",
            key,
            &chat(json!([img("http://127.0.0.1:9/cat.png")]), 4),
        )
        .assert_error(400, "--allow-remote-images");
    server.assert_healthy();

    for wrong in [Some("sekret2"), Some(""), None] {
        let body = server
            .post("/v1/chat/completions", wrong, &chat(json!("hi"), 4))
            .assert_error(401, "API key");
        assert_eq!(body["error"]["code"], "invalid_api_key");
        server.get("/v1/models", wrong).assert_error(401, "API key");
        server.assert_healthy();
    }

    server
        .get("/v1/nothing", key)
        .assert_error(404, "no such route");
    let models = server.get("/v1/models", key).json();
    assert_eq!(models["data"][0]["id"], MODEL);

    // A file inside the allowed directory is read, and the server still answers properly.
    let ok = server.post(
        "/v1/chat/completions",
        key,
        &chat(
            json!([img("shot.png"), {"type": "text", "text": "Describe."}]),
            4,
        ),
    );
    assert_eq!(ok.json()["usage"]["completion_tokens"], 4, "{}", ok.text());

    // SIGTERM: the server stops on its own, cleanly.
    let mut server = server;
    let pid = server.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = server.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "vlm serve ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
}

#[test]
fn concurrent_requests_are_answered_or_refused_and_never_mixed() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &["--max-concurrent", "2", "--queue", "6"]);
    let prompts = [
        "Describe a cat.",
        "What is 2+2?",
        "Name a color.",
        "Say hello.",
        "Is water wet?",
    ];
    let expected: Vec<String> = prompts
        .iter()
        .map(|p| answer(&server.post("/v1/chat/completions", None, &chat(json!(p), 12))))
        .collect();
    let distinct: std::collections::BTreeSet<&String> = expected.iter().collect();
    assert!(
        distinct.len() >= 3,
        "answers too alike to tell apart: {expected:?}"
    );

    let n = 20;
    let barrier = Arc::new(Barrier::new(n));
    let addr = server.addr.clone();
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let (barrier, addr) = (Arc::clone(&barrier), addr.clone());
            let body = chat(json!(prompts[i % prompts.len()]), 12).to_string();
            std::thread::spawn(move || {
                barrier.wait();
                http(
                    &addr,
                    "POST",
                    "/v1/chat/completions",
                    None,
                    Some(body.as_bytes()),
                )
            })
        })
        .collect();
    let (mut answered, mut refused) = (0, 0);
    for (i, h) in handles.into_iter().enumerate() {
        let r = h.join().unwrap();
        match r.status {
            200 => {
                assert_eq!(
                    answer(&r),
                    expected[i % prompts.len()],
                    "request {i} got another's answer"
                );
                answered += 1;
            }
            503 => {
                r.assert_error(503, "busy");
                assert_eq!(r.header("retry-after"), Some("1"));
                refused += 1;
            }
            other => panic!("request {i}: status {other}: {}", r.text()),
        }
    }
    assert_eq!(answered + refused, n);
    // Two running and six waiting are always admitted.
    assert!(answered >= 8, "{answered} answered, {refused} refused");
    server.assert_healthy();
}

/// The `data:` payloads of a server-sent event stream.
fn sse_data(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|d| d.trim().to_string())
        .collect()
}

#[test]
fn streaming_and_json_schema_answers() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    let content = json!([{"type": "image_url", "image_url": {"url": data_url("landscape.png")}},
                         {"type": "text", "text": "Describe this image."}]);
    let whole = answer(&server.post("/v1/chat/completions", None, &chat(content.clone(), 10)));

    let mut req = chat(content, 10);
    req["stream"] = json!(true);
    req["stream_options"] = json!({"include_usage": true});
    let r = server.post("/v1/chat/completions", None, &req);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("text/event-stream"));
    let events = sse_data(&r.text());
    assert_eq!(
        events.last().map(String::as_str),
        Some("[DONE]"),
        "{events:?}"
    );
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert!(chunks
        .iter()
        .all(|c| c["object"] == "chat.completion.chunk"));
    assert!(chunks.iter().all(|c| c["id"] == chunks[0]["id"]));
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let streamed: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(streamed, whole);
    let finish: Vec<&Value> = chunks
        .iter()
        .map(|c| &c["choices"][0]["finish_reason"])
        .filter(|f| !f.is_null())
        .collect();
    assert_eq!(finish, [&json!("length")]);
    let usage = &chunks.last().unwrap()["usage"];
    assert_eq!(usage["completion_tokens"], 10, "{chunks:?}");

    // A bad stream request still gets a status, not an error inside a 200 stream.
    let mut bad = chat(
        json!([{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]),
        4,
    );
    bad["stream"] = json!(true);
    server
        .post("/v1/chat/completions", None, &bad)
        .assert_error(400, "image");

    let schema = json!({"type": "object", "properties": {"answer": {"enum": ["yes", "no"]}},
                        "required": ["answer"], "additionalProperties": false});
    let mut req = chat(json!("Is the sky blue?"), 64);
    req["response_format"] =
        json!({"type": "json_schema", "json_schema": {"name": "yn", "schema": schema}});
    let text = answer(&server.post("/v1/chat/completions", None, &req));
    let parsed: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert!(
        parsed["answer"] == "yes" || parsed["answer"] == "no",
        "{parsed}"
    );

    let mut req = chat(json!("Give me an object."), 64);
    req["response_format"] = json!({"type": "json_object"});
    let r = server.post("/v1/chat/completions", None, &req);
    let text = answer(&r);
    if r.json()["choices"][0]["finish_reason"] == "stop" {
        let parsed: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        assert!(parsed.is_object(), "{parsed}");
    } else {
        assert!(text.starts_with('{'), "{text}");
    }
}

/// A comparison of 16 distinct screenshots: long enough (seconds) to be caught running.
fn long_compare() -> Value {
    let shots: Vec<String> = (0..16u8)
        .map(|i| {
            let img = image::RgbImage::from_fn(512, 512, |x, y| {
                image::Rgb([
                    (x as u8) ^ i.wrapping_mul(37),
                    (y as u8).wrapping_add(i),
                    i * 13,
                ])
            });
            let mut png = Vec::new();
            img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
                .unwrap();
            format!(
                "data:image/png;base64,{}",
                base64::engine::general_purpose::STANDARD.encode(&png)
            )
        })
        .collect();
    json!({"task": "compare", "images": shots, "format": "json"})
}

fn wait_for(server: &Server, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let job = server.get(&format!("/v1/jobs/{id}"), None).json();
        if done(&job) {
            return job;
        }
        assert!(Instant::now() < deadline, "job {id} stuck: {job}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn submit(server: &Server, body: Value) -> String {
    let r = server.post("/v1/jobs", None, &body);
    assert_eq!(r.status, 202, "{}", r.text());
    let job = r.json();
    assert_eq!(job["state"], "queued");
    job["id"].as_str().unwrap().to_string()
}

#[test]
fn jobs_run_in_the_background_and_survive_a_kill() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    let shot = data_url("landscape.png");
    let done = submit(
        &server,
        json!({"task": "describe", "images": [shot, data_url("portrait.png")], "max_tokens": 6}),
    );
    let job = wait_for(&server, &done, |j| j["state"] == "done");
    let descriptions = job["result"]["descriptions"].as_array().unwrap();
    assert_eq!(descriptions.len(), 2);
    assert_eq!(
        job["progress"],
        json!({"done": 2, "total": 2, "unit": "image"})
    );
    assert!(
        descriptions
            .iter()
            .all(|d| d["usage"]["completion_tokens"] == 6),
        "{job}"
    );

    let compare = submit(
        &server,
        json!({"task": "compare", "images": [data_url("landscape.png"), data_url("two_b.png")], "format": "markdown"}),
    );
    let cjob = wait_for(&server, &compare, |j| j["state"] == "done");
    assert_eq!(cjob["result"]["format"], "markdown");
    assert!(
        cjob["result"]["content"]
            .as_str()
            .unwrap()
            .contains("| Category"),
        "{cjob}"
    );

    let list = server.get("/v1/jobs", None).json();
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&done.as_str()) && ids.contains(&compare.as_str()),
        "{list}"
    );
    let r = http(
        &server.addr,
        "DELETE",
        &format!("/v1/jobs/{done}"),
        None,
        None,
    );
    r.assert_error(409, "already finished");
    server
        .get("/v1/jobs/job_missing", None)
        .assert_error(404, "job_missing");
    server
        .post(
            "/v1/jobs",
            None,
            &json!({"task": "compare", "images": [data_url("landscape.png")]}),
        )
        .assert_error(400, "two or more");
    server
        .post("/v1/jobs", None, &json!({"task": "summarize"}))
        .assert_error(400, "not a valid job request");

    // A long job, and one queued behind it; the server is killed while the first runs.
    let long = submit(&server, long_compare());
    let queued = submit(
        &server,
        json!({"task": "ask", "prompt": "Hello!", "max_tokens": 3}),
    );
    wait_for(&server, &long, |j| j["state"] == "running");
    let mut server = server;
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    drop(server);

    let server = Server::start(data.path(), &[]);
    let again = server.get(&format!("/v1/jobs/{done}"), None).json();
    assert_eq!(again, job, "a finished job changed across the restart");
    let interrupted = server.get(&format!("/v1/jobs/{long}"), None).json();
    assert_eq!(interrupted["state"], "failed", "{interrupted}");
    assert_eq!(interrupted["error"]["code"], "interrupted");
    assert!(interrupted["error"]["message"]
        .as_str()
        .unwrap()
        .contains("interrupted"));
    let resumed = wait_for(&server, &queued, |j| j["state"] == "done");
    assert_eq!(
        resumed["result"]["usage"]["completion_tokens"], 3,
        "{resumed}"
    );

    // Cancelling: a long job stops and says so.
    let long = submit(&server, long_compare());
    wait_for(&server, &long, |j| j["state"] == "running");
    let r = http(
        &server.addr,
        "DELETE",
        &format!("/v1/jobs/{long}"),
        None,
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    wait_for(&server, &long, |j| j["state"] == "cancelled");
    server.assert_healthy();
}

/// The official `openai` Python package against the server: plain, streaming, image and
/// json_schema requests (scripts/openai_client_check.py). scripts/test.sh installs the client
/// in a virtual environment under target/; without it this test is skipped unless
/// VLM_REQUIRE_OPENAI_CLIENT is set.
#[test]
fn the_official_openai_python_client_works() {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/openai-venv/bin/python");
    if !python.exists() {
        assert!(
            std::env::var_os("VLM_REQUIRE_OPENAI_CLIENT").is_none(),
            "{} is missing; scripts/test.sh creates it",
            python.display()
        );
        eprintln!(
            "note: {} is missing; skipping the openai client check",
            python.display()
        );
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &["--api-key", "local-key"]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/openai_client_check.py");
    let out = Command::new(&python)
        .arg(script)
        .args([&format!("http://{}/v1", server.addr), MODEL, "local-key"])
        .arg(image_path("landscape.png"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    for check in [
        "plain ok",
        "stream ok",
        "image ok",
        "json_schema ok",
        "auth ok",
    ] {
        assert!(stdout.contains(check), "`{check}` missing from: {stdout}");
    }
}

/// Serves `body` to every connection on a loopback port, as a minimal image host.
fn image_host(body: Vec<u8>) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    addr
}

#[test]
fn remote_images_are_fetched_with_the_flag_and_capped() {
    let png = std::fs::read(image_path("landscape.png")).unwrap();
    let host = image_host(png.clone());
    let url = format!("http://{host}/landscape.png");
    let img = json!([{"type": "image_url", "image_url": {"url": url}},
                     {"type": "text", "text": "Describe this image."}]);
    let inline = json!([{"type": "image_url", "image_url": {"url": data_url("landscape.png")}},
                        {"type": "text", "text": "Describe this image."}]);

    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &["--allow-remote-images"]);
    let fetched = answer(&server.post("/v1/chat/completions", None, &chat(img.clone(), 6)));
    let sent = answer(&server.post("/v1/chat/completions", None, &chat(inline, 6)));
    assert_eq!(
        fetched, sent,
        "the fetched image is not the one sent inline"
    );
    drop(server);

    let cap = (png.len() - 1).to_string();
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(
        data.path(),
        &["--allow-remote-images", "--max-image-bytes", &cap],
    );
    server
        .post("/v1/chat/completions", None, &chat(img, 6))
        .assert_error(400, "larger than the server's limit");
    server.assert_healthy();
}
