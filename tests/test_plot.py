"""Tests for minift.plot: nice ticks, the SVG a chart holds, and the loss chart of a run.

The loss chart of a multi-stage run must keep every validation point (two stages evaluate at the
same global step: the end of one, the start of the next), draw one validation segment per stage,
and say what it shows (the recipe in the title, nats/token on the y axis).
"""
import json
import math
import re
import xml.etree.ElementTree as ET

import pytest

from minift.errors import MiniftError
from minift.plot import _ema, line_chart, nice_ticks, plot_run

NS = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def series_paths(root: ET.Element) -> dict[str, list[tuple[str, float, float]]]:
    """Each series' path as (command, x, y) triples, keyed by series name."""
    out = {}
    for el in root.iter(NS + "path"):
        if el.get("class") == "series":
            out[el.get("data-name")] = [(c, float(x), float(y))
                                        for c, x, y in re.findall(r"([ML])([-\d.]+),([-\d.]+)", el.get("d"))]
    return out


def texts(root: ET.Element, cls: str | None = None) -> list[str]:
    return [el.text for el in root.iter(NS + "text") if cls is None or el.get("class") == cls]


def chart(series, **kw) -> ET.Element:
    kw.setdefault("title", "t")
    kw.setdefault("xlabel", "x")
    kw.setdefault("ylabel", "y")
    return parse(line_chart(series, **kw))


# --- nice_ticks -----------------------------------------------------------------------------

@pytest.mark.parametrize("lo, hi, expected", [
    (0, 7.3, [0, 2, 4, 6, 8]),
    (0.013, 0.087, [0, 0.02, 0.04, 0.06, 0.08, 0.1]),
    (2.1, 2.4, [2.1, 2.2, 2.3, 2.4]),
    (-3.2, 1.1, [-4, -2, 0, 2]),
    (0, 300, [0, 100, 200, 300]),
    (0, 1234567, [0, 250000, 500000, 750000, 1000000, 1250000]),
])
def test_nice_ticks_worked_examples(lo, hi, expected):
    assert nice_ticks(lo, hi) == expected


def test_nice_ticks_values_are_exact_decimals_not_float_noise():
    # 3 * 0.1 is 0.30000000000000004 in floating point; the tick must be 0.3.
    assert nice_ticks(0.05, 0.55, max_ticks=8) == [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6]


def test_nice_ticks_open_a_window_around_a_single_value():
    assert nice_ticks(5, 5) == [4.5, 4.75, 5, 5.25, 5.5]
    assert nice_ticks(0, 0) == [-1, -0.5, 0, 0.5, 1]


def test_nice_ticks_accept_a_reversed_range():
    assert nice_ticks(7.3, 0) == [0, 2, 4, 6, 8]


@pytest.mark.parametrize("lo, hi", [(0, 7.3), (-13, 977), (0.0012, 0.0013), (1, 1.0000001), (3e5, 9e7)])
@pytest.mark.parametrize("max_ticks", [3, 6, 10])
def test_nice_ticks_cover_the_range_with_a_round_step(lo, hi, max_ticks):
    ticks = nice_ticks(lo, hi, max_ticks)
    assert 2 <= len(ticks) <= max_ticks
    assert ticks[0] <= lo and ticks[-1] >= hi
    step = ticks[1] - ticks[0]
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert min(abs(mantissa - m) for m in (1, 2, 2.5, 5, 10)) < 1e-6
    assert all(math.isclose(b - a, step, rel_tol=1e-6) for a, b in zip(ticks, ticks[1:]))


def test_nice_ticks_reject_a_non_finite_range():
    with pytest.raises(MiniftError, match="finite"):
        nice_ticks(0, math.nan)


# --- line_chart -----------------------------------------------------------------------------

