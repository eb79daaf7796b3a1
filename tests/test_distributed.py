"""Two CPU processes (gloo) train to the same weights as one process with the same global batch
(full, prompt and LoRA stages; LoRA's merged weights included)."""
import os
import subprocess
import sys

import pytest
import torch

from minift.bundle import load_model
from minift.distributed import DistContext, shard_rows

FULL = """
[[stages]]
strategy = "full"
max_steps = 6
batch_size = 8
eval_every = 3
eval_examples = 8
warmup_steps = 1
"""
PROMPT = """
[[stages]]
strategy = "prompt"
prompt_tokens = 4
max_steps = 6
batch_size = 8
eval_every = 3
eval_examples = 8
warmup_steps = 1
"""

LORA = """
[[stages]]
strategy = "lora"
lora_rank = 4
max_steps = 6
batch_size = 8
eval_every = 3
eval_examples = 8
warmup_steps = 1
lr = 0.01
restore_best = false
"""


def test_each_rank_keeps_every_nth_row_of_the_global_batch():
    rows = list(range(10))
    assert shard_rows(rows, DistContext(rank=0, world_size=2)) == [0, 2, 4, 6, 8]
    assert shard_rows(rows, DistContext(rank=1, world_size=2)) == [1, 3, 5, 7, 9]
    assert shard_rows(rows, DistContext()) == rows


def finetune(setup, recipe, out, nproc):
    cmd = ["-m", "minift", "finetune", "--recipe", str(recipe), "--out", str(out), "--data",
           str(setup / "pairs.jsonl"), "--base", str(setup / "base"), "--seed", "1", "--quiet", "--device", "cpu"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if nproc > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1",
               "--nproc_per_node", str(nproc)] + cmd
    else:
        cmd = [sys.executable] + cmd
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    bundle = load_model(out)
    weights = dict(bundle.model.state_dict())
    weights.update({f"prompt.{n}": p.weight.detach() for n, p in bundle.prompts.items()})
    return weights


@pytest.mark.parametrize("name, text", [("full", FULL), ("prompt", PROMPT), ("lora", LORA)])
def test_two_gloo_processes_equal_one_process_with_the_same_global_batch(tiny_setup, tmp_path, name, text):
    recipe = tmp_path / f"{name}.toml"
    recipe.write_text(text)
    one = finetune(tiny_setup, recipe, tmp_path / "one", 1)
    two = finetune(tiny_setup, recipe, tmp_path / "two", 2)
    base = load_model(tiny_setup / "base").model.state_dict()
    assert one.keys() == two.keys()
    moved = 0
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=1e-4, atol=1e-5, msg=key)
        if key in base and not torch.equal(one[key], base[key]):
            moved += 1
    if name == "full":
        assert moved > 10  # the comparison is about weights that really trained
    elif name == "lora":  # merged: the base's keys, and exactly the attention's weights of both blocks moved
        assert one.keys() == base.keys() and moved == 4
    else:
        assert moved == 0 and any(k.startswith("prompt.") for k in one)
