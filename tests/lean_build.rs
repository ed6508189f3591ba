//! The lean library build (`default-features = false`): `cargo tree` must show no command-line
//! parser, no HTTP client or TLS stack, no async runtime, no C regex engine, and no image
//! codecs beyond PNG, JPEG, WebP and GIF.

use std::collections::BTreeSet;
use std::process::Command;

/// Crates an app embedding the runtime must not pull in, with the reason.
const FORBIDDEN: &[(&str, &str)] = &[
    ("clap", "command-line parsing belongs to the `cli` feature"),
    ("indicatif", "progress bars belong to the `cli` feature"),
    (
        "tracing-subscriber",
        "log output belongs to the `cli` feature",
    ),
    ("ureq", "HTTP client: `hub` feature only"),
    ("hf-hub", "Hub client: `hub` feature only"),
    ("reqwest", "HTTP client"),
    ("hyper", "HTTP client"),
    ("rustls", "TLS stack: `hub` feature only"),
    ("ring", "TLS cryptography: `hub` feature only"),
    ("openssl", "C TLS library"),
    ("openssl-sys", "C TLS library"),
    ("native-tls", "platform TLS"),
    ("tokio", "async runtime"),
    ("onig", "C regex engine (tokenizers' default)"),
    ("onig_sys", "C regex engine (tokenizers' default)"),
    ("tiff", "image codec not needed"),
    ("exr", "image codec not needed"),
    ("ravif", "AVIF encoder not needed"),
    ("rav1e", "AVIF encoder not needed"),
    ("dav1d", "C AVIF decoder"),
    ("qoi", "image codec not needed"),
    ("jpeg-encoder", "image encoder not needed"),
    ("mp4", "MP4 demuxer: `video` feature only"),
    ("openh264-sys2", "C++ H.264 decoder: `video` feature only"),
];

/// `cargo tree` of the lean build with `extra` arguments: one `name vX.Y.Z …` line per crate.
fn lean_tree(extra: &[&str]) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["tree", "--offline", "--locked", "--no-default-features"])
        .args(["-e", "normal", "--prefix", "none"])
        .args(extra)
        .output()
        .expect("run cargo tree");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("cargo tree prints UTF-8")
}

fn crate_names(tree: &str) -> BTreeSet<String> {
    tree.lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

#[test]
fn lean_build_has_no_cli_network_async_or_c_regex_crates() {
    let names = crate_names(&lean_tree(&[]));
    assert!(names.contains("candle-core"), "unexpected tree: {names:?}");
    let found: Vec<String> = FORBIDDEN
        .iter()
        .filter(|(name, _)| names.contains(*name))
        .map(|(name, why)| format!("{name} ({why})"))
        .collect();
    assert!(found.is_empty(), "the lean build pulls in: {found:?}");
}

#[test]
fn lean_build_enables_only_pure_rust_features() {
    // Feature edges: `tokenizers feature "onig"` or `esaxx-rs feature "cpp"` would build C/C++.
    let features = lean_tree(&["-e", "features"]);
    for bad in [
        "tokenizers feature \"onig\"",
        "tokenizers feature \"esaxx_fast\"",
        "esaxx-rs feature \"cpp\"",
        "image feature \"avif\"",
        "image feature \"tiff\"",
        "image feature \"exr\"",
        "image feature \"default\"",
    ] {
        assert!(!features.contains(bad), "the lean build enables {bad}");
    }
    for codec in ["png", "jpeg", "webp", "gif"] {
        let edge = format!("image feature \"{codec}\"");
        assert!(features.contains(&edge), "the lean build lacks {edge}");
    }
}