def test_chart_is_valid_svg_with_title_labels_and_legend():
    root = chart([{"name": "full", "x": [0, 1, 2], "y": [3, 2, 1]},
                  {"name": "prompt", "x": [0, 1, 2], "y": [3, 2.5, 2]}],
                 title="Loss", xlabel="global step", ylabel="loss")
    assert root.tag == NS + "svg" and root.get("width") == "720" and root.get("height") == "420"
    assert texts(root, "title") == ["Loss"]
    assert texts(root, "xlabel") == ["global step"] and texts(root, "ylabel") == ["loss"]
    assert {"full", "prompt"} <= set(texts(root))  # the legend names every series
    assert texts(root, "xtick") == ["0", "0.5", "1", "1.5", "2"]
    assert texts(root, "ytick") == ["1", "1.5", "2", "2.5", "3"]


def test_chart_has_one_path_per_series_with_one_point_per_value():
    root = chart([{"name": "a", "x": [0, 1, 2, 3], "y": [1, 2, 3, 4]},
                  {"name": "b", "x": [0, 1], "y": [5, 6]},
                  {"name": "c", "x": [0, 1, 2], "y": [1, 1, 1]}])
    paths = series_paths(root)
    assert {name: len(pts) for name, pts in paths.items()} == {"a": 4, "b": 2, "c": 3}
    assert [c for c, _, _ in paths["a"]] == ["M", "L", "L", "L"]


def test_pixels_grow_right_with_x_and_up_with_y():
    pts = series_paths(chart([{"name": "up", "x": [0, 1, 2, 3], "y": [10, 20, 30, 40]}]))["up"]
    xs, ys = [x for _, x, _ in pts], [y for _, _, y in pts]
    assert xs == sorted(xs) and len(set(xs)) == 4
    assert ys == sorted(ys, reverse=True) and len(set(ys)) == 4  # SVG y grows downwards
    # Equal data steps give equal pixel steps: the map is linear.
    assert [round(b - a, 1) for a, b in zip(xs, xs[1:])] == [round(xs[1] - xs[0], 1)] * 3


def test_markers_and_styles_differ_between_series():
    root = chart([{"name": "a", "x": [0, 1], "y": [0, 1], "markers": True},
                  {"name": "b", "x": [0, 1], "y": [1, 0], "markers": True}])
    lines = [el for el in root.iter(NS + "path") if el.get("class") == "series"]
    assert lines[0].get("stroke") != lines[1].get("stroke")
    assert lines[0].get("stroke-dasharray") is None and lines[1].get("stroke-dasharray") == "7 4"
    groups = [g for g in root.iter(NS + "g") if g.get("class") == "markers"]
    assert [[child.tag for child in g] for g in groups] == [[NS + "circle"] * 2, [NS + "rect"] * 2]


def test_text_is_xml_escaped():
    svg = line_chart([{"name": 'a<b & "c"', "x": [0, 1], "y": [0, 1]}],
                     title="x < y & z", xlabel="<x>", ylabel="y", vlines=[(0.5, "stage <2>")])
    root = parse(svg)
    assert 'a<b & "c"' in texts(root) and "x < y & z" in texts(root, "title")
    assert texts(root, "vline-label") == ["stage <2>"]
    assert set(series_paths(root)) == {'a<b & "c"'}


def test_non_finite_points_are_skipped_and_break_the_line():
    pts = series_paths(chart([{"name": "s", "x": [0, 1, 2, 3, 4], "y": [1, 2, math.nan, 4, math.inf]}]))["s"]
    assert [c for c, _, _ in pts] == ["M", "L", "M"]  # 0-1 joined, 3 starts again, 2 and 4 are gone


def test_a_lone_point_gets_a_marker():
    root = chart([{"name": "one", "x": [3], "y": [7]}])
    assert len(series_paths(root)["one"]) == 1
    markers = [g for g in root.iter(NS + "g") if g.get("class") == "markers"]
    assert len(markers) == 1 and len(list(markers[0])) == 1


