"""The strategy experiment: every (strategy, size, seed) is run once, recorded, aggregated and reported.

And its protocol (issue #11): budgets that follow the data between a floor and a cap, and why each
stage stopped (cap while still improving: a dagger); Student's t intervals and ties; the
learning-rate sweep that picks by the VALIDATION split; refusal of records of another protocol;
the equal-compute chart from the runs' logs; the world-text loss of each final model (forgetting).
References: the published t table, hand arithmetic, the logs and the models re-read by hand.
"""
import dataclasses
import json
import math
import re
import shutil
import statistics
import xml.etree.ElementTree as ET

import pytest
import torch

from minift import experiment
from minift.errors import MiniftError
from minift.experiment import (STRATEGIES, aggregate, backward_fraction, mean_ci, mean_std, rule_of_thumb,
                               run_experiment, t_quantile, winners)

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
    """The whole grid (every registered strategy, hybrid and scratch) x 2 sizes x 2 seeds on the tiny
    base, run once for this module."""
    out = tmp_path_factory.mktemp("strategies")
    kwargs = dict(tasks=["translation"], sizes=SIZES, seeds=SEEDS, out=out, max_steps=3, base=tiny_setup / "base",
                  data=tiny_setup / "pairs.jsonl", test_limit=8, quiet=True,
                  world_text=tiny_setup / "book.txt")  # where the base's text is (a cached fixture moved it)
    agg = run_experiment(**kwargs)
    return out, agg, kwargs


def records(out):
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def test_every_strategy_size_and_seed_is_recorded_exactly_once(grid, tiny_setup):
    out, _, _ = grid
    rs = records(out)
    assert len(rs) == len(STRATEGIES) * len(SIZES) * SEEDS  # the arms follow the registry (+ hybrid, scratch)
    assert {experiment.record_key(r) for r in rs} == {("translation", n, s, seed) for n in SIZES
                                                      for s in STRATEGIES for seed in range(SEEDS)}
    from minift.bundle import load_model

    base = load_model(tiny_setup / "base").model
    params = base.num_parameters()
    by = {(r["strategy"], r["examples"], r["seed"]): r for r in rs}
    assert by[("full", 20, 0)]["trainable_params"] == params  # full trains every weight
    assert by[("scratch", 20, 0)]["trainable_params"] == params
    assert by[("prompt", 20, 0)]["trainable_params"] < by[("layers", 20, 0)]["trainable_params"] < params
    # bitfit trains the bias of every linear layer, nothing else
    biases = sum(m.bias.numel() for m in base.modules() if isinstance(m, torch.nn.Linear) and m.bias is not None)
    assert by[("bitfit", 20, 0)]["trainable_params"] == biases
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
            # Two seeds: t(0.975, 1) = 12.706205 from the published table, times s / sqrt(2).
            assert cell["ci"] == pytest.approx(12.706205 * statistics.stdev(scores) / math.sqrt(2), rel=1e-6)
    # And by hand: mean of 1, 2, 4 is 7/3; std = sqrt(((4/3)^2 + (1/3)^2 + (5/3)^2) / 2) = sqrt(7/3).
    assert mean_std([1.0, 2.0, 4.0]) == pytest.approx((7 / 3, math.sqrt(7 / 3)))
    assert mean_std([5.0]) == (5.0, 0.0)


def test_report_has_mean_std_cells_the_command_and_the_machine(grid):
    out, agg, _ = grid
    md = (out / "results.md").read_text()
    assert f"`minift experiment strategies --tasks translation --examples 20,40 --seeds 2 --out {out}" in md
    assert f"torch {torch.__version__}, 1 thread" in md and "seeds: 0, 1" in md
    assert f"| examples | {' | '.join(STRATEGIES)} |" in md and STRATEGIES[:3] == ("full", "layers", "prompt")
    rows = [line for line in md.splitlines() if line.startswith("| 20 |") or line.startswith("| 40 |")]
    assert len(rows) == 6  # two sizes, in the metric, the time and the forgetting tables
    assert rows[0].count("±") == len(STRATEGIES) and "**" in rows[0]  # a cell per arm, the best (and its ties) in bold
    assert "95% confidence interval, Student's t" in md and "- protocol: fair: each stage trains 10 epochs" in md
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
    assert len(records(copy)) == len(records(out))
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


def test_the_costs_the_advisor_plans_memory_with_carry_each_stages_measured_optimizer_state(grid):
    from minift.advise import memory_bytes

    out, agg, _ = grid
    rs = {(r["strategy"], r["examples"], r["seed"]): r for r in records(out)}
    for strategy in ("full", "lora", "hybrid"):
        stages = agg["costs"]["translation"][strategy]
        assert [s["optimizer_state_bytes"] for s in stages] == [s["optimizer_state_bytes"]
                                                               for s in rs[(strategy, 40, 0)]["stages"]]
    full = agg["costs"]["translation"]["full"]
    assert full[0]["optimizer_state_bytes"] == 8 * full[0]["trainable_params"]  # AdamW: two float32 moments
    assert memory_bytes(full, agg["model"], agg["model"]["params"])["optimizer"] == full[0]["optimizer_state_bytes"]


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
        run_experiment(["translation"], [20], 1, tmp_path, strategies=["adapterz"])
    with pytest.raises(MiniftError, match="--tasks translation"):
        run_experiment(["qa"], [20], 1, tmp_path, data=tiny_setup / "pairs.jsonl", base=tiny_setup / "base")


def test_backward_fraction_is_how_far_down_gradients_must_flow():
    assert backward_fraction(["transformer.h.3.mlp.c_fc.weight", "transformer.ln_f.weight"], 4) == 0.25
    assert backward_fraction(["transformer.h.2.attn.c_attn.weight", "transformer.h.3.mlp.c_fc.weight"], 4) == 0.5
    assert backward_fraction(["prompts.kitchen.weight"], 4) == 1.0  # the prompt sits below block 0
    assert backward_fraction(["transformer.ln_f.weight"], 4) == 0.0


def cell(mean, ci=0.0):
    return {"mean": mean, "std": 0.0, "ci": ci, "n": 3}


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
    # The intervals decide: 40 ± 5 and 36 ± 2 overlap (35 <= 38): a tie; 40 ± 1 and 36 ± 2 do not (39 > 38).
    wide = {"full": {"50": cell(40, 5), "5000": cell(90)}, "layers": {"50": cell(36, 2), "5000": cell(60)}}
    assert "(N=50) full = layers tie, not layers or prompt alone" in rule_of_thumb("qa", wide)
    narrow = {"full": {"50": cell(40, 1), "5000": cell(90)}, "layers": {"50": cell(36, 2), "5000": cell(60)}}
    assert "(N=50) full wins, not layers or prompt alone" in rule_of_thumb("qa", narrow)


def test_single_seed_cells_say_they_have_no_interval(tmp_path):
    stage = {"name": "full", "strategy": "full", "trainable_params": 10, "total_params": 10, "batch_size": 4,
             "backward_fraction": 1.0}
    rs = [{"task": "qa", "strategy": s, "examples": 50, "seed": 0, "score": v, "seconds": 1.0, "trainable_params": 10,
           "main_metric": "f1", "stages": [stage]} for s, v in (("full", 12.34), ("layers", 56.78))]
    agg = aggregate(rs, {"params": 10, "n_layer": 2, "n_embd": 8})
    experiment.write_markdown(tmp_path / "r.md", agg, "minift experiment strategies", 1, {"qa": 5})
    md = (tmp_path / "r.md").read_text()
    # One seed gives no interval, so nothing can be told apart: both are bold, a tie.
    assert "| 50 | **12.3 (1 seed)** | **56.8 (1 seed)** |" in md
    assert agg["results"]["qa"]["full"]["50"]["ci"] is None


