#!/usr/bin/env python3
"""Regenerate the parity fixtures under tests/fixtures/ from scratch.

What it builds:

* ``tests/fixtures/images/``: small deterministic test images drawn with PIL
  (RGB, RGBA, L, P, an EXIF-rotated JPEG, ...).
* ``tests/fixtures/models/tiny-smolvlm`` and ``tests/fixtures/models/tiny-idefics3``:
  two tiny random-weight checkpoints with the real SmolVLM2 / SmolVLM v1
  (Idefics3) architectures, laid out exactly like Hugging Face Hub checkpoint
  directories (config, weights with Hub tensor names, tokenizer, processor
  configs, generation config, chat template).
* ``tests/fixtures/reference/``: reference outputs produced by Hugging Face
  transformers from the checkpoints loaded back from disk: ``cases.json``
  (prompts, token ids, image grids, greedy tokens and margins, ...) and one
  safetensors file per model (pixel values, connector outputs, logits, and a
  masked vision-tower run).

The reference runs transformers on CPU, in float32, with
``attn_implementation="eager"`` and the PIL (LANCZOS) image-processor backend.

How to run (from the repository root, in a virtual environment made from
``scripts/requirements.txt``)::

    python -m venv .venv && . .venv/bin/activate
    pip install -r scripts/requirements.txt
    python scripts/make_fixtures.py

It deletes and rewrites tests/fixtures/{images,models,reference}.

Everything is seeded, so two runs produce byte-identical files. The whole run
takes well under a minute on a laptop CPU and needs no network access.
"""

from __future__ import annotations

import copy
import json
import math
import os
import platform
import shutil
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np
import PIL
import tokenizers
import torch
import transformers
from PIL import Image, ImageDraw, ImageFont, ImageOps
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoProcessor,
    Idefics3ForConditionalGeneration,
    SmolVLMForConditionalGeneration,
)
from transformers.image_utils import load_image

REPO = Path(__file__).resolve().parent.parent
FIX = REPO / "tests" / "fixtures"
IMAGES = FIX / "images"
MODELS = FIX / "models"
REFERENCE = FIX / "reference"

GREEDY_STEPS = 24

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)
transformers.logging.set_verbosity_error()


# --------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------


def write_json(path: Path, obj, indent: int = 2) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        json.dump(obj, f, indent=indent, ensure_ascii=False)
        f.write("\n")


def check(cond: bool, msg: str) -> None:
    if not cond:
        raise SystemExit(f"fixture check failed: {msg}")


# --------------------------------------------------------------------------------------
# Test images
# --------------------------------------------------------------------------------------


def _font():
    # Pillow's bundled default font (no system fonts involved).
    return ImageFont.load_default()


def make_landscape() -> Image.Image:
    """A screenshot-like pricing page, 400x250."""
    w, h = 400, 250
    img = Image.new("RGB", (w, h), (246, 247, 250))
    d = ImageDraw.Draw(img)
    font = _font()
    # header bar
    d.rectangle([0, 0, w - 1, 33], fill=(28, 52, 110))
    d.text((12, 10), "Acme Cloud  |  Pricing", fill=(255, 255, 255), font=font)
    d.rectangle([318, 8, 388, 26], fill=(255, 196, 0))
    d.text((330, 10), "Sign up", fill=(20, 20, 20), font=font)
    # three plan cards
    plans = [
        ("Free", "$0/mo", (90, 170, 90)),
        ("Pro", "$12/mo", (40, 110, 220)),
        ("Team", "$30/mo", (200, 70, 60)),
    ]
    for i, (name, price, color) in enumerate(plans):
        x0 = 14 + i * 128
        d.rectangle([x0, 48, x0 + 116, 230], fill=(255, 255, 255), outline=(200, 204, 212))
        d.rectangle([x0, 48, x0 + 116, 66], fill=color)
        d.text((x0 + 8, 52), name, fill=(255, 255, 255), font=font)
        d.text((x0 + 8, 76), price, fill=(20, 24, 32), font=font)
        for j in range(4):
            y = 100 + j * 20
            d.rectangle([x0 + 8, y + 3, x0 + 14, y + 9], fill=color)
            d.text((x0 + 20, y), f"feature {j + 1}", fill=(70, 74, 84), font=font)
        d.rectangle([x0 + 8, 200, x0 + 108, 220], fill=color)
        d.text((x0 + 34, 204), "Choose", fill=(255, 255, 255), font=font)
    # a thin divider line and a 1-px checker strip with sharp edges
    d.line([0, 240, w - 1, 240], fill=(0, 0, 0), width=1)
    for x in range(0, w, 2):
        d.point((x, 245), fill=(0, 0, 0))
    return img


