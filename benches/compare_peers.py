#!/usr/bin/env python3
"""Times SmolVLM runtimes side by side with vlm: one checkpoint, one image, one thread count, one run.

    cargo build --release
    nice -n 19 python3 benches/compare_peers.py target/bench-models/synthetic-256m --threads 2 > peers.md

DIR is a checkpoint written by `vlm synth --preset 256m --out DIR` (written first when DIR does
not exist): the 256M architecture with random weights, f32 safetensors. The Markdown report goes
to stdout, progress to stderr. Nothing here runs in CI: numbers depend on the machine and on what
else runs on it (the report gives the load average at the start).

Runtimes (table columns), each in a process of its own so that its peak RSS is its own:
- transformers f32: SmolVLMForConditionalGeneration, f32 weights and activations, eager
  attention, `torch.set_num_threads(N)`.
- transformers bf16: the same model after `model.to(torch.bfloat16)` (weights and activations
  bf16, eager attention); PyTorch's CPU matmuls go through oneDNN, which uses AVX-512 BF16 or AMX
  where the CPU has them.
- llama.cpp Q8_0 / Q4_0: the GGUF pair that llama.cpp's own convert_hf_to_gguf.py writes for
  DIR (text model as f32, then `llama-quantize` to Q8_0 and to Q4_0 with its default per-tensor
  choices; `--mmproj` as F16, so the vision tower runs on F16 weights in both columns where
  transformers f32 and vlm keep f32 weights). `llama-bench` times pp512 and tg64,
  `llama-mtmd-cli` the image. Threads `-t N`; flash attention, batch sizes and KV cache type are llama.cpp's
  defaults (llama-bench reports them). The build (flags and source) is given in the report.
- vlm: `vlm --threads N bench -m DIR -o json` with the default flags (f32, `--precision exact`:
  transformers' f32 arithmetic); `vlm fast` adds `--precision fast` (vision tower and prompt
  pass on BF16 dot products with f32 sums where the CPU has AVX-512 BF16); `vlm fast + int8
  vision` also adds `--vision-compute int8` (vision matrices as int8 with per-row weight scales
  and per-token activation scales on VNNI). Decoding is f32 in all three. `vlm Q8_0 fast` and
  `vlm Q4_0 fast` quantize the same checkpoint at load (`--quant`, vision tower and
  embeddings at Q8_0 in both) and add `--precision fast`, so their decode runs on 8-bit
  activations as llama.cpp's does: the like-for-like columns for llama.cpp's decode rows.

What each row times in each runtime (mean ± standard deviation over the repetitions, after one
untimed warm-up; llama-bench warms up by itself):
- vision per view: the vision tower + connector over every view of a 1920×1080 screenshot
  (13 views of 512 px: 12 tiles and the global image), divided by the number of views;
  preprocessing excluded. transformers: `model.model.get_image_features` on the processor's
  pixel values; vlm: its `enc` test; llama.cpp: the sum of the "mtmd batch encoding done in …
  ms" lines that llama-mtmd-cli prints for the image's views (one batch per view, since the
  row/column tokens between views split batches; whole milliseconds), divided by the number of
  views it encoded.
- TTFT: image file + prompt → first token: image decode, preprocessing, chat template,
  tokenization, vision, prefill of the whole prompt. transformers: processor +
  `generate(max_new_tokens=1)`; vlm: its `ttft` test; llama.cpp: llama-mtmd-cli in chat mode
  with `-n 0`, from writing `/image FILE` and the prompt on its stdin to its next prompt (the
  image is loaded and the turn evaluated up to the last position's logits; no token is
  sampled, which the others do: an argmax, well under a millisecond). Each llama.cpp turn
  runs in a fresh process, timed once the model is loaded and llama.cpp's own warm-up passes
  (text model and vision encoder) are done, since this llama-mtmd-cli cannot take a second
  image in one process; the untimed warm-up turn is a process of its own too. The prompt text
  is the same; llama.cpp formats it with its built-in `smolvlm` chat template, the others with
  the checkpoint's, so the prompt may differ by a token or two.
- prefill pp512: 512 text tokens into an empty cache, logits of the last position; tokens/s.
  llama-bench decodes random token ids in one batch that asks for the last position's logits.
- decode tg64 @ depth D: 64 single-token steps after D tokens already in the cache (the prefill
  of those D tokens is not timed); tokens/s. At depth 0, transformers and vlm prefill one token
  first, llama-bench starts from an empty cache. transformers and vlm take the greedy argmax
  each step; llama-bench computes the logits and feeds random ids without sampling.
- peak RSS: the high-water mark of resident memory of the process that ran the tests (ru_maxrss
  from wait4): for transformers, the Python worker that ran every test above (torch and
  transformers included); for vlm, `vlm bench`; for llama.cpp, the larger of its llama-bench
  and llama-mtmd-cli processes (model files are mmapped; pages read count as resident).
- CPU taken by other processes meanwhile: from /proc/stat, the CPU time that anything but
  this script and its children used while the column ran (hypervisor steal included), as a
  share of all CPUs. Well above 0, that column's numbers are too low: a benchmark run at low
  priority gets almost nothing while another runs. `--idle-wait S` waits up to S seconds
  before each column for the machine to go quiet.

Python packages: the transformers workers and llama.cpp's converter run under `--python`, by
default target/peers-venv, created and filled from benches/requirements-peers.txt when missing
(it pins the versions of scripts/requirements.txt, plus cmake for the llama.cpp build):

    python3 -m venv target/peers-venv && target/peers-venv/bin/pip install -r benches/requirements-peers.txt

llama.cpp: `--llama-cpp DIR` names a source tree (with convert_hf_to_gguf.py and gguf-py) whose
build directory (DIR/build/bin, DIR/bin or DIR) holds llama-bench, llama-quantize and
llama-mtmd-cli, built there first when missing. Without it the script builds llama.cpp once into
target/peers/llama.cpp (reused afterwards) from a git clone, or where that fails from the
llama.cpp source vendored in the llama-cpp-python sdist (vendor/llama.cpp). When llama.cpp cannot
be had or built, the report says why and leaves its columns out.
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import os
import platform
import re
import resource
import shutil
import statistics
import struct
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
REQUIREMENTS = REPO / "benches" / "requirements-peers.txt"
CPU_FLAGS = ("avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_int8", "amx_tile")
RUNTIMES = ("hf-f32", "hf-bf16", "llama.cpp", "vlm", "vlm-fast", "vlm-int8", "vlm-q8_0", "vlm-q4_0")
VLM_CONFIGS = {
    "vlm": ("vlm", []),
    "vlm-fast": ("vlm fast", ["--precision", "fast"]),
    "vlm-int8": ("vlm fast + int8 vision", ["--precision", "fast", "--vision-compute", "int8"]),
    "vlm-q8_0": ("vlm Q8_0 fast", ["--quant", "q8_0", "--precision", "fast"]),
    "vlm-q4_0": ("vlm Q4_0 fast", ["--quant", "q4_0", "--precision", "fast"]),
}
LLAMA_GIT = "https://github.com/ggml-org/llama.cpp"
# The sdist vendors a llama.cpp tree with tools/mtmd and SmolVLM conversion; pinned so that
# two runs of the script build the same llama.cpp.
LLAMA_SDIST = "llama-cpp-python==0.3.36"
LLAMA_BINARIES = ("llama-bench", "llama-quantize", "llama-mtmd-cli")
# Default CPU backend (GGML_NATIVE: -march=native); everything but the three tools is off so
# the build takes minutes, and nothing needs libcurl or OpenSSL.
LLAMA_CMAKE_FLAGS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DGGML_NATIVE=ON",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_SERVER=OFF",
    "-DLLAMA_BUILD_APP=OFF",
    "-DLLAMA_CURL=OFF",
    "-DLLAMA_OPENSSL=OFF",
)
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def log(*a) -> None:
    print(*a, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Shared helpers


def physical_cores() -> int:
    """Physical cores this process may use (what `vlm` defaults to)."""
    allowed = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    cores = set()
    try:
        phys = core = None
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("physical id"):
                phys = line.split(":")[1].strip()
            elif line.startswith("core id"):
                core = line.split(":")[1].strip()
            elif not line.strip() and core is not None:
                cores.add((phys, core))
                phys = core = None
        if core is not None:
            cores.add((phys, core))
    except OSError:
        pass
    return max(1, min(len(cores) or allowed, allowed))


def machine() -> tuple[str, dict[str, bool]]:
    """CPU model name and which of CPU_FLAGS the kernel reports."""
    name, flags = platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and name == platform.machine():
                name = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    return name, {f: f in flags for f in CPU_FLAGS}


def screenshot(path: Path) -> None:
    """The picture `vlm bench` uses by default (cli/bench.rs `synthetic_screenshot`), as PNG.

    Written with zlib alone so that the driving process needs no third-party package."""
    w, h = 1920, 1080
    header_px, text_px, card_px, bg_px = b"\x1e\x28\x5a", b"\x14\x14\x14", b"\xe6\xec\xfa", b"\xfa\xfa\xfc"
    rows: dict[tuple[bool, bool, bool], bytes] = {}
    raw = bytearray()
    for y in range(h):
        key = (y < 80, (y % 24 < 10) and (y // 24) % 3 == 0, (y // 200) % 2 == 1)
        if key not in rows:
            header, text_row, card_row = key
            px = bytearray()
            for x in range(w):
                if header:
                    px += header_px
                elif text_row and x % 12 < 7:
                    px += text_px
                elif card_row and (x // 320) % 2 == 0:
                    px += card_px
                else:
                    px += bg_px
            rows[key] = b"\x00" + bytes(px)
        raw += rows[key]

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(bytes(raw), 6))
        + chunk(b"IEND", b"")
    )


def stats(samples: list[float]) -> dict:
    return {
        "mean": statistics.fmean(samples),
        "stddev": statistics.stdev(samples) if len(samples) > 1 else 0.0,
        "median": statistics.median(samples),
        "samples": samples,
    }


def repeat(fn, reps: int) -> dict:
    fn()  # warm-up
    return stats([fn() for _ in range(reps)])


def text_ids(n: int, image_token: int) -> list[int]:
    """Deterministic ids below the synthetic tokenizer's 510 tokens, never the image token."""
    ids = [(i * 37 % 500) + 3 for i in range(n)]
    return [i + 1 if i == image_token else i for i in ids]