def test_a_record_scores_the_runs_final_model_on_the_test_examples(tiny_setup, tmp_path, one_thread):
    """Re-score a kept run by hand: its final model, greedy, on the held-out tail, through BLEU."""
    from minift.bundle import load_model
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


# --- the protocol: budgets and why a stage stopped ----------------------------------------------
def test_a_budget_follows_the_data_between_a_floor_and_a_cap():
    from minift.finetune import stage_steps
    from minift.schedule import Stage

    stage = Stage(epochs=10, min_steps=100, max_steps=2000, batch_size=16)
    # steps = round(10 * N / 16), then at least 100, at most 2000.
    assert stage_steps(stage, 50) == (100, False)  # 31.25 -> 31: the floor lifts it
    assert stage_steps(stage, 1000) == (625, False)  # 625: the data decides
    assert stage_steps(stage, 5000) == (2000, True)  # 3125: the cap cuts it
    assert stage_steps(stage, 1000, cap=300) == (300, True)  # a run-wide --max-steps cuts too
    assert stage_steps(Stage(max_steps=300), 5000) == (300, False)  # no epochs: the stage's own steps
    assert stage_steps(Stage(epochs=0.5, max_steps=300), 20) == (1, False)  # round(0.625): never 0 steps
    assert stage_steps(Stage(epochs=16, max_steps=20), 20) == (20, False)  # asked exactly the cap: not cut


def scripted_stop(values, max_steps, capped=True, patience=None, min_delta=0.0):
    """A real trainer loop on a 2-weight model whose evaluations return ``values`` in turn."""
    from minift.finetune import stop_reason
    from minift.optim import AdamW, param_groups
    from minift.trainer import TrainConfig, train_stage

    torch.manual_seed(0)
    model = torch.nn.Linear(2, 1)
    optimizer = AdamW(param_groups(model, 0.0), lr=1e-3)
    scripted = iter(values)
    config = TrainConfig(max_steps=max_steps, eval_every=1, log_every=1, warmup_steps=0, patience=patience,
                         min_delta=min_delta)
    state = train_stage(model, optimizer, lambda g: torch.randn(4, 2, generator=g),
                        lambda m, b: (m(b).pow(2).mean(), 4), config, evaluate=lambda m: {"val_loss": next(scripted)})
    return stop_reason(state.stopped, state.step, max_steps, capped, state.best_step)


def test_stop_reason_says_whether_the_cap_stopped_a_stage_still_improving():
    from minift.finetune import stop_reason

    # Evaluations at steps 0, 1, 2 (eval_every 1, max_steps 2).
    assert scripted_stop([5.0, 4.0, 3.0], 2) == "cap_still_improving"  # the last evaluation is the best
    assert scripted_stop([5.0, 3.0, 3.5], 2) == "cap"  # the best came earlier
    assert scripted_stop([5.0, 4.0, 3.9995], 2, min_delta=0.001) == "cap"  # not better by more than min_delta
    assert scripted_stop([5.0, 4.0, 3.0], 2, capped=False) == "completed"  # its own budget, not a cap
    assert scripted_stop([5.0, 6.0, 7.0, 8.0], 3, patience=2) == "early_stop"  # two bad evaluations: stop at 2
    assert stop_reason("non-finite loss (nan) at step 3", 3, 10, True, 0) == "fault"


def test_every_stage_of_the_grid_records_its_budget_and_why_it_stopped(grid):
    out, agg, _ = grid
    for r in records(out):
        for s in r["stages"]:
            # N = 20 or 40 at 10 epochs asks round(12.5) = 12 or 25 steps: the cap of 3 stops it.
            assert s["max_steps"] == 3 and s["steps"] == 3
            assert s["stop_reason"] == ("cap_still_improving" if s["best_step"] == 3 else "cap")
        assert r["capped_improving"] == any(s["stop_reason"] == "cap_still_improving" for s in r["stages"])
        assert r["protocol"]["name"] == "fair" and r["lr_scale"] == 1.0


# --- statistics ----------------------------------------------------------------------------------
def test_t_quantiles_match_the_published_table():
    for df, value in ((1, 12.706205), (2, 4.302653), (4, 2.776445), (10, 2.228139), (30, 2.042272)):
        assert t_quantile(0.975, df) == pytest.approx(value, abs=2e-6)
    # Closed forms: df 1 is Cauchy, tan(pi (p - 1/2)); df 2 is (2p - 1) / sqrt(2 p (1 - p)).
    for p in (0.6, 0.9, 0.995):
        assert t_quantile(p, 1) == pytest.approx(math.tan(math.pi * (p - 0.5)), rel=1e-9)
        assert t_quantile(p, 2) == pytest.approx((2 * p - 1) / math.sqrt(2 * p * (1 - p)), rel=1e-9)
    assert t_quantile(0.025, 4) == pytest.approx(-2.776445, abs=2e-6)  # symmetric
    # Towards the normal limit (z = 1.959964): Fisher's expansion in 1 / df, good to ~1e-8 at df = 1000.
    z, df = 1.959963985, 1000
    fisher = z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2)
    assert t_quantile(0.975, df) == pytest.approx(fisher, abs=1e-7)


def test_confidence_intervals_and_ties_by_hand(tmp_path):
    # 1, 2, 4: mean 7/3, s = sqrt(7/3), half-width t(0.975, 2) * s / sqrt(3).
    mean, half = mean_ci([1.0, 2.0, 4.0])
    assert mean == pytest.approx(7 / 3) and half == pytest.approx(4.302653 * math.sqrt(7 / 3) / math.sqrt(3))
    assert mean_ci([5.0]) == (5.0, math.inf)
    stage = {"name": "s", "strategy": "full", "trainable_params": 1, "total_params": 1, "batch_size": 1,
             "backward_fraction": 1.0}
    scores = {"full": [10.0, 11.0, 12.0], "layers": [20.0, 21.0, 22.0], "prompt": [19.0, 21.0, 23.0]}
    rs = [{"task": "qa", "strategy": s, "examples": 50, "seed": i, "score": v, "seconds": 1.0, "trainable_params": 1,
           "main_metric": "f1", "stages": [stage], "capped_improving": s == "full" and i == 1}
          for s, vs in scores.items() for i, v in enumerate(vs)]
    agg = aggregate(rs, {"params": 1, "n_layer": 1, "n_embd": 1})
    # s = 1 for full and layers: half-width 4.302653 / sqrt(3) = 2.484; s = 2 for prompt: 4.968.
    # layers 21 ± 2.5 and prompt 21 ± 5.0 overlap: a tie; full 11 + 2.5 < 21 - 2.5: behind.
    assert winners(agg["results"]["qa"]) == {50: ["layers", "prompt"]}
    experiment.write_markdown(tmp_path / "r.md", agg, "cmd", 3, {"qa": 5})
    md = (tmp_path / "r.md").read_text()
    assert "| 50 | 11.0 ± 2.5† | **21.0 ± 2.5** | **21.0 ± 5.0** |" in md  # full's seed 1 was capped improving
    assert "- †: at least one seed's run ended at the step cap while its last evaluation was still its best" in md
    assert agg["results"]["qa"]["full"]["50"]["capped_improving"] == 1