def make_portrait() -> Image.Image:
    """Gradients and shapes, 150x260."""
    w, h = 150, 260
    y, x = np.mgrid[0:h, 0:w]
    arr = np.zeros((h, w, 3), dtype=np.uint8)
    arr[..., 0] = (x * 255 // (w - 1)).astype(np.uint8)
    arr[..., 1] = (y * 255 // (h - 1)).astype(np.uint8)
    arr[..., 2] = ((x + y) * 255 // (w + h - 2)).astype(np.uint8)[::-1]
    img = Image.fromarray(arr, "RGB")
    d = ImageDraw.Draw(img)
    d.ellipse([20, 30, 130, 120], fill=(250, 250, 240), outline=(10, 10, 10), width=3)
    d.polygon([(75, 140), (20, 240), (130, 240)], fill=(30, 30, 160))
    d.rectangle([60, 180, 90, 230], fill=(240, 200, 20))
    return img


def make_tiny() -> Image.Image:
    rng = np.random.RandomState(17)
    arr = rng.randint(0, 256, size=(9, 17, 3), dtype=np.uint8)
    return Image.fromarray(arr, "RGB")


def make_rgba() -> Image.Image:
    """RGBA with opaque, half-transparent and fully transparent regions, 120x80."""
    w, h = 120, 80
    arr = np.zeros((h, w, 4), dtype=np.uint8)
    y, x = np.mgrid[0:h, 0:w]
    arr[..., 0] = 220
    arr[..., 1] = (x * 2).clip(0, 255)
    arr[..., 2] = (y * 3).clip(0, 255)
    arr[..., 3] = 255
    # left third: alpha ramp 0..255 from top to bottom
    arr[:, :40, 3] = (y[:, :40] * 255 // (h - 1)).astype(np.uint8)
    # middle band: half transparent
    arr[20:60, 40:80, 3] = 128
    # a fully transparent block whose hidden colour is saturated green
    arr[50:75, 85:115, :3] = (0, 255, 0)
    arr[50:75, 85:115, 3] = 0
    img = Image.fromarray(arr, "RGBA")
    d = ImageDraw.Draw(img)
    d.rectangle([88, 8, 112, 32], fill=(20, 20, 200, 255))
    return img


def make_gray() -> Image.Image:
    w, h = 90, 60
    y, x = np.mgrid[0:h, 0:w]
    arr = ((x * 3 + y * 2) % 256).astype(np.uint8)
    img = Image.fromarray(arr, "L")
    d = ImageDraw.Draw(img)
    d.rectangle([10, 10, 40, 30], fill=255)
    d.ellipse([50, 20, 85, 55], fill=0)
    d.text((12, 40), "L8", fill=200, font=_font())
    return img


def make_palette() -> Image.Image:
    w, h = 100, 70
    img = Image.new("RGB", (w, h), (250, 240, 220))
    d = ImageDraw.Draw(img)
    d.rectangle([5, 5, 45, 35], fill=(200, 30, 30))
    d.rectangle([50, 10, 95, 60], fill=(30, 120, 200))
    d.ellipse([15, 30, 60, 65], fill=(40, 160, 60))
    d.line([0, 69, 99, 0], fill=(0, 0, 0), width=2)
    pal = img.quantize(colors=8, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    check(pal.mode == "P", "palette image must be mode P")
    return pal


def make_exif_jpeg(path: Path) -> None:
    """A JPEG stored as 80x50 with EXIF Orientation=6: upright it is 50x80 (portrait)."""
    up_w, up_h = 50, 80
    upright = Image.new("RGB", (up_w, up_h), (235, 235, 235))
    d = ImageDraw.Draw(upright)
    # an arrow pointing up, a red band at the top and a blue band at the bottom
    d.rectangle([0, 0, up_w - 1, 9], fill=(210, 30, 30))
    d.rectangle([0, up_h - 10, up_w - 1, up_h - 1], fill=(30, 60, 210))
    d.polygon([(25, 14), (8, 38), (42, 38)], fill=(20, 20, 20))
    d.rectangle([19, 38, 31, 66], fill=(20, 20, 20))
    # Orientation 6 means "rotate 90 degrees clockwise to display", so the stored
    # pixels are the upright picture rotated 90 degrees counter-clockwise.
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    check(stored.size == (80, 50), "stored JPEG must be 80x50")
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(path, format="JPEG", quality=95, subsampling=0, exif=exif.tobytes())
    check(ImageOps.exif_transpose(Image.open(path)).size == (up_w, up_h), "EXIF transpose must give 50x80")


def make_two_b() -> Image.Image:
    w, h = 64, 96
    img = Image.new("RGB", (w, h), (20, 24, 40))
    d = ImageDraw.Draw(img)
    for i in range(6):
        d.rectangle([4 + i * 10, 8 + i * 6, 12 + i * 10, 88 - i * 4], fill=(40 * i, 255 - 40 * i, 128))
    d.ellipse([8, 60, 56, 92], outline=(255, 255, 255), width=2)
    return img


def build_images() -> None:
    IMAGES.mkdir(parents=True, exist_ok=True)
    make_landscape().save(IMAGES / "landscape.png")
    make_portrait().save(IMAGES / "portrait.png")
    make_tiny().save(IMAGES / "tiny_17x9.png")
    make_rgba().save(IMAGES / "rgba.png")
    make_gray().save(IMAGES / "gray.png")
    make_palette().save(IMAGES / "palette.png")
    make_exif_jpeg(IMAGES / "exif_rotated.jpg")
    make_two_b().save(IMAGES / "two_b.png")
    expected = {
        "landscape.png": ("RGB", (400, 250)),
        "portrait.png": ("RGB", (150, 260)),
        "tiny_17x9.png": ("RGB", (17, 9)),
        "rgba.png": ("RGBA", (120, 80)),
        "gray.png": ("L", (90, 60)),
        "palette.png": ("P", (100, 70)),
        "exif_rotated.jpg": ("RGB", (80, 50)),
        "two_b.png": ("RGB", (64, 96)),
    }
    for name, (mode, size) in expected.items():
        im = Image.open(IMAGES / name)
        check(im.mode == mode and im.size == size, f"{name}: got {im.mode} {im.size}")


# --------------------------------------------------------------------------------------
# Tokenizer (GPT-2 style byte-level BPE, SmolLM2 layout)
# --------------------------------------------------------------------------------------

CORPUS = """\
The quick brown fox jumps over the lazy dog.
Describe this image. What is shown in the picture? Which way is up?
The image shows a pricing table with three plans: Free, Pro and Team.
The Pro plan costs $12 per month and the Team plan costs $30 per month.
A header bar runs across the top of the page, and the buttons say Choose.
There is a red circle, a blue triangle and a yellow square on a gradient.
The picture is a screenshot of a web page with text, boxes and sharp edges.
What differs between these two images? The first one is wider than the second.
Write a haiku about rust. Red iron slowly turns to dust in the autumn rain.
Hello there, how are you? I am fine, thank you. How can I help you today?
The cat sat on the mat. The dog sat on the log. The bird sang in the tree.
Colours: red, green, blue, yellow, orange, purple, black, white, gray and brown.
Numbers: one, two, three, four, five, six, seven, eight, nine and ten.
The assistant answers the user. The user asks a question about the image.
This is a photo of a mountain lake at sunrise, with trees along the shore.
A small robot reads a book about language models and vision encoders.
The weather today is sunny with a light breeze from the west.
Please answer in one short sentence. Keep the answer clear and simple.
The left side of the image is transparent and the right side is opaque.
An arrow points up. The top of the picture is red and the bottom is blue.
Images are split into tiles, and each tile is encoded by the vision model.
The text model reads the tokens and writes the answer one token at a time.
In the morning we walk to the market, buy bread and fruit, and walk back home.
It was the best of times, it was the worst of times, it was the age of wisdom.
All happy families are alike; each unhappy family is unhappy in its own way.
Call me Ishmael. Some years ago, never mind how long precisely, I went to sea.
She sells sea shells by the sea shore, and the shells she sells are surely seashells.
Rust is a systems programming language that is fast, safe and friendly.
A gray picture has only one channel, and a palette picture maps indices to colours.
The first image has a header, three cards and a line of small black dots.
"""


def corpus_lines() -> list[str]:
    lines = [line for line in CORPUS.splitlines() if line.strip()]
    out = []
    for i, line in enumerate(lines):
        out.append(line)
        # paragraphs separated by a blank line, so that "\n\n" becomes one token
        out.append(line + "\n\n")
        out.append(lines[(i + 1) % len(lines)] + "\n" + line + "\n\n")
    out.extend(["\n\n"] * 40)
    out.extend(["User: " + line + "\nAssistant: " + lines[(i + 3) % len(lines)] for i, line in enumerate(lines)])
    return out


def train_base_bpe(vocab_size: int) -> Tokenizer:
    """Byte-level BPE with the SmolLM2 pipeline: digits split individually, then GPT-2 byte-level."""
    tok = Tokenizer(models.BPE(dropout=None, unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.normalizer = None
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
        ]
    )
    tok.post_processor = processors.ByteLevel(add_prefix_space=True, trim_offsets=False, use_regex=True)
    tok.decoder = decoders.ByteLevel(add_prefix_space=True, trim_offsets=True, use_regex=True)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        show_progress=False,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(corpus_lines(), trainer=trainer)
    return tok


def make_tokenizer(extra_tokens: list[str]) -> Tokenizer:
    tok = train_base_bpe(vocab_size=470)
    check(tok.token_to_id("<|endoftext|>") == 0, "<|endoftext|> must be id 0")
    check(tok.token_to_id("<|im_start|>") == 1, "<|im_start|> must be id 1")
    check(tok.token_to_id("<|im_end|>") == 2, "<|im_end|> must be id 2")
    tok.add_special_tokens(
        [tokenizers.AddedToken(t, special=True, normalized=False, lstrip=False, rstrip=False, single_word=False) for t in extra_tokens]
    )
    nn_ids = tok.encode("\n\n").ids
    check(len(nn_ids) == 1, f'"\\n\\n" must be a single token, got {nn_ids}')
    return tok


def added_tokens_decoder(tok: Tokenizer) -> dict:
    out = {}
    for tid, at in sorted(tok.get_added_tokens_decoder().items()):
        out[str(tid)] = {
            "content": at.content,
            "lstrip": at.lstrip,
            "normalized": at.normalized,
            "rstrip": at.rstrip,
            "single_word": at.single_word,
            "special": at.special,
        }
    return out


# --------------------------------------------------------------------------------------
# Chat templates
# --------------------------------------------------------------------------------------

# SmolVLM2 template (with the video branch), as shipped in the Hub chat_template.json.
SMOLVLM_CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% elif line['type'] == 'video' %}{{ '<video>' }}"
    "{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)

# SmolVLM v1 template (no video branch).
IDEFICS3_CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)


# --------------------------------------------------------------------------------------
# Model specifications
# --------------------------------------------------------------------------------------

ROW_COL_TOKENS = [f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)]

SPECS = {
    "tiny-smolvlm": {
        "arch": "SmolVLMForConditionalGeneration",
        "model_type": "smolvlm",
        "extra_tokens": ["<global-img>", *ROW_COL_TOKENS, "<fake_token_around_image>", "<image>", "<end_of_utterance>"],
        "dtype": torch.float32,
        "tied": True,
        "shards": 1,
        "vision": {"image_size": 32, "patch_size": 8, "hidden_size": 48, "num_attention_heads": 3, "intermediate_size": 80, "num_hidden_layers": 2},
        "scale_factor": 2,
        "longest_edge": 128,
        "seed": 1234,
        "init": {"embed": 1.0, "linear_gain": 2.2, "norm_jitter": 0.2, "bias": 0.1, "pos": 0.5},
    },
    "tiny-idefics3": {
        "arch": "Idefics3ForConditionalGeneration",
        "model_type": "idefics3",
        "extra_tokens": ["<fake_token_around_image>", "<image>", "<end_of_utterance>"],
        "dtype": torch.bfloat16,
        "tied": False,
        "shards": 2,
        "vision": {"image_size": 42, "patch_size": 7, "hidden_size": 40, "num_attention_heads": 4, "intermediate_size": 56, "num_hidden_layers": 2},
        "scale_factor": 3,
        "longest_edge": 168,
        "seed": 99,
        "init": {"embed": 1.0, "linear_gain": 2.2, "norm_jitter": 0.2, "bias": 0.1, "pos": 0.5},
    },
}


def make_config(name: str, spec: dict, tok: Tokenizer) -> dict:
    vocab = tok.get_vocab_size(with_added_tokens=True)
    ids = {t: tok.token_to_id(t) for t in ["<|im_end|>", "<|im_start|>", "<image>", "<end_of_utterance>"]}
    v = spec["vision"]
    if spec["model_type"] == "smolvlm":
        # Modelled on SmolVLM2-256M-Video-Instruct's config.json.
        text_config = {
            "_flash_attn_2_enabled": False,
            "architectures": ["VLlama3ForCausalLM"],
            "attention_bias": False,
            "attention_dropout": 0.0,
            "head_dim": 24,
            "hidden_act": "silu",
            "hidden_size": 72,
            "initializer_range": 0.02,
            "intermediate_size": 100,
            "is_llama_config": True,
            "max_position_embeddings": 2048,
            "mlp_bias": False,
            "model_type": "llama",
            "neftune_noise_alpha": 0.0,
            "num_attention_heads": 3,
            "num_hidden_layers": 2,
            "num_key_value_heads": 1,
            "pad_token_id": ids["<|im_end|>"],
            "pixel_shuffle_factor": spec["scale_factor"],
            "pretraining_tp": 1,
            "qk_layer_norms": False,
            "rms_norm_eps": 1e-05,
            "rope_interleaved": False,
            "rope_scaling": None,
            "rope_theta": 100000,
            "torch_dtype": "float32",
            "use_cache": True,
            "use_resampler": False,
            "vocab_size": vocab,
        }
        vision_config = {
            "hidden_size": v["hidden_size"],
            "image_size": v["image_size"],
            "intermediate_size": v["intermediate_size"],
            "max_image_size": {"longest_edge": v["image_size"]},
            "model_type": "smolvlm_vision",
            "num_attention_heads": v["num_attention_heads"],
            "num_hidden_layers": v["num_hidden_layers"],
            "patch_size": v["patch_size"],
            "size": {"longest_edge": spec["longest_edge"]},
            "tie_word_embeddings": False,
            "use_base_siglip": False,
        }
        return {
            "architectures": [spec["arch"]],
            "image_token_id": ids["<image>"],
            "model_type": "smolvlm",
            "pad_token_id": ids["<|im_end|>"],
            "scale_factor": spec["scale_factor"],
            "text_config": text_config,
            "tie_word_embeddings": True,
            "torch_dtype": "float32",
            "transformers.js_config": {"kv_cache_dtype": {"fp16": "float16", "q4f16": "float16"}},
            "transformers_version": "4.50.0.dev0",
            "use_cache": True,
            "vision_config": vision_config,
            "vocab_size": vocab,
        }
    # Modelled on SmolVLM-Instruct (v1 2B) config.json. Some keys are left out on purpose so that the
    # transformers defaults apply: text rms_norm_eps (Llama default), vision num_channels, hidden_act,
    # layer_norm_eps.
    text_config = {
        "_name_or_path": "tiny-smollm",
        "architectures": ["VLlama3ForCausalLM"],
        "hidden_size": 64,
        "intermediate_size": 96,
        "max_position_embeddings": 16384,
        "model_type": "llama",
        "num_attention_heads": 4,
        "num_hidden_layers": 3,
        "num_key_value_heads": 2,
        "pad_token_id": ids["<|im_end|>"],
        "rope_theta": 273768.0,
        "torch_dtype": "bfloat16",
        "vocab_size": vocab,
    }
    vision_config = {
        "hidden_size": v["hidden_size"],
        "image_size": v["image_size"],
        "intermediate_size": v["intermediate_size"],
        "model_type": "idefics3_vision",
        "num_attention_heads": v["num_attention_heads"],
        "num_hidden_layers": v["num_hidden_layers"],
        "patch_size": v["patch_size"],
    }
    return {
        "architectures": [spec["arch"]],
        "image_token_id": ids["<image>"],
        "model_type": "idefics3",
        "scale_factor": spec["scale_factor"],
        "text_config": text_config,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.46.0.dev0",
        "use_cache": True,
        "vision_config": vision_config,
        "vocab_size": vocab,
    }


def image_seq_len(spec: dict) -> int:
    v = spec["vision"]
    return int(((v["image_size"] // v["patch_size"]) ** 2) / (spec["scale_factor"] ** 2))


def write_tokenizer_files(out: Path, spec: dict, tok: Tokenizer) -> dict:
    tok.save(str(out / "tokenizer.json"), pretty=True)
    smol = spec["model_type"] == "smolvlm"
    specials_map = {
        "additional_special_tokens": ["<fake_token_around_image>", "<image>", "<end_of_utterance>"],
        "bos_token": {"content": "<|im_start|>", "lstrip": False, "normalized": False, "rstrip": False, "single_word": False},
        "eos_token": {"content": "<end_of_utterance>", "lstrip": False, "normalized": False, "rstrip": False, "single_word": False},
        "pad_token": {"content": "<|im_end|>", "lstrip": False, "normalized": False, "rstrip": False, "single_word": False},
        "unk_token": {"content": "<|endoftext|>", "lstrip": False, "normalized": False, "rstrip": False, "single_word": False},
    }
    write_json(out / "special_tokens_map.json", specials_map)
    cfg = {
        "add_prefix_space": False,
        "added_tokens_decoder": added_tokens_decoder(tok),
        "additional_special_tokens": ["<fake_token_around_image>", "<image>", "<end_of_utterance>"],
        "bos_token": "<|im_start|>",
        "clean_up_tokenization_spaces": False,
        "eos_token": "<end_of_utterance>",
        "legacy": False,
        "model_max_length": 2048 if smol else 16384,
        "pad_token": "<|im_end|>",
        "processor_class": "SmolVLMProcessor" if smol else "Idefics3Processor",
        "tokenizer_class": "GPT2Tokenizer",
        "truncation_side": "left",
        "unk_token": "<|endoftext|>",
        "vocab_size": tok.get_vocab_size(with_added_tokens=False),
    }
    if smol:
        # SmolVLMProcessor reads these attributes from the tokenizer (with the same strings as fallbacks).
        cfg["end_of_utterance_token"] = "<end_of_utterance>"
        cfg["fake_image_token"] = "<fake_token_around_image>"
        cfg["global_image_token"] = "<global-img>"
        cfg["image_token"] = "<image>"
        cfg = dict(sorted(cfg.items()))
    write_json(out / "tokenizer_config.json", cfg)
    names = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<fake_token_around_image>", "<image>", "<end_of_utterance>"]
    if smol:
        names += ["<global-img>", "<row_1_col_1>", "<row_1_col_2>", "<row_2_col_1>", "<row_6_col_6>"]
    specials = {n: tok.token_to_id(n) for n in names}
    if not smol:
        for n in ["<global-img>", "<row_1_col_1>"]:
            check(tok.token_to_id(n) is None, f"{n} must not be a token in the v1 tokenizer")
    specials["\\n\\n"] = tok.encode("\n\n").ids[0]
    specials["\\n"] = tok.encode("\n").ids[0]
    return specials


def write_processor_files(out: Path, spec: dict) -> None:
    smol = spec["model_type"] == "smolvlm"
    m = spec["vision"]["image_size"]
    pre = {
        "do_convert_rgb": True,
        "do_image_splitting": True,
        "do_normalize": True,
        "do_pad": True,
        "do_rescale": True,
        "do_resize": True,
        "image_mean": [0.5, 0.5, 0.5],
        "image_processor_type": "SmolVLMImageProcessor" if smol else "Idefics3ImageProcessor",
        "image_std": [0.5, 0.5, 0.5],
        "max_image_size": {"longest_edge": m},
        "processor_class": "SmolVLMProcessor" if smol else "Idefics3Processor",
        "resample": 1,
        "rescale_factor": 0.00392156862745098,
        "size": {"longest_edge": spec["longest_edge"]},
    }
    if smol:
        pre["video_sampling"] = {"fps": 1, "max_frames": 64, "video_size": {"longest_edge": m}}
    write_json(out / "preprocessor_config.json", pre)
    write_json(
        out / "processor_config.json",
        {"image_seq_len": image_seq_len(spec), "processor_class": "SmolVLMProcessor" if smol else "Idefics3Processor"},
    )
    if smol:
        write_json(out / "chat_template.json", {"chat_template": SMOLVLM_CHAT_TEMPLATE})
    else:
        with open(out / "chat_template.jinja", "w", encoding="utf-8", newline="\n") as f:
            f.write(IDEFICS3_CHAT_TEMPLATE)


# --------------------------------------------------------------------------------------
# Weights
# --------------------------------------------------------------------------------------


def init_weights(model: torch.nn.Module, spec: dict) -> None:
    """Seeded init, scaled so that random logits are far from flat and greedy decoding is not stuck."""
    g = torch.Generator().manual_seed(spec["seed"])
    ini = spec["init"]
    with torch.no_grad():
        for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
            if name.endswith("embed_tokens.weight"):
                p.copy_(torch.randn(p.shape, generator=g) * ini["embed"])
            elif name.endswith("position_embedding.weight"):
                p.copy_(torch.randn(p.shape, generator=g) * ini["pos"])
            elif name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=g) * ini["bias"])
            elif p.dim() == 1:  # LayerNorm / RMSNorm weights
                p.copy_(1.0 + torch.randn(p.shape, generator=g) * ini["norm_jitter"])
            else:  # Linear / Conv2d weights
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) * (ini["linear_gain"] / math.sqrt(fan_in)))


def hub_state_dict(model: torch.nn.Module, spec: dict) -> dict[str, torch.Tensor]:
    sd = {}
    for k, v in model.state_dict().items():
        if spec["tied"] and k == "lm_head.weight":
            continue
        sd[k] = v.detach().to(spec["dtype"]).contiguous().clone()
    return sd


HUB_NAME_PREFIXES = (
    "model.vision_model.embeddings.",
    "model.vision_model.encoder.layers.",
    "model.vision_model.post_layernorm.",
    "model.connector.modality_projection.proj.weight",
    "model.text_model.embed_tokens.weight",
    "model.text_model.layers.",
    "model.text_model.norm.weight",
    "lm_head.weight",
)


def write_weights(out: Path, spec: dict, sd: dict[str, torch.Tensor]) -> list[str]:
    for k in sd:
        check(k.startswith(HUB_NAME_PREFIXES), f"unexpected tensor name {k}")
    names = sorted(sd)
    if spec["shards"] == 1:
        save_file(sd, str(out / "model.safetensors"), metadata={"format": "pt"})
        return ["model.safetensors"]
    # Shard: vision tower + connector in the first file, the text model in the second.
    n = spec["shards"]
    groups = [[k for k in names if not k.startswith(("model.text_model.", "lm_head."))], [k for k in names if k.startswith(("model.text_model.", "lm_head."))]]
    check(n == 2 and all(groups), "sharding expects two non-empty groups")
    files, weight_map, total = [], {}, 0
    for i, keys in enumerate(groups):
        fname = f"model-{i + 1:05d}-of-{n:05d}.safetensors"
        save_file({k: sd[k] for k in keys}, str(out / fname), metadata={"format": "pt"})
        files.append(fname)
        for k in keys:
            weight_map[k] = fname
            total += sd[k].numel() * sd[k].element_size()
    write_json(out / "model.safetensors.index.json", {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))})
    return files