def test_error_bars_are_drawn_and_fit_on_the_axis():
    root = chart([{"name": "s", "x": [0, 1, 2], "y": [5, 6, 7], "yerr": [1, 0, 4]}])
    bars = [g for g in root.iter(NS + "g") if g.get("class") == "errorbars"]
    assert len(bars) == 1 and len(list(bars[0])) == 2  # a zero error draws no bar
    ticks = [float(t) for t in texts(root, "ytick")]
    assert ticks[0] <= 4 and ticks[-1] >= 11


def test_logx_puts_ticks_at_1_2_5_times_powers_of_ten():
    root = chart([{"name": "bleu", "x": [60, 300, 4000], "y": [20, 30, 40]}], logx=True)
    assert texts(root, "xtick") == ["50", "100", "200", "500", "1000", "2000", "5000"]
    xs = [x for _, x, _ in series_paths(root)["bleu"]]
    tick_x = {el.text: float(el.get("x")) for el in root.iter(NS + "text") if el.get("class") == "xtick"}
    # On a log axis 100 -> 1000 spans as many pixels as 50 -> 500.
    assert math.isclose(tick_x["1000"] - tick_x["100"], tick_x["500"] - tick_x["50"], abs_tol=0.02)
    assert tick_x["200"] < xs[1] < tick_x["500"]


def test_logx_on_a_narrow_chart_keeps_only_powers_of_ten():
    root = chart([{"name": "bleu", "x": [60, 300, 4000], "y": [20, 30, 40]}], logx=True, width=420, height=280)
    assert texts(root, "xtick") == ["10", "100", "1000", "10000"]


def test_logx_rejects_zero():
    with pytest.raises(MiniftError, match="log axis"):
        line_chart([{"name": "s", "x": [0, 10], "y": [1, 2]}], title="t", xlabel="x", ylabel="y", logx=True)


def test_vlines_are_drawn_with_their_labels():
    root = chart([{"name": "s", "x": [0, 100], "y": [1, 2]}], vlines=[(0, "full"), (60, "prompt")])
    lines = [el for el in root.iter(NS + "line") if el.get("class") == "vline"]
    labels = [el for el in root.iter(NS + "text") if el.get("class") == "vline-label"]
    assert [el.text for el in labels] == ["full", "prompt"]
    tick_x = {el.text: float(el.get("x")) for el in root.iter(NS + "text") if el.get("class") == "xtick"}
    assert float(lines[0].get("x1")) == pytest.approx(tick_x["0"])
    assert float(lines[1].get("x1")) == pytest.approx(tick_x["60"])
    assert lines[0].get("stroke-dasharray")


def test_vline_labels_that_would_collide_go_on_different_rows():
    root = chart([{"name": "s", "x": [0, 100], "y": [1, 2]}],
                 vlines=[(0, "a long stage name"), (2, "next"), (80, "far")])
    y = {el.text: float(el.get("y")) for el in root.iter(NS + "text") if el.get("class") == "vline-label"}
    # "next" sits just above the plot; "a long stage name" would be struck through by its line, so it goes up.
    assert y["a long stage name"] < y["next"] == y["far"]


def test_chart_is_written_to_path_when_given(tmp_path):
    target = tmp_path / "sub" / "chart.svg"
    svg = line_chart([{"name": "s", "x": [0, 1], "y": [0, 1]}], title="t", xlabel="x", ylabel="y", path=target)
    assert target.read_text(encoding="utf-8") == svg


@pytest.mark.parametrize("series, message", [
    ([], "nothing to draw"),
    ([{"name": "a", "x": [], "y": []}, {"name": "b", "x": [1], "y": [math.nan]}], "nothing to draw"),
    ([{"name": "a", "x": [0, 1], "y": [0]}], "2 x, 1 y"),
    ([{"name": "a", "x": [0], "y": [0], "colour": "red"}], "unknown keys"),
    ([{"name": "a", "x": [0], "y": [0], "style": "wavy"}], "style 'wavy'"),
    ([{"name": "a", "x": [0], "y": ["abc"]}], "expected a number"),
])
def test_bad_series_raise_minift_error(series, message):
    with pytest.raises(MiniftError, match=message):
        line_chart(series, title="t", xlabel="x", ylabel="y")