# --- the learning-rate sweep ---------------------------------------------------------------------
def test_the_lr_sweep_picks_by_validation_and_never_reads_the_test_split(tiny_setup, tmp_path, monkeypatch,
                                                                         one_thread):
    from minift import finetune
    from minift.tasks import load_examples

    splits, scored, trained_lr = [], [], {}

    def spy(real):
        def load(*args, **kwargs):
            splits.append(kwargs.get("split", "train"))
            return real(*args, **kwargs)
        return load

    monkeypatch.setattr(experiment, "load_examples", spy(experiment.load_examples))
    monkeypatch.setattr(finetune, "load_examples", spy(finetune.load_examples))
    real_run = experiment.run_recipe

    def run_recipe(recipe, opts):
        trained_lr["now"] = recipe.stages[0].lr
        trained_lr.setdefault("task_and_size", set()).add((opts.task, opts.examples))
        return real_run(recipe, opts)

    # The recipes' rates are full 1e-3 and prompt 0.1; make x3 clearly best for full, x0.3 for prompt.
    best = {"full": 3e-3, "prompt": 0.03}

    def evaluate(bundle, examples, *args, **kwargs):
        scored.append([e.prompt for e in examples])
        lr = trained_lr["now"]
        good = any(math.isclose(lr, v) for v in best.values())
        return {"main_metric": "bleu", "metrics": {"bleu": 50.0 if good else 10.0}, "n": len(examples), "samples": []}

    monkeypatch.setattr(experiment, "run_recipe", run_recipe)
    monkeypatch.setattr(experiment, "evaluate_examples", evaluate)
    sweep = tmp_path / "sweep"
    result = experiment.lr_sweep(["translation"], 8, sweep, scales=(0.3, 1, 3), strategies=["full", "prompt"],
                                 base=tiny_setup / "base", val_limit=2, max_steps=1, quiet=True, extend=0)
    assert {s: w["lr_scale"] for s, w in result["winners"]["translation"].items()} == {"full": 3.0, "prompt": 0.3}
    assert result["winners"]["translation"]["full"]["lrs"] == [pytest.approx(3e-3)]
    assert trained_lr["task_and_size"] == {("translation", 8)}  # every run trains the swept task at the swept N
    assert "test" not in splits and "val" in splits  # validation only: the test split is never loaded
    validation = [e.prompt for e in load_examples(task="translation", split="val", n=2)]
    assert len(scored) == 6 and all(prompts == validation for prompts in scored)
    rows = [json.loads(line) for line in (sweep / "sweep.jsonl").read_text().splitlines()]
    assert sorted((r["strategy"], r["lr_scale"]) for r in rows) == [(s, x) for s in ("full", "prompt")
                                                                    for x in (0.3, 1.0, 3.0)]
    assert json.loads((sweep / "lrs.json").read_text())["winners"] == result["winners"]
    # The experiment trains every cell at the tuned rates and records them.
    out = tmp_path / "exp"
    agg = run_experiment(["translation"], [8], 1, out, max_steps=1, base=tiny_setup / "base", test_limit=1,
                         quiet=True, strategies=["full"], lrs=sweep / "lrs.json")
    (r,) = records(out)
    assert r["lr_scale"] == 3.0 and r["lrs"] == [pytest.approx(3e-3)] and trained_lr["now"] == pytest.approx(3e-3)
    assert agg["protocol"]["lr_source"].startswith("tuned sha256:")
    # Records tuned one way do not mix with a grid run at the recipes' rates.
    with pytest.raises(MiniftError, match=r"results.jsonl holds a run made with another protocol.*protocol.lr_source"):
        run_experiment(["translation"], [8], 1, out, max_steps=1, base=tiny_setup / "base", test_limit=1,
                       quiet=True, strategies=["full"])
    with pytest.raises(MiniftError, match="at least 3 distinct values"):
        experiment.lr_sweep(["translation"], 8, sweep, scales=(1, 3), base=tiny_setup / "base")


def test_ladder_step_walks_the_1_3_10_ladder_as_the_cli_writes_it():
    assert [experiment.ladder_step(x, up=True) for x in (0.3, 1.0, 3.0, 10.0)] == [1.0, 3.0, 10.0, 30.0]
    assert [experiment.ladder_step(x, up=False) for x in (3.0, 1.0, 0.3, 0.1)] == [1.0, 0.3, 0.1, 0.03]
    assert experiment.ladder_step(0.3, up=False) == float("0.1")  # the same float as --lr-scales 0.1
    assert experiment.ladder_step(2.0, up=True) == 3.0 and experiment.ladder_step(2.0, up=False) == 1.0


