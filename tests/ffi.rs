//! The C interface (feature `ffi`): the committed header is what cbindgen generates from
//! src/ffi.rs, and C programs compiled with the system C compiler against the static library
//! describe a fixture image, report a missing model cleanly, and get panics as error codes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

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

/// Tools `scripts/test.sh` installs; without them (and without `VLM_REQUIRE_FFI_TOOLS`) the
/// test is skipped with a note.
fn tool(path: PathBuf, what: &str) -> Option<PathBuf> {
    if path.exists() {
        return Some(path);
    }
    let note = format!("{what} not found at {}", path.display());
    assert!(
        std::env::var_os("VLM_REQUIRE_FFI_TOOLS").is_none(),
        "{note} (run scripts/test.sh)"
    );
    eprintln!("note: {note}; skipping");
    None
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

#[test]
fn header_is_current() {
    let Some(cbindgen) = tool(target_dir().join("tools/bin/cbindgen"), "cbindgen") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let fresh = dir.path().join("vlm.h");
    let out = Command::new(cbindgen)
        .current_dir(root())
        .args(["--config", "cbindgen.toml", "--output"])
        .arg(&fresh)
        .arg("src/ffi.rs")
        .output()
        .unwrap();
    check(&out, "cbindgen");
    let committed = std::fs::read_to_string(root().join("include/vlm.h")).unwrap();
    let generated = std::fs::read_to_string(&fresh).unwrap();
    assert!(
        committed == generated,
        "include/vlm.h is stale; regenerate it with \
         target/tools/bin/cbindgen --config cbindgen.toml --output include/vlm.h src/ffi.rs"
    );
}

/// The static library with the C interface, built once per test run into `target/ffi`
/// (its own target directory: the one running these tests is locked by cargo).
fn static_lib() -> &'static Path {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let target = target_dir();
        let out = Command::new(cargo)
            .current_dir(root())
            .env("CARGO_TARGET_DIR", &target)
            .args([
                "rustc",
                "--offline",
                "--locked",
                "--lib",
                "--features",
                "ffi",
            ])
            .args(["--crate-type", "staticlib"])
            .output()
            .unwrap();
        check(&out, "cargo rustc --crate-type staticlib");
        target.join("debug/libvlm.a")
    })
}

/// Compiles `source` with the system C compiler against the static library.
fn compile_c(source: &str, name: &str) -> Option<PathBuf> {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    if Command::new(&cc).arg("--version").output().is_err() {
        tool(PathBuf::from(&cc), "a C compiler")?;
    }
    let lib = static_lib();
    let exe = lib.with_file_name(name);
    let out = Command::new(&cc)
        .current_dir(root())
        .args(["-std=c99", "-Wall", "-Werror", "-Iinclude", source])
        .arg(lib)
        // libstdc++: the default `video` feature links OpenH264, which is C++.
        .args(["-lstdc++", "-lpthread", "-ldl", "-lm", "-o"])
        .arg(&exe)
        .output()
        .unwrap();
    check(&out, &format!("cc {source}"));
    Some(exe)
}

fn image() -> PathBuf {
    fixtures().join("images/landscape.png")
}

#[test]
fn c_example_describes_an_image_and_reports_a_missing_model() {
    let Some(exe) = compile_c("examples/c/describe.c", "describe-c") else {
        return;
    };
    let out = Command::new(&exe)
        .arg(model_dir("tiny-smolvlm"))
        .arg(image())
        .output()
        .unwrap();
    check(&out, "describe-c");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.trim().is_empty(), "no text streamed");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("pieces streamed"), "{stderr}");

    let missing = root().join("no/such/model");
    let out = Command::new(&exe)
        .arg(&missing)
        .arg(image())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("error (2): "), "{stderr}");
    assert!(stderr.contains("no/such/model"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn c_checks_panics_null_arguments_and_stopping() {
    let Some(exe) = compile_c("tests/c/ffi_checks.c", "ffi-checks-c") else {
        return;
    };
    let out = Command::new(&exe)
        .arg(model_dir("tiny-smolvlm"))
        .arg(image())
        .output()
        .unwrap();
    check(&out, "ffi-checks-c");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ok\n");
}
