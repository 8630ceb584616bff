#!/usr/bin/env bash
# The weekly forecasting example, end to end (see README.md):
#   1. trains forecast_xgb on family A (make_example.py) and writes family B's store-weeks (eval_family.py);
#   2. `ferry batch` forecasts all of them offline: records/s;
#   3. `ferry serve` runs the example's repository with its weekly schedule, plus a copy of it firing
#      every minute, and waits for that copy's batch: the schedule path, in the server;
#   4. MAPE against the seasonal-naive forecast, written into README.md.
# Needs the release build and .venv (made here when missing). Work files go to $WORK (default
# /tmp/ferry-forecasting).
set -euo pipefail
cd "$(dirname "$0")/../.."
WORK=${WORK:-/tmp/ferry-forecasting}
[ -x .venv/bin/python ] || bash scripts/setup-python.sh
[ -x build/release/ferry ] || bash scripts/build.sh release
FERRY=build/release/ferry
PY=.venv/bin/python

$PY examples/forecasting/make_example.py
rm -rf "$WORK" && mkdir -p "$WORK/out" "$WORK/data/schedules"
$PY examples/forecasting/eval_family.py inputs --work "$WORK"

summary=$($FERRY batch --model-repository examples/forecasting/models --model forecast_xgb \
  --input "$WORK/in/eval.csv" --output "$WORK/out/eval.csv" --progress none 2>&1)
echo "$summary"
rate=$(sed -n 's/.*(\([0-9.]*\) records\/s).*/\1/p' <<<"$summary")

sed -e 's/^cron: .*/cron: "* * * * *"/' -e 's|^output: .*|output: forecasts/demo-{date}-{time}.csv|' \
  examples/forecasting/models/schedules/weekly-forecast.yaml > "$WORK/data/schedules/demo-every-minute.yaml"
port=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
$FERRY serve --model-repository examples/forecasting/models --http-port "$port" --data-dir "$WORK/data" \
  --batch-input-root "$WORK/in" --batch-output-root "$WORK/out" > "$WORK/ferry.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
$PY examples/wait_for_demo_schedule.py "$port" weekly-forecast
kill $server; wait $server || true; trap - EXIT

$PY examples/forecasting/eval_family.py report --work "$WORK" --results "$WORK/out/eval.csv" \
  --readme examples/forecasting/README.md --records-per-second "${rate:-0}"
