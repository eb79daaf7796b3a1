"""Recipes: the built-in ones parse; every kind of bad recipe is refused before training, naming the field.

The optimizer fields: optimizer (adamw | sgd), momentum (sgd only, in [0, 1)) and l1 (>= 0).
"""
from pathlib import Path

import pytest

from minift import strategies
from minift.errors import MiniftError
from minift.model import GPTConfig
from minift.schedule import builtin_recipes, check_against_model, load_recipe


def test_builtin_recipes_parse_and_hybrid_is_full_then_layers_then_prompt():
    assert {"full", "layers", "prompt", "lora", "hybrid"} <= set(builtin_recipes())
    for name in builtin_recipes():
        recipe = load_recipe(name)
        assert recipe.stages, name
    hybrid = load_recipe("hybrid")
    assert [s.strategy for s in hybrid.stages] == ["full", "layers", "prompt"]
    # [defaults] reach every stage unless a stage says otherwise.
    assert all(s.batch_size == 16 and s.eval_every == 50 for s in hybrid.stages)


def test_prompt_stages_default_to_a_high_rate_and_no_decay(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text('[[stages]]\nstrategy = "prompt"\n')
    stage = load_recipe(path).stages[0]
    assert stage.lr == 0.1 and stage.weight_decay == 0.0 and stage.name == "prompt"


BAD = [
    ('[[stages]]\nstrategy = "full"\nlearning_rate = 0.1\n', r"unknown field stages\[0\]\.learning_rate \(did you mean 'lr'\?\)"),
    ('[[stages]]\nstrategy = "full"\nlr = "fast"\n', r"stages\[0\]\.lr must be a float"),
    ('[[stages]]\nstrategy = "full"\nlr = 0\n', r"stages\[0\]\.lr = 0.0: the learning rate must be > 0"),
    ('[[stages]]\nstrategy = "full"\nlr = -1e-3\n', r"the learning rate must be > 0"),
    ('stages = []\n', r"'stages' must be a non-empty list"),
    ('name = "x"\n', r"'stages' must be a non-empty list"),
    ('[[stages]]\nstrategy = "layers"\n', r"a 'layers' stage must say what trains"),
    ('[[stages]]\nstrategy = "layers"\nparts = ["brain"]\n', r"unknown part 'brain'"),
    # blocks is a field of two strategies: the message names both.
    ('[[stages]]\nstrategy = "full"\nblocks = [1]\n', r"stages\[0\]\.blocks = \[1\]: only a 'layers' or 'lora' stage "
                                                   r"uses it \(this stage is 'full'\)$"),
    ('[[stages]]\nstrategy = "layers"\ntop_k = 1\nlora_rank = 4\n', r"stages\[0\]\.lora_rank = 4: only a 'lora' stage "
                                                                  r"uses it \(this stage is 'layers'\)$"),
    ('[[stages]]\nstrategy = "full"\nmax_steps = 2.5\n', r"max_steps must be an int"),
    ('[[stages]]\nstrategy = "full"\ndropout = 1.0\n', r"dropout = 1.0: must be in \[0, 1\)"),
    ('bsae = "base"\n[[stages]]\nstrategy = "full"\n', r"unknown field recipe\.bsae \(did you mean 'base'\?\)"),
    ('[[stages]]\nstrategy = "full"\n[[stages]]\nstrategy = "full"\n', r"two stages are named 'full'"),
    ('[[stages]\nstrategy = "full"\n', r"not valid TOML"),
    ('[defaults]\nlrr = 1\n[[stages]]\nstrategy = "full"\n', r"unknown field defaults\.lrr"),
    # optimizer, momentum, l1
    ('[[stages]]\noptimizer = "adam"\n', r"stages\[0\]\.optimizer = 'adam': unknown optimizer; allowed: adamw, sgd$"),
    ('[[stages]]\noptimizer = "SGD"\n', r"stages\[0\]\.optimizer = 'SGD': unknown optimizer; allowed: adamw, sgd$"),
    ('[[stages]]\noptimizer = 1\n', r"stages\[0\]\.optimizer must be a str, got int 1"),
    ('[[stages]]\nl1 = -0.001\n', r"stages\[0\]\.l1 = -0.001: must be >= 0$"),
    ('[[stages]]\nl1 = "a lot"\n', r"stages\[0\]\.l1 must be a float"),
    ('[[stages]]\nmomentum = 0.9\n', r"stages\[0\]\.momentum = 0.9: only an 'sgd' stage uses it \(this stage's "
                                      r"optimizer is 'adamw'; AdamW has betas instead\)$"),
    ('[defaults]\nmomentum = 0.5\n[[stages]]\noptimizer = "sgd"\n[[stages]]\nname = "b"\n',
     r"stages\[1\]\.momentum = 0.5: only an 'sgd' stage uses it"),
    ('[[stages]]\noptimizer = "sgd"\nmomentum = 1.0\n', r"stages\[0\]\.momentum = 1.0: must be in \[0, 1\)"),
    ('[[stages]]\noptimizer = "sgd"\nmomentum = -0.1\n', r"stages\[0\]\.momentum = -0.1: must be in \[0, 1\)"),
    ('protocol = "fast"\n[[stages]]\n', r"recipe\.protocol must be one of fixed, fair, got 'fast'$"),
    ('protocol = 1\n[[stages]]\n', r"recipe\.protocol must be one of fixed, fair, got 1$"),
    ('lr_scale = 0\n[[stages]]\n', r"recipe\.lr_scale must be a number > 0 or \"tuned\", got 0$"),
    ('lr_scale = "Tuned"\n[[stages]]\n', r"recipe\.lr_scale must be a number > 0 or \"tuned\", got 'Tuned'$"),
    ('lr_scale = true\n[[stages]]\n', r"recipe\.lr_scale must be a number > 0 or \"tuned\", got True$"),
    ('lr_scale = nan\n[[stages]]\n', r"recipe\.lr_scale must be a number > 0 or \"tuned\", got nan$"),
]


def test_a_recipe_names_how_minift_finetune_budgets_and_scales_it(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text('[[stages]]\n')
    plain = load_recipe(path)
    assert (plain.protocol, plain.lr_scale) == ("fixed", 1.0)  # a user's recipe trains as written
    path.write_text('protocol = "fair"\nlr_scale = 3\n[[stages]]\n')
    r = load_recipe(path)
    assert (r.protocol, r.lr_scale) == ("fair", 3.0) and isinstance(r.lr_scale, float)
    path.write_text('lr_scale = "tuned"\n[[stages]]\n')
    assert load_recipe(path).lr_scale == "tuned"


def test_an_unknown_strategy_is_refused_listing_every_registered_one(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[[stages]]\nstrategy = "adapterz"\n')
    with pytest.raises(MiniftError) as info:
        load_recipe(path)
    head, _, listed = str(info.value).partition("; allowed: ")
    assert head == f"{path}: stages[0].strategy = 'adapterz': unknown strategy"
    # Every strategy file of minift/strategies/ (but the interface and the registry) is listed, once.
    files = {f.stem for f in Path(strategies.__file__).parent.glob("*.py")} - {"__init__", "base"}
    assert sorted(listed.split(", ")) == sorted(files) and {"full", "layers", "prompt", "lora"} <= files


@pytest.mark.parametrize("text, message", BAD)
def test_bad_recipe_is_refused_naming_the_file_and_field(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(MiniftError, match=message) as info:
        load_recipe(path)
    assert str(path) in str(info.value)


def test_optimizer_momentum_and_l1_parse_with_their_defaults(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text('[defaults]\nl1 = 0\n[[stages]]\nname = "a"\n'
                    '[[stages]]\nname = "s"\noptimizer = "sgd"\n'
                    '[[stages]]\nname = "m"\noptimizer = "sgd"\nmomentum = 0\nl1 = 1e-4\n')
    a, s, m = load_recipe(path).stages
    assert (a.optimizer, a.momentum, a.l1) == ("adamw", None, 0.0) and isinstance(a.l1, float)
    assert (s.optimizer, s.momentum) == ("sgd", None)  # None: finetune gives SGD_MOMENTUM (0.9)
    assert (m.optimizer, m.momentum, m.l1) == ("sgd", 0.0, 1e-4)


def test_block_index_outside_the_model_and_too_long_prompt_are_refused(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text('[[stages]]\nstrategy = "layers"\nblocks = [-5]\n')
    with pytest.raises(MiniftError, match=r"block -5 is outside the model: it has 4 blocks \(0\.\.3, or -4\.\.-1\)"):
        check_against_model(load_recipe(path), GPTConfig(n_layer=4, block_size=64))
    path.write_text('[[stages]]\nstrategy = "prompt"\nprompt_tokens = 64\n')
    with pytest.raises(MiniftError, match=r"prompt_tokens = 64: a prompt must be shorter than the block \(64\)"):
        check_against_model(load_recipe(path), GPTConfig(n_layer=4, block_size=64))


def test_unknown_recipe_name_lists_the_builtin_ones():
    with pytest.raises(MiniftError, match=r"unknown recipe 'hybird': built-in recipes are .*hybrid"):
        load_recipe("hybird")
