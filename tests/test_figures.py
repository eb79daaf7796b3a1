"""The course's pictures: what each SVG shows, read back from the SVG itself, and how a lesson shows it.

Pins, for each picture function in minift.plot, that the drawing says what the data says:
- ``attention_svg``: one cell per (head, query, key), placed by row and column, token labels on
  both axes of every head, the darkest cell of a row at that row's largest weight (the argmax,
  computed here with torch), a zero weight white, one colour scale for every head;
- ``lr_schedule_svg``: every point of the curve, read back through the axis ticks, is the rate the
  warmup + cosine rule (written out by hand below) gives at that step; stages follow each other
  with a labelled line at each start, or all start at 0 with ``overlay``;
- ``unfreezing_svg``: block k's bar starts at the step where a real ``GradualUnfreezer``, stepped
  as the trainer steps it, first makes block k trainable, and ends at the last step;
and, around them: ``figures.attention_maps`` gives the weights a block's attention really uses
(rebuilt into the module's own output), ``course.show`` displays inline only in a Jupyter kernel
and prints the path otherwise (never importing IPython), and ``minift course figures --out DIR``
writes every figure as parseable SVG.
"""
import json
import math
import re
import sys
import types
import xml.etree.ElementTree as ET

import pytest
import torch

from minift.cli import main
from minift.course import show
from minift.errors import MiniftError
from minift.figures import attention_maps, token_labels, write_figures
from minift.model import GPT, GPTConfig
from minift.plot import attention_svg, lr_schedule_svg, unfreezing_svg
from minift.strategies.layers import GradualUnfreezer

NS = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # also proves the text is well-formed XML


def by_class(root, tag, cls):
    return [el for el in root.iter(NS + tag) if el.get("class") == cls]


def darkness(fill: str) -> int:
    """How dark a '#rrggbb' fill is: 765 minus the channel sum (white is 0)."""
    return 765 - sum(int(fill[i:i + 2], 16) for i in (1, 3, 5))


def causal_softmax(nh, T, seed=0):
    g = torch.Generator().manual_seed(seed)
    scores = torch.randn(nh, T, T, generator=g) * 2
    return scores.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf")).softmax(-1)


def axis(root, cls):
    """Pixel -> value along an axis, from two of its tick labels (class xtick or ytick)."""
    ticks = [(float(el.text), float(el.get("x" if cls == "xtick" else "y"))) for el in by_class(root, "text", cls)]
    (v0, p0), (v1, p1) = ticks[0], ticks[-1]
    if cls == "ytick":
        p0, p1 = p0 - 4, p1 - 4  # line_chart sets a y label 4 px below its gridline
    return lambda p: v0 + (p - p0) / (p1 - p0) * (v1 - v0)


def curve(root, name):
    el = next(el for el in by_class(root, "path", "series") if el.get("data-name") == name)
    return [(float(x), float(y)) for x, y in re.findall(r"[ML]([-\d.]+),([-\d.]+)", el.get("d"))]


def lr_by_hand(step, max_lr, warmup, total, ratio):
    """Linear warmup to max_lr, half a cosine down to ratio * max_lr, then flat (lesson 04's rule)."""
    if step < warmup:
        return max_lr * (step + 1) / warmup
    if step >= total:
        return ratio * max_lr
    q = (step - warmup) / (total - warmup)
    return ratio * max_lr + 0.5 * (1 - ratio) * max_lr * (1 + math.cos(math.pi * q))


# --- the attention heat map ---------------------------------------------------------------------

TOKENS = ["The", " farmer", " has", " ten", " sheep"]


