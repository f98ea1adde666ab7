"""Procedural facades: a CMP-Facades-like paired dataset drawn with numpy (no TensorFlow).

Each seed gives one building front: a label map in the 12 CMP classes (side B, coloured
with :data:`p2p_jax.data.facade_labels.PALETTE`) and a photo-like rendering of it (side A).

The layout (sky, roof, neighbouring buildings, floors, a grid of windows, doors or a shop
front, moldings, cornices, sills, balconies, shutters, pillars, ornaments) is drawn in
continuous image coordinates, so one seed gives the same scene at every resolution. The
rendering is deliberately *not* a per-pixel function of the labels: wall colour and
texture (plaster, bricks, rusticated stone), window glass (sky reflections, highlights,
curtains, frames and mullions), door and shutter colours, lighting gradients, cast
shadows, colour grading and sensor noise all vary per image or per element. A model that
minimises L1 alone must average over these and blurs, as in the pix2pix paper.

Everything is vectorised numpy; a 256 px pair takes a few milliseconds to tens of
milliseconds on one CPU core.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Iterator

import numpy as np

from p2p_jax.data import facade_labels as fl

SPLITS = ('train', 'test', 'validation')
_SEEDS_PER_SPLIT = 1 << 30  # Seed slots per (base_seed, split): disjoint by construction.

# ------------------------------------------------------------------------------------
# Colour tables (linear-ish RGB in [0, 1]).

_WALL_COLOURS = np.array([
    (0.86, 0.82, 0.70),  # cream
    (0.80, 0.72, 0.58),  # beige
    (0.80, 0.64, 0.40),  # ochre
    (0.90, 0.83, 0.58),  # pale yellow
    (0.84, 0.63, 0.52),  # salmon
    (0.90, 0.89, 0.86),  # white
    (0.64, 0.63, 0.61),  # grey
    (0.72, 0.77, 0.66),  # pale green
    (0.62, 0.67, 0.73),  # blue-grey
    (0.58, 0.45, 0.35),  # brown
    (0.62, 0.32, 0.24),  # brick red
    (0.70, 0.42, 0.30),  # light brick
], np.float32)
_BRICKY = (9, 10, 11)  # Wall colours that are usually brick.
_STONE_COLOURS = np.array([
    (0.88, 0.86, 0.80), (0.78, 0.75, 0.68), (0.70, 0.68, 0.64), (0.85, 0.80, 0.68),
    (0.92, 0.92, 0.90), (0.66, 0.60, 0.52)], np.float32)
_FRAME_COLOURS = np.array([
    (0.92, 0.92, 0.90), (0.92, 0.92, 0.90), (0.30, 0.22, 0.16), (0.20, 0.20, 0.20),
    (0.55, 0.40, 0.28), (0.35, 0.42, 0.35)], np.float32)
_DOOR_COLOURS = np.array([
    (0.32, 0.20, 0.12), (0.45, 0.30, 0.18), (0.16, 0.28, 0.18), (0.40, 0.12, 0.10),
    (0.22, 0.22, 0.24), (0.18, 0.24, 0.38), (0.55, 0.45, 0.35)], np.float32)
_SHUTTER_COLOURS = np.array([
    (0.24, 0.40, 0.26), (0.40, 0.28, 0.18), (0.85, 0.85, 0.82), (0.50, 0.52, 0.54),
    (0.35, 0.45, 0.55), (0.50, 0.20, 0.16), (0.70, 0.62, 0.40)], np.float32)
_SIGN_COLOURS = np.array([
    (0.70, 0.10, 0.10), (0.10, 0.30, 0.15), (0.10, 0.18, 0.45), (0.08, 0.08, 0.08),
    (0.92, 0.92, 0.90), (0.85, 0.60, 0.10), (0.45, 0.10, 0.35)], np.float32)
_ROOF_COLOURS = np.array([
    (0.45, 0.20, 0.15), (0.30, 0.30, 0.32), (0.22, 0.22, 0.25), (0.50, 0.30, 0.22)],
    np.float32)


# ------------------------------------------------------------------------------------
# Resolution-independent noise.


class _Noise:
  """Smooth value noise: random grids drawn once, evaluated at any resolution."""

  def __init__(self, rng: np.random.Generator, cells: list[tuple[int, int]],
               gain: float = 0.5):
    self.cells = cells  # (rows, cols) of each octave, coarse to fine.
    self.grids = [rng.standard_normal((r + 1, c + 1)).astype(np.float32) for r, c in cells]
    self.amps = [gain ** i for i in range(len(cells))]

  def field(self, u: np.ndarray, v: np.ndarray, res: int) -> np.ndarray:
    """[len(v), len(u)] field at image coordinates u (x) and v (y) in [0, 1]."""
    out = np.zeros((len(v), len(u)), np.float32)
    total = 0.0
    for (r, c), g, a in zip(self.cells, self.grids, self.amps):
      # Fade octaves finer than ~3 pixels (they would only alias).
      fade = min(max(res / (3.0 * max(r, c)) - 0.5, 0.0), 1.0)
      total += a * a
      if fade == 0.0:
        continue
      # Separable interpolation, rows then columns (two nonzero weights per output).
      i, fi = _cell(v, r)
      j, fj = _cell(u, c)
      rows = g[i] * (1.0 - fi)[:, None] + g[i + 1] * fi[:, None]  # [len(v), c + 1]
      out += (a * fade) * (rows[:, j] * (1.0 - fj) + rows[:, j + 1] * fj)
    return out / np.float32(math.sqrt(total))


def _cell(t: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
  """Cell index and smoothstep weight of coordinates t in [0, 1] on n cells."""
  x = np.clip(t, 0.0, 1.0) * n
  i = np.minimum(np.floor(x).astype(np.int64), n - 1)
  f = (x - i).astype(np.float32)
  return i, f * f * (3.0 - 2.0 * f)


def _fade(period: float, res: int, lo: float = 1.5, hi: float = 3.0) -> float:
  """Contrast factor for a pattern of ``period`` (image units) at ``res`` pixels."""
  return min(max((period * res - lo) / (hi - lo), 0.0), 1.0)


# ------------------------------------------------------------------------------------
# Layout.


@dataclasses.dataclass
class _Elem:
  cls: int
  box: tuple[float, float, float, float]  # x0, y0, x1, y1 in [0, 1] image units.
  kind: str  # Material.
  p: dict = dataclasses.field(default_factory=dict)  # Per-element style.


def _u(rng, a, b):
  return float(rng.uniform(a, b))


def _pick(rng, table):
  return np.asarray(table[int(rng.integers(len(table)))], np.float32)


def _jitter_colour(rng, c, amount=0.06):
  return np.clip(c * (1.0 + rng.normal(0.0, amount, 3)) + rng.normal(0.0, amount / 2),
                 0.0, 1.0).astype(np.float32)


def _layout(rng: np.random.Generator):
  """Scene description: global style dict and elements in painting order."""
  s: dict = {}
  # --- Frame: sky, roof, neighbours, ground -------------------------------------------
  s['sky_h'] = sky_h = _u(rng, 0.03, 0.18)
  s['roof_h'] = roof_h = _u(rng, 0.03, 0.08) if rng.random() < 0.35 else 0.0
  top = sky_h + roof_h
  s['ml'] = ml = _u(rng, 0.03, 0.14) if rng.random() < 0.4 else 0.0
  s['mr'] = mr = _u(rng, 0.03, 0.14) if rng.random() < 0.4 else 0.0
  s['nb_top'] = (_u(rng, 0.0, top + 0.15), _u(rng, 0.0, top + 0.15))
  s['gh'] = gh = _u(rng, 0.02, 0.07) if rng.random() < 0.5 else 0.0
  bot = 1.0 - gh
  x0f, x1f = ml, 1.0 - mr
  s['facade'] = (x0f, top, x1f, bot)
  fw = x1f - x0f

  elems: list[_Elem] = []
  # --- Floors and columns -------------------------------------------------------------
  n_floors = int(rng.integers(3, 7))
  gf = _u(rng, 1.0, 1.5)  # Ground floor height relative to the upper ones.
  attic = _u(rng, 0.0, 0.05)
  fh = (bot - top - attic) / (n_floors - 1 + gf)
  n_cols = int(np.clip(round(fw / _u(rng, 0.14, 0.26)), 2, 7))
  side = _u(rng, 0.0, 0.5)
  cw = fw / (n_cols + 2 * side)
  col_x = x0f + cw * (side + np.arange(n_cols) + 0.5)  # Column centres.
  floor_y0 = [top + attic + i * fh for i in range(n_floors - 1)]  # Upper floors.
  ground_y0 = top + attic + (n_floors - 1) * fh
  s['ground_y0'] = ground_y0
  ww = _u(rng, 0.36, 0.62) * cw
  wh = _u(rng, 0.45, 0.66) * fh
  w_off = _u(rng, 0.14, 0.9 - wh / fh - 0.1) * fh  # Window top below the floor top.
  floor_scale = [(_u(rng, 0.8, 1.0) if rng.random() < 0.3 else 1.0)
                 for _ in range(n_floors - 1)]
  skip_p = _u(rng, 0.0, 0.12) if rng.random() < 0.3 else 0.0

  # Per-image style switches.
  has_molding = rng.random() < 0.75
  has_top_molding = rng.random() < 0.7
  has_cornice = rng.random() < 0.6
  has_sill = rng.random() < 0.9
  has_blinds = rng.random() < 0.18
  closed_p = _u(rng, 0.05, 0.4) if has_blinds else (0.08 if rng.random() < 0.2 else 0.0)
  balcony_mode = str(rng.choice(['none', 'none', 'window', 'floor']))
  has_pillars = rng.random() < 0.15
  has_deco = rng.random() < 0.45
  shop = rng.random() < 0.35
  s['rustic'] = rng.random() < 0.35

  # Moldings (long bands between floors), painted first.
  if has_top_molding:
    t = _u(rng, 0.015, 0.045)
    elems.append(_Elem(fl.MOLDING, (x0f, top, x1f, top + t), 'molding',
                       {'lines': int(rng.integers(1, 4))}))
  if has_molding:
    mt = _u(rng, 0.01, 0.03)
    for i in range(1, n_floors):
      y = top + attic + i * fh
      if i < n_floors - 1 and rng.random() < 0.3:
        continue
      elems.append(_Elem(fl.MOLDING, (x0f, y - mt, x1f, y), 'molding',
                         {'lines': int(rng.integers(1, 4))}))

  # Pillars between columns.
  if has_pillars:
    gap = cw - ww
    pw = _u(rng, 0.25, 0.6) * gap
    span = str(rng.choice(['ground', 'upper', 'all']))
    ya = {'ground': ground_y0, 'upper': floor_y0[min(1, len(floor_y0) - 1)],
          'all': top + attic}[span]
    yb = {'ground': bot, 'upper': ground_y0, 'all': bot}[span]
    every = int(rng.integers(1, 3))
    for k in range(0, n_cols + 1, every):
      xb = x0f + cw * (side + k)
      xa, xc = max(x0f, xb - pw / 2), min(x1f, xb + pw / 2)
      if xc - xa > 0.004:
        elems.append(_Elem(fl.PILLAR, (xa, ya, xc, yb), 'pillar', {}))

  # Shop front on the ground floor.
  gh_floor = bot - ground_y0
  doors: list[tuple[float, float, float, float]] = []
  if shop:
    sy0 = ground_y0 + _u(rng, 0.08, 0.22) * gh_floor
    n_seg = int(rng.integers(1, min(3, n_cols) + 1))
    bounds = np.linspace(0, n_cols, n_seg + 1)
    pad = _u(rng, 0.05, 0.3) * cw
    for a, b in zip(bounds[:-1], bounds[1:]):
      xa = x0f + cw * (side + a) + pad
      xb = x0f + cw * (side + b) - pad
      elems.append(_Elem(fl.SHOP, (xa, sy0, xb, bot), 'shop', {
          'sign': _pick(rng, _SIGN_COLOURS), 'lit': rng.random() < 0.5,
          'panes': int(rng.integers(1, 4)), 'sign_h': _u(rng, 0.15, 0.3),
          'text': rng.random((24,)) < 0.65}))
    if rng.random() < 0.6:  # A house door between/inside the shop fronts.
      k = int(rng.integers(n_cols))
      dw = _u(rng, 0.4, 0.6) * cw
      doors.append((col_x[k] - dw / 2, ground_y0 + _u(rng, 0.2, 0.35) * gh_floor,
                    col_x[k] + dw / 2, bot))
  else:
    n_doors = 1 if n_cols < 5 or rng.random() < 0.7 else 2
    ks = rng.choice(n_cols, size=n_doors, replace=False)
    if n_doors == 1 and rng.random() < 0.5:
      ks = np.array([n_cols // 2])
    dw = _u(rng, 0.45, 0.75) * cw
    dh = _u(rng, 0.6, 0.85) * gh_floor
    for k in ks:
      doors.append((col_x[k] - dw / 2, bot - dh, col_x[k] + dw / 2, bot))

  # Windows.
  win_style = {
      'frame': _pick(rng, _FRAME_COLOURS), 'ft': _u(rng, 0.003, 0.007),
      'nx': int(rng.integers(1, 4)), 'transom': _u(rng, 0.2, 0.35) if rng.random() < 0.4 else 0.0,
      'ny': int(rng.integers(1, 3)), 'glass': _u(rng, 0.08, 0.3),
      'refl': _u(rng, 0.1, 0.6), 'curtain_p': _u(rng, 0.0, 0.5)}
  s['win'] = win_style
  windows = []  # (box, floor index); floor -1 = ground
  rows = [(i, floor_y0[i], wh * floor_scale[i]) for i in range(n_floors - 1)]
  if not shop:
    rows.append((-1, ground_y0, wh * _u(rng, 0.9, 1.25)))
  door_cols = [int(np.argmin(np.abs(col_x - (d[0] + d[2]) / 2))) for d in doors]
  for fi, fy, h in rows:
    off = w_off if fi >= 0 else min(w_off, gh_floor - h - 0.15 * gh_floor)
    off = max(off, 0.05 * fh)
    for k in range(n_cols):
      if fi == -1 and k in door_cols:
        continue
      jx, jy = rng.normal(0.0, 0.012 * cw), rng.normal(0.0, 0.01 * fh)
      js = 1.0 + rng.normal(0.0, 0.025, 2)
      drop = rng.random() < skip_p
      w_, h_ = ww * js[0], h * js[1]
      box = (col_x[k] - w_ / 2 + jx, fy + off + jy, col_x[k] + w_ / 2 + jx, fy + off + jy + h_)
      elem = {'shade': _u(rng, -0.08, 0.08), 'curtain': rng.random() < win_style['curtain_p'],
              'curtain_kind': int(rng.integers(3)), 'hl': _u(rng, -0.6, 1.6),
              'closed': rng.random() < closed_p, 'open': rng.random() < 0.08}
      if not drop:
        windows.append((box, fi, elem))

  for box, fi, e in windows:
    if e['closed']:
      elems.append(_Elem(fl.BLIND, box, 'shutter', {'closed': True}))
    else:
      elems.append(_Elem(fl.WINDOW, box, 'window', e))
  door_style = {'col': _pick(rng, _DOOR_COLOURS), 'glass': rng.random() < 0.4,
                'panels': int(rng.integers(1, 3))}
  for d in doors:
    elems.append(_Elem(fl.DOOR, d, 'door', door_style))

  # Shutters beside windows.
  if has_blinds:
    bw = min(_u(rng, 0.35, 0.5) * ww, 0.45 * (cw - ww))
    for box, fi, e in windows:
      if e['closed'] or bw < 0.004 or rng.random() < 0.1:
        continue
      x0, y0, x1, y1 = box
      elems.append(_Elem(fl.BLIND, (x0 - bw, y0, x0, y1), 'shutter', {}))
      elems.append(_Elem(fl.BLIND, (x1, y0, x1 + bw, y1), 'shutter', {}))
  s['shutter'] = _pick(rng, _SHUTTER_COLOURS)
  s['slat'] = _u(rng, 0.006, 0.012)

  # Balconies (over the lower part of windows), sills, cornices, ornaments.
  bal_floors = set()
  if balcony_mode != 'none':
    for i in range(n_floors - 1):
      if rng.random() < 0.55:
        bal_floors.add(i)
  bal_h = _u(rng, 0.25, 0.45)
  bal_style = {'kind': str(rng.choice(['railing', 'parapet'])), 'bar': _u(rng, 0.006, 0.014),
               'metal': _pick(rng, _FRAME_COLOURS[2:]) * 0.6}
  sill_h = _u(rng, 0.008, 0.02)
  sill_e = _u(rng, 0.0, 0.15)
  corn_h = _u(rng, 0.01, 0.025)
  corn_e = _u(rng, 0.0, 0.2)
  deco_h = _u(rng, 0.015, 0.04)
  deco_w = _u(rng, 0.5, 1.1)
  for box, fi, e in windows:
    x0, y0, x1, y1 = box
    w = x1 - x0
    on_bal = fi in bal_floors and balcony_mode == 'window'
    if has_sill and not on_bal:
      elems.append(_Elem(fl.SILL, (x0 - sill_e * w, y1, x1 + sill_e * w, y1 + sill_h),
                         'ledge', {}))
    if has_cornice and fi >= 0:
      elems.append(_Elem(fl.CORNICE, (x0 - corn_e * w, y0 - corn_h, x1 + corn_e * w, y0),
                         'ledge', {'head': True}))
    if has_deco and fi >= 0:
      room = y0 - (corn_h if has_cornice else 0.0) - (floor_y0[fi] if fi >= 0 else y0)
      dh = min(deco_h, room - 0.004)
      if dh > 0.006:
        cx = (x0 + x1) / 2
        yb = y0 - (corn_h if has_cornice else 0.0)
        elems.append(_Elem(fl.DECO, (cx - deco_w * w / 2, yb - dh, cx + deco_w * w / 2, yb),
                           'deco', {}))
    if on_bal:
      e_ = _u(rng, 0.05, 0.2) * w
      elems.append(_Elem(fl.BALCONY, (x0 - e_, y1 - bal_h * (y1 - y0), x1 + e_, y1 + 0.01),
                         'balcony', bal_style))
  if balcony_mode == 'floor':
    for i in sorted(bal_floors):
      ys = [b[3] for b, fi, _ in windows if fi == i]
      if not ys:
        continue
      yb = float(np.median(ys)) + 0.01
      elems.append(_Elem(fl.BALCONY, (x0f + 0.3 * side * cw, yb - bal_h * wh - 0.01,
                                      x1f - 0.3 * side * cw, yb), 'balcony', bal_style))
  # Door heads.
  for d in doors:
    if has_cornice or rng.random() < 0.3:
      w = d[2] - d[0]
      elems.append(_Elem(fl.CORNICE, (d[0] - 0.1 * w, d[1] - corn_h, d[2] + 0.1 * w, d[1]),
                         'ledge', {'head': True}))

  # --- Materials and light --------------------------------------------------------------
  ci = int(rng.integers(len(_WALL_COLOURS)))
  s['wall'] = _jitter_colour(rng, _WALL_COLOURS[ci], 0.07)
  s['brick'] = rng.random() < (0.75 if ci in _BRICKY else 0.1)
  s['brick_h'] = _u(rng, 0.009, 0.016)
  s['brick_w'] = s['brick_h'] * _u(rng, 2.0, 3.2)
  s['mortar'] = _pick(rng, [(0.75, 0.72, 0.66), (0.55, 0.53, 0.50), (0.85, 0.84, 0.80)])
  s['wall_var'] = _u(rng, 0.03, 0.12)
  s['stone'] = _jitter_colour(rng, _pick(rng, _STONE_COLOURS), 0.05)
  if rng.random() < 0.4:  # Trim in the wall colour, lighter.
    s['stone'] = np.clip(s['wall'] * _u(rng, 1.05, 1.2), 0, 1).astype(np.float32)
  s['neighbour'] = [_jitter_colour(rng, _pick(rng, _WALL_COLOURS), 0.1) * _u(rng, 0.6, 0.95)
                    for _ in range(2)]
  s['nb_windows'] = [rng.random() < 0.5 for _ in range(2)]
  s['roof'] = _jitter_colour(rng, _pick(rng, _ROOF_COLOURS), 0.08)
  s['ground'] = np.full(3, _u(rng, 0.25, 0.5), np.float32) * (1 + rng.normal(0, 0.03, 3))
  s['sunny'] = sunny = rng.random() < 0.6
  if sunny:
    s['sky_top'] = np.array([_u(rng, 0.25, 0.5), _u(rng, 0.45, 0.65), _u(rng, 0.75, 0.95)],
                            np.float32)
  else:
    g = _u(rng, 0.6, 0.85)
    s['sky_top'] = np.array([g, g + 0.01, g + 0.03], np.float32)
  s['sky_hor'] = np.clip(s['sky_top'] + _u(rng, 0.1, 0.3), 0, 1).astype(np.float32)
  s['clouds'] = _u(rng, 0.0, 0.8)
  s['light'] = (_u(rng, -0.3, 0.3), _u(rng, -0.25, 0.25)) if sunny else (
      _u(rng, -0.1, 0.1), _u(rng, -0.15, 0.1))
  s['ledge_shadow'] = _u(rng, 0.55, 0.8) if sunny else _u(rng, 0.8, 0.92)
  s['sun_side'] = 1.0 if rng.random() < 0.5 else -1.0  # Reveal shadow side in windows.
  if sunny and rng.random() < 0.35:
    a = _u(rng, 0.2, 1.3) * (1 if rng.random() < 0.5 else -1)
    s['cast'] = (math.cos(a), math.sin(a), _u(rng, 0.4, 1.1), _u(rng, 0.5, 0.75))
  else:
    s['cast'] = None
  s['wedge'] = ((int(rng.integers(4)), _u(rng, 0.05, 0.25), _u(rng, 0.05, 0.5),
                 _u(rng, 0.0, 0.5)) if rng.random() < 0.25 else None)
  s['exposure'] = _u(rng, 0.85, 1.12)
  s['gains'] = (1.0 + rng.normal(0.0, 0.04, 3)).astype(np.float32)
  s['gamma'] = _u(rng, 0.85, 1.2)
  s['noise'] = _u(rng, 0.004, 0.025)
  s['n_lo'] = _Noise(rng, [(2, 2), (4, 4), (8, 8), (16, 16)], 0.6)
  s['n_hi'] = _Noise(rng, [(24, 24), (48, 48), (96, 96)], 0.7)
  s['n_streak'] = _Noise(rng, [(3, 40), (6, 80)], 0.6)
  s['n_cloud'] = _Noise(rng, [(2, 3), (4, 6), (8, 12), (16, 24)], 0.55)
  s['brick_tab'] = rng.normal(0.0, 1.0, (int(1 / s['brick_h']) + 3,
                                         int(1 / s['brick_w']) + 3)).astype(np.float32)
  s['letters'] = rng.random((64, 8))
  return s, elems


# ------------------------------------------------------------------------------------
# Rendering.


def _span(a: float, b: float, res: int) -> slice:
  """Pixels whose centres lie in [a, b)."""
  i0 = min(max(math.ceil(a * res - 0.5), 0), res)
  i1 = min(max(math.ceil(b * res - 0.5), 0), res)
  return slice(i0, max(i0, i1))


class _Canvas:

  def __init__(self, res: int, s: dict):
    self.res = res
    self.u = ((np.arange(res) + 0.5) / res).astype(np.float32)
    self.v = self.u
    self.img = np.zeros((res, res, 3), np.float32)
    self.shade = np.ones((res, res), np.float32)
    self.s = s
    self.lo = s['n_lo'].field(self.u, self.v, res)
    self.hi = s['n_hi'].field(self.u, self.v, res)

  def region(self, box):
    x0, y0, x1, y1 = box
    ys, xs = _span(y0, y1, self.res), _span(x0, x1, self.res)
    uu = ((self.u[xs] - x0) / max(x1 - x0, 1e-6))[None, :]
    vv = ((self.v[ys] - y0) / max(y1 - y0, 1e-6))[:, None]
    return ys, xs, uu, vv

  def shadow_below(self, box, depth, strength):
    """Soft shadow cast by a protruding element onto what lies under it."""
    x0, _, x1, y1 = box
    ys, xs, _, vv = self.region((x0 + 0.002, y1, x1 + 0.004, y1 + depth))
    if ys.stop > ys.start and xs.stop > xs.start:
      self.shade[ys, xs] *= 1.0 - (1.0 - strength) * (1.0 - vv) ** 1.5


def _render_background(c: _Canvas):
  s, u, v, res = c.s, c.u[None, :], c.v[:, None], c.res
  x0f, top, x1f, bot = s['facade']
  # Sky with clouds.
  t = np.clip(v / max(top + 0.1, 0.1), 0, 1)[..., None]
  sky = s['sky_top'] * (1 - t) + s['sky_hor'] * t
  cl = s['n_cloud'].field(c.u, c.v, res)
  cloud = np.clip((cl - (1.0 - s['clouds'])) * 1.5, 0, 1)[..., None]
  c.img[:] = sky * (1 - cloud) + np.float32(0.93) * cloud
  # Roof band.
  if s['roof_h'] > 0:
    ys, xs, _, vv = c.region((0.0, s['sky_h'], 1.0, top))
    tiles = 1.0 - 0.2 * _fade(0.012, res) * (np.mod(c.v[ys] / 0.012, 1.0) < 0.25)[:, None]
    c.img[ys, xs] = s['roof'] * (tiles * (0.85 + 0.25 * vv) * (1 + 0.1 * c.hi[ys, xs]))[..., None]
  # Neighbouring buildings at the sides.
  for side, (a, b) in enumerate(((0.0, x0f), (x1f, 1.0))):
    if b - a <= 0:
      continue
    ys, xs, _, _ = c.region((a, s['nb_top'][side], b, 1.0))
    col = s['neighbour'][side]
    tex = 1.0 + 0.08 * c.lo[ys, xs] + 0.04 * c.hi[ys, xs]
    if s['nb_windows'][side]:
      p = 0.09
      win = ((np.mod(c.v[ys] / p, 1.0) > 0.35)[:, None]
             & (np.mod(c.u[xs] / 0.06 + 0.3 * side, 1.0) > 0.45)[None, :])
      tex = np.where(win, 0.35, tex)
    c.img[ys, xs] = col * tex[..., None]
  # Street.
  if s['gh'] > 0:
    ys, xs, _, vv = c.region((0.0, bot, 1.0, 1.0))
    c.img[ys, xs] = s['ground'] * (0.9 + 0.2 * vv + 0.08 * c.hi[ys, xs])[..., None]


def _render_wall(c: _Canvas):
  s, res = c.s, c.res
  box = s['facade']
  ys, xs, _, _ = c.region(box)
  u, v = c.u[xs][None, :], c.v[ys][:, None]
  lo, hi = c.lo[ys, xs], c.hi[ys, xs]
  streak = s['n_streak'].field(c.u[xs], c.v[ys], res)
  col = s['wall'][None, None, :] * (1.0 + s['wall_var'] * lo + 0.04 * hi
                                   - 0.05 * np.clip(streak, 0, None))[..., None]
  if s['brick']:
    bh, bw = s['brick_h'], s['brick_w']
    row = np.floor(v / bh).astype(np.int64)
    off = (row % 2) * 0.5 * bw
    uu = u + off
    colx = np.floor(uu / bw).astype(np.int64)
    tab = s['brick_tab']
    jit = tab[np.clip(row, 0, tab.shape[0] - 1), np.clip(colx, 0, tab.shape[1] - 1)]
    f = _fade(bh, res)
    col = col * (1.0 + 0.09 * f * jit)[..., None]
    mortar = (np.mod(v / bh, 1.0) < 0.18) | (np.mod(uu / bw, 1.0) < 0.07)
    col = np.where(mortar[..., None], col * (1 - 0.5 * f) + s['mortar'] * 0.5 * f, col)
  c.img[ys, xs] = col
  # Rusticated ground floor (stone courses with dark joints).
  if s['rustic']:
    bot = box[3]
    ys2 = _span(s['ground_y0'], bot, res)
    v2 = c.v[ys2][:, None]
    f = _fade(0.03, res)
    joint = (np.mod(v2 / 0.03, 1.0) < 0.15)
    c.img[ys2, xs] *= (1.0 - 0.35 * f * joint)[..., None]


def _glass(c, ys, xs, uu, vv, p):
  s = c.s
  s_win = s['win']
  base = s_win['glass'] * (1.0 + p['shade'])
  sky = s['sky_hor'] * s_win['refl']
  refl = (1.0 - vv) ** 1.5 * 0.8 + 0.2
  g = base * np.array([0.85, 0.95, 1.1], np.float32) + sky * refl[..., None]
  hl = np.exp(-(((uu * 0.8 + vv * 0.6) - p['hl']) / 0.12) ** 2) * 0.35 * s_win['refl']
  g = g + hl[..., None]
  if p['open']:
    g = g * 0.4
  if p['curtain']:
    folds = 0.85 + 0.15 * np.sin(uu * 40.0)
    if p['curtain_kind'] == 0:
      m = vv < 0.35
    elif p['curtain_kind'] == 1:
      m = (uu < 0.25) | (uu > 0.75)
    else:
      m = np.ones_like(uu * vv, bool)
    cc = np.array([0.88, 0.85, 0.78], np.float32) * (folds[..., None]
                                                      * np.ones_like(vv)[..., None])
    g = np.where(m[..., None], 0.6 * cc + 0.3 * g, g)
  return g + 0.03 * c.hi[ys, xs][..., None]


def _render_window(c: _Canvas, e: _Elem):
  ys, xs, uu, vv = c.region(e.box)
  if ys.stop <= ys.start or xs.stop <= xs.start:
    return
  x0, y0, x1, y1 = e.box
  w, h = x1 - x0, y1 - y0
  st = c.s['win']
  col = _glass(c, ys, xs, uu, vv, e.p)
  # Frame and mullions (absolute thickness, faded when sub-pixel).
  ft = st['ft']
  fu, fv = ft / w, ft / h
  frame = (uu < fu) | (uu > 1 - fu) | (vv < fv) | (vv > 1 - fv)
  for k in range(1, st['nx']):
    frame = frame | (np.abs(uu - k / st['nx']) < fu / 2)
  if st['transom'] > 0:
    frame = frame | (np.abs(vv - st['transom']) < fv / 2)
  elif st['ny'] > 1:
    frame = frame | (np.abs(vv - 0.5) < fv / 2)
  f = _fade(ft, c.res, 0.3, 1.5)
  col = np.where(frame[..., None], (1 - f) * col + f * st['frame'], col)
  c.img[ys, xs] = col
  # Reveal shadows: the recess darkens the top and the sun-facing side.
  side = (1 - uu) if c.s['sun_side'] > 0 else uu
  rv = np.minimum(1.0, 0.55 + 0.45 * np.clip(vv / 0.12, 0, 1)) * np.minimum(
      1.0, 0.7 + 0.3 * np.clip((1 - side) / 0.12, 0, 1))
  c.shade[ys, xs] *= rv


def _render_door(c: _Canvas, e: _Elem):
  ys, xs, uu, vv = c.region(e.box)
  p = e.p
  col = p['col'] * (1.0 + 0.06 * c.hi[ys, xs] + 0.05 * c.lo[ys, xs])[..., None]
  inset = (uu > 0.14) & (uu < 0.86) & (vv > 0.08) & (vv < 0.94)
  if p['panels'] == 2:
    inset &= np.abs(uu - 0.5) > 0.04
  edge = inset & ~((uu > 0.18) & (uu < 0.82) & (vv > 0.11) & (vv < 0.91)
                   & ((np.abs(uu - 0.5) > 0.08) if p['panels'] == 2 else True))
  col = col * np.where(edge, 0.7, 1.0)[..., None]
  if p['glass']:
    gl = inset & (vv < 0.42) & ~edge
    col = np.where(gl[..., None], c.s['sky_hor'] * 0.35 + 0.05, col)
  frame = (uu < 0.06) | (uu > 0.94) | (vv < 0.04)
  col = np.where(frame[..., None], col * 0.6, col)
  c.img[ys, xs] = col
  c.shade[ys, xs] *= np.minimum(1.0, 0.6 + 0.4 * np.clip(vv / 0.08, 0, 1))


def _render_shutter(c: _Canvas, e: _Elem):
  ys, xs, uu, vv = c.region(e.box)
  s = c.s
  slat = s['slat']
  f = _fade(slat, c.res)
  lines = np.mod(c.v[ys] / slat, 1.0)[:, None]
  tex = 1.0 - 0.25 * f * (lines < 0.3) + 0.05 * c.hi[ys, xs]
  frame = (uu < 0.07) | (uu > 0.93) | (vv < 0.03) | (vv > 0.97)
  if e.p.get('closed'):
    frame = frame | (np.abs(uu - 0.5) < 0.03)
  tex = np.where(frame, 0.85, tex)
  c.img[ys, xs] = s['shutter'] * tex[..., None]


def _render_ledge(c: _Canvas, e: _Elem):
  """Sills and window heads: stone, lit top edge, dark lower edge, shadow below."""
  ys, xs, uu, vv = c.region(e.box)
  s = c.s
  prof = np.where(vv < 0.3, 1.12, np.where(vv > 0.75, 0.8, 1.0))
  col = s['stone'] * (prof * (1.0 + 0.05 * c.hi[ys, xs]))[..., None]
  c.img[ys, xs] = col
  h = e.box[3] - e.box[1]
  c.shadow_below(e.box, 1.5 * h + 0.004, s['ledge_shadow'])


def _render_molding(c: _Canvas, e: _Elem):
  ys, xs, uu, vv = c.region(e.box)
  s = c.s
  k = e.p['lines']
  prof = 1.0 + 0.1 * np.cos(2 * np.pi * vv * k) - 0.25 * (vv > 0.8) + 0.1 * (vv < 0.15)
  col = s['stone'] * (prof * (1.0 + 0.05 * c.hi[ys, xs] + 0.04 * c.lo[ys, xs]))[..., None]
  c.img[ys, xs] = col
  c.shadow_below(e.box, 0.012, s['ledge_shadow'])


def _render_pillar(c: _Canvas, e: _Elem):
  ys, xs, uu, vv = c.region(e.box)
  s = c.s
  lit = 0.72 + 0.38 * np.sin(np.pi * np.clip(uu + 0.15 * s['sun_side'], 0, 1))
  flute = 1.0 - 0.06 * (np.cos(2 * np.pi * uu * 5) > 0.6)
  cap = np.where(vv < 0.04, 1.15, 1.0) * np.where(vv > 0.97, 0.9, 1.0)
  col = s['stone'] * (lit * flute * cap * (1 + 0.04 * c.hi[ys, xs]))[..., None]
  c.img[ys, xs] = col


def _render_deco(c: _Canvas, e: _Elem):
  ys, xs, uu, vv = c.region(e.box)
  s = c.s
  hi = c.hi[ys, xs]
  emb = np.zeros_like(hi)
  if hi.shape[0] > 1 and hi.shape[1] > 1:
    emb[1:, 1:] = hi[1:, 1:] - hi[:-1, :-1]
  med = ((uu - 0.5) / 0.3) ** 2 + ((vv - 0.5) / 0.45) ** 2 < 1.0
  col = s['stone'] * (1.0 + 0.6 * emb + 0.12 * med - 0.12 * (vv > 0.85))[..., None]
  c.img[ys, xs] = col


def _render_balcony(c: _Canvas, e: _Elem):
  ys, xs, uu, vv = c.region(e.box)
  s, p = c.s, e.p
  slab = vv > 0.82
  rail = vv < 0.1
  bar_p = p['bar']
  f = _fade(bar_p, c.res)
  if p['kind'] == 'railing':
    bars = (np.mod(c.u[xs] / bar_p, 1.0) < 0.35)[None, :] & ~slab
    behind = c.img[ys, xs] * 0.75
    metal = (1 - f) * (0.6 * behind + 0.4 * p['metal']) + f * p['metal']
    col = np.where((bars | rail)[..., None], metal, behind)
    col = np.where(rail[..., None], p['metal'], col)
  else:
    gaps = (np.abs(np.mod(c.u[xs] / (2.5 * bar_p), 1.0) - 0.5) > 0.3)[None, :]
    body = s['stone'] * (1.0 + 0.05 * c.hi[ys, xs])[..., None]
    col = np.where((gaps & ~slab & ~rail)[..., None], body * (1 - 0.45 * f), body)
    col = np.where(rail[..., None], body * 1.1, col)
  col = np.where(slab[..., None], s['stone'] * 0.8, col)
  c.img[ys, xs] = col
  c.shadow_below(e.box, 0.02, s['ledge_shadow'])


def _render_shop(c: _Canvas, e: _Elem):
  ys, xs, uu, vv = c.region(e.box)
  s, p = c.s, e.p
  sign = vv < p['sign_h']
  sv = vv / p['sign_h']
  # Letters: a row of blocky glyphs on the sign.
  n = 24
  li = np.clip((uu * n).astype(np.int64), 0, n - 1)
  glyph = (np.mod(uu * n, 1.0) < 0.7) & (sv > 0.3) & (sv < 0.72) & p['text'][li]
  glyph &= (uu > 0.15) & (uu < 0.85)
  sign_col = np.where(glyph[..., None], 1.0 - p['sign'] * 0.8, p['sign'])
  gv = np.clip((vv - p['sign_h']) / (1 - p['sign_h']), 0, 1)
  if p['lit']:
    shelves = 1.0 - 0.3 * _fade(0.02, c.res) * (np.mod(gv * 4.0, 1.0) < 0.12)
    inside = np.array([0.85, 0.75, 0.55], np.float32) * (
        (0.75 + 0.08 * c.lo[ys, xs] + 0.12 * c.hi[ys, xs]) * shelves)[..., None]
  else:
    inside = (0.12 + 0.3 * s['sky_hor'] * (1 - gv)[..., None]
              + 0.05 * c.hi[ys, xs][..., None])
  glass = inside
  frame = ((np.abs(np.mod(uu * p['panes'], 1.0) - 0.5) > 0.47) | (gv < 0.03) | (vv > 0.92))
  col = np.where(frame[..., None], np.float32(0.2), glass)
  col = np.where(sign[..., None], sign_col, col)
  c.img[ys, xs] = col
  c.shade[ys, xs] *= np.where(sign, 1.0, np.minimum(1.0, 0.6 + 0.4 * np.clip(gv / 0.1, 0, 1)))


_RENDER = {'window': _render_window, 'door': _render_door, 'shutter': _render_shutter,
           'ledge': _render_ledge, 'molding': _render_molding, 'pillar': _render_pillar,
           'deco': _render_deco, 'balcony': _render_balcony, 'shop': _render_shop}


def _finish(c: _Canvas):
  s, u, v = c.s, c.u[None, :], c.v[:, None]
  x0f, top, x1f, bot = s['facade']
  lu, lv = s['light']
  light = 1.0 + lu * (u - 0.5) + lv * (v - 0.5) - 0.25 * ((u - 0.5) ** 2 + (v - 0.5) ** 2)
  if s['cast'] is not None:
    cu, cv, off, k = s['cast']
    d = (u * cu + v * cv - off * (abs(cu) + abs(cv)) * 0.6) / 0.004
    light = light * (1.0 - (1.0 - k) / (1.0 + np.exp(-np.clip(d, -30, 30))))
    light = np.where(v < top, 1.0, light)
  img = c.img * (c.shade * light)[..., None]
  # Rectification wedge (as in the CMP photos): a flat grey/black corner triangle.
  if s['wedge'] is not None:
    corner, a, b, grey = s['wedge']
    uu = u if corner in (0, 2) else 1 - u
    vv = v if corner in (0, 1) else 1 - v
    m = (uu / a + vv / b) < 1.0
    img = np.where(m[..., None], np.float32(grey), img)
  img = np.clip(img * s['exposure'] * s['gains'], 0, 1) ** s['gamma']
  return img.astype(np.float32)


def _ss_factor(size: int) -> int:
  return 1 if size >= 160 else (2 if size >= 48 else 3)


def generate_pair(seed: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """One procedural facade.

  Args:
    seed: any non-negative int; the scene is a deterministic function of it.
    size: side of the square images in pixels (any size >= 8; 32..512 is the useful
      range). The same seed draws the same scene at every size.

  Returns:
    photo: uint8 [size, size, 3], the rendering (side A).
    labels_rgb: uint8 [size, size, 3], the label map in the CMP palette (side B).
    class_map: int32 [size, size], class ids (indices into ``facade_labels.CLASS_NAMES``).
  """
  if size < 8:
    raise ValueError(f'size must be >= 8, got {size}')
  rng = np.random.default_rng(seed)
  s, elems = _layout(rng)

  # Labels: painter's algorithm on pixel centres at the output size.
  cm = np.full((size, size), fl.BACKGROUND, np.int32)
  x0f, top, x1f, bot = s['facade']
  cm[_span(top, bot, size), _span(x0f, x1f, size)] = fl.FACADE
  for e in elems:
    x0, y0, x1, y1 = e.box
    cm[_span(y0, y1, size), _span(x0, x1, size)] = e.cls
  # Rectification wedge is background.
  if s['wedge'] is not None:
    corner, a, b, _ = s['wedge']
    u = ((np.arange(size) + 0.5) / size)[None, :]
    v = ((np.arange(size) + 0.5) / size)[:, None]
    uu = u if corner in (0, 2) else 1 - u
    vv = v if corner in (0, 1) else 1 - v
    cm[(uu / a + vv / b) < 1.0] = fl.BACKGROUND

  # Photo: rendered supersampled, then box-filtered to the output size.
  ss = _ss_factor(size)
  c = _Canvas(size * ss, s)
  _render_background(c)
  _render_wall(c)
  for e in elems:
    _RENDER[e.kind](c, e)
  img = _finish(c)
  if ss > 1:
    img = img.reshape(size, ss, size, ss, 3).mean(axis=(1, 3))
  img = img + rng.normal(0.0, s['noise'], img.shape).astype(np.float32)
  photo = np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)
  return photo, fl.labels_to_rgb(cm), cm


# ------------------------------------------------------------------------------------
# Splits.


def split_seed(split: str, index: int, base_seed: int = 0) -> int:
  """Seed of example ``index`` of ``split``; different (split, base_seed) never collide."""
  if split not in SPLITS:
    raise ValueError(f'split must be one of {SPLITS}, got {split!r}')
  if not 0 <= index < _SEEDS_PER_SPLIT:
    raise ValueError(f'index out of range: {index}')
  if base_seed < 0:
    raise ValueError(f'base_seed must be >= 0, got {base_seed}')
  return (base_seed * len(SPLITS) + SPLITS.index(split)) * _SEEDS_PER_SPLIT + index


def make_split(split: str, n: int, size: int, base_seed: int = 0
               ) -> Iterator[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
  """Yields ``(name, photo, labels_rgb, class_map)`` for the ``n`` examples of a split.

  Names are ``'<split>_<index:05d>'``; the train, test and validation splits use disjoint
  seeds (:func:`split_seed`).
  """
  for i in range(n):
    photo, labels, cm = generate_pair(split_seed(split, i, base_seed), size)
    yield f'{split}_{i:05d}', photo, labels, cm
