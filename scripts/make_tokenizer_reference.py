#!/usr/bin/env python3
r"""Write tests/fixtures/reference/smollm2_tokenizer.json: sentences and the token ids the real
SmolLM2-135M-Instruct GGUF tokenizer gives them, for tests/gguf_tokenizer.rs.

The ids are established without the Rust code under test:

1. the reference: the vocabulary and merges of the file as transformers' GGUF -> fast-tokenizer
   converter reads them (``AutoTokenizer.from_pretrained(dir, gguf_file=...)``), with the
   pre-tokenizer of SmolLM2's own ``tokenizer.json``: ``Digits(individual_digits=True)`` then
   ``ByteLevel``. That is the split llama.cpp's ``smollm`` pre-tokenizer reproduces (``\p{N}``
   isolated, then the GPT-2 regex);
2. the converter's tokenizer as it comes: it ignores ``tokenizer.ggml.pre`` and splits with the
   GPT-2 regex alone, so it differs where a space precedes a non-ASCII numeral (`` ½``). Such
   differences are recorded in the case (``plain_converter_ids``), not treated as errors;
3. optionally llama.cpp itself: ``--llama-tokenize PATH`` runs its ``llama-tokenize`` tool
   (``-f FILE --ids --no-escape``, special tokens parsed, BOS as the file says) on every
   sentence; any disagreement with (1) aborts.

No BOS is expected: the file sets ``tokenizer.ggml.add_bos_token`` false.

Run from the repository root, after ``scripts/fetch-test-models.sh``, in an environment made from
``scripts/requirements.txt``::

    python scripts/make_tokenizer_reference.py \
        [--llama-tokenize /path/to/llama-tokenize --llama-cpp-commit SHA]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GGUF = ROOT / "target/test-models/SmolLM2-135M-Instruct.Q4_1.gguf"
OUT = ROOT / "tests/fixtures/reference/smollm2_tokenizer.json"

SENTENCES = [
    "Hello, world! How are you today?",
    "In 2024 the price was 345 dollars.",
    "It's 3.14159, isn't it? x² + ½ cup — don't!",
    "multiple   spaces  here\tand a tab",
    "line one\nline two\n\nparagraph two\n",
    "  leading and trailing   ",
    "café ☕ 日本語",
    "def f(x):\n    return x**2  # square",
    "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
]


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def llama_cpp_ids(binary: str, text: str) -> list[int]:
    with tempfile.NamedTemporaryFile("wb", suffix=".txt", delete=False) as f:
        f.write(text.encode("utf-8"))
        name = f.name
    try:
        out = subprocess.run(
            [binary, "-m", str(GGUF), "-f", name, "--ids", "--no-escape", "--log-disable"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    finally:
        os.unlink(name)
    return json.loads(out.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--llama-tokenize", help="llama.cpp's llama-tokenize binary")
    parser.add_argument("--llama-cpp-commit", help="the llama.cpp commit that binary was built from")
    args = parser.parse_args()

    if not GGUF.is_file():
        sys.exit(f"{GGUF} is missing; run scripts/fetch-test-models.sh first")

    import transformers
    from tokenizers import pre_tokenizers
    from transformers import AutoTokenizer

    converted = AutoTokenizer.from_pretrained(str(GGUF.parent), gguf_file=GGUF.name)
    original_style = AutoTokenizer.from_pretrained(str(GGUF.parent), gguf_file=GGUF.name)
    original_style.backend_tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )

    cases = []
    n_plain_differs = 0
    for text in SENTENCES:
        ids = original_style.encode(text, add_special_tokens=True)
        case = {"text": text, "ids": ids}
        if args.llama_tokenize:
            other = llama_cpp_ids(args.llama_tokenize, text)
            if other != ids:
                sys.exit(f"{text!r}: the reference gives {ids}, llama.cpp gives {other}")
        plain = converted.encode(text, add_special_tokens=True)
        if plain != ids:
            case["plain_converter_ids"] = plain
            n_plain_differs += 1
        if original_style.decode(ids) != text:
            sys.exit(f"{text!r}: the reference does not decode its ids back to the text")
        cases.append(case)

    how = (
        f"transformers {transformers.__version__} GGUF tokenizer converter "
        "(AutoTokenizer.from_pretrained(dir, gguf_file=...)) reading this file, with its "
        "pre-tokenizer replaced by SmolLM2's tokenizer.json one (Digits(individual_digits) + "
        "ByteLevel), which is what llama.cpp's `smollm` pre-tokenizer does"
    )
    if args.llama_tokenize:
        built = f" at {args.llama_cpp_commit}" if args.llama_cpp_commit else ""
        how += (
            f"; llama.cpp's llama-tokenize{built} (special tokens parsed, no BOS) gives the same ids"
        )
    how += (
        f". The converter's own pre-tokenizer ignores tokenizer.ggml.pre; it differs on "
        f"{n_plain_differs} case(s), kept as plain_converter_ids. "
        "Produced by scripts/make_tokenizer_reference.py."
    )

    doc = {
        "model": GGUF.name,
        "sha256": sha256(GGUF),
        "how": how,
        "add_bos": False,
        "cases": cases,
    }
    text = json.dumps(doc, ensure_ascii=False, indent=1)
    # One line per id list keeps the fixture readable and its diffs small.
    text = re.sub(r"\[\s+([0-9,\s]+?)\s+\]", lambda m: "[" + re.sub(r"\s+", " ", m[1]) + "]", text)
    OUT.write_text(text + "\n", encoding="utf-8")
    print(f"wrote {OUT.relative_to(ROOT)} ({len(cases)} cases)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
