//! Models from a Hub that runs inside the test: a loopback HTTP server serves the committed
//! fixtures in the Hub's URL layout, and every test reaches it through a `HubConfig` with its
//! own temporary cache (the library) or through the child's environment (the `vlm` binary),
//! never through this process's environment.

mod server;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use server::{sha256, HubServer, CHECKPOINT, COMMIT, GGUF_COMMIT, GGUF_REPO, MMPROJ, TEXT};
use vlm::hub::{Hub, HubConfig, HubProgress, Need};
use vlm::registry::{ModelRef, Registry};
use vlm::{Engine, EngineOptions, Error, GenerateOptions, ModelSource};

use crate::common::{case, fixtures, model_dir};

// ---- helpers ----

fn fixture_bytes(repo: &str, file: &str) -> Vec<u8> {
    match repo {
        CHECKPOINT => std::fs::read(model_dir("tiny-smolvlm").join(file)).unwrap(),
        _ => std::fs::read(fixtures().join("gguf").join(file)).unwrap(),
    }
}

/// A registry with one model served by the test server; sizes and digests from the fixtures.
fn registry(text_file: &str) -> Registry {
    let file = |repo: &str, name: &str| {
        let bytes = fixture_bytes(repo, name);
        format!(
            "{{ name = \"{name}\", size = {}, sha256 = \"{}\" }}",
            bytes.len(),
            sha256(&bytes)
        )
    };
    let text_entry = if text_file == TEXT {
        file(GGUF_REPO, TEXT)
    } else {
        format!("{{ name = \"{text_file}\" }}")
    };
    let toml = format!(
        r#"
name = "tiny-smolvlm"
aliases = ["tiny"]
description = "random weights"
family = "smolvlm"
context_length = 8192
license = "Apache-2.0"
default_variant = "q8_0"

[config]
repo = "{CHECKPOINT}"
files = [
    {config},
    {tokenizer},
    {tokenizer_config},
    {preprocessor},
    {{ name = "processor_config.json", optional = true }},
    {{ name = "generation_config.json", optional = true }},
    {{ name = "chat_template.json", optional = true }},
    {{ name = "chat_template.jinja", optional = true }},
]

[variants.q8_0]
format = "gguf"
repo = "{GGUF_REPO}"
model = {text_entry}
mmproj = {mmproj}

[variants.f32]
format = "safetensors"
repo = "{CHECKPOINT}"
files = [{weights}]
"#,
        config = file(CHECKPOINT, "config.json"),
        tokenizer = file(CHECKPOINT, "tokenizer.json"),
        tokenizer_config = file(CHECKPOINT, "tokenizer_config.json"),
        preprocessor = file(CHECKPOINT, "preprocessor_config.json"),
        mmproj = file(GGUF_REPO, MMPROJ),
        weights = file(CHECKPOINT, "model.safetensors"),
    );
    Registry::from_toml(&[("tiny.toml", &toml)]).unwrap()
}

fn tiny(spec: &str) -> ModelRef {
    registry(TEXT).resolve(spec).unwrap()
}

fn fetch(hub: &Hub, model: &ModelRef, need: Need) -> (vlm::Result<ModelSource>, Vec<HubProgress>) {
    let mut events = Vec::new();
    let result = hub.source(model, need, &mut |e| events.push(e));
    (result, events)
}

fn repo_dir(cache: &Path, repo: &str) -> PathBuf {
    cache.join(format!("models--{}", repo.replace('/', "--")))
}

fn greedy(source: ModelSource, n: usize) -> Vec<u32> {
    let engine = Engine::load(source, EngineOptions::default()).unwrap();
    let opts = GenerateOptions {
        max_new_tokens: n,
        ignore_eos: true,
        ..Default::default()
    };
    let message = case("landscape").messages().pop().unwrap();
    engine.session().send(message, &opts).unwrap().token_ids
}

fn gguf_requests(server: &HubServer) -> usize {
    server
        .requests()
        .iter()
        .filter(|r| r.contains(".gguf"))
        .count()
}

// ---- library ----

