#!/usr/bin/env bash
# Renders the example product pages (examples/screenshots/*.html) to the PNG screenshots that
# `vlm compare` examples and tests read. Needs Debian's chromium.
set -euo pipefail
cd "$(dirname "$0")/../examples/screenshots"
profile="$(mktemp -d)"
trap 'rm -rf "$profile"' EXIT
for page in *.html; do
  chromium --headless --no-sandbox --disable-gpu --disable-background-networking \
    --disable-component-update --disable-sync --no-first-run --hide-scrollbars \
    --user-data-dir="$profile" --screenshot="$PWD/${page%.html}.png" \
    --window-size=1000,840 "file://$PWD/$page"
done