@dataclass
class Proc:
    returncode: int
    stdout: str
    stderr: str
    maxrss_mib: float
    seconds: float


def run_measured(cmd: list, *, stderr_to_terminal: bool = False, env: dict | None = None, cwd=None) -> Proc:
    """Runs cmd to completion and returns its output and its own peak RSS.

    `subprocess.run` reaps the child itself and loses its rusage; wait4 keeps it, and files
    instead of pipes let the child write freely while we wait."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t = time.perf_counter()
        p = subprocess.Popen(
            [str(c) for c in cmd], stdin=subprocess.DEVNULL, stdout=out,
            stderr=None if stderr_to_terminal else err, env=env, cwd=cwd,
        )
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - t
        out.seek(0)
        err.seek(0)
        return Proc(
            p.returncode, out.read().decode(errors="replace"), err.read().decode(errors="replace"),
            usage.ru_maxrss / 1024, seconds,
        )


def tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


@dataclass
class Column:
    """One runtime: results by row key, its peak RSS, and what to say about it."""

    name: str
    results: dict = field(default_factory=dict)
    rss_mib: float | None = None
    missing: dict = field(default_factory=dict)
    others: float | None = None


class OtherLoad:
    """CPU time that anything but this script and its children took since creation, as a
    share of the machine (hypervisor steal included).

    Timings from a busy machine are worth little, and a benchmark run at low priority gets
    almost nothing while another one runs; this makes that visible in the report."""

    def __init__(self):
        self.start = self._sample()

    @staticmethod
    def _sample() -> tuple[float, float, float]:
        j = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        busy = (j[0] + j[1] + j[2] + j[5] + j[6] + (j[7] if len(j) > 7 else 0)) / os.sysconf("SC_CLK_TCK")
        ours = 0.0
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
            u = resource.getrusage(who)
            ours += u.ru_utime + u.ru_stime
        return time.monotonic(), busy, ours

    def share(self) -> float:
        (t0, b0, o0), (t1, b1, o1) = self.start, self._sample()
        return max(0.0, (b1 - b0) - (o1 - o0)) / max(1e-9, (t1 - t0) * (os.cpu_count() or 1))


def wait_for_idle(limit_s: float, threshold: float = 0.1, window_s: float = 5.0) -> None:
    """Waits, up to limit_s, for a window in which other processes use under threshold of the
    machine."""
    if limit_s <= 0:
        return
    deadline = time.monotonic() + limit_s
    while True:
        load = OtherLoad()
        time.sleep(window_s)
        share = load.share()
        if share < threshold:
            return
        if time.monotonic() >= deadline:
            log(f"the machine is still busy ({share:.0%} used by other processes); going on")
            return
        log(f"waiting for the machine to be idle ({share:.0%} used by other processes) …")


# --------------------------------------------------------------------------------------------
# transformers (runs in a worker process under --python)


def time_transformers(ckpt: Path, image: Path, prompt: str, threads: int, reps: int, depths: list[int], dtype: str):
    import torch
    from PIL import Image
    from transformers import AutoProcessor, SmolVLMForConditionalGeneration
    from transformers.cache_utils import DynamicCache

    torch.set_num_threads(threads)
    model = SmolVLMForConditionalGeneration.from_pretrained(
        ckpt, dtype=torch.float32, attn_implementation="eager"
    ).eval()
    if dtype == "bf16":
        model.to(torch.bfloat16)
    processor = AutoProcessor.from_pretrained(ckpt)
    image_token = model.config.image_token_id
    # transformers renamed `past_key_values` to `cache` (the old name warns until 5.40).
    cache_arg = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    messages = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}
    ]
    results = {}

    with torch.inference_mode():
        pil = Image.open(image).convert("RGB")
        text = processor.apply_chat_template(messages, add_generation_prompt=True)
        inputs = processor(text=text, images=[pil], return_tensors="pt")
        pixel_values = inputs["pixel_values"].to(model.dtype)
        pixel_mask = inputs.get("pixel_attention_mask")
        views = pixel_values.shape[1]

        def enc():
            t = time.perf_counter()
            model.model.get_image_features(pixel_values=pixel_values, pixel_attention_mask=pixel_mask)
            return (time.perf_counter() - t) * 1e3 / views

        log(f"  transformers {dtype}: vision …")
        results["enc"] = repeat(enc, reps)

        def ttft():
            t = time.perf_counter()
            img = Image.open(image).convert("RGB")
            chat = processor.apply_chat_template(messages, add_generation_prompt=True)
            batch = processor(text=chat, images=[img], return_tensors="pt")
            model.generate(**batch, max_new_tokens=1, do_sample=False)
            return (time.perf_counter() - t) * 1e3

        log(f"  transformers {dtype}: TTFT …")
        results["ttft"] = repeat(ttft, reps)
        results["prompt_tokens"] = int(inputs["input_ids"].shape[1])
        results["views"] = int(views)

        pp_ids = torch.tensor([text_ids(512, image_token)])

        def pp512():
            t = time.perf_counter()
            model(input_ids=pp_ids, use_cache=True, logits_to_keep=1, **{cache_arg: DynamicCache()})
            return 512 / (time.perf_counter() - t)

        log(f"  transformers {dtype}: pp512 …")
        results["pp512"] = repeat(pp512, reps)

        for depth in depths:
            def tg(depth=depth):
                cache = DynamicCache()
                prompt_ids = torch.tensor([text_ids(max(depth, 1), image_token)])
                out = model(input_ids=prompt_ids, use_cache=True, logits_to_keep=1, **{cache_arg: cache})
                nxt = out.logits[:, -1].argmax(-1, keepdim=True)
                t = time.perf_counter()
                for _ in range(64):
                    out = model(input_ids=nxt, use_cache=True, **{cache_arg: cache})
                    nxt = out.logits[:, -1].argmax(-1, keepdim=True)
                return 64 / (time.perf_counter() - t)

            log(f"  transformers {dtype}: tg64 @ d{depth} …")
            results[f"tg64@{depth}"] = repeat(tg, reps)
    import transformers

    results["versions"] = f"transformers {transformers.__version__}, torch {torch.__version__}"
    results["isa"] = torch.backends.cpu.get_cpu_capability()
    try:
        results["onednn_bf16"] = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        results["onednn_bf16"] = None
    return results


def worker_main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dtype", choices=("f32", "bf16"), required=True)
    ap.add_argument("--ckpt", type=Path, required=True)
    ap.add_argument("--image", type=Path, required=True)
    ap.add_argument("--prompt", required=True)
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--reps", type=int, required=True)
    ap.add_argument("--depths", required=True)
    a = ap.parse_args(argv)
    depths = [int(d) for d in a.depths.split(",") if d]
    res = time_transformers(a.ckpt, a.image, a.prompt, a.threads, a.reps, depths, a.dtype)
    print(json.dumps(res))
    return 0


def run_transformers(py: str, dtype: str, ckpt: Path, image: Path, args, depths: list[int]) -> tuple[Column, dict]:
    col = Column(f"transformers {dtype}")
    cmd = [py, Path(__file__).resolve(), "--worker", "--dtype", dtype, "--ckpt", ckpt, "--image", image,
           "--prompt", args.prompt, "--threads", args.threads, "--reps", args.repetitions,
           "--depths", ",".join(map(str, depths))]
    log(f"transformers {dtype} …")
    wait_for_idle(args.idle_wait)
    load = OtherLoad()
    p = run_measured(cmd, stderr_to_terminal=True)
    col.others = load.share()
    if p.returncode != 0:
        raise RuntimeError(f"the transformers worker exited with {p.returncode}")
    res = json.loads(p.stdout.strip().splitlines()[-1])
    col.results = {k: v for k, v in res.items() if isinstance(v, dict)}
    col.rss_mib = p.maxrss_mib
    return col, res


# --------------------------------------------------------------------------------------------
# vlm


def run_vlm(vlm: Path, key: str, ckpt: Path, image: Path, args, depths: list[int]) -> tuple[Column, dict]:
    name, flags = VLM_CONFIGS[key]
    cmd = [
        vlm, "--threads", args.threads, "bench", "--model", ckpt, *flags,
        "-t", "enc,ttft,pp512,tg64", "-d", ",".join(map(str, depths)),
        "-r", args.repetitions, "-o", "json", "--image", image, "--prompt", args.prompt,
    ]
    log(f"{name}: {' '.join(map(str, cmd))}")
    wait_for_idle(args.idle_wait)
    load = OtherLoad()
    p = run_measured(cmd, stderr_to_terminal=True)
    others = load.share()
    if p.returncode != 0:
        raise RuntimeError(f"vlm bench exited with {p.returncode}")
    report = json.loads(p.stdout)
    by_name = {r["test"]: r for r in report["results"]}
    col = Column(name, rss_mib=p.maxrss_mib, others=others)
    col.results = {"enc": by_name["enc"], "ttft": by_name["ttft"], "pp512": by_name["pp512"]}
    for d in depths:
        col.results[f"tg64@{d}"] = by_name["tg64" if d == 0 else f"tg64 @ d{d}"]
    return col, report["environment"]


# --------------------------------------------------------------------------------------------
# llama.cpp: source, build, conversion, timings


class Unavailable(Exception):
    """llama.cpp cannot be had or run here; the message says why."""


@dataclass
class LlamaCpp:
    src: Path
    bin: Path
    origin: str
    build_flags: str
    version: str = "unknown version"

    def exe(self, name: str) -> Path:
        return self.bin / name


def find_binaries(root: Path) -> Path | None:
    for d in (root / "build" / "bin", root / "bin", root):
        if all((d / b).is_file() for b in LLAMA_BINARIES):
            return d
    return None


def find_source(root: Path) -> Path | None:
    for d in (root, root / "src", root.parent):
        if (d / "convert_hf_to_gguf.py").is_file() and (d / "gguf-py").is_dir():
            return d
    return None


def cmake_exe(py: str) -> str:
    venv_cmake = Path(py).parent / "cmake"
    found = shutil.which("cmake") or (str(venv_cmake) if venv_cmake.is_file() else None)
    if not found:
        raise Unavailable(f"no cmake on PATH nor beside {py} (pip install cmake)")
    return found


def build_flags(build: Path) -> str:
    """The cache entries that decide what the CPU backend was compiled for."""
    cache = build / "CMakeCache.txt"
    if not cache.is_file():
        return "unknown (no CMakeCache.txt)"
    keep = re.compile(r"^(CMAKE_BUILD_TYPE|CMAKE_C_COMPILER|GGML_NATIVE|GGML_AVX\w*|GGML_AMX\w*|GGML_F16C|GGML_FMA|"
                      r"GGML_OPENMP|GGML_CPU_REPACK|GGML_BLAS|BUILD_SHARED_LIBS|GGML_CPU_ALL_VARIANTS):\w+=(.*)$")
    found = {}
    for line in cache.read_text(errors="replace").splitlines():
        m = keep.match(line)
        if m:
            value = m.group(2)
            if m.group(1) == "CMAKE_C_COMPILER":
                value = Path(value).name
            found[m.group(1)] = value
    # Instruction-set switches left OFF say nothing beside GGML_NATIVE; those set ON do.
    isa = ("GGML_AVX", "GGML_AMX", "GGML_F16C", "GGML_FMA")
    shown = {k: v for k, v in found.items() if not (k.startswith(isa) and v == "OFF")}
    text = " ".join(f"{k}={v}" for k, v in sorted(shown.items()))
    # What the CPU backend was compiled with in the end (-march=native, or the -m flags of
    # each variant), as make records it.
    for flags_make in sorted(build.glob("ggml/src/CMakeFiles/ggml-cpu*.dir/flags.make")):
        words = []
        for line in flags_make.read_text(errors="replace").splitlines():
            if line.startswith(("C_FLAGS", "C_DEFINES")):
                words += [w for w in line.split("=", 1)[1].split()
                          if w.startswith(("-O", "-march", "-mtune", "-mavx", "-mamx", "-mf16c", "-mfma", "-fopenmp", "-DGGML_USE_"))]
        text += f"; {flags_make.parent.name.removesuffix('.dir')}: {' '.join(words)}"
    return text


def build_llama(src: Path, build: Path, py: str, label: str = "unknown") -> Path:
    cmake = cmake_exe(py)
    flags = list(LLAMA_CMAKE_FLAGS)
    if not (src / ".git").exists():
        # Its build info would otherwise come from whatever git repository encloses the tree
        # (this one, under target/).
        flags += [f"-DLLAMA_BUILD_COMMIT={label}", "-DLLAMA_BUILD_NUMBER=0"]
    log(f"llama.cpp: configuring {build} …")
    p = subprocess.run([cmake, "-S", src, "-B", build, *flags], capture_output=True, text=True)
    if p.returncode != 0:
        raise Unavailable(f"cmake configure failed:\n{tail(p.stdout + p.stderr)}")
    log(f"llama.cpp: building {', '.join(LLAMA_BINARIES)} (several minutes) …")
    p = subprocess.run(
        [cmake, "--build", build, "--config", "Release", "-j", str(os.cpu_count() or 2), "--target", *LLAMA_BINARIES],
        capture_output=True, text=True,
    )
    if p.returncode != 0:
        raise Unavailable(f"the llama.cpp build failed:\n{tail(p.stdout + p.stderr)}")
    found = find_binaries(build)
    if not found:
        raise Unavailable(f"the build finished without {', '.join(LLAMA_BINARIES)} under {build}")
    return found


def fetch_source(dest: Path, py: str) -> tuple[str, str]:
    """Puts a llama.cpp source tree at dest; returns where it came from, long and short."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    reasons = []
    if shutil.which("git"):
        tmp = dest.with_name(dest.name + ".clone")
        shutil.rmtree(tmp, ignore_errors=True)
        env = dict(os.environ, GIT_TERMINAL_PROMPT="0")
        try:
            p = subprocess.run(["git", "clone", "--depth", "1", LLAMA_GIT, str(tmp)],
                               capture_output=True, text=True, timeout=300, env=env)
            if p.returncode == 0:
                commit = subprocess.run(["git", "-C", str(tmp), "rev-parse", "--short", "HEAD"],
                                        capture_output=True, text=True).stdout.strip()
                tmp.rename(dest)
                return f"git clone of {LLAMA_GIT} at {commit}", commit
            reasons.append(f"git clone failed: {tail(p.stderr, 2)}")
        except subprocess.TimeoutExpired:
            reasons.append("git clone timed out")
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        reasons.append("no git")
    log(f"llama.cpp: {'; '.join(reasons)}; trying the {LLAMA_SDIST} sdist …")
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        p = subprocess.run(
            [py, "-m", "pip", "download", "--no-deps", "--no-binary", LLAMA_SDIST.split("==")[0], "-d", tmp, LLAMA_SDIST],
            capture_output=True, text=True,
        )
        sdists = list(Path(tmp).glob("*.tar.gz"))
        if p.returncode != 0 or not sdists:
            reasons.append(f"pip download {LLAMA_SDIST} failed: {tail(p.stdout + p.stderr, 3)}")
            raise Unavailable("; ".join(reasons))
        sdist = sdists[0]
        digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
        with tarfile.open(sdist) as tar:
            members = [m for m in tar.getmembers() if "/vendor/llama.cpp/" in m.name + "/"]
            try:
                tar.extractall(tmp, members=members, filter="data")
            except TypeError:  # Python before 3.11.4 has no extraction filters
                tar.extractall(tmp, members=members)
        vendored = next(Path(tmp).glob("*/vendor/llama.cpp"), None)
        if vendored is None or not (vendored / "tools" / "mtmd").is_dir() or not (vendored / "convert_hf_to_gguf.py").is_file():
            raise Unavailable(f"{sdist.name} has no vendor/llama.cpp with tools/mtmd and convert_hf_to_gguf.py")
        # A submodule's gitfile pointing into llama-cpp-python's repository, which is not here.
        if (vendored / ".git").is_file():
            (vendored / ".git").unlink()
        shutil.move(str(vendored), dest)
        return (f"vendor/llama.cpp of the {sdist.name} sdist (sha256 {digest[:16]}…)",
                sdist.name.removesuffix(".tar.gz") + "-vendor")