def test_heat_map_has_one_cell_per_head_query_and_key_placed_by_row_and_column():
    weights = causal_softmax(3, 5)
    root = parse(attention_svg(TOKENS, weights))
    cells = by_class(root, "rect", "cell")
    assert len(cells) == 3 * 5 * 5
    assert {(int(c.get("data-head")), int(c.get("data-row")), int(c.get("data-col"))) for c in cells} == \
        {(h, t, s) for h in range(3) for t in range(5) for s in range(5)}
    for h in range(3):  # within a head's grid: columns go right with the key, rows go down with the query
        grid = {(int(c.get("data-row")), int(c.get("data-col"))): c for c in cells if c.get("data-head") == str(h)}
        xs = [float(grid[0, s].get("x")) for s in range(5)]
        ys = [float(grid[t, 0].get("y")) for t in range(5)]
        assert xs == sorted(xs) and len(set(xs)) == 5 and ys == sorted(ys) and len(set(ys)) == 5
        assert all(float(grid[t, s].get("x")) == xs[s] and float(grid[t, s].get("y")) == ys[t]
                   for t in range(5) for s in range(5))


def test_heat_map_labels_every_query_and_key_of_every_head():
    root = parse(attention_svg(TOKENS, causal_softmax(2, 5)))
    assert [el.text for el in by_class(root, "text", "key-label")] == TOKENS * 2
    assert [el.text for el in by_class(root, "text", "query-label")] == TOKENS * 2
    assert [el.text for el in by_class(root, "text", "head-title")] == ["head 0", "head 1"]


def test_the_darkest_cell_of_a_row_is_the_key_with_the_largest_weight():
    weights = causal_softmax(4, 6, seed=1)
    cells = by_class(parse(attention_svg([f"t{i}" for i in range(6)], weights)), "rect", "cell")
    fill = {(int(c.get("data-head")), int(c.get("data-row")), int(c.get("data-col"))): c.get("fill") for c in cells}
    for h in range(4):
        for t in range(6):
            shades = [darkness(fill[h, t, s]) for s in range(6)]
            assert shades.index(max(shades)) == int(weights[h, t].argmax())
            # darker exactly where the weight is larger (colours are whole numbers: close weights may tie)
            for a in range(6):
                for b in range(6):
                    if weights[h, t, a] > weights[h, t, b] + 0.01:
                        assert shades[a] > shades[b]
            assert all(darkness(fill[h, t, s]) == 0 for s in range(t + 1, 6))  # the masked future is white


def test_one_colour_scale_for_every_head():
    w = torch.zeros(2, 2, 2)
    w[0, 0, 0] = 1.0
    w[0, 1, 0] = w[1, 0, 0] = w[1, 1, 1] = 0.5  # head 1 never goes above 0.5: it must not look as dark as 1
    fill = {(c.get("data-head"), c.get("data-row"), c.get("data-col")): c.get("fill")
            for c in by_class(parse(attention_svg(["a", "b"], w)), "rect", "cell")}
    assert fill["0", "1", "0"] == fill["1", "0", "0"] == fill["1", "1", "1"]
    assert darkness(fill["0", "0", "0"]) > darkness(fill["1", "0", "0"]) > 0


@pytest.mark.parametrize("tokens, weights, message", [
    (["a", "b"], torch.ones(2, 3, 3) / 3, "must be (heads, 2, 2)"),
    (["a", "b"], torch.full((1, 2, 2), 1.5), "lie in [0, 1]"),
    (["a", "b"], torch.full((1, 2, 2), float("nan")), "lie in [0, 1]"),
    ([], torch.ones(1, 0, 0), "no tokens"),
])
def test_heat_map_refuses_weights_it_cannot_show(tokens, weights, message):
    with pytest.raises(MiniftError, match=re.escape(message)):
        attention_svg(tokens, weights)


def test_heat_map_is_written_to_path(tmp_path):
    svg = attention_svg(TOKENS, causal_softmax(1, 5), path=tmp_path / "a.svg")
    assert (tmp_path / "a.svg").read_text(encoding="utf-8") == svg


# --- attention_maps: the weights the model uses ---------------------------------------------------

