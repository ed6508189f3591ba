#!/usr/bin/env bash
# The project's test command (README: "Run the tests"). Needs only a Rust toolchain: the
# reference fixtures are committed, so no Python is required.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings
cargo test --locked
# Examples and benches must keep building against the public API.
cargo build --locked --examples --benches
