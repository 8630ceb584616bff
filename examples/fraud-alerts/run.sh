#!/usr/bin/env bash
# The fraud-alerts example, end to end (see README.md): trains fraud_score on family A, starts the
# webhook receiver and `ferry serve`, submits family B's transactions as jobs with a webhook each,
# waits for every webhook, and writes precision/recall at the alert threshold and the submit-to-alert
# latency into README.md.
# Needs the release build and .venv (made here when missing). Work files go to $WORK (default
# /tmp/ferry-fraud-alerts). COUNT (3000), RATE (transactions/s, 100), CONCURRENCY (client threads, 4)
# and JOB_CONCURRENCY (the server's, 4) can be set.
set -euo pipefail
cd "$(dirname "$0")/../.."
EXAMPLE=examples/fraud-alerts
WORK=${WORK:-/tmp/ferry-fraud-alerts}
COUNT=${COUNT:-3000} RATE=${RATE:-100} CONCURRENCY=${CONCURRENCY:-4} JOB_CONCURRENCY=${JOB_CONCURRENCY:-4}
[ -x .venv/bin/python ] || bash scripts/setup-python.sh
[ -x build/release/ferry ] || bash scripts/build.sh release
FERRY=build/release/ferry
PY=.venv/bin/python

$PY "$EXAMPLE/make_example.py"
rm -rf "$WORK" && mkdir -p "$WORK/data"
cp "$EXAMPLE/alert_threshold.json" "$WORK/"
$PY "$EXAMPLE/eval_family.py" inputs --work "$WORK" --count "$COUNT"
(umask 077 && $PY -c 'import base64, os; print("whsec_" + base64.b64encode(os.urandom(32)).decode())' \
  > "$WORK/webhook_secret")

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
$PY "$EXAMPLE/receiver.py" --secret-file "$WORK/webhook_secret" --threshold-file "$WORK/alert_threshold.json" \
  --port-file "$WORK/receiver.port" --log "$WORK/received.jsonl" > "$WORK/alerts.log" 2>&1 &
pids+=($!)
port=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
$FERRY serve --model-repository "$EXAMPLE/models" --http-address 127.0.0.1 --http-port "$port" \
  --data-dir "$WORK/data" --webhook-allow 127.0.0.1/32 --webhook-backoff-ms 200 \
  --job-concurrency "$JOB_CONCURRENCY" > "$WORK/ferry.log" 2>&1 &
pids+=($!)
for _ in $(seq 300); do  # up to 30 s for both to listen and the model to load
  [ -s "$WORK/receiver.port" ] && curl -sf "localhost:$port/v2/models/fraud_score/ready" >/dev/null && break
  sleep 0.1
done
curl -sf "localhost:$port/v2/models/fraud_score/ready" >/dev/null || { tail -20 "$WORK/ferry.log"; exit 1; }

$PY "$EXAMPLE/alert_client.py" --work "$WORK" --port "$port" --receiver-port "$(cat "$WORK/receiver.port")" \
  --rate "$RATE" --concurrency "$CONCURRENCY" --job-concurrency "$JOB_CONCURRENCY"
kill "${pids[1]}"; wait "${pids[1]}" || { echo "ferry exited with $?"; exit 1; }
kill "${pids[0]}"; wait "${pids[0]}" || true
trap - EXIT

echo "--- alerts (first 10 of $(grep -c '^ALERT' "$WORK/alerts.log"); all in $WORK/alerts.log)"
grep '^ALERT' "$WORK/alerts.log" | head -10
echo "---"
$PY "$EXAMPLE/eval_family.py" report --work "$WORK" --readme "$EXAMPLE/README.md"