def test_attention_maps_are_the_weights_each_block_uses():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=50, block_size=16, n_layer=2, n_head=2, n_embd=16)).train()
    idx = torch.randint(0, 50, (1, 7))
    maps = attention_maps(model, idx)
    assert maps.shape == (2, 2, 7, 7)
    assert model.training  # its mode is put back
    assert all(not block.attn._forward_pre_hooks for block in model.transformer.h)  # and no hook is left
    torch.testing.assert_close(maps.sum(-1), torch.ones(2, 2, 7))
    assert torch.all(maps.triu(diagonal=1) == 0)
    model.eval()
    with torch.no_grad():  # rebuild each block's attention output from the maps and its own values
        h = model.transformer.wte(idx) + model.transformer.wpe(torch.arange(7))
        for layer, block in enumerate(model.transformer.h):
            a, x = block.attn, block.ln_1(h)
            v = a.c_attn(x).split(16, dim=2)[2].view(1, 7, 2, 8).transpose(1, 2)  # (1, nh, T, hs)
            rebuilt = a.c_proj((maps[layer].unsqueeze(0) @ v).transpose(1, 2).reshape(1, 7, 16))
            torch.testing.assert_close(rebuilt, a(x))
            h = block(h)


def test_token_labels_keep_spaces_and_show_newlines():
    class Tok:
        def decode(self, ids):
            return {0: " farm", 1: "\n"}[ids[0]]

    assert token_labels(Tok(), [0, 1]) == [" farm", "\\n"]


# --- the learning-rate schedule -------------------------------------------------------------------

def test_every_point_of_the_schedule_is_the_warmup_cosine_rate_at_its_step():
    stage = {"name": "full", "lr": 1e-3, "warmup_steps": 10, "max_steps": 110, "min_lr_ratio": 0.1}
    root = parse(lr_schedule_svg([stage], after=15))
    step_of, lr_of = axis(root, "xtick"), axis(root, "ytick")
    points = curve(root, "full")
    assert len(points) == 110 + 15
    for step, (px, py) in enumerate(points):
        assert step_of(px) == pytest.approx(step, abs=0.01)
        assert lr_of(py) == pytest.approx(lr_by_hand(step, 1e-3, 10, 110, 0.1), abs=1e-7)
    lines = {el.text: float(x.get("x1")) for el, x in zip(by_class(root, "text", "vline-label"),
                                                           by_class(root, "line", "vline"))}
    assert step_of(lines["end of warmup"]) == pytest.approx(10, abs=0.01)
    assert step_of(lines["max_steps"]) == pytest.approx(110, abs=0.01)


def test_stages_follow_each_other_and_each_restarts_its_warmup():
    stages = [{"name": "full", "lr": 1e-3, "warmup_steps": 5, "max_steps": 40, "min_lr_ratio": 0.1},
              {"name": "layers", "lr": 5e-4, "warmup_steps": 5, "max_steps": 20, "min_lr_ratio": 0.0}]
    root = parse(lr_schedule_svg(stages))
    step_of, lr_of = axis(root, "xtick"), axis(root, "ytick")
    second = curve(root, "layers")
    assert step_of(second[0][0]) == pytest.approx(40, abs=0.01) and len(second) == 20  # starts where full ends
    for step, (_, py) in enumerate(second):
        assert lr_of(py) == pytest.approx(lr_by_hand(step, 5e-4, 5, 20, 0.0), abs=1e-7)
    starts = {el.text: step_of(float(x.get("x1"))) for el, x in zip(by_class(root, "text", "vline-label"),
                                                                     by_class(root, "line", "vline"))}
    assert starts == pytest.approx({"full": 0, "layers": 40}, abs=0.01)


def test_overlaid_schedules_all_start_at_step_zero():
    stages = [{"name": f"ratio {r}", "lr": 1e-3, "warmup_steps": 10, "max_steps": 50, "min_lr_ratio": r}
              for r in (0.1, 0.0)]
    root = parse(lr_schedule_svg(stages, overlay=True, after=5))
    step_of, lr_of = axis(root, "xtick"), axis(root, "ytick")
    for r in (0.1, 0.0):
        points = curve(root, f"ratio {r}")
        assert len(points) == 55 and step_of(points[0][0]) == pytest.approx(0, abs=0.01)
        assert lr_of(points[-1][1]) == pytest.approx(r * 1e-3, abs=1e-7)  # the flat end
    assert sorted(el.text for el in by_class(root, "text", "vline-label")) == ["end of warmup", "max_steps"]