def obtain_llama(args, py: str) -> LlamaCpp:
    if args.llama_cpp:
        root = args.llama_cpp.resolve()
        src = find_source(root)
        if src is None:
            raise Unavailable(f"{root} holds no llama.cpp source tree (convert_hf_to_gguf.py, gguf-py)")
        binaries = find_binaries(root) or find_binaries(src) or build_llama(src, src / "build", py)
        return LlamaCpp(src, binaries, f"{root} (given)", build_flags(binaries.parent))

    cache = args.cache / "llama.cpp"
    src, build = cache / "src", cache / "build"
    origin_file = cache / "ORIGIN"
    binaries = find_binaries(build)
    if binaries is None:
        if not find_source(src):
            shutil.rmtree(src, ignore_errors=True)
            origin_file.parent.mkdir(parents=True, exist_ok=True)
            origin_file.write_text("\n".join(fetch_source(src, py)) + "\n")
        label = origin_file.read_text().splitlines()[1:2] if origin_file.is_file() else []
        binaries = build_llama(src, build, py, *label)
    origin = origin_file.read_text().splitlines()[0] if origin_file.is_file() else str(src)
    return LlamaCpp(src, binaries, origin, build_flags(build))


# The converter identifies BPE pre-tokenizers by hashing a test string's tokens, and the
# synthetic checkpoint's small vocabulary matches no known hash. Its pre-tokenizer (single
# digits + byte-level) is SmolLM2's, so an unknown hash is mapped to "smollm", the name that
# real SmolVLM checkpoints get.
CONVERT_SHIM = r"""
import sys
src = sys.argv.pop(1)
sys.path.insert(0, src)
import convert_hf_to_gguf as conv
try:
    import conversion
    text_model = getattr(conversion, "TextModel", None) or conversion.base.TextModel
except ImportError:
    text_model = conv.TextModel
original = text_model.get_vocab_base_pre
def get_vocab_base_pre(self, tokenizer):
    try:
        return original(self, tokenizer)
    except NotImplementedError:
        return "smollm"
text_model.get_vocab_base_pre = get_vocab_base_pre
sys.argv[0] = conv.__file__
conv.main()
"""


