"""Pretraining a base model from scratch: next-token prediction on plain text.

Before a model can be fine-tuned it must know the language. Pretraining shows it a long stream of
text and asks, at every position, for the next token:

    stream   = tokens of every paragraph, each followed by <|endoftext|>      (N,)
    x        = stream[i : i + T]          a random window                 (B, T)
    y        = stream[i + 1 : i + T + 1]  the same window shifted by one  (B, T)
    loss     = mean cross-entropy(model(x), y)                            nats per token

Nats per token depend on the tokenizer (a bigger vocabulary makes fewer, harder tokens), so the
loss is also reported in **bits per character**, which does not:

    bpc = loss / ln 2 × (tokens / characters)

The default corpus is the generated English/French world (``minift/world``): monolingual
paragraphs in both languages, never translation pairs. ``--text FILE`` trains on a user's own
UTF-8 text instead (a book, lecture notes, any language), split 90/10 into train and validation.

The ``base`` preset is the model shipped in ``data/base/``; the README gives the command that
reproduces it and the validation loss it reaches. Tutorial 05 walks through this file.
"""
from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from minift.checkpoint import save_checkpoint
from minift.errors import MiniftError
from minift.io import atomic_write_json, usable_folder
from minift.model import GPT, GPTConfig, lm_loss
from minift.optim import AdamW, param_groups
from minift.trainer import RunLog, TrainConfig, train_stage


@dataclass
class PretrainPreset:
    """A named size: the model, the tokenizer, how much text and how long to train."""

    model: GPTConfig
    vocab: int  # BPE vocabulary (bytes + merges); the two special tokens come on top
    paragraphs: int  # generated paragraphs for training (validation uses a tenth, another seed)
    train: TrainConfig = field(default_factory=TrainConfig)


PRESETS = {
    # Seconds on a laptop: for tests and smoke runs of the tutorials.
    "tiny": PretrainPreset(
        model=GPTConfig(block_size=64, n_layer=2, n_head=2, n_embd=32),
        vocab=320,
        paragraphs=400,
        train=TrainConfig(max_steps=40, batch_size=8, lr=3e-3, warmup_steps=5, eval_every=20,
                          log_every=10, weight_decay=0.1),
    ),
    # The shipped base: 4 layers, width 128, block 256 (a summarization story + summary fits).
    # ~19k tokens/s on 2 CPU threads, so 1800 steps of 16 x 256 tokens take about 7 minutes;
    # 60k paragraphs (~7.5 MB, ~2.2M tokens) means under 4 passes over the text.
    "base": PretrainPreset(
        model=GPTConfig(block_size=256, n_layer=4, n_head=4, n_embd=128),
        vocab=1024,
        paragraphs=60000,
        train=TrainConfig(max_steps=1800, batch_size=16, lr=2e-3, warmup_steps=50, eval_every=150,
                          log_every=25, weight_decay=0.1),
    ),
}


def encode_stream(tokenizer, texts: list[str]) -> torch.Tensor:
    """Concatenate the token ids of every text, each followed by <|endoftext|>."""
    ids: list[int] = []
    for piece in tokenizer.encode_batch(texts):
        ids.extend(piece)
        ids.append(tokenizer.eot_id)
    return torch.tensor(ids, dtype=torch.long)


def window_batches(stream: torch.Tensor, block_size: int, batch_size: int):
    """A batch source: random (x, y) windows of the stream, drawn with the trainer's generator."""
    if len(stream) < block_size + 2:
        raise MiniftError(f"the training text has {len(stream)} tokens, fewer than one block ({block_size} + 1)")

    def draw(generator: torch.Generator):
        starts = torch.randint(0, len(stream) - block_size - 1, (batch_size,), generator=generator)
        x = torch.stack([stream[s: s + block_size] for s in starts.tolist()])
        y = torch.stack([stream[s + 1: s + block_size + 1] for s in starts.tolist()])
        return x, y

    return draw


def lm_batch_loss(device):
    def loss_fn(model, batch):
        x, y = (t.to(device, non_blocking=True) for t in batch)
        return model(x, targets=y), y.numel()  # the loss straight from the hidden states (minift/loss.py)

    return loss_fn


