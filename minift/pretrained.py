"""Real GPT-2 weights from local files (placeholder until issue 6 lands: recognises the spec only)."""
from __future__ import annotations

from minift.errors import MiniftError

GPT2_PREFIX = "gpt2:"


def is_gpt2_spec(path_or_name) -> bool:
    """True for a base written as ``gpt2:PATH`` (a local folder in Hugging Face's GPT-2 layout)."""
    return isinstance(path_or_name, str) and path_or_name.startswith(GPT2_PREFIX)


def load_gpt2_bundle(spec, device="cpu", dropout=None):
    raise MiniftError(f"{spec}: loading GPT-2 checkpoints is not available in this version yet")