#[test]
fn first_run_downloads_with_progress_then_the_cache_serves_offline() {
    let server = HubServer::start();
    let cache = tempfile::tempdir().unwrap();
    let hub = Hub::new(server.config(cache.path())).unwrap();
    let model = tiny("tiny");

    let (source, events) = fetch(&hub, &model, Need::Everything);
    let source = source.unwrap();
    for (file, size) in [(TEXT, 229_952u64), (MMPROJ, 129_920)] {
        let downloads: Vec<(u64, u64)> = events
            .iter()
            .filter_map(|e| match e {
                HubProgress::Download {
                    repo,
                    file: f,
                    done,
                    total,
                } if f == file && repo == GGUF_REPO => Some((*done, *total)),
                _ => None,
            })
            .collect();
        assert!(downloads.len() > 1, "{file}: {downloads:?}");
        assert!(downloads.windows(2).all(|w| w[0].0 <= w[1].0));
        assert_eq!(downloads.last(), Some(&(size, size)));
        assert!(events.contains(&HubProgress::Done {
            repo: GGUF_REPO.into(),
            file: file.into(),
        }));
    }

    // The standard layout: refs → commit, snapshot entries linked to content-addressed blobs.
    let gguf_dir = repo_dir(cache.path(), GGUF_REPO);
    let reference = std::fs::read_to_string(gguf_dir.join("refs/main")).unwrap();
    assert_eq!(reference, GGUF_COMMIT);
    let text = gguf_dir.join("snapshots").join(GGUF_COMMIT).join(TEXT);
    let ModelSource::Gguf {
        model: text_path,
        mmproj,
        config_dir,
    } = &source
    else {
        panic!("{source:?}")
    };
    assert_eq!(text_path, &text);
    assert!(mmproj.is_some());
    let config_dir = config_dir.clone().unwrap();
    assert_eq!(
        config_dir,
        repo_dir(cache.path(), CHECKPOINT)
            .join("snapshots")
            .join(COMMIT)
    );
    #[cfg(unix)]
    {
        let target = std::fs::read_link(&text).unwrap();
        let blob = sha256(&fixture_bytes(GGUF_REPO, TEXT));
        assert_eq!(target, Path::new("../..").join("blobs").join(&blob));
    }
    // The repository has chat_template.json only; the .jinja miss is remembered.
    assert!(repo_dir(cache.path(), CHECKPOINT)
        .join(".no_exist")
        .join(COMMIT)
        .join("chat_template.jinja")
        .exists());

    // The downloaded model runs exactly like the fixture files it came from.
    let direct = ModelSource::gguf_with_config(
        fixtures().join("gguf").join(TEXT),
        Some(fixtures().join("gguf").join(MMPROJ)),
        model_dir("tiny-smolvlm"),
    );
    assert_eq!(greedy(source.clone(), 4), greedy(direct, 4));

    // Second run, online: nothing is requested. Offline: the same files.
    let before = server.requests().len();
    assert_eq!(fetch(&hub, &model, Need::Everything).0.unwrap(), source);
    let offline = Hub::new(server.config(cache.path()).or_offline(true)).unwrap();
    let (again, events) = fetch(&offline, &model, Need::Everything);
    assert_eq!(again.unwrap(), source);
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(server.requests().len(), before);
}

#[test]
fn offline_without_a_cache_names_every_missing_file_and_sends_nothing() {
    let server = HubServer::start();
    let cache = tempfile::tempdir().unwrap();
    let hub = Hub::new(server.config(cache.path()).or_offline(true)).unwrap();
    let err = fetch(&hub, &tiny("tiny"), Need::Everything).0.unwrap_err();
    let Error::NotCached { missing, .. } = &err else {
        panic!("{err}")
    };
    let text = err.to_string();
    for name in [TEXT, MMPROJ, "config.json", "tokenizer.json"] {
        assert!(
            missing
                .iter()
                .any(|m| m.ends_with(name) || m.contains(&format!("/{name} "))),
            "{name}: {text}"
        );
    }
    assert!(text.contains("224.6 KiB"), "{text}");
    assert_eq!(err.category(), vlm::Category::Load);
    assert!(server.requests().is_empty());
}

#[test]
fn processor_only_fetches_the_json_files() {
    let server = HubServer::start();
    let cache = tempfile::tempdir().unwrap();
    let hub = Hub::new(server.config(cache.path())).unwrap();
    let source = fetch(&hub, &tiny("tiny"), Need::Processor).0.unwrap();
    assert_eq!(gguf_requests(&server), 0);
    let processor = vlm::engine::load_processor(&source).unwrap();
    let reference = case("landscape");
    let prepared = processor
        .prepare(&reference.messages(), &Default::default(), true)
        .unwrap();
    assert_eq!(prepared.input_ids, reference.ids("input_ids"));
}

