#!/usr/bin/env python3
"""Regenerate the video fixtures under tests/fixtures/video/ with transformers.

What it writes:

* ``prompts.json``: for clips described only by their metadata (1, 7 and 64 sampled
  frames, a 65-second clip, a 90-second clip that triggers the skip-one-second rule, a
  29.97 fps clip), the frame indices ``SmolVLMVideoProcessor.sample_frames`` picks and the
  text ``SmolVLMProcessor.replace_video_token`` puts in place of ``<video>``, for the
  tiny fixture checkpoint (``image_seq_len`` 4), plus the chat template's rendering of a
  video conversation.
* ``resize.json``: torchvision's uint8 LANCZOS resize (what the video processor resizes
  frames with) of a small random image to five sizes.
* ``frames/``: a frame directory (PNG files of mixed sizes, named so that sorting by
  name gives their order) and ``parity.json``: transformers' prompt, token ids, pixel
  statistics and greedy tokens for it on the tiny checkpoint, with the metadata given
  explicitly (``fps`` 2, so the directory is a 6-second clip), and
  ``parity_pixels.safetensors``: the sampled frames' pixel values.

How to run (from the repository root, with transformers, torch, torchvision, pillow,
numpy and num2words installed; see scripts/requirements.txt)::

    python scripts/make_video_fixtures.py

Everything is seeded; two runs produce identical files.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np
import torch
import transformers
from PIL import Image
from safetensors.torch import save_file
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as tvF
from transformers import AutoModelForImageTextToText, AutoProcessor
from transformers.models.smolvlm.processing_smolvlm import DEFAULT_CHAT_TEMPLATE
from transformers.video_utils import VideoMetadata

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "tests/fixtures/models/tiny-smolvlm"
OUT = ROOT / "tests/fixtures/video"

# (name, total frames, source fps, duration in seconds or None for total / fps, max_frames, fps)
CLIPS = [
    ("one_frame", 4, 10.0, None, 64, 1.0),
    ("seven_frames", 168, 24.0, None, 64, 1.0),
    ("sixty_four_frames", 1600, 25.0, None, 64, 1.0),
    ("sixty_five_seconds", 1950, 30.0, None, 64, 1.0),
    ("ninety_seconds_skip", 2700, 30.0, None, 64, 1.0),
    ("ntsc_rate", 2997, 29.97, None, 16, 0.5),
    ("short_duration_metadata", 300, 30.0, 9.6, 8, 2.0),
]


def prompt_cases(processor) -> list[dict]:
    vp = processor.video_processor
    cases = []
    for name, total, fps, duration, max_frames, sample_fps in CLIPS:
        if duration is None:
            duration = total / fps
        meta = VideoMetadata(total_num_frames=total, fps=fps, duration=duration)
        indices = vp.sample_frames(meta, num_frames=max_frames, fps=sample_fps)
        meta.frames_indices = indices
        fake = {"pixel_values": torch.zeros(1, len(indices), 3, 1, 1), "video_metadata": [meta]}
        text = processor.replace_video_token(fake, 0)
        cases.append(
            {
                "name": name,
                "total_frames": total,
                "fps": fps,
                "duration": duration,
                "max_frames": max_frames,
                "sample_fps": sample_fps,
                "indices": [int(i) for i in indices],
                "timestamps": [float(t) for t in meta.timestamps],
                "prompt": text,
            }
        )
    return cases


def write_frames(directory: Path) -> list[np.ndarray]:
    """Twelve frames of a moving bright square; two frames are wider than the rest, and a
    text file sits among them (the reader skips it)."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    frames = []
    for i in range(12):
        w, h = (48, 32) if i not in (4, 9) else (64, 36)
        frame = (rng.integers(0, 60, size=(h, w, 3))).astype(np.uint8)
        x = 2 + i * 3
        frame[8:20, x : x + 12] = [250, 200, 40]
        Image.fromarray(frame).save(directory / f"frame_{i:03d}.png")
        frames.append(frame)
    (directory / "notes.txt").write_text("not a frame\n")
    return frames


