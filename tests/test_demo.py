"""minift demo, shrunk: it loads the shipped base, runs the hybrid recipe and prints before -> after.

Ten steps a stage on 40 QA examples are enough for the claim the demo exists to show: the shipped
base, fine-tuned by the hybrid schedule, answers clearly better than before, and the line it prints
says exactly what the run measured.
"""
import re
from types import SimpleNamespace

from minift.demo import run_demo


def test_demo_runs_the_hybrid_recipe_and_after_beats_before(tmp_path, capsys):
    args = SimpleNamespace(out=str(tmp_path / "demo"), tasks="qa", seed=0, device="cpu", quiet=True)
    results = run_demo(args, examples=40, max_steps=10, eval_limit=8)
    out = capsys.readouterr().out
    assert "=== qa: recipe 'hybrid' (full -> layers -> prompt) ===" in out and "(before)" in out
    summary = results["qa"]
    assert [s["strategy"] for s in summary["stages"]] == ["full", "layers", "prompt"]
    assert all(s["steps"] == 10 for s in summary["stages"])
    before, after = summary["before"]["f1"], summary["stages"][-1]["metrics"]["f1"]
    assert after >= before + 10  # measured here: F1 0.0 -> 25.0 (seed 0, 8 validation questions)
    # The top-layers stage hands on weights that score a lower validation loss than the full stage's
    # (as in the real demo, README). The prompt stage is not held to it: in the real demo its soft
    # prompts raised the validation loss on two tasks of three (they move the text to positions P..).
    losses = [s["best_val_loss"] for s in summary["stages"]]
    assert losses[1] < losses[0]
    # The closing line prints the run's own numbers.
    line = re.search(r"^f1: ([\d.]+) before -> ([\d.]+) after$", out, re.M)
    assert line and (float(line[1]), float(line[2])) == (round(before, 1), round(after, 1))
    assert (tmp_path / "demo" / "qa" / "model.pt").exists() and (tmp_path / "demo" / "qa" / "loss.svg").exists()


def test_the_demo_trains_each_task_with_its_own_steps_and_rates():
    from minift.demo import DEMO_BUDGETS, demo_recipe
    from minift.schedule import load_recipe

    hybrid = load_recipe("hybrid")
    for task, (steps, scale) in DEMO_BUDGETS.items():
        recipe = demo_recipe(task)
        assert [s.strategy for s in recipe.stages] == [s.strategy for s in hybrid.stages]
        assert [s.max_steps for s in recipe.stages] == list(steps)
        assert [s.lr for s in recipe.stages] == [s.lr * scale for s in hybrid.stages]
    # The rates differ by task: what the lr sweep found for translation does not suit QA.
    assert DEMO_BUDGETS["translation"][1] != DEMO_BUDGETS["qa"][1]


def test_the_tasks_train_side_by_side_and_print_in_order_what_one_at_a_time_would(tmp_path, capsys, monkeypatch):
    """Two worker processes of one thread each give each task the same run, bit for bit, as training it
    here with one thread; the tables come out in the order of --tasks."""
    import os

    import torch

    from minift import demo

    monkeypatch.setattr(os, "cpu_count", lambda: 2)  # two tasks on two cores: one thread each
    assert demo.demo_jobs(2, "cpu") == (2, 1) and demo.demo_jobs(3, "cuda") == (1, 2)
    assert demo.demo_jobs(3, "cpu", jobs=1) == (1, 2) and demo.demo_jobs(1, "cpu") == (1, 2)
    side = SimpleNamespace(out=str(tmp_path / "side"), tasks="qa,translation", seed=0, device="cpu", quiet=True)
    together = run_demo(side, examples=40, max_steps=3, eval_limit=4)
    out = capsys.readouterr().out
    assert out.index("=== qa:") < out.index("=== translation:")
    assert (tmp_path / "side" / "qa.log").exists() and (tmp_path / "side" / "translation" / "model.pt").exists()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        alone = run_demo(SimpleNamespace(**{**vars(side), "out": str(tmp_path / "alone"), "jobs": 1}),
                         examples=40, max_steps=3, eval_limit=4)
    finally:
        torch.set_num_threads(threads)
    for task in ("qa", "translation"):
        assert [s["metrics"] for s in together[task]["stages"]] == [s["metrics"] for s in alone[task]["stages"]]
        assert [s["best_val_loss"] for s in together[task]["stages"]] == [s["best_val_loss"] for s in alone[task]["stages"]]


def test_the_progress_line_reads_each_tasks_stage_and_step_from_its_log(tmp_path):
    import json

    from minift.demo import _progress

    (tmp_path / "qa").mkdir()
    records = [{"event": "stage", "stage": "full", "step": 0}, {"event": "train", "stage": "full", "step": 10},
               {"event": "stage", "stage": "top-layers", "step": 10},  # the log counts steps on across stages
               {"event": "train", "stage": "top-layers", "step": 14}]
    (tmp_path / "qa" / "log.jsonl").write_text("\n".join(map(json.dumps, records)) + "\n{\"event\": \"tra")
    totals = {"qa": {"full": 10, "top-layers": 8, "prompts": 2}, "translation": {"full": 20}}
    line, fraction = _progress(tmp_path, ["qa", "translation"], totals)
    assert line == "qa top-layers 4/8, translation starting"
    assert fraction == (10 + 4) / (20 + 20)
