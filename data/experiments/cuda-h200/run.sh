#!/usr/bin/env bash
# One prepared GPU run for issue #14: the GPT-2-124M-shaped step, the chunked loss, strategies, hybrid.
#
#   OUT=/path/to/folder bash data/experiments/cuda-h200/run.sh      # from anywhere; ~6-9 min on one H200
#
# Steps, each in its own process with its own timeout, each allowed to fail (the next one runs):
#   env             torch and GPU names
#   train_b16       `minift bench --only train` at GPT-2-124M shape, batch 16, eager, with --profile
#   loss_b16        `minift bench --only loss`: full float32 logits vs the chunked loss, peak memory
#   train_b16_full  the same step with the old loss (--loss full), for the time/memory ratio
#   train_b16_compile   batch 16 with --compile and --profile
#   try_bN          the largest batch that fits: a 1-step try per batch in $MINIFT_BATCHES until one fails
#   train_bmax      eager at that batch, with --profile
#   strategies      `minift bench --only strategies` (GPT-2-124M shape on CUDA)
#   hybrid          `minift finetune --recipe hybrid` end to end, one task, a short budget
#   train_bmax_compile, loss_bmax   if time is left
#   pytest          tests/test_chunked_loss.py and tests/test_devices.py on the machine
# The whole script keeps to $MINIFT_BUDGET_S seconds (default 560): a step gets at most what is left,
# and a step that cannot get 20 s is recorded as skipped. After every step $OUT/summary.json is
# rewritten (steps, return codes, seconds, output tails, every bench JSON, the key figures), so a run
# cut short still returns what it measured; $OUT/log.txt holds the full output. Two files in all.
#
# Knobs (environment): MINIFT_DEVICE (cuda), MINIFT_STEPS (10), MINIFT_BATCH (16),
# MINIFT_BATCHES ("24 32 48 64"), MINIFT_COMPILE (1; 0 skips the compiled runs), MINIFT_BUDGET_S (560),
# MINIFT_HYBRID ("--task summarization --examples 1000 --max-steps 100"), PYTHON (python3).
#   MINIFT_DRY=1   a CPU dry run with tiny settings (bench's CPU shape, 1 step, no compile) to check
#                  that every command runs: MINIFT_DRY=1 OUT=/tmp/dry bash data/experiments/cuda-h200/run.sh
#   MINIFT_PRINT=1 print each command (tab-separated arguments, prefixed "cmd") and run nothing;
#                  tests/test_gpu_script.py parses every minift command line this way.
set -u
cd "$(dirname "$0")/../../.." || exit 1
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
PY=${PYTHON:-python3}
PRINT=${MINIFT_PRINT:-0}
if [ "${MINIFT_DRY:-0}" = 1 ]; then
  : "${MINIFT_DEVICE:=cpu}" "${MINIFT_STEPS:=1}" "${MINIFT_BATCH:=2}" "${MINIFT_BATCHES:=3}" "${MINIFT_COMPILE:=0}"
  : "${MINIFT_HYBRID:=--task summarization --examples 16 --max-steps 2}"
fi
DEV=${MINIFT_DEVICE:-cuda}
STEPS=${MINIFT_STEPS:-10}
B16=${MINIFT_BATCH:-16}
BATCHES=${MINIFT_BATCHES:-24 32 48 64}
COMPILE=${MINIFT_COMPILE:-1}
BUDGET=${MINIFT_BUDGET_S:-560}
HYBRID=${MINIFT_HYBRID:---task summarization --examples 1000 --max-steps 100}
if [ "$PRINT" = 1 ]; then OUT=${OUT:-/tmp/minift-print}; else OUT=${OUT:?set OUT to the output folder}; fi
WORK=$(mktemp -d)   # bench JSONs and the hybrid run folder: only summary.json and log.txt go to $OUT
START=$(date +%s)
[ "$PRINT" = 1 ] || mkdir -p "$OUT"
[ "$PRINT" = 1 ] || : > "$OUT/log.txt"
: > "$WORK/steps.jsonl"

summarize() {  # fold steps.jsonl and every step's JSON into $OUT/summary.json
  "$PY" - "$WORK" "$OUT/summary.json" "$BUDGET" <<'PY'
import json, os, sys
work, out, budget = sys.argv[1], sys.argv[2], float(sys.argv[3])
steps = [json.loads(line) for line in open(os.path.join(work, "steps.jsonl")) if line.strip()]
figures = {}
for s in steps:
    path = s.get("json")
    if path and os.path.exists(path):
        try:
            s["result"] = json.load(open(path))
        except Exception as exc:
            s["result_error"] = repr(exc)
    r = s.get("result") or {}
    if "train" in r:
        t = r["train"]
        figures[s["name"]] = {k: t.get(k) for k in ("batch", "compile", "loss", "tokens_per_s", "step_seconds",
                                                    "utilization", "peak_memory_bytes")}
    if "loss" in r:
        figures[s["name"]] = {"rows": r["loss"]["rows"], "logits_fp32_bytes": r["loss"]["logits_fp32_bytes"],
                              "variants": [{k: v.get(k) for k in ("loss", "chunk_rows", "peak_bytes", "saved_bytes",
                                                                  "seconds", "value", "grad_max_diff")}
                                           for v in r["loss"]["variants"]]}
    if "strategies" in r:
        figures[s["name"]] = [{k: v.get(k) for k in ("strategy", "step_seconds_ratio", "memory_bytes",
                                                     "memory_bytes_ratio")} for v in r["strategies"]]
    if s["name"] == "hybrid" and r:
        figures["hybrid"] = {"before": r.get("before"), "seconds": r.get("seconds"),
                             "stages": [{k: st.get(k) for k in ("name", "steps", "seconds", "best_val_loss", "metrics")}
                                        for st in r.get("stages", [])]}
tries = [s for s in steps if s["name"].startswith("try_b")]
figures["largest_batch"] = max([int(s["name"][5:]) for s in tries if s["rc"] == 0] or [None], key=lambda b: b or 0)
summary = {"budget_s": budget, "figures": figures, "steps": steps,
           "failed": [s["name"] for s in steps if s["rc"] not in (0, "skipped")],
           "skipped": [s["name"] for s in steps if s["rc"] == "skipped"]}
tmp = out + ".tmp"
json.dump(summary, open(tmp, "w"), indent=1, default=str)
os.replace(tmp, out)
PY
}

