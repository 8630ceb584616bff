#!/usr/bin/env bash
# The weekly forecasting example, end to end (see README.md and examples/run_scheduled_example.sh):
# trains forecast_xgb on family A, forecasts family B's store-weeks with `ferry batch`, runs the weekly
# schedule's every-minute copy in the server, and writes MAPE against the seasonal-naive forecast.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec bash examples/run_scheduled_example.sh forecasting forecast_xgb weekly-forecast .venv/bin/python
