"""minift demo, shrunk: it loads the shipped base, runs the hybrid recipe and prints before -> after."""
from types import SimpleNamespace

from minift.demo import run_demo


def test_demo_runs_the_hybrid_recipe_and_prints_metrics_before_and_after(tmp_path, capsys):
    args = SimpleNamespace(out=str(tmp_path / "demo"), tasks="qa", seed=0, device="cpu", quiet=True)
    results = run_demo(args, examples=40, max_steps=3, eval_limit=8)
    out = capsys.readouterr().out
    assert "=== qa: recipe 'hybrid' (full -> layers -> prompt) ===" in out
    assert "(before)" in out and "f1:" in out and " before -> " in out
    summary = results["qa"]
    assert [s["strategy"] for s in summary["stages"]] == ["full", "layers", "prompt"]
    assert all(s["steps"] == 3 for s in summary["stages"])
    assert (tmp_path / "demo" / "qa" / "model.pt").exists() and (tmp_path / "demo" / "qa" / "loss.svg").exists()