def convert(llama: LlamaCpp, ckpt: Path, py: str, out: Path, quants: list[str]) -> dict[str, Path]:
    """GGUF files for ckpt: text-<QUANT>.gguf for each quant and mmproj-f16.gguf, cached."""
    out.mkdir(parents=True, exist_ok=True)
    text_f32, mmproj = out / "text-f32.gguf", out / "mmproj-f16.gguf"
    for path, extra in ((text_f32, ["--outtype", "f32"]), (mmproj, ["--mmproj", "--outtype", "f16"])):
        if path.is_file():
            continue
        log(f"llama.cpp: convert_hf_to_gguf.py {' '.join(extra)} → {path.name} …")
        tmp = path.with_suffix(".tmp")
        p = subprocess.run([py, "-c", CONVERT_SHIM, llama.src, ckpt, *extra, "--outfile", tmp],
                           capture_output=True, text=True)
        if p.returncode != 0 or not tmp.is_file():
            raise Unavailable(f"convert_hf_to_gguf.py {' '.join(extra)} failed:\n{tail(p.stdout + p.stderr)}")
        tmp.rename(path)
    files = {"mmproj": mmproj}
    for q in quants:
        path = out / f"text-{q}.gguf"
        if not path.is_file():
            log(f"llama.cpp: llama-quantize {q} …")
            tmp = path.with_suffix(".tmp")
            p = subprocess.run([llama.exe("llama-quantize"), text_f32, tmp, q], capture_output=True, text=True)
            if p.returncode != 0:
                raise Unavailable(f"llama-quantize {q} failed:\n{tail(p.stdout + p.stderr)}")
            tmp.rename(path)
        files[q] = path
    return files


