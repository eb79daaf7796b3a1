"""The prepared GPU run (data/experiments/cuda-h200/run.sh): every minift command in it parses.

The script is meant for a machine we get for minutes, so a typo must not cost a run. Its
MINIFT_PRINT=1 mode prints each command (tab-separated, as bash would pass it) and runs nothing;
each ``python -m minift ...`` line must parse with the real CLI parser, name bench sections that
exist, and write its JSON where the script's summary picks it up. (A full CPU dry run,
MINIFT_DRY=1, takes about a minute: run it by hand after changing the script.)
"""
import os
import subprocess
from pathlib import Path

from minift.bench import SECTIONS
from minift.cli import build_parser

SCRIPT = Path(__file__).resolve().parent.parent / "data" / "experiments" / "cuda-h200" / "run.sh"


def printed_commands():
    env = dict(os.environ, MINIFT_PRINT="1", PYTHON="python3")
    env.pop("OUT", None)
    result = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env=env, timeout=30)
    assert result.returncode == 0, result.stderr
    lines = [line.split("\t")[1:] for line in result.stdout.splitlines() if line.startswith("cmd\t")]
    assert lines and len(lines) == len(result.stdout.splitlines())  # the print mode prints commands only
    return lines


def strict_parser():
    """The CLI's parser, refusing abbreviations: the script must spell every option in full."""
    parser = build_parser()
    parser.allow_abbrev = False
    for action in parser._subparsers._group_actions:
        for sub in action.choices.values():
            sub.allow_abbrev = False
    return parser


def test_every_minift_command_of_the_gpu_script_parses_with_the_cli():
    commands = printed_commands()
    minift = [c[c.index("minift") + 1:] for c in commands if c[1:3] == ["-m", "minift"]]
    assert len(minift) >= 10
    seen = set()
    for argv in minift:
        args = strict_parser().parse_args(argv)  # raises MiniftError on an unknown option or a bad value
        seen.add(args.command)
        if args.command == "bench":
            assert args.device == "cuda" and set(args.only.split(",")) <= set(SECTIONS), argv
            assert args.json and args.json.endswith(".json"), argv  # the summary reads every bench's JSON
        else:
            assert args.recipe == "hybrid" and args.device == "cuda" and args.max_steps, argv
    assert seen == {"bench", "finetune"}
    only = [a.only for a in map(strict_parser().parse_args, minift) if a.command == "bench"]
    assert {"train", "loss", "strategies"} <= set(only)
    # The batch search tries every candidate after batch 16 (in print mode each try "fits").
    batches = [int(a[a.index("--batch") + 1]) for a in minift if "--batch" in a and "--steps" in a
               and a[a.index("--steps") + 1] == "1"]
    assert batches == [24, 32, 48, 64]