#[test]
fn a_corrupted_cached_file_is_detected_reported_and_replaced() {
    let server = HubServer::start();
    let cache = tempfile::tempdir().unwrap();
    let hub = Hub::new(server.config(cache.path())).unwrap();
    let model = tiny("tiny");
    fetch(&hub, &model, Need::Everything).0.unwrap();
    let text = repo_dir(cache.path(), GGUF_REPO)
        .join("snapshots")
        .join(GGUF_COMMIT)
        .join(TEXT);
    let good = std::fs::read(&text).unwrap();

    // Truncated: offline refuses it, naming the file; online replaces it.
    std::fs::write(&text, &good[..good.len() - 100]).unwrap();
    let offline = Hub::new(server.config(cache.path()).or_offline(true)).unwrap();
    let err = fetch(&offline, &model, Need::Everything).0.unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, Error::Hub { .. }), "{message}");
    assert!(
        message.contains(TEXT) && message.contains("corrupt"),
        "{message}"
    );
    assert!(
        message.contains("229852 bytes, expected 229952"),
        "{message}"
    );
    let (source, events) = fetch(&hub, &model, Need::Everything);
    source.unwrap();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, HubProgress::Corrupt { file, .. } if file == TEXT)),
        "{events:?}"
    );
    assert_eq!(std::fs::read(&text).unwrap(), good);

    // Same size, one byte changed: only hashing sees it, which `pull` does.
    let mut flipped = good.clone();
    flipped[1000] ^= 1;
    std::fs::write(&text, &flipped).unwrap();
    fetch(&hub, &model, Need::Everything).0.unwrap();
    let mut events = Vec::new();
    let err = offline.pull(&model, &mut |e| events.push(e)).unwrap_err();
    assert!(err.to_string().contains("sha256"), "{err}");
    hub.pull(&model, &mut |e| events.push(e)).unwrap();
    assert!(events
        .iter()
        .any(|e| matches!(e, HubProgress::Verify { file, .. } if file == TEXT)));
    assert!(events
        .iter()
        .any(|e| matches!(e, HubProgress::Corrupt { file, .. } if file == TEXT)));
    assert_eq!(std::fs::read(&text).unwrap(), good);
}

#[test]
fn a_404_names_the_repository_and_the_file() {
    let server = HubServer::start();
    let cache = tempfile::tempdir().unwrap();
    let hub = Hub::new(server.config(cache.path())).unwrap();
    let missing = registry("tiny-smolvlm-Q2_K.gguf").resolve("tiny").unwrap();
    let err = fetch(&hub, &missing, Need::Everything).0.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Hub { .. }), "{text}");
    assert!(text.contains(GGUF_REPO), "{text}");
    assert!(text.contains("tiny-smolvlm-Q2_K.gguf"), "{text}");
    assert!(text.contains("404"), "{text}");

    let nowhere = ModelRef::Hub {
        repo: "test-org/nothing-here".into(),
        revision: "main".into(),
        quant: None,
    };
    let text = fetch(&hub, &nowhere, Need::Everything)
        .0
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("test-org/nothing-here") && text.contains("no such repository"),
        "{text}"
    );
}