def checkpoint_key(ckpt: Path) -> str:
    h = hashlib.sha256(str(ckpt.resolve()).encode())
    for f in sorted(ckpt.iterdir()):
        st = f.stat()
        h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:12]


def llama_bench(llama: LlamaCpp, model: Path, threads: int, reps: int, depths: list[int]) -> tuple[dict, float, dict]:
    """pp512 at depth 0 and tg64 at each depth, as llama-bench measures them."""
    help_text = subprocess.run([llama.exe("llama-bench"), "--help"], capture_output=True, text=True)
    has_depth = "--n-depth" in help_text.stdout + help_text.stderr
    results, rss, info = {}, 0.0, {}
    runs = [(["-p", "512", "-n", "0"], None)]
    tg_depths = depths if has_depth else [d for d in depths if d == 0]
    runs.append((["-p", "0", "-n", "64"] + (["-d", ",".join(map(str, tg_depths))] if has_depth else []), None))
    for flags, _ in runs:
        cmd = [llama.exe("llama-bench"), "-m", model, "-t", threads, "-r", reps, "-o", "json", *flags]
        log(f"  {' '.join(map(str, cmd))}")
        p = run_measured(cmd)
        if p.returncode != 0:
            raise Unavailable(f"llama-bench failed:\n{tail(p.stderr)}")
        rss = max(rss, p.maxrss_mib)
        for r in json.loads(p.stdout):
            s = {"mean": r["avg_ts"], "stddev": r["stddev_ts"], "samples": r.get("samples_ts", [])}
            if r["n_prompt"] and not r["n_gen"]:
                results[f"pp{r['n_prompt']}"] = s
            elif r["n_gen"]:
                results[f"tg{r['n_gen']}@{r.get('n_depth', 0)}"] = s
            info = {k: r.get(k) for k in ("build_commit", "build_number", "cpu_info", "backends", "type_k",
                                          "type_v", "flash_attn", "n_batch", "n_ubatch", "model_type")}
    missing = {f"tg64@{d}": "this llama-bench has no -d/--n-depth" for d in depths if d not in tg_depths}
    info["missing"] = missing
    return results, rss, info