def test_the_lr_sweep_extends_a_grid_whose_winner_sits_at_its_edge(tiny_setup, tmp_path, monkeypatch, one_thread,
                                                                   capsys):
    """A winner at x3 is not known to be tuned: the sweep runs x10, then x30, and stops at the first
    multiplier with a worse neighbour on each side; within `extend` rungs; a resumed sweep reruns nothing."""
    trained_lr = {}
    real_run = experiment.run_recipe

    def run_recipe(recipe, opts):
        trained_lr["now"] = (recipe.stages[0].strategy, recipe.stages[0].lr)
        return real_run(recipe, opts)

    # The score peaks at a chosen multiplier of the recipe's rate (full 1e-3, prompt 0.1), falling
    # away in log-rate: full's peak is x10 (past the grid's top), prompt's x0.03 (two rungs below).
    recipe_lr = {"full": 1e-3, "prompt": 0.1}
    peak = {"full": 10.0, "prompt": 0.03}

    def evaluate(bundle, examples, *args, **kwargs):
        name, lr = trained_lr["now"]
        score = 50.0 - 10 * abs(math.log10(lr / (recipe_lr[name] * peak[name])))
        return {"main_metric": "bleu", "metrics": {"bleu": score}, "n": len(examples), "samples": []}

    monkeypatch.setattr(experiment, "run_recipe", run_recipe)
    monkeypatch.setattr(experiment, "evaluate_examples", evaluate)
    sweep = tmp_path / "sweep"
    kwargs = dict(scales=(0.3, 1, 3), strategies=["full", "prompt"], base=tiny_setup / "base", val_limit=2,
                  max_steps=1, quiet=True)
    result = experiment.lr_sweep(["translation"], 8, sweep, **{**kwargs, "quiet": False}, extend=1)
    assert capsys.readouterr().err.splitlines()[0] == (
        "lr sweep: 6 runs, 6 to do (and up to 1 more each way where a winner sits at the edge)")
    runs = lambda: sorted((r["strategy"], r["lr_scale"]) for r in map(json.loads, (sweep / "sweep.jsonl").read_text()
                                                                     .splitlines()))
    # extend=1: one rung each way at most. full: x10 wins, and it is still the top: at the edge.
    assert runs() == [("full", 0.3), ("full", 1.0), ("full", 3.0), ("full", 10.0),
                      ("prompt", 0.1), ("prompt", 0.3), ("prompt", 1.0), ("prompt", 3.0)]
    wins = result["winners"]["translation"]
    assert (wins["full"]["lr_scale"], wins["full"]["at_edge"]) == (10.0, True)
    assert (wins["prompt"]["lr_scale"], wins["prompt"]["at_edge"]) == (0.1, True)
    md = (sweep / "lrs.md").read_text()
    assert "lr × 0.1 | lr × 0.3 | lr × 1 | lr × 3 | lr × 10 |" in md
    assert re.search(r"\| full \| — \| [\d.]+ \| [\d.]+ \| [\d.]+ \| \*\*50\.0\*\*‡ \|", md), md
    # extend=2: full runs x30 (worse): x10 is tuned; prompt runs x0.03 (its peak): still the bottom edge.
    result = experiment.lr_sweep(["translation"], 8, sweep, **kwargs, extend=2)
    assert runs() == [("full", 0.3), ("full", 1.0), ("full", 3.0), ("full", 10.0), ("full", 30.0),
                      ("prompt", 0.03), ("prompt", 0.1), ("prompt", 0.3), ("prompt", 1.0), ("prompt", 3.0)]
    wins = result["winners"]["translation"]
    assert (wins["full"]["lr_scale"], wins["full"]["at_edge"]) == (10.0, False)
    assert wins["full"]["lrs"] == [pytest.approx(1e-2)] and wins["full"]["tried"] == [0.3, 1.0, 3.0, 10.0, 30.0]
    assert (wins["prompt"]["lr_scale"], wins["prompt"]["at_edge"]) == (0.03, True)
    # Resumed with the same settings: nothing new runs; extend=0 reads the planned grid alone.
    experiment.lr_sweep(["translation"], 8, sweep, **kwargs, extend=2)
    assert len(runs()) == 10
    result = experiment.lr_sweep(["translation"], 8, sweep, **kwargs, extend=0)
    assert len(runs()) == 10 and result["winners"]["translation"]["full"]["lr_scale"] == 3.0
    for bad in (-1, 1.5, True):
        with pytest.raises(MiniftError, match="--lr-extend must be a whole number of rungs >= 0"):
            experiment.lr_sweep(["translation"], 8, sweep, **kwargs, extend=bad)
    # The folder's runs were made with max_steps 1 (and so min_steps 1): another cap is refused, naming the log and the field.
    with pytest.raises(MiniftError, match=rf"^{re.escape(str(sweep / 'sweep.jsonl'))} holds a run made with another "
                                          r"protocol or settings \(translation 8 full 0 0.3: protocol.min_steps: 1 there, 2 here\)"):
        experiment.lr_sweep(["translation"], 8, sweep, **{**kwargs, "max_steps": 2})