def build_model_dir(name: str, spec: dict) -> dict:
    out = MODELS / name
    out.mkdir(parents=True, exist_ok=True)
    tok = make_tokenizer(spec["extra_tokens"])
    specials = write_tokenizer_files(out, spec, tok)
    cfg = make_config(name, spec, tok)
    write_json(out / "config.json", cfg)
    write_processor_files(out, spec)
    write_json(
        out / "generation_config.json",
        {
            "_from_model_config": True,
            "bos_token_id": specials["<|im_start|>"],
            "eos_token_id": specials["<end_of_utterance>"],
            "pad_token_id": specials["<|im_end|>"],
            "transformers_version": cfg["transformers_version"],
        },
    )
    # Instantiate the architecture from the written config and give it seeded weights.
    config = AutoConfig.from_pretrained(out)
    cls = SmolVLMForConditionalGeneration if spec["model_type"] == "smolvlm" else Idefics3ForConditionalGeneration
    torch.manual_seed(spec["seed"])
    model = cls(config).to(torch.float32)
    init_weights(model, spec)
    sd = hub_state_dict(model, spec)
    files = write_weights(out, spec, sd)
    return {"specials": specials, "weight_files": files, "state_dict": sd, "config": cfg, "tokenizer": tok}


def load_reference_model(name: str, spec: dict, written: dict):
    cls = SmolVLMForConditionalGeneration if spec["model_type"] == "smolvlm" else Idefics3ForConditionalGeneration
    model, info = cls.from_pretrained(
        MODELS / name, dtype=torch.float32, attn_implementation="eager", output_loading_info=True
    )
    model.eval()
    for key in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs"):
        check(len(info.get(key, [])) == 0, f"{name}: loading info {key} = {info.get(key)}")
    check(next(model.parameters()).dtype == torch.float32, f"{name}: model must be float32")
    # Every stored tensor must land unchanged in the loaded model.
    params = dict(model.named_parameters(remove_duplicate=False))
    for k, v in written["state_dict"].items():
        check(k in params, f"{name}: {k} not a parameter of the loaded model")
        check(torch.equal(params[k].detach(), v.to(torch.float32)), f"{name}: {k} differs after loading")
    emb = model.get_input_embeddings().weight
    tied = model.lm_head.weight.data_ptr() == emb.data_ptr()
    check(tied == spec["tied"], f"{name}: tied={tied}, expected {spec['tied']}")
    return model


