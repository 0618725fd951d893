"""Loads a makemore checkpoint into a plain PyTorch module and evaluates it.

The check behind docs/checkpoint-format.md: `model.safetensors` holds PyTorch names and
layouts, so `load_state_dict` takes it as is (strict), and the module gives the loss that
`makemore eval` prints for the same split.

    python3 xtask/bench/load_checkpoint.py runs/quickstart
    python3 xtask/bench/load_checkpoint.py runs/best --data ../shared/data/names.txt --split test

Needs torch and safetensors (`pip install torch safetensors`). Every model of makemore is
covered: the MLP (flat or hierarchical, LayerNorm or BatchNorm, direct connections) and the
sequence models of makemore.py (rnn, gru, bow, transformer; built by seq_models.py with
makemore.py's names and layouts, causal-mask buffers included).

With `--makemore-py PATH`, a sequence model is built from the classes of that copy of
Karpathy's makemore.py instead (`Transformer`, `BoW`, `RNN` and its `ModelConfig`; the file
is imported as it is, with a stand-in for its unused tensorboard import when tensorboard is
not installed), loaded strictly and evaluated with its own `forward(idx, targets)`:

    python3 xtask/bench/load_checkpoint.py runs/transformer --makemore-py ~/makemore/makemore.py
"""

import argparse
import json
import math
import os
import random

import sys

import torch
import torch.nn as nn
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import seq_models  # noqa: E402


class Mlp(nn.Module):
    """The makemore MLP, with the module names of its safetensors file."""

    def __init__(self, m):
        super().__init__()
        V, T, E, H, L = (m[k] for k in ("vocab_size", "block_size", "n_embd", "n_hidden", "n_layers"))
        norm = m.get("norm", "None")
        hierarchical = m.get("hierarchical", False)

        def fan_in(i):
            if hierarchical:
                return 2 * E if i == 0 else 2 * H
            return T * E if i == 0 else H

        self.embedding = nn.Embedding(V, E)
        # BatchNorm's shift replaces the hidden layers' bias.
        self.hidden = nn.ModuleList(nn.Linear(fan_in(i), H, bias=norm != "Batch") for i in range(L))
        self.output = nn.Linear(H if L else T * E, V)
        self.direct = nn.Linear(T * E, V, bias=False) if m.get("direct") else None
        self.norm = nn.ModuleList(nn.LayerNorm(H) for _ in range(L)) if norm == "Layer" else None
        self.batch_norm = nn.ModuleList(nn.BatchNorm1d(H) for _ in range(L)) if norm == "Batch" else None

    def forward(self, x):  # x: [B, T] int64
        emb = self.embedding(x).flatten(1)  # [B, T·E], characters concatenated in order
        h = emb
        for i, layer in enumerate(self.hidden):
            # The hierarchical model reads pairs of neighbours: [B·T/2, 2·E], then
            # [B·T/4, 2·H], ... (a no-op reshape for the flat model).
            h = layer(h.reshape(-1, layer.in_features))
            if self.norm is not None:
                h = self.norm[i](h)
            if self.batch_norm is not None:
                h = self.batch_norm[i](h)
            h = torch.tanh(h)
        logits = self.output(h)
        if self.direct is not None:
            logits = logits + self.direct(emb)
        return logits


def upstream_model(path, m):
    """The model of config `m` built from the classes of the makemore.py at `path`."""
    import importlib.util
    import types
    try:
        import torch.utils.tensorboard  # noqa: F401  (makemore.py imports it at the top)
    except ImportError:
        stub = types.ModuleType("torch.utils.tensorboard")
        stub.SummaryWriter = None
        sys.modules["torch.utils.tensorboard"] = stub
    spec = importlib.util.spec_from_file_location("makemore_upstream", path)
    mm = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mm)
    config = mm.ModelConfig(block_size=m["block_size"], vocab_size=m["vocab_size"],
                            n_layer=m.get("n_layers", 4), n_embd=m["n_embd"],
                            n_embd2=m.get("n_hidden", 64), n_head=m.get("n_head", 4))
    kind = m["kind"]
    if kind == "transformer":
        return mm.Transformer(config)
    if kind == "bow":
        return mm.BoW(config)
    return mm.RNN(config, cell_type=kind)