def test_the_experiment_refuses_a_file_as_its_out_folder_before_any_work(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("kept")
    monkeypatch.chdir(tmp_path)
    # The base does not exist either: the --out check comes first, so its message is the one raised.
    with pytest.raises(MiniftError, match=rf"^{re.escape(str(blocker))}: is a file, not a folder \(the --out folder\)"):
        run_experiment(["translation"], [8], 1, blocker, base=tmp_path / "no-base", quiet=True, strategies=["full"])
    assert blocker.read_text() == "kept" and sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_a_run_trained_in_an_earlier_process_counts_its_training_cpu(tiny_setup, tmp_path, monkeypatch, one_thread):
    """Killed after training, before scoring: the rerun scores the trained model, and its record's CPU
    seconds still include the training (the stages' own CPU seconds), not only the scoring."""
    real = experiment.evaluate_examples

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # the process dies as the scoring starts

    monkeypatch.setattr(experiment, "evaluate_examples", killed)
    kwargs = dict(max_steps=40, base=tiny_setup / "base", test_limit=1, quiet=True, strategies=["full"])
    with pytest.raises(KeyboardInterrupt):
        run_experiment(["translation"], [8], 1, tmp_path / "exp", **kwargs)
    monkeypatch.setattr(experiment, "evaluate_examples", real)
    run_experiment(["translation"], [8], 1, tmp_path / "exp", **kwargs)
    (r,) = records(tmp_path / "exp")
    trained = sum(s["cpu_seconds"] for s in r["stages"])
    assert trained > 0.1 and r["cpu_seconds"] >= trained
    # The rule itself: this process's CPU, or the stages' plus the scoring's where that is more.
    summary = {"stages": [{"cpu_seconds": 30.0}, {"cpu_seconds": 12.5}, {}]}
    assert experiment.run_cpu_seconds(50.0, summary, 5.0) == 50.0  # trained here: setup + stages + scoring
    assert experiment.run_cpu_seconds(6.0, summary, 5.0) == 47.5  # trained before: 42.5 + 5 of scoring


def test_markdown_tables_bold_the_best_value_to_the_printed_digit_and_list_lr_multipliers():
    table = {"a": {"8": {"v": 10.04}}, "b": {"8": {"v": 10.43}}, "c": {"8": {"v": 10.41}}}
    text = lambda c: f"{c['v']:.1f}"
    lines = experiment.markdown_table(table, lambda c: c["v"], text)
    assert lines == ["| examples | a | b | c |", "|---:|---:|---:|---:|", "| 8 | 10.0 | **10.4** | **10.4** |"]
    lines = experiment.markdown_table(table, lambda c: c["v"], text, best=min)
    assert lines[2] == "| 8 | **10.0** | 10.4 | 10.4 |"
    agg = {"lr_scales_by_size": {"40": {"qa": {"full": 0.3, "prompt": 3.0}}, "8": {"qa": {"full": 1.0, "prompt": 10.0}}},
           "lr_tuned_at": {"8": 8, "40": 64}}
    assert experiment.lr_table(agg, "qa", ["full", "prompt"]) == [
        "Learning rates, qa: each recipe's rates times the multiplier its lr sweep chose, the sweep nearest the "
        "size on a log scale:", "",
        "| strategy | N=8 (sweep at 8) | N=40 (sweep at 64) |", "|---|---:|---:|",
        "| full | x1 | x0.3 |", "| prompt | x10 | x3 |", ""]
    assert experiment.lr_table({"lr_scales_by_size": agg["lr_scales_by_size"], "lr_tuned_at": {}}, "qa", ["full"]) == []


# --- records of another protocol -----------------------------------------------------------------
def test_records_of_another_protocol_are_refused_naming_the_file_and_the_field(grid, tmp_path, capsys):
    out, _, kwargs = grid
    log = out / "results.jsonl"
    with pytest.raises(MiniftError, match=rf"{log} holds .*protocol.name: 'fair' there, 'fixed' here"):
        run_experiment(**{**kwargs, "protocol": "fixed"})
    with pytest.raises(MiniftError, match=r"protocol.epochs: 10.0 there, 5.0 here"):
        run_experiment(**{**kwargs, "epochs": 5})
    # A record of the earlier protocol (it has no "protocol" field) is the fixed one, not this.
    copy = tmp_path / "old"
    copy.mkdir()
    lines = log.read_text().splitlines()
    old = json.loads(lines[0])
    del old["protocol"]
    (copy / "results.jsonl").write_text("\n".join([json.dumps(old)] + lines[1:]) + "\n")
    with pytest.raises(MiniftError, match=r"protocol.name: 'fixed' there, 'fair' here"):
        run_experiment(**{**kwargs, "out": copy})
    # Through the command line: one line, exit 2, before any training.
    from minift.cli import main

    code = main(["experiment", "strategies", "--tasks", "translation", "--examples", "20,40", "--seeds", "2",
                 "--out", str(out), "--max-steps", "3", "--epochs", "5", "--base", str(kwargs["base"]),
                 "--data", str(kwargs["data"]), "--test-limit", "8", "--device", "cpu", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and str(log) in err and "protocol.epochs" in err


def test_a_recipe_whose_rate_changed_since_its_records_is_refused(grid, monkeypatch):
    """The sweep's winners multiply the recipes' rates: a recipe edited after the records were made
    would train the missing cells at other rates under the same lr_source. Refused, naming lrs."""
    out, _, kwargs = grid
    real = experiment.load_recipe

    def edited(name):
        recipe = real(name)
        if name != "prompt":
            return recipe
        stages = [dataclasses.replace(s, lr=s.lr * 2) for s in recipe.stages]
        return dataclasses.replace(recipe, stages=stages)

    monkeypatch.setattr(experiment, "load_recipe", edited)
    with pytest.raises(MiniftError, match=r"translation \d+ prompt .*lrs: .* there, .* here \(recipes/prompt.toml"):
        run_experiment(**kwargs)
    monkeypatch.setattr(experiment, "load_recipe", real)
    run_experiment(**kwargs)  # the recipes as they were: every record still resumes


# --- equal compute -------------------------------------------------------------------------------
def test_the_equal_compute_chart_draws_each_strategys_val_loss_against_its_cpu_seconds(grid):
    out, agg, _ = grid
    assert agg["compute_examples"] == 40  # the largest size by default
    # The hybrid record's curve, rebuilt by hand from its run's log: each stage's cpu_s plus the
    # CPU seconds of the stages before it (summary.json), and the validation loss of that evaluation.
    run = out / "runs" / "translation" / "40" / "hybrid" / "seed0"
    summary = json.loads((run / "summary.json").read_text())
    before, offset = {}, 0.0
    for s in summary["stages"]:
        before[s["name"]], offset = offset, offset + s["cpu_seconds"]
    evals = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    evals = [e for e in evals if e["event"] == "eval"]
    assert len(evals) == 6  # steps 0 and 3 of each of the three stages
    spent = {s["name"]: s["cpu_seconds"] for s in summary["stages"]}
    assert all(0 < e["cpu_s"] <= spent[e["stage"]] + 0.011 for e in evals)  # counted from the stage's start
    (hybrid,) = [r for r in records(out) if (r["strategy"], r["examples"], r["seed"]) == ("hybrid", 40, 0)]
    assert [p[1] for p in hybrid["curve"]] == [e["val_loss"] for e in evals]
    assert [p[0] for p in hybrid["curve"]] == pytest.approx([before[e["stage"]] + e["cpu_s"] for e in evals], abs=0.011)
    # The SVG: one line per strategy, the first seed's curve, its x (CPU seconds) always growing.
    root = ET.parse(out / "translation-compute.svg").getroot()
    lines = {p.get("data-name"): p.get("d") for p in root.iter() if p.get("class") == "series"}
    assert set(lines) == set(STRATEGIES)
    for name, d in lines.items():
        xs = [float(x) for x in re.findall(r"[ML](-?[\d.]+),", d)]
        curve = next(r["curve"] for r in records(out) if (r["strategy"], r["examples"], r["seed"]) == (name, 40, 0))
        assert len(xs) == len(curve) and all(a < b for a, b in zip(xs, xs[1:])), name


# --- forgetting ----------------------------------------------------------------------------------
def test_each_final_model_is_scored_on_the_bases_held_out_text(tiny_setup, tmp_path, one_thread):
    """The world-text loss recorded is the final model's (prompts aside) on the held-out tenth of the
    tiny base's own book, rebuilt here by hand; a frozen base (prompt tuning) forgets nothing."""
    from minift.bundle import load_model
    from minift.pretrain import PRESETS, corpus_texts, encode_stream, stream_loss

    agg = run_experiment(tasks=["translation"], sizes=[20], seeds=1, out=tmp_path, base=tiny_setup / "base",
                         data=tiny_setup / "pairs.jsonl", test_limit=4, quiet=True, strategies=["full", "prompt"],
                         keep_checkpoints=True, epochs=4, min_steps=2, max_steps=8,
                         world_text=tiny_setup / "book.txt")
    _, held_out = corpus_texts(PRESETS["tiny"], seed=0, text_file=tiny_setup / "book.txt")  # how conftest built it

    def loss(model, tokenizer):
        return stream_loss(model.eval(), encode_stream(tokenizer, held_out), model.config.block_size, "cpu")

    base = load_model(tiny_setup / "base")
    base_loss = loss(base.model, base.tokenizer)
    rs = {r["strategy"]: r for r in records(tmp_path)}
    final = load_model(tmp_path / "runs" / "translation" / "20" / "full" / "seed0")
    assert rs["full"]["world_loss"] == pytest.approx(loss(final.model, final.tokenizer), abs=1e-6)
    assert rs["full"]["world_loss"] != pytest.approx(base_loss, abs=1e-4)  # full fine-tuning moved the base
    assert rs["prompt"]["world_loss"] == pytest.approx(base_loss, abs=1e-6)
    assert agg["base_world_loss"] == pytest.approx(base_loss, abs=1e-6)
    md = (tmp_path / "results.md").read_text()
    assert f"minus the base's own {base_loss:.4f} nats/token" in md
    assert f"| 20 | {rs['full']['world_loss'] - base_loss:+.3f} | +0.000 |" in md  # one seed: no ± shown
    # The budget of this run: round(4 epochs * 20 / 16) = 5 steps, between the floor 2 and the cap 8.
    for r in rs.values():
        assert [(s["steps"], s["max_steps"], s["stop_reason"]) for s in r["stages"]] == [(5, 5, "completed")]


def test_tuned_at_picks_the_sweep_nearest_on_a_log_scale():
    assert [experiment.tuned_at([50, 1000], n) for n in (10, 50, 200, 223, 224, 1000, 20000)] == [
        50, 50, 50, 50, 1000, 1000, 1000]  # sqrt(50 * 1000) = 223.6 is the border
    assert experiment.tuned_at([100, 400], 200) == 400  # a tie goes to the larger sweep
    assert experiment.tuned_at([], 200) is None


def _sweep_file(path, examples, winners, max_steps, base):
    """An lrs.json as `minift experiment lr-sweep` writes it, with chosen winners."""
    proto, cap = experiment.resolve_protocol("fair", max_steps=max_steps)
    proto.pop("lr_source")
    doc = {"kind": "lr-sweep", "examples": examples, "seed": 0, "scales": [0.3, 1, 3],
           "settings": {"protocol": proto, "max_steps": cap, "base": str(base), "data": None},
           "winners": {"translation": {s: {"lr_scale": x} for s, x in winners.items()}}}
    path.write_text(json.dumps(doc))
    return path


def test_the_experiment_takes_each_cells_rates_from_the_sweep_nearest_its_size(tiny_setup, tmp_path, one_thread):
    base = tiny_setup / "base"
    small = _sweep_file(tmp_path / "small.json", 8, {"full": 3.0}, 1, base)
    large = _sweep_file(tmp_path / "large.json", 64, {"full": 0.3}, 1, base)
    out = tmp_path / "exp"
    # The large sizes first, with the one sweep they use; then a sweep for small sizes joins: the
    # records already made stay valid (each carries the lr_source of the sweep its cell used).
    run_experiment(["translation"], [40], 1, out, max_steps=1, base=base, test_limit=1, quiet=True,
                   strategies=["full"], lrs=str(large))
    (first,) = records(out)
    agg = run_experiment(["translation"], [8, 40], 1, out, max_steps=1, base=base, test_limit=1, quiet=True,
                         strategies=["full"], lrs=f"{small},{large}")
    assert records(out)[0] == first  # not rerun
    got = sorted((r["examples"], r["lr_scale"], r["lr_tuned_at"], r["lrs"][0]) for r in records(out))
    assert got == [(8, 3.0, 8, pytest.approx(3e-3)), (40, 0.3, 64, pytest.approx(3e-4))]  # 40 is nearer 64 than 8
    source = agg["protocol"]["lr_source"]
    m = re.fullmatch(r"tuned at N=8 sha256:([0-9a-f]{12}); N=64 sha256:([0-9a-f]{12})", source)
    assert m, source
    assert {r["examples"]: r["protocol"]["lr_source"] for r in records(out)} == {
        8: f"tuned sha256:{m[1]}", 40: f"tuned sha256:{m[2]}"}
    assert agg["lr_scales_by_size"] == {"8": {"translation": {"full": 3.0}}, "40": {"translation": {"full": 0.3}}}
    assert agg["lr_scales"] == {"translation": {"full": 0.3}}  # those of the largest size
    md = (out / "results.md").read_text()
    assert "| full | x3 | x0.3 |" in md and "N=40 (sweep at 64)" in md
    # The command that made the tables names the base and both sweeps: rerunning it remakes them.
    assert f"--base {base} " in md and f"--lrs {small},{large}`" in md
    # Each results.json cell carries the multiplier its records trained at (1 where a record predates it).
    assert {n: agg["results"]["translation"]["full"][n]["lr_scale"] for n in ("8", "40")} == {"8": 3.0, "40": 0.3}
    old = experiment.aggregate([{k: v for k, v in r.items() if k != "lr_scale"} for r in records(out)], agg["model"])
    assert {n: c["lr_scale"] for n, c in old["results"]["translation"]["full"].items()} == {"8": 1.0, "40": 1.0}
    # Without the large sweep, N=40 would train at the small one's rates: its record is refused.
    with pytest.raises(MiniftError, match=r"another protocol .*translation 40 full.*protocol.lr_source"):
        run_experiment(["translation"], [8], 1, out, max_steps=1, base=base, test_limit=1, quiet=True,
                       strategies=["full"], lrs=str(small))
    with pytest.raises(MiniftError, match=r"two sweeps at N=8"):
        run_experiment(["translation"], [8], 1, tmp_path / "e2", max_steps=1, base=base, test_limit=1, quiet=True,
                       strategies=["full"], lrs=f"{small},{small}")
    no_prompt = _sweep_file(tmp_path / "np.json", 64, {"full": 1.0}, 1, base)
    with pytest.raises(MiniftError, match=r"the sweep at N=64 has no tuned learning rate for translation/prompt"):
        run_experiment(["translation"], [8], 1, tmp_path / "e3", max_steps=1, base=base, test_limit=1, quiet=True,
                       strategies=["full", "prompt"], lrs=str(no_prompt))


# --- Pinned by the mutation run (`python tests/mutation.py --sample 250 experiment`): each test below
# kills a mutant that survived the tests above, and says which behaviour it guards.

def test_the_continued_fraction_steps_over_an_exact_zero_denominator():
    # Lentz's method replaces a zero denominator by a tiny number instead of dividing by it. At
    # a=1, b=4, x=0.5 the first even step makes d exactly 0 (d0 = -0.25, numerator 0.25). The
    # fraction there equals I_x(a, b) * a / front, with I_x(1, 4) = 1 - (1 - x)^4 = 0.9375 and
    # front = x (1 - x)^4 / B(1, 4) = 0.5 * 0.0625 * 4 = 0.125: 7.5.
    assert experiment._beta_fraction(1.0, 4.0, 0.5) == pytest.approx(7.5, rel=1e-12)


def test_the_incomplete_beta_is_one_from_x_equal_one_on():
    # I_x(a, b) is a distribution function: 1 at x = 1 and beyond (no log of a negative number).
    assert experiment.betainc(2.0, 3.0, 1.0) == 1.0 and experiment.betainc(2.0, 3.0, 1.5) == 1.0
    assert experiment.betainc(2.0, 3.0, 0.0) == 0.0 and experiment.betainc(2.0, 3.0, -0.5) == 0.0
    # and in between, the closed form I_x(2, 3) = 6x^2 - 8x^3 + 3x^4 (Beta(2, 3)'s CDF), by hand at 0.5: 0.6875
    assert experiment.betainc(2.0, 3.0, 0.5) == pytest.approx(0.6875, rel=1e-12)


def test_a_record_of_a_strategy_the_registry_no_longer_holds_is_not_checked_against_a_recipe():
    # Its rates cannot be compared with a recipe that does not exist: no verdict, and no crash.
    record = {"strategy": "no-such-arm", "lrs": [1e-3], "lr_scale": 1.0}
    assert experiment.rates_differ(record, {}) is None
    assert experiment.rates_differ({"strategy": "full", "lr_scale": 1.0}, {}) is None  # predates lrs
    assert experiment.rates_differ({"strategy": "full", "lrs": [1e-3]}, {}) is None  # predates lr_scale


def test_an_lr_sweep_run_says_its_progress_keeps_its_run_folders_by_size_and_writes_its_tables(
        tiny_setup, tmp_path, capsys, one_thread):
    out = tmp_path / "sweep"
    result = experiment.lr_sweep(["translation"], 8, out, scales=(0.3, 1, 3), strategies=["full"],
                                 base=tiny_setup / "base", val_limit=2, max_steps=1, extend=0)
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "lr sweep: 3 runs, 3 to do"  # progress on stderr unless quiet
    assert [line.split(":")[0] for line in err[1:]] == [f"[{i}/3] translation full lr x{x}" for i, x in
                                                       ((1, "0.3"), (2, "1"), (3, "3"))]
    for x in ("0.3", "1", "3"):  # each run's folder sits under its size, pruned to its summary and log
        assert sorted(p.name for p in (out / "runs" / "translation" / "8" / "full" / f"lr{x}").iterdir()) == [
            "log.jsonl", "summary.json"]
    written = json.loads((out / "lrs.json").read_text())
    assert written["kind"] == "minift lr sweep" and written["examples"] == 8 and written["scales"] == [0.3, 1.0, 3.0]
    win = result["winners"]["translation"]["full"]
    assert win["tried"] == [0.3, 1.0, 3.0] and win["at_edge"] == (win["lr_scale"] in (0.3, 3.0))
    # lrs.md holds a well-formed table: a header, a separator of one column per multiplier + 2, one row.
    table = [line for line in (out / "lrs.md").read_text().splitlines() if line.startswith("|")]
    assert table[0] == "| strategy | lr × 0.3 | lr × 1 | lr × 3 | chosen lrs |"
    assert table[1] == "|---|---:|---:|---:|---:|"
    assert len(table) == 3 and table[2].startswith("| full | ") and table[2].endswith(" |")
    assert table[2].count(" | ") == 4 and f"{win['lrs'][0]:.3g} |" in table[2]
    # sweep.jsonl: one record per run, under the options given, each with its steps summed over its stages
    logged = [json.loads(line) for line in (out / "sweep.jsonl").read_text().splitlines()]
    assert [r["lr_scale"] for r in logged] == [0.3, 1.0, 3.0]
    assert {r["protocol"]["monitor"] for r in logged} == {"val_loss"} and {r["val_examples"] for r in logged} == {2}
    assert all(r["steps"] == sum(s["steps"] for s in r["stages"]) == 1 for r in logged)
    assert all(r["capped_improving"] == any(s["stop_reason"] == "cap_still_improving" for s in r["stages"])
               for r in logged)
    assert any(r["capped_improving"] for r in logged)  # one step from the base improves: the cap stopped it
    best = next(r for r in logged if r["lr_scale"] == win["lr_scale"])
    assert (win["val_score"], win["val_loss"], win["lrs"]) == (best["val_score"], best["val_loss"], best["lrs"])
    # The folder's records of another strategy are kept on disk but left out of this call's tables.
    again = experiment.lr_sweep(["translation"], 8, out, scales=(0.3, 1, 3), strategies=["prompt"],
                                base=tiny_setup / "base", val_limit=2, max_steps=1, extend=0, quiet=True)
    assert list(again["winners"]["translation"]) == ["prompt"] and len((out / "sweep.jsonl").read_text().splitlines()) == 6
    # The protocol's options reach the sweep's runs and records (here its monitor).
    experiment.lr_sweep(["translation"], 8, tmp_path / "by-bleu", scales=(0.3, 1, 3), strategies=["full"],
                        base=tiny_setup / "base", val_limit=2, max_steps=1, extend=0, monitor="main_metric", quiet=True)
    by_bleu = [json.loads(line) for line in (tmp_path / "by-bleu" / "sweep.jsonl").read_text().splitlines()]
    assert [r["protocol"]["monitor"] for r in by_bleu] == ["main_metric"] * 3


def test_an_lr_sweep_refuses_a_bad_size_or_out_folder_before_any_work(tiny_setup, tmp_path):
    for bad in (0, -3, 2.5, True):
        with pytest.raises(MiniftError, match="the lr sweep runs at one training-set size, a whole number >= 1"):
            experiment.lr_sweep(["translation"], bad, tmp_path / "s", strategies=["full"], base=tiny_setup / "base")
    blocker = tmp_path / "a-file"
    blocker.write_text("kept")
    with pytest.raises(MiniftError, match=rf"^{re.escape(str(blocker))}: is a file, not a folder \(the --out folder\)"):
        experiment.lr_sweep(["translation"], 8, blocker, strategies=["full"], base=tiny_setup / "base", max_steps=1)
    assert blocker.read_text() == "kept" and not (tmp_path / "--out folder").exists()


def test_the_sweep_scores_a_data_file_on_its_held_out_tenth(tmp_path):
    from minift.tasks import load_examples

    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps({"source": f"s{i}", "target": f"t{i}"}) + "\n" for i in range(95)))
    rows = load_examples(data=path)
    vals = experiment.validation_examples("translation", path, 1000)
    assert [e.fields["target"] for e in vals] == [e.fields["target"] for e in rows[-9:]]  # 95 // 10 = 9, the last ones
    assert [e.fields["target"] for e in experiment.validation_examples("translation", path, 4)] == ["t86", "t87", "t88", "t89"]


def test_near_x_equal_one_the_incomplete_beta_keeps_full_precision():
    # I_x(1, b) = 1 - (1 - x)^b in closed form. Close to 1 the fraction converges slowly, so betainc
    # switches to the symmetry I_x(a, b) = 1 - I_{1-x}(b, a) past x = (a + 1) / (a + b + 2).
    for b, x in ((2.0, 0.9999), (1.5, 0.999), (3.0, 0.995)):
        assert experiment.betainc(1.0, b, x) == pytest.approx(1.0 - (1.0 - x) ** b, rel=1e-13, abs=0)


def test_the_lr_source_is_the_hash_of_the_winners_as_sorted_json(tiny_setup, tmp_path):
    # Anyone can recompute a record's lr_source from lrs.json: sha256 of {"task/strategy": multiplier}
    # as JSON with sorted keys, first 12 hex digits. Task names where one is the other's prefix
    # ("qa", "qa-x") sort differently as strings than as (task, strategy) pairs.
    import hashlib

    proto, cap = experiment.resolve_protocol("fair", max_steps=1)
    proto.pop("lr_source")
    doc = {"kind": "minift lr sweep", "examples": 64, "seed": 0, "scales": [0.3, 1, 3],
           "settings": {"protocol": proto, "max_steps": cap, "base": str(tiny_setup / "base"), "data": None},
           "winners": {"qa": {"full": {"lr_scale": 3.0}}, "qa-x": {"full": {"lr_scale": 0.3}}}}
    path = tmp_path / "lrs.json"
    path.write_text(json.dumps(doc))
    winners, source, size = experiment.read_lrs(path, proto, cap, str(tiny_setup / "base"), None)
    expected = hashlib.sha256(json.dumps({"qa-x/full": 0.3, "qa/full": 3.0}, sort_keys=True).encode()).hexdigest()
    assert winners == {("qa", "full"): 3.0, ("qa-x", "full"): 0.3} and size == 64
    assert source == "tuned sha256:" + expected[:12]


def test_the_size_chart_spaces_the_sizes_on_a_log_scale(tmp_path):
    cell = lambda m: {"mean": m, "std": 1.0, "n": 3}  # noqa: E731
    agg = {"results": {"translation": {"full": {"10": cell(10), "100": cell(20), "1000": cell(30)}}},
           "main_metric": {"translation": "bleu"}}
    (path,) = experiment.write_charts(tmp_path, agg)
    xs = [float(v) for v in re.findall(r'<circle cx="([0-9.]+)"', path.read_text())[:3]]
    assert xs[1] - xs[0] == pytest.approx(xs[2] - xs[1], abs=0.02)  # 10, 100, 1000 evenly apart


def test_the_experiment_says_each_runs_result_and_what_is_left_on_stderr(tiny_setup, tmp_path, capsys, one_thread):
    agg = run_experiment(["translation"], [8], 2, tmp_path / "e", max_steps=1, base=tiny_setup / "base",
                         test_limit=1, strategies=["full"], compute_examples=8)
    assert agg["compute_examples"] == 8  # a size that was run may be chosen for the equal-compute chart
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("[")]
    assert [re.sub(r"bleu [0-9.]+ in [0-9]+ s", "bleu B in S s", re.sub(r"about [0-9.]+ min", "about M min", line))
            for line in err] == ["[1/2] translation N=8 full seed 0: bleu B in S s; 1 run left, about M min left",
                                 "[2/2] translation N=8 full seed 1: bleu B in S s; 0 runs left, about M min left"]
    with pytest.raises(MiniftError, match=r"--compute-examples 20: pick one of the sizes run \(8\)"):
        run_experiment(["translation"], [8], 2, tmp_path / "e", max_steps=1, base=tiny_setup / "base",
                       test_limit=1, strategies=["full"], compute_examples=20, quiet=True)