# --------------------------------------------------------------------------------------
# Reference cases
# --------------------------------------------------------------------------------------


def img(path: str) -> dict:
    return {"type": "image", "path": path}


def txt(text: str) -> dict:
    return {"type": "text", "text": text}


CASES = [
    ("landscape", "tiny-smolvlm", True, [{"role": "user", "content": [img("images/landscape.png"), txt("Describe this image.")]}]),
    ("portrait", "tiny-smolvlm", True, [{"role": "user", "content": [img("images/portrait.png"), txt("What is shown?")]}]),
    ("tiny_17x9", "tiny-smolvlm", True, [{"role": "user", "content": [img("images/tiny_17x9.png"), txt("Describe.")]}]),
    ("rgba", "tiny-smolvlm", True, [{"role": "user", "content": [txt("What is this?"), img("images/rgba.png")]}]),
    ("gray", "tiny-smolvlm", True, [{"role": "user", "content": [img("images/gray.png"), txt("Describe.")]}]),
    ("palette", "tiny-smolvlm", True, [{"role": "user", "content": [img("images/palette.png"), txt("Describe.")]}]),
    ("exif", "tiny-smolvlm", True, [{"role": "user", "content": [img("images/exif_rotated.jpg"), txt("Which way is up?")]}]),
    (
        "two_images",
        "tiny-smolvlm",
        True,
        [{"role": "user", "content": [img("images/landscape.png"), img("images/two_b.png"), txt("What differs between these two?")]}],
    ),
    ("text_only", "tiny-smolvlm", True, [{"role": "user", "content": [txt("Write a haiku about rust.")]}]),
    ("no_split", "tiny-smolvlm", False, [{"role": "user", "content": [img("images/landscape.png"), txt("Describe this image.")]}]),
    ("v1_landscape", "tiny-idefics3", True, [{"role": "user", "content": [img("images/landscape.png"), txt("Describe this image.")]}]),
    (
        "v1_multi_turn",
        "tiny-idefics3",
        True,
        [
            {"role": "system", "content": [txt("You are a helpful assistant.")]},
            {"role": "user", "content": [img("images/portrait.png"), txt("What is shown?")]},
            {"role": "assistant", "content": [txt("A red circle and a blue triangle.")]},
            {"role": "user", "content": [txt("Which colour is on top?")]},
        ],
    ),
    ("v1_text_only", "tiny-idefics3", True, [{"role": "user", "content": [txt("Hello there, how are you?")]}]),
]


