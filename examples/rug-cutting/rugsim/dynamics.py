"""Motion of the two axes the PLC drives: the roll (conveyor, along y) and the knife carriage (along x).

Each axis is a velocity-controlled drive: the velocity follows its setpoint as a first-order lag
(time constant `tau_s`) whose acceleration is clipped to `max_accel`, and the setpoint is clipped to
`max_speed`. Positions integrate the velocity (trapezoidal rule, so a constant acceleration
integrates exactly). All in mm, mm/s, mm/s², seconds.

The roll's encoder sits on the drive roller, so what the PLC reads is not exactly where the rug is:
the rug slips by a small fixed ratio and the reading has a little noise. Both come from the seed, so a
run is repeatable; the vision loop is what removes the difference.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AxisLimits:
    max_speed: float          # mm/s
    max_accel: float          # mm/s²
    tau_s: float = 0.04       # first-order velocity response of the drive
    lo: float | None = None   # hard travel limits (mm); None = endless (the roll)
    hi: float | None = None


CONVEYOR = AxisLimits(max_speed=250.0, max_accel=500.0, tau_s=0.04)


def carriage_limits(width_mm: float) -> AxisLimits:
    return AxisLimits(max_speed=300.0, max_accel=1500.0, tau_s=0.03, lo=0.0, hi=width_mm)


class Axis:
    """One velocity-controlled axis. `command` sets the velocity setpoint; `step(dt)` advances."""

    def __init__(self, limits: AxisLimits, pos: float = 0.0):
        if limits.max_speed <= 0 or limits.max_accel <= 0 or limits.tau_s <= 0:
            raise ValueError(f"axis limits must be positive: {limits}")
        self.limits = limits
        self.pos = float(pos)
        self.vel = 0.0
        self.accel = 0.0  # last step's acceleration, for tests and logging
        self.setpoint = 0.0

    def command(self, velocity: float) -> None:
        v = float(velocity)
        if not np.isfinite(v):
            raise ValueError(f"velocity setpoint must be finite, got {velocity!r}")
        self.setpoint = float(np.clip(v, -self.limits.max_speed, self.limits.max_speed))

    def step(self, dt: float) -> None:
        if dt <= 0:
            raise ValueError(f"dt must be positive, got {dt}")
        lim = self.limits
        a = (self.setpoint - self.vel) / max(lim.tau_s, dt)
        a = float(np.clip(a, -lim.max_accel, lim.max_accel))
        v0 = self.vel
        v1 = v0 + a * dt
        pos = self.pos + 0.5 * (v0 + v1) * dt
        # A hard stop at the end of travel: the drive would fault on the end switch; the PLC's soft
        # limits keep it from getting here.
        if lim.lo is not None and pos < lim.lo:
            pos, v1 = lim.lo, 0.0
        if lim.hi is not None and pos > lim.hi:
            pos, v1 = lim.hi, 0.0
        self.accel = (v1 - v0) / dt
        self.vel = v1
        self.pos = pos


class Line:
    """The roll and the carriage, with the roll's encoder model. `roll.pos` is the rug point y under
    the camera centre; `carriage.pos` is x. Deterministic for a given seed."""

    def __init__(self, width_mm: float, roll_mm: float, carriage_mm: float, seed: int,
                 slip_max: float = 0.003, encoder_noise_mm: float = 0.02):
        self.rng = np.random.default_rng(seed)
        self.roll = Axis(CONVEYOR, roll_mm)
        self.carriage = Axis(carriage_limits(width_mm), carriage_mm)
        self.t = 0.0
        # The encoder counts roller turns; the rug moves (1 - slip) times that. Fixed per run.
        self.slip = float(self.rng.uniform(-slip_max, slip_max))
        self.encoder_noise_mm = encoder_noise_mm
        self._roll_origin = float(roll_mm)

    def step(self, dt: float) -> None:
        self.roll.step(dt)
        self.carriage.step(dt)
        self.t += dt

    def command_roll(self, encoder_velocity: float) -> None:
        """The drive is told roller speed; the rug follows it less the slip."""
        self.roll.command(encoder_velocity / (1.0 + self.slip))

    def roll_encoder(self) -> float:
        """What the PLC reads for the roll: true travel scaled by the slip, plus noise."""
        travel = (self.roll.pos - self._roll_origin) * (1.0 + self.slip)
        return self._roll_origin + travel + float(self.rng.normal(0.0, self.encoder_noise_mm))

    def roll_encoder_velocity(self) -> float:
        return self.roll.vel * (1.0 + self.slip)

    def carriage_encoder(self) -> float:
        return self.carriage.pos