def test_the_fixed_protocol_scales_every_stages_rate_and_keeps_its_own_budget():
    from minift.schedule import load_recipe

    recipe = load_recipe("hybrid")
    for protocol, cap in ((dict(experiment.OLD_PROTOCOL), 7), (experiment.resolve_protocol("fair")[0], 9)):
        scaled, opts_cap = experiment.apply_protocol(recipe, protocol, cap, "translation", lr_scale=3.0)
        assert [s.lr for s in scaled.stages] == pytest.approx([3.0 * s.lr for s in recipe.stages])
        if protocol["name"] == "fixed":  # the recipe's own steps; the cap goes to RunOptions
            assert opts_cap == 7 and [(s.max_steps, s.epochs) for s in scaled.stages] == [
                (s.max_steps, s.epochs) for s in recipe.stages]
        else:  # the cap sits on each stage
            assert opts_cap is None and {s.max_steps for s in scaled.stages} == {9}


@pytest.mark.parametrize("option", ["epochs", "min_steps", "patience", "min_delta", "monitor"])
def test_the_fixed_protocol_refuses_each_fair_option_by_its_flag(option):
    with pytest.raises(MiniftError, match=rf"^--{option.replace('_', '-')} belongs to the fair protocol"):
        experiment.resolve_protocol("fixed", **{option: 1})


