#!/usr/bin/env bash
# The food-delivery recommendations example, end to end (see README.md):
#   1. make_example.py trains restaurant_ranker and menu_ranker on family A;
#   2. eval_family.py writes family B: last night's export of the known users, today's sessions;
#   3. `ferry serve` runs models/ with its nightly schedule plus a copy of it firing every minute
#      (output demo-{date}-{time}), and waits for that copy's batch, which publishes the table;
#   4. replay.py sends today's sessions over HTTP (keyed restaurant lists, then the basket's items) and
#      writes the hit rate, latencies and ranking quality into README.md.
# Needs the release build and .venv (made here when missing). Work files go to $WORK (default
# /tmp/ferry-recommendations).
set -euo pipefail
cd "$(dirname "$0")/../.."
EXAMPLE=examples/recommendations SCHEDULE=nightly-restaurant-lists
WORK=${WORK:-/tmp/ferry-recommendations}
[ -x .venv/bin/python ] || bash scripts/setup-python.sh
[ -x build/release/ferry ] || bash scripts/build.sh release
FERRY=build/release/ferry
PY=.venv/bin/python

$PY "$EXAMPLE/make_example.py"
rm -rf "$WORK" && mkdir -p "$WORK/out" "$WORK/data/schedules"
$PY "$EXAMPLE/eval_family.py" --work "$WORK"

sed -e 's/^cron: .*/cron: "* * * * *"/' -e 's|^output: \(.*\){date}|output: \1demo-{date}-{time}|' \
  "$EXAMPLE/models/schedules/$SCHEDULE.yaml" > "$WORK/data/schedules/demo-every-minute.yaml"
port=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
$FERRY serve --model-repository "$EXAMPLE/models" --http-port "$port" --data-dir "$WORK/data" \
  --batch-input-root "$WORK/in" --batch-output-root "$WORK/out" > "$WORK/ferry.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
$PY examples/wait_for_demo_schedule.py "$port" "$SCHEDULE"
$PY "$EXAMPLE/replay.py" --port "$port" --work "$WORK" --readme "$EXAMPLE/README.md"
kill $server; wait $server || true; trap - EXIT
