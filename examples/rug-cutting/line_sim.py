#!/usr/bin/env python3
"""The simulated cutting line in one process: the world (a rug, the roll and the knife carriage),
the PLC that drives it (Modbus TCP, register map in rugsim/plc.py) and the camera (a local TCP socket).

Camera socket protocol (127.0.0.1, one client at a time; a new client replaces the old one):
  client -> sim: one JSON object per line, e.g. {"cmd": "trigger"}
    reset        {"cmd": "reset", "kind": "S1"|"L1", "seed": N, "width_mm": 1600,
                  "camera": "triggered"|"freerun", "latency_ms": 20}
                 loads a new rug and a new line (PLC state STOPPED, command registers zeroed);
                 answers {"type": "reset", "rug": {...}} with what the line's recipe knows
                 (kind, width, nominal line position, carriage home), not the truth.
    trigger      triggered mode: the world advances exactly 1/30 s and the frame comes back. A
                 command written after frame k takes effect latency_ms into the next interval,
                 as if the vision took that long.
    score        truth for scoring only: {"type": "score", "edge_error_mm", "line_error_mm", "cut"}
    restart_plc  {"cmd": "restart_plc", "down_s": 1.0}: the PLC's Modbus server drops every client
                 and stops listening for down_s (SIGUSR1 does the same with 1 s).
    quit         exit.
  sim -> client: one JSON header line, then `bytes` bytes of payload. Frames: {"type": "frame",
    "seq", "t_s" (PLC clock), "capture_mono" (time.monotonic() of the exposure, comparable across
    processes on this machine), "shape": [240, 320, 3], "bytes", "truth": {...}} + raw BGR bytes.
    "truth" is for logging and scoring only; the controller must not steer by it.

In free-run mode the world steps in real time at STEP_HZ and a frame is exposed every 1/30 s while
a camera client is connected; frames a slow client has not taken are dropped, not queued.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import select
import signal
import socket
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from rugsim.camera import Camera, truth  # noqa: E402  (the renderer)
from rugsim.dynamics import Line  # noqa: E402
from rugsim.modbus import ModbusTcpServer  # noqa: E402
from rugsim.plc import N_HOLDING, N_INPUTS, Plc  # noqa: E402
from rugsim.rug import Rug  # noqa: E402

FPS = 30
STEP_HZ = 480                # 16 PLC scans per frame
STEPS_PER_FRAME = STEP_HZ // FPS
HOME_X_MM = 40.0             # carriage home: the camera's 80 mm field is fully on the rug
START_GAP_MM = 200.0         # the roll starts this far (plus up to 40 mm) before the nominal line
MAX_PENDING_FRAMES = 2       # a free-run client this far behind loses frames


class World:
    """One rug on the line: the PLC, the dynamics, the camera, and the truth kept for scoring."""

    def __init__(self, kind: str, seed: int, width_mm: float, holding, inputs, latency_s: float = 0.0):
        self.rug = Rug(kind, seed, width_mm=width_mm)
        start_rng = np.random.default_rng([seed, 2])
        roll0 = float(self.rug.nominal_line_y) - START_GAP_MM - float(start_rng.uniform(0.0, 40.0))
        self.line = Line(width_mm, roll0, HOME_X_MM, seed)
        self.plc = Plc(self.line, holding, inputs)
        # Each rug under its own lighting drift, as the models' held-out frames are rendered.
        self.camera = Camera(width_px=320, height_px=240, mm_per_px=0.25, light_seed=seed)
        self.render_rng = np.random.default_rng([seed, 1])
        self.kind, self.seed, self.width_mm = kind, seed, float(width_mm)
        self.seq = 0
        self.steps = 0
        self.latency_steps = max(0, int(round(latency_s * STEP_HZ)))
        self.cut = {"n": 0, "sum_sq": 0.0, "max_abs": 0.0, "x_min": math.inf, "x_max": -math.inf}

    def recipe(self) -> dict:
        """What the line knows before it looks: no truth."""
        return {"kind": self.kind, "seed": self.seed, "width_mm": self.width_mm,
                "nominal_line_y": float(self.rug.nominal_line_y), "home_x_mm": HOME_X_MM}

    def step(self) -> None:
        self.plc.step(1.0 / STEP_HZ)
        self.steps += 1
        if self.plc.knife:
            x = self.line.carriage.pos
            err = self.line.roll.pos - float(self.rug.line_y(x))
            c = self.cut
            c["n"] += 1
            c["sum_sq"] += err * err
            c["max_abs"] = max(c["max_abs"], abs(err))
            c["x_min"], c["x_max"] = min(c["x_min"], x), max(c["x_max"], x)

    def advance_frame(self) -> None:
        """Triggered mode: one frame interval, the new commands held back for the latency."""
        for i in range(STEPS_PER_FRAME):
            if i == self.latency_steps:
                self.plc.hold_commands(False)
            self.step()
        self.plc.hold_commands(False)

    def expose(self) -> tuple[dict, bytes]:
        roll, x = self.line.roll.pos, self.line.carriage.pos
        frame = self.camera.render(self.rug, roll, x, t_s=self.plc.t,
                                   speed_mm_s=(self.line.carriage.vel, self.line.roll.vel),
                                   rng=self.render_rng)
        frame = np.ascontiguousarray(frame, dtype=np.uint8)
        t = {k: (bool(v) if isinstance(v, (bool, np.bool_)) else float(v))
             for k, v in truth(self.rug, roll, x).items()}
        t.update(roll_mm=roll, carriage_mm=x, knife=self.plc.knife)
        self.plc.latch(self.seq)
        header = {"type": "frame", "seq": self.seq, "t_s": self.plc.t, "capture_mono": time.monotonic(),
                  "shape": list(frame.shape),
                  "bytes": frame.nbytes, "truth": t}
        self.seq += 1
        return header, frame.tobytes()

    def score(self) -> dict:
        x = self.line.carriage.pos
        c = self.cut
        cut = {"n": c["n"], "rms_mm": math.sqrt(c["sum_sq"] / c["n"]) if c["n"] else None,
               "max_mm": c["max_abs"] if c["n"] else None,
               "x_from": c["x_min"] if c["n"] else None, "x_to": c["x_max"] if c["n"] else None}
        return {"type": "score", "t_s": self.plc.t,
                "edge_error_mm": float(self.rug.edge_y(x)) - self.line.roll.pos,
                "line_error_mm": float(self.rug.line_y(x)) - self.line.roll.pos,
                "line_width_mm": float(self.rug.line_width_mm), "carriage_mm": x,
                "roll_mm": self.line.roll.pos, "faults": [[t, code] for t, code in self.plc.faults],
                "cut": cut}


class CameraLink:
    """The camera's single client connection: line-based JSON in, header + payload out, with an
    output queue so a slow reader never blocks the world."""

    def __init__(self, sock: socket.socket):
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.pending_frames = 0
        self.dropped = 0

    def send(self, header: dict, payload: bytes = b"") -> None:
        header = dict(header, bytes=len(payload))
        self.outbuf += json.dumps(header).encode() + b"\n" + payload

    def flush(self) -> bool:
        """Send what the socket takes; False when the peer is gone."""
        try:
            while self.outbuf:
                n = self.sock.send(self.outbuf)
                del self.outbuf[:n]
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            return False
        return True

    def read_commands(self) -> list[dict] | None:
        try:
            data = self.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return []
        except OSError:
            return None
        if not data:
            return None
        self.inbuf += data
        out = []
        while b"\n" in self.inbuf:
            line, _, rest = bytes(self.inbuf).partition(b"\n")
            self.inbuf = bytearray(rest)
            if line.strip():
                try:
                    msg = json.loads(line)
                    if not isinstance(msg, dict):
                        raise ValueError("not an object")
                    out.append(msg)
                except ValueError as e:
                    out.append({"cmd": "_bad", "error": f"bad command line: {e}"})
        return out

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class LineSim:
    def __init__(self, host: str, modbus_port: int, camera_port: int, width_mm: float,
                 kind: str = "S1", seed: int = 10000, log=None):
        self.log = log or (lambda msg: print(f"[line_sim] {msg}", file=sys.stderr, flush=True))
        self.modbus = ModbusTcpServer(host, modbus_port, N_HOLDING, N_INPUTS, on_request=self._on_request)
        self.modbus.open()
        self.cam_listener = socket.create_server((host, camera_port), reuse_port=False)
        self.cam_listener.setblocking(False)
        self.cam: CameraLink | None = None
        self.mode = "triggered"
        self.world = World(kind, seed, width_mm, self.modbus.holding, self.modbus.inputs)
        self.reopen_at: float | None = None
        self.restart_requested = False
        self.quit = False
        self.next_step_mono = time.monotonic()
        self.behind_resyncs = 0

    def _on_request(self, _fd: int) -> None:
        self.world.plc.on_write()

    # --- PLC restart ------------------------------------------------------------------------
    def restart_plc(self, down_s: float) -> None:
        self.log(f"PLC restart: Modbus down for {down_s:.1f} s")
        self.modbus.close_all()
        self.reopen_at = time.monotonic() + down_s

    def _maybe_reopen(self) -> None:
        if self.reopen_at is not None and time.monotonic() >= self.reopen_at:
            try:
                self.modbus.open()
                self.reopen_at = None
                self.log("PLC back: Modbus listening again")
            except Exception as e:  # port still held: try again shortly
                self.log(f"PLC reopen failed ({e}); retrying")
                self.reopen_at = time.monotonic() + 0.1

    # --- camera commands ----------------------------------------------------------------------
    def _command(self, msg: dict) -> None:
        cmd = msg.get("cmd")
        cam = self.cam
        try:
            if cmd == "trigger":
                if self.mode != "triggered":
                    raise ValueError("trigger is only valid in triggered mode")
                self.world.advance_frame()
                header, payload = self.world.expose()
                cam.send(header, payload)
                if self.world.latency_steps:
                    self.world.plc.hold_commands(True)
            elif cmd == "reset":
                mode = msg.get("camera", "triggered")
                if mode not in ("triggered", "freerun"):
                    raise ValueError(f"camera must be triggered or freerun, not {mode!r}")
                kind = msg.get("kind", "S1")
                seed = int(msg.get("seed", 10000))
                width = float(msg.get("width_mm", 1600.0))
                latency = float(msg.get("latency_ms", 20.0)) / 1000.0 if mode == "triggered" else 0.0
                self.world = World(kind, seed, width, self.modbus.holding, self.modbus.inputs, latency_s=latency)
                self.mode = mode
                self.next_step_mono = time.monotonic()
                cam.pending_frames = 0
                cam.send({"type": "reset", "rug": self.world.recipe(), "camera": mode,
                          "fps": FPS, "latency_ms": latency * 1000.0})
            elif cmd == "score":
                cam.send(self.world.score())
            elif cmd == "restart_plc":
                self.restart_plc(float(msg.get("down_s", 1.0)))
                cam.send({"type": "ok", "cmd": cmd})
            elif cmd == "quit":
                self.quit = True
                cam.send({"type": "ok", "cmd": cmd})
            elif cmd == "_bad":
                raise ValueError(msg["error"])
            else:
                raise ValueError(f"unknown command {cmd!r}")
        except (ValueError, TypeError, KeyError) as e:
            cam.send({"type": "error", "cmd": cmd, "error": str(e)})

    # --- main loop ------------------------------------------------------------------------------
    def _free_run_steps(self) -> None:
        now = time.monotonic()
        if now - self.next_step_mono > 0.25:
            # Far behind (machine stalled): skip ahead rather than run the world in fast-forward.
            self.behind_resyncs += 1
            self.next_step_mono = now
        while self.next_step_mono <= now:
            self.world.step()
            if self.world.steps % STEPS_PER_FRAME == 0 and self.cam is not None:
                header, payload = self.world.expose()
                # The exposure happened when the world was in this state, not when we got to it.
                header["capture_mono"] = self.next_step_mono
                if self.cam.pending_frames >= MAX_PENDING_FRAMES and self.cam.outbuf:
                    self.cam.dropped += 1
                else:
                    if not self.cam.outbuf:
                        self.cam.pending_frames = 0
                    self.cam.send(header, payload)
                    self.cam.pending_frames += 1
            self.next_step_mono += 1.0 / STEP_HZ

    def run(self) -> None:
        while not self.quit:
            if self.restart_requested:
                self.restart_requested = False
                self.restart_plc(1.0)
            self._maybe_reopen()
            rlist = [self.cam_listener] + self.modbus.fds() + ([self.cam.sock] if self.cam else [])
            wlist = [self.cam.sock] if self.cam and self.cam.outbuf else []
            timeout = 0.05
            if self.mode == "freerun":
                timeout = max(0.0, self.next_step_mono - time.monotonic())
            try:
                ready, writable, _ = select.select(rlist, wlist, [], timeout)
            except InterruptedError:
                continue
            mb_ready = [r for r in ready if isinstance(r, int)]
            if mb_ready:
                self.modbus.service(mb_ready)
            if self.cam_listener in ready:
                self._accept_camera()
            if self.cam and self.cam.sock in ready:
                msgs = self.cam.read_commands()
                if msgs is None:
                    self._drop_camera()
                else:
                    for m in msgs:
                        self._command(m)
            if self.mode == "freerun":
                self._free_run_steps()
            if self.cam and self.cam.outbuf and not self.cam.flush():
                self._drop_camera()
        if self.cam:
            self.cam.sock.setblocking(True)
            self.cam.flush()

    def _accept_camera(self) -> None:
        try:
            sock, _ = self.cam_listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        if self.cam:
            self.log("new camera client replaces the old one")
            self.cam.close()
        self.cam = CameraLink(sock)

    def _drop_camera(self) -> None:
        if self.cam:
            self.cam.close()
        self.cam = None

    def close(self) -> None:
        self._drop_camera()
        self.cam_listener.close()
        self.modbus.free()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--modbus-port", type=int, default=15020)
    ap.add_argument("--camera-port", type=int, default=15021)
    ap.add_argument("--width-mm", type=float, default=1600.0)
    args = ap.parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print("line_sim serves on the loopback interface only", file=sys.stderr)
        return 2
    try:
        sim = LineSim(args.host, args.modbus_port, args.camera_port, args.width_mm)
    except Exception as e:
        print(f"line_sim: cannot start: {e}", file=sys.stderr)
        return 1

    def on_usr1(*_):
        sim.restart_requested = True

    def on_term(*_):
        sim.quit = True

    signal.signal(signal.SIGUSR1, on_usr1)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    print(json.dumps({"ready": True, "modbus_port": args.modbus_port, "camera_port": args.camera_port,
                      "pid": os.getpid()}), flush=True)
    try:
        sim.run()
    finally:
        sim.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
