"""minift finetune end to end on the tiny fixture: summary.json, the run folder, evaluate and generate;
and a stage's own settings and measurements: set_dropout against a model built with that dropout, peak
memory as peak RSS in bytes off CUDA and as the stage's CUDA max allocation (torch.cuda stubbed) on it; and
stage_loss: the token mean of one batch and its count, and across ranks (all-reduce stubbed) this rank's
token sum * world_size / the global count, against cross-entropy computed by torch from the logits;
stage_steps and stop_reason on worked examples, and a stage over data whose prompts or answers are too
long for the block (what is cut, what is skipped, counted in summary.json); small runs: a single
training example, a BLEU-monitored stage, batches independent of dropout, and a run killed after a
mid-stage resume point that --resume continues from that step to the uninterrupted run's weights;
and with --compile (torch.compile stubbed) each step trains through the compiled module that
distributed.wrap got (find_unused for prompt stages only), on the stage's device."""
import dataclasses
import json

import pytest
import torch

import minift
from minift.checkpoint import fingerprint
from minift.cli import main
from minift.errors import MiniftError

RECIPE = """
name = "tiny-hybrid"
[defaults]
batch_size = 8
eval_every = 5
eval_examples = 8
warmup_steps = 1
[[stages]]
name = "all"
strategy = "full"
max_steps = 10
[[stages]]
name = "top"
strategy = "layers"
blocks = [-1]
parts = ["ln_f"]
max_steps = 6
[[stages]]
name = "styles"
strategy = "prompt"
prompt_tokens = 4
max_steps = 6
"""


@pytest.fixture(scope="module")
def run(tiny_setup, tmp_path_factory):
    folder = tmp_path_factory.mktemp("ft")
    (folder / "r.toml").write_text(RECIPE)
    code = main(["finetune", "--recipe", str(folder / "r.toml"), "--out", str(folder / "run"), "--data",
                 str(tiny_setup / "pairs.jsonl"), "--base", str(tiny_setup / "base"), "--seed", "2", "--quiet"])
    assert code == 0
    return folder / "run"


def test_summary_names_base_recipe_seed_and_each_stage(run, tiny_setup):
    summary = json.loads((run / "summary.json").read_text())
    assert summary["base"] == str(tiny_setup / "base") and summary["recipe"] == "tiny-hybrid" and summary["seed"] == 2
    names = [s["name"] for s in summary["stages"]]
    assert names == ["all", "top", "styles"]
    for s in summary["stages"]:
        for key in ("strategy", "trainable_params", "total_params", "trainable_names", "optimizer_state_bytes",
                    "steps", "seconds", "best_val_loss", "metrics"):
            assert key in s, key
        assert "bleu" in s["metrics"]
    full, top, styles = summary["stages"]
    assert full["trainable_params"] == full["total_params"] and full["steps"] == 10
    for i, s in enumerate(summary["stages"]):  # what each stage reports about itself
        assert (s["data"], s["monitor"], s["stopped"], s["main_metric"]) == ("all", "val_loss", "completed", "bleu")
        assert s["checkpoint"] == str(run / "stages" / f"{i}-{s['name']}" / "model.pt")
        assert len(s["samples"]) == 5 and {"prompt", "reference", "prediction"} <= set(s["samples"][0])
        assert s["tokens"] > 0 and 0 <= s["best_step"] <= s["steps"]
        assert isinstance(s["seconds"], float) and s["seconds"] == round(s["seconds"], 2)
    # Each stage trained its own max_steps, no cap cut it.
    assert [(s["max_steps"], s["capped"], s["stop_reason"]) for s in summary["stages"]] == [
        (10, False, "completed"), (6, False, "completed"), (6, False, "completed")]
    # Training works: on this easy task the full stage's best validation loss is below its start.
    evals = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    start = next(r["val_loss"] for r in evals if r.get("event") == "eval" and r["stage"] == "all")
    assert full["best_val_loss"] < start - 0.1
    # AdamW holds two float32 moments per trainable weight.
    assert full["optimizer_state_bytes"] == 8 * full["trainable_params"]
    assert all(n.startswith("transformer.h.1.") or n.startswith("transformer.ln_f") for n in top["trainable_names"])
    assert styles["trainable_names"] == ["prompts.x.weight", "prompts.y.weight"]
    assert styles["trainable_params"] == 2 * 4 * 32  # two prompts of 4 vectors of width 32
    for name in ("model.pt", "log.jsonl", "loss.svg", "prompts/x.pt", "prompts/y.pt", "stages/0-all/model.pt"):
        assert (run / name).exists(), name


def test_load_model_returns_the_final_model_with_its_prompts(run):
    bundle = minift.load_model(run)
    assert sorted(bundle.prompts) == ["x", "y"]
    stage1 = minift.load_model(run / "stages" / "1-top")
    # The prompt stage froze the model: the final weights are those that left the layers stage.
    assert fingerprint(bundle.model) == fingerprint(stage1.model)
    # bundle.generate is greedy decoding with the named prompt in front: redo it by hand, one full
    # forward per token (no cache, no batching), and compare the decoded text.
    prompt = "English: the cat sees the dog.\nFrench:"
    for name in ("x", "y"):
        assert bundle.generate(prompt, max_new_tokens=8, prompt_name=name) == greedy_by_hand(bundle, prompt, name, 8)


def greedy_by_hand(bundle, text, prompt_name, n):
    """Greedy decoding written out: argmax of the last position's logits, appended, n times (or eot)."""
    from minift.strategies.prompt import forward_with_prompts

    tok = bundle.tokenizer
    ids = tok.encode(text)
    new = []
    with torch.no_grad():
        for _ in range(n):
            logits = forward_with_prompts(bundle.model.eval(), bundle.prompts, torch.tensor([ids + new]),
                                          [prompt_name])
            next_id = int(logits[0, -1].argmax())
            if next_id == tok.eot_id:
                break
            new.append(next_id)
    return tok.decode(new).strip()


def test_the_loss_chart_marks_every_stage(run):
    svg = (run / "loss.svg").read_text()
    for name in ("all", "top", "styles"):
        assert f">{name}<" in svg


def test_evaluate_command_prints_a_table_and_writes_a_report(run, tiny_setup, capsys, tmp_path):
    report_path = tmp_path / "report.json"
    code = main(["evaluate", "--model", str(run), "--data", str(tiny_setup / "pairs.jsonl"), "--limit", "6",
                 "--out", str(report_path)])
    assert code == 0
    out = capsys.readouterr().out
    assert "bleu" in out and "reference:" in out and "prediction:" in out
    report = json.loads(report_path.read_text())
    assert report["n"] == 6 and "bleu" in report["metrics"] and len(report["samples"]) == 5
    assert {"prompt", "reference", "prediction"} <= set(report["samples"][0])


