"""The notebook's code in PyTorch (eager), timed like `makemore bench`: training steps,
evaluation of the training split, or sampling, on the CPU or on a CUDA GPU.

Used by `cargo xtask bench --pytorch PYTHON [--device cuda]` to compare with makemore on the
same machine. PyTorch is not a dependency of makemore: install it yourself (`pip install torch`).

usage: python pytorch_mlp.py NAMES_TXT [--task train|eval|sample] --batch-size 32 --steps 3000
       --warmup 100 --threads 1 [--device cpu|cuda] [--model notebook|wide]

--model wide trains the kind of model the quality sweeps train, written as a PyTorch user
would (nn.Module, AdamW): context 8, 24-d embeddings, two 512-unit tanh layers with
LayerNorm and dropout 0.2 (examples/configs/wide.json); --model wavenet the lecture's
BatchNorm WaveNet with SGD (examples/configs/wavenet-lecture.json). --task sample draws --steps words
in one batch, every row a step at a time until the last word ends, as makemore samples.
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
p.add_argument("--device", default="cpu")
p.add_argument("--task", choices=["train", "eval", "sample"], default="train")
p.add_argument("--model", choices=["notebook", "wide", "wavenet"], default="notebook")
args = p.parse_args()
torch.set_num_threads(args.threads)
dev = torch.device(args.device)


def sync():
    if dev.type == "cuda":
        torch.cuda.synchronize()

# The notebook, cell by cell: vocabulary, dataset at block size 3, the 80% split.
words = [w.strip() for w in open(args.names) if w.strip()]
chars = sorted(set("".join(words)))
stoi = {s: i + 1 for i, s in enumerate(chars)}
stoi["."] = 0
block_size = 8 if args.model in ("wide", "wavenet") else 3


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
Xtr, Ytr = Xtr.to(dev), Ytr.to(dev)

g = torch.Generator().manual_seed(2147483647)
C = torch.randn((27, 10), generator=g)
W1 = torch.randn((30, 200), generator=g) * 0.1
b1 = torch.randn(200, generator=g) * 0.01
W2 = torch.randn((200, 27), generator=g) * 0.01
b2 = torch.randn(27, generator=g) * 0
parameters = [C, W1, b1, W2, b2]
C, W1, b1, W2, b2 = parameters = [q.to(dev) for q in parameters]
for q in parameters:
    q.requires_grad = True


def step(i):
    ix = torch.randint(0, Xtr.shape[0], (args.batch_size,), device=dev)
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


def report(count, secs, **extra):
    print(json.dumps({
        "secs": secs,
        "batch_size": args.batch_size,
        "threads": args.threads,
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "torch": torch.__version__,
        **extra,
    }))


@torch.no_grad()
def evaluate():
    # The notebook's full-split loss, in chunks of 32,768 as makemore evaluates.
    total = torch.zeros((), device=dev)
    for i in range(0, Xtr.shape[0], 32768):
        x, y = Xtr[i:i + 32768], Ytr[i:i + 32768]
        h = torch.tanh(C[x].view(-1, 30) @ W1 + b1)
        total += F.cross_entropy(h @ W2 + b2, y, reduction="sum")
    return (total / Xtr.shape[0]).item()


@torch.no_grad()
def sample_words(gen, n):
    # The notebook's sampling loop, for n words at once (as makemore samples: every row
    # steps together until the last word ends), one character per step. Returns the words
    # as lists of character indices, read back once at the end.
    context = torch.zeros((n, block_size), dtype=torch.long, device=dev)
    done = torch.zeros(n, dtype=torch.bool, device=dev)
    drawn = []
    for _ in range(64):
        h = torch.tanh(C[context].view(n, -1) @ W1 + b1)
        probs = F.softmax(h @ W2 + b2, dim=1)
        ix = torch.multinomial(probs, num_samples=1, generator=gen)
        drawn.append(torch.where(done.unsqueeze(1), torch.zeros_like(ix), ix))
        done |= ix.squeeze(1) == 0
        context = torch.cat([context[:, 1:], ix], dim=1)
        if bool(done.all()):
            break
    chars = torch.cat(drawn, dim=1).cpu().tolist()
    return [row[:row.index(0) + 1] if 0 in row else row for row in chars]


class Wide(torch.nn.Module):
    def __init__(self):
        super().__init__()
        nn = torch.nn
        self.emb = nn.Embedding(27, 24)
        self.net = nn.Sequential(
            nn.Linear(8 * 24, 512), nn.LayerNorm(512), nn.Tanh(), nn.Dropout(0.2),
            nn.Linear(512, 512), nn.LayerNorm(512), nn.Tanh(), nn.Dropout(0.2),
            nn.Linear(512, 27))

    def forward(self, x):
        return self.net(self.emb(x).flatten(1))


class WaveNet(torch.nn.Module):
    # Makemore part 5: context 8, 24-d embeddings, pairs of positions merged three times
    # into 128-unit layers with BatchNorm and tanh (examples/configs/wavenet-lecture.json).
    def __init__(self):
        super().__init__()
        nn = torch.nn
        self.emb = nn.Embedding(27, 24)
        self.layers = nn.ModuleList(
            nn.ModuleList([nn.Linear(2 * d, 128, bias=False), nn.BatchNorm1d(128)])
            for d in (24, 128, 128))
        self.out = nn.Linear(128, 27)

    def forward(self, x):
        h = self.emb(x)  # (B, 8, 24)
        for lin, bn in self.layers:
            b, t, c = h.shape
            h = lin(h.reshape(b, t // 2, 2 * c))
            h = torch.tanh(bn(h.transpose(1, 2)).transpose(1, 2))
        return self.out(h.squeeze(1))


if args.model in ("wide", "wavenet"):
    torch.manual_seed(2147483647)
    wide = (Wide() if args.model == "wide" else WaveNet()).to(dev)
    opt = (torch.optim.AdamW(wide.parameters(), lr=1e-3, weight_decay=0.01) if args.model == "wide"
           else torch.optim.SGD(wide.parameters(), lr=0.1))

    def step(i):  # noqa: F811 (the wide model's step replaces the notebook's)
        ix = torch.randint(0, Xtr.shape[0], (args.batch_size,), device=dev)
        loss = F.cross_entropy(wide(Xtr[ix]), Ytr[ix])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    if args.task != "train":
        raise SystemExit(f"--model {args.model} times training only")

if args.task == "train":
    for i in range(args.warmup):
        step(i)
    sync()
    t0 = time.perf_counter()
    for i in range(args.steps):
        loss = step(i)
    loss.item()
    secs = time.perf_counter() - t0
    report(args.steps, secs, steps_per_s=args.steps / secs,
           examples_per_s=args.steps * args.batch_size / secs, model=args.model)
elif args.task == "eval":
    evaluate()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        evaluate()
    secs = time.perf_counter() - t0
    report(args.steps, secs, examples_per_s=args.steps * Xtr.shape[0] / secs)
else:
    gen = torch.Generator(device=dev).manual_seed(2147483647 + 10)
    sample_words(gen, args.steps)
    t0 = time.perf_counter()
    words = sample_words(gen, args.steps)
    secs = time.perf_counter() - t0
    assert len(words) == args.steps
    report(args.steps, secs, words_per_s=args.steps / secs)