def resize_cases() -> dict:
    """torchvision's uint8 LANCZOS (the video processor's resampler) on a small random image:
    upscaling, downscaling, squashing, one side unchanged."""
    rng = np.random.default_rng(3)
    src = rng.integers(0, 256, size=(12, 20, 3)).astype(np.uint8)
    tensor = torch.from_numpy(src).permute(2, 0, 1).contiguous()
    cases = []
    for w, h in [(48, 30), (7, 5), (32, 32), (20, 3), (5, 12)]:
        out = tvF.resize(tensor, [h, w], interpolation=InterpolationMode.LANCZOS, antialias=True)
        cases.append({"width": w, "height": h, "rgb": out.permute(1, 2, 0).flatten().tolist()})
    return {"width": 20, "height": 12, "rgb": src.flatten().tolist(), "outputs": cases}


def parity_case(processor, model, frames: list[np.ndarray]) -> dict:
    fps = 2.0
    question = "What happens in this video?"
    conversation = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": question}]}]
    text = processor.apply_chat_template(conversation, add_generation_prompt=True, chat_template=DEFAULT_CHAT_TEMPLATE)
    # transformers stacks one video into one array, so the wider frames are resized to the
    # common size here exactly as the video processor would resize them (two LANCZOS steps
    # on the frame alone, independent of its neighbours) by giving each frame its own batch
    # entry first, then the frames are gathered back into one clip.
    vp = processor.video_processor
    per_frame = []
    for f in frames:
        out = vp(videos=[f[None]], do_sample_frames=False, return_tensors="pt")
        per_frame.append(out["pixel_values"][0, 0])
    # Only the prompt comes from this call (it depends on the metadata, not the pixels).
    same = np.stack([f if f.shape == frames[0].shape else frames[0] for f in frames])
    meta = {"total_num_frames": len(frames), "fps": fps, "duration": len(frames) / fps}
    inputs = processor(
        text=text,
        videos=[same],
        video_metadata=[meta],
        do_sample_frames=True,
        num_frames=vp.num_frames,
        fps=vp.fps,
        return_tensors="pt",
    )
    sampled = vp.sample_frames(VideoMetadata(**meta), num_frames=vp.num_frames, fps=vp.fps)
    pixel_values = torch.stack([per_frame[i] for i in sampled])[None]
    with torch.no_grad():
        generated = model.generate(
            input_ids=inputs["input_ids"],
            attention_mask=inputs["attention_mask"],
            pixel_values=pixel_values,
            max_new_tokens=12,
            do_sample=False,
            output_scores=True,
            return_dict_in_generate=True,
        )
    new = generated.sequences[0, inputs["input_ids"].shape[1] :].tolist()
    # Gap between the two best logits at each greedy step: a step whose gap is within the
    # f32 noise of a different summation order cannot be compared token for token.
    margins = []
    for scores in generated.scores:
        top2 = torch.topk(scores[0], 2).values
        margins.append(float(top2[0] - top2[1]))
    save_file({"pixel_values": pixel_values[0].contiguous()}, str(OUT / "parity_pixels.safetensors"))
    return {
        "question": question,
        "fps": fps,
        "prompt": text,
        "indices": [int(i) for i in sampled],
        "input_ids": inputs["input_ids"][0].tolist(),
        "pixel_sum": float(pixel_values.double().sum()),
        "pixel_abs_sum": float(pixel_values.double().abs().sum()),
        "pixel_first": pixel_values[0, 0, :, 0, :8].flatten().tolist(),
        "greedy_tokens": new,
        "greedy_margins": margins,
    }


def main() -> None:
    torch.manual_seed(0)
    processor = AutoProcessor.from_pretrained(MODEL)
    OUT.mkdir(parents=True, exist_ok=True)
    conversation = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "What happens?"}]}]
    rendered = processor.apply_chat_template(conversation, add_generation_prompt=True, chat_template=DEFAULT_CHAT_TEMPLATE)
    doc = {
        "transformers": transformers.__version__,
        "image_seq_len": processor.image_seq_len,
        "chat_template_rendering": {"question": "What happens?", "prompt": rendered},
        "clips": prompt_cases(processor),
    }
    (OUT / "prompts.json").write_text(json.dumps(doc, indent=1) + "\n")
    (OUT / "resize.json").write_text(json.dumps(resize_cases()) + "\n")

    frames = write_frames(OUT / "frames")
    model = AutoModelForImageTextToText.from_pretrained(MODEL, torch_dtype=torch.float32, attn_implementation="eager")
    model.eval()
    parity = parity_case(processor, model, frames)
    parity["transformers"] = transformers.__version__
    (OUT / "parity.json").write_text(json.dumps(parity, indent=1) + "\n")


if __name__ == "__main__":
    main()
