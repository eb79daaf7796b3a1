"""The course's figures, written as SVG for slides: ``minift course figures --out DIR``.

Every picture a lesson draws is also available here without running the lesson, so a teacher can
put it on a slide. All are SVG written by ``minift.plot`` (plain text, no plotting library), from
what ships with minift, in a few seconds on one core:

* ``attention-block-N.svg``: the attention weights of each block of the shipped base on one fixed
  sentence (lesson 02 draws the same map for a tiny model it trains, on a sentence you choose);
* ``lr-schedule-lesson04.svg``: warmup + cosine with ``min_lr_ratio`` 0.1 and 0, as in lesson 04;
* ``lr-schedule-full.svg``: the learning rate at every step of the ``full`` recipe;
* ``unfreezing.svg``: gradual unfreezing of the base's blocks every 50 steps over a 300-step
  stage, from ``GradualUnfreezer.schedule()`` (lesson 07, section 7);
* ``loss-base-pretraining.svg``: the loss curves of the shipped base's pretraining, from its
  committed ``data/base/log.jsonl`` (lesson 05);
* ``strategies-TASK.svg``: the committed strategy comparison under the fair protocol (metric
  against training-set size, mean ± 95 % interval over seeds), redrawn from
  ``data/experiments/strategies/fair/results.json`` (lesson 11); skipped when that file is absent.

``attention_maps`` computes the weights the heat maps show: for each block, the softmax of
``q kᵀ / √hs`` under the causal mask, from the block's own ``c_attn`` applied to the input its
attention really receives (captured with a forward pre-hook, so embeddings, earlier blocks and
LayerNorm are the model's own code). Lesson 02 computes the same weights by hand and checks the two
agree.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import torch

from minift.errors import MiniftError
from minift.io import usable_folder

SENTENCE = "The farmer has ten sheep and ten pigs on the farm."
"""The fixed sentence of the base's attention maps (lesson 02's default sentence)."""
UNFREEZE_EVERY, UNFREEZE_STEPS = 50, 300  # lesson 07, section 7: every 50 steps, over a 300-step stage


def attention_maps(model, idx: torch.Tensor) -> torch.Tensor:
    """The attention weights of every block of a minift GPT on ``idx`` (1, T): a tensor (L, nh, T, T).

    ``[l, h, t, s]`` is how much query position ``t`` of head ``h`` in block ``l`` looks at key
    position ``s``; each row sums to 1 and is 0 right of the diagonal (the causal mask). The model
    runs in eval mode under ``no_grad``; its training mode is put back afterwards.
    """
    from minift.strategies.layers import _find_gpt

    _, gpt = _find_gpt(model)
    if idx.dim() != 2 or idx.size(0) != 1:
        raise MiniftError(f"attention_maps: idx must be one sequence of token ids, (1, T); got {tuple(idx.shape)}")
    inputs: list[torch.Tensor] = []
    hooks = [block.attn.register_forward_pre_hook(lambda module, args: inputs.append(args[0]))
             for block in gpt.transformer.h]
    was_training = gpt.training
    try:
        gpt.eval()
        with torch.no_grad():
            gpt(idx)
    finally:
        for hook in hooks:
            hook.remove()
        gpt.train(was_training)
    maps = []
    T = idx.size(1)
    causal = torch.ones(T, T, dtype=torch.bool, device=idx.device).tril()
    with torch.no_grad():
        for block, x in zip(gpt.transformer.h, inputs):
            a = block.attn
            C = x.size(-1)
            hs = C // a.n_head
            q, k, _ = a.c_attn(x).split(C, dim=2)  # each (1, T, C)
            q = q.view(1, T, a.n_head, hs).transpose(1, 2)  # (1, nh, T, hs)
            k = k.view(1, T, a.n_head, hs).transpose(1, 2)
            scores = q @ k.transpose(-2, -1) / math.sqrt(hs)  # (1, nh, T, T)
            maps.append(scores.masked_fill(~causal, float("-inf")).softmax(dim=-1)[0])
    return torch.stack(maps)


def token_labels(tokenizer, ids) -> list[str]:
    """Each token id as printable text: ``' farm'`` -> `` farm``, a newline -> ``\\n``."""
    return [repr(tokenizer.decode([int(i)]))[1:-1] for i in ids]


def write_figures(out_dir: str | os.PathLike) -> list[Path]:
    """Write every figure of the course as SVG into ``out_dir`` (created if needed); the paths written."""
    import minift
    from minift.checkpoint import data_dir
    from minift.plot import attention_svg, lr_schedule_svg, plot_run, unfreezing_svg
    from minift.schedule import load_recipe
    from minift.strategies.layers import GradualUnfreezer

    out = usable_folder(out_dir, "--out folder")
    written: list[Path] = []

    base = minift.load_model("base")
    ids = base.tokenizer.encode(SENTENCE)
    labels = token_labels(base.tokenizer, ids)
    maps = attention_maps(base.model, torch.tensor([ids]))
    for layer, weights in enumerate(maps):
        path = out / f"attention-block-{layer}.svg"
        attention_svg(labels, weights, title=f"The shipped base, block {layer}: which token each head looks at",
                      path=path)
        written.append(path)

    path = out / "lr-schedule-lesson04.svg"
    lr_schedule_svg([{"name": f"min_lr_ratio {r}", "lr": 1e-3, "warmup_steps": 10, "max_steps": 110,
                      "min_lr_ratio": r} for r in (0.1, 0.0)], overlay=True, after=20, path=path)
    written.append(path)
    path = out / "lr-schedule-full.svg"
    full = load_recipe("full")
    lr_schedule_svg(full.stages, title=f"Learning rate of the '{full.name}' recipe", path=path)
    written.append(path)

    unfreezer = GradualUnfreezer(base.model, every=UNFREEZE_EVERY, parts=["ln_f"])
    path = out / "unfreezing.svg"
    unfreezing_svg(unfreezer.schedule(), unfreezer.L, UNFREEZE_STEPS, parts=unfreezer.parts, path=path)
    written.append(path)

    base_run = data_dir() / "base"
    if (base_run / "log.jsonl").is_file():
        written.append(plot_run(base_run, out / "loss-base-pretraining.svg"))

    from minift.advise import default_results_dir

    results = default_results_dir() / "results.json"  # the fair grid, the one lesson 11 and `advise` read
    if results.is_file():
        written += _strategy_charts(results, out)
    return written


def _strategy_charts(results: Path, out: Path) -> list[Path]:
    """The experiment's metric-against-size charts, redrawn from its results.json as strategies-TASK.svg."""
    import tempfile

    from minift.experiment import write_charts

    try:
        agg = json.loads(results.read_text(encoding="utf-8"))
        agg = {"results": agg["results"], "main_metric": agg["main_metric"]}
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise MiniftError(f"{results}: not an experiment's results.json ({exc})") from None
    written = []
    # write_charts names its files TASK.svg: draw them aside, so a file of that name in out stays
    # untouched, then move each to a name that says what it is.
    with tempfile.TemporaryDirectory(dir=out, prefix=".minift-figures.") as aside:
        for path in write_charts(Path(aside), agg):
            target = out / f"strategies-{path.name}"
            os.replace(path, target)
            written.append(target)
    return written
