"""The strategy experiment: every (strategy, size, seed) is run once, recorded, aggregated and reported."""
import json
import math
import shutil
import statistics
import xml.etree.ElementTree as ET

import pytest
import torch

from minift import experiment
from minift.errors import MiniftError
from minift.experiment import STRATEGIES, aggregate, backward_fraction, mean_std, rule_of_thumb, run_experiment

SIZES, SEEDS = [20, 40], 2


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run fastest on one thread (and share the machine politely)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def grid(tiny_setup, tmp_path_factory, one_thread):
    """The whole 5 x 2 x 2 grid on the tiny base, run once for this module."""
    out = tmp_path_factory.mktemp("strategies")
    kwargs = dict(tasks=["translation"], sizes=SIZES, seeds=SEEDS, out=out, max_steps=3, base=tiny_setup / "base",
                  data=tiny_setup / "pairs.jsonl", test_limit=8, quiet=True)
    agg = run_experiment(**kwargs)
    return out, agg, kwargs


def records(out):
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def test_every_strategy_size_and_seed_is_recorded_exactly_once(grid, tiny_setup):
    out, _, _ = grid
    rs = records(out)
    assert len(rs) == len(STRATEGIES) * len(SIZES) * SEEDS == 20
    assert {experiment.record_key(r) for r in rs} == {("translation", n, s, seed) for n in SIZES
                                                      for s in STRATEGIES for seed in range(SEEDS)}
    from minift.checkpoint import load_model

    params = load_model(tiny_setup / "base").model.num_parameters()
    by = {(r["strategy"], r["examples"], r["seed"]): r for r in rs}
    assert by[("full", 20, 0)]["trainable_params"] == params  # full trains every weight
    assert by[("scratch", 20, 0)]["trainable_params"] == params
    assert by[("prompt", 20, 0)]["trainable_params"] < by[("layers", 20, 0)]["trainable_params"] < params
    assert [s["strategy"] for s in by[("hybrid", 40, 1)]["stages"]] == ["full", "layers", "prompt"]
    assert by[("hybrid", 40, 1)]["steps"] == 9  # three stages capped at --max-steps 3
    assert by[("layers", 20, 0)]["stages"][0]["backward_fraction"] == 0.5  # top half of 2 blocks
    for r in rs:
        assert r["test_examples"] == 8 and r["main_metric"] == "bleu" and r["score"] == r["metrics"]["bleu"]
        assert r["seconds"] == pytest.approx(r["train_seconds"] + r["eval_seconds"], abs=0.011)
    # Scored run folders keep only their summary and log; the checkpoints are gone.
    kept = sorted(p.name for p in (out / "runs" / "translation" / "20" / "hybrid" / "seed0").iterdir())
    assert kept == ["log.jsonl", "summary.json"]


def test_aggregate_mean_and_std_match_a_hand_computation(grid):
    out, agg, _ = grid
    rs = records(out)
    for strategy in STRATEGIES:
        for n in SIZES:
            scores = [r["score"] for r in sorted(rs, key=lambda r: r["seed"])
                      if r["strategy"] == strategy and r["examples"] == n]
            cell = json.loads((out / "results.json").read_text())["results"]["translation"][strategy][str(n)]
            assert cell["n"] == 2
            assert cell["mean"] == pytest.approx(statistics.mean(scores))
            assert cell["std"] == pytest.approx(statistics.stdev(scores))  # n - 1
    # And by hand: mean of 1, 2, 4 is 7/3; std = sqrt(((4/3)^2 + (1/3)^2 + (5/3)^2) / 2) = sqrt(7/3).
    assert mean_std([1.0, 2.0, 4.0]) == pytest.approx((7 / 3, math.sqrt(7 / 3)))
    assert mean_std([5.0]) == (5.0, 0.0)


