#!/usr/bin/env bash
# The nightly feedback-sentiment example, end to end (see README.md and
# examples/run_scheduled_example.sh): trains feedback_sentiment on family A (Debian's Python, which has
# torch), classifies family B's reviews with `ferry batch`, runs the nightly schedule's every-minute
# copy in the server, and writes the accuracy.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec bash examples/run_scheduled_example.sh feedback-sentiment feedback_sentiment nightly-sentiment /usr/bin/python3
