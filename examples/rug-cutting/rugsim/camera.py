"""The line camera: renders what it sees of a Rug, and the ground truth for that view.

Pixel (column c, row r) looks at rug point x = carriage_mm + (c - W/2) * mm_per_px,
y = roll_mm + (r - H/2) * mm_per_px: the centre pixel (160, 120) looks at (carriage_mm, roll_mm).
A frame is a window of the rug's texture tiles at those coordinates, the stripe composited from the
rug's line geometry, then lighting, motion blur and sensor noise. Motion blur is symmetric around
the pixel, so the truth of a moving view is its position at mid-exposure.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from .rug import TILE_MM_PER_PX

EDGE_MARGIN_PX = 4   # the edge counts as visible only this far inside the frame


class Camera:
    """A fixed-focus camera looking straight down at the rug; exposure_s sets the motion blur,
    light_seed the phases of the lighting drift and the sensor-noise bank."""

    def __init__(self, width_px: int = 320, height_px: int = 240, mm_per_px: float = 0.25, *,
                 exposure_s: float = 0.004, light_seed: int = 0):
        self.width_px, self.height_px, self.mm_per_px = int(width_px), int(height_px), float(mm_per_px)
        self.exposure_s = float(exposure_s)
        h, w = self.height_px, self.width_px
        self._cols = (np.arange(w) - w / 2) * self.mm_per_px      # x offsets of the columns, mm
        self._rows = (np.arange(h) - h / 2) * self.mm_per_px      # y offsets of the rows, mm
        # Lens vignette (fixed) and the unit ramps the lighting gradient is made from.
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        xn, yn = (xx - w / 2) / (w / 2), (yy - h / 2) / (h / 2)
        self._vignette = (1.0 - 0.16 * (xn * xn + yn * yn) / 2).astype(np.float32)
        self._ramp_x = xn[:1, :].copy()
        self._ramp_y = yn[:, :1].copy()
        # Slow lighting drift: a few incommensurate periods; the phases come from light_seed.
        lr = np.random.default_rng([int(light_seed), 991])
        self._light_phase = lr.uniform(0, 2 * np.pi, 4)
        # A bank of unit Gaussian noise; a frame takes a random window of it (fast, and deterministic
        # for a given rng).
        self._noise_pad = 48
        self._noise = np.random.default_rng([int(light_seed), 992]).standard_normal(
            (h + self._noise_pad, w + self._noise_pad, 3)).astype(np.float32)

    # ---------------------------------------------------------------------------------- lighting

    def _light(self, t_s, rng):
        p = self._light_phase
        tau = 2 * math.pi * t_s
        gain = 1.0 + 0.12 * math.sin(tau / 23.0 + p[0]) + 0.05 * math.sin(tau / 6.1 + p[1])
        gx = 0.10 * math.sin(tau / 31.0 + p[2])
        gy = 0.08 * math.sin(tau / 17.0 + p[3])
        if rng is not None and rng.random() < 0.04:       # occasional flicker (another light, mains beat)
            gain *= rng.uniform(0.75, 1.2)
        return (self._vignette * (1.0 + gx * self._ramp_x + gy * self._ramp_y)) * np.float32(gain)

    def _blur_kernel(self, speed_mm_s):
        vx, vy = float(speed_mm_s[0]), float(speed_mm_s[1])
        dx, dy = vx * self.exposure_s / self.mm_per_px, vy * self.exposure_s / self.mm_per_px
        length = math.hypot(dx, dy)
        if length < 0.3:
            return None
        r = int(math.ceil(length / 2)) + 1
        k = np.zeros((2 * r + 1, 2 * r + 1), np.float32)
        n = max(2, int(math.ceil(length * 4)))
        for s in np.linspace(-0.5, 0.5, n):   # splat points along the segment, bilinearly
            px, py = r + s * dx, r + s * dy
            x0, y0 = int(math.floor(px)), int(math.floor(py))
            fx, fy = px - x0, py - y0
            k[y0, x0] += (1 - fx) * (1 - fy)
            k[y0, x0 + 1] += fx * (1 - fy)
            k[y0 + 1, x0] += (1 - fx) * fy
            k[y0 + 1, x0 + 1] += fx * fy
        return k / k.sum()

    # ----------------------------------------------------------------------------------- texture

    def _sample(self, rug, tile_name, x0_mm, y0_mm, rows):
        """`rows` rows of the tile resampled onto the frame grid; (x0, y0) is the rug point under the
        first row's pixel 0."""
        s = self.mm_per_px / TILE_MM_PER_PX
        u0, v0 = x0_mm / TILE_MM_PER_PX, y0_mm / TILE_MM_PER_PX
        iu, iv = math.floor(u0), math.floor(v0)
        w = int(math.ceil(self.width_px * s)) + 2
        h = int(math.ceil(rows * s)) + 2
        win = rug.window(tile_name, iu, iv, w, h)
        m = np.array([[s, 0.0, u0 - iu], [0.0, s, v0 - iv]])
        return cv2.warpAffine(win, m, (self.width_px, rows),
                              flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)

    # ------------------------------------------------------------------------------------ render

    def render(self, rug, roll_mm, carriage_mm, *, t_s=0.0, speed_mm_s=(0.0, 0.0), rng=None,
               effects=True):
        """BGR uint8 (H, W, 3). rng=None: no sensor noise and no flicker. effects=False: also no
        lighting and no motion blur (the bare rug, for geometry checks)."""
        h, w = self.height_px, self.width_px
        x_cols = carriage_mm + self._cols
        y_rows = roll_mm + self._rows
        x0, y0 = float(x_cols[0]), float(y_rows[0])

        a = self._sample(rug, "rug", x0, y0, h)
        light = self._light(t_s, rng) if effects else None
        if light is not None:
            a *= light
        # The rugs on either side of the line differ a little in shade: rows clear of the line get one
        # gain, the rows it crosses get a per-pixel choice.
        centre = rug.line_y(x_cols)
        c0 = int(np.clip(math.floor((centre.min() - y0) / self.mm_per_px), 0, h))
        c1 = int(np.clip(math.ceil((centre.max() - y0) / self.mm_per_px) + 1, c0, h))
        g0, g1 = rug.side_gain
        a[:c0] *= g0
        a[c1:] *= g1
        if c0 < c1:
            a[c0:c1] *= np.where(y_rows[c0:c1, None] < centre[None, :], g0, g1).astype(np.float32)
        img = cv2.transform(a[:, :, None], rug.rug_bgr.reshape(3, 1).astype(np.float32))

        # The stripe: only the rows it can touch are composited.
        top, bottom = rug.stripe_edges(x_cols)
        soft = rug.edge_soft_mm
        r0 = max(0, int(math.floor((top.min() - soft - y0) / self.mm_per_px)) - 1)
        r1 = min(h, int(math.ceil((bottom.max() + soft - y0) / self.mm_per_px)) + 2)
        if r0 < r1:
            yb = y_rows[r0:r1, None]
            m = (np.clip((yb - top[None, :]) / soft + 0.5, 0, 1)
                 * np.clip((bottom[None, :] - yb) / soft + 0.5, 0, 1)).astype(np.float32)
            lit = self._sample(rug, "line", x0, float(y_rows[r0]), r1 - r0)
            if light is not None:
                lit = lit * light[r0:r1]
            # Contrast along the line: blend from the rug colour towards the line colour.
            f = rug.contrast_along(x_cols)
            col = rug.rug_bgr[None, :] + f[:, None] * (rug.line_bgr - rug.rug_bgr)[None, :]   # (W, 3)
            col = col.astype(np.float32)
            band = lit[:, :, None] * col[None, :, :]
            img[r0:r1] += m[:, :, None] * (band - img[r0:r1])

        if effects:
            k = self._blur_kernel(speed_mm_s)
            if k is not None:
                img = cv2.filter2D(img, -1, k, borderType=cv2.BORDER_REFLECT)
        if rng is not None:
            # Read noise plus shot noise at the frame's mean level (per-pixel levels cost a lot, gain little).
            oy, ox = rng.integers(0, self._noise_pad, 2)
            sigma = math.sqrt(4.0 + 0.04 * rug.rug_luma) * (1.0 if rng.random() < 0.5 else -1.0)
            img = cv2.scaleAdd(self._noise[oy:oy + h, ox:ox + w], sigma, img)
        np.maximum(img, 0.0, out=img)
        return cv2.convertScaleAbs(img)   # rounds and saturates to uint8