def test_generate_command_uses_a_named_prompt_and_refuses_an_unknown_one(run, capsys, tmp_path):
    # The tiny run's model writes the same words whatever its prompt, so the named prompt is checked
    # on the shipped base with a prompt initialised from text, which does change what it writes.
    from minift.finetune import save_bundle
    from minift.strategies.prompt import SoftPrompt

    bundle = minift.load_model("base")
    bundle.prompts["y"] = SoftPrompt(8, bundle.model.config.n_embd, init="text", model=bundle.model,
                                     tokenizer=bundle.tokenizer, text="le chien voit le chat. le chien")
    save_bundle(tmp_path / "m", bundle, {})
    prompt = "English: the dog sees the cat.\nFrench:"
    expected = greedy_by_hand(bundle, prompt, "y", 5)
    assert expected != greedy_by_hand(bundle, prompt, None, 5)
    assert main(["generate", "--model", str(tmp_path / "m"), "--prompt-name", "y", "--max-new-tokens", "5",
                 "English: the dog sees the cat.\\nFrench:"]) == 0
    assert capsys.readouterr().out.strip() == expected
    assert main(["generate", "--model", str(run), "--prompt-name", "z", "hi"]) == 2
    assert "no soft prompt named 'z'" in capsys.readouterr().err


def test_frozen_weights_of_the_layers_stage_are_bit_identical(run):
    before = minift.load_model(run / "stages" / "0-all").model.state_dict()
    after = minift.load_model(run / "stages" / "1-top").model.state_dict()
    for key, value in before.items():
        trained = key.startswith("transformer.h.1.") or key.startswith("transformer.ln_f")
        assert torch.equal(value, after[key]) != trained, key


COMPILE_RECIPE = """
name = "tiny-every-strategy"
[defaults]
batch_size = 8
eval_every = 3
eval_examples = 8
warmup_steps = 1
[[stages]]
name = "all"
strategy = "full"
max_steps = 6
[[stages]]
name = "top"
strategy = "layers"
blocks = [-1]
parts = ["ln_f"]
max_steps = 3
[[stages]]
name = "styles"
strategy = "prompt"
prompt_tokens = 4
max_steps = 3
[[stages]]
name = "pre"
strategy = "prefix"
prefix_tokens = 3
max_steps = 3
[[stages]]
name = "adapt"
strategy = "lora"
lora_rank = 2
max_steps = 3
[[stages]]
name = "bias"
strategy = "bitfit"
max_steps = 3
"""


def test_compile_trains_every_strategy_to_eagers_numbers_in_whole_graphs(tiny_setup, tmp_path):
    """--compile (model and fused AdamW update) through a stage of every strategy: the losses equal
    eager's to float tolerance, and dynamo never breaks a graph. A break is silent in the numbers
    (that piece just runs eager) but not in the speed: the prompts' padding mask read back as a
    bool (bool(mask.all())) once split every prompt and prefix step in two."""
    from torch._dynamo.utils import counters

    (tmp_path / "r.toml").write_text(COMPILE_RECIPE)

    def train_losses(*flags):
        out = tmp_path / ("run" + "".join(flags))
        code = main(["finetune", "--recipe", str(tmp_path / "r.toml"), "--out", str(out), "--data",
                     str(tiny_setup / "pairs.jsonl"), "--base", str(tiny_setup / "base"), "--seed", "2", "--quiet",
                     *flags])
        assert code == 0
        records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
        return [(r["stage"], r["step"], r["loss"]) for r in records if r.get("event") == "train"]

    eager = train_losses()
    torch._dynamo.reset()
    counters.clear()
    compiled = train_losses("--compile")
    breaks = dict(counters["graph_break"])
    torch._dynamo.reset()
    assert breaks == {}
    assert [e[:2] for e in eager] == [c[:2] for c in compiled]
    assert {e[0] for e in eager} == {"all", "top", "styles", "pre", "adapt", "bias"}
    for (_, _, a), (_, _, b) in zip(eager, compiled):
        assert b == pytest.approx(a, rel=1e-4)


# --- dropout and peak memory, the stage's own measurements ----------------------------------------------

def test_set_dropout_gives_every_dropout_the_rate_a_model_built_with_it_has(tiny_setup):
    """A trained-mode forward after set_dropout(p) equals that of GPT(config with dropout p), same
    weights, same seed: the nn.Dropout layers AND the fused attention's own dropout_p follow p."""
    from minift.finetune import set_dropout
    from minift.model import GPT

    bundle = minift.load_model(tiny_setup / "base")
    model = bundle.model
    assert model.config.attn_impl == "sdpa" and model.config.dropout == 0.0  # the fused path is the one at stake
    set_dropout(model, 0.4)
    reference = GPT(dataclasses.replace(model.config, dropout=0.4))
    reference.load_state_dict(model.state_dict())
    ids = torch.tensor([bundle.tokenizer.encode("the cat sees the dog. le chat voit le chien.")])
    outputs = []
    for m in (model, reference):
        torch.manual_seed(0)
        outputs.append(m.train()(ids))
    torch.testing.assert_close(outputs[0], outputs[1], rtol=0, atol=0)
    assert model.config.dropout == 0.4
    # Attention dropout alone (the residual and MLP dropouts back to 0) still changes the output.
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    torch.manual_seed(0)
    assert not torch.equal(model(ids), model.eval()(ids))


def test_peak_memory_off_cuda_is_the_peak_rss_in_bytes(monkeypatch):
    import resource
    import sys

    from minift.finetune import peak_memory, reset_peak_memory

    class Usage:
        ru_maxrss = 1000  # Linux reports kibibytes, macOS bytes

    monkeypatch.setattr(resource, "getrusage", lambda who: Usage)
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda *a: pytest.fail("reset on CPU"))
    reset_peak_memory("cpu")  # nothing to reset: an RSS peak cannot be lowered
    monkeypatch.setattr(sys, "platform", "linux")
    value, kind = peak_memory("cpu")
    assert value == 1000 * 1024 and "RSS" in kind
    monkeypatch.setattr(sys, "platform", "darwin")
    assert peak_memory("cpu")[0] == 1000
    # Without the resource module (Windows) nothing is measured.
    monkeypatch.setitem(sys.modules, "resource", None)
    assert peak_memory("cpu") == (None, "not measured")


def test_peak_memory_on_cuda_is_the_stages_max_allocation_since_its_reset(monkeypatch):
    """Both CUDA calls stubbed, so the branch is pinned on a machine without a GPU."""
    from minift.finetune import peak_memory, reset_peak_memory

    calls = []
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda device=None: calls.append(("reset", device)))
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: calls.append(("max", device)) or 12345)
    reset_peak_memory("cuda:1")
    value, kind = peak_memory("cuda:1")
    assert calls == [("reset", "cuda:1"), ("max", "cuda:1")]  # the stage's device, not the current one
    assert value == 12345 and "CUDA" in kind and "RSS" not in kind


# --- the loss of one batch ---------------------------------------------------------------------------------

