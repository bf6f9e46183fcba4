#!/usr/bin/env python3
"""The `hone bench` jobs in PyTorch, for side-by-side measurements (a helper,
not part of CI). Same shapes and settings: random init, AdamW, B×T random
tokens with labels = inputs, warm-up steps then timed steps, median.

    pip install torch transformers peft
    python3 benches/pytorch_reference.py --arch smollm2-135m --mode lora --threads 2 [--bf16]
    python3 benches/pytorch_reference.py --arch path/to/model-dir --mode lora --prompt-fraction 0.75

Prints one JSON object with hone's field names.
"""

import argparse
import json
import os
import resource
import statistics
import time

import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM


def build(arch):
    if os.path.isdir(arch):  # a Hugging Face model directory, as `hone bench --arch DIR`
        from transformers import AutoModelForCausalLM
        return AutoModelForCausalLM.from_pretrained(arch, dtype=torch.float32)
    if arch == "gpt2-124m":
        return GPT2LMHeadModel(GPT2Config())
    if arch == "smollm2-135m":
        return LlamaForCausalLM(LlamaConfig(
            vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
            num_key_value_heads=3, max_position_embeddings=8192, rope_theta=100000.0, rms_norm_eps=1e-5,
            tie_word_embeddings=True))
    raise SystemExit(f"unknown arch {arch}")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--arch", required=True)
    p.add_argument("--mode", default="full")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--bf16", action="store_true", help="torch.autocast(cpu, bfloat16)")
    p.add_argument("--prompt-fraction", type=float, default=0.0,
                   help="labels of this leading fraction of each row are -100, as a chat prompt's are")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = build(a.arch)
    if a.mode == "lora":
        from peft import LoraConfig, get_peft_model
        targets = ["c_attn", "c_proj", "c_fc"] if a.arch.startswith("gpt2") else \
            ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
        model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=targets,
                                                 task_type="CAUSAL_LM"))
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    vocab = model.config.vocab_size
    ids = torch.randint(0, vocab, (a.batch_size, a.seq_len))
    labels = ids.clone()
    labels[:, :round(a.prompt_fraction * a.seq_len)] = -100
    times, losses = [], []
    for i in range(a.warmup + a.steps):
        t = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.bf16):
            loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if i >= a.warmup:
            times.append(time.perf_counter() - t)
    step = statistics.median(times)
    print(json.dumps({
        "impl": "pytorch" + ("-bf16-autocast" if a.bf16 else ""), "arch": a.arch, "mode": a.mode,
        "batch_size": a.batch_size, "seq_len": a.seq_len, "threads": a.threads, "prompt_fraction": a.prompt_fraction, "step_s": step,
        "tokens_per_s": a.batch_size * a.seq_len / step,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "first_loss": losses[0], "last_loss": losses[-1], "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
