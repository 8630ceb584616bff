"""The classical baseline: finds the cutting line with plain image processing, no learning.

Same frames and outputs as the two models (BGR uint8, 0.25 mm per pixel, the view centre at pixel
(160, 120)): `search(frame) -> (visible, edge_mm)` and `track(frame) -> (offset_mm, angle_deg)`.

Method: the stripe is a band a few mm high, nearly horizontal, that differs from the rug on *both*
sides in brightness and/or texture. The frame is cut into 8 vertical strips; each strip gives three
row profiles (brightness, fine-texture energy, and how horizontal the fine texture is: the line's
base weave runs along x, pile is isotropic). A band template (inside rows vs. the rows just above and
just below) is scored at every row and band height; a score counts only where the band differs from
both sides in the same direction, so a lighting step or a change of shade between the two rugs
alone does not score. Strip scores are summed along straight lines (a coarse Hough over row and
slope, one band height for all strips); the best line is refined with each strip's sub-row peak and
a weighted least-squares fit. The outer edge is then located on its own, as the strongest step into
the band near the band's top. VISIBLE_SCORE was tuned on training seeds only; train_models.py
reports the held-out numbers next to the models'. About 10 ms per frame in numpy/OpenCV.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

MM_PER_PX = 0.25
STRIPS = 8
WIDTHS = np.arange(9, 29)      # band heights tried, px (3-6 mm = 12-24 px, plus blur)
SIDE_PX = 8                    # rows compared above and below the band
VISIBLE_SCORE = 1.4            # tuned on training seeds: train_models.py --tune-baseline
EDGE_MARGIN_PX = 4


def _profiles(frame):
    """Row profiles per strip, (H, STRIPS) each: brightness, fine texture energy, and how horizontal
    the fine texture is (the stripe's base weave has threads along x; pile is isotropic)."""
    g = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY).astype(np.float32)
    h = g.shape[0]
    gs = cv2.GaussianBlur(g, (0, 0), sigmaX=2.0, sigmaY=0.8)
    gy = np.abs(cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3))
    gx = np.abs(cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3))
    aniso = (gy - gx) / (cv2.GaussianBlur(gy + gx, (0, 0), 8.0) + 4.0)
    area = lambda a: cv2.resize(a, (STRIPS, h), interpolation=cv2.INTER_AREA)
    # Strip means by INTER_AREA resizing to STRIPS columns; the texture features get a little
    # vertical smoothing (they are noisy pixel by pixel).
    return [area(gs), cv2.GaussianBlur(area(gy + gx), (1, 0), 0.1, sigmaY=1.2),
            cv2.GaussianBlur(area(aniso), (1, 0), 0.1, sigmaY=1.2)]


def _noise(p):
    # Robust spread of the profile's small-scale changes: what a band must stand out from.
    d = p[SIDE_PX:] - p[:-SIDE_PX]
    return 1.4826 * np.median(np.abs(d - np.median(d, axis=0)), axis=0) + 1e-3


def _band_scores(p):
    """score[w_index, r, k]: how much rows r..r+w-1 of strip k stand out from both sides, in noise
    units, signed by the band's direction (+ = brighter / more textured than its sides)."""
    h, k = p.shape
    cs = np.vstack([np.zeros((1, k), np.float32), np.cumsum(p, axis=0, dtype=np.float32)])
    b = SIDE_PX
    r = np.arange(h)[None, :]
    w = WIDTHS[:, None]
    end = np.minimum(r + w, h)
    inside = (cs[end] - cs[r]) / np.maximum(end - r, 1)[..., None]
    above = (cs[r] - cs[np.maximum(r - b, 0)]) / b
    below = (cs[np.minimum(r + w + b, h)] - cs[end]) / b
    da, db = inside - above, inside - below
    both = np.where(da * db > 0, np.sign(da) * np.minimum(np.abs(da), np.abs(db)), 0.0)
    # The band running out of the bottom of the frame (the line coming in during a search): compare
    # with the rows above only, at a discount for the missing side, and only where those rows are
    # plain rug (like the rows above them), not the stripe itself with darker rug below it.
    above2 = (cs[np.maximum(r - b, 0)] - cs[np.maximum(r - 2 * b, 0)]) / b
    plain = np.abs(above - above2) < 0.5 * np.abs(da)
    full = (r >= b) & (r + w + b <= h)
    cut = ((r >= 2 * b) & (r + w > h) & (r < h - 6))[..., None] & plain
    out = np.where(full[..., None], both, np.where(cut, 0.6 * da, 0.0))
    return (out / _noise(p)).astype(np.float32)


def _steps(p):
    """step[r, k]: mean of rows r..r+5 minus mean of rows r-6..r-1, in noise units."""
    h, k = p.shape
    cs = np.vstack([np.zeros((1, k), np.float32), np.cumsum(p, axis=0, dtype=np.float32)])
    n = 6
    r = np.arange(n, h - n + 1)
    out = np.zeros((h, k), np.float32)
    out[r] = ((cs[r + n] - cs[r]) - (cs[r] - cs[r - n])) / n
    return out / _noise(p)


SLOPES = np.linspace(-0.075, 0.075, 13)   # +-4.3 degrees, the coarse search
CAP = 8.0                                  # one strip's score counts at most this much


