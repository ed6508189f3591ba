//! The library's boundaries, checked on the source: the apps (`src/apps/`), the command line
//! (`src/cli/`, `src/main.rs`), the server (`src/server/`) and the examples use the library
//! through the crate root's re-exports and the public modules named in [`PUBLIC_MODULES`];
//! any other module they reach must be in [`ALLOWED`], with the reason written there. A new
//! reach into the runtime's internals (config, weights, model, processor, generate, engine
//! internals, kernels) fails this test until it goes through the public API or is argued for
//! here.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Modules that are public API in their own right: naming them is using the library.
const PUBLIC_MODULES: &[(&str, &str)] = &[
    (
        "apps",
        "the tasks themselves (describe, ask, compare, bench…), which front ends run",
    ),
    (
        "embed",
        "app-embedding helpers: model sources for local files and the registry default",
    ),
    (
        "video",
        "video input: decoding clips, animations and frame folders (`vlm::video`)",
    ),
    (
        "hub",
        "Hub downloads into the Hugging Face cache (feature `hub`)",
    ),
    (
        "registry",
        "the model registry behind `--model` names and `vlm models`",
    ),
    (
        "server",
        "the HTTP server's entry point, run by `vlm serve`",
    ),
    (
        "embedding_cache",
        "image embeddings kept on disk, shared by compare, the server and apps",
    ),
];