def test_report_has_mean_std_cells_the_command_and_the_machine(grid):
    out, agg, _ = grid
    md = (out / "results.md").read_text()
    assert f"`minift experiment strategies --tasks translation --examples 20,40 --seeds 2 --out {out}" in md
    assert f"torch {torch.__version__}, 1 thread" in md and "seeds: 0, 1" in md
    assert "| examples | full | layers | prompt | hybrid | scratch |" in md
    rows = [line for line in md.splitlines() if line.startswith("| 20 |") or line.startswith("| 40 |")]
    assert len(rows) == 4  # two sizes, in the metric table and the wall-time table
    assert rows[0].count("±") == 5 and "**" in rows[0]  # five cells, the best in bold
    # The time table: CPU seconds, then the wall-clock seconds in brackets, as the records have them.
    rs = [r for r in records(out) if r["strategy"] == "full" and r["examples"] == 20]
    cpu, wall = (sum(r[k] for r in rs) / len(rs) for k in ("cpu_seconds", "seconds"))
    assert rows[2].split(" | ")[1].strip("* ") == f"{cpu:.1f} ({wall:.0f})"
    assert "| trainable params |" in md and "Rule of thumb" in md
    assert agg["rule_of_thumb"]["translation"] in md


def test_chart_is_valid_svg_with_one_line_per_strategy(grid):
    out, _, _ = grid
    root = ET.parse(out / "translation.svg").getroot()
    assert root.tag.endswith("svg")
    texts = {t.text for t in root.iter() if t.tag.endswith("text")}
    assert set(STRATEGIES) <= texts


def test_rerun_skips_what_is_recorded_and_redoes_only_missing_runs(grid, tmp_path, monkeypatch):
    out, _, kwargs = grid
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    calls = []
    real = experiment.run_recipe
    monkeypatch.setattr(experiment, "run_recipe", lambda recipe, opts: calls.append(opts.out) or real(recipe, opts))
    run_experiment(**{**kwargs, "out": copy})
    assert calls == []
    lines = (copy / "results.jsonl").read_text().splitlines()
    (copy / "results.jsonl").write_text("\n".join(lines[:-2]) + "\n")  # as if the last two were never recorded
    run_experiment(**{**kwargs, "out": copy})
    assert len(calls) == 2
    assert len(records(copy)) == 20
    assert {experiment.record_key(r) for r in records(copy)} == {experiment.record_key(r) for r in records(out)}


def test_a_run_trained_but_not_scored_is_scored_without_training_again(tiny_setup, tmp_path, monkeypatch, one_thread):
    kwargs = dict(tasks=["translation"], sizes=[20], seeds=1, out=tmp_path, max_steps=2, base=tiny_setup / "base",
                  data=tiny_setup / "pairs.jsonl", test_limit=4, quiet=True, strategies=["full"], keep_checkpoints=True)
    first = run_experiment(**kwargs)
    (tmp_path / "results.jsonl").unlink()  # killed after training, before its record was written
    calls = []
    monkeypatch.setattr(experiment, "run_recipe", lambda recipe, opts: calls.append(1))
    again = run_experiment(**kwargs)
    assert calls == []
    assert again["results"]["translation"]["full"]["20"]["mean"] == first["results"]["translation"]["full"]["20"]["mean"]


def test_other_settings_in_the_same_folder_are_refused(grid):
    out, _, kwargs = grid
    with pytest.raises(MiniftError, match="another --out"):
        run_experiment(**{**kwargs, "max_steps": 4})


def test_bad_input_is_a_minift_error(tiny_setup, tmp_path):
    with pytest.raises(MiniftError, match="seeds"):
        run_experiment(["translation"], [20], 0, tmp_path)
    with pytest.raises(MiniftError, match="sizes"):
        run_experiment(["translation"], [0], 1, tmp_path)
    with pytest.raises(MiniftError, match="unknown strategy"):
        run_experiment(["translation"], [20], 1, tmp_path, strategies=["lora"])
    with pytest.raises(MiniftError, match="--tasks translation"):
        run_experiment(["qa"], [20], 1, tmp_path, data=tiny_setup / "pairs.jsonl", base=tiny_setup / "base")