class ChatProcess:
    """llama-mtmd-cli in chat mode; turn() returns the wall time of one turn on its stdin."""

    PROMPT = "\n> "

    def __init__(self, cmd: list, stderr_file):
        self.p = subprocess.Popen([str(c) for c in cmd], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=stderr_file)
        self.buf = b""
        self.prompts = 0
        self.cond = threading.Condition()
        self.stamps: list[float] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        fd = self.p.stdout.fileno()
        while True:
            chunk = os.read(fd, 65536)
            now = time.perf_counter()
            with self.cond:
                if not chunk:
                    self.prompts = -1
                    self.cond.notify_all()
                    return
                self.buf += chunk
                count = self.buf.count(self.PROMPT.encode())
                while len(self.stamps) < count:
                    self.stamps.append(now)
                self.prompts = count
                self.cond.notify_all()

    def wait_prompts(self, n: int, timeout: float = 1800) -> float:
        with self.cond:
            if not self.cond.wait_for(lambda: self.prompts >= n or self.prompts < 0, timeout):
                raise Unavailable("llama-mtmd-cli stopped answering")
            if self.prompts < 0:
                raise Unavailable("llama-mtmd-cli exited during the run")
            return self.stamps[n - 1]

    def send(self, text: str) -> float:
        t = time.perf_counter()
        self.p.stdin.write(text.encode())
        self.p.stdin.flush()
        return t

    def close(self):
        try:
            self.p.stdin.write(b"/exit\n")
            self.p.stdin.close()
        except OSError:
            pass
        _, status, usage = os.wait4(self.p.pid, 0)
        self.p.returncode = os.waitstatus_to_exitcode(status)
        self.reader.join(5)
        return usage.ru_maxrss / 1024


def mtmd_turn(cmd: list, image: Path, prompt: str) -> tuple[float, float, int, float]:
    """One chat turn in a fresh llama-mtmd-cli: (turn ms, vision ms, views, peak RSS MiB)."""
    with tempfile.TemporaryFile() as err:
        chat = ChatProcess(cmd, err)
        failure = None
        try:
            chat.wait_prompts(1)  # loaded and warmed up
            t0 = chat.send(f"/image {image}\n{prompt}\n")
            # One prompt after the /image line, one after the answer.
            turn_ms = (chat.wait_prompts(3) - t0) * 1e3
        except (Unavailable, OSError) as e:
            failure = e
        finally:
            rss = chat.close()
        err.seek(0)
        log_text = err.read().decode(errors="replace")
    if failure is not None:
        raise Unavailable(f"{failure} (exit status {chat.p.returncode}); its stdout ends:\n"
                          f"{tail(chat.buf.decode(errors='replace'), 8)}\nand its log:\n{tail(log_text)}")
    # mtmd encodes consecutive slices as one batch; idefics3's row/column text between the
    # slices makes that one batch per view.
    batches = [(int(n), float(ms)) for n, ms in re.findall(
        r"encoding mtmd batch, n_chunks = (\d+).*?mtmd batch encoding done in (\d+(?:\.\d+)?) ms", log_text, re.S)]
    if not batches:
        raise Unavailable(f"no vision timings in llama-mtmd-cli's log:\n{tail(log_text)}")
    return turn_ms, sum(ms for _, ms in batches), sum(n for n, _ in batches), rss


def llama_mtmd(llama: LlamaCpp, text: Path, mmproj: Path, image: Path, prompt: str, threads: int, reps: int):
    """Vision per view and TTFT from llama-mtmd-cli: a warm-up turn, then reps timed turns.

    Each turn runs in a process of its own: this llama-mtmd-cli keeps the previous turn's
    media batch, whose chunks are freed, and reads it again on the next image (an abort on
    "invalid chunk type", or worse)."""
    cmd = [llama.exe("llama-mtmd-cli"), "-m", text, "--mmproj", mmproj, "-t", threads, "-n", "0",
           "--temp", "0", "-c", "4096", "--chat-template", "smolvlm"]
    log(f"  {' '.join(map(str, cmd))} (one turn each, {reps + 1} times)")
    turns = [mtmd_turn(cmd, image, prompt) for _ in range(reps + 1)][1:]
    views = {v for _, _, v, _ in turns}
    if len(views) != 1:
        raise Unavailable(f"llama-mtmd-cli encoded different numbers of views: {sorted(views)}")
    return {"encode_ms": [enc for _, enc, _, _ in turns], "ttft": stats([t for t, _, _, _ in turns]),
            "views": views.pop(), "rss": max(r for _, _, _, r in turns)}


