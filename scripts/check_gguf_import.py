#!/usr/bin/env python3
"""Import parity, run by hand (CI has no Python): transformers loads a GGUF file
itself; hone's import of the same file must give the same logits, token ids
and chat rendering. Usage (from the repository root):

    pip install torch transformers gguf
    cargo build --release -p trainer --examples --bin hone
    python3 scripts/check_gguf_import.py FILE.gguf [--reference HF_DIR]

`--reference` compares the logits with transformers loading HF_DIR, the
model the GGUF was converted from, instead of the GGUF itself: transformers'
GGUF loader ignores Llama 3.1+'s `rope_freqs` tensor, so for those files it
is not a reference. (scripts/llama_cpp_convert.py makes GGUF files from the
test fixtures with llama.cpp's own converter.)
"""

import json
import os
import subprocess
import sys
import tempfile

import torch
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

STRINGS = [
    "Hello world",
    "  two leading spaces and a tab\\there",
    "Unicode: Größe, café, 東京, emoji 🙂",
    "def f(x):\\n    return x ** 2  # code\\n",
    "numbers 1234567 and 3.14159",
    "<|im_start|>user\\nhi<|im_end|>",
]
PROMPTS = [[(i * 37 % 290 + 3) for i in range(16)]]


def main():
    gguf = os.path.abspath(sys.argv[1])
    work = tempfile.mkdtemp()
    out = os.path.join(work, "imported")
    subprocess.run(["target/release/hone", "import-gguf", gguf, "--out", out, "--dtype", "f32"], check=True)
    subprocess.run(["target/release/examples/dump_logits", out, os.path.join(work, "hone.st")], check=True)
    d, f = os.path.dirname(gguf), os.path.basename(gguf)
    if "--reference" in sys.argv:
        model = AutoModelForCausalLM.from_pretrained(sys.argv[sys.argv.index("--reference") + 1], dtype=torch.float32)
    else:
        config = AutoConfig.from_pretrained(d, gguf_file=f)
        if config.model_type == "gpt2":
            # transformers maps gpt2.context_length to n_ctx only; the position table is n_positions.
            config.n_positions = config.n_ctx
        model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, config=config, dtype=torch.float32)
    model = model.eval()
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    ids = torch.tensor(PROMPTS[0]).reshape(2, 8)
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    hone_logits = load_file(os.path.join(work, "hone.st"))["logits"]
    diff = (logits - hone_logits).abs().max().item()
    print(f"logits: max |transformers - hone| = {diff:.2e} (max |logit| {logits.abs().max().item():.1f})")
    # Which side the f32 rounding is on: both against transformers in float64.
    with torch.no_grad():
        exact = model.double()(input_ids=ids).logits
    hone_err, torch_err = (hone_logits.double() - exact).abs().max().item(), (logits.double() - exact).abs().max().item()
    print(f"against float64 transformers: hone {hone_err:.2e}, float32 transformers {torch_err:.2e}")
    with open(os.path.join(work, "strings.txt"), "w") as fh:
        fh.write("\n".join(STRINGS) + "\n")
    hone = json.loads(subprocess.run(["target/release/examples/dump_tokens", out, os.path.join(work, "strings.txt")],
                                     check=True, capture_output=True, text=True).stdout)
    same = 0
    for s, h in zip(STRINGS, hone["ids"]):
        t = tok(s.replace("\\n", "\n").replace("\\t", "\t"))["input_ids"]
        same += t == h
        if t != h:
            print("ids differ for", repr(s), t, h)
    print(f"token ids: {same}/{len(STRINGS)} strings identical")
    chat = [{"role": "user", "content": "Hello! Can you help me?"}, {"role": "assistant", "content": "Of course."},
            {"role": "user", "content": "What is 2 + 2?"}]
    rendered = tok.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    print("chat rendering identical:", rendered == hone["chat"])
    # Within 1e-4, or no further from the float64 result than transformers' own float32 run.
    ok = (diff < 1e-4 or hone_err <= torch_err) and same == len(STRINGS) and rendered == hone["chat"]
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
