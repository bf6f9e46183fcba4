#!/usr/bin/env bash
# The issue's table in one sitting: hone and PyTorch, fp32 and bf16, on the
# three jobs (GPT-2 124M full, SmolLM2-135M full, SmolLM2-135M LoRA r=16),
# B=4 T=128, 2 threads, median of 5 steps after 2 warm-up steps. Each run
# prints one JSON line; run on a quiet machine (a helper, not part of CI).
#
#   pip install torch transformers peft
#   ./benches/side_by_side.sh > table.jsonl
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p trainer --bin hone >&2
THREADS="${THREADS:-2}"
for job in "gpt2-124m full" "smollm2-135m full" "smollm2-135m lora"; do
    set -- $job
    for precision in f32 bf16; do
        ./target/release/hone bench --arch "$1" --mode "$2" --threads "$THREADS" --precision "$precision" --json
    done
    python3 benches/pytorch_reference.py --arch "$1" --mode "$2" --threads "$THREADS" 2>/dev/null
    python3 benches/pytorch_reference.py --arch "$1" --mode "$2" --threads "$THREADS" --bf16 2>/dev/null
done