def _peak_near(values: np.ndarray, centre: float, reach: int):
    """The strongest row of one strip's profile within `reach` rows of `centre`, placed to a fraction of
    a row by a parabola through its neighbours: (row, height), or None when the window is empty."""
    lo, hi = max(1, int(math.floor(centre)) - reach), min(len(values) - 2, int(math.ceil(centre)) + reach)
    if lo > hi:
        return None
    r = lo + int(np.argmax(values[lo:hi + 1]))
    y0, y1, y2 = values[r - 1], values[r], values[r + 1]
    den = y0 - 2 * y1 + y2
    return r + (float(np.clip(0.5 * (y0 - y2) / den, -0.5, 0.5)) if den < 0 else 0.0), y1


def _detect(frame):
    """(score, centre_row_at_col_160, top_row_at_col_160, slope)."""
    h, w_img = frame.shape[:2]
    feats = _profiles(frame)
    bands = [_band_scores(p) for p in feats]                           # (widths, rows, strips) each
    s = np.minimum(np.sqrt(sum(b * b for b in bands)), CAP)
    cols = (np.arange(STRIPS) + 0.5) * w_img / STRIPS - 0.5
    # Coarse Hough: sum the strip scores along straight lines (row of the band top at col 160, slope).
    k_idx = np.arange(STRIPS)[None, :]
    r_idx = np.arange(h)[:, None]
    best = (-1.0, 0, 0, 0.0)
    for slope in SLOPES:
        rows = np.clip(np.rint(r_idx + slope * (cols[None, :] - 160.0)).astype(int), 0, h - 1)
        acc = s[:, rows, k_idx].sum(axis=2)                              # (widths, rows)
        wi, r = np.unravel_index(int(np.argmax(acc)), acc.shape)
        if acc[wi, r] > best[0]:
            best = (float(acc[wi, r]), int(wi), int(r), float(slope))
    total, wi, r_c, slope = best
    w = int(WIDTHS[wi])
    sw = s[wi]
    # Refine: each strip's peak within 3 px of the coarse line, sub-pixel by a parabola, then a
    # weighted least-squares line through them.
    tops, weights = np.zeros(STRIPS), np.zeros(STRIPS)
    for k in range(STRIPS):
        peak = _peak_near(sw[:, k], r_c + slope * (cols[k] - 160.0), 3)
        if peak is not None:
            tops[k], weights[k] = peak
    if weights.sum() > 0 and (weights > 0).sum() >= 3:
        x = cols - 160.0
        sw_, sx, sy = weights.sum(), (weights * x).sum(), (weights * tops).sum()
        sxx, sxy = (weights * x * x).sum(), (weights * x * tops).sum()
        det = sw_ * sxx - sx * sx
        if det > 1e-9:
            slope = float(np.clip((sw_ * sxy - sx * sy) / det, -0.1, 0.1))
            r_c = (sy - slope * sx) / sw_
    centre = r_c - 0.5 + w / 2.0         # the band starts at row r: its edge is half a row above
    # The top edge on its own: per strip, the strongest step into the band (each feature signed by
    # the band's direction) within 4 px of the band's top, fitted with the same slope.
    r_top = int(np.clip(round(r_c), 0, h - 1))
    at_line = [np.median([b[wi, min(h - 1, max(0, int(round(r_top + slope * (c - 160.0))))), k]
                          for k, c in enumerate(cols)]) for b in bands]
    # Brightness gives the sharpest edge; the texture features smear it (and peak on the edge
    # itself), so they are used only when brightness alone does not show the band.
    use = [0] if abs(at_line[0]) >= 3.0 else [0, 1, 2]
    step = sum(np.sign(at_line[i]) * _steps(feats[i]) for i in use)
    edges, ew = [], []
    for k in range(STRIPS):
        peak = _peak_near(step[:, k], r_c + slope * (cols[k] - 160.0), 4)
        if peak is not None and peak[1] > 0:
            edges.append(peak[0] - 0.5 - slope * (cols[k] - 160.0))
            ew.append(peak[1])
    top = float(np.average(edges, weights=ew)) if len(edges) >= 3 else r_c - 0.5
    return total / STRIPS, centre, top, slope


def search(frame):
    """(visible, edge_mm): is the line's outer (top) edge in the frame, and where, relative to the
    centre row at the centre column (+ = below)."""
    h = frame.shape[0]
    score, _, top, _ = _detect(frame)
    visible = score >= VISIBLE_SCORE and EDGE_MARGIN_PX <= top <= h - 1 - EDGE_MARGIN_PX
    edge = (top - h / 2) * MM_PER_PX
    return bool(visible), float(np.clip(edge, -30.0, 30.0))


def track(frame):
    """(offset_mm, angle_deg): the line's centre relative to the centre row at the centre column, and
    its angle in the image (+ = descends to the right)."""
    h = frame.shape[0]
    _, centre, _, slope = _detect(frame)
    return float((centre - h / 2) * MM_PER_PX), float(math.degrees(math.atan(slope)))


def detection_score(frame):
    """The search score alone (for tuning VISIBLE_SCORE)."""
    return _detect(frame)[0]
