"""makemore's sequence models in PyTorch, with the architecture, parameter names and layouts
of Karpathy's makemore.py (so that its classes and these load the same state dicts), and the
data as makemore.py builds it. Used by pytorch_seq.py (timing) and load_checkpoint.py.

Each model maps idx [B, T] (int64) to logits [B, T, V].
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class Gelu(nn.Module):
    """GPT-2's tanh approximation of GELU (makemore.py's NewGELU)."""

    def forward(self, x):
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))


class SelfAttention(nn.Module):
    def __init__(self, n_embd, n_head, block_size, dropout=0.0):
        super().__init__()
        self.c_attn = nn.Linear(n_embd, 3 * n_embd)
        self.c_proj = nn.Linear(n_embd, n_embd)
        self.n_head = n_head
        self.attn_drop = nn.Dropout(dropout)
        # makemore.py keeps its causal mask as a buffer named "bias"; makemore's checkpoints
        # hold it too (docs/checkpoint-format.md), so they load strictly.
        self.register_buffer("bias", torch.tril(torch.ones(block_size, block_size)).view(1, 1, block_size, block_size))

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        heads = lambda t: t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        q, k, v = heads(q), heads(k), heads(v)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(k.size(-1))
        att = self.attn_drop(att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf")).softmax(-1))
        return self.c_proj((att @ v).transpose(1, 2).contiguous().view(B, T, C))


class Block(nn.Module):
    def __init__(self, n_embd, n_head, block_size, dropout=0.0):
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd)
        self.attn = SelfAttention(n_embd, n_head, block_size, dropout)
        self.resid_drop = nn.Dropout(dropout)
        self.ln_2 = nn.LayerNorm(n_embd)
        self.mlp = nn.ModuleDict(dict(c_fc=nn.Linear(n_embd, 4 * n_embd), c_proj=nn.Linear(4 * n_embd, n_embd)))
        self.gelu = Gelu()

    def forward(self, x):
        x = x + self.resid_drop(self.attn(self.ln_1(x)))
        return x + self.resid_drop(self.mlp.c_proj(self.gelu(self.mlp.c_fc(self.ln_2(x)))))


class Transformer(nn.Module):
    """makemore.py's Transformer; with `dropout`, also minGPT's dropout (which makemore's
    Transformer applies at the same places): on the embeddings, the attention weights and
    each residual branch. Dropout has no parameters: the state dict is the same."""

    def __init__(self, V, T, E, layers, heads, dropout=0.0):
        super().__init__()
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(V, E), wpe=nn.Embedding(T, E),
            h=nn.ModuleList(Block(E, heads, T, dropout) for _ in range(layers)), ln_f=nn.LayerNorm(E)))
        self.lm_head = nn.Linear(E, V, bias=False)
        self.embd_drop = nn.Dropout(dropout)

    def forward(self, idx):
        t = idx.size(1)
        x = self.transformer.wte(idx) + self.transformer.wpe(torch.arange(t, device=idx.device))
        x = self.embd_drop(x)
        for block in self.transformer.h:
            x = block(x)
        return self.lm_head(self.transformer.ln_f(x))


class RnnCell(nn.Module):
    def __init__(self, E, H):
        super().__init__()
        self.xh_to_h = nn.Linear(E + H, H)

    def forward(self, x, h):
        return torch.tanh(self.xh_to_h(torch.cat([x, h], 1)))


class GruCell(nn.Module):
    def __init__(self, E, H):
        super().__init__()
        self.xh_to_z = nn.Linear(E + H, H)
        self.xh_to_r = nn.Linear(E + H, H)
        self.xh_to_hbar = nn.Linear(E + H, H)

    def forward(self, x, h):
        xh = torch.cat([x, h], 1)
        r = torch.sigmoid(self.xh_to_r(xh))
        hbar = torch.tanh(self.xh_to_hbar(torch.cat([x, r * h], 1)))
        z = torch.sigmoid(self.xh_to_z(xh))
        return (1 - z) * h + z * hbar


class Rnn(nn.Module):
    def __init__(self, V, E, H, gru):
        super().__init__()
        self.start = nn.Parameter(torch.zeros(1, H))
        self.wte = nn.Embedding(V, E)
        self.cell = GruCell(E, H) if gru else RnnCell(E, H)
        self.lm_head = nn.Linear(H, V)

    def forward(self, idx):
        b, t = idx.shape
        emb = self.wte(idx)
        h = self.start.expand(b, -1)
        states = []
        for i in range(t):
            h = self.cell(emb[:, i, :], h)
            states.append(h)
        return self.lm_head(torch.stack(states, 1))


class Bow(nn.Module):
    def __init__(self, V, T, E, H):
        super().__init__()
        self.wte = nn.Embedding(V, E)
        self.wpe = nn.Embedding(T, E)
        self.context_block = nn.Module()
        self.context_block.mlp = nn.ModuleDict(dict(c_fc=nn.Linear(E, H), c_proj=nn.Linear(H, E)))
        # makemore.py's CausalBoW keeps its mask as the buffer `cbow.bias` (as the attention).
        self.context_block.cbow = nn.Module()
        self.context_block.cbow.register_buffer("bias", torch.tril(torch.ones(T, T)).view(1, T, T))
        self.lm_head = nn.Linear(E, V)

    def forward(self, idx):
        t = idx.size(1)
        x = self.wte(idx) + self.wpe(torch.arange(t, device=idx.device))
        # Each position averages the positions up to it (makemore.py's causal bag of words).
        mean = torch.tril(torch.ones(t, t, device=idx.device))
        x = x + (mean / mean.sum(1, keepdim=True)) @ x
        m = self.context_block.mlp
        return self.lm_head(x + m.c_proj(torch.tanh(m.c_fc(x))))


def build(m, dropout=0.0):
    """The model of a makemore config's "model" object. Its dropout applies only when passed
    (the Transformer's; for timing training as makemore trains it): a loaded checkpoint is
    evaluated without."""
    kind = m.get("kind", "mlp")
    # A config leaves out the fields its kind does not use (n_hidden of the Transformer,
    # n_layers of the others).
    V, T, E = (m[k] for k in ("vocab_size", "block_size", "n_embd"))
    H, L = m.get("n_hidden", 200), m.get("n_layers", 1)
    if kind == "transformer":
        return Transformer(V, T, E, L, m.get("n_head", 4), dropout)
    if kind in ("rnn", "gru"):
        return Rnn(V, E, H, kind == "gru")
    if kind == "bow":
        return Bow(V, T, E, H)
    raise ValueError(f"not a sequence model: {kind}")


def sequences(words, stoi, T):
    """makemore.py's CharDataset: x = [0, word, 0...], y = [word, 0, -1...]."""
    X = torch.zeros(len(words), T, dtype=torch.long)
    Y = torch.full((len(words), T), -1, dtype=torch.long)
    for i, w in enumerate(words):
        ix = torch.tensor([stoi[c] for c in w], dtype=torch.long)
        X[i, 1:1 + len(ix)] = ix
        Y[i, :len(ix)] = ix
        Y[i, len(ix)] = 0
    return X, Y


def loss(model, X, Y):
    logits = model(X)
    return F.cross_entropy(logits.view(-1, logits.size(-1)), Y.view(-1), ignore_index=-1)