def truth(rug, roll_mm, carriage_mm, camera=None):
    """Ground truth for the view centred on (carriage_mm, roll_mm); offsets in mm, + = below centre."""
    cam = camera or _DEFAULT
    edge = rug.edge_y(carriage_mm) - roll_mm
    row = cam.height_px / 2 + edge / cam.mm_per_px
    return {
        "edge_offset_mm": float(edge),
        "edge_visible": bool(EDGE_MARGIN_PX <= row <= cam.height_px - 1 - EDGE_MARGIN_PX),
        "line_offset_mm": float(rug.line_y(carriage_mm) - roll_mm),
        "line_angle_deg": float(math.degrees(math.atan(rug.line_slope(carriage_mm)))),
        "line_width_mm": rug.line_width_mm,
    }


_DEFAULT = Camera()


# ------------------------------------------------------------------------------ views for training

# Clamp range of the search model's edge output, mm (the frame reaches about +-30 mm from its centre).
EDGE_RANGE_MM = 30.0


def search_view(rug, rng):
    """A random view of line search: the roll from well before the line (the edge below the frame)
    to just past it, the conveyor moving at 0-200 mm/s. Returns render keyword arguments + truth."""
    x = float(rng.uniform(0.0, rug.width_mm))
    u = rng.random()
    if u < 0.6:
        edge = rng.uniform(-31.0, 31.0)          # the edge in the frame (or just outside it)
    elif u < 0.9:
        edge = rng.uniform(31.0, 120.0)          # the line still ahead
    else:
        edge = rng.uniform(-50.0, -31.0)         # just past it
    speed = 0.0 if rng.random() < 0.15 else rng.uniform(0.0, 200.0)
    return {"roll_mm": float(rug.edge_y(x) - edge), "carriage_mm": x, "t_s": float(rng.uniform(0, 600)),
            "speed_mm_s": (0.0, float(speed))}