def run_llama(args, py: str, ckpt: Path, image: Path, depths: list[int], skipped: list[str]):
    """The llama.cpp columns; a quantization that fails is left out, noted in skipped."""
    llama = obtain_llama(args, py)
    version = subprocess.run([llama.exe("llama-mtmd-cli"), "--version"], capture_output=True, text=True)
    llama.version = next((line.split(":", 1)[1].strip() for line in (version.stdout + version.stderr).splitlines()
                          if line.startswith("version:")), "unknown version")
    log(f"llama.cpp {llama.version}: {llama.origin}; binaries in {llama.bin}")
    files = convert(llama, ckpt, py, args.cache / "gguf" / checkpoint_key(ckpt), args.quants)
    columns, info = [], {}
    for q in args.quants:
        log(f"llama.cpp {q} …")
        col = Column(f"llama.cpp {q}")
        wait_for_idle(args.idle_wait)
        load = OtherLoad()
        try:
            res, rss, bench_info = llama_bench(llama, files[q], args.threads, args.repetitions, depths)
            m = llama_mtmd(llama, files[q], files["mmproj"], image, args.prompt, args.threads, args.repetitions)
        except (Unavailable, OSError, ValueError, KeyError) as e:
            skipped.append(f"llama.cpp {q}: {e}")
            log(f"llama.cpp {q} left out: {e}")
            continue
        col.results.update(res)
        col.missing.update(bench_info.pop("missing"))
        col.results["enc"] = stats([ms / m["views"] for ms in m["encode_ms"]])
        col.results["ttft"] = m["ttft"]
        col.rss_mib = max(rss, m["rss"])
        col.others = load.share()
        columns.append(col)
        info = {"bench": bench_info, "views": m["views"]}
    return columns, llama, info


# --------------------------------------------------------------------------------------------
# The venv for transformers and the converter


def peers_python(args) -> str:
    if args.python:
        return str(args.python)
    venv = REPO / "target" / "peers-venv"
    py = venv / "bin" / "python"
    if not py.is_file():
        log(f"creating {venv} …")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    probe = "import torch, torchvision, transformers, PIL, safetensors, gguf, numpy, sentencepiece"
    if subprocess.run([py, "-c", probe], capture_output=True).returncode != 0:
        # CPU-only torch wheels are a tenth of the size of the default ones, where their index
        # can be reached; the remaining pins come from the default index either way.
        try:
            import urllib.request

            urllib.request.urlopen(TORCH_CPU_INDEX + "/torch/", timeout=10)
            pins = [l.strip() for l in (REPO / "scripts" / "requirements.txt").read_text().splitlines()
                    if l.startswith(("torch==", "torchvision=="))]
            log(f"installing {' '.join(pins)} from {TORCH_CPU_INDEX} …")
            subprocess.run([py, "-m", "pip", "install", "--index-url", TORCH_CPU_INDEX, *pins], check=True)
        except Exception as e:  # noqa: BLE001 - any failure falls back to the default index
            log(f"CPU wheel index not used ({e.__class__.__name__}); torch comes from the default index")
        log(f"installing {REQUIREMENTS.relative_to(REPO)} into {venv} …")
        subprocess.run([py, "-m", "pip", "install", "-r", str(REQUIREMENTS)], check=True)
    return str(py)


# --------------------------------------------------------------------------------------------
# Report


