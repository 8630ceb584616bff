#!/usr/bin/env bash
# Runs one of the scheduled batch examples end to end; each example's run.sh calls it:
#   run_scheduled_example.sh EXAMPLE MODEL SCHEDULE TRAINER_PYTHON
#   1. trains MODEL on family A (EXAMPLE/make_example.py, with TRAINER_PYTHON) and writes family B's
#      evaluation inputs (EXAMPLE/eval_family.py inputs);
#   2. `ferry batch` runs MODEL over all of them offline: records/s;
#   3. `ferry serve` runs EXAMPLE/models with its schedule SCHEDULE, plus a copy of it firing every
#      minute (output demo-{date}-{time}), and waits for that copy's batch: the schedule path, in the
#      server;
#   4. EXAMPLE/eval_family.py report scores the offline results and writes the figures into
#      EXAMPLE/README.md.
# Needs the release build and .venv (made here when missing). Work files go to $WORK (default
# /tmp/ferry-<example>).
set -euo pipefail
cd "$(dirname "$0")/.."
EXAMPLE=examples/$1 MODEL=$2 SCHEDULE=$3 TRAINER=$4
WORK=${WORK:-/tmp/ferry-$1}
[ -x .venv/bin/python ] || bash scripts/setup-python.sh
[ -x build/release/ferry ] || bash scripts/build.sh release
FERRY=build/release/ferry
PY=.venv/bin/python

"$TRAINER" "$EXAMPLE/make_example.py"
rm -rf "$WORK" && mkdir -p "$WORK/out" "$WORK/data/schedules"
$PY "$EXAMPLE/eval_family.py" inputs --work "$WORK"

summary=$($FERRY batch --model-repository "$EXAMPLE/models" --model "$MODEL" \
  --input "$WORK/in/eval.csv" --output "$WORK/out/eval.csv" --progress none 2>&1)
echo "$summary"
rate=$(sed -n 's/.*(\([0-9.]*\) records\/s).*/\1/p' <<<"$summary")

sed -e 's/^cron: .*/cron: "* * * * *"/' -e 's|^output: \(.*\){date}|output: \1demo-{date}-{time}|' \
  "$EXAMPLE/models/schedules/$SCHEDULE.yaml" > "$WORK/data/schedules/demo-every-minute.yaml"
port=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
$FERRY serve --model-repository "$EXAMPLE/models" --http-port "$port" --data-dir "$WORK/data" \
  --batch-input-root "$WORK/in" --batch-output-root "$WORK/out" > "$WORK/ferry.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
$PY examples/wait_for_demo_schedule.py "$port" "$SCHEDULE"
kill $server; wait $server || true; trap - EXIT

$PY "$EXAMPLE/eval_family.py" report --work "$WORK" --results "$WORK/out/eval.csv" \
  --readme "$EXAMPLE/README.md" --records-per-second "${rate:-0}"