@pytest.fixture
def loss_case(tiny_setup):
    """(Trainable of the tiny base with a soft prompt "x", a batch of 2 rows whose graded tokens are
    known, the sum of their token cross-entropies computed from the logits by torch)."""
    from minift.finetune import Trainable
    from minift.strategies.prompt import SoftPrompt
    from minift.tasks.format import Batch

    bundle = minift.load_model(tiny_setup / "base")
    module = Trainable(bundle.model, {"x": SoftPrompt(2, bundle.model.config.n_embd, init="random", seed=1)})
    g = torch.Generator().manual_seed(0)
    input_ids = torch.randint(0, 200, (2, 6), generator=g)
    targets = torch.randint(0, 200, (2, 6), generator=g)
    targets[0, :3] = -100  # row 0: its last 3 positions graded
    targets[1, :5] = -100  # row 1: its last position graded; 4 graded tokens in all
    batch = Batch(input_ids, targets, torch.ones(2, 6, dtype=torch.bool), ["x", "x"])

    def token_sum(b):
        logits = module(b.input_ids, b.prompt_names)  # the prompt is in front of every row
        return torch.nn.functional.cross_entropy(logits.flatten(0, 1), b.targets.flatten(), ignore_index=-100,
                                                 reduction="sum")
    return module, batch, token_sum


def test_stage_loss_in_one_process_is_the_mean_over_graded_tokens_and_their_count(loss_case):
    from minift.distributed import DistContext
    from minift.finetune import stage_loss
    from minift.tasks.format import Batch

    module, batch, token_sum = loss_case
    moved = []

    class Recording(Batch):
        def to(self, device):
            moved.append(device)
            return super().to(device)

    loss, n = stage_loss(Recording(*dataclasses.astuple(batch)), module, "cpu", DistContext())
    assert moved == ["cpu"]  # the batch goes to the stage's device
    assert n == 4
    torch.testing.assert_close(loss, token_sum(batch) / 4)


def test_stage_loss_across_ranks_scales_this_ranks_token_sum_to_the_global_mean(loss_case, monkeypatch):
    """Two ranks; the other's graded tokens come from a stubbed all-reduce. DDP averages the ranks'
    gradients, so each rank's loss is its token sum * world_size / the global count: the average of
    the ranks' losses is then the mean over every graded token of the global batch."""
    from minift import finetune
    from minift.distributed import DistContext

    module, batch, token_sum = loss_case
    ctx = DistContext(rank=0, world_size=2)
    other_rank = {"n": 6}
    calls = []

    def all_reduce_sum(value, c, device="cpu"):
        calls.append((value, c, device))
        return float(value + other_rank["n"])

    monkeypatch.setattr(finetune.distributed, "all_reduce_sum", all_reduce_sum)
    loss, n = finetune.stage_loss(batch, module, "cpu", ctx)
    assert calls == [(4, ctx, "cpu")] and n == 10
    torch.testing.assert_close(loss, token_sum(batch) * 2 / 10)
    # One graded token in the whole global batch: divided by 1, not by a floor above it.
    one = dataclasses.replace(batch, targets=batch.targets.clone())
    one.targets[0] = -100
    other_rank["n"] = 0
    loss, n = finetune.stage_loss(one, module, "cpu", ctx)
    assert n == 1
    torch.testing.assert_close(loss, token_sum(one) * 2)
    # A rank with no graded token: loss 0, still attached to the weights (DDP needs every rank's backward).
    none = dataclasses.replace(batch, targets=torch.full_like(batch.targets, -100))
    other_rank["n"] = 5
    loss, n = finetune.stage_loss(none, module, "cpu", ctx)
    assert n == 5 and loss.item() == 0.0 and loss.requires_grad


# --- a stage's step budget, why it stopped, and the examples that do not fit ---------------------------------

def test_stage_steps_follow_the_epochs_between_the_floor_and_the_cap():
    from minift.finetune import stage_steps
    from minift.schedule import Stage

    stage = Stage(epochs=2, min_steps=10, max_steps=50, batch_size=4)
    assert stage_steps(stage, 60) == (30, False)  # 2 * 60 / 4 = 30, inside [10, 50]
    assert stage_steps(stage, 10) == (10, False)  # 5: the floor lifts it
    assert stage_steps(stage, 200) == (50, True)  # 100: the stage's cap cuts it
    assert stage_steps(stage, 60, cap=20) == (20, True)  # --max-steps cuts it
    assert stage_steps(stage, 60, cap=40) == (30, False)  # a cap above the budget changes nothing
    assert stage_steps(stage, 60, cap=30) == (30, False)  # nor one equal to it: the budget was met
    assert stage_steps(stage, 100) == (50, False)  # asks exactly max_steps: not cut
    assert stage_steps(Stage(epochs=1, max_steps=50, batch_size=4), 2) == (1, False)  # round(0.5) = 0: one step
    assert stage_steps(Stage(epochs=1.5, max_steps=50, batch_size=4), 10) == (4, False)  # 3.75 rounds to 4
    assert stage_steps(Stage(max_steps=7), 1000) == (7, False)  # no epochs: max_steps, whatever the data
    assert stage_steps(Stage(max_steps=7), 1000, cap=3) == (3, True)


def test_stop_reason_names_why_a_stage_ended():
    from minift.finetune import STOP_REASONS, stop_reason

    cases = [
        (("early stop at step 4: val_loss did not improve", 4, 10, True, 2), "early_stop"),
        (("non-finite loss (nan) at step 3", 3, 10, False, 0), "fault"),
        (("", 10, 10, True, 10), "cap_still_improving"),  # cut by a cap, best at its last evaluation
        (("", 10, 10, True, 5), "cap"),                   # cut by a cap, best earlier
        (("", 10, 10, True, 9), "cap"),                   # ... even one step earlier
        (("", 10, 10, False, 10), "completed"),           # its own budget, however it went
        (("", 6, 10, True, 6), "completed"),              # a capped stage that stopped short of the cap
    ]
    for args, reason in cases:
        assert stop_reason(*args) == reason, args
    assert {reason for _, reason in cases} == set(STOP_REASONS)


def test_a_stage_cuts_long_prompts_from_the_left_and_skips_answers_that_do_not_fit(tiny_setup, tmp_path):
    """The tiny base's block is 64 positions; a prompt stage of 16 vectors leaves 48 for a row's text
    (49 ids: the inputs and the last target). A prompt too long is cut from the left; an answer too long
    for the row on its own is skipped. Counted in summary.json."""
    from minift.finetune import RunOptions, run_recipe
    from minift.schedule import load_recipe

    sentence, french = "the cat sees the dog.", "le chat voit le chien."
    long_prompt = {"source": " ".join([sentence] * 10), "target": french}
    medium_prompt = {"source": " ".join([sentence] * 3), "target": french}  # fits 64, not 64 - 16
    long_answer = {"source": sentence, "target": " ".join([french] * 8)}
    pairs = (tiny_setup / "pairs.jsonl").read_text().splitlines()[:20]
    lines = [json.dumps(d) for d in (long_prompt, long_answer, medium_prompt, long_answer, long_prompt)] + pairs
    (tmp_path / "d.jsonl").write_text("\n".join(lines) + "\n")
    tok = minift.load_model(tiny_setup / "base").tokenizer
    ids = len(tok.encode(f"English: {medium_prompt['source']}\nFrench:")) + len(tok.encode(f" {french}")) + 1
    assert 49 < ids <= 65  # the guard for "fits 64, not 64 - 16"
    (tmp_path / "r.toml").write_text('name = "fit"\n[[stages]]\nname = "p"\nstrategy = "prompt"\nprompt_tokens = 16\n'
                                     'max_steps = 3\nbatch_size = 2\neval_every = 1\neval_examples = 2\nlr = 0.02\n')
    summary = run_recipe(load_recipe(tmp_path / "r.toml"),
                         RunOptions(out=str(tmp_path / "run"), data=str(tmp_path / "d.jsonl"),
                                    base=str(tiny_setup / "base"), quiet=True, eval_limit=2, max_steps=1))
    (stage,) = summary["stages"]
    # 25 lines, the last 2 held out: 23 train, of which the 2 long answers are skipped.
    assert stage["skipped_examples"] == 2 and stage["examples"] == 21
    assert stage["truncated_prompts"] == 3  # the two long prompts and the medium one
    # --max-steps 1 cut the stage's 3: the summary says so, and why it stopped.
    assert stage["steps"] == stage["max_steps"] == 1 and stage["capped"] is True and stage["lr"] == 0.02
    assert stage["stop_reason"] in ("cap", "cap_still_improving")


