"""A model ready to use: a GPT, its tokenizer and the soft prompts trained for it, loaded as one.

``load_model`` accepts a run folder (``minift finetune --out DIR``), a ``.pt`` checkpoint file
(``checkpoint.py``: the format), the name ``base`` (the tiny base model shipped in ``data/base/``)
or ``gpt2:PATH`` (real GPT-2 weights from local files, ``pretrained.py``). It returns a
``ModelBundle``: the GPT, its tokenizer and its per-row state (soft prompts beside the model in
``prompts/NAME.pt``, each checked against the fingerprint of the base it was trained on), ready
for ``evaluate`` and ``generate``.

Why a file of its own: the checkpoint format is needed by the strategies (a soft prompt stores its
base's fingerprint), and loading a bundle needs the strategies (to read the soft prompts). Kept in
one file, the two made an import cycle; apart, each floor stands on the one below.

Tutorials 05–10 load their models through ``minift.load_model``, which is this function.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from minift.checkpoint import build_model, read_checkpoint, resolve_model_path
from minift.errors import MiniftError
from minift.model import GPT
from minift.pretrained import GPT2_PREFIX, is_gpt2_spec, load_gpt2
from minift.strategies.prefix import load_state  # a soft prompt or a prefix, by the file's format
from minift.tokenizer import Tokenizer


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
    return Tokenizer.from_dict(d, source=source)


def load_model(path_or_name, device="cpu", dropout: float | None = None) -> ModelBundle:
    """Load a named model, a run folder or a checkpoint file, with its prompts, onto ``device``."""
    if is_gpt2_spec(path_or_name):
        return load_gpt2_bundle(path_or_name, device=device, dropout=dropout)
    path = resolve_model_path(path_or_name)
    payload = read_checkpoint(path)
    model = build_model(payload, source=str(path), dropout=dropout).to(device)
    tokenizer = load_tokenizer_dict(payload["tokenizer"], source=str(path))
    bundle = ModelBundle(model=model, tokenizer=tokenizer, meta=payload.get("meta", {}), path=str(path))
    prompt_dir = path.parent / "prompts"
    if prompt_dir.is_dir():
        for prompt_path in sorted(prompt_dir.glob("*.pt")):
            bundle.prompts[prompt_path.stem] = load_state(prompt_path, model).to(device)
    return bundle


def load_gpt2_bundle(spec: str, device="cpu", dropout: float | None = None) -> ModelBundle:
    """``gpt2:PATH`` -> a ModelBundle with the GPT-2 model and tiktoken's GPT-2 tokenizer."""
    path = spec[len(GPT2_PREFIX):]
    if not path:
        raise MiniftError(f"{spec!r}: give the folder after '{GPT2_PREFIX}', e.g. gpt2:models/gpt2")
    model = load_gpt2(path, dropout=0.0 if dropout is None else dropout).to(device)
    try:
        tokenizer = Tokenizer.gpt2()
    except MiniftError as exc:
        raise MiniftError(f"{spec}: a gpt2: base needs tiktoken's gpt2 tokenizer files; {exc}") from None
    if tokenizer.vocab_size > model.config.vocab_size:
        raise MiniftError(f"{spec}: vocab_size {model.config.vocab_size} is smaller than the GPT-2 "
                          f"tokenizer's {tokenizer.vocab_size}")
    return ModelBundle(model=model, tokenizer=tokenizer, meta={"kind": "gpt2", "source": path}, path=path)