/// Reaches past the public API that are allowed, each with its reason: `(file or folder
/// prefix, module, why)`.
const ALLOWED: &[(&str, &str, &str)] = &[
    // The weight tools: they read, convert and write checkpoints, which is what `weights`,
    // `config` and `synthetic` are for.
    (
        "src/apps/quantize",
        "weights",
        "quantize converts checkpoints",
    ),
    (
        "src/apps/quantize",
        "config",
        "quantize writes GGUF metadata from the config",
    ),
    (
        "src/apps/synth.rs",
        "weights",
        "synth writes random checkpoints",
    ),
    (
        "src/apps/synth.rs",
        "config",
        "synth writes the config files of a preset",
    ),
    (
        "src/apps/synth.rs",
        "synthetic",
        "synth saves the synthetic presets",
    ),
    (
        "src/cli/quantize.rs",
        "weights",
        "the quantize command names quantization types",
    ),
    (
        "src/cli/synth.rs",
        "weights",
        "the synth command names quantization types",
    ),
    (
        "src/cli/synth.rs",
        "synthetic",
        "the synth command names presets",
    ),
    (
        "src/cli/args.rs",
        "weights",
        "`--quant` parses into a quantization type",
    ),
    (
        "src/cli/args.rs",
        "synthetic",
        "`--synthetic` parses into a preset",
    ),
    // Measurement needs the stages one at a time, below the Session API.
    (
        "src/apps/bench",
        "engine",
        "bench times the vision tower alone on prepared pixels",
    ),
    (
        "src/apps/bench",
        "generate",
        "bench times raw greedy decode steps (argmax)",
    ),
    (
        "src/apps/bench",
        "threads",
        "bench reports the worker threads in use",
    ),
    (
        "src/apps/inspect.rs",
        "processor",
        "inspect prints the tile plan and prompt of an image",
    ),
    (
        "src/cli/inspect.rs",
        "engine",
        "inspect loads the processor without the weights",
    ),
    // Shared plumbing of the crate, not runtime internals.
    (
        "src/cli/mod.rs",
        "threads",
        "`--threads` sets up the one worker pool at start",
    ),
    (
        "src/apps/compare",
        "processor",
        "screenshot folders are listed as image files",
    ),
    (
        "src/apps/compare",
        "units",
        "card sizes print as the rest of vlm prints them",
    ),
    (
        "src/server/mod.rs",
        "paths",
        "job records live in the user's cache directory",
    ),
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The source without comments and without the unit tests at the end of the file.
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    text.lines()
        .map(|l| l.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

fn ident_at(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The first path segment of every `crate::…` / `vlm::…` path in `code`, `use` groups
/// (`use crate::{a, b::c}`) included.
fn reached(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for prefix in ["crate::", "vlm::"] {
        let mut rest = code;
        while let Some(at) = rest.find(prefix) {
            let before = rest[..at].chars().next_back();
            let after = &rest[at + prefix.len()..];
            rest = after;
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            if let Some(group) = after.strip_prefix('{') {
                let mut depth = 0usize;
                let mut item_start = true;
                for (i, c) in group.char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => item_start = true,
                        c if item_start && !c.is_whitespace() => {
                            item_start = false;
                            out.insert(ident_at(&group[i..]).to_string());
                        }
                        _ => {}
                    }
                }
            } else {
                out.insert(ident_at(after).to_string());
            }
        }
    }
    out
}

/// Modules (lower-case first segments) reached by `file` that are neither its own, public API,
/// nor allowed for it.
fn violations(file: &Path) -> Vec<String> {
    let rel = file
        .strip_prefix(root())
        .unwrap_or(file)
        .to_string_lossy()
        .replace('\\', "/");
    // A front end's own module is not a reach past the API.
    let own = rel
        .strip_prefix("src/")
        .and_then(|r| r.split('/').next())
        .filter(|_| rel.matches('/').count() >= 2)
        .unwrap_or_default()
        .to_string();
    let text = std::fs::read_to_string(file).unwrap_or_default();
    reached(&code(&text))
        .into_iter()
        .filter(|m| m.starts_with(|c: char| c.is_ascii_lowercase()))
        .filter(|m| *m != own && m != "self")
        .filter(|m| !PUBLIC_MODULES.iter().any(|(p, _)| p == m))
        .filter(|m| {
            !ALLOWED
                .iter()
                .any(|(prefix, module, _)| module == m && rel.starts_with(prefix))
        })
        .map(|m| format!("{rel} reaches `{m}`"))
        .collect()
}

#[test]
fn front_ends_use_the_public_api_or_an_argued_exception() {
    let mut files = Vec::new();
    for dir in ["src/apps", "src/cli", "src/server", "examples"] {
        rust_files(&root().join(dir), &mut files);
    }
    files.push(root().join("src/main.rs"));
    assert!(files.len() > 20, "too few files found: {files:?}");
    let found: Vec<String> = files.iter().flat_map(|f| violations(f)).collect();
    assert!(
        found.is_empty(),
        "use a crate-root re-export or a public module, or argue for an exception in \
         tests/architecture.rs:\n{}",
        found.join("\n")
    );
}

#[test]
fn every_exception_is_still_needed() {
    // An exception nobody uses any more is removed, so the list only shrinks.
    for (prefix, module, why) in ALLOWED {
        let mut files = Vec::new();
        let path = root().join(prefix);
        if path.is_dir() {
            rust_files(&path, &mut files);
        } else {
            let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
            rust_files(&dir, &mut files);
            files.retain(|f| f.to_string_lossy().contains(prefix));
        }
        let used = files.iter().any(|f| {
            reached(&code(&std::fs::read_to_string(f).unwrap_or_default())).contains(*module)
        });
        assert!(
            used,
            "{prefix} no longer reaches `{module}` ({why}): remove the exception"
        );
    }
}

#[test]
fn the_scanner_sees_use_groups_and_inline_paths() {
    let src = "use crate::{Engine, weights::gguf, config};\nlet x = vlm::model::run();\n// crate::hidden\nuse crate::Session;";
    let got: Vec<String> = reached(&code(src)).into_iter().collect();
    assert_eq!(got, ["Engine", "Session", "config", "model", "weights"]);
}

/// The crate's top-level modules and whom each imports (crate-root re-exports counted as
/// the module they come from): `src/x.rs` and `src/x/` are module `x`.
fn module_graph() -> std::collections::BTreeMap<String, BTreeSet<String>> {
    let src = root().join("src");
    let lib = code(&std::fs::read_to_string(src.join("lib.rs")).unwrap_or_default());
    // `pub use a::b::{C, D};` at the root: C and D belong to `a`.
    let mut owner = std::collections::BTreeMap::new();
    for line in lib.split(';') {
        let Some(path) = line.trim().strip_prefix("pub use ") else {
            continue;
        };
        let module = ident_at(path).to_string();
        let names = path.rsplit("::").next().unwrap_or_default();
        for name in names
            .split([',', '{', '}', ' ', '\n'])
            .filter(|n| !n.is_empty())
        {
            owner.insert(name.to_string(), module.clone());
        }
    }
    let mut graph = std::collections::BTreeMap::new();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    for file in files {
        let rel = file
            .strip_prefix(&src)
            .unwrap_or(&file)
            .to_string_lossy()
            .replace('\\', "/");
        let module = rel
            .split('/')
            .next()
            .unwrap_or_default()
            .trim_end_matches(".rs")
            .to_string();
        if ["lib", "main", "bin"].contains(&module.as_str()) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        let edges: &mut BTreeSet<String> = graph.entry(module.clone()).or_default();
        for reached in reached(&code(&text)) {
            let target = owner.get(&reached).cloned().unwrap_or(reached);
            let is_module = src.join(format!("{target}.rs")).exists() || src.join(&target).is_dir();
            if is_module && target != module {
                edges.insert(target);
            }
        }
    }
    graph
}

#[test]
fn modules_import_each_other_in_one_direction() {
    // Data flows one way (processor → model → generate → session → apps); a cycle between
    // top-level modules means two of them share a concept that belongs in one place.
    let graph = module_graph();
    assert!(graph.len() > 15, "too few modules found: {graph:?}");
    fn visit(
        at: &str,
        graph: &std::collections::BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<String> {
        if let Some(start) = path.iter().position(|m| m == at) {
            return Some(format!("{} -> {at}", path[start..].join(" -> ")));
        }
        if done.contains(at) {
            return None;
        }
        path.push(at.to_string());
        for next in graph.get(at).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(at.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for module in graph.keys() {
        if let Some(cycle) = visit(module, &graph, &mut Vec::new(), &mut done) {
            panic!("import cycle between modules: {cycle}");
        }
    }
    // The direction that matters most: the runtime's core never reaches its front ends.
    for core in ["processor", "model", "weights", "config", "cpu", "generate"] {
        let front: Vec<&String> = graph[core]
            .iter()
            .filter(|m| ["apps", "server", "session", "engine"].contains(&m.as_str()))
            .collect();
        assert!(front.is_empty(), "{core} imports {front:?}");
    }
}
