"""The cron parser and slot search against croniter (PyPI), on thousands of random expressions and
instants: `ferry cron --stdin` answers each line with the next slot, croniter answers the same.

Where clocks change (a slot in a daylight-saving gap or fold) cron implementations disagree, so zones
with daylight saving are compared on instants whose answer is more than two days from a transition;
Ferry's own rule there (a gap's slot runs at the gap's end, a fold's at its first instant) is tested in
tests/unit/schedules."""
import os
import random
import subprocess
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter

FERRY = os.environ.get("FERRY_BINARY", "build/release/ferry")
MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
FIELDS = [(0, 59, None), (0, 23, None), (1, 31, None), (1, 12, MONTHS), (0, 6, DAYS)]


def value(rng, lo, hi, names):
    v = rng.randint(lo, hi)
    if names and rng.random() < 0.3:
        return names[v - lo]
    return str(v)


def item(rng, lo, hi, names):
    kind = rng.random()
    if kind < 0.35:
        return value(rng, lo, hi, names)
    if kind < 0.6:
        a, b = sorted(rng.sample(range(lo, hi + 1), 2))
        text = f"{a}-{b}"
        return text + (f"/{rng.randint(1, max(1, b - a))}" if rng.random() < 0.4 else "")
    if kind < 0.8:
        return f"*/{rng.randint(1, hi - lo)}"
    return f"{rng.randint(lo, hi)}/{rng.randint(1, hi - lo)}"


def field(rng, lo, hi, names, star):
    if rng.random() < star:
        return "*"
    return ",".join(item(rng, lo, hi, names) for _ in range(rng.choice([1, 1, 1, 2, 3])))


def expression(rng):
    stars = [0.3, 0.3, 0.6, 0.7, 0.7]
    return " ".join(field(rng, lo, hi, names, stars[i]) for i, (lo, hi, names) in enumerate(FIELDS))


def croniter_next(expr, zone, after):
    start = datetime.fromtimestamp(after, tz=zone)
    try:
        return int(croniter(expr, start).get_next(float))
    except Exception:  # croniter finds none (e.g. February 30th) within its own search window
        return None


def ferry_next(lines):
    out = subprocess.run([FERRY, "cron", "--stdin"], input="\n".join(lines) + "\n", capture_output=True, text=True,
                         timeout=120, check=True).stdout.splitlines()
    assert len(out) == len(lines)
    return out


def near_transition(zone, instant):
    """Whether the zone's offset changes within two days of `instant`."""
    at = datetime.fromtimestamp(instant, tz=timezone.utc)
    offsets = {(at + timedelta(hours=h)).astimezone(zone).utcoffset() for h in range(-48, 49, 6)}
    return len(offsets) > 1


@pytest.mark.parametrize("zone_name,dst", [("UTC", False), ("Asia/Kolkata", False), ("Europe/Berlin", True),
                                            ("America/New_York", True), ("Australia/Sydney", True)])
def test_next_slot_matches_croniter(zone_name, dst):
    rng = random.Random(f"cron-oracle-{zone_name}")
    zone = ZoneInfo(zone_name)
    cases = []
    for _ in range(1500 if zone_name == "UTC" else 600):
        expr = expression(rng)
        after = rng.randint(1_700_000_000, 2_400_000_000) // 60 * 60 + rng.choice([0, 0, 1, 59])
        cases.append((expr, after))
    answers = ferry_next([f"{zone_name}\t{e}\t{a}" for e, a in cases])
    compared = 0
    for (expr, after), got in zip(cases, answers):
        assert not got.startswith("error"), f"{expr!r}: {got}"
        want = croniter_next(expr, zone, after)
        if want is None or got == "none":
            continue  # slots years apart: croniter gives up sooner than Ferry's 30-year search
        if dst and (near_transition(zone, want) or near_transition(zone, int(got))):
            continue
        compared += 1
        assert int(got) == want, (f"{expr!r} in {zone_name} after {after} "
                                  f"({datetime.fromtimestamp(after, tz=zone)}): ferry {got} "
                                  f"({datetime.fromtimestamp(int(got), tz=zone)}), croniter {want} "
                                  f"({datetime.fromtimestamp(want, tz=zone)})")
    assert compared >= len(cases) * 0.8, f"only {compared} of {len(cases)} compared"


def test_bad_expressions_and_zones_are_refused():
    lines = ["UTC\t61 * * * *\t0", "UTC\t* * *\t0", "Mars/Olympus\t* * * * *\t0", "UTC\t@reboot\t0",
             "UTC\t*/0 * * * *\t0", "../../etc/passwd\t* * * * *\t0"]
    for line, got in zip(lines, ferry_next(lines)):
        assert got.startswith("error: "), (line, got)
    bad = subprocess.run([FERRY, "cron", "--cron", "0 25 * * *"], capture_output=True, text=True, timeout=30)
    assert bad.returncode == 1
    assert "hour 25 is outside 0..23" in bad.stderr
