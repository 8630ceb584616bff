"""The simulated PLC: its register map (shared with the controller) and its scan logic.

The PLC owns motion and safety: it clamps setpoints to the drives' limits, keeps the carriage inside
its travel with soft limits, interlocks the knife with the RUNNING state, and stops both axes when the
controller's watchdog counter stops changing for more than WATCHDOG_S (state FAULT until the
controller writes MODE_RESET with a live watchdog). The PC only sends velocity setpoints.

Register map (Modbus unit id ignored; 32-bit values are two registers, high word first, signed,
scaled to 0.01 mm or 0.01 mm/s):

Holding registers (FC 3 read, FC 6/16 write): commands from the controller
  0   MODE             0 = STOP, 1 = RUN, 2 = RESET (clears a fault if the watchdog is alive)
  1   WATCHDOG         any change counts as alive; must change at least every 300 ms
  2-3 CONVEYOR_VEL_SP  roll velocity setpoint, 0.01 mm/s (encoder units), + = advance
  4-5 CARRIAGE_VEL_SP  carriage velocity setpoint, 0.01 mm/s, + = toward x = width
  6   KNIFE            0 = off, 1 = on (only honoured while RUNNING)
  7   (spare)
Input registers (FC 4): status from the PLC
  0     STATE          0 = STOPPED, 1 = RUNNING, 2 = FAULT
  1     FAULT_CODE     0 = none, 1 = watchdog expired, 2 = invalid command
  2     HEARTBEAT      +1 every PLC scan (wraps at 65536)
  3     KNIFE_ON       knife actually on (0/1)
  4-5   ROLL_POS       roll encoder position, 0.01 mm
  6-7   CARRIAGE_POS   carriage position, 0.01 mm
  8-9   ROLL_VEL       0.01 mm/s
  10-11 CARRIAGE_VEL   0.01 mm/s
  12-13 PLC_TIME_MS    PLC clock, ms (unsigned)
  14    LATCH_SEQ      low 16 bits of the number of the last camera exposure
  15-16 LATCH_ROLL     roll encoder latched at that exposure, 0.01 mm
  17-18 LATCH_CARRIAGE carriage position latched at that exposure, 0.01 mm
  19    WATCHDOG_AGE   ms since WATCHDOG last changed (saturates at 65535)
"""
from __future__ import annotations

import math

from .dynamics import Line
from .modbus import from_u32_words, to_u32_words

# Holding registers (commands)
HR_MODE, HR_WATCHDOG, HR_CONVEYOR_SP, HR_CARRIAGE_SP, HR_KNIFE = 0, 1, 2, 4, 6
N_HOLDING = 8
# Input registers (status)
IR_STATE, IR_FAULT, IR_HEARTBEAT, IR_KNIFE = 0, 1, 2, 3
IR_ROLL_POS, IR_CARRIAGE_POS, IR_ROLL_VEL, IR_CARRIAGE_VEL, IR_TIME_MS = 4, 6, 8, 10, 12
IR_LATCH_SEQ, IR_LATCH_ROLL, IR_LATCH_CARRIAGE, IR_WATCHDOG_AGE = 14, 15, 17, 19
N_INPUTS = 20

MODE_STOP, MODE_RUN, MODE_RESET = 0, 1, 2
STATE_STOPPED, STATE_RUNNING, STATE_FAULT = 0, 1, 2
FAULT_NONE, FAULT_WATCHDOG, FAULT_COMMAND = 0, 1, 2
STATE_NAMES = {STATE_STOPPED: "STOPPED", STATE_RUNNING: "RUNNING", STATE_FAULT: "FAULT"}
FAULT_NAMES = {FAULT_NONE: "none", FAULT_WATCHDOG: "watchdog", FAULT_COMMAND: "invalid command"}

WATCHDOG_S = 0.300
SCALE = 100.0  # register units per mm (0.01 mm)
# Soft limits stop the carriage this far inside its travel, braking at this share of its accel.
SOFT_MARGIN_MM = 2.0
SOFT_BRAKE = 0.8


def mm_to_words(mm: float) -> tuple[int, int]:
    return to_u32_words(int(round(mm * SCALE)))