# Strings whose tokenization a port should reproduce; `tokenizer_json_ids` is recorded where the raw
# tokenizer.json pipeline disagrees with what transformers does.
TOKENIZER_PROBES = [
    "Hello there, how are you?",
    "Pro $12/mo",
    "In 2024 the price was 345 dollars.",
    "Describe.\n\nNext paragraph",
    "\n\n",
    "a\n\n12",
    "two  spaces   three",
    "<image><fake_token_around_image><global-img><row_1_col_1><end_of_utterance>",
    "User:<image>Hi<end_of_utterance>\nAssistant:",
    "caf\u00e9 \u2014 na\u00efve \U0001F600",
]


def image_paths(messages: list[dict]) -> list[str]:
    return [c["path"] for m in messages for c in m["content"] if c["type"] == "image"]


def load_processor(name: str):
    # `AutoProcessor.from_pretrained(dir, backend="pil")` also forwards `backend` to the SmolVLM video
    # processor, which only has a torchvision backend and then fails to load. So the PIL image processor is
    # loaded on its own and handed to AutoProcessor, which keeps everything else as loaded from the directory.
    image_processor = AutoImageProcessor.from_pretrained(MODELS / name, backend="pil")
    proc = AutoProcessor.from_pretrained(MODELS / name, image_processor=image_processor)
    check(proc.image_processor is image_processor, f"{name}: processor did not keep the PIL image processor")
    ip = proc.image_processor
    check(ip.__class__.__name__ in ("SmolVLMImageProcessorPil", "Idefics3ImageProcessorPil"), f"{name}: got {ip.__class__.__name__}")
    check(int(ip.resample) == int(Image.Resampling.LANCZOS), f"{name}: resample {ip.resample} is not LANCZOS")
    if name == "tiny-smolvlm":
        for attr, want in [
            ("fake_image_token", "<fake_token_around_image>"),
            ("image_token", "<image>"),
            ("global_image_token", "<global-img>"),
            ("end_of_utterance_token", "<end_of_utterance>"),
        ]:
            check(getattr(proc.tokenizer, attr, None) == want, f"{name}: tokenizer.{attr} is not {want}")
            check(getattr(proc, attr) == want, f"{name}: processor.{attr} is not {want}")
    return proc


