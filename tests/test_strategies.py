"""The registry of strategies: one file each, and everything else reads the registry.

``strategy = "X"`` in a recipe means ``minift/strategies/X.py``; these tests hold the project to
that: every registered strategy has its file, its recipe, its documented fields and a bench case;
the experiment and the recipe parser know every registered strategy; a field of one strategy in a
stage of another is refused naming its owner; and no module outside ``minift/strategies/``
compares a strategy's name as a string (it would be a second place to edit when adding one).
"""
from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from minift import strategies
from minift.errors import MiniftError
from minift.schedule import RECIPE_DIR, load_recipe, make_stage, parse_recipe

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "minift"


def test_every_registered_strategy_is_its_own_file_with_its_recipe_and_documented_fields():
    readme = (RECIPE_DIR / "README.md").read_text(encoding="utf-8")
    assert len(strategies.REGISTRY) >= 3
    for name, method in strategies.REGISTRY.items():
        assert method.name == name
        module = __import__(f"minift.strategies.{name}", fromlist=["STRATEGY"])
        assert module.STRATEGY is method, f"minift/strategies/{name}.py must define STRATEGY"
        assert (PACKAGE / "strategies" / f"{name}.py").is_file()
        recipe = load_recipe(name)  # minift/recipes/NAME.toml
        assert name in [s.strategy for s in recipe.stages]
        for field in dataclasses.fields(method.Options):
            assert f"`{field.name}`" in readme, f"recipes/README.md must document {name}'s field {field.name}"
        assert method.summary and method.bench_cases()


def test_the_experiment_and_the_bench_know_every_registered_strategy():
    from minift.experiment import STRATEGIES
    from minift.strategy_bench import cases

    assert set(strategies.names()) <= set(STRATEGIES)
    assert {strategy for _, strategy, _ in cases()} == set(strategies.names())


def test_an_unknown_strategy_is_refused_listing_every_registered_one():
    with pytest.raises(MiniftError) as err:
        parse_recipe({"stages": [{"strategy": "adapterz"}]}, source="my.toml")
    message = str(err.value)
    assert "my.toml" in message and "stages[0].strategy" in message and "\n" not in message
    for name in strategies.names():
        assert name in message


def test_a_field_of_another_strategy_is_refused_naming_its_owners():
    with pytest.raises(MiniftError, match=r"stages\[0\]\.prompt_tokens = 4: only a 'prompt' stage uses it "
                                          r"\(this stage is 'full'\)"):
        make_stage(strategy="full", prompt_tokens=4)
    # A shared defaults table may hold every strategy's fields: each stage takes its own.
    recipe = parse_recipe({"defaults": {"prompt_tokens": 4, "top_k": 1},
                           "stages": [{"strategy": "full"}, {"strategy": "prompt"}, {"strategy": "layers"}]}, "r")
    assert recipe.stages[1].options.prompt_tokens == 4 and recipe.stages[2].options.top_k == 1
    assert not dataclasses.fields(recipe.stages[0].options)


def _string_comparisons_with_strategy_names(path: Path, root: Path = ROOT) -> list[str]:
    names = set(strategies.names())
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            for side in sides:
                consts = [side] if isinstance(side, ast.Constant) else list(getattr(side, "elts", []))
                if any(isinstance(c, ast.Constant) and c.value in names for c in consts):
                    found.append(f"{path.relative_to(root)}:{node.lineno}")
    return found


def test_no_module_outside_the_strategies_compares_a_strategy_name_as_a_string():
    offenders = [hit for path in sorted(PACKAGE.rglob("*.py")) if "strategies" not in path.parts
                 for hit in _string_comparisons_with_strategy_names(path)]
    assert offenders == [], f"dispatch on the registry instead: {offenders}"


def test_the_name_check_sees_a_planted_comparison(tmp_path):
    planted = tmp_path / "planted.py"
    planted.write_text('def f(stage):\n    return stage.strategy == "prompt" or stage.strategy in ("layers",)\n')
    assert len(_string_comparisons_with_strategy_names(planted, tmp_path)) == 2


def test_the_bench_table_prints_memory_in_mb_of_a_million_bytes(capsys):
    """The course counts memory in MB = 10^6 bytes, as ``minift advise --memory`` does: 5,000,000
    bytes print as 5 MB (4.768 if the column divided by 2^20, a MiB, under the name MB)."""
    from minift.strategy_bench import print_strategies

    row = {"strategy": "full", "memory_how": "by hand", "step_seconds": 0.5, "memory_bytes": 5_000_000,
           "trainable_params": 10, "optimizer_state_bytes": 80}
    row.update({f"{k}_ratio": 1.0 for k in ("step_seconds", "memory_bytes", "trainable_params",
                                             "optimizer_state_bytes")})
    print_strategies([row])
    header, _, line = capsys.readouterr().out.splitlines()[1:4]
    at = header.index("  MB  ") + 2  # columns are left-aligned: the value starts under its name
    assert line[at:].split()[0] == "5"