def tracking_view(rug, rng):
    """A random view of line tracking: the carriage anywhere across the width and moving at
    50-300 mm/s (sometimes slower), the roll within about 12 mm of the line."""
    x = float(rng.uniform(0.0, rug.width_mm))
    off = rng.uniform(-12.0, 12.0)
    vx = rng.uniform(50.0, 300.0) if rng.random() < 0.9 else rng.uniform(0.0, 50.0)
    vx *= 1.0 if rng.random() < 0.5 else -1.0
    vy = rng.normal(0.0, 10.0)                   # the roll correcting the position meanwhile
    return {"roll_mm": float(rug.line_y(x) - off), "carriage_mm": x, "t_s": float(rng.uniform(0, 600)),
            "speed_mm_s": (float(vx), float(vy))}


def model_pixels(frame, crop=None, size=(96, 72)):
    """Ferry's `preprocess` up to the scaling: BGR -> grey -> optional crop [x, y, w, h] -> INTER_AREA
    resize. uint8 (h, w)."""
    grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    if crop is not None:
        x, y, w, h = crop
        grey = grey[y:y + h, x:x + w]
    return cv2.resize(grey, size, interpolation=cv2.INTER_AREA)


def model_input(frame, crop=None, size=(96, 72)):
    """What Ferry's `preprocess` block feeds the models: model_pixels, then x/255 -> (x - 0.5)/0.5,
    as float32 [1, 1, h, w]."""
    return scale_pixels(model_pixels(frame, crop, size))[None, None]


def scale_pixels(pixels):
    return (pixels.astype(np.float32) / 255.0 - 0.5) / 0.5
