"""Checkpoints: one self-contained file per model, written atomically, checked when read.

A minift checkpoint (``model.pt``) is a ``torch.save`` of a plain dict:

    {"format": "minift-checkpoint", "version": 1,
     "config":    GPTConfig as a dict,
     "model":     the state dict (the tied head is stored once, as transformer.wte.weight),
     "tokenizer": the tokenizer as a dict (so a checkpoint never loses its vocabulary),
     "meta":      free-form facts: what trained it, on what, its val loss ...}

It holds only tensors, numbers, strings, lists and dicts, so it loads with
``torch.load(weights_only=True)``: loading never runs pickled code.

Soft prompts (``prompt_tuning.py``) are saved beside a model in ``prompts/NAME.pt``: a few KB
plus a fingerprint of the base weights they were trained on.

``load_model`` accepts a run folder (``minift finetune --out DIR``), a ``.pt`` file, or the
name ``base`` (the tiny base model shipped in ``data/base/``). It returns a ``ModelBundle``: the
GPT, its tokenizer and its soft prompts, ready for ``evaluate`` and ``generate``.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from minift.errors import MiniftError
from minift.io import atomic_torch_save
from minift.model import GPT, GPTConfig

FORMAT = "minift-checkpoint"
VERSION = 1


def data_dir() -> Path:
    """The project's ``data/`` folder (override with the MINIFT_DATA environment variable)."""
    if os.environ.get("MINIFT_DATA"):
        return Path(os.environ["MINIFT_DATA"])
    return Path(__file__).resolve().parent.parent / "data"


NAMED_MODELS = {"base": "base/model.pt"}


def resolve_model_path(path_or_name) -> Path:
    """A name (``base``), a run folder, or a checkpoint file -> the checkpoint file's path."""
    text = str(path_or_name)
    if text in NAMED_MODELS:
        path = data_dir() / NAMED_MODELS[text]
        if not path.exists():
            raise MiniftError(f"the shipped model '{text}' is missing: expected {path}")
        return path
    path = Path(text)
    if path.is_dir():
        path = path / "model.pt"
    if not path.exists():
        names = ", ".join(NAMED_MODELS)
        raise MiniftError(
            f"no model at {text}: give a checkpoint file, a run folder holding model.pt, or one of: {names}"
        )
    return path


def model_state(model: GPT) -> dict:
    """The state dict, with a tied head stored once (as the token embedding it is)."""
    tied = model.config.tie_weights
    return {k: v for k, v in model.state_dict().items() if not (tied and k == "lm_head.weight")}


def save_checkpoint(path, model: GPT, tokenizer, meta: dict | None = None) -> None:
    """Write model + tokenizer + meta to ``path`` atomically."""
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "config": model.config.to_dict(),
        "model": {k: v.detach().cpu() for k, v in model_state(model).items()},
        "tokenizer": tokenizer.to_dict(),
        "meta": meta or {},
    }
    atomic_torch_save(path, payload)