def test_a_recipe_stage_is_drawn_as_the_trainer_runs_it():
    from minift.schedule import make_stage

    stage = make_stage(strategy="full", lr=2e-3, warmup_steps=50, max_steps=30)  # warmup longer than the stage
    root = parse(lr_schedule_svg([stage]))
    points, lr_of = curve(root, "full"), axis(root, "ytick")
    # The trainer caps the warmup at the stage's length: min(50, 30) = 30 steps of warmup, no decay.
    assert [round(lr_of(py), 9) for _, py in points] == pytest.approx([2e-3 * (s + 1) / 30 for s in range(30)],
                                                                      abs=1e-8)


def test_schedule_refuses_a_stage_without_a_rate():
    with pytest.raises(MiniftError, match="needs 'lr'"):
        lr_schedule_svg([{"warmup_steps": 1, "max_steps": 10}])
    with pytest.raises(MiniftError, match="no stages"):
        lr_schedule_svg([])


# --- the gradual-unfreezing timeline --------------------------------------------------------------

def first_trained_steps(unfreezer, model, total):
    """Step a GradualUnfreezer as the trainer does and note when each block first trains."""
    first = {}
    for step in range(total):
        unfreezer(step)
        for i, block in enumerate(model.transformer.h):
            if i not in first and all(p.requires_grad for p in block.parameters()):
                first[i] = step
    return first


@pytest.mark.parametrize("every, total", [(3, 20), (5, 12)])
def test_each_blocks_bar_starts_where_the_unfreezer_first_trains_it(every, total):
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=30, block_size=8, n_layer=4, n_head=2, n_embd=8))
    unfreezer = GradualUnfreezer(model, every=every, parts=["ln_f"])
    first = first_trained_steps(unfreezer, model, total)
    root = parse(unfreezing_svg(unfreezer.schedule(), 4, total, parts=["ln_f"]))
    step_of = axis(root, "xtick")
    bars = {el.get("data-row"): el for el in by_class(root, "rect", "train")}
    frozen = {el.get("data-row"): el for el in by_class(root, "rect", "frozen")}
    assert set(frozen) == {"ln_f", "block 0", "block 1", "block 2", "block 3"}
    assert set(bars) == {"ln_f"} | {f"block {i}" for i in first}  # a block never reached has no bar
    for row, bar in bars.items():
        start = step_of(float(bar.get("x")))
        end = step_of(float(bar.get("x")) + float(bar.get("width")))
        expected = 0 if row == "ln_f" else first[int(row.split()[1])]
        assert start == pytest.approx(expected, abs=0.01) and end == pytest.approx(total, abs=0.01)
    labels = [el.text for el in by_class(root, "text", "row-label")]
    assert labels == ["ln_f", "block 3", "block 2", "block 1", "block 0"]  # top of the model at the top


def test_timeline_puts_embeddings_below_the_blocks_and_refuses_a_bad_schedule():
    root = parse(unfreezing_svg([(0, 1), (10, 2)], 2, 30, parts=["embeddings"]))
    assert [el.text for el in by_class(root, "text", "row-label")] == ["block 1", "block 0", "embeddings"]
    with pytest.raises(MiniftError, match="schedule must be"):
        unfreezing_svg([(0, 5)], 2, 30)
    with pytest.raises(MiniftError, match="total_steps"):
        unfreezing_svg([(0, 1)], 2, 0)


# --- show: inline in a kernel, a path elsewhere -------------------------------------------------

def fake_ipython(monkeypatch, kernel: bool):
    """An IPython in sys.modules whose shell is a kernel (Jupyter) or not (terminal IPython)."""
    shown = []
    shell = types.SimpleNamespace(kernel=object()) if kernel else types.SimpleNamespace()
    ipython = types.ModuleType("IPython")
    ipython.get_ipython = lambda: shell
    display = types.ModuleType("IPython.display")
    display.SVG = lambda data: ("SVG", data)
    display.display = shown.append
    ipython.display = display
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    monkeypatch.setitem(sys.modules, "IPython.display", display)
    return shown