def row_col_info(proc, images, do_image_splitting: bool):
    out = proc.image_processor(
        [images], do_image_splitting=do_image_splitting, return_row_col_info=True, return_tensors="pt"
    )
    return out


def manual_pixel_values(image: Image.Image, longest_edge: int, m: int, split: bool):
    """Independent re-implementation of the PIL-backend pipeline, used to check the processor output.

    1. resize so that the longest edge is `longest_edge` (the other edge truncated, then rounded up to even);
    2. with splitting: stretch both edges up to multiples of `m`, crop `m`x`m` tiles row-major, append the
       whole stretched image squashed to `m`x`m`; without splitting: squash to `m`x`m`;
    3. every resize is PIL LANCZOS on uint8 RGB; then `(u8 / 255 - 0.5) / 0.5` in float32, channels first.
    """
    w, h = image.size
    if w >= h:
        nw, nh = longest_edge, int(longest_edge / (w / h))
        nh += nh % 2
    else:
        nw, nh = int(longest_edge * (w / h)), longest_edge
        nw += nw % 2
    im = image.resize((max(nw, 1), max(nh, 1)), Image.Resampling.LANCZOS)
    rows = cols = 0
    if split:
        w, h = im.size
        if w >= h:
            w2 = math.ceil(w / m) * m
            h2 = math.ceil(int(w2 / (w / h)) / m) * m
        else:
            h2 = math.ceil(h / m) * m
            w2 = math.ceil(int(h2 * (w / h)) / m) * m
        im = im.resize((w2, h2), Image.Resampling.LANCZOS)
        if h2 > m or w2 > m:
            rows, cols = h2 // m, w2 // m
            views = [im.crop((c * m, r * m, c * m + m, r * m + m)) for r in range(rows) for c in range(cols)]
            views.append(im.resize((m, m), Image.Resampling.LANCZOS))
        else:
            views = [im]
    else:
        views = [im.resize((m, m), Image.Resampling.LANCZOS)]
    arr = np.stack([np.asarray(v, dtype=np.uint8) for v in views]).astype(np.float32)
    arr = (arr / np.float32(255.0) - np.float32(0.5)) / np.float32(0.5)
    return arr.transpose(0, 3, 1, 2), rows, cols


