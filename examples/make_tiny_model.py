#!/usr/bin/env python3
"""Builds examples/models/tallow-tiny: a small, randomly initialised
Llama-style model (about 0.9M parameters, bf16) with a byte-level BPE
tokenizer trained on the sample FAQ data and a ChatML chat template.

It exists so the README's first command has something to fine-tune that is
small enough for any laptop and CI: it knows nothing before training (its
"before" answers are noise) and learns the FAQ's answers during it. Run by hand:

    pip install torch transformers tokenizers
    python3 examples/make_tiny_model.py
"""

import json
import os
import shutil

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "models", "tallow-tiny")
CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def corpus():
    for name in ["faq_train.jsonl", "faq_val.jsonl"]:
        with open(os.path.join(HERE, "data", name)) as f:
            for line in f:
                for m in json.loads(line)["messages"]:
                    yield m["content"]


def main():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(corpus(), trainers.BpeTrainer(
        vocab_size=1024, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|im_end|>",
                                   pad_token="<|endoftext|>")
    fast.chat_template = CHATML
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(fast), hidden_size=128, intermediate_size=384, num_hidden_layers=4, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=512, rms_norm_eps=1e-5, rope_theta=10000.0,
        tie_word_embeddings=True, bos_token_id=0, eos_token_id=fast.eos_token_id, pad_token_id=0))
    shutil.rmtree(OUT, ignore_errors=True)
    model.to(torch.bfloat16).save_pretrained(OUT, safe_serialization=True)
    fast.save_pretrained(OUT)
    print(f"{OUT}: {sum(p.numel() for p in model.parameters())} parameters")


if __name__ == "__main__":
    main()