# run NAME TIMEOUT_S JSON_OR_- CMD...  (a step: bounded by its timeout and what is left of the budget)
run() {
  local name=$1 limit=$2 json=$3; shift 3
  if [ "$PRINT" = 1 ]; then (IFS=$'\t'; echo "cmd	$*"); return 0; fi
  local left=$(( BUDGET - ($(date +%s) - START) ))
  [ "$limit" -gt $(( left - 5 )) ] && limit=$(( left - 5 ))
  local rc t0=$(date +%s)
  echo "=== $name (timeout ${limit}s): $*" | tee -a "$OUT/log.txt"
  if [ "$limit" -lt 20 ]; then
    rc='"skipped"'
    echo "skipped: ${left}s left of the ${BUDGET}s budget" | tee -a "$OUT/log.txt"
    : > "$WORK/$name.out"; : > "$WORK/$name.err"
  else
    timeout -k 10 "$limit" "$@" > "$WORK/$name.out" 2> "$WORK/$name.err"
    rc=$?
    cat "$WORK/$name.out" "$WORK/$name.err" >> "$OUT/log.txt"
    tail -c 1500 "$WORK/$name.out"
  fi
  local secs=$(( $(date +%s) - t0 ))
  echo "--- $name: rc $rc in ${secs}s" | tee -a "$OUT/log.txt"
  "$PY" - "$WORK" "$name" "$rc" "$secs" "$json" "$@" >> "$WORK/steps.jsonl" <<'PY'
import json, os, sys
work, name, rc, secs, path, *cmd = sys.argv[1:]
tail = lambda p: open(p, errors="replace").read()[-3000:] if os.path.exists(p) else ""
print(json.dumps({"name": name, "rc": json.loads(rc), "seconds": int(secs), "cmd": cmd,
                  "json": None if path == "-" else path,
                  "stdout_tail": tail(os.path.join(work, name + ".out")),
                  "stderr_tail": tail(os.path.join(work, name + ".err"))}))
PY
  summarize
  LAST_RC=$rc
  return 0
}

M=("$PY" -m minift)
BENCH=("${M[@]}" bench --device "$DEV" --steps "$STEPS")

run env 60 - "$PY" -c "import torch; print(torch.__version__, torch.cuda.is_available() and torch.cuda.get_device_name())"
run train_b16 150 "$WORK/train_b16.json" "${BENCH[@]}" --only train --batch "$B16" --profile --json "$WORK/train_b16.json"
run loss_b16 90 "$WORK/loss_b16.json" "${BENCH[@]}" --only loss --batch "$B16" --chunk-rows 1024,2048,4096,8192 \
  --json "$WORK/loss_b16.json"
run train_b16_full 120 "$WORK/train_b16_full.json" "${BENCH[@]}" --only train --batch "$B16" --loss full \
  --json "$WORK/train_b16_full.json"
if [ "$COMPILE" = 1 ]; then
  run train_b16_compile 240 "$WORK/train_b16_compile.json" "${BENCH[@]}" --only train --batch "$B16" --compile \
    --profile --json "$WORK/train_b16_compile.json"
fi

BMAX=$B16   # the largest batch that ran a step (eager); the search stops at the first that fails
for b in $BATCHES; do
  run "try_b$b" 90 "$WORK/try_b$b.json" "${M[@]}" bench --device "$DEV" --steps 1 --only train --batch "$b" \
    --json "$WORK/try_b$b.json"
  if [ "$PRINT" = 1 ] || [ "$LAST_RC" = 0 ]; then BMAX=$b; else break; fi
done

run train_bmax 150 "$WORK/train_bmax.json" "${BENCH[@]}" --only train --batch "$BMAX" --profile \
  --json "$WORK/train_bmax.json"
run strategies 150 "$WORK/strategies.json" "${BENCH[@]}" --only strategies --json "$WORK/strategies.json"
# shellcheck disable=SC2086  # $HYBRID is a list of options
run hybrid 180 "$WORK/hybrid/summary.json" "${M[@]}" finetune --recipe hybrid --device "$DEV" $HYBRID \
  --out "$WORK/hybrid" --quiet
if [ "$COMPILE" = 1 ]; then
  run train_bmax_compile 240 "$WORK/train_bmax_compile.json" "${BENCH[@]}" --only train --batch "$BMAX" \
    --compile --profile --json "$WORK/train_bmax_compile.json"
fi
run loss_bmax 90 "$WORK/loss_bmax.json" "${BENCH[@]}" --only loss --batch "$BMAX" --chunk-rows 2048 \
  --json "$WORK/loss_bmax.json"
run pytest 90 - "$PY" -m pytest -q -x tests/test_chunked_loss.py tests/test_devices.py

[ "$PRINT" = 1 ] || echo "summary: $OUT/summary.json ($(( $(date +%s) - START ))s in all)"
rm -rf "$WORK"
