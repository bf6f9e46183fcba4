#!/usr/bin/env python3
"""Converts a Hugging Face model directory to GGUF with llama.cpp's own
converter, for the import parity check (scripts/check_gguf_import.py) on
architectures whose real GGUF files are not on PyPI. Run by hand, not in CI.

    # llama.cpp's converter ships in the llama-cpp-python sdist:
    curl -sL -o lcp.tar.gz "$(curl -s https://pypi.org/pypi/llama-cpp-python/json | python3 -c \
      'import json,sys; print([u["url"] for u in json.load(sys.stdin)["urls"] if u["packagetype"]=="sdist"][0])')"
    tar xzf lcp.tar.gz
    python3 scripts/llama_cpp_convert.py llama_cpp_python-*/vendor/llama.cpp SRC_DIR OUT.gguf [f32|f16|q8_0]

The converter recognises BPE pre-tokenizers by hashing how they split a test
string; the tiny test fixtures' tokenizers are trained for this project, so
their hash is unknown to it. They use GPT-2's byte-level pre-tokenizer, so
this script tells the converter "gpt2". A GPT-2 config written by
transformers ≥ 5 lacks `n_ctx`; it is copied from `n_positions`.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

llama_cpp, src, out = sys.argv[1:4]
outtype = sys.argv[4] if len(sys.argv) > 4 else "f32"
work = tempfile.mkdtemp()
model = os.path.join(work, "model")
shutil.copytree(src, model)
config_path = os.path.join(model, "config.json")
with open(config_path) as f:
    config = json.load(f)
if config.get("model_type") == "gpt2" and "n_ctx" not in config:
    config["n_ctx"] = config["n_positions"]
with open(config_path, "w") as f:
    json.dump(config, f, indent=1)
driver = f"""
import sys, runpy
sys.path.insert(0, {os.path.join(llama_cpp, 'gguf-py')!r})
sys.path.insert(0, {llama_cpp!r})
from conversion import base
base.TextModel.get_vocab_base_pre = lambda self, tokenizer: "gpt2"
sys.argv = ["convert_hf_to_gguf.py", {model!r}, "--outfile", {out!r}, "--outtype", {outtype!r}]
runpy.run_path({os.path.join(llama_cpp, 'convert_hf_to_gguf.py')!r}, run_name="__main__")
"""
subprocess.run([sys.executable, "-c", driver], check=True)