def small_run(tiny_setup, folder, stages: str, data=None, **options):
    """run_recipe of a recipe made of ``stages`` (TOML) on the tiny base; returns its summary."""
    from minift.finetune import RunOptions, run_recipe
    from minift.schedule import load_recipe

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "r.toml").write_text('name = "small"\n[defaults]\nbatch_size = 4\neval_examples = 2\n' + stages)
    opts = RunOptions(**{"out": str(folder / "run"), "data": str(data or tiny_setup / "pairs.jsonl"),
                         "base": str(tiny_setup / "base"), "quiet": True, "eval_limit": 2, **options})
    return run_recipe(load_recipe(folder / "r.toml"), opts)


def test_a_stage_with_a_single_training_example_trains_on_it(tiny_setup, tmp_path):
    # Two lines: one held out for validation, the other is every batch's only row.
    (tmp_path / "two.jsonl").write_text("\n".join((tiny_setup / "pairs.jsonl").read_text().splitlines()[:2]) + "\n")
    summary = small_run(tiny_setup, tmp_path, '[[stages]]\nname = "one"\nmax_steps = 2\neval_every = 2\n',
                        data=tmp_path / "two.jsonl")
    (stage,) = summary["stages"]
    assert stage["examples"] == 1 and stage["steps"] == 2


def test_a_stage_monitoring_a_task_metric_measures_it_at_every_evaluation(tiny_setup, tmp_path):
    """monitor = "bleu": each evaluation during training also generates and scores the validation
    examples (early stopping and best-weights watch BLEU); a val_loss stage only computes the loss."""
    small_run(tiny_setup, tmp_path, '[[stages]]\nname = "loss"\nmax_steps = 2\neval_every = 1\nlr = 0.5\n'
                                    '[[stages]]\nname = "bleu"\nmax_steps = 2\neval_every = 1\nmonitor = "bleu"\n')
    evals = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    evals = [r for r in evals if r.get("event") == "eval"]
    assert [r["step"] for r in evals if r["stage"] == "bleu"] == [2, 3, 4]  # the start, then steps 1 and 2
    for r in evals:
        assert ("bleu" in r["metrics"]) == (r["stage"] == "bleu") and r["val_loss"] is not None, r
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert [s["monitor"] for s in summary["stages"]] == ["val_loss", "bleu"]
    # best_val_loss: the best value of a val_loss monitor; under BLEU, the last evaluation's loss.
    loss_stage, bleu_stage = summary["stages"]
    losses = [r["val_loss"] for r in evals if r["stage"] == "loss"]
    assert min(losses) < losses[-1]  # the guard: lr 0.5 overshoots, so the best is not the last
    assert loss_stage["best_val_loss"] == min(losses)
    assert bleu_stage["best_val_loss"] == [r["val_loss"] for r in evals if r["stage"] == "bleu"][-1]


def test_the_rows_a_stage_draws_depend_on_its_seed_not_on_dropout(tiny_setup, tmp_path):
    """Batches come from the trainer's own generator (seeded per stage), so dropout, which draws from
    torch's global generator, does not change which examples a stage trains on: the same graded
    tokens with dropout 0 and 0.3 (the examples differ in length, so other rows would show)."""
    stage = '[[stages]]\nname = "s"\nmax_steps = 4\neval_every = 4\ndropout = {}\n'
    plain = small_run(tiny_setup, tmp_path / "a", stage.format(0.0), seed=5)["stages"][0]
    noisy = small_run(tiny_setup, tmp_path / "b", stage.format(0.3), seed=5)["stages"][0]
    other_seed = small_run(tiny_setup, tmp_path / "c", stage.format(0.0), seed=6)["stages"][0]
    assert plain["tokens"] == noisy["tokens"]
    assert plain["tokens"] != other_seed["tokens"]  # the guard: other rows do change the count


class Killed(BaseException):
    """Stands for the process dying: nothing after it runs."""


def test_a_run_killed_after_a_mid_stage_resume_point_continues_from_it(tiny_setup, tmp_path, monkeypatch):
    """Two stages; the run dies right after the first resume point inside stage 2 is written.
    --resume continues stage 2 at that step (not at its start, not at stage 1) and ends with the
    weights and the summary of a run that was never interrupted."""
    from minift import finetune

    stages = ('[[stages]]\nname = "a"\nmax_steps = 2\neval_every = 2\n'
              '[[stages]]\nname = "b"\nmax_steps = 4\neval_every = 2\ndropout = 0.2\n')
    straight = small_run(tiny_setup, tmp_path / "straight", stages, seed=4)
    real_save = finetune.atomic_torch_save
    saves = []

    def dying_save(path, obj):
        real_save(path, obj)
        saves.append(obj["train_state"] and obj["train_state"]["step"])
        if len(saves) == 3:  # a's resume point (step 2), a's end, b's resume point at step 2
            raise Killed()

    monkeypatch.setattr(finetune, "atomic_torch_save", dying_save)
    with pytest.raises(Killed):
        small_run(tiny_setup, tmp_path / "killed", stages, seed=4)
    assert saves == [2, None, 2]
    monkeypatch.setattr(finetune, "atomic_torch_save", real_save)
    starts = []
    real_train_stage = finetune.train_stage

    def spy(*args, **kwargs):
        starts.append((kwargs["stage"], kwargs["step_offset"], kwargs["state"] and kwargs["state"].step))
        return real_train_stage(*args, **kwargs)

    monkeypatch.setattr(finetune, "train_stage", spy)
    resumed = small_run(tiny_setup, tmp_path / "killed", stages, seed=4, resume=True)
    assert starts == [("b", 2, 2)]  # stage b, after a's 2 steps, from its own step 2
    a = minift.load_model(tmp_path / "straight" / "run").model.state_dict()
    b = minift.load_model(tmp_path / "killed" / "run").model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [(s["name"], s["steps"], s["best_val_loss"]) for s in resumed["stages"]] == [
        (s["name"], s["steps"], s["best_val_loss"]) for s in straight["stages"]]
    assert resumed["before"] == straight["before"]
    # The log of the resumed run holds stage a's records, written before the kill (not wiped on resume).
    logged = lambda run: [(r.get("stage"), r.get("step")) for r in map(json.loads, (run / "log.jsonl").read_text()
                                                                           .splitlines()) if r.get("event") == "eval"]
    assert logged(tmp_path / "killed" / "run") == logged(tmp_path / "straight" / "run")