# --- plot_run -------------------------------------------------------------------------------

def write_log(run_dir, records):
    run_dir.mkdir(exist_ok=True)
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    (run_dir / "log.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


def two_stage_log():
    records = [{"event": "stage", "stage": "full", "step": 0, "strategy": "full"}]
    for step in range(0, 200, 10):
        if step == 100:
            records.append({"event": "stage", "stage": "prompt", "step": 100, "strategy": "prompt"})
        stage = "full" if step < 100 else "prompt"
        records.append({"event": "train", "stage": stage, "step": step, "loss": 3 - step / 100, "lr": 1e-3})
        if step % 50 == 0:
            records.append({"event": "eval", "stage": stage, "step": step, "val_loss": 3.1 - step / 100,
                            "metrics": {"bleu": 30.0}})
    records.append({"event": "checkpoint", "step": 190, "path": "model.pt"})  # unknown event: ignored
    return records


def test_plot_run_draws_train_and_validation_curves_with_stage_lines(tmp_path):
    write_log(tmp_path / "run", two_stage_log())
    out = plot_run(tmp_path / "run")
    assert out == tmp_path / "run" / "loss.svg"
    root = parse(out.read_text(encoding="utf-8"))
    paths = series_paths(root)
    assert {k: len(v) for k, v in paths.items()} == {"train loss": 20, "train loss (EMA)": 20, "validation loss": 4}
    assert texts(root, "vline-label") == ["full", "prompt"]
    assert texts(root, "xlabel") == ["global step"]


def series_markers(root: ET.Element, name: str) -> list[ET.Element]:
    """The marker shapes drawn for the series ``name`` (the markers group follows its path)."""
    children = list(root)
    for i, el in enumerate(children):
        if el.get("class") == "series" and el.get("data-name") == name:
            following = children[i + 1] if i + 1 < len(children) else None
            return list(following) if following is not None and following.get("class") == "markers" else []
    raise AssertionError(f"no series named {name!r}")


def test_plot_run_keeps_every_validation_point_and_draws_one_segment_per_stage(tmp_path):
    # What the trainer writes for a two-stage run (trainer.train_stage): each stage opens with a
    # "stage" record and an evaluation at its first global step, evaluates every 50 steps and at
    # its end. Stage "prompt" starts at step 100, where "full" ended: two evaluations share step
    # 100 but were measured on different validation sets, so their values differ (2.0 vs 2.6).
    records = [{"event": "stage", "stage": "full", "step": 0}]
    full_evals = {0: 3.0, 50: 2.4, 100: 2.0}
    prompt_evals = {100: 2.6, 150: 2.3, 200: 2.2}
    for stage, start, evals in (("full", 0, full_evals), ("prompt", 100, prompt_evals)):
        if stage != "full":
            records.append({"event": "stage", "stage": stage, "step": start})
        for step, value in evals.items():
            if step > start:
                records.append({"event": "train", "stage": stage, "step": step, "loss": value - 0.1})
            records.append({"event": "eval", "stage": stage, "step": step, "val_loss": value,
                            "metrics": {"val_loss": value}})
    write_log(tmp_path, records)
    (tmp_path / "summary.json").write_text(json.dumps({"recipe": "tiny-hybrid", "stages": []}), encoding="utf-8")
    root = parse(plot_run(tmp_path).read_text(encoding="utf-8"))

    markers = series_markers(root, "validation loss")
    assert len(markers) == len(full_evals) + len(prompt_evals) == 6  # none overwritten
    points = series_paths(root)["validation loss"]
    assert [c for c, _, _ in points] == ["M", "L", "L", "M", "L", "L"]  # two segments, nothing joins them
    # Both step-100 evaluations are there, at the same x, the end of "full" below the start of "prompt".
    (_, x_end, y_end), (_, x_start, y_start) = points[2], points[3]
    assert x_end == x_start and y_end > y_start  # SVG y grows downwards: 2.0 sits lower than 2.6
    assert texts(root, "vline-label") == ["full", "prompt"]
    assert "nats/token" in texts(root, "ylabel")[0]
    assert "tiny-hybrid" in texts(root, "title")[0]
    assert "tiny-hybrid" in root.find(NS + "title").text


def test_plot_run_titles_a_run_without_a_recipe_by_its_folder(tmp_path):
    write_log(tmp_path / "pre", [{"event": "train", "step": 1, "loss": 2.0}, {"event": "train", "step": 2, "loss": 1.5}])
    (tmp_path / "pre" / "summary.json").write_text(json.dumps({"steps": 2}), encoding="utf-8")  # a pretraining run
    root = parse(plot_run(tmp_path / "pre").read_text(encoding="utf-8"))
    assert texts(root, "title") == ["Loss: pre"]


def test_plot_run_draws_no_stage_lines_for_a_single_stage(tmp_path):
    write_log(tmp_path, [{"event": "stage", "stage": "full", "step": 0},
                         {"event": "train", "stage": "full", "step": 1, "loss": 2.0},
                         {"event": "train", "stage": "full", "step": 2, "loss": 1.5}])
    out = plot_run(tmp_path, tmp_path / "elsewhere.svg")
    assert out == tmp_path / "elsewhere.svg" and not (tmp_path / "loss.svg").exists()
    root = parse(out.read_text(encoding="utf-8"))
    assert texts(root, "vline-label") == []
    assert set(series_paths(root)) == {"train loss", "train loss (EMA)"}


def test_plot_run_keeps_the_later_record_when_a_resumed_run_repeats_steps(tmp_path):
    write_log(tmp_path, [{"event": "train", "step": s, "loss": 5.0} for s in (1, 2, 3)]
              + [{"event": "train", "step": s, "loss": 1.0} for s in (2, 3, 4)])
    paths = series_paths(parse(plot_run(tmp_path).read_text(encoding="utf-8")))
    assert len(paths["train loss"]) == 4
    ys = [y for _, _, y in paths["train loss"]]
    assert ys[0] < ys[1] == ys[2] == ys[3]  # step 1 is the high 5.0; steps 2-4 the low 1.0


def test_ema_starts_at_the_first_value_and_skips_non_finite():
    assert _ema([1.0, 2.0, math.nan, 3.0], beta=0.5) == pytest.approx([1.0, 1.5, math.nan, 2.25], nan_ok=True)


def test_plot_run_without_a_log_names_the_missing_file(tmp_path):
    with pytest.raises(MiniftError, match=r"log\.jsonl: no such file"):
        plot_run(tmp_path)


def test_plot_run_names_file_and_line_of_broken_json(tmp_path):
    write_log(tmp_path, [{"event": "train", "step": 1, "loss": 2.0}, "", "{not json"])
    with pytest.raises(MiniftError, match=r"log\.jsonl:3: not valid JSON"):
        plot_run(tmp_path)


@pytest.mark.parametrize("record, message", [
    ("[1, 2]", r"log\.jsonl:2: expected a JSON object"),
    ('{"event": "train", "loss": 2.0}', r"log\.jsonl:2: a 'train' record needs an integer 'step'"),
])
def test_plot_run_names_file_and_line_of_malformed_records(tmp_path, record, message):
    write_log(tmp_path, [{"event": "train", "step": 1, "loss": 2.0}, record])
    with pytest.raises(MiniftError, match=message):
        plot_run(tmp_path)


def test_plot_run_needs_some_loss_records(tmp_path):
    write_log(tmp_path, [{"event": "stage", "stage": "full", "step": 0}])
    with pytest.raises(MiniftError, match="no 'train' or 'eval' records"):
        plot_run(tmp_path)
