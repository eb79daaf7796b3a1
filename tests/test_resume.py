"""A run killed at any moment resumes with --resume and ends with the same weights as one never killed."""
import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch

import minift.finetune
import minift.io
from pathlib import Path
from minift.bundle import load_model
from minift.finetune import RunOptions, run_recipe
from minift.schedule import load_recipe

RECIPE = """
name = "mini-hybrid"
[defaults]
batch_size = 8
eval_every = 4
eval_examples = 8
warmup_steps = 2
[[stages]]
strategy = "full"
max_steps = 12
dropout = 0.1
[[stages]]
strategy = "layers"
top_k = 1
parts = ["ln_f"]
discriminative = 2.6
max_steps = 8
dropout = 0.1
[[stages]]
strategy = "prompt"
prompt_tokens = 4
max_steps = 8
"""

@pytest.fixture(scope="module")
def setup(tiny_setup):
    (tiny_setup / "recipe.toml").write_text(RECIPE)
    return tiny_setup


def options(root, out, resume=False):
    return RunOptions(out=str(out), data=str(root / "pairs.jsonl"), base=str(root / "base"), seed=3,
                      resume=resume, quiet=True, eval_limit=8)


def final_weights(out):
    bundle = load_model(out)
    weights = {k: v.clone() for k, v in bundle.model.state_dict().items()}
    weights.update({f"prompt.{n}": p.weight.detach().clone() for n, p in bundle.prompts.items()})
    return weights


@pytest.fixture(scope="module")
def reference(setup):
    run_recipe(load_recipe(setup / "recipe.toml"), options(setup, setup / "straight"))
    return final_weights(setup / "straight")


def assert_same(a, b, context=""):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs ({(a[k].double() - b[k].double()).abs().max().item():.3g} at most) {context}"


class Killed(BaseException):
    """Stands for the process dying: nothing after it runs."""


@pytest.mark.parametrize("die_at", [3, 6, 10])  # write 1 is plan.json, at the start
def test_death_while_writing_a_checkpoint_resumes_to_the_same_weights(setup, reference, die_at, monkeypatch):
    out = setup / f"killed-{die_at}"
    real = minift.io.atomic_write_bytes
    calls = {"n": 0}

    def dying_write(path, data):
        path = Path(path)
        calls["n"] += 1
        if calls["n"] == die_at:  # half a file in the temp name, then death: the rename never happens
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(str(path) + ".partial.tmp", "wb") as f:
                f.write(data[: len(data) // 2])
            raise Killed()
        real(path, data)

    monkeypatch.setattr(minift.io, "atomic_write_bytes", dying_write)
    with pytest.raises(Killed):
        run_recipe(load_recipe(setup / "recipe.toml"), options(setup, out))
    monkeypatch.setattr(minift.io, "atomic_write_bytes", real)
    starts = []  # (stage, step it resumed at): proves the run continued rather than started over
    real_train_stage = minift.finetune.train_stage

    def spy(*args, **kwargs):
        starts.append((kwargs["stage"], kwargs["state"].step if kwargs["state"] else 0))
        return real_train_stage(*args, **kwargs)

    monkeypatch.setattr(minift.finetune, "train_stage", spy)
    run_recipe(load_recipe(setup / "recipe.toml"), options(setup, out, resume=True))
    assert starts[0] != ("full", 0), starts
    assert_same(final_weights(out), reference)
    summary = json.loads((out / "summary.json").read_text())
    assert [s["name"] for s in summary["stages"]] == ["full", "layers", "prompt"]


def test_kill_9_at_a_random_moment_resumes_to_the_same_weights(setup, reference):
    out = setup / "kill9"
    cmd = [sys.executable, "-m", "minift", "finetune", "--recipe", str(setup / "recipe.toml"), "--out", str(out),
           "--data", str(setup / "pairs.jsonl"), "--base", str(setup / "base"), "--seed", "3", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while not (out / "resume.pt").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    delay = random.Random(os.getpid()).uniform(0.0, 0.3)
    time.sleep(delay)  # somewhere in the middle of training
    killed = proc.poll() is None
    if killed:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # Where the kill landed, for a failure to be reproducible (the delay varies with the process id).
    moment = (f"killed {delay:.3f} s after resume.pt appeared" if killed else "the run had finished") + \
        f"; the folder then held {sorted(str(p.relative_to(out)) for p in out.rglob('*'))}"
    log_before = (out / "log.jsonl").read_text() if (out / "log.jsonl").exists() else ""
    result = subprocess.run(cmd + ["--resume"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    steps = [(r["stage"], r["step"]) for r in map(json.loads, (out / "log.jsonl").read_text().splitlines())
             if r["event"] == "train"]
    assert len(steps) == len(set(steps)), "a resumed run must not log the same step twice"
    assert log_before, "the kill came before anything was logged: the test did not test resuming"
    assert_same(final_weights(out), reference, moment)


def test_a_finished_run_folder_is_not_overwritten_without_resume(setup, reference):
    from minift.errors import MiniftError

    with pytest.raises(MiniftError, match="already holds a run"):
        run_recipe(load_recipe(setup / "recipe.toml"), options(setup, setup / "straight"))
