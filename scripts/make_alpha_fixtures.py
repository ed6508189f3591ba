#!/usr/bin/env python3
"""Reference pixels for images with transparency and unusual modes, as a transformers user gets them.

The SmolVLM model cards open pictures with ``transformers.image_utils.load_image`` (and
``apply_chat_template`` does the same for ``{"type": "image", "path": ...}``): EXIF transpose,
then Pillow's ``convert("RGB")``, which drops alpha without compositing (the colour under a
transparent pixel is kept), maps palette indices to their colours whatever their
transparency, and converts CMYK and 16-bit grey with Pillow's own formulas.

What it writes under ``tests/fixtures/alpha/``:

* one small image per case (PNG modes LA, P with a transparent index, P with a partial-alpha
  palette, L and RGB with a transparency key, 16-bit grey, a lossless WebP with alpha, a GIF
  with a transparent index, a CMYK JPEG);
* ``reference.safetensors``, per case: ``<name>.load_image`` (uint8, H x W x 3: ``load_image``'s
  pixels), ``<name>.rgb`` (what the image processor resizes: its ``convert_to_rgb`` turns a
  colour key that survived ``convert("RGB")`` white) and ``<name>.pixel_values`` (float32, the
  tiny-smolvlm PIL image processor's output without splitting); plus
  ``rgba_png.rgb_over_white`` and ``rgba_png.pixel_values_over_white``: what the image
  processor does with the RGBA picture handed to it directly (composited onto white).

Run from the repository root in the venv of ``scripts/requirements.txt``, after
``make_fixtures.py`` (it reads the tiny-smolvlm processor configuration)::

    python scripts/make_alpha_fixtures.py

Everything is drawn deterministically; the run takes a few seconds.
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import torch
from PIL import Image, ImageDraw
from safetensors.torch import save_file
from transformers import AutoImageProcessor
from transformers.image_transforms import convert_to_rgb
from transformers.image_utils import load_image

REPO = Path(__file__).resolve().parent.parent
FIX = REPO / "tests" / "fixtures"
OUT = FIX / "alpha"
MODEL = FIX / "models" / "tiny-smolvlm"
W, H = 36, 24


def check(cond: bool, msg: str) -> None:
    if not cond:
        raise SystemExit(f"check failed: {msg}")


def gradient() -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:H, 0:W]
    return y, x


def rgb_base() -> np.ndarray:
    y, x = gradient()
    arr = np.zeros((H, W, 3), dtype=np.uint8)
    arr[..., 0] = 200 - x * 3
    arr[..., 1] = x * 7
    arr[..., 2] = y * 10
    return arr


def alpha_mask() -> np.ndarray:
    """Opaque, half-transparent and fully transparent regions."""
    y, x = gradient()
    a = np.full((H, W), 255, dtype=np.uint8)
    a[:, : W // 3] = (y[:, : W // 3] * 255 // (H - 1)).astype(np.uint8)
    a[6:18, W // 3 : 2 * W // 3] = 100
    a[4:20, 2 * W // 3 + 2 : W - 2] = 0
    return a


def make_rgba() -> Image.Image:
    arr = np.dstack([rgb_base(), alpha_mask()])
    # A saturated colour hidden under the fully transparent block.
    arr[4:20, 2 * W // 3 + 2 : W - 2, :3] = (0, 255, 0)
    return Image.fromarray(arr, "RGBA")


def make_la() -> Image.Image:
    y, x = gradient()
    grey = ((x * 5 + y * 3) % 256).astype(np.uint8)
    grey[4:20, 2 * W // 3 + 2 : W - 2] = 17
    return Image.fromarray(np.dstack([grey, alpha_mask()]), "LA")


def palette_image() -> Image.Image:
    img = Image.new("RGB", (W, H), (250, 240, 220))
    d = ImageDraw.Draw(img)
    d.rectangle([2, 2, 14, 12], fill=(200, 30, 30))
    d.rectangle([16, 4, 33, 20], fill=(30, 120, 200))
    d.ellipse([6, 10, 22, 23], fill=(40, 160, 60))
    pal = img.quantize(colors=6, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    check(pal.mode == "P", "quantize must give mode P")
    return pal


def index_of(img: Image.Image, xy: tuple[int, int]) -> int:
    return int(img.getpixel(xy))


def save_png_p_index(path: Path) -> None:
    pal = palette_image()
    # The blue rectangle's index becomes fully transparent.
    pal.save(path, transparency=index_of(pal, (25, 12)))


def save_png_p_alpha(path: Path) -> None:
    pal = palette_image()
    alphas = bytearray([255] * 6)
    alphas[index_of(pal, (25, 12))] = 0
    alphas[index_of(pal, (8, 6))] = 90
    pal.save(path, transparency=bytes(alphas))


def save_png_l_key(path: Path) -> None:
    y, x = gradient()
    grey = ((x * 9) % 256).astype(np.uint8)
    Image.fromarray(grey, "L").save(path, transparency=int(grey[5, 10]))


def save_png_rgb_key(path: Path) -> None:
    arr = rgb_base()
    arr[8:16, 8:28] = (10, 20, 30)
    Image.fromarray(arr, "RGB").save(path, transparency=(10, 20, 30))


def save_png_i16(path: Path) -> None:
    y, x = gradient()
    # Values below and far above 255: Pillow's I;16 → RGB conversion clips.
    v = (x * 40 + y * 900).astype(np.uint16)
    Image.frombytes("I;16", (W, H), v.astype("<u2").tobytes()).save(path)


def save_webp_rgba(path: Path) -> None:
    make_rgba().save(path, lossless=True, exact=True)


def save_gif_transparent(path: Path) -> None:
    pal = palette_image()
    pal.save(path, transparency=index_of(pal, (25, 12)))


def save_cmyk_jpeg(path: Path) -> None:
    y, x = gradient()
    arr = np.zeros((H, W, 4), dtype=np.uint8)
    arr[..., 0] = x * 7
    arr[..., 1] = y * 10
    arr[..., 2] = 255 - x * 7
    arr[..., 3] = (x + y) * 3
    Image.fromarray(arr, "CMYK").save(path, quality=100, subsampling=0)


CASES = {
    "rgba.png": (lambda p: make_rgba().save(p), "RGBA"),
    "la.png": (lambda p: make_la().save(p), "LA"),
    "p_index.png": (save_png_p_index, "P"),
    "p_alpha.png": (save_png_p_alpha, "P"),
    "l_key.png": (save_png_l_key, "L"),
    "rgb_key.png": (save_png_rgb_key, "RGB"),
    "i16.png": (save_png_i16, "I;16"),
    "rgba.webp": (save_webp_rgba, "RGBA"),
    "p_index.gif": (save_gif_transparent, "P"),
    "cmyk.jpg": (save_cmyk_jpeg, "CMYK"),
}


def main() -> None:
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    processor = AutoImageProcessor.from_pretrained(MODEL, backend="pil")
    check(processor.__class__.__name__ == "SmolVLMImageProcessorPil", f"got {processor.__class__.__name__}")
    tensors: dict[str, torch.Tensor] = {}
    for file, (write, mode) in CASES.items():
        path = OUT / file
        write(path)
        opened = Image.open(path)
        check(opened.mode == mode, f"{file}: opens as {opened.mode}, expected {mode}")
        check("transparency" in opened.info or mode not in ("P", "L", "RGB"), f"{file}: no transparency entry")
        picture = load_image(str(path))
        check(picture.mode == "RGB", f"{file}: load_image gave {picture.mode}")
        name = file.replace(".", "_")
        # What the image processor resizes: its `convert_to_rgb` composites what transparency
        # survived `convert("RGB")` (a single colour key) onto white.
        seen = convert_to_rgb(picture, return_numpy=True)
        tensors[f"{name}.rgb"] = torch.from_numpy(np.asarray(seen, dtype=np.uint8).copy())
        tensors[f"{name}.load_image"] = torch.from_numpy(np.asarray(picture, dtype=np.uint8).copy())
        pv = processor([[picture]], do_image_splitting=False, return_tensors="pt")["pixel_values"]
        tensors[f"{name}.pixel_values"] = pv[0].to(torch.float32).contiguous()
    # The image processor's own handling of an RGBA picture, for the compositing mode.
    rgba = Image.open(OUT / "rgba.png")
    over_white = processor([[rgba]], do_image_splitting=False, return_tensors="pt")["pixel_values"][0]
    tensors["rgba_png.pixel_values_over_white"] = over_white.to(torch.float32).contiguous()
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    composited = Image.alpha_composite(white, rgba).convert("RGB")
    tensors["rgba_png.rgb_over_white"] = torch.from_numpy(np.asarray(composited, dtype=np.uint8).copy())
    check(
        not torch.equal(tensors["rgba_png.rgb"], tensors["rgba_png.rgb_over_white"]),
        "rgba: compositing made no difference",
    )
    save_file(dict(sorted(tensors.items())), str(OUT / "reference.safetensors"), metadata={"format": "pt"})
    total = sum(f.stat().st_size for f in OUT.iterdir())
    print(f"wrote {OUT.relative_to(REPO)}: {len(CASES)} images, {total / 1e3:.1f} kB")


if __name__ == "__main__":
    main()
