#!/usr/bin/env python3
"""Convert the tiny checkpoints under tests/fixtures/models into llama.cpp GGUF pairs.

Each checkpoint becomes a text GGUF (``general.architecture = llama``) and an mmproj
GGUF (``general.architecture = clip``, ``clip.projector_type = idefics3``), laid out the
way llama.cpp's ``convert_hf_to_gguf.py`` lays out SmolVLM / Idefics3 checkpoints:

* text: ``LlamaModel`` (registered for ``VLlama3ForCausalLM``). ``model.text_model.`` is
  stripped, vision/connector tensors are skipped, Q/K rows are permuted for llama.cpp's
  interleaved RoPE, norms and 1-D tensors are F32, ``output.weight`` only exists when the
  checkpoint has an ``lm_head`` (untied). Tokenizer metadata is the gpt2/BPE layout.
* mmproj: ``SmolVLMModel(MmprojModel)``. Only ``model.vision_model.*`` and
  ``model.connector.*`` are kept, the patch/position embeddings are forced to F32, and
  the hyperparameters go into ``clip.*`` keys.

Hyperparameters come from ``transformers.AutoConfig(...).to_dict()`` (so library defaults
such as the vision ``layer_norm_eps`` are filled in, as in the converter); tensor names,
metadata key names, quantization and the special-token / merges / chat-template reader
come from the ``gguf`` package (llama.cpp's gguf-py).

Outputs (tests/fixtures/gguf/):

  tiny-smolvlm-f32.gguf          mmproj-tiny-smolvlm-f32.gguf       all F32
  tiny-smolvlm-q8_0.gguf         mmproj-tiny-smolvlm-q8_0.gguf      Q8_0, F16 fallback
  tiny-idefics3-f16.gguf         mmproj-tiny-idefics3-f16.gguf      F16, untied output
  tiny-idefics3-q8_0.gguf                                            Q8_0 text (all rows % 32 == 0)
  mmproj-tiny-smolvlm-legacy.gguf  F32; fc1/fc2 named ffn_down/ffn_up, no preproc_image_size

Run from the repository root:

    /work/venv/bin/python scripts/make_gguf_fixtures.py

The script then reads every file back with ``gguf.GGUFReader``, prints the tensor table,
and checks the F32 files against the safetensors weights (exactly, after undoing the
Q/K permutation) and the F16/Q8_0 files approximately. Output is deterministic.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections import Counter
from hashlib import sha256
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import gguf
import numpy as np
import torch
from safetensors import safe_open
from transformers import AutoConfig, AutoTokenizer

REPO = Path(__file__).resolve().parent.parent
MODELS = REPO / "tests" / "fixtures" / "models"
OUT = REPO / "tests" / "fixtures" / "gguf"

GT = gguf.GGMLQuantizationType
FT = gguf.LlamaFileType

# sha256 of str(token ids) of the converter's probe text, for HuggingFaceTB/SmolLM-135M
# (the SmolLM / SmolLM2 / SmolVLM tokenizer family); the converter maps it to "smollm".
SMOLLM_PRE_HASH = "855059429035d75a914d1eda9f10a876752e281a054a7a3d421ef0533e5b6249"

# The text the converter encodes to fingerprint a BPE pre-tokenizer (get_vocab_base_pre).
PRE_TOKENIZER_PROBE = (
    "\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n🚀 (normal) 😶\u200d🌫️ (multiple emojis "
    "concatenated) ✅ 🦙🦙 3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 "
    "កាន់តែពិសេសអាច😁 ?我想在apple工作1314151天～ ------======= нещо на Български "
    "''''''```````\"\"\"\"......!!!!!!?????? I've been 'told he's there, 'RE you sure? "
    "'M not sure I'll make it, 'D you like some tea? We'Ve a'lL"
)

logging.basicConfig(level=logging.WARNING)
log = logging.getLogger("make_gguf_fixtures")

NOTES: list[str] = []


def check(cond: bool, msg: str) -> None:
    if not cond:
        raise SystemExit(f"gguf fixture check failed: {msg}")


# --------------------------------------------------------------------------------------
# Reading the checkpoint
# --------------------------------------------------------------------------------------


def load_hparams(model_dir: Path) -> dict:
    """Config as the converter sees it: AutoConfig with library defaults filled in."""
    try:
        return AutoConfig.from_pretrained(model_dir, trust_remote_code=False).to_dict()
    except Exception as e:  # the converter falls back to the raw file as well
        log.warning("AutoConfig failed for %s (%s); using config.json", model_dir, e)
        return json.loads((model_dir / "config.json").read_text(encoding="utf-8"))


def safetensors_parts(model_dir: Path) -> list[str]:
    index = model_dir / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        return sorted(dict.fromkeys(weight_map.values()))
    return sorted(p.name for p in model_dir.iterdir() if p.name.startswith("model") and p.name.endswith(".safetensors"))


def load_tensors(model_dir: Path) -> dict[str, torch.Tensor]:
    """All checkpoint tensors, parts in sorted order and names sorted inside each part."""
    out: dict[str, torch.Tensor] = {}
    for part in safetensors_parts(model_dir):
        with safe_open(model_dir / part, framework="pt") as f:
            for name in sorted(f.keys()):
                out[name] = f.get_tensor(name)
    return out


# --------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------


def permute_qk(w: torch.Tensor, n_head: int) -> torch.Tensor:
    """HF rotate-half row order -> llama.cpp interleaved (NORM) RoPE row order.

    Rows of each head are [x0..x(h/2-1), y0..y(h/2-1)]; after the permutation they are
    [x0, y0, x1, y1, ...]: w.reshape(n_head, 2, hd/2, in).swapaxes(1, 2).reshape(w.shape).
    """
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def unpermute_qk(w: np.ndarray, n_head: int) -> np.ndarray:
    return w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def ftype_default(ftype: FT) -> GT:
    return {FT.ALL_F32: GT.F32, FT.MOSTLY_F16: GT.F16, FT.MOSTLY_BF16: GT.BF16, FT.MOSTLY_Q8_0: GT.Q8_0}[ftype]


def encode(data: np.ndarray, qtype: GT, new_name: str, fallbacks: list[str]) -> tuple[np.ndarray, GT]:
    """Quantize like the converter: a row length the block size does not divide falls back to F16."""
    try:
        return gguf.quants.quantize(data, qtype), qtype
    except gguf.QuantError:
        fallbacks.append(f"{new_name} (ne0={data.shape[-1]})")
        return gguf.quants.quantize(data, GT.F16), GT.F16


def find_key(d: dict, keys: list[str]):
    return next((d[k] for k in keys if k in d), None)


def write_file(writer: gguf.GGUFWriter, path: Path) -> None:
    writer.write_header_to_file(path=path)
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def add_general(writer: gguf.GGUFWriter, model_dir: Path, type_name: str) -> None:
    total_params = writer.get_total_parameter_count()[0]
    meta = gguf.Metadata.load(None, model_dir, None, total_params)
    if meta.name is None:
        meta.name = model_dir.name
    if meta.size_label is None and total_params > 0:
        meta.size_label = gguf.size_label(*writer.get_total_parameter_count())
    writer.add_type(type_name)
    meta.set_gguf_meta_model(writer)


# --------------------------------------------------------------------------------------
# Text model (LlamaModel for VLlama3ForCausalLM)
# --------------------------------------------------------------------------------------


def is_multimodal_tensor(name: str) -> bool:
    return "vision_" in name or "patch_embedding" in name or "model.connector." in name


def pre_tokenizer_name(tokenizer, model_dir: Path) -> str:
    chkhsh = sha256(str(tokenizer.encode(PRE_TOKENIZER_PROBE)).encode()).hexdigest()
    if chkhsh == SMOLLM_PRE_HASH:
        return "smollm"
    NOTES.append(
        f"{model_dir.name}: pre-tokenizer hash {chkhsh[:16]}... is unknown to the converter "
        "(tiny 470-token vocab); wrote tokenizer.ggml.pre = smollm (SmolLM2 pre-tokenizer layout)"
    )
    return "smollm"


def add_vocab(writer: gguf.GGUFWriter, model_dir: Path, vocab_size: int) -> None:
    tok_cfg = json.loads((model_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
    if (add_prefix_space := tok_cfg.get("add_prefix_space")) is not None:
        writer.add_add_space_prefix(add_prefix_space)

    # gpt2 BPE vocab (no tokenizer.model and no byte_fallback, so not the SentencePiece paths)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    vocab = tokenizer.get_vocab()
    check(max(vocab.values()) < vocab_size, "tokenizer ids exceed vocab_size")
    tokpre = pre_tokenizer_name(tokenizer, model_dir)
    reverse = {i: t for t, i in vocab.items()}
    added_vocab = tokenizer.get_added_vocab()
    added_decoder = tokenizer.added_tokens_decoder
    tokens: list[str] = []
    toktypes: list[int] = []
    for i in range(vocab_size):
        if i not in reverse:
            tokens.append(f"[PAD{i}]")
            toktypes.append(gguf.TokenType.UNUSED)
            continue
        token = reverse[i]
        if token in added_vocab:
            if not added_decoder[i].normalized:
                token = tokenizer.decode(tokenizer.encode(token, add_special_tokens=False))
            looks_special = token.startswith("<|") and token.endswith("|>")
            if added_decoder[i].special or looks_special:
                toktypes.append(gguf.TokenType.CONTROL)
            else:
                token = token.replace("\u2581", " ")
                toktypes.append(gguf.TokenType.USER_DEFINED)
        else:
            toktypes.append(gguf.TokenType.NORMAL)
        tokens.append(token)

    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(tokpre)
    writer.add_token_list(tokens)
    writer.add_token_types(toktypes)
    # merges, bos/eos/unk/pad ids, add_*_token flags and chat template: gguf-py's reader
    gguf.SpecialVocab(model_dir, load_merges=True).add_to_gguf(writer, quiet=True)


def convert_text(model_dir: Path, ftype: FT, out_path: Path) -> dict:
    cfg = load_hparams(model_dir)
    hp = {**cfg, **cfg.get("text_config", {})}
    hp.setdefault("num_attention_heads", 32)
    n_head = hp["num_attention_heads"]
    n_kv = hp.get("num_key_value_heads", n_head)
    n_layer = hp["num_hidden_layers"]
    tmap = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, n_layer)

    writer = gguf.GGUFWriter(path=None, arch=gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
    fallbacks: list[str] = []
    for name, t in load_tensors(model_dir).items():
        if is_multimodal_tensor(name):
            continue
        name = name.replace("text_model.", "")
        if t.dtype not in (torch.float16, torch.float32):
            t = t.to(torch.float32)
        if name.endswith(("q_proj.weight", "q_proj.bias")):
            t = permute_qk(t, n_head)
        if name.endswith(("k_proj.weight", "k_proj.bias")):
            t = permute_qk(t, n_kv)
        new_name = tmap.get_name(name, try_suffixes=(".weight", ".bias"))
        check(new_name is not None, f"cannot map {name}")
        data = t.numpy()
        if data.ndim <= 1 or new_name.endswith("_norm.weight") or not new_name.endswith(".weight"):
            qtype = GT.F32
        else:
            qtype = ftype_default(ftype)
        data, qtype = encode(data, qtype, new_name, fallbacks)
        writer.add_tensor(new_name, data, raw_dtype=qtype)

    add_general(writer, model_dir, gguf.GGUFType.MODEL)
    # TextModel.set_gguf_parameters
    writer.add_block_count(n_layer)
    if (v := find_key(hp, ["max_position_embeddings", "n_ctx", "n_positions", "max_length"])) is not None:
        writer.add_context_length(v)
    writer.add_embedding_length(hp["hidden_size"])
    writer.add_feed_forward_length(hp["intermediate_size"])
    writer.add_head_count(n_head)
    if "num_key_value_heads" in hp:
        writer.add_head_count_kv(hp["num_key_value_heads"])
    rope = hp.get("rope_parameters", hp.get("rope_scaling")) or {}
    check(rope.get("rope_type", "default") == "default", "RoPE scaling is not expected in these fixtures")
    rope_theta = rope.get("rope_theta", hp.get("rope_theta"))
    if rope_theta is not None:
        writer.add_rope_freq_base(rope_theta)
    if (v := find_key(hp, ["rms_norm_eps", "norm_eps"])) is not None:
        writer.add_layer_norm_rms_eps(v)
    if (v := find_key(hp, ["layer_norm_eps", "layer_norm_epsilon", "norm_epsilon"])) is not None:
        writer.add_layer_norm_eps(v)
    if (head_dim := hp.get("head_dim")) is not None:
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
    writer.add_file_type(ftype)
    # LlamaModel.set_gguf_parameters
    writer.add_vocab_size(hp["vocab_size"])
    writer.add_rope_dimension_count(head_dim if head_dim is not None else hp["hidden_size"] // n_head)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    add_vocab(writer, model_dir, hp["vocab_size"])

    OUT.mkdir(parents=True, exist_ok=True)
    write_file(writer, out_path)
    return {"fallbacks": fallbacks, "n_head": n_head, "n_kv": n_kv}


# --------------------------------------------------------------------------------------
# mmproj (SmolVLMModel(MmprojModel))
# --------------------------------------------------------------------------------------


def preprocessor_config(model_dir: Path) -> dict:
    cfg: dict = {}
    p = model_dir / "preprocessor_config.json"
    if p.is_file():
        c = json.loads(p.read_text(encoding="utf-8"))
        cfg = {**cfg, **c, **c.get("media_proc_cfg", {})}
    p = model_dir / "processor_config.json"
    if p.is_file():
        c = json.loads(p.read_text(encoding="utf-8"))
        cfg = {**cfg, **c, **c.get("image_processor", {})}
    return cfg


def convert_mmproj(model_dir: Path, ftype: FT, out_path: Path, legacy: bool = False) -> dict:
    cfg = load_hparams(model_dir)
    n_embd_text = {**cfg, **cfg.get("text_config", {})}["hidden_size"]
    vp = dict(cfg["vision_config"])
    if vp.get("model_type") == "smolvlm_vision":
        vp.setdefault("hidden_size", 1152)
        vp.setdefault("num_attention_heads", 16)
        vp.setdefault("intermediate_size", 3072)
    n_block = vp["num_hidden_layers"]
    tmap = gguf.get_tensor_name_map(gguf.MODEL_ARCH.MMPROJ, n_block)
    pp = preprocessor_config(model_dir)

    writer = gguf.GGUFWriter(path=None, arch=gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.MMPROJ])
    fallbacks: list[str] = []
    for name, t in load_tensors(model_dir).items():
        if not ("vision_tower" in name or "vision_model" in name or "model.connector" in name):
            continue
        if t.dtype not in (torch.float16, torch.float32):
            t = t.to(torch.float32)
        new_name = tmap.get_name(name, try_suffixes=(".weight", ".bias"))
        check(new_name is not None, f"cannot map {name}")
        if legacy:
            # older converters named fc1 ffn_down and fc2 ffn_up
            if ".ffn_up." in new_name:
                new_name = new_name.replace(".ffn_up.", ".ffn_down.")
            elif ".ffn_down." in new_name:
                new_name = new_name.replace(".ffn_down.", ".ffn_up.")
        data = t.numpy()
        if ".embeddings." in name:
            qtype = GT.F32  # patch embedding (4-D), its bias, position embedding
        elif data.ndim <= 1 or new_name.endswith("_norm.weight") or not new_name.endswith(".weight"):
            qtype = GT.F32
        elif new_name.startswith("v.position_embd"):
            qtype = GT.F32
        else:
            qtype = ftype_default(ftype)
        data, qtype = encode(data, qtype, new_name, fallbacks)
        writer.add_tensor(new_name, data, raw_dtype=qtype)

    add_general(writer, model_dir, gguf.GGUFType.MMPROJ)
    # MmprojModel.set_gguf_parameters
    writer.add_file_type(ftype)
    writer.add_clip_has_vision_encoder(True)
    writer.add_vision_projection_dim(n_embd_text)
    image_size = vp["image_size"]
    writer.add_vision_image_size(image_size)
    writer.add_vision_patch_size(vp["patch_size"])
    writer.add_vision_embedding_length(vp["hidden_size"])
    writer.add_vision_feed_forward_length(vp["intermediate_size"])
    writer.add_vision_block_count(n_block)
    writer.add_vision_head_count(vp["num_attention_heads"])
    writer.add_vision_image_mean(pp["image_mean"])
    writer.add_vision_image_std(pp["image_std"])
    # SmolVLMModel.set_gguf_parameters
    writer.add_clip_projector_type(gguf.VisionProjectorType.IDEFICS3)
    writer.add_vision_attention_layernorm_eps(vp.get("layer_norm_eps", 1e-5))
    writer.add_vision_projector_scale_factor(cfg.get("scale_factor", 2))
    writer.add_vision_use_gelu(True)
    if not legacy:
        writer.add_vision_preproc_image_size(pp.get("size", {}).get("longest_edge", image_size))
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)

    OUT.mkdir(parents=True, exist_ok=True)
    write_file(writer, out_path)
    return {"fallbacks": fallbacks}


# --------------------------------------------------------------------------------------
# Read-back checks
# --------------------------------------------------------------------------------------


def field_value(reader: gguf.GGUFReader, key: str):
    f = reader.get_field(key)
    return None if f is None else f.contents()


def tensor_array(t) -> np.ndarray:
    """Tensor data as float32 in PyTorch (row-major, reversed-ne) order."""
    shape = tuple(int(x) for x in reversed(t.shape.tolist()))
    if t.tensor_type == GT.F32:
        return np.asarray(t.data, dtype=np.float32).reshape(shape)
    if t.tensor_type == GT.F16:
        return np.asarray(t.data, dtype=np.float16).astype(np.float32).reshape(shape)
    return gguf.quants.dequantize(np.asarray(t.data), t.tensor_type).reshape(shape)


def describe(path: Path) -> tuple[gguf.GGUFReader, Counter]:
    reader = gguf.GGUFReader(path)
    counts = Counter(t.tensor_type.name for t in reader.tensors)
    print(f"\n{path.relative_to(REPO)}  ({path.stat().st_size} bytes, {len(reader.tensors)} tensors: "
          + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())) + ")")
    for t in reader.tensors:
        print(f"    {t.name:28s} {t.tensor_type.name:5s} ne={t.shape.tolist()}")
    return reader, counts


def hf_reference(model_dir: Path) -> dict[str, np.ndarray]:
    return {k: v.to(torch.float32).numpy() for k, v in load_tensors(model_dir).items()}


def verify_text(path: Path, model_dir: Path, n_head: int, n_kv: int, exact: bool, tol: float) -> None:
    reader, _ = describe(path)
    ref = hf_reference(model_dir)
    cfg = load_hparams(model_dir)
    tc = cfg["text_config"]
    tmap = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, tc["num_hidden_layers"])
    by_name = {t.name: t for t in reader.tensors}
    expected = {}
    for hf_name in ref:
        if is_multimodal_tensor(hf_name):
            continue
        expected[tmap.get_name(hf_name.replace("text_model.", ""), try_suffixes=(".weight", ".bias"))] = hf_name
    check(set(by_name) == set(expected), f"{path.name}: tensor set mismatch {set(by_name) ^ set(expected)}")
    check(("output.weight" in by_name) == ("lm_head.weight" in ref), f"{path.name}: output.weight presence")
    for name, t in by_name.items():
        got = tensor_array(t)
        want = ref[expected[name]]
        if name.endswith("attn_q.weight"):
            got = unpermute_qk(got, n_head)
        elif name.endswith("attn_k.weight"):
            got = unpermute_qk(got, n_kv)
        check(got.shape == want.shape, f"{path.name}:{name} shape {got.shape} vs {want.shape}")
        if exact:
            check(np.array_equal(got, want), f"{path.name}:{name} differs from safetensors")
        else:
            err = float(np.max(np.abs(got - want)) / (np.max(np.abs(want)) + 1e-12))
            check(err <= tol, f"{path.name}:{name} relative error {err}")
        if t.tensor_type != GT.F32:
            check(not (name.endswith("_norm.weight") or len(want.shape) <= 1), f"{name} should be F32")
    # the permutation is not a no-op: the stored Q rows differ from the HF rows
    q = tensor_array(by_name["blk.0.attn_q.weight"])
    check(not np.array_equal(q, ref[expected["blk.0.attn_q.weight"]]), "Q permutation had no effect")

    kv = {f.name: field_value(reader, f.name) for f in reader.fields.values()}
    check(kv["general.architecture"] == "llama" and kv["general.type"] == "model", "general.* keys")
    check(kv["tokenizer.ggml.model"] == "gpt2" and kv["tokenizer.ggml.pre"] == "smollm", "tokenizer model/pre")
    check(len(kv["tokenizer.ggml.tokens"]) == tc["vocab_size"] == kv["llama.vocab_size"], "token count")
    check(kv["llama.rope.freq_base"] == float(tc["rope_parameters"]["rope_theta"]), "rope.freq_base")
    check(kv["llama.rope.dimension_count"] == tc["head_dim"], "rope.dimension_count")
    check("tokenizer.chat_template" in kv, "chat template missing")
    tok = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))
    check(len(kv["tokenizer.ggml.merges"]) == len(tok["model"]["merges"]), "merges count")
    print("    tokenizer: " + ", ".join(
        f"{k.removeprefix('tokenizer.ggml.')}={kv[k]}" for k in kv
        if k.startswith("tokenizer.ggml.") and k.endswith(("_id", "_token", "_prefix", "pre", "model"))))
    types = Counter(gguf.TokenType(x).name for x in kv["tokenizer.ggml.token_type"])
    print(f"    token types: {dict(types)}; {'exact' if exact else f'max rel err <= {tol}'} vs safetensors OK")


def verify_mmproj(path: Path, model_dir: Path, exact: bool, tol: float, legacy: bool = False) -> None:
    reader, _ = describe(path)
    ref = hf_reference(model_dir)
    cfg = load_hparams(model_dir)
    vc = cfg["vision_config"]
    tmap = gguf.get_tensor_name_map(gguf.MODEL_ARCH.MMPROJ, vc["num_hidden_layers"])
    by_name = {t.name: t for t in reader.tensors}
    expected = {}
    for hf_name in ref:
        if "vision_model" in hf_name or "model.connector" in hf_name:
            new = tmap.get_name(hf_name, try_suffixes=(".weight", ".bias"))
            if legacy:
                new = new.replace(".ffn_up.", ".@.").replace(".ffn_down.", ".ffn_up.").replace(".@.", ".ffn_down.")
            expected[new] = hf_name
    check(set(by_name) == set(expected), f"{path.name}: tensor set mismatch {set(by_name) ^ set(expected)}")
    for name, t in by_name.items():
        got = tensor_array(t)
        want = ref[expected[name]]
        check(got.shape == want.shape, f"{path.name}:{name} shape {got.shape} vs {want.shape}")
        if exact or t.tensor_type == GT.F32 and ".embd" in name:
            check(np.array_equal(got, want), f"{path.name}:{name} differs from safetensors")
        else:
            err = float(np.max(np.abs(got - want)) / (np.max(np.abs(want)) + 1e-12))
            check(err <= tol, f"{path.name}:{name} relative error {err}")
    for name in ("v.patch_embd.weight", "v.patch_embd.bias", "v.position_embd.weight"):
        check(by_name[name].tensor_type == GT.F32, f"{name} must be F32")
    check(len(by_name["v.patch_embd.weight"].shape) == 4, "patch embedding must stay 4-D")
    # clip.cpp swaps up/down when ffn_down.ne[0] == n_embd (the legacy naming)
    n_embd = vc["hidden_size"]
    swapped = int(by_name["v.blk.0.ffn_down.weight"].shape[0]) == n_embd
    check(swapped == legacy, f"{path.name}: ffn naming detection by shape")

    kv = {f.name: field_value(reader, f.name) for f in reader.fields.values()}
    check(kv["general.architecture"] == "clip" and kv["general.type"] == "mmproj", "general.* keys")
    check(kv["clip.projector_type"] == "idefics3" and kv["clip.has_vision_encoder"] is True, "clip keys")
    check(("clip.vision.preproc_image_size" in kv) != legacy, "preproc_image_size presence")
    mean_field = reader.get_field("clip.vision.image_mean")
    check(mean_field.types == [gguf.GGUFValueType.ARRAY, gguf.GGUFValueType.FLOAT32], "image_mean must be f32[]")
    print("    " + ", ".join(f"{k}={v}" for k, v in kv.items() if k.startswith("clip.")))
    print(f"    {'exact' if exact else f'max rel err <= {tol}'} vs safetensors OK; ffn names legacy={swapped}")


# --------------------------------------------------------------------------------------


def main() -> None:
    smol = MODELS / "tiny-smolvlm"
    idf = MODELS / "tiny-idefics3"
    OUT.mkdir(parents=True, exist_ok=True)
    for p in OUT.glob("*.gguf"):
        p.unlink()

    jobs_text = [
        ("tiny-smolvlm-f32.gguf", smol, FT.ALL_F32, True, 0.0),
        ("tiny-smolvlm-q8_0.gguf", smol, FT.MOSTLY_Q8_0, False, 1e-2),
        ("tiny-idefics3-f16.gguf", idf, FT.MOSTLY_F16, False, 1e-3),
        ("tiny-idefics3-q8_0.gguf", idf, FT.MOSTLY_Q8_0, False, 1e-2),
    ]
    jobs_mm = [
        ("mmproj-tiny-smolvlm-f32.gguf", smol, FT.ALL_F32, True, 0.0, False),
        ("mmproj-tiny-smolvlm-q8_0.gguf", smol, FT.MOSTLY_Q8_0, False, 1e-2, False),
        ("mmproj-tiny-idefics3-f16.gguf", idf, FT.MOSTLY_F16, False, 1e-3, False),
        ("mmproj-tiny-smolvlm-legacy.gguf", smol, FT.ALL_F32, True, 0.0, True),
    ]
    fallback_report = {}
    for fname, mdir, ftype, exact, tol in jobs_text:
        info = convert_text(mdir, ftype, OUT / fname)
        fallback_report[fname] = info["fallbacks"]
        verify_text(OUT / fname, mdir, info["n_head"], info["n_kv"], exact, tol)
    for fname, mdir, ftype, exact, tol, legacy in jobs_mm:
        info = convert_mmproj(mdir, ftype, OUT / fname, legacy=legacy)
        fallback_report[fname] = info["fallbacks"]
        verify_mmproj(OUT / fname, mdir, exact, tol, legacy=legacy)

    print("\nF16 fallbacks (row length not a multiple of 32):")
    for fname, fb in fallback_report.items():
        if "q8_0" in fname:
            print(f"  {fname}: {len(fb)} tensors" + (": " + ", ".join(fb) if fb else ""))
    for note in dict.fromkeys(NOTES):
        print("note:", note)
    total = sum(p.stat().st_size for p in OUT.glob("*.gguf"))
    print(f"\ntotal {total} bytes in {OUT.relative_to(REPO)}")
    check(total < 2 * 1024 * 1024, "fixtures exceed 2 MB")


if __name__ == "__main__":
    sys.exit(main())