@pytest.mark.parametrize("option, bad, says", [
    ("epochs", 0, "--epochs must be > 0"), ("epochs", -1.5, "--epochs must be > 0"),
    ("min_steps", 0, "--min-steps .* from 1 to"), ("min_steps", 2.5, "--min-steps .* whole number"),
    ("min_steps", 2001, r"--min-steps .*\(the cap, 2000\)"), ("patience", 0, "--patience"),
    ("min_delta", -0.1, "--min-delta")])
def test_the_fair_protocol_refuses_each_value_out_of_range(option, bad, says):
    with pytest.raises(MiniftError, match=says):
        experiment.resolve_protocol("fair", **{option: bad})
    edge = {"epochs": 0.5, "min_steps": 2000, "patience": 1, "min_delta": 0.0}[option]  # just inside: accepted
    assert experiment.resolve_protocol("fair", **{option: edge})[0][option] == edge


def test_a_stage_row_carries_the_stages_name_and_an_old_summary_reads_as_completed():
    from minift.schedule import load_recipe

    recipe = load_recipe("hybrid")
    summary = {"stages": [{"name": st.name, "strategy": st.strategy, "trainable_params": 10, "total_params": 20,
                           "optimizer_state_bytes": 80, "steps": 3, "seconds": 1.0, "examples": 8,
                           "trainable_names": ["lm_head.weight"]} for st in recipe.stages]}
    summary["stages"][0]["stop_reason"] = "early_stop"
    rows = experiment.stage_rows(summary, recipe, n_layer=4)
    assert [r["name"] for r in rows] == [st.name for st in recipe.stages]
    assert [r["stop_reason"] for r in rows] == ["early_stop"] + ["completed"] * (len(rows) - 1)
    assert [r["lr"] for r in rows] == [st.lr for st in recipe.stages] and rows[0]["cpu_seconds"] is None