def fmt(r: dict, digits: int) -> str:
    return f"{r['mean']:.{digits}f} ± {r['stddev']:.{digits}f}"


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        return worker_main(sys.argv[2:])

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir", type=Path, help="checkpoint written by `vlm synth` (written first if missing)")
    ap.add_argument("--preset", default="256m", help="preset for `vlm synth` when DIR does not exist")
    ap.add_argument("--vlm", type=Path, default=REPO / "target" / "release" / "vlm", help="the vlm binary")
    ap.add_argument("--threads", type=int, default=physical_cores(), help="threads for every runtime (default: physical cores)")
    ap.add_argument("-r", "--repetitions", type=int, default=2, help="timed repetitions per test, after a warm-up")
    ap.add_argument("-d", "--depths", default="0,900", help="context depths for tg64, comma-separated")
    ap.add_argument("--prompt", default="Describe this screenshot.")
    ap.add_argument("--runtimes", default=",".join(RUNTIMES),
                    help=f"columns to run, comma-separated, from {','.join(RUNTIMES)} (default: all)")
    ap.add_argument("--quants", default="Q8_0,Q4_0", help="llama-quantize types for the llama.cpp columns")
    ap.add_argument("--llama-cpp", type=Path, help="llama.cpp source tree with its build (built there when missing)")
    ap.add_argument("--python", type=Path, help="Python with the packages of benches/requirements-peers.txt (default: target/peers-venv, made when missing)")
    ap.add_argument("--idle-wait", type=float, default=0, metavar="SECONDS",
                    help="before each column, wait up to this long for other processes to leave the CPUs (default: 0)")
    ap.add_argument("--cache", type=Path, default=REPO / "target" / "peers", help="where llama.cpp is built and GGUF files are kept")
    args = ap.parse_args()
    args.quants = [q.strip() for q in args.quants.split(",") if q.strip()]
    args.cache = args.cache.resolve()
    runtimes = [r.strip() for r in args.runtimes.split(",") if r.strip()]
    unknown = [r for r in runtimes if r not in RUNTIMES]
    if unknown:
        ap.error(f"unknown runtime(s) {', '.join(unknown)}; choose from {', '.join(RUNTIMES)}")
    started = time.perf_counter()
    load = os.getloadavg()

    if not args.vlm.is_file():
        log(f"error: {args.vlm} does not exist; build it with `cargo build --release` or pass --vlm")
        return 2
    if not args.dir.exists():
        subprocess.run([str(args.vlm), "synth", "--preset", args.preset, "--out", str(args.dir)], check=True)
    depths = [int(d) for d in args.depths.split(",") if d.strip()]
    py = peers_python(args) if {"hf-f32", "hf-bf16", "llama.cpp"} & set(runtimes) else sys.executable

    columns: list[Column] = []
    notes: list[str] = []
    skipped: list[str] = []
    hf_info: dict = {}
    vlm_envs: dict[str, dict] = {}
    llama = llama_info = None

    with tempfile.TemporaryDirectory() as tmp:
        image = Path(tmp) / "screenshot-1920x1080.png"
        screenshot(image)
        # llama.cpp first: its build is the slow, fallible step, and a failure there should
        # be known before an hour of timing.
        llama_columns = []
        if "llama.cpp" in runtimes:
            try:
                llama_columns, llama, llama_info = run_llama(args, py, args.dir, image, depths, skipped)
            except (Unavailable, OSError, subprocess.SubprocessError, ValueError, KeyError) as e:
                skipped.append(f"llama.cpp: {e}")
                log(f"llama.cpp left out: {e}")
        for dtype in ("f32", "bf16"):
            if f"hf-{dtype}" in runtimes:
                try:
                    col, hf_info[dtype] = run_transformers(py, dtype, args.dir, image, args, depths)
                    columns.append(col)
                except (RuntimeError, OSError, ValueError) as e:
                    skipped.append(f"transformers {dtype}: {e}")
        columns += llama_columns
        for key in VLM_CONFIGS:
            if key in runtimes:
                try:
                    col, vlm_envs[key] = run_vlm(args.vlm, key, args.dir, image, args, depths)
                    columns.append(col)
                except (RuntimeError, OSError, ValueError) as e:
                    skipped.append(f"{VLM_CONFIGS[key][0]}: {e}")

    elapsed = time.perf_counter() - started
    cpu, flags = machine()
    hf_any = next(iter(hf_info.values()), None)
    views = hf_any["views"] if hf_any else (llama_info or {}).get("views")
    rows = [
        ("vision per 512 px view" + (f" ({views} views)" if views else ""), "enc", "ms/view", False, 1),
        ("TTFT, 1920×1080 screenshot" + (f" ({hf_any['prompt_tokens']} prompt tokens in transformers)" if hf_any else ""),
         "ttft", "ms", False, 0),
        ("prefill pp512", "pp512", "tok/s", True, 1),
    ] + [(f"decode tg64 @ depth {d}", f"tg64@{d}", "tok/s", True, 1) for d in depths]

    out = []
    weights = sum(f.stat().st_size for f in args.dir.glob("*.safetensors")) / 2**20
    out.append(f"## SmolVLM runtimes on {cpu}, {args.threads} threads")
    out.append("")
    command = " ".join(["python3", "benches/compare_peers.py", *sys.argv[1:]])
    out.append(f"- command: `{command}`")
    out.append(f"- CPU: {cpu}; flags: " + ", ".join(f"{f} {'yes' if v else 'no'}" for f, v in flags.items())
               + f"; {os.cpu_count()} logical CPUs; load average at start {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}")
    out.append(f"- model: `{args.dir.name}`, a checkpoint of random weights from `vlm synth` ({weights:.0f} MiB of f32 "
               f"safetensors); the same 1920×1080 screenshot and prompt for all; {args.repetitions} timed "
               f"repetition(s) after a warm-up; the run took {elapsed / 60:.0f} min")
    for dtype, info in hf_info.items():
        out.append(f"- transformers {dtype}: {info['versions']}, eager attention, torch CPU capability {info['isa']}, "
                   f"oneDNN bf16 supported: {info.get('onednn_bf16')}")
    if llama is not None and llama_columns:
        b = llama_info.get("bench", {})
        out.append(f"- llama.cpp {llama.version}: {llama.origin}; "
                   + (f"configured with `cmake {' '.join(LLAMA_CMAKE_FLAGS)}`" if not args.llama_cpp else "build given"))
        out.append(f"  - build: {llama.build_flags}")
        out.append(f"  - llama-bench defaults: flash_attn {b.get('flash_attn')}, KV {b.get('type_k')}/{b.get('type_v')}, "
                   f"batch {b.get('n_batch')}/{b.get('n_ubatch')}; text model f32 → {', '.join(args.quants)} with "
                   f"llama-quantize, mmproj F16; vision views counted by llama.cpp: {llama_info.get('views')}")
    for key, env in vlm_envs.items():
        out.append(f"- {VLM_CONFIGS[key][0]}: vlm {env['build']}, {env['compute']}, kernels {env['kernels']}, "
                   f"AMX {env['amx']}, {env['threads']} threads")
    out.append("")

    if columns:
        out.append("| test | unit | " + " | ".join(c.name for c in columns) + " |")
        out.append("|---|---|" + "---:|" * len(columns))
        for label, key, unit, _, digits in rows:
            cells = [fmt(c.results[key], digits) if key in c.results else "n/a" for c in columns]
            out.append(f"| {label} | {unit} | " + " | ".join(cells) + " |")
        out.append("| peak RSS | MiB | " + " | ".join(f"{c.rss_mib:.0f}" if c.rss_mib else "n/a" for c in columns) + " |")
        out.append(f"| CPU taken by other processes meanwhile | % of {os.cpu_count()} CPUs | "
                   + " | ".join(f"{100 * c.others:.0f}" if c.others is not None else "n/a" for c in columns) + " |")
        out.append("")
        base = next((c for c in columns if c.name == "vlm"), None)
        if base is not None:
            out.append("Relative to vlm (default flags): above 1 the runtime is faster (or smaller) than vlm, below 1 slower.")
            out.append("")
            out.append("| test | " + " | ".join(c.name for c in columns) + " |")
            out.append("|---|" + "---:|" * len(columns))
            for label, key, _, higher, _ in rows:
                cells = []
                for c in columns:
                    if key not in c.results or key not in base.results:
                        cells.append("n/a")
                    else:
                        a, b = c.results[key]["mean"], base.results[key]["mean"]
                        cells.append(f"{(a / b if higher else b / a):.2f}×")
                out.append(f"| {label} | " + " | ".join(cells) + " |")
            cells = [f"{base.rss_mib / c.rss_mib:.2f}×" if c.rss_mib and base.rss_mib else "n/a" for c in columns]
            out.append("| peak RSS | " + " | ".join(cells) + " |")
            out.append("")
    for c in columns:
        for key, why in c.missing.items():
            notes.append(f"{c.name}, {key}: {why}")
    if notes or skipped:
        out.append("Not measured:")
        out.append("")
        out += [f"- {n}" for n in notes]
        out += ["- " + s.replace("\n", "\n  ") for s in skipped]
        out.append("")
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