#[test]
fn a_dropped_connection_leaves_no_corrupt_cache_entry_and_resumes() {
    let server = HubServer::start();
    let cache = tempfile::tempdir().unwrap();
    let hub = Hub::new(server.config(cache.path())).unwrap();
    let model = tiny("tiny");
    server.drop_after(TEXT, 100_000, 1);
    let err = fetch(&hub, &model, Need::Everything).0.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(TEXT) && text.contains("100000 of 229952"),
        "{text}"
    );

    let gguf_dir = repo_dir(cache.path(), GGUF_REPO);
    let blob = sha256(&fixture_bytes(GGUF_REPO, TEXT));
    assert!(!gguf_dir
        .join("snapshots")
        .join(GGUF_COMMIT)
        .join(TEXT)
        .exists());
    assert!(!gguf_dir.join("blobs").join(&blob).exists());
    let partial = gguf_dir.join("blobs").join(format!("{blob}.incomplete"));
    assert_eq!(std::fs::metadata(&partial).unwrap().len(), 100_000);
    let offline = Hub::new(server.config(cache.path()).or_offline(true)).unwrap();
    let err = fetch(&offline, &model, Need::Everything).0.unwrap_err();
    assert!(matches!(err, Error::NotCached { .. }), "{err}");

    // The next run asks only for the rest.
    fetch(&hub, &model, Need::Everything).0.unwrap();
    assert!(
        server
            .requests()
            .iter()
            .any(|r| r.starts_with("GET") && r.contains(TEXT) && r.ends_with("bytes=100000-")),
        "{:?}",
        server.requests()
    );
    assert!(!partial.exists());
    let text_path = gguf_dir.join("snapshots").join(GGUF_COMMIT).join(TEXT);
    assert_eq!(
        std::fs::read(text_path).unwrap(),
        fixture_bytes(GGUF_REPO, TEXT)
    );

    // With retries, one call gets through a drop by resuming.
    let cache = tempfile::tempdir().unwrap();
    let patient = Hub::new(HubConfig {
        retries: 1,
        ..server.config(cache.path())
    })
    .unwrap();
    server.drop_after(MMPROJ, 50_000, 1);
    fetch(&patient, &model, Need::Everything).0.unwrap();

    // A server that ignores Range after a drop: the partial file is restarted, not appended to.
    let cache = tempfile::tempdir().unwrap();
    let hub = Hub::new(server.config(cache.path())).unwrap();
    server.drop_after(TEXT, 10_000, 1);
    assert!(fetch(&hub, &model, Need::Everything).0.is_err());
    server.state.faults.lock().unwrap().ignore_range = true;
    let result = fetch(&hub, &model, Need::Everything).0;
    server.state.faults.lock().unwrap().ignore_range = false;
    result.unwrap();
    let text_path = repo_dir(cache.path(), GGUF_REPO)
        .join("snapshots")
        .join(GGUF_COMMIT)
        .join(TEXT);
    assert_eq!(
        std::fs::read(text_path).unwrap(),
        fixture_bytes(GGUF_REPO, TEXT)
    );
}

#[test]
fn bytes_that_do_not_match_their_digest_are_discarded() {
    let server = HubServer::start();
    let cache = tempfile::tempdir().unwrap();
    let hub = Hub::new(server.config(cache.path())).unwrap();
    server
        .state
        .faults
        .lock()
        .unwrap()
        .garble
        .insert(MMPROJ.into(), 1);
    let text = fetch(&hub, &tiny("tiny"), Need::Everything)
        .0
        .unwrap_err()
        .to_string();
    assert!(
        text.contains(MMPROJ) && text.contains("discarded"),
        "{text}"
    );
    let blobs = repo_dir(cache.path(), GGUF_REPO).join("blobs");
    let mmproj_blob = sha256(&fixture_bytes(GGUF_REPO, MMPROJ));
    assert!(!blobs.join(&mmproj_blob).exists());
    assert!(!blobs.join(format!("{mmproj_blob}.incomplete")).exists());
    fetch(&hub, &tiny("tiny"), Need::Everything).0.unwrap();
}

#[test]
fn repositories_outside_the_registry_are_listed_then_fetched() {
    let server = HubServer::start();
    let cache = tempfile::tempdir().unwrap();
    let hub = Hub::new(server.config(cache.path())).unwrap();
    let registry = Registry::builtin().unwrap();

    let checkpoint = registry.resolve(CHECKPOINT).unwrap();
    let source = fetch(&hub, &checkpoint, Need::Everything).0.unwrap();
    let ModelSource::Dir(dir) = &source else {
        panic!("{source:?}")
    };
    assert!(dir.join("model.safetensors").is_file());
    let reference = case("landscape");
    assert_eq!(
        greedy(source.clone(), 6),
        reference.ids("greedy_tokens")[..6]
    );
    let offline = Hub::new(server.config(cache.path()).or_offline(true)).unwrap();
    assert_eq!(
        fetch(&offline, &checkpoint, Need::Everything).0.unwrap(),
        source
    );

    let gguf = registry.resolve(&format!("{GGUF_REPO}:F32")).unwrap();
    let ModelSource::Gguf { model, mmproj, .. } = fetch(&hub, &gguf, Need::Everything).0.unwrap()
    else {
        panic!()
    };
    assert!(model.ends_with("tiny-smolvlm-f32.gguf"), "{model:?}");
    assert!(mmproj.unwrap().ends_with("mmproj-tiny-smolvlm-f32.gguf"));
    let pinned = registry.resolve(&format!("{CHECKPOINT}@{COMMIT}")).unwrap();
    assert_eq!(
        fetch(&offline, &pinned, Need::Everything).0.unwrap(),
        source
    );
}

