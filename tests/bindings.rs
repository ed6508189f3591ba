//! The UniFFI bindings (feature `uniffi`): the library is built as a cdylib, UniFFI's
//! generators read its interface from it, the generated Python module runs
//! `tests/python/uniffi_check.py` on the tiny fixture model (streaming, cancellation from
//! another thread, errors), and the committed Swift and Kotlin sources in `bindings/` must be
//! what the generators produce now (`VLM_UPDATE_BINDINGS=1` rewrites them).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use camino::{Utf8Path, Utf8PathBuf};
use uniffi_bindgen::bindings::{
    KotlinBindingGenerator, PythonBindingGenerator, SwiftBindingGenerator,
};
use uniffi_bindgen::library_mode::generate_bindings;
use uniffi_bindgen::{BindingGenerator, EmptyCrateConfigSupplier};

use crate::common::{fixtures, model_dir};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `target/`, found from this test binary's path (`target/debug/deps/integration-…`).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| root().join("target"))
}

fn check(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The library built once per test run as a cdylib with the `uniffi` feature, copied to
/// `target/uniffi/` so that later builds of other crate types cannot replace it mid-test.
fn cdylib() -> &'static Utf8Path {
    static LIB: OnceLock<Utf8PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let target = target_dir();
        let out = Command::new(cargo)
            .current_dir(root())
            .env("CARGO_TARGET_DIR", &target)
            // Not offline: `uniffi` may not be downloaded yet when only the tests were built.
            .args(["rustc", "--locked", "--lib"])
            .args(["--features", "uniffi", "--crate-type", "cdylib"])
            .output()
            .unwrap();
        check(&out, "cargo rustc --crate-type cdylib");
        let name = format!(
            "{}vlm{}",
            std::env::consts::DLL_PREFIX,
            std::env::consts::DLL_SUFFIX
        );
        let dir = target.join("uniffi");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(target.join("debug").join(&name), dir.join(&name)).unwrap();
        Utf8PathBuf::from_path_buf(dir.join(name)).expect("UTF-8 target path")
    })
}

/// Writes `generator`'s sources for the library's interface into `out` (unformatted, so that
/// the result does not depend on which formatters are installed).
fn generate<G: BindingGenerator>(generator: &G, out: &Path) {
    std::fs::create_dir_all(out).unwrap();
    let out = Utf8Path::from_path(out).expect("UTF-8 output path");
    generate_bindings(
        cdylib(),
        None,
        generator,
        &EmptyCrateConfigSupplier,
        None,
        out,
        false,
    )
    .expect("generate bindings");
}

#[test]
fn python_binding_streams_cancels_and_reports_errors() {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    if Command::new(&python).arg("--version").output().is_err() {
        assert!(
            std::env::var_os("VLM_REQUIRE_FFI_TOOLS").is_none(),
            "{python} not found (scripts/test.sh needs python3)"
        );
        eprintln!("note: {python} not found; skipping the Python binding test");
        return;
    }
    let dir = target_dir().join("uniffi/python");
    let _ = std::fs::remove_dir_all(&dir);
    generate(&PythonBindingGenerator, &dir);
    // The generated module loads the library from its own directory.
    std::fs::copy(cdylib(), dir.join(cdylib().file_name().unwrap())).unwrap();
    assert!(
        dir.join("vlm.py").exists(),
        "no vlm.py in {}",
        dir.display()
    );

    let out = Command::new(&python)
        .arg(root().join("tests/python/uniffi_check.py"))
        .arg(&dir)
        .arg(model_dir("tiny-smolvlm"))
        .arg(fixtures().join("images/landscape.png"))
        .output()
        .unwrap();
    check(&out, "tests/python/uniffi_check.py");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().last(),
        Some("ok")
    );
}

/// Every file under `dir`, relative to it, with its contents.
fn tree(dir: &Path) -> Vec<(PathBuf, String)> {
    fn walk(base: &Path, dir: &Path, files: &mut Vec<(PathBuf, String)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(base, &path, files);
            } else {
                let text = std::fs::read_to_string(&path).unwrap();
                files.push((path.strip_prefix(base).unwrap().to_path_buf(), text));
            }
        }
    }
    let mut files = Vec::new();
    if dir.is_dir() {
        walk(dir, dir, &mut files);
    }
    files.sort();
    files
}

#[test]
fn committed_swift_and_kotlin_bindings_are_current() {
    let fresh = tempfile::tempdir().unwrap();
    generate(&SwiftBindingGenerator, &fresh.path().join("swift"));
    generate(&KotlinBindingGenerator, &fresh.path().join("kotlin"));
    for language in ["swift", "kotlin"] {
        let generated = tree(&fresh.path().join(language));
        assert!(!generated.is_empty(), "no {language} sources generated");
        if std::env::var_os("VLM_UPDATE_BINDINGS").is_some() {
            let dir = root().join("bindings").join(language);
            let _ = std::fs::remove_dir_all(&dir);
            for (name, text) in &generated {
                let path = dir.join(name);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, text).unwrap();
            }
        }
        let committed = tree(&root().join("bindings").join(language));
        let names = |t: &[(PathBuf, String)]| t.iter().map(|f| f.0.clone()).collect::<Vec<_>>();
        assert_eq!(
            names(&committed),
            names(&generated),
            "bindings/{language} has other files than the generator writes"
        );
        for ((name, old), (_, new)) in committed.iter().zip(&generated) {
            assert!(
                old == new,
                "bindings/{language}/{} is stale; regenerate it with VLM_UPDATE_BINDINGS=1 \
                 cargo test --test integration bindings::committed",
                name.display()
            );
        }
    }
}