def test_show_displays_the_svg_in_a_kernel_and_prints_its_path(tmp_path, monkeypatch, capsys):
    chart = tmp_path / "c.svg"
    chart.write_text("<svg>drawn</svg>", encoding="utf-8")
    shown = fake_ipython(monkeypatch, kernel=True)
    assert show(chart) == chart
    assert shown == [("SVG", "<svg>drawn</svg>")]
    assert capsys.readouterr().out == f"chart: {chart}\n"
    show("<svg>text</svg>")
    assert shown[-1] == ("SVG", "<svg>text</svg>")


def test_show_only_prints_the_path_in_terminal_ipython(tmp_path, monkeypatch, capsys):
    chart = tmp_path / "c.svg"
    chart.write_text("<svg/>", encoding="utf-8")
    shown = fake_ipython(monkeypatch, kernel=False)  # a terminal would print "<...SVG object>"
    show(chart, "loss chart")
    assert shown == [] and capsys.readouterr().out == f"loss chart: {chart}\n"


def test_show_without_ipython_prints_the_path_and_imports_nothing(tmp_path, monkeypatch, capsys):
    chart = tmp_path / "c.svg"
    chart.write_text("<svg/>", encoding="utf-8")
    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    monkeypatch.delitem(sys.modules, "IPython.display", raising=False)
    asked = []

    class Finder:  # an installed IPython, as far as the import system can tell: it notes every look-up
        @staticmethod
        def find_spec(name, path=None, target=None):
            if name.split(".")[0] == "IPython":
                asked.append(name)
            return None

    monkeypatch.setattr(sys, "meta_path", [Finder] + sys.meta_path)
    show(chart)
    assert capsys.readouterr().out == f"chart: {chart}\n"
    assert asked == [] and "IPython" not in sys.modules  # a plain run never even looks for IPython
    show("<svg/>")
    assert "run the lesson in Jupyter" in capsys.readouterr().out
    with pytest.raises(MiniftError, match="no such chart"):
        show(tmp_path / "missing.svg")


# --- minift course figures ------------------------------------------------------------------------

def test_course_figures_writes_every_figure_as_svg(tmp_path, capsys):
    out = tmp_path / "slides"
    out.mkdir()
    (out / "translation.svg").write_text("mine")  # the experiment's own name for its chart: not ours to replace
    assert main(["course", "figures", "--out", str(out)]) == 0
    assert (out / "translation.svg").read_text() == "mine"
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary folder is left
    printed = capsys.readouterr().out.split()
    names = sorted(p.name for p in out.iterdir() if p.name != "translation.svg")
    assert sorted(p.rsplit("/", 1)[-1] for p in printed) == names  # it prints every path it wrote
    import minift

    n_layer = minift.load_model("base").model.config.n_layer
    assert {f"attention-block-{i}.svg" for i in range(n_layer)} | {
        "lr-schedule-lesson04.svg", "lr-schedule-full.svg", "unfreezing.svg", "loss-base-pretraining.svg",
        "strategies-translation.svg"} <= set(names)
    for name in names:
        assert parse((out / name).read_text(encoding="utf-8")).tag == NS + "svg"
    # The strategy charts are the fair grid's: every arm it ran, the hybrid through LoRA among them.
    from minift.advise import default_results_dir

    arms = json.loads((default_results_dir() / "results.json").read_text())["results"]["translation"]
    chart = (out / "strategies-translation.svg").read_text(encoding="utf-8")
    assert "hybrid-lora" in arms and all(f">{arm}<" in chart for arm in arms), chart[:300]
    # The timeline is the one lesson 07 draws: block 3 from step 0, one more every 50 steps, 300 in all.
    root = parse((out / "unfreezing.svg").read_text(encoding="utf-8"))
    step_of = axis(root, "xtick")
    starts = {el.get("data-row"): round(step_of(float(el.get("x")))) for el in by_class(root, "rect", "train")}
    assert starts == {"ln_f": 0, "block 3": 0, "block 2": 50, "block 1": 100, "block 0": 150}


def test_write_figures_refuses_a_file_as_out(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(MiniftError, match="is a file, not a folder"):
        write_figures(tmp_path / "f")
