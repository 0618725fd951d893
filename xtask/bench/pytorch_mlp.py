"""The notebook's training step in PyTorch (eager, CPU), timed like `makemore bench`.

Used by `cargo xtask bench --pytorch PYTHON` to compare with makemore on the same machine.
PyTorch is not a dependency of makemore: install it yourself (`pip install torch`).

usage: python pytorch_mlp.py NAMES_TXT --batch-size 32 --steps 3000 --warmup 100 --threads 1
prints one JSON object: {"steps_per_s": ..., "examples_per_s": ..., ...}
"""
import argparse
import json
import random
import time

import torch
import torch.nn.functional as F

p = argparse.ArgumentParser()
p.add_argument("names")
p.add_argument("--batch-size", type=int, default=32)
p.add_argument("--steps", type=int, default=3000)
p.add_argument("--warmup", type=int, default=100)
p.add_argument("--threads", type=int, default=1)
args = p.parse_args()
torch.set_num_threads(args.threads)

# The notebook, cell by cell: vocabulary, dataset at block size 3, the 80% split.
words = [w.strip() for w in open(args.names) if w.strip()]
chars = sorted(set("".join(words)))
stoi = {s: i + 1 for i, s in enumerate(chars)}
stoi["."] = 0
block_size = 3


def build_dataset(words):
    X, Y = [], []
    for w in words:
        context = [0] * block_size
        for ch in w + ".":
            ix = stoi[ch]
            X.append(context)
            Y.append(ix)
            context = context[1:] + [ix]
    return torch.tensor(X), torch.tensor(Y)


random.seed(42)
random.shuffle(words)
Xtr, Ytr = build_dataset(words[: int(0.8 * len(words))])

g = torch.Generator().manual_seed(2147483647)
C = torch.randn((27, 10), generator=g)
W1 = torch.randn((30, 200), generator=g) * 0.1
b1 = torch.randn(200, generator=g) * 0.01
W2 = torch.randn((200, 27), generator=g) * 0.01
b2 = torch.randn(27, generator=g) * 0
parameters = [C, W1, b1, W2, b2]
for q in parameters:
    q.requires_grad = True


def step(i):
    ix = torch.randint(0, Xtr.shape[0], (args.batch_size,))
    emb = C[Xtr[ix]]
    h = torch.tanh(emb.view(-1, 30) @ W1 + b1)
    logits = h @ W2 + b2
    loss = F.cross_entropy(logits, Ytr[ix])
    for q in parameters:
        q.grad = None
    loss.backward()
    lr = 0.1 if i < 100000 else 0.01
    for q in parameters:
        q.data += -lr * q.grad
    return loss


for i in range(args.warmup):
    step(i)
t0 = time.perf_counter()
for i in range(args.steps):
    loss = step(i)
loss.item()
secs = time.perf_counter() - t0
print(json.dumps({
    "steps_per_s": args.steps / secs,
    "examples_per_s": args.steps * args.batch_size / secs,
    "secs": secs,
    "batch_size": args.batch_size,
    "threads": args.threads,
    "torch": torch.__version__,
}))