# (Its name avoids the word "c-o-m-p-i-l-e": tests/mutation.py deselects the tests that really compile.)
def test_a_stage_trains_through_the_fused_module_and_the_ddp_wrapper_on_its_device(tiny_setup, tmp_path, monkeypatch):
    """--compile, with torch.compile stubbed by a wrapper that counts its forwards (so nothing really
    compiles): every training step's loss goes through the compiled Trainable, handed to
    distributed.wrap with the run's context and device (find_unused only for a prompt stage, whose
    rows may leave a prompt without a gradient), and the stage's device reaches the trainer and the
    loss. A gradual stage's hook reaches the trainer too: block 0 trains from step 1."""
    from minift import finetune

    class Counting(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner, self.calls = inner, 0

        def forward(self, *args, **kwargs):
            self.calls += 1
            return self.inner(*args, **kwargs)

    compiled, functions, wrapped, devices = [], [], [], []

    def fake_compile(obj, *args, **kwargs):
        if not isinstance(obj, torch.nn.Module):
            functions.append(obj.__name__)
            return obj  # AdamW's update function: runs as it is
        compiled.append(Counting(obj))
        return compiled[-1]

    def spy_wrap(module, ctx, device, find_unused=False):
        wrapped.append((module, ctx, device, find_unused))
        return finetune.distributed.wrap.__wrapped__(module, ctx, device, find_unused)

    spy_wrap.__wrapped__ = finetune.distributed.wrap
    real_train_stage, real_stage_loss = finetune.train_stage, finetune.stage_loss

    def spy_train_stage(*args, **kwargs):
        devices.append(("train", kwargs["device"]))
        return real_train_stage(*args, **kwargs)

    def spy_stage_loss(batch, module, device, ctx):
        devices.append(("loss", device))
        return real_stage_loss(batch, module, device, ctx)

    monkeypatch.setattr(torch, "compile", fake_compile)
    monkeypatch.setattr(finetune.distributed, "wrap", spy_wrap)
    monkeypatch.setattr(finetune, "train_stage", spy_train_stage)
    monkeypatch.setattr(finetune, "stage_loss", spy_stage_loss)
    stages = ('[[stages]]\nname = "full"\nmax_steps = 1\n'
              '[[stages]]\nname = "grad"\nstrategy = "layers"\nparts = ["ln_f"]\nunfreeze_every = 1\nmax_steps = 2\n'
              '[[stages]]\nname = "p"\nstrategy = "prompt"\nprompt_tokens = 2\nmax_steps = 1\n')
    stages = stages.replace("max_steps", "eval_every = 100\nrestore_best = false\nmax_steps")
    summary = small_run(tiny_setup, tmp_path, stages, compile=True)
    assert [s["steps"] for s in summary["stages"]] == [1, 2, 1]
    assert [type(c.inner).__name__ for c in compiled] == ["Trainable"] * 3
    assert [c.calls for c in compiled] == [1, 2, 1]  # one forward per training step
    assert functions == ["_adamw_compiled"] * 3  # and each stage's AdamW update
    assert [(m, str(d), f) for m, _, d, f in wrapped] == [(c, "cpu", f) for c, f in zip(compiled, [False, False, True])]
    assert all(ctx.world_size == 1 for _, ctx, _, _ in wrapped)
    assert set(devices) == {("train", "cpu"), ("loss", "cpu")} and len(devices) == 3 + 4
    full = minift.load_model(tmp_path / "run" / "stages" / "0-full").model.state_dict()
    grad = minift.load_model(tmp_path / "run" / "stages" / "1-grad").model.state_dict()
    assert not torch.equal(full["transformer.h.0.attn.c_attn.weight"], grad["transformer.h.0.attn.c_attn.weight"])


# --- batches of similar lengths (a stage's length_buckets) -------------------------------------
def _encoded(lengths):
    """Example i: n_i tokens, every one of them i + 1 (0 is the padding), so a batch row names its example."""
    from minift.tasks.format import EncodedExample

    return [EncodedExample(ids=[i + 1] * n, n_prompt=1) for i, n in enumerate(lengths)]


def test_length_groups_sort_by_length_into_equal_counts_and_keep_each_group_mixed():
    from minift.finetune import length_groups

    lengths = [(7 * i) % 50 + 2 for i in range(200)]
    groups = length_groups(_encoded(lengths), 4, batch_size=4)
    assert sorted(i for g in groups for i in g) == list(range(200)) and [len(g) for g in groups] == [50] * 4
    spans = [(min(lengths[i] for i in g), max(lengths[i] for i in g)) for g in groups]
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))  # shortest group first, no overlap
    assert len(length_groups(_encoded(lengths), 8, batch_size=8)) == 200 // 32  # at least 4 batches' worth each
    assert len(length_groups(_encoded(lengths[:20]), 8, batch_size=8)) == 1  # too little data: one group


def _draws(batches, n_batches, seed=0):
    """(how often each example was drawn, each batch's spread of row lengths)."""
    g = torch.Generator().manual_seed(seed)
    counts, spreads = {}, []
    for _ in range(n_batches):
        b = batches(g)
        for i in (b.input_ids[:, 0] - 1).tolist():
            counts[i] = counts.get(i, 0) + 1
        n = b.attention_mask.sum(1)
        spreads.append(int(n.max() - n.min()))
    return counts, spreads


def test_length_buckets_draw_each_example_equally_often_in_batches_of_similar_lengths():
    from minift import distributed
    from minift.finetune import stage_batches

    lengths = [(7 * i) % 50 + 2 for i in range(100)] + [60 + i % 7 for i in range(40)]  # groups of unequal spans
    encoded, ctx = _encoded(lengths), distributed.DistContext()
    counts, spreads = _draws(stage_batches(encoded, 4, 0, ctx, "cpu", length_buckets=3), 7000)
    expected = 7000 * 4 / len(encoded)  # 200 draws of each example
    assert len(counts) == len(encoded)
    assert max(abs(c - expected) for c in counts.values()) < 5 * expected ** 0.5  # within 5 sd: uniform
    _, plain = _draws(stage_batches(encoded, 4, 0, ctx, "cpu"), 2000)
    assert sum(spreads) / len(spreads) < 0.5 * sum(plain) / len(plain)  # far less padding


def test_one_length_bucket_draws_exactly_the_rows_of_plain_batching():
    from minift import distributed
    from minift.finetune import stage_batches

    encoded = _encoded([(7 * i) % 50 + 2 for i in range(120)])
    one = stage_batches(encoded, 4, 0, distributed.DistContext(), "cpu", length_buckets=1)
    g, h = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    for _ in range(20):
        rows = torch.randint(0, len(encoded), (4,), generator=h).tolist()
        assert (one(g).input_ids[:, 0] - 1).tolist() == rows


