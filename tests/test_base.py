"""The shipped base model loads and scores the validation loss that data/base and the README state."""
import json
from pathlib import Path

import pytest

import minift
from minift.pretrain import heldout_loss, heldout_stream

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def base():
    return minift.load_model("base")


def test_shipped_base_scores_its_stated_val_loss_on_held_out_generated_text(base):
    stated = json.loads((ROOT / "data" / "base" / "summary.json").read_text())
    # The held-out paragraphs of the base's own pretraining (its meta says preset, seed and text):
    # the windows the strategy experiment also scores every fine-tuned model on (forgetting).
    assert (base.meta["preset"], base.meta["seed"]) == ("base", stated["seed"])
    loss = heldout_loss(base.model, heldout_stream(base))
    assert loss == pytest.approx(stated["val_loss"], abs=2e-3)
    assert loss < 1.2  # far below the ~6.9 nats of an untrained model: it learned the world


def test_the_readme_states_the_val_loss_the_base_reaches(base):
    readme = (ROOT / "README.md").read_text()
    assert f"{base.meta['val_loss']:.3f}" in readme


def test_shipped_base_is_small_and_self_contained(base):
    assert (ROOT / "data" / "base" / "model.pt").stat().st_size <= 10 * 2**20
    assert base.model.config.n_layer == 4 and base.model.config.n_embd == 128
    assert base.tokenizer.vocab_size == base.model.config.vocab_size