def test_the_rule_is_judged_among_full_layers_and_prompt_whoever_else_wins():
    # LoRA beats all three at both sizes; among the rule's three, layers wins small and full large.
    table = {"full": {"50": cell(10), "5000": cell(90)}, "layers": {"50": cell(30), "5000": cell(60)},
             "prompt": {"50": cell(5), "5000": cell(6)}, "lora": {"50": cell(50), "5000": cell(95)}}
    text = rule_of_thumb("qa", table)
    assert "the rule holds: layers wins at N=50, full at N=5000" in text
    assert "Over all strategies: N=50: lora, N=5000: lora." in text


def test_an_old_cells_interval_comes_from_its_std_and_n():
    # No "ci" (a results file older than intervals): t(0.975, 2) * std / sqrt(n).
    assert experiment.cell_ci({"mean": 5.0, "std": 2.0, "n": 3}) == pytest.approx(4.302653 * 2.0 / math.sqrt(3))
    assert experiment.cell_ci({"mean": 5.0, "std": 2.0, "n": 1}) == math.inf
    assert experiment.cell_ci({"mean": 5.0, "std": 2.0, "n": 3, "ci": 0.5}) == 0.5


def test_the_fixed_protocol_says_where_its_rates_came_from_and_its_cap():
    assert experiment.describe_protocol({"name": "fixed"}, None) == (
        "fixed: each recipe's own steps per stage; no early stopping unless the recipe asks; learning rates: recipes")
    assert experiment.describe_protocol({"name": "fixed", "lr_source": "lr sweep abc"}, 40).startswith(
        "fixed: each recipe's own steps per stage, capped at 40; ")


def test_a_fixed_protocol_run_trains_each_stage_to_the_cap(tiny_setup, tmp_path, one_thread):
    kwargs = dict(tasks=["translation"], sizes=[8], seeds=1, out=tmp_path / "fixed", max_steps=2,
                  base=tiny_setup / "base", data=tiny_setup / "pairs.jsonl", test_limit=2, quiet=True,
                  strategies=["hybrid"], protocol="fixed")
    run_experiment(**kwargs)
    (record,) = records(tmp_path / "fixed")
    assert record["protocol"]["name"] == "fixed" and [s["steps"] for s in record["stages"]] == [2] * len(
        record["stages"])


def test_the_report_shows_a_hybrids_trainable_params_stage_by_stage_and_links_only_a_compute_chart_it_made(
        tmp_path):
    stages = [{"name": n, "strategy": n, "trainable_params": p, "total_params": 5000, "batch_size": 4,
               "backward_fraction": 1.0} for n, p in (("full", 5000), ("layers", 1200))]
    rs = [{"task": "qa", "strategy": "hybrid", "examples": 50, "seed": i, "score": 10.0 + i, "seconds": 1.0,
           "trainable_params": 5000, "main_metric": "f1", "stages": stages} for i in range(2)]
    agg = aggregate(rs, {"params": 5000, "n_layer": 2, "n_embd": 8})
    (tmp_path / "qa-compute.svg").write_text("<svg/>")  # a chart left by another run: no compute_examples here
    experiment.write_markdown(tmp_path / "r.md", agg, "cmd", 2, {"qa": 5})
    md = (tmp_path / "r.md").read_text()
    assert "| trainable params | 5,000 → 1,200 |" in md
    assert "Equal compute" not in md
    experiment.write_markdown(tmp_path / "r.md", {**agg, "compute_examples": 50}, "cmd", 2, {"qa": 5})
    assert "Equal compute: `qa-compute.svg`" in (tmp_path / "r.md").read_text()


def test_arm_of_names_the_grid_arm_a_run_of_a_recipe_is():
    assert experiment.arm_of("full", "base") == "full" and experiment.arm_of("full", None) == "full"
    assert experiment.arm_of("full", "scratch") == "scratch"  # the full recipe from fresh weights
    assert experiment.arm_of("hybrid", "gpt2:/m") == "hybrid"
    assert experiment.arm_of("layers", "scratch") == "layers"  # the grid has no fresh-weights layers arm
    assert experiment.arm_of("my-recipe", "base") == "my-recipe"