def test_a_stage_with_length_buckets_trains_and_a_bad_count_is_refused(tiny_setup, tmp_path, monkeypatch):
    from minift import finetune
    from minift.errors import MiniftError
    from minift.finetune import RunOptions, run_recipe
    from minift.schedule import parse_recipe

    asked = []
    real = finetune.stage_batches
    monkeypatch.setattr(finetune, "stage_batches", lambda *a, **k: asked.append(a[5:] or k) or real(*a, **k))

    doc = {"name": "bucketed", "stages": [{"strategy": "full", "max_steps": 3, "length_buckets": 2,
                                           "batch_size": 2, "eval_every": 3}]}
    summary = run_recipe(parse_recipe(doc, "test"), RunOptions(out=str(tmp_path / "run"), data=str(tiny_setup / "pairs.jsonl"),
                                                       base=str(tiny_setup / "base"), quiet=True, eval_limit=2))
    assert summary["stages"][0]["steps"] == 3 and asked == [(2,)]  # the stage's field reaches its batches
    doc["stages"][0]["length_buckets"] = 0
    with pytest.raises(MiniftError, match=r"stages\[0\]\.length_buckets.*must be >= 1"):
        parse_recipe(doc, "test")


# --- what the mutation run (tests/mutation.py finetune) found untested ---------------------------------------

def test_each_stage_reports_its_cpu_time_rate_and_memory_and_its_checkpoint_names_it(run):
    """The fields report.md and the experiment read from summary.json, rounded as documented, and the
    meta of each stage's checkpoint and of the run's model.pt (what `minift evaluate` shows)."""
    summary = json.loads((run / "summary.json").read_text())
    assert summary["task"] == "translation"  # the recipe's task (no --task given)
    with open("/proc/self/status") as f:  # the process's peak RSS so far, in kB: a stage's peak cannot exceed it
        hwm = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) * 1024
    for s in summary["stages"]:
        assert s["cpu_seconds"] > 0 and s["cpu_seconds"] == round(s["cpu_seconds"], 2)
        assert s["tokens_per_s"] is not None and s["tokens_per_s"] == round(s["tokens_per_s"], 1)
        # seconds is rounded to 0.01 s, so tokens / seconds is known only within that rounding
        fastest, slowest = s["tokens"] / max(s["seconds"] - 0.005, 1e-9), s["tokens"] / (s["seconds"] + 0.005)
        assert slowest - 0.05 <= s["tokens_per_s"] <= fastest + 0.05
        assert s["peak_memory_kind"] == "peak RSS of the process so far"
        assert 10 * 2**20 < s["peak_memory_bytes"] <= hwm
    for i, s in enumerate(summary["stages"]):
        meta = minift.load_model(run / "stages" / f"{i}-{s['name']}").meta
        assert (meta["stage"], meta["recipe"]) == (s["name"], "tiny-hybrid")
    final = minift.load_model(run).meta
    assert (final["recipe"], final["seed"], final["task"]) == ("tiny-hybrid", 2, "translation")
    for path in sorted((run / "prompts").glob("*.pt")):  # each prompt file names its own prompt
        assert torch.load(path, weights_only=True)["name"] == path.stem


def test_the_examples_and_seeds_of_each_stage_come_from_the_run(tiny_setup, tmp_path, monkeypatch):
    """Stage i of a run with seed s: its training rows (--examples), its validation rows (its
    eval_examples) and its after-stage metrics' rows (--eval-limit) drawn with seed s; torch seeded with
    s * 1000 + i before its strategy is set up (dropout, prompt init), the trainer's batches too."""
    from minift import finetune

    calls, seeds = [], []
    real_examples, real_setup, real_train = finetune.stage_examples, finetune.setup_strategy, finetune.train_stage

    def stage_examples(recipe, stage, opts, split, n, seed):
        calls.append((stage.name, split, n, seed))
        return real_examples(recipe, stage, opts, split, n, seed)

    def setup_strategy(stage, bundle, train_examples, log, seed):
        seeds.append(("setup", stage.name, seed, torch.initial_seed(), isinstance(log, finetune.RunLog)))
        return real_setup(stage, bundle, train_examples, log, seed)

    def train_stage(*args, **kwargs):
        seeds.append(("train", kwargs["stage"], kwargs["seed"]))
        return real_train(*args, **kwargs)

    monkeypatch.setattr(finetune, "stage_examples", stage_examples)
    monkeypatch.setattr(finetune, "setup_strategy", setup_strategy)
    monkeypatch.setattr(finetune, "train_stage", train_stage)
    small_run(tiny_setup, tmp_path, '[[stages]]\nname = "a"\nmax_steps = 1\neval_examples = 3\n'
                                    '[[stages]]\nname = "b"\nmax_steps = 1\n', seed=3, examples=12)
    assert calls == [("a", "val", 2, 3),  # the metrics before training (--eval-limit 2)
                     ("a", "train", 12, 3), ("a", "val", 3, 3), ("a", "val", 2, 3),
                     ("b", "train", 12, 3), ("b", "val", 2, 3), ("b", "val", 2, 3)]
    assert seeds == [("setup", "a", 3000, 3000, True), ("train", "a", 3000),
                     ("setup", "b", 3001, 3001, True), ("train", "b", 3001)]


def test_a_stages_training_size_is_the_runs_then_the_stages_then_the_recipes_then_1000():
    from types import SimpleNamespace as NS

    from minift.finetune import stage_train_size

    assert stage_train_size(NS(examples=30), NS(examples=20), NS(examples=10)) == 10
    assert stage_train_size(NS(examples=30), NS(examples=20), NS(examples=None)) == 20
    assert stage_train_size(NS(examples=30), NS(examples=None), NS(examples=None)) == 30
    assert stage_train_size(NS(examples=None), NS(examples=None), NS(examples=None)) == 1000


def test_a_row_that_fills_the_block_exactly_is_not_cut_when_no_soft_prompt_needs_room(tiny_setup):
    from types import SimpleNamespace as NS

    from minift.finetune import encode_stage_examples

    bundle = minift.load_model(tiny_setup / "base")
    tok, block = bundle.tokenizer, bundle.model.config.block_size
    completion = " le chat voit le chien."
    fits = [p for k in range(1, 80) for p in (" ".join(["the cat"] * k),)
            if len(tok.encode(p)) + len(tok.encode(completion)) + 1 == block + 1]  # ids may be block + 1 long
    assert fits  # the guard: some prompt fills the row to the last position
    encoded, truncated, dropped = encode_stage_examples(bundle, [NS(prompt=fits[0], completion=completion)], [None])
    assert (truncated, dropped, len(encoded[0].ids)) == (0, 0, block + 1)
    longer = NS(prompt=fits[0] + " the cat", completion=completion)
    assert encode_stage_examples(bundle, [longer], [None])[1] == 1  # one more word is cut