def greedy(model, inputs: dict, steps: int):
    """Greedy decoding that never stops at eos; returns tokens, margins, and the prefill logits."""
    tokens, margins = [], []
    with torch.no_grad():
        out = model(**inputs, use_cache=True)
        logits = out.logits[0, -1].float()
        prefill_logits = logits.clone()
        cache = out.past_key_values
        for step in range(steps):
            top2 = torch.topk(logits, 2)
            nxt = int(top2.indices[0])
            tokens.append(nxt)
            margins.append(float(top2.values[0] - top2.values[1]))
            if step + 1 == steps:
                break
            out = model(input_ids=torch.tensor([[nxt]]), cache=cache, use_cache=True)
            cache = out.past_key_values
            logits = out.logits[0, -1].float()
    return tokens, margins, prefill_logits


def greedy_no_cache(model, inputs: dict, steps: int) -> list[int]:
    ids = inputs["input_ids"]
    extra = {k: v for k, v in inputs.items() if k not in ("input_ids", "attention_mask")}
    toks = []
    with torch.no_grad():
        for _ in range(steps):
            logits = model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False, **extra).logits[0, -1]
            nxt = int(torch.argmax(logits))
            toks.append(nxt)
            ids = torch.cat([ids, torch.tensor([[nxt]])], dim=1)
    return toks


def run_case(case, model, proc, raw_tok: Tokenizer, tensors: dict) -> dict:
    name, model_name, split, messages = case
    prompt = proc.apply_chat_template(copy.deepcopy(messages), add_generation_prompt=True, tokenize=False)
    paths = image_paths(messages)
    # The path a user of the model cards takes: `load_image` (EXIF transpose, `convert("RGB")`,
    # which drops alpha without compositing), then the processor.
    images = [load_image(str(FIX / p)) for p in paths]
    kwargs = {} if split else {"do_image_splitting": False}
    if images:
        inputs = proc(text=prompt, images=images, return_tensors="pt", **kwargs)
    else:
        inputs = proc(text=prompt, return_tensors="pt")
    input_ids = inputs["input_ids"][0].tolist()

    # Reproduce the expanded prompt with the processor's own helpers.
    grids = []
    if images:
        rc = row_col_info(proc, images, split)
        rows = [r for rl in rc["rows"] for r in rl]
        cols = [c for cl in rc["cols"] for c in cl]
        grids = [[r, c] for r, c in zip(rows, cols)]
        repl = [proc.replace_image_token({"rows": rc["rows"], "cols": rc["cols"]}, image_idx=i) for i in range(len(images))]
        expanded, _ = proc.get_text_with_replacements([prompt], images_replacements=repl)
        expanded = expanded[0]
        check(torch.equal(rc["pixel_values"], inputs["pixel_values"]), f"{name}: pixel values differ between calls")
    else:
        expanded = prompt
    check(proc.tokenizer(expanded, add_special_tokens=True)["input_ids"] == input_ids, f"{name}: expanded prompt does not re-tokenize")
    # The raw tokenizers-library pipeline (what tokenizer.json alone describes) must agree too.
    check(raw_tok.encode(expanded, add_special_tokens=True).ids == input_ids, f"{name}: tokenizer.json disagrees with transformers")

    if images:
        ip = proc.image_processor
        manual, manual_grids = [], []
        for im in images:
            if im.mode == "RGBA":
                im = Image.alpha_composite(Image.new("RGBA", im.size, (255, 255, 255, 255)), im).convert("RGB")
            arr, r, c = manual_pixel_values(im, ip.size["longest_edge"], ip.max_image_size["longest_edge"], split)
            manual.append(arr)
            manual_grids.append([r, c])
        manual = torch.from_numpy(np.concatenate(manual))
        check(manual_grids == grids, f"{name}: grids {grids} != re-implementation {manual_grids}")
        check(torch.equal(manual, inputs["pixel_values"][0]), f"{name}: pixel values differ from the re-implementation")

    image_token_id = model.config.image_token_id
    n_image_tokens = sum(1 for t in input_ids if t == image_token_id)

    features = []
    hook = model.model.connector.register_forward_hook(lambda m, i, o: features.append(o.detach().clone()))
    tokens, margins, logits = greedy(model, dict(inputs), GREEDY_STEPS)
    hook.remove()
    check(tokens == greedy_no_cache(model, dict(inputs), GREEDY_STEPS), f"{name}: cached and uncached greedy differ")

    entry = {
        "name": name,
        "model": model_name,
        "messages": messages,
        "do_image_splitting": split,
        "prompt": prompt,
        "expanded_prompt": expanded,
        "input_ids": input_ids,
        "image_grids": grids,
        "pixel_shape": list(inputs["pixel_values"].shape) if images else None,
        "n_image_tokens": n_image_tokens,
        "greedy_tokens": tokens,
        "greedy_margins": [round(m, 6) for m in margins],
        "greedy_text": proc.tokenizer.decode(tokens, skip_special_tokens=True),
    }
    names = []
    if images:
        pv = inputs["pixel_values"][0].to(torch.float32).contiguous()
        check(len(features) >= 1, f"{name}: connector was not called")
        feats = features[0].to(torch.float32).contiguous()
        check(feats.shape[0] == pv.shape[0] and n_image_tokens == feats.shape[0] * feats.shape[1], f"{name}: feature shape {tuple(feats.shape)}")
        check(bool(inputs["pixel_attention_mask"].all()), f"{name}: pixel attention mask is not full")
        tensors[f"{name}.pixel_values"] = pv
        tensors[f"{name}.image_features"] = feats
        names += [f"{name}.pixel_values", f"{name}.image_features"]
    else:
        check(len(features) == 0, f"{name}: connector ran without images")
    tensors[f"{name}.logits"] = logits.contiguous()
    names.append(f"{name}.logits")
    if name == "rgba":
        # What the image processor itself does with the RGBA picture handed over as it is
        # (composited onto white), checked against the re-implementation and recorded for
        # `AlphaMode::OverWhite`; it must differ from `load_image`'s pixels.
        raw = Image.open(FIX / paths[0])
        check(raw.mode == "RGBA", "rgba.png must load as RGBA")
        white = Image.new("RGBA", raw.size, (255, 255, 255, 255))
        composited = Image.alpha_composite(white, raw).convert("RGB")
        ip = proc.image_processor
        arr, _, _ = manual_pixel_values(composited, ip.size["longest_edge"], ip.max_image_size["longest_edge"], split)
        over_white = proc(text=prompt, images=[raw], return_tensors="pt")["pixel_values"][0].contiguous()
        check(torch.equal(torch.from_numpy(arr), over_white), "rgba: composited pixel values differ from the re-implementation")
        check(not torch.equal(over_white, tensors[f"{name}.pixel_values"]), "rgba: alpha made no difference")
        tensors[f"{name}.pixel_values_over_white"] = over_white
        names.append(f"{name}.pixel_values_over_white")
    if name in ("gray", "palette", "exif"):
        # For L and P (no transparency) pictures, handing the processor the raw image gives the same pixels.
        raw = ImageOps.exif_transpose(Image.open(FIX / paths[0]))
        direct = proc(text=prompt, images=[raw], return_tensors="pt")["pixel_values"][0]
        check(torch.equal(direct, tensors[f"{name}.pixel_values"]), f"{name}: raw-mode input gives different pixels")
    entry["tensors"] = names
    return entry