def read_torch_file(path, kind: str, format: str, version: int) -> dict:
    """Load a minift file of one ``kind`` (weights only) and check its format marker and version.

    Every failure is a one-line MiniftError naming the file: missing, truncated, not a torch file,
    holding pickled code, or a file of another kind.
    """
    path = Path(path)
    if not path.exists():
        raise MiniftError(f"{path}: no such {kind} file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
        raise MiniftError(f"{path}: not a readable {kind} file ({reason})") from None
    if not isinstance(payload, dict) or payload.get("format") != format:
        raise MiniftError(f"{path}: not a {kind} file (no '{format}' format marker)")
    if payload.get("version") != version:
        raise MiniftError(f"{path}: {kind} version {payload.get('version')!r}, this minift reads {version}")
    return payload


def read_checkpoint(path) -> dict:
    """Load and check a checkpoint file; every failure is a one-line MiniftError naming the file."""
    payload = read_torch_file(path, "minift checkpoint", FORMAT, VERSION)
    for key in ("config", "model", "tokenizer"):
        if key not in payload:
            raise MiniftError(f"{path}: checkpoint lacks its '{key}' entry")
    return payload


def build_model(payload: dict, source="checkpoint", dropout: float | None = None) -> GPT:
    """A GPT with the checkpoint's config and weights; a key or shape mismatch is named."""
    try:
        config = GPTConfig(**payload["config"])
    except TypeError as exc:
        raise MiniftError(f"{source}: model config does not fit GPTConfig ({exc})") from None
    if dropout is not None:
        config.dropout = dropout
    model = GPT(config)
    load_weights(model, payload["model"], source)
    return model


def load_weights(model: GPT, state: dict, source="checkpoint") -> None:
    """Copy ``state`` into ``model``, naming the first missing, unexpected or mis-shaped key."""
    own = model_state(model)
    for key, value in own.items():
        if key not in state:
            raise MiniftError(f"{source}: weights for another model: missing key '{key}'")
        if tuple(state[key].shape) != tuple(value.shape):
            raise MiniftError(
                f"{source}: weights for another model: '{key}' has shape {tuple(state[key].shape)}, "
                f"this model needs {tuple(value.shape)}"
            )
    extra = sorted(set(state) - set(own) - ({"lm_head.weight"} if model.config.tie_weights else set()))
    if extra:
        raise MiniftError(f"{source}: weights for another model: unexpected key '{extra[0]}'")
    with torch.no_grad():
        for key, value in own.items():
            value.copy_(state[key])


def fingerprint(model: GPT) -> str:
    """A short hash of the model's weights: soft prompts refuse to load onto other weights."""
    h = hashlib.sha256()
    for key, value in sorted(model_state(model).items()):
        h.update(key.encode())
        h.update(value.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


@dataclass
class ModelBundle:
    """A GPT with its tokenizer and any soft prompts trained for it."""

    model: GPT
    tokenizer: object
    prompts: dict = field(default_factory=dict)  # name -> SoftPrompt or KVPrefix (per-row state)
    meta: dict = field(default_factory=dict)
    path: str = ""

    def generate(self, text: str, max_new_tokens: int = 64, prompt_name: str | None = None,
                 temperature: float = 0.0, top_k: int | None = None) -> str:
        """Continue ``text`` and return only the new text (greedy by default), stopping at end-of-text."""
        from minift.evaluate import generate_text

        return generate_text(self, [text], max_new_tokens=max_new_tokens, prompt_names=[prompt_name],
                             temperature=temperature, top_k=top_k)[0]


def load_tokenizer_dict(d: dict, source: str):
    from minift.tokenizer import Tokenizer

    return Tokenizer.from_dict(d, source=source)


def load_model(path_or_name, device="cpu", dropout: float | None = None) -> ModelBundle:
    """Load a named model, a run folder or a checkpoint file, with its prompts, onto ``device``."""
    from minift.pretrained import is_gpt2_spec, load_gpt2_bundle  # GPT-2 from local files

    if is_gpt2_spec(path_or_name):
        return load_gpt2_bundle(path_or_name, device=device, dropout=dropout)
    path = resolve_model_path(path_or_name)
    payload = read_checkpoint(path)
    model = build_model(payload, source=str(path), dropout=dropout).to(device)
    tokenizer = load_tokenizer_dict(payload["tokenizer"], source=str(path))
    bundle = ModelBundle(model=model, tokenizer=tokenizer, meta=payload.get("meta", {}), path=str(path))
    prompt_dir = path.parent / "prompts"
    if prompt_dir.is_dir():
        from minift.strategies.prefix import load_state  # a soft prompt or a prefix, by the file's format

        for prompt_path in sorted(prompt_dir.glob("*.pt")):
            bundle.prompts[prompt_path.stem] = load_state(prompt_path, model).to(device)
    return bundle