def test_backward_fraction_is_how_far_down_gradients_must_flow():
    assert backward_fraction(["transformer.h.3.mlp.c_fc.weight", "transformer.ln_f.weight"], 4) == 0.25
    assert backward_fraction(["transformer.h.2.attn.c_attn.weight", "transformer.h.3.mlp.c_fc.weight"], 4) == 0.5
    assert backward_fraction(["prompts.kitchen.weight"], 4) == 1.0  # the prompt sits below block 0
    assert backward_fraction(["transformer.ln_f.weight"], 4) == 0.0


def cell(mean):
    return {"mean": mean, "std": 0.0, "n": 1}


def test_rule_of_thumb_is_stated_plainly_either_way():
    holds = {"full": {"50": cell(10), "5000": cell(90)}, "layers": {"50": cell(30), "5000": cell(60)},
             "prompt": {"50": cell(5), "5000": cell(6)}}
    assert "the rule holds: layers wins at N=50, full at N=5000" in rule_of_thumb("qa", holds)
    fails = {"full": {"50": cell(40), "5000": cell(90)}, "layers": {"50": cell(30), "5000": cell(60)}}
    text = rule_of_thumb("qa", fails)
    assert "does not hold" in text and "(N=50) full wins, not layers or prompt alone" in text
    tie = {"full": {"50": cell(0.01), "500": cell(0.0)}, "layers": {"50": cell(0.0), "500": cell(0.04)}}
    text = rule_of_thumb("qa", tie)  # equal as the table shows them (0.0): a tie, not a winner
    assert "(N=500) full = layers tie, not full alone" in text
    assert "cannot be checked" in rule_of_thumb("qa", {"full": {"50": cell(1.0)}})


def test_single_seed_cells_show_plus_minus_zero(tmp_path):
    stage = {"name": "full", "strategy": "full", "trainable_params": 10, "total_params": 10, "batch_size": 4,
             "backward_fraction": 1.0}
    rs = [{"task": "qa", "strategy": s, "examples": 50, "seed": 0, "score": v, "seconds": 1.0, "trainable_params": 10,
           "main_metric": "f1", "stages": [stage]} for s, v in (("full", 12.34), ("layers", 56.78))]
    agg = aggregate(rs, {"params": 10, "n_layer": 2, "n_embd": 8})
    experiment.write_markdown(tmp_path / "r.md", agg, "minift experiment strategies", 1, {"qa": 5})
    md = (tmp_path / "r.md").read_text()
    assert "| 50 | 12.3 ±0 | **56.8 ±0** |" in md


def test_a_record_scores_the_runs_final_model_on_the_test_examples(tiny_setup, tmp_path, one_thread):
    """Re-score a kept run by hand: its final model, greedy, on the held-out tail, through BLEU."""
    from minift.checkpoint import load_model
    from minift.evaluate import generate_text, max_new_tokens_for
    from minift.metrics import bleu

    agg = run_experiment(tasks=["translation"], sizes=[20], seeds=1, out=tmp_path, max_steps=3,
                         base=tiny_setup / "base", data=tiny_setup / "pairs.jsonl", test_limit=8, quiet=True,
                         strategies=["full", "scratch"], keep_checkpoints=True)
    rs = {r["strategy"]: r for r in records(tmp_path)}
    tests = experiment.scoring_examples("translation", tiny_setup / "pairs.jsonl", 8)
    for strategy, r in rs.items():
        bundle = load_model(tmp_path / "runs" / "translation" / "20" / strategy / "seed0")
        room = max_new_tokens_for(bundle.tokenizer, tests, cap=bundle.model.config.block_size // 2)
        predictions = generate_text(bundle, [e.prompt for e in tests], max_new_tokens=room,
                                    prompt_names=[None] * len(tests))
        assert r["score"] == pytest.approx(bleu(predictions, [e.reference for e in tests]))
        assert agg["results"]["translation"][strategy]["20"]["mean"] == pytest.approx(r["score"])
    # The scratch floor starts from other weights than full, so the two runs end with other models.
    full = load_model(tmp_path / "runs" / "translation" / "20" / "full" / "seed0").model.state_dict()
    scratch = load_model(tmp_path / "runs" / "translation" / "20" / "scratch" / "seed0").model.state_dict()
    assert not torch.equal(full["transformer.wte.weight"], scratch["transformer.wte.weight"])