@torch.no_grad()
def stream_loss(model, stream: torch.Tensor, block_size: int, device, max_windows: int = 64,
                batch_size: int = 16) -> float:
    """Mean next-token loss (nats/token) over consecutive, non-overlapping windows of ``stream``."""
    n = min(max_windows, (len(stream) - 1) // block_size)
    if n < 1:
        raise MiniftError(f"the validation text has {len(stream)} tokens, fewer than one block ({block_size} + 1)")
    total, count = 0.0, 0
    for start in range(0, n, batch_size):
        rows = range(start, min(n, start + batch_size))
        x = torch.stack([stream[r * block_size: (r + 1) * block_size] for r in rows]).to(device)
        y = torch.stack([stream[r * block_size + 1: (r + 1) * block_size + 1] for r in rows]).to(device)
        total += float(lm_loss(model(x), y)) * y.numel()
        count += y.numel()
    return total / count


WORLD_TEXT = "generated world (minift.world.corpus)"  # summary["text"] of a base pretrained on the world


@functools.lru_cache(maxsize=4)
def _heldout_texts(preset: str, seed: int, text: str) -> tuple[str, ...]:
    text_file = None if text == WORLD_TEXT else text
    if text_file is not None and not Path(text_file).is_file():
        raise MiniftError(f"the text this base was pretrained on ({text_file}) is not there: its held-out "
                          f"part cannot be scored")
    return tuple(corpus_texts(PRESETS[preset], seed=seed, text_file=text_file)[1])


def heldout_stream(bundle, text_file=None) -> torch.Tensor:
    """The held-out text of a base's own pretraining, as the token stream its val_loss was scored on.

    A pretrained checkpoint records its preset, seed and text (``meta``); ``corpus_texts`` with
    those gives back the very validation paragraphs ``pretrain`` scored, never trained on. The
    shipped base's test (tests/test_base.py) and the strategy experiment's forgetting column
    (how much fine-tuning cost the base's general modelling) both score these windows.
    ``text_file``: where a base's own text file is now, if it has moved since pretraining.
    """
    meta = getattr(bundle, "meta", None) or {}
    if meta.get("preset") not in PRESETS or "seed" not in meta or "text" not in meta:
        raise MiniftError("this model does not say how it was pretrained (preset, seed, text in its meta): "
                          "there is no held-out pretraining text to score it on")
    text = str(text_file) if text_file is not None and meta["text"] != WORLD_TEXT else str(meta["text"])
    texts = _heldout_texts(meta["preset"], int(meta["seed"]), text)
    return encode_stream(bundle.tokenizer, list(texts))


def heldout_loss(model, stream: torch.Tensor, device="cpu") -> float:
    """Language-model loss (nats/token) of ``model``, soft prompts aside, on the held-out windows:
    the first 64 consecutive blocks of ``stream`` (``stream_loss``), in eval mode."""
    was_training = model.training
    model.eval()
    try:
        return stream_loss(model, stream, model.config.block_size, device)
    finally:
        model.train(was_training)


def bits_per_char(loss_nats: float, n_tokens: int, n_chars: int) -> float:
    """Convert nats per token to bits per character: loss / ln 2 × tokens / characters."""
    return loss_nats / math.log(2) * n_tokens / max(n_chars, 1)


def read_text_file(path) -> str:
    path = Path(path)
    if not path.is_file():
        raise MiniftError(f"{path}: no such text file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise MiniftError(f"{path}: not UTF-8 text (byte {exc.start} cannot be decoded)") from None
    if not text.strip():
        raise MiniftError(f"{path}: the file is empty")
    return text


def corpus_texts(preset: PretrainPreset, seed: int, text_file=None) -> tuple[list[str], list[str]]:
    """(train texts, validation texts): generated paragraphs, or a user's file split 90/10."""
    if text_file is not None:
        text = read_text_file(text_file)
        paragraphs = [p for p in text.split("\n\n") if p.strip()] or [text]
        if len(paragraphs) >= 10:
            cut = max(1, len(paragraphs) * 9 // 10)
            return paragraphs[:cut], paragraphs[cut:]
        cut = len(text) * 9 // 10  # few paragraphs: split by characters instead
        return [text[:cut]], [text[cut:]]
    from minift.world import corpus

    train = corpus(preset.paragraphs, seed=seed)
    seen = set(train)
    # Held out: another seed, minus any short paragraph that happens to occur in training too.
    val = [p for p in corpus(max(50, preset.paragraphs // 10), seed=seed + 10_000) if p not in seen]
    return train, val


def pretrain(out_dir, preset: str = "base", text_file=None, tokenizer_path=None, max_steps=None,
             seed: int = 0, device: str = "cpu", compile: bool = False, quiet: bool = False,
             vocab: int | None = None, shape: dict | None = None) -> dict:
    """Train a base model; writes model.pt, tokenizer.json, log.jsonl, loss.svg, summary.json."""
    from minift.plot import plot_run
    from minift.tokenizer import Tokenizer

    if preset not in PRESETS:
        raise MiniftError(f"unknown preset '{preset}': choose one of {', '.join(PRESETS)}")
    spec = PRESETS[preset]
    replace(spec.model, **(shape or {})).validate()  # a shape that does not fit fails before any work
    if max_steps is not None and max_steps < 1:
        raise MiniftError(f"--max-steps must be >= 1, got {max_steps}")
    out = usable_folder(out_dir, "--out run folder")  # before any work: a bad --out fails at once
    torch.manual_seed(seed)
    log = RunLog(out / "log.jsonl", quiet=quiet)
    if (out / "log.jsonl").exists():
        log.truncate_after(-1)  # a fresh pretraining run starts a fresh log

    t0 = time.time()
    train_texts, val_texts = corpus_texts(spec, seed, text_file)
    if tokenizer_path is not None:
        tokenizer = Tokenizer.load(tokenizer_path)
    else:
        tokenizer = Tokenizer.train(train_texts, vocab or spec.vocab)
    tokenizer.save(out / "tokenizer.json")
    log.progress(f"tokenizer: {tokenizer.vocab_size} tokens ({time.time() - t0:.1f} s incl. corpus)")
    train_stream = encode_stream(tokenizer, train_texts)
    val_stream = encode_stream(tokenizer, val_texts)

    config = replace(spec.model, vocab_size=tokenizer.vocab_size, **(shape or {}))
    model = GPT(config).to(device)
    log.progress(f"model: {model.num_parameters():,} parameters; train {len(train_stream):,} tokens, "
                 f"val {len(val_stream):,} tokens")
    train_config = replace(spec.train, max_steps=max_steps or spec.train.max_steps)
    optimizer = AdamW(param_groups(model, train_config.weight_decay), lr=train_config.lr, compile=compile)
    train_module = torch.compile(model) if compile else model

    # Characters per token on the validation windows we score, for bits per character.
    block = config.block_size
    n_val_windows = min(64, (len(val_stream) - 1) // block)
    scored = val_stream[1: n_val_windows * block + 1]
    val_chars = len(tokenizer.decode(scored[scored != tokenizer.eot_id].tolist())) + int(
        (scored == tokenizer.eot_id).sum())  # each end-of-text stands for one paragraph break

    def evaluate(m):
        loss = stream_loss(m, val_stream, block, device, max_windows=n_val_windows)
        return {"val_loss": loss, "val_bpc": bits_per_char(loss, scored.numel(), val_chars)}

    state = train_stage(model, optimizer, window_batches(train_stream, block, train_config.batch_size),
                        lm_batch_loss(device), train_config, evaluate=evaluate, stage="pretrain",
                        seed=seed, log=log, device=device, train_module=train_module)
    final = evaluate(model.eval())
    summary = {
        "preset": preset,
        "seed": seed,
        "text": str(text_file) if text_file else WORLD_TEXT,
        "model": config.to_dict(),
        "parameters": model.num_parameters(),
        "tokenizer_vocab": tokenizer.vocab_size,
        "train_tokens": len(train_stream),
        "steps": state.step,
        "tokens_seen": state.tokens,
        "seconds": round(state.elapsed, 1),
        "val_loss": round(final["val_loss"], 4),
        "val_bpc": round(final["val_bpc"], 4),
        "device": str(device),
    }
    save_checkpoint(out / "model.pt", model, tokenizer, meta={"kind": "pretrained", **summary})
    atomic_write_json(out / "summary.json", summary)
    plot_run(out)
    return summary