def words_to_mm(hi: int, lo: int) -> float:
    return from_u32_words(hi, lo) / SCALE


def decode_status(regs) -> dict:
    """Input registers 0..N_INPUTS-1 as named values in mm, mm/s, s."""
    if len(regs) < N_INPUTS:
        raise ValueError(f"status needs {N_INPUTS} registers, got {len(regs)}")
    return {
        "state": regs[IR_STATE], "fault": regs[IR_FAULT], "heartbeat": regs[IR_HEARTBEAT],
        "knife": regs[IR_KNIFE],
        "roll_mm": words_to_mm(*regs[IR_ROLL_POS:IR_ROLL_POS + 2]),
        "carriage_mm": words_to_mm(*regs[IR_CARRIAGE_POS:IR_CARRIAGE_POS + 2]),
        "roll_vel": words_to_mm(*regs[IR_ROLL_VEL:IR_ROLL_VEL + 2]),
        "carriage_vel": words_to_mm(*regs[IR_CARRIAGE_VEL:IR_CARRIAGE_VEL + 2]),
        "plc_time_s": from_u32_words(*regs[IR_TIME_MS:IR_TIME_MS + 2], signed=False) / 1000.0,
        "latch_seq": regs[IR_LATCH_SEQ],
        "latch_roll_mm": words_to_mm(*regs[IR_LATCH_ROLL:IR_LATCH_ROLL + 2]),
        "latch_carriage_mm": words_to_mm(*regs[IR_LATCH_CARRIAGE:IR_LATCH_CARRIAGE + 2]),
        "watchdog_age_s": regs[IR_WATCHDOG_AGE] / 1000.0,
    }


def encode_command(mode: int, watchdog: int, conveyor_mm_s: float, carriage_mm_s: float,
                   knife: bool) -> list[int]:
    """Holding registers 0..6 for one FC16 write (all commands land in the same PLC scan)."""
    return [int(mode), int(watchdog) & 0xFFFF, *mm_to_words(conveyor_mm_s), *mm_to_words(carriage_mm_s),
            1 if knife else 0]