def test_cut_prompts_are_reported_even_when_no_example_is_skipped(tiny_setup, tmp_path, capsys):
    from minift.finetune import RunOptions, run_recipe
    from minift.schedule import load_recipe

    medium = {"source": " ".join(["the cat sees the dog."] * 3), "target": "le chat voit le chien."}
    lines = [json.dumps(medium)] * 4 + (tiny_setup / "pairs.jsonl").read_text().splitlines()[:8]
    (tmp_path / "d.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "r.toml").write_text('name = "cut"\n[[stages]]\nname = "p"\nstrategy = "prompt"\nprompt_tokens = 16\n'
                                     'max_steps = 1\nbatch_size = 2\neval_examples = 2\n')
    summary = run_recipe(load_recipe(tmp_path / "r.toml"),
                         RunOptions(out=str(tmp_path / "run"), data=str(tmp_path / "d.jsonl"),
                                    base=str(tiny_setup / "base"), eval_limit=2))
    (stage,) = summary["stages"]
    assert stage["truncated_prompts"] == 4 and stage["skipped_examples"] == 0
    assert "[p] 4 prompts cut from the left to fit the block; 0 examples" in capsys.readouterr().err


def test_a_stage_ended_by_the_cap_while_improving_says_so(tiny_setup, tmp_path):
    summary = small_run(tiny_setup, tmp_path, '[[stages]]\nname = "s"\nmax_steps = 50\neval_every = 1\nlr = 3e-3\n',
                        max_steps=2)
    (stage,) = summary["stages"]
    assert stage["capped"] and stage["steps"] == 2 and stage["best_step"] == 2  # the guard: the last eval was best
    assert stage["stop_reason"] == "cap_still_improving"


def test_a_fresh_run_in_a_folder_left_by_a_killed_run_starts_a_new_log(tiny_setup, tmp_path):
    """No summary.json (the run died) and no --resume: the old log's lines are not this run's."""
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "log.jsonl").write_text("".join(json.dumps({"event": "eval", "stage": "old", "step": n}) + "\n"
                                                        for n in (0, 1, 99)))
    small_run(tiny_setup, tmp_path, '[[stages]]\nname = "s"\nmax_steps = 1\n')
    stages = {json.loads(line).get("stage") for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()}
    assert "old" not in stages and "s" in stages


def test_a_bad_out_is_named_as_the_run_folder(tiny_setup, tmp_path):
    from minift.errors import MiniftError

    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(MiniftError, match=r"file: is a file, not a folder \(the --out run folder\)"):
        small_run(tiny_setup, tmp_path, '[[stages]]\nname = "s"\nmax_steps = 1\n', out=str(tmp_path / "file"))


def test_a_lora_stage_in_a_run_saves_its_adapter_and_leaves_a_plain_gpt(tiny_setup, tmp_path):
    summary = small_run(tiny_setup, tmp_path, '[[stages]]\nname = "l"\nstrategy = "lora"\nlora_rank = 2\nmax_steps = 1\n')
    (stage,) = summary["stages"]
    adapter = tmp_path / "run" / "stages" / "0-l" / "adapter.pt"
    assert stage["adapter"] == str(adapter) and adapter.exists() and stage["lora_rank"] == 2
    base_keys = set(minift.load_model(tiny_setup / "base").model.state_dict())
    assert set(minift.load_model(tmp_path / "run").model.state_dict()) == base_keys  # merged: no A, no B


def test_the_summary_names_what_ran_and_a_finished_run_is_not_overwritten(tiny_setup, tmp_path, capsys):
    from minift.errors import MiniftError

    stage = '[[stages]]\nname = "s"\nmax_steps = 1\n'
    summary = small_run(tiny_setup, tmp_path, stage, examples=12)
    assert (summary["recipe_source"], summary["data"], summary["device"], summary["examples"]) == (
        str(tmp_path / "r.toml"), str(tiny_setup / "pairs.jsonl"), "cpu", 12)
    assert capsys.readouterr().err == ""  # quiet: no progress lines
    with pytest.raises(MiniftError, match=r"run already holds a run: use --resume to continue it, or another --out"):
        small_run(tiny_setup, tmp_path, stage, examples=12)