def vision_masked_case(model, tensors: dict) -> dict:
    """Run the Idefics3 vision tower directly with a partial patch mask (4 of 6 patch rows, 5 of 6 cols)."""
    vc = model.config.vision_config
    m, p = vc.image_size, vc.patch_size
    n = m // p
    valid_rows, valid_cols = 4, 5
    g = torch.Generator().manual_seed(7)
    pv = torch.rand((1, 3, m, m), generator=g) * 2.0 - 1.0
    pv[:, :, valid_rows * p :, :] = 0.0
    pv[:, :, :, valid_cols * p :] = 0.0
    patch_mask = torch.zeros((1, n, n), dtype=torch.bool)
    patch_mask[:, :valid_rows, :valid_cols] = True
    captured = []
    hook = model.model.vision_model.embeddings.position_embedding.register_forward_hook(
        lambda mod, i, o: captured.append(i[0].detach().clone())
    )
    with torch.no_grad():
        out = model.model.vision_model(pixel_values=pv, patch_attention_mask=patch_mask)
    hook.remove()
    check(len(captured) == 1, "position embedding hook did not fire exactly once")
    pos = captured[0].to(torch.int64).contiguous()
    tensors["vision_masked.pixel_values"] = pv.contiguous()
    tensors["vision_masked.patch_attention_mask"] = patch_mask.to(torch.uint8).contiguous()
    tensors["vision_masked.position_ids"] = pos
    tensors["vision_masked.last_hidden_state"] = out.last_hidden_state.to(torch.float32).contiguous()
    return {
        "name": "vision_masked",
        "model": "tiny-idefics3",
        "valid_patch_rows": valid_rows,
        "valid_patch_cols": valid_cols,
        "position_ids": pos[0].tolist(),
        "tensors": [
            "vision_masked.pixel_values",
            "vision_masked.patch_attention_mask",
            "vision_masked.position_ids",
            "vision_masked.last_hidden_state",
        ],
    }


# --------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------


def main() -> None:
    # Only what this script writes: the reference directory also holds the real-weights and
    # tokenizer references of other scripts.
    for d in (IMAGES, MODELS):
        if d.exists():
            shutil.rmtree(d)
    for own in ("cases.json", *(f"{name}.safetensors" for name in SPECS)):
        (REFERENCE / own).unlink(missing_ok=True)
    build_images()
    REFERENCE.mkdir(parents=True, exist_ok=True)

    per_model = {}
    cases_out = []
    for name, spec in SPECS.items():
        written = build_model_dir(name, spec)
        model = load_reference_model(name, spec, written)
        proc = load_processor(name)
        raw_tok = Tokenizer.from_file(str(MODELS / name / "tokenizer.json"))
        tensors: dict[str, torch.Tensor] = {}
        for case in CASES:
            if case[1] == name:
                cases_out.append(run_case(case, model, proc, raw_tok, tensors))
        if name == "tiny-idefics3":
            cases_out.append(vision_masked_case(model, tensors))
        save_file(dict(sorted(tensors.items())), str(REFERENCE / f"{name}.safetensors"), metadata={"format": "pt"})
        probes = []
        for text in TOKENIZER_PROBES:
            hf_ids = proc.tokenizer(text)["input_ids"]
            entry = {"text": text, "ids": hf_ids}
            raw_ids = raw_tok.encode(text).ids
            if raw_ids != hf_ids:
                entry["tokenizer_json_ids"] = raw_ids
            probes.append(entry)
        tc = model.config.text_config
        per_model[name] = {
            "model_type": spec["model_type"],
            "specials": written["specials"],
            "vocab_size": written["config"]["vocab_size"],
            "image_seq_len": image_seq_len(spec),
            "image_token_id": model.config.image_token_id,
            "weight_files": written["weight_files"],
            "weights_dtype": str(spec["dtype"]).replace("torch.", ""),
            "tie_word_embeddings": spec["tied"],
            "tie_config_key": "tie_word_embeddings (top level of config.json)",
            "tokenizer_class": type(proc.tokenizer).__name__,
            "tokenizer_pre_tokenizer": str(proc.tokenizer.backend_tokenizer.pre_tokenizer),
            "tokenizer_probes": probes,
            "resolved": {
                "rms_norm_eps": tc.rms_norm_eps,
                "rope_theta": tc.rope_parameters["rope_theta"],
                "head_dim": tc.head_dim,
                "vision_layer_norm_eps": model.config.vision_config.layer_norm_eps,
                "vision_hidden_act": model.config.vision_config.hidden_act,
            },
        }

    doc = {
        "generator": {
            "script": "scripts/make_fixtures.py",
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "pillow": PIL.__version__,
            "tokenizers": tokenizers.__version__,
            "numpy": np.__version__,
            "image_processor_backend": "pil",
            "attn_implementation": "eager",
            "dtype": "float32",
            "greedy_steps": GREEDY_STEPS,
            "eos_ignored": True,
        },
        "models": per_model,
        "cases": cases_out,
    }
    write_json(REFERENCE / "cases.json", doc)
    total = sum(f.stat().st_size for f in FIX.rglob("*") if f.is_file())
    print(f"wrote {FIX.relative_to(REPO)} ({total / 1e6:.2f} MB)")
    for c in cases_out:
        if "greedy_margins" in c:
            print(f"{c['name']:>14}: distinct={len(set(c['greedy_tokens'])):2d} min_margin={min(c['greedy_margins']):.4f} {c['greedy_tokens']}")


if __name__ == "__main__":
    main()
