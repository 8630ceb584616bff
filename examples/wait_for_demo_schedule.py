#!/usr/bin/env python3
"""For the examples' run.sh: waits until the server on PORT is ready and its `demo-every-minute`
schedule has fired and its batch ended, then prints that batch and the real schedule's next run.

    wait_for_demo_schedule.py PORT SCHEDULE
"""
import json
import sys
import time
import urllib.request


def main():
    base, schedule = f"http://127.0.0.1:{sys.argv[1]}", sys.argv[2]

    def get(path):
        with urllib.request.urlopen(base + path, timeout=5) as r:
            return json.load(r)

    for _ in range(600):
        try:
            get("/v2/health/ready")
            break
        except OSError:
            time.sleep(0.1)
    print("waiting for the demo schedule's next minute ...")
    deadline = time.time() + 90
    while time.time() < deadline:
        demo = get("/v1/schedules/demo-every-minute")
        if demo["last_batches"]:
            batch = get(f"/v1/batches/{demo['last_batches'][0]}")
            if batch["status"] in ("completed", "failed"):
                break
        time.sleep(0.5)
    else:
        sys.exit("the demo schedule did not fire within 90 s")
    print(f"demo slot {demo['last_fired_at_local']} -> batch {batch['id']} {batch['status']}, "
          f"{batch['request_counts']['completed']} records in {batch['output']}")
    real = get(f"/v1/schedules/{schedule}")
    print(f"{schedule}: next run {real['next_run_at_local']} {real['time_zone']} "
          f"(cron '{real['cron']}', missed: {real['missed']})")
    if batch["status"] != "completed":
        sys.exit(f"the demo batch ended {batch['status']}: {batch.get('errors')}")


if __name__ == "__main__":
    main()
