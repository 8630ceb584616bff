"""A simulated roll of rugs: the cutting line between two rugs and the texture around it.

Coordinates are millimetres on the rug: x across the width (0..width_mm), y along the roll, increasing
downstream. Everything is drawn from `seed` (and the kind), so a Rug is the same in every process.

The texture is stored as periodic tiles sampled every TILE_MM_PER_PX millimetres. The camera cuts a
window out of a tile at the rug coordinates it looks at, so the same rug point always shows the same
texture wherever the camera is (motion looks real) and a frame costs a window copy, not a noise field.
"""
from __future__ import annotations

import copy
import math

import cv2
import numpy as np

KINDS = ("S1", "L1")
TILE_MM_PER_PX = 0.25
TILE_PX = 1024                  # 256 mm: larger than any view, so no view shows a repeat
TILE_PAD_PX = 512               # wrap margin: a window up to 512 px wide is one slice
PROFILE_MARGIN_MM = 200.0       # 1-D profiles along the line cover the width plus this on each side
LUMA = np.array([0.114, 0.587, 0.299])   # BGR weights of cv2.COLOR_BGR2GRAY


def periodic_noise(rng, shape, sigma_px):
    """Gaussian-filtered white noise, periodic over `shape`, unit std. Filtered in the Fourier domain;
    a wide filter is applied at a coarser grid and the result interpolated up (same field, far less work)."""
    k = 1
    while k < 8 and sigma_px / (2 * k) >= 2.5 and shape[0] % (2 * k) == 0 and shape[1] % (2 * k) == 0:
        k *= 2
    small = (shape[0] // k, shape[1] // k)
    s = sigma_px / k
    white = rng.standard_normal(small)
    fy = np.fft.fftfreq(small[0])[:, None]
    fx = np.fft.rfftfreq(small[1])[None, :]
    gain = np.exp(-2.0 * (math.pi * s) ** 2 * (fx * fx + fy * fy))
    field = np.fft.irfft2(np.fft.rfft2(white) * gain, s=small).astype(np.float32)
    if k > 1:   # periodic upsampling: wrap-pad, resize, cut the pad back off
        big = cv2.resize(np.pad(field, 2, mode="wrap"), None, fx=k, fy=k, interpolation=cv2.INTER_CUBIC)
        field = big[2 * k:2 * k + shape[0], 2 * k:2 * k + shape[1]]
    return (field / (field.std() + 1e-12)).astype(np.float32)


def smooth_noise_1d(rng, n, sigma_px):
    white = rng.standard_normal(n)
    f = np.fft.rfftfreq(n)
    field = np.fft.irfft(np.fft.rfft(white) * np.exp(-2.0 * (math.pi * sigma_px * f) ** 2), n=n)
    return field / (field.std() + 1e-12)


def fold_pad(canvas, pad):
    """Adds the `pad`-wide margins of a drawing canvas back onto the opposite sides (periodic tile)."""
    t = canvas[pad:-pad, pad:-pad].copy()
    h, w = t.shape
    t[:, :pad] += canvas[pad:-pad, -pad:]
    t[:, -pad:] += canvas[pad:-pad, :pad]
    t[:pad, :] += canvas[-pad:, pad:-pad]
    t[-pad:, :] += canvas[:pad, pad:-pad]
    t[:pad, :pad] += canvas[-pad:, -pad:]
    t[:pad, -pad:] += canvas[-pad:, :pad]
    t[-pad:, :pad] += canvas[:pad, -pad:]
    t[-pad:, -pad:] += canvas[:pad, :pad]
    return t


def weave(shape, pitch_px, rng, jitter):
    """A regular grid of tufts (cos x cos), its phase wandering slowly so it is not machine-perfect.
    The pitch is rounded so a whole number of periods fits the tile (the tile stays periodic)."""
    h, w = shape
    nx = max(1, round(w / pitch_px))
    ny = max(1, round(h / pitch_px))
    wander = periodic_noise(rng, shape, 24.0) * jitter
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    gx = np.cos(2 * np.pi * nx * xx / w + wander)
    gy = np.cos(2 * np.pi * ny * yy / h + 0.7 * wander)
    return (gx * gy).astype(np.float32)


def colour_with_luma(rng, luma, chroma):
    """A BGR colour whose grey value (cv2 weights) is `luma`; `chroma` sets how far it is from grey."""
    c = 1.0 + chroma * rng.uniform(-1.0, 1.0, 3)
    return c * luma / float(LUMA @ c)


class Rug:
    def __init__(self, kind: str, seed: int, width_mm: float = 1600.0):
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
        self.kind, self.seed, self.width_mm = kind, int(seed), float(width_mm)
        rng = np.random.default_rng([int(seed), KINDS.index(kind), 7741])

        # Geometry: a small angle to the roll, a smooth wobble over the width, a per-rug line width.
        self.angle0_deg = float(rng.uniform(-1.5, 1.5))
        self._slope0 = math.tan(math.radians(self.angle0_deg))
        n_waves = 2
        self._wob_amp = rng.uniform(0.4, 2.0, n_waves)
        self._wob_k = 2 * np.pi / rng.uniform(600.0, 1800.0, n_waves)
        self._wob_phase = rng.uniform(0, 2 * np.pi, n_waves)
        self._xc = self.width_mm / 2
        self._wob_c = float(self._wobble(np.array([self._xc]))[0])
        self.centre_y_mm = float(rng.uniform(900.0, 1100.0))          # line_y at the middle of the width
        self.line_width_mm = float(rng.uniform(3.0, 6.0))
        self.nominal_line_y = self.centre_y_mm + float(rng.uniform(-38.0, 38.0))

        # Appearance of the stripe: darker or lighter base weave; contrast varies per rug and along x.
        self.rug_luma = float(rng.uniform(70.0, 170.0))
        self.rug_bgr = colour_with_luma(rng, self.rug_luma, rng.uniform(0.05, 0.45))
        sign = -1.0 if rng.random() < 0.65 else 1.0
        self.line_contrast = float(0.05 + 0.35 * rng.random() ** 1.5)   # often weak-ish, sometimes strong
        line_luma = self.rug_luma * (1.0 + sign * self.line_contrast)
        self.line_bgr = colour_with_luma(rng, line_luma, rng.uniform(0.0, 0.2))
        self.side_gain = rng.uniform(0.93, 1.07, 2).astype(np.float32)   # the rugs before / after the line

        # 1-D profiles along x, sampled like the tiles: contrast along the line and ragged edges.
        n = int(round((self.width_mm + 2 * PROFILE_MARGIN_MM) / TILE_MM_PER_PX))
        self._prof_x0 = -PROFILE_MARGIN_MM
        self._contrast_x = np.clip(1.0 + 0.35 * smooth_noise_1d(rng, n, 150.0 / TILE_MM_PER_PX), 0.35, 1.65)
        if kind == "S1":
            rag_mm, rag_scale_mm = rng.uniform(0.08, 0.25), rng.uniform(1.0, 3.0)
            self.edge_soft_mm = float(rng.uniform(0.25, 0.45))
        else:   # long pile falls over the edges of the stripe
            rag_mm, rag_scale_mm = rng.uniform(0.3, 0.8), rng.uniform(1.5, 4.0)
            self.edge_soft_mm = float(rng.uniform(0.5, 0.9))
        # Pile covers at most 30 % of the line's width from either side: the line never pinches shut.
        cap = 0.3 * self.line_width_mm
        self._rag_top = np.clip(rag_mm * smooth_noise_1d(rng, n, rag_scale_mm / TILE_MM_PER_PX), -cap, cap)
        self._rag_bottom = np.clip(rag_mm * smooth_noise_1d(rng, n, rag_scale_mm / TILE_MM_PER_PX), -cap, cap)
        self.rag_mm = float(rag_mm)

        shape = (TILE_PX, TILE_PX)
        self.texture = self._make_rug_texture(rng, shape)
        self.line_texture = self._make_line_texture(rng, shape)
        self._padded = {}

    # ------------------------------------------------------------------------------------ geometry

    def _wobble(self, x):
        x = np.asarray(x, dtype=np.float64)
        return (self._wob_amp * np.sin(self._wob_k * x[..., None] + self._wob_phase)).sum(-1)

    def line_y(self, x_mm):
        """Centre of the cutting line at x (scalar -> float, array -> array)."""
        x = np.asarray(x_mm, dtype=np.float64)
        y = self.centre_y_mm + self._slope0 * (x - self._xc) + self._wobble(x) - self._wob_c
        return float(y) if y.ndim == 0 else y

    def line_slope(self, x_mm):
        """d line_y / dx at x (analytic)."""
        x = np.asarray(x_mm, dtype=np.float64)
        waves = self._wob_amp * self._wob_k * np.cos(self._wob_k * x[..., None] + self._wob_phase)
        d = self._slope0 + waves.sum(-1)
        return float(d) if d.ndim == 0 else d

    def edge_y(self, x_mm):
        """The outer edge: the one a camera sees first as the roll advances (the smaller y)."""
        y = np.asarray(self.line_y(x_mm)) - self.line_width_mm / 2
        return float(y) if y.ndim == 0 else y

    def _profile(self, prof, x_mm):
        x = np.asarray(x_mm, dtype=np.float64)
        idx = (x - self._prof_x0) / TILE_MM_PER_PX
        return np.interp(idx, np.arange(len(prof)), prof)

    def stripe_edges(self, x_mm):
        """Visible top and bottom edge of the stripe at x: the smooth line plus ragged pile (zero mean)."""
        c = np.asarray(self.line_y(x_mm))
        half = self.line_width_mm / 2
        return (c - half + self._profile(self._rag_top, x_mm),
                c + half + self._profile(self._rag_bottom, x_mm))

    def contrast_along(self, x_mm):
        return self._profile(self._contrast_x, x_mm)

    # ------------------------------------------------------------------------------------- texture

    def _make_rug_texture(self, rng, shape):
        mm = 1.0 / TILE_MM_PER_PX
        if self.kind == "S1":
            # Short dense pile: fine regular tufts, low contrast.
            fine = periodic_noise(rng, shape, rng.uniform(0.3, 0.5) * mm)
            tufts = weave(shape, rng.uniform(1.2, 2.0) * mm, rng, jitter=rng.uniform(0.3, 1.0))
            low = periodic_noise(rng, shape, 8.0 * mm)
            tex = (1.0 + rng.uniform(0.03, 0.06) * fine + rng.uniform(0.02, 0.05) * tufts
                   + rng.uniform(0.01, 0.03) * low)
        else:
            # Long / looped pile: coarse noisy clumps, loops with a highlight and a shadow, some blobs.
            coarse = periodic_noise(rng, shape, rng.uniform(1.2, 2.5) * mm)
            fine = periodic_noise(rng, shape, 0.4 * mm)
            blobs = periodic_noise(rng, shape, rng.uniform(5.0, 10.0) * mm)
            loops = self._loops(rng, shape, density_per_mm2=rng.uniform(0.08, 0.2),
                                size_mm=rng.uniform(1.5, 3.5))
            tex = (1.0 + rng.uniform(0.08, 0.16) * coarse + 0.04 * fine
                   + rng.uniform(0.10, 0.25) * loops
                   + rng.uniform(0.08, 0.15) * np.tanh(2.0 * (blobs - 1.0)))
        tex = cv2.GaussianBlur(tex.astype(np.float32), (0, 0), 0.6)   # lens blur (seams < 1 px, unseen)
        return np.clip(tex / tex.mean(), 0.2, 2.5).astype(np.float32)

    def _loops(self, rng, shape, density_per_mm2, size_mm):
        h, w = shape
        pad = 32
        canvas = np.zeros((h + 2 * pad, w + 2 * pad), np.float32)
        n = int(density_per_mm2 * h * w * TILE_MM_PER_PX ** 2)
        cx = rng.uniform(pad, w + pad, n)
        cy = rng.uniform(pad, h + pad, n)
        ax = rng.uniform(0.6, 1.4, n) * size_mm / TILE_MM_PER_PX / 2
        ay = ax * rng.uniform(0.5, 1.0, n)
        ang = rng.uniform(0, 180, n)
        val = rng.uniform(0.5, 1.0, n)
        sh = 4   # cv2 sub-pixel shift bits
        for i in range(n):
            c = (int(cx[i] * 16), int(cy[i] * 16))
            axes = (max(1, int(ax[i] * 16)), max(1, int(ay[i] * 16)))
            cv2.ellipse(canvas, c, axes, float(ang[i]), 0, 360, float(val[i]), 2, cv2.LINE_AA, sh)
            shadow = (c[0] + 16, c[1] + 24)
            cv2.ellipse(canvas, shadow, axes, float(ang[i]), 20, 160, -0.6 * float(val[i]), 2,
                        cv2.LINE_AA, sh)
        loops = fold_pad(canvas, pad)
        return loops - loops.mean()

    def _make_line_texture(self, rng, shape):
        # The line is the base weave without pile: threads along x (weft) over a finer warp, plus noise.
        h, w = shape
        mm = 1.0 / TILE_MM_PER_PX
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        ny = round(h / (rng.uniform(0.7, 1.3) * mm))
        nx = round(w / (rng.uniform(0.5, 0.9) * mm))
        wander = periodic_noise(rng, shape, 40.0) * 0.6
        weft = np.cos(2 * np.pi * ny * yy / h + wander)
        warp = np.cos(2 * np.pi * nx * xx / w)
        noise = periodic_noise(rng, shape, 0.5 * mm)
        a = rng.uniform(0.04, 0.12) if self.kind == "S1" else rng.uniform(0.06, 0.16)
        tex = 1.0 + a * weft + 0.3 * a * warp * (weft > 0) + 0.04 * noise
        tex = cv2.GaussianBlur(tex.astype(np.float32), (0, 0), 0.6)
        return np.clip(tex / tex.mean(), 0.2, 2.5).astype(np.float32)

    def plain(self):
        """A copy with the same geometry but untextured: even pile on both sides, a line half as
        bright. The stripe alone, for checking where it is drawn."""
        c = copy.copy(self)
        c.texture = np.ones_like(self.texture)
        c.line_texture = np.ones_like(self.line_texture)
        c.side_gain = np.ones_like(self.side_gain)
        c.line_bgr = self.rug_bgr * 0.5
        c._padded = {}
        return c

    def window(self, tile_name, iu, iv, w, h):
        """w x h tile pixels starting at tile pixel (iu, iv), wrapping around the tile."""
        tile = self.texture if tile_name == "rug" else self.line_texture
        th, tw = tile.shape
        iu, iv = iu % tw, iv % th
        if w <= TILE_PAD_PX and h <= TILE_PAD_PX:
            p = self._padded.get(tile_name)
            if p is None:
                p = np.pad(tile, ((0, TILE_PAD_PX), (0, TILE_PAD_PX)), mode="wrap")
                self._padded[tile_name] = p
            return p[iv:iv + h, iu:iu + w]
        rows = (iv + np.arange(h)) % th   # a very wide view: slower, but still correct
        cols = (iu + np.arange(w)) % tw
        return tile[np.ix_(rows, cols)]

    def __repr__(self):
        return f"Rug({self.kind!r}, {self.seed}, width_mm={self.width_mm})"
