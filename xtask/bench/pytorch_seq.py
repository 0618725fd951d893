"""makemore.py's sequence models (Transformer, GRU, RNN, BoW) in PyTorch (eager), timed like `makemore bench`:
training steps of AdamW (makemore.py's settings: lr 5e-4, weight decay 0.01, betas
(0.9, 0.99), eps 1e-8) on batches of words of the canonical split.

Used by `cargo xtask bench --pytorch PYTHON`; the models are those of seq_models.py
(makemore.py's architecture).

usage: python pytorch_seq.py NAMES_TXT --model transformer|gru --batch-size 32 --steps 500
       --warmup 20 --threads 1 [--n-embd 64] [--dropout 0.32]
prints one JSON object: {"steps_per_s": ..., ...}
"""
import argparse
import json
import os
import random
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from seq_models import build, loss, sequences  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("names")
p.add_argument("--model", choices=["transformer", "gru", "rnn", "bow"], default="transformer")
p.add_argument("--batch-size", type=int, default=32)
p.add_argument("--n-embd", type=int, default=64)
p.add_argument("--dropout", type=float, default=0.0,
               help="the Transformer's dropout (makemore's config's model.dropout)")
p.add_argument("--steps", type=int, default=500)
p.add_argument("--warmup", type=int, default=20)
p.add_argument("--threads", type=int, default=1)
args = p.parse_args()
torch.set_num_threads(args.threads)
torch.manual_seed(3407)

words = [w.strip() for w in open(args.names) if w.strip()]
chars = sorted(set("".join(words)))
stoi = {s: i + 1 for i, s in enumerate(chars)}
T = max(len(w) for w in words) + 1
random.seed(42)
random.shuffle(words)
X, Y = sequences(words[: int(0.8 * len(words))], stoi, T)
config = {"kind": args.model, "vocab_size": len(chars) + 1, "block_size": T, "n_embd": args.n_embd,
          "n_hidden": 64, "n_layers": 4, "n_head": 4}
model = build(config, args.dropout)
opt = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=0.01, betas=(0.9, 0.99), eps=1e-8)


def step():
    ix = torch.randint(0, X.shape[0], (args.batch_size,))
    l = loss(model, X[ix], Y[ix])
    model.zero_grad(set_to_none=True)
    l.backward()
    opt.step()
    return l


for _ in range(args.warmup):
    step()
t0 = time.perf_counter()
for _ in range(args.steps):
    l = step()
l.item()
secs = time.perf_counter() - t0
print(json.dumps({"model": args.model, "secs": secs, "batch_size": args.batch_size, "dropout": args.dropout,
                  "threads": args.threads, "steps_per_s": args.steps / secs,
                  "params": sum(q.numel() for q in model.parameters()), "torch": torch.__version__}))