def test_a_run_from_scratch_draws_its_fresh_weights_from_the_run_seed(tiny_setup, tmp_path):
    stage = '[[stages]]\nname = "s"\nmax_steps = 1\nlr = 1e-9\n'  # one step barely moves the weights
    a = small_run(tiny_setup, tmp_path / "a", stage, base="scratch", seed=7)
    b = small_run(tiny_setup, tmp_path / "b", stage, base="scratch", seed=7)
    assert a["base"] == "scratch" and a["before"] == b["before"]
    wa, wb = (minift.load_model(tmp_path / x / "run").model.state_dict() for x in ("a", "b"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    small_run(tiny_setup, tmp_path / "c", stage, base="scratch", seed=8)
    wc = minift.load_model(tmp_path / "c" / "run").model.state_dict()
    assert not torch.equal(wa["transformer.wte.weight"], wc["transformer.wte.weight"])  # another seed, other weights


def test_a_stage_draws_from_its_subset_its_own_file_or_the_generated_task_with_the_run_seed(tiny_setup, tmp_path):
    from types import SimpleNamespace as NS

    from minift.finetune import RunOptions, stage_examples
    from minift.schedule import Stage

    recipe = NS(data=None, task="translation")
    pairs = RunOptions(out="unused", data=str(tiny_setup / "pairs.jsonl"))
    every = stage_examples(recipe, Stage(data="all"), pairs, "train", None, 0)
    assert {e.subset for e in every} == {"x", "y"} and len(every) == 72  # 80 lines, the last tenth held out
    only_x = stage_examples(recipe, Stage(data="x"), pairs, "train", None, 0)
    assert {e.subset for e in only_x} == {"x"} and 0 < len(only_x) < len(every)
    assert len(stage_examples(recipe, Stage(data="x"), pairs, "train", 5, 0)) == 5
    # A stage's own file wins over the run's --data, named .jsonl or not.
    lines = (tiny_setup / "pairs.jsonl").read_text().splitlines()
    for name in ("own.jsonl", "own.txt"):
        (tmp_path / name).write_text("\n".join(lines[:20]) + "\n")
        own = stage_examples(recipe, Stage(data=str(tmp_path / name)), pairs, "train", None, 0)
        assert [e.completion for e in own] == [e.completion for e in every[:18]]  # 20 lines, 2 held out
    # A generated task: the run's seed draws the examples, the subset filters them.
    generated = RunOptions(out="unused")
    draw = lambda seed, subset="all": [e.prompt for e in stage_examples(recipe, Stage(data=subset), generated,
                                                                        "train", 8, seed)]
    assert draw(1) == draw(1) != draw(2)
    kitchen = stage_examples(recipe, Stage(data="kitchen"), generated, "train", 8, 1)
    assert {e.subset for e in kitchen} == {"kitchen"}


def test_a_finished_stage_leaves_a_resume_point_at_the_next_stages_start(tiny_setup, tmp_path, monkeypatch):
    """Killed right after stage a's end was recorded: --resume starts stage b from its first step
    (after a's steps), with a's results and the metrics before training kept, and ends like an
    uninterrupted run."""
    from minift import finetune

    stages = ('[[stages]]\nname = "a"\nmax_steps = 2\neval_every = 2\n'
              '[[stages]]\nname = "b"\nmax_steps = 2\neval_every = 2\n')
    straight = small_run(tiny_setup, tmp_path / "straight", stages, seed=4)
    real_save, saves = finetune.atomic_torch_save, []

    def dying_save(path, obj):
        real_save(path, obj)
        saves.append(obj)
        if obj["train_state"] is None:  # the end of stage a
            raise Killed()

    monkeypatch.setattr(finetune, "atomic_torch_save", dying_save)
    with pytest.raises(Killed):
        small_run(tiny_setup, tmp_path / "killed", stages, seed=4)
    monkeypatch.setattr(finetune, "atomic_torch_save", real_save)
    point = torch.load(tmp_path / "killed" / "run" / "resume.pt", weights_only=True)
    assert (point["stage_index"], point["step_offset"], [s["name"] for s in point["completed"]]) == (1, 2, ["a"])
    assert point["before"] == straight["before"]
    starts = []
    real_train_stage = finetune.train_stage
    monkeypatch.setattr(finetune, "train_stage", lambda *a, **k: starts.append((k["stage"], k["step_offset"],
                                                                                k["state"])) or real_train_stage(*a, **k))
    resumed = small_run(tiny_setup, tmp_path / "killed", stages, seed=4, resume=True)
    assert starts == [("b", 2, None)]
    assert [(s["name"], s["steps"], s["best_val_loss"]) for s in resumed["stages"]] == [
        (s["name"], s["steps"], s["best_val_loss"]) for s in straight["stages"]]


def test_the_summarys_totals_and_the_progress_of_each_finished_stage(tiny_setup, tmp_path, capsys):
    from minift.finetune import RunOptions, run_recipe
    from minift.schedule import load_recipe

    (tmp_path / "r.toml").write_text('name = "p"\n[[stages]]\nname = "s1"\nmax_steps = 2\nbatch_size = 4\n'
                                     'eval_examples = 2\n[[stages]]\nname = "s2"\nmax_steps = 1\nbatch_size = 4\n'
                                     'eval_examples = 2\n')
    summary = run_recipe(load_recipe(tmp_path / "r.toml"),
                         RunOptions(out=str(tmp_path / "run"), data=str(tiny_setup / "pairs.jsonl"),
                                    base=str(tiny_setup / "base"), eval_limit=2))
    assert summary["seconds"] == round(sum(s["seconds"] for s in summary["stages"]), 2)
    assert 0 < summary["wall_seconds_this_call"] == round(summary["wall_seconds_this_call"], 2)
    assert summary["wall_seconds_this_call"] >= summary["seconds"] - 0.02  # the call holds the stages
    assert (summary["main_metric"], summary["processes"]) == ("bleu", 1)
    err = capsys.readouterr().err
    for s in summary["stages"]:
        assert f"[{s['name']}] done in {s['seconds']:.1f} s: bleu {s['metrics']['bleu']:.2f}" in err


def test_without_an_eval_limit_the_metrics_are_taken_on_100_validation_examples(tiny_setup, tmp_path, monkeypatch):
    from minift import finetune

    asked = []
    real = finetune.stage_examples
    monkeypatch.setattr(finetune, "stage_examples", lambda r, st, o, split, n, seed: asked.append((split, n))
                        or real(r, st, o, split, n, seed))
    small_run(tiny_setup, tmp_path, '[[stages]]\nname = "s"\nmax_steps = 1\n', eval_limit=None)
    assert asked == [("val", 100), ("train", 1000), ("val", 2), ("val", 100)]


def test_two_length_buckets_draw_each_batch_from_one_and_from_the_trainers_generator_only():
    from minift.distributed import DistContext
    from minift.finetune import stage_batches

    encoded = _encoded([4] * 20 + [30] * 20)
    batches = stage_batches(encoded, 4, 0, DistContext(), "cpu", 2)
    seen = []
    for global_seed in (123, 456):
        gen = torch.Generator().manual_seed(0)
        torch.manual_seed(global_seed)  # the global generator must not matter
        seen.append([batches(gen).attention_mask.sum(1).tolist() for _ in range(12)])
    assert seen[0] == seen[1]  # the same generator seed, the same batches
    for lengths in seen[0]:
        assert len(set(lengths)) == 1  # every row of a batch from one bucket (all short or all long)
    assert len({lengths[0] for lengths in seen[0]}) == 2  # both buckets are drawn


def test_a_run_resumed_under_other_settings_is_refused_naming_the_field_and_keeps_its_folder(
        tiny_setup, tmp_path, monkeypatch):
    """Its finished stages and its optimizer state belong to the settings it started with (plan.json):
    a changed rate (an edited recipe, another --lr-scale) or seed would make a run that is neither."""
    from minift import finetune

    stages = '[[stages]]\nname = "a"\nmax_steps = 2\neval_every = 2\n[[stages]]\nname = "b"\nmax_steps = 2\n'
    real_save = finetune.atomic_torch_save

    def dying_save(path, obj):
        real_save(path, obj)
        raise Killed()

    monkeypatch.setattr(finetune, "atomic_torch_save", dying_save)
    with pytest.raises(Killed):
        small_run(tiny_setup, tmp_path, stages, seed=4)
    monkeypatch.setattr(finetune, "atomic_torch_save", real_save)
    run = tmp_path / "run"
    plan = json.loads((run / "plan.json").read_text())
    assert plan["seed"] == 4 and [s["name"] for s in plan["stages"]] == ["a", "b"] and plan["stages"][1]["lr"] == 1e-3
    kept = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    with pytest.raises(MiniftError, match=r"^--resume: .*run was started with other settings "
                                          r"\(stages\[1\]\.lr: 0\.001 there, 0\.003 here\)"):
        small_run(tiny_setup, tmp_path, stages.replace('name = "b"\n', 'name = "b"\nlr = 0.003\n'), seed=4, resume=True)
    with pytest.raises(MiniftError, match=r"\(seed: 4 there, 5 here\)"):
        small_run(tiny_setup, tmp_path, stages, seed=5, resume=True)
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == kept  # nothing touched
    summary = small_run(tiny_setup, tmp_path, stages, seed=4, resume=True)  # the same settings resume
    assert [s["name"] for s in summary["stages"]] == ["a", "b"]


def test_the_plan_difference_names_the_first_differing_field():
    from minift.finetune import plan_differs

    assert plan_differs({"a": 1, "s": [{"lr": 1}]}, {"a": 1, "s": [{"lr": 1}]}) is None
    assert plan_differs({"a": 1, "s": [{"lr": 1}, {"lr": 2}]}, {"a": 1, "s": [{"lr": 1}, {"lr": 3}]}) == "s[1].lr: 2 there, 3 here"
    assert plan_differs({"s": [1]}, {"s": [1, 2]}) == "s: [1] there, [1, 2] here"  # a stage more
    assert plan_differs({"a": 1, "old": 2}, {"a": 1}) == "old: 2 there, None here"  # a field the run had