#[test]
fn the_registry_safetensors_variant_is_one_directory() {
    let server = HubServer::start();
    let cache = tempfile::tempdir().unwrap();
    let hub = Hub::new(server.config(cache.path())).unwrap();
    let source = fetch(&hub, &tiny("tiny:f32"), Need::Everything).0.unwrap();
    assert_eq!(
        source,
        ModelSource::dir(
            repo_dir(cache.path(), CHECKPOINT)
                .join("snapshots")
                .join(COMMIT)
        )
    );
    assert_eq!(
        greedy(source, 6),
        case("landscape").ids("greedy_tokens")[..6]
    );
    assert_eq!(gguf_requests(&server), 0);
    assert_eq!(
        hub.status(&registry(TEXT).models()[0], "f32"),
        vlm::hub::CacheStatus::Complete
    );
    assert!(matches!(
        hub.status(&registry(TEXT).models()[0], "q8_0"),
        vlm::hub::CacheStatus::Partial { missing: 2 }
    ));
}

// ---- the `vlm` binary ----

fn vlm(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_vlm"));
    command.args(args);
    for var in [
        "VLM_MODEL",
        "HF_ENDPOINT",
        "HF_HOME",
        "HF_HUB_CACHE",
        "HF_TOKEN",
        "HF_HUB_OFFLINE",
    ] {
        command.env_remove(var);
    }
    command.envs(env.iter().copied()).output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn cli_pulls_then_runs_offline_from_the_cache() {
    let server = HubServer::start();
    let home = tempfile::tempdir().unwrap();
    let home_str = home.path().to_str().unwrap();
    let online = [("HF_ENDPOINT", server.url.as_str()), ("HF_HOME", home_str)];
    let out = vlm(&["pull", CHECKPOINT], &online);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ready"));
    assert!(home
        .path()
        .join("hub")
        .join("models--test-org--tiny-smolvlm")
        .is_dir());

    let image = fixtures().join("images/landscape.png");
    let offline = [("HF_HOME", home_str), ("HF_HUB_OFFLINE", "1")];
    let args = [
        "ask",
        image.to_str().unwrap(),
        "Describe this image.",
        "--model",
        CHECKPOINT,
        "-n",
        "4",
        "--ignore-eos",
        "--json",
    ];
    let requests = server.requests().len();
    let out = vlm(&args, &offline);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<u32> = serde_json::from_value(json["token_ids"].clone()).unwrap();
    assert_eq!(ids, case("landscape").ids("greedy_tokens")[..4]);
    assert_eq!(server.requests().len(), requests);
}

#[test]
fn cli_default_model_offline_says_what_is_missing() {
    let home = tempfile::tempdir().unwrap();
    let image = fixtures().join("images/landscape.png");
    let out = vlm(
        &["describe", image.to_str().unwrap()],
        &[
            ("HF_HOME", home.path().to_str().unwrap()),
            ("HF_HUB_OFFLINE", "1"),
        ],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    for needle in [
        "SmolVLM2-256M-Video-Instruct-Q8_0.gguf (166.9 MiB)",
        "mmproj-SmolVLM2-256M-Video-Instruct-Q8_0.gguf (99.0 MiB)",
        "HuggingFaceTB/SmolVLM2-256M-Video-Instruct/tokenizer.json",
        "vlm pull smolvlm2-256m",
    ] {
        assert!(err.contains(needle), "`{needle}` not in {err}");
    }
}

#[test]
fn cli_suggests_the_nearest_alias_and_lists_models() {
    let home = tempfile::tempdir().unwrap();
    let env = [
        ("HF_HOME", home.path().to_str().unwrap()),
        ("HF_HUB_OFFLINE", "1"),
    ];
    let out = vlm(&["ask", "hi", "--model", "smolvlm2-265m"], &env);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("did you mean `smolvlm2-256m`"), "{err}");

    let out = vlm(&["models"], &env);
    assert!(out.status.success(), "{}", stderr(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    let default = table
        .lines()
        .find(|l| l.starts_with("smolvlm2-256m:q8_0 *"))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(
        default.contains("ggml-org/SmolVLM2-256M-Video-Instruct-GGUF"),
        "{default}"
    );
    assert!(
        default.contains("265.9 MiB") && default.trim_end().ends_with("no"),
        "{default}"
    );
    for alias in [
        "smolvlm2-500m:",
        "smolvlm2-2.2b:q4_k_m",
        "smolvlm-256m:",
        "smolvlm-500m:",
        "smolvlm-2b:",
    ] {
        assert!(table.contains(alias), "{alias}: {table}");
    }
}