class Plc:
    """Scan logic over a register map (`holding`, `inputs`: indexable uint16 arrays, e.g. the
    ModbusTcpServer's mapping) driving a dynamics.Line. Time is the PLC's own clock, advanced by
    `step(dt)`, so the watchdog counts simulated time (it matters in triggered mode)."""

    def __init__(self, line: Line, holding, inputs):
        self.line = line
        self.holding, self.inputs = holding, inputs
        self.state = STATE_STOPPED
        self.fault = FAULT_NONE
        self.knife = False
        self.heartbeat = 0
        self.t = 0.0
        self._wd_value = 0  # registers start zeroed: only a real change counts as alive
        self._wd_changed_t = -math.inf
        self._mode_seen = MODE_STOP
        self._frozen = None  # commands held back in triggered mode (see hold_commands)
        self.faults = []     # (time, code): every fault, for the test and the log
        for i in range(N_HOLDING):
            holding[i] = 0
        self._roll_enc = line.roll_encoder()
        self._publish()

    # --- commands -------------------------------------------------------------------------
    def _read_commands(self):
        h = self.holding
        return (h[HR_MODE], h[HR_WATCHDOG], words_to_mm(h[HR_CONVEYOR_SP], h[HR_CONVEYOR_SP + 1]),
                words_to_mm(h[HR_CARRIAGE_SP], h[HR_CARRIAGE_SP + 1]), h[HR_KNIFE])

    def hold_commands(self, hold: bool) -> None:
        """While held, scans keep acting on the commands as they were when the hold began. Triggered
        mode uses it to make a command written after frame k take effect only a set delay into the
        next frame interval, like the real vision latency."""
        self._frozen = self._read_commands() if hold else None

    def on_write(self) -> None:
        """Called after each Modbus request: a RESET or a watchdog change is seen at once, not only
        at the next scan (in triggered mode there may be no scan before the next command)."""
        if self._frozen is None:
            self._logic(self._read_commands())
            self._publish()

    def _logic(self, cmd) -> tuple[float, float]:
        mode, wd, conv, carr, knife = cmd
        if wd != self._wd_value:
            self._wd_value, self._wd_changed_t = wd, self.t
        alive = self.t - self._wd_changed_t <= WATCHDOG_S
        if mode not in (MODE_STOP, MODE_RUN, MODE_RESET) or knife not in (0, 1):
            self._trip(FAULT_COMMAND)
        elif self.state == STATE_FAULT:
            if mode == MODE_RESET and self._mode_seen != MODE_RESET and alive:
                self.state, self.fault = STATE_STOPPED, FAULT_NONE
        elif self.state == STATE_RUNNING:
            if not alive:
                self._trip(FAULT_WATCHDOG)
            elif mode != MODE_RUN:
                self.state = STATE_STOPPED
        elif self.state == STATE_STOPPED and mode == MODE_RUN and alive:
            self.state = STATE_RUNNING
        self._mode_seen = mode
        if self.state != STATE_RUNNING:
            self.knife = False
            return 0.0, 0.0
        self.knife = knife == 1
        return conv, carr

    def _trip(self, code: int) -> None:
        if self.state != STATE_FAULT:
            self.faults.append((self.t, code))
        self.state, self.fault, self.knife = STATE_FAULT, code, False

    # --- scan -----------------------------------------------------------------------------
    def step(self, dt: float) -> None:
        """One PLC scan: logic on the current commands, setpoints to the drives, one dynamics step."""
        self.t += dt
        conv, carr = self._logic(self._frozen or self._read_commands())
        self.line.command_roll(conv)
        self.line.carriage.command(self._soft_limit(carr))
        self.line.step(dt)
        # One encoder sample per scan, never per request: the noise sequence, and so a triggered
        # run, stays the same however often the controller polls.
        self._roll_enc = self.line.roll_encoder()
        self.heartbeat = (self.heartbeat + 1) & 0xFFFF
        self._publish()

    def _soft_limit(self, v: float) -> float:
        """Slow the carriage so it can always stop before either end of travel."""
        c = self.line.carriage
        lim = c.limits
        a = lim.max_accel * SOFT_BRAKE
        lag = abs(c.vel) * lim.tau_s  # the drive trails its setpoint by about this much
        if v > 0:
            room = max(0.0, lim.hi - SOFT_MARGIN_MM - c.pos - lag)
            v = min(v, math.sqrt(2 * a * room))
        elif v < 0:
            room = max(0.0, c.pos - lim.lo - SOFT_MARGIN_MM - lag)
            v = max(v, -math.sqrt(2 * a * room))
        return v

    def latch(self, seq: int) -> None:
        """A camera exposure: latch both positions, as a PLC's fast input would on the strobe."""
        r = self.inputs
        r[IR_LATCH_SEQ] = seq & 0xFFFF
        r[IR_LATCH_ROLL], r[IR_LATCH_ROLL + 1] = mm_to_words(self._roll_enc)
        r[IR_LATCH_CARRIAGE], r[IR_LATCH_CARRIAGE + 1] = mm_to_words(self.line.carriage_encoder())

    def _publish(self) -> None:
        r = self.inputs
        r[IR_STATE], r[IR_FAULT], r[IR_HEARTBEAT] = self.state, self.fault, self.heartbeat
        r[IR_KNIFE] = 1 if self.knife else 0
        r[IR_ROLL_POS], r[IR_ROLL_POS + 1] = mm_to_words(self._roll_enc)
        r[IR_CARRIAGE_POS], r[IR_CARRIAGE_POS + 1] = mm_to_words(self.line.carriage_encoder())
        r[IR_ROLL_VEL], r[IR_ROLL_VEL + 1] = mm_to_words(self.line.roll_encoder_velocity())
        r[IR_CARRIAGE_VEL], r[IR_CARRIAGE_VEL + 1] = mm_to_words(self.line.carriage.vel)
        ms = int(self.t * 1000) & 0xFFFFFFFF
        r[IR_TIME_MS], r[IR_TIME_MS + 1] = (ms >> 16) & 0xFFFF, ms & 0xFFFF
        age = self.t - self._wd_changed_t
        r[IR_WATCHDOG_AGE] = 65535 if not math.isfinite(age) else min(65535, int(age * 1000))
