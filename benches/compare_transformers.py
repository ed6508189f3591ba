#!/usr/bin/env python3
"""Times transformers and vlm side by side on the same synthetic checkpoint.

    cargo build --release
    python benches/compare_transformers.py target/bench-models/synthetic-256m --threads 2

DIR is a checkpoint written by `vlm synth --preset 256m --out DIR` (written first when DIR does
not exist). transformers runs SmolVLMForConditionalGeneration in f32 with eager attention and
`torch.set_num_threads(N)`; vlm runs `vlm --threads N bench -m DIR -o json` on the same
checkpoint and the same image in the same run, after transformers. The table gives mean ±
standard deviation over the repetitions (one untimed warm-up each) and the ratio
transformers / vlm for times, vlm / transformers for rates: above 1, vlm is faster.

What each row times, in both runtimes:
- vision encoder per tile: the vision tower + connector over every view of a 1920×1080
  screenshot (13 views at 512 px), divided by the number of views. Preprocessing excluded.
- TTFT: image file + prompt → first generated token (decode, preprocess, chat template,
  tokenize, vision, prefill, first greedy token).
- prefill pp512: 512 text tokens into an empty cache, last-position logits; tokens/s.
- decode tg64 @ dD: 64 greedy single-token steps after D cached tokens (the D-token prefill is
  not timed; depth 0 still prefills one token); tokens/s.

Needs Python with torch, transformers and pillow (scripts/requirements.txt pins them). Not part
of CI: numbers depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


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


def screenshot(path: Path) -> None:
    """The picture `vlm bench` uses by default (cli/bench.rs `synthetic_screenshot`)."""
    from PIL import Image

    w, h = 1920, 1080
    img = Image.new("RGB", (w, h))
    px = img.load()
    for y in range(h):
        header = y < 80
        text_row = (y % 24 < 10) and (y // 24) % 3 == 0
        for x in range(w):
            card = (x // 320) % 2 == 0 and (y // 200) % 2 == 1
            if header:
                px[x, y] = (30, 40, 90)
            elif text_row and x % 12 < 7:
                px[x, y] = (20, 20, 20)
            elif card:
                px[x, y] = (230, 236, 250)
            else:
                px[x, y] = (250, 250, 252)
    img.save(path)


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


def time_transformers(ckpt: Path, image: Path, prompt: str, threads: int, reps: int, depths: list[int]):
    import torch
    from PIL import Image
    from transformers import AutoProcessor, SmolVLMForConditionalGeneration
    from transformers.cache_utils import DynamicCache

    torch.set_num_threads(threads)
    model = SmolVLMForConditionalGeneration.from_pretrained(
        ckpt, dtype=torch.float32, attn_implementation="eager"
    ).eval()
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
        pixel_values = inputs["pixel_values"]
        pixel_mask = inputs.get("pixel_attention_mask")
        views = pixel_values.shape[1]

        def enc():
            t = time.perf_counter()
            model.model.get_image_features(pixel_values=pixel_values, pixel_attention_mask=pixel_mask)
            return (time.perf_counter() - t) * 1e3 / views

        results["enc"] = repeat(enc, reps)

        def ttft():
            t = time.perf_counter()
            img = Image.open(image).convert("RGB")
            chat = processor.apply_chat_template(messages, add_generation_prompt=True)
            batch = processor(text=chat, images=[img], return_tensors="pt")
            model.generate(**batch, max_new_tokens=1, do_sample=False)
            return (time.perf_counter() - t) * 1e3

        results["ttft"] = repeat(ttft, reps)
        results["prompt_tokens"] = int(inputs["input_ids"].shape[1])
        results["views"] = int(views)

        pp_ids = torch.tensor([text_ids(512, image_token)])

        def pp512():
            t = time.perf_counter()
            model(input_ids=pp_ids, use_cache=True, logits_to_keep=1, **{cache_arg: DynamicCache()})
            return 512 / (time.perf_counter() - t)

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

            results[f"tg64@{depth}"] = repeat(tg, reps)
    return results


def run_vlm(vlm: Path, ckpt: Path, image: Path, prompt: str, threads: int, reps: int, depths: list[int]):
    cmd = [
        str(vlm), "--threads", str(threads), "bench", "--model", str(ckpt),
        "-t", "enc,ttft,pp512,tg64", "-d", ",".join(map(str, depths)),
        "-r", str(reps), "-o", "json", "--image", str(image), "--prompt", prompt,
    ]
    print("running:", " ".join(cmd), file=sys.stderr)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    report = json.loads(out.stdout)
    by_name = {r["test"]: r for r in report["results"]}
    results = {"enc": by_name["enc"], "ttft": by_name["ttft"], "pp512": by_name["pp512"]}
    for d in depths:
        results[f"tg64@{d}"] = by_name["tg64" if d == 0 else f"tg64 @ d{d}"]
    return results, report["environment"]


def fmt(r: dict) -> str:
    return f"{r['mean']:.2f} ± {r['stddev']:.2f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir", type=Path, help="checkpoint written by `vlm synth` (written first if missing)")
    ap.add_argument("--preset", default="256m", help="preset for `vlm synth` when DIR does not exist")
    ap.add_argument("--vlm", type=Path, default=REPO / "target" / "release" / "vlm", help="the vlm binary")
    ap.add_argument("--threads", type=int, default=physical_cores(), help="threads for both (default: physical cores)")
    ap.add_argument("-r", "--repetitions", type=int, default=3, help="timed repetitions per test")
    ap.add_argument("-d", "--depths", default="0,900", help="context depths for tg64, comma-separated")
    ap.add_argument("--prompt", default="Describe this screenshot.")
    args = ap.parse_args()

    if not args.vlm.is_file():
        print(f"error: {args.vlm} does not exist; build it with `cargo build --release` or pass --vlm", file=sys.stderr)
        return 2
    if not args.dir.exists():
        subprocess.run([str(args.vlm), "synth", "--preset", args.preset, "--out", str(args.dir)], check=True)
    depths = [int(d) for d in args.depths.split(",") if d.strip()]

    import torch
    import transformers

    with tempfile.TemporaryDirectory() as tmp:
        image = Path(tmp) / "screenshot-1920x1080.png"
        screenshot(image)
        print(f"transformers {transformers.__version__} / torch {torch.__version__}, {args.threads} threads …", file=sys.stderr)
        hf = time_transformers(args.dir, image, args.prompt, args.threads, args.repetitions, depths)
        ours, env = run_vlm(args.vlm, args.dir, image, args.prompt, args.threads, args.repetitions, depths)

    rows = [
        ("vision encoder per tile", "enc", "ms/view", False),
        (f"TTFT, 1920×1080 screenshot ({hf['views']} views, {hf['prompt_tokens']} prompt tokens)", "ttft", "ms", False),
        ("prefill pp512", "pp512", "tok/s", True),
    ] + [(f"decode tg64 @ depth {d}", f"tg64@{d}", "tok/s", True) for d in depths]

    print(f"CPU: {env['cpu']} [{' '.join(env['cpu_features'])}], {args.threads} threads "
          f"(vlm reports {env['threads']}), {platform.python_implementation()} {platform.python_version()}")
    print(f"model: {args.dir} (f32); transformers {transformers.__version__}, torch "
          f"{torch.__version__} (eager attention); vlm {env['build']}; {args.repetitions} repetitions after a warm-up")
    print()
    print("| test | unit | transformers | vlm | vlm speed-up |")
    print("|---|---|---:|---:|---:|")
    for label, key, unit, higher in rows:
        a, b = hf[key], ours[key]
        ratio = b["mean"] / a["mean"] if higher else a["mean"] / b["mean"]
        print(f"| {label} | {unit} | {fmt(a)} | {fmt(b)} | {ratio:.2f}× |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
