#!/usr/bin/env python3
"""The reference GPT training step in PyTorch, for side-by-side timing with `reslab bench --compare-pytorch`.

Same math as ResidualLab's pre-norm GPT (nanoGPT): token + position embeddings, n_layer pre-norm
blocks of causal self-attention and a 4x GELU MLP, final LayerNorm, head tied to the token
embedding; GPT-2 init (N(0, 0.02), projections into the stream N(0, 0.02 / sqrt(2 n_layer)));
AdamW (weight decay 0.1 on matrices only, betas 0.9/0.99), gradient clipping at 1.0.
--device cuda runs it on the GPU; --dtype bfloat16 runs the forward pass under bf16 autocast (fp32
weights, bf16 matrix products, as nanoGPT trains; ResidualLab keeps bf16 weights with fp32 masters);
--compile wraps the model in torch.compile (PyTorch >= 2.0).
Prints one JSON object: per-step milliseconds, tokens per second, peak and final RSS, and on CUDA the
peak memory torch allocated.
"""
import argparse
import contextlib
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from bench_timing import report, time_steps


class CausalSelfAttention(nn.Module):
    def __init__(self, d, n_head, resid_std):
        super().__init__()
        self.n_head = n_head
        self.c_attn = nn.Linear(d, 3 * d)
        self.c_proj = nn.Linear(d, d)
        nn.init.normal_(self.c_attn.weight, 0.0, 0.02)
        nn.init.zeros_(self.c_attn.bias)
        nn.init.normal_(self.c_proj.weight, 0.0, resid_std)
        nn.init.zeros_(self.c_proj.bias)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.c_attn(x).split(d, dim=2)
        q = q.view(b, t, self.n_head, d // self.n_head).transpose(1, 2)  # (b, nh, t, hs)
        k = k.view(b, t, self.n_head, d // self.n_head).transpose(1, 2)
        v = v.view(b, t, self.n_head, d // self.n_head).transpose(1, 2)
        if hasattr(F, "scaled_dot_product_attention"):
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:  # PyTorch < 2.0: the same attention written out
            att = (q @ k.transpose(-2, -1)) / math.sqrt(k.size(-1))
            mask = torch.ones(t, t, dtype=torch.bool, device=x.device).tril()
            att = att.masked_fill(~mask, float("-inf")).softmax(dim=-1)
            y = att @ v
        return self.c_proj(y.transpose(1, 2).contiguous().view(b, t, d))


class Block(nn.Module):
    def __init__(self, d, n_head, resid_std):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d)
        self.attn = CausalSelfAttention(d, n_head, resid_std)
        self.ln_2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential()
        self.mlp.c_fc = nn.Linear(d, 4 * d)
        self.mlp.gelu = nn.GELU()
        self.mlp.c_proj = nn.Linear(4 * d, d)
        nn.init.normal_(self.mlp.c_fc.weight, 0.0, 0.02)
        nn.init.zeros_(self.mlp.c_fc.bias)
        nn.init.normal_(self.mlp.c_proj.weight, 0.0, resid_std)
        nn.init.zeros_(self.mlp.c_proj.bias)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, vocab, n_layer, d, n_head, block_size):
        super().__init__()
        resid_std = 0.02 / math.sqrt(2 * n_layer)
        self.wte = nn.Embedding(vocab, d)
        self.wpe = nn.Embedding(block_size, d)
        nn.init.normal_(self.wte.weight, 0.0, 0.02)
        nn.init.normal_(self.wpe.weight, 0.0, 0.02)
        self.h = nn.ModuleList([Block(d, n_head, resid_std) for _ in range(n_layer)])
        self.ln_f = nn.LayerNorm(d)

    def forward(self, idx, targets):
        pos = torch.arange(idx.shape[1], device=idx.device)
        x = self.wte(idx) + self.wpe(pos)
        for block in self.h:
            x = block(x)
        logits = F.linear(self.ln_f(x), self.wte.weight)
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--n-layer", type=int, default=6)
    p.add_argument("--d-model", type=int, default=192)
    p.add_argument("--n-head", type=int, default=6)
    p.add_argument("--block-size", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--vocab", type=int, default=83)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--compile", action="store_true", help="train the torch.compile'd model (PyTorch >= 2.0)")
    a = p.parse_args()
    if a.compile and not hasattr(torch, "compile"):
        p.error(f"--compile needs PyTorch >= 2.0; this is {torch.__version__}")
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    device = torch.device(a.device)
    model = GPT(a.vocab, a.n_layer, a.d_model, a.n_head, a.block_size).to(device)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.99), eps=1e-8)
    g = torch.Generator().manual_seed(a.seed)
    trained = torch.compile(model) if a.compile else model
    precision = (torch.autocast(device_type=device.type, dtype=torch.bfloat16) if a.dtype == "bfloat16"
                 else contextlib.nullcontext())

    def step():
        x = torch.randint(a.vocab, (a.batch_size, a.block_size), generator=g).to(device)
        y = torch.randint(a.vocab, (a.batch_size, a.block_size), generator=g).to(device)
        with precision:
            loss = trained(x, y)
        opt.zero_grad(set_to_none=False)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        loss.item()  # waits for the GPU's queued work

    times, rss_after_warmup = time_steps(step, a.steps, a.warmup)
    report(times, rss_after_warmup, a.batch_size * a.block_size, "token", model, device)

if __name__ == "__main__":
    main()