def read_words(path):
    with open(path, encoding="utf-8") as f:
        return [w.strip() for w in f if w.strip()]


def split_words(words, seed, ratios):
    """Python's random.seed(seed); random.shuffle(words), then makemore's cut points."""
    words = list(words)
    random.seed(seed)
    random.shuffle(words)
    n = len(words)
    n1 = int(ratios["train"] * n)
    n2 = min(max(int((1.0 - ratios["test"]) * n), n1), n)
    n1 = min(n1, n)
    return {"train": words[:n1], "dev": words[n1:n2], "test": words[n2:]}


def examples(words, chars, block):
    index = {c: i for i, c in enumerate(chars)}
    xs, ys = [], []
    for w in words:
        context = [0] * block
        for ch in w + ".":
            ix = index[ch]
            xs.append(context)
            ys.append(ix)
            context = context[1:] + [ix]
    return torch.tensor(xs), torch.tensor(ys)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("--data", default=os.path.join(here, "..", "..", "data", "names.txt"),
                   help="the corpus the run trained on (default: the shipped data/names.txt)")
    p.add_argument("--split", default="dev", choices=["train", "dev", "test"])
    p.add_argument("--makemore-py", metavar="PATH",
                   help="build a sequence model from the classes of this copy of makemore.py")
    a = p.parse_args()

    with open(os.path.join(a.checkpoint, "config.json")) as f:
        config = json.load(f)
    with open(os.path.join(a.checkpoint, "vocab.json")) as f:
        chars = json.load(f)["chars"]
    m = config["model"]
    state = load_file(os.path.join(a.checkpoint, "model.safetensors"))
    words = split_words(read_words(a.data), config["split_seed"], config["split"])[a.split]
    if m.get("kind", "mlp") != "mlp":
        index = {c: i for i, c in enumerate(chars)}
        x, y = seq_models.sequences(words, index, m["block_size"])
        n = int((y >= 0).sum())
        if a.makemore_py:
            model = upstream_model(a.makemore_py, m)
            model.load_state_dict(state, strict=True)
            model.eval()
            with torch.no_grad():
                _, mean = model(x, y)  # makemore.py's loss: the mean over the characters
            loss, source = mean.item() * n, f"makemore.py's {type(model).__name__}"
        else:
            model = seq_models.build(m)
            model.load_state_dict(state, strict=True)
            model.eval()
            with torch.no_grad():
                logits = model(x)
                loss = nn.functional.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1),
                                                   ignore_index=-1, reduction="sum").item()
            source = "seq_models.py"
        print(f"torch {torch.__version__} ({source}, strict load): {a.split} loss {loss / n:.5f} "
              f"(perplexity {math.exp(loss / n):.3f}, {n} characters) from {a.checkpoint}")
        return
    model = Mlp(m)
    # PyTorch's BatchNorm1d also counts its batches; makemore does not save that count.
    for name, module in model.named_modules():
        if isinstance(module, nn.BatchNorm1d):
            state[f"{name}.num_batches_tracked"] = torch.tensor(0)
    model.load_state_dict(state, strict=True)
    model.eval()  # BatchNorm: the running statistics, as makemore evaluates

    x, y = examples(words, chars, config["model"]["block_size"])
    with torch.no_grad():
        loss = nn.functional.cross_entropy(model(x), y, reduction="sum").item() / len(y)
    print(f"torch {torch.__version__}: {a.split} loss {loss:.5f} (perplexity {math.exp(loss):.3f}, "
          f"{len(y)} examples) from {a.checkpoint}")


if __name__ == "__main__":
    main()
