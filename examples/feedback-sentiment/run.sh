#!/usr/bin/env bash
# The nightly feedback-sentiment example, end to end (see README.md):
#   1. trains feedback_sentiment on family A (make_example.py, Debian's Python with torch) and writes
#      family B's reviews (eval_family.py);
#   2. `ferry batch` classifies all of them offline: records/s;
#   3. `ferry serve` runs the example's repository with its nightly schedule, plus a copy of it firing
#      every minute, and waits for that copy's batch: the schedule path, in the server;
#   4. accuracy on family B, written into README.md.
# Needs the release build and .venv (made here when missing). Work files go to $WORK (default
# /tmp/ferry-feedback-sentiment).
set -euo pipefail
cd "$(dirname "$0")/../.."
WORK=${WORK:-/tmp/ferry-feedback-sentiment}
[ -x .venv/bin/python ] || bash scripts/setup-python.sh
[ -x build/release/ferry ] || bash scripts/build.sh release
FERRY=build/release/ferry
PY=.venv/bin/python
EXAMPLE=examples/feedback-sentiment

/usr/bin/python3 $EXAMPLE/make_example.py
rm -rf "$WORK" && mkdir -p "$WORK/out" "$WORK/data/schedules"
$PY $EXAMPLE/eval_family.py inputs --work "$WORK"

summary=$($FERRY batch --model-repository $EXAMPLE/models --model feedback_sentiment \
  --input "$WORK/in/eval.csv" --output "$WORK/out/eval.csv" --progress none 2>&1)
echo "$summary"
rate=$(sed -n 's/.*(\([0-9.]*\) records\/s).*/\1/p' <<<"$summary")

sed -e 's/^cron: .*/cron: "* * * * *"/' -e 's|^output: .*|output: sentiment/demo-{date}-{time}.csv|' \
  $EXAMPLE/models/schedules/nightly-sentiment.yaml > "$WORK/data/schedules/demo-every-minute.yaml"
port=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
$FERRY serve --model-repository $EXAMPLE/models --http-port "$port" --data-dir "$WORK/data" \
  --batch-input-root "$WORK/in" --batch-output-root "$WORK/out" > "$WORK/ferry.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
$PY examples/wait_for_demo_schedule.py "$port" nightly-sentiment
kill $server; wait $server || true; trap - EXIT

$PY $EXAMPLE/eval_family.py report --work "$WORK" --results "$WORK/out/eval.csv" \
  --readme $EXAMPLE/README.md --records-per-second "${rate:-0}"
