"""Bjøntegaard delta rate and PSNR with PCHIP interpolation (harness.md, "BD-rate").

The integration itself is done by the ``bjontegaard`` package (``method="pchip"``); this module
cleans the points first and refuses to answer when the curves overlap too little, because the
package only warns and integrates whatever overlap there is.

Rules (documented here because they change numbers):

* Points whose rate is not positive or whose rate or PSNR is not finite (NaN, an infinite PSNR of
  a lossless layer) are dropped: the rate is integrated on a log scale.
* Points are sorted along the integration axis (PSNR for BD-rate, log-rate for BD-PSNR), and points
  sharing the same value on that axis are merged into one point by averaging the other coordinate
  (in log-rate for BD-rate), since PCHIP needs strictly increasing abscissae.
* Each curve needs at least ``MIN_POINTS`` = 2 distinct points. PCHIP through 2 points is the
  straight line in (PSNR, log-rate); 3 or more give the usual shape-preserving cubic. A curve with
  fewer points gives NaN with a reason, never an error.
* Overlap: the integration interval is the intersection of the two curves' ranges. Its length is
  compared with the *shorter* curve's range; below ``MIN_OVERLAP`` = 0.5 the result is NaN with a
  reason. The shorter range is the reference because a short curve fully inside a long one is a
  legitimate, fully interpolated comparison (CompressAI's mbt2018-mean vs BPG-444 on Kodak covers
  60 % of the union but 100 % of the mbt curve, and the contract expects a value for it).
  A non-fatal ``note`` says when the overlap covers less than 75 % of the union of both ranges
  (the ``bjontegaard`` package's own warning threshold), so readers know the value describes only
  part of the range.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np

MIN_POINTS = 2
MIN_OVERLAP = 0.5
# The word every refusal under the overlap rule carries in its ``reason`` (``is_overlap_refusal``).
OVERLAP = "overlap"
UNION_NOTE_THRESHOLD = 0.75
METHOD = "pchip"


@dataclass(frozen=True)
class BDResult:
    """BD-rate (percent, negative = the test codec saves bits) and BD-PSNR (dB, positive = better).

    ``reason`` is empty when ``bd_rate`` is a number and says why it is NaN otherwise;
    ``psnr_reason`` does the same for ``bd_psnr``. ``overlap_psnr`` is the PSNR interval integrated
    for BD-rate and ``overlap_fraction`` its length over the shorter curve's PSNR range.
    """

    bd_rate: float
    bd_psnr: float
    overlap_psnr: tuple[float, float] | None
    overlap_fraction: float
    union_fraction: float
    n_anchor: int
    n_test: int
    reason: str = ""
    psnr_reason: str = ""
    note: str = ""

    @property
    def ok(self) -> bool:
        return not math.isnan(self.bd_rate)

    def describe(self) -> str:
        """Short text for a table cell: the value, or NaN with the reason."""
        if not self.ok:
            return f"NaN ({self.reason})"
        return f"{self.bd_rate:+.2f}"


def _clean(rate: Sequence[float], psnr: Sequence[float], name: str) -> tuple[np.ndarray, np.ndarray, int]:
    rate_a = np.asarray(rate, dtype=float).ravel()
    psnr_a = np.asarray(psnr, dtype=float).ravel()
    if rate_a.shape != psnr_a.shape:
        raise ValueError(f"{name}: {rate_a.size} rates but {psnr_a.size} PSNR values")
    keep = np.isfinite(rate_a) & np.isfinite(psnr_a) & (rate_a > 0)
    return np.log10(rate_a[keep]), psnr_a[keep], int(np.count_nonzero(~keep))


def _merge_sorted(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort by x and average y over equal x, so that x is strictly increasing."""
    unique_x, inverse = np.unique(x, return_inverse=True)
    sums = np.zeros_like(unique_x)
    np.add.at(sums, inverse, y)
    counts = np.bincount(inverse, minlength=unique_x.size)
    return unique_x, sums / counts


def _overlap(x_anchor: np.ndarray, x_test: np.ndarray) -> tuple[float, float, float, float]:
    lo = max(x_anchor.min(), x_test.min())
    hi = min(x_anchor.max(), x_test.max())
    length = max(hi - lo, 0.0)
    shorter = min(np.ptp(x_anchor), np.ptp(x_test))
    union = max(x_anchor.max(), x_test.max()) - min(x_anchor.min(), x_test.min())
    fraction = length / shorter if shorter > 0 else 0.0
    union_fraction = length / union if union > 0 else 0.0
    return lo, hi, fraction, union_fraction


def is_overlap_refusal(reason: object) -> bool:
    """Whether a NaN's ``reason`` from this module is the overlap rule's (no common range, or too
    little of one) rather than another refusal (too few points); a blank read back from a CSV (NaN)
    is none."""
    return OVERLAP in str(reason).split()


def _delta(
    x_anchor: np.ndarray, y_anchor: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, axis: str
) -> tuple[float, str, tuple[float, float] | None, float, float]:
    """Average of (test - anchor) of y over the common x range, via the bjontegaard package."""
    import bjontegaard

    xa, ya = _merge_sorted(x_anchor, y_anchor)
    xt, yt = _merge_sorted(x_test, y_test)
    if xa.size < MIN_POINTS or xt.size < MIN_POINTS:
        return (
            math.nan,
            f"too few distinct points on the {axis} axis (anchor {xa.size}, test {xt.size}; "
            f"need {MIN_POINTS})",
            None,
            0.0,
            0.0,
        )
    lo, hi, fraction, union_fraction = _overlap(xa, xt)
    if hi <= lo:
        return math.nan, f"no {axis} {OVERLAP}", None, 0.0, 0.0
    if fraction < MIN_OVERLAP:
        return (
            math.nan,
            f"{axis} {OVERLAP} {fraction:.0%} of the shorter curve < {MIN_OVERLAP:.0%}",
            (lo, hi),
            fraction,
            union_fraction,
        )
    with warnings.catch_warnings():
        # Overlap was judged above with this module's rule; the package's own warning is noise here.
        warnings.simplefilter("ignore")
        value = bjontegaard.bd_linear(
            xa, ya, xt, yt, method=METHOD, require_matching_points=False, min_overlap=0
        )
    return float(value), "", (lo, hi), fraction, union_fraction


def bd_rate(
    anchor_rate: Sequence[float],
    anchor_psnr: Sequence[float],
    test_rate: Sequence[float],
    test_psnr: Sequence[float],
    quality: str = "PSNR",
) -> BDResult:
    """BD-rate and BD-PSNR of the test curve against the anchor curve (PCHIP; see module doc).

    The quality axis may be any dB-like metric (PSNR-Y, PSNR-YUV, MS-SSIM dB): the overlap rules are
    fractions of the curves' own ranges, so they do not depend on its scale; ``quality`` names it in
    the reasons, and ``bd_psnr`` is then the BD of that metric."""
    log_ra, psnr_a, dropped_a = _clean(anchor_rate, anchor_psnr, "anchor")
    log_rt, psnr_t, dropped_t = _clean(test_rate, test_psnr, "test")

    # BD-rate: log-rate as a function of PSNR, averaged over the common PSNR range.
    log_delta, reason, interval, fraction, union_fraction = _delta(psnr_a, log_ra, psnr_t, log_rt, quality)
    rate = (10.0**log_delta - 1.0) * 100.0 if not math.isnan(log_delta) else math.nan
    # BD-PSNR: PSNR as a function of log-rate, averaged over the common rate range.
    psnr_delta, psnr_reason, _, _, _ = _delta(log_ra, psnr_a, log_rt, psnr_t, "rate")

    notes = []
    if dropped_a or dropped_t:
        notes.append(f"dropped non-finite or non-positive points (anchor {dropped_a}, test {dropped_t})")
    if not math.isnan(rate) and union_fraction < UNION_NOTE_THRESHOLD:
        notes.append(f"overlap covers {union_fraction:.0%} of the union of the {quality} ranges")
    return BDResult(
        bd_rate=rate,
        bd_psnr=psnr_delta,
        overlap_psnr=interval,
        overlap_fraction=fraction,
        union_fraction=union_fraction,
        n_anchor=int(log_ra.size),
        n_test=int(log_rt.size),
        reason=reason,
        psnr_reason=psnr_reason,
        note="; ".join(notes),
    )


# --- many curves at once (bootstrap resamples, per-image curves) ----------------------------------
#
# ``bd_rate`` integrates one pair with scipy's PchipInterpolator through the bjontegaard package. A
# bootstrap needs thousands of pairs per comparison, so the same integral is also written here over
# rows of a 2-D array: the PCHIP slopes exactly as scipy's ``PchipInterpolator._find_derivatives``
# computes them (Fritsch–Butland harmonic mean inside, Moler's one-sided three-point rule at the
# ends, linear through 2 points), then the closed-form integral of each Hermite cubic piece. The
# same overlap rule as ``bd_rate`` makes a row NaN. Rows this fast path cannot take (a non-finite or
# non-positive point, two points with the same quality) are handed to ``bd_rate`` one by one, so
# every row follows the module's rules; tests hold the two paths equal.

DEFAULT_BOOTSTRAP = 2000  # resamples; percentile intervals need ~1000+ for stable 2.5/97.5 % tails
BOOTSTRAP_SEED = 31  # fixed, so that a report is reproducible to the digit
CI_LEVEL = 0.95


def _pchip_slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """PCHIP derivatives at the knots, per row (x strictly increasing along axis 1)."""
    h = np.diff(x, axis=1)
    m = np.diff(y, axis=1) / h
    if x.shape[1] == 2:
        return np.concatenate([m, m], axis=1)
    sign = np.sign(m)
    flat = (sign[:, 1:] != sign[:, :-1]) | (m[:, 1:] == 0) | (m[:, :-1] == 0)
    w1 = 2 * h[:, 1:] + h[:, :-1]
    w2 = h[:, 1:] + 2 * h[:, :-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        inner = np.where(flat, 0.0, (w1 + w2) / (w1 / m[:, :-1] + w2 / m[:, 1:]))

    def edge(h0: np.ndarray, h1: np.ndarray, m0: np.ndarray, m1: np.ndarray) -> np.ndarray:
        d = ((2 * h0 + h1) * m0 - h0 * m1) / (h0 + h1)
        wrong_sign = np.sign(d) != np.sign(m0)
        overshoot = (np.sign(m0) != np.sign(m1)) & (np.abs(d) > 3 * np.abs(m0))
        return np.where(wrong_sign, 0.0, np.where(overshoot, 3 * m0, d))

    first = edge(h[:, 0], h[:, 1], m[:, 0], m[:, 1])
    last = edge(h[:, -1], h[:, -2], m[:, -1], m[:, -2])
    return np.concatenate([first[:, None], inner, last[:, None]], axis=1)


def _pchip_integral(x: np.ndarray, y: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Integral over [lo, hi] (inside each row's range) of each row's PCHIP through (x, y)."""
    d = _pchip_slopes(x, y)
    h = np.diff(x, axis=1)
    m = np.diff(y, axis=1) / h
    # the piece on [x_k, x_k+1] as y_k + d_k t + c2 t² + c3 t³ with t = x − x_k
    c2 = (3 * m - 2 * d[:, :-1] - d[:, 1:]) / h
    c3 = (d[:, :-1] + d[:, 1:] - 2 * m) / h**2
    start, end = x[:, :-1], x[:, 1:]
    t0 = np.clip(lo[:, None], start, end) - start
    t1 = np.clip(hi[:, None], start, end) - start

    def antiderivative(t: np.ndarray) -> np.ndarray:
        return t * (y[:, :-1] + t * (d[:, :-1] / 2 + t * (c2 / 3 + t * c3 / 4)))

    return (antiderivative(t1) - antiderivative(t0)).sum(axis=1)


def _sorted_rows(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(x, axis=1, kind="stable")
    return np.take_along_axis(x, order, axis=1), np.take_along_axis(y, order, axis=1)


def bd_rate_rows(
    anchor_rate: np.ndarray, anchor_psnr: np.ndarray, test_rate: np.ndarray, test_psnr: np.ndarray,
) -> np.ndarray:
    """BD-rate % of each row's test curve against the same row's anchor curve (the rules of
    ``bd_rate``; NaN where it gives NaN). Arrays are (rows, points); an anchor of one row is
    broadcast to all test rows (a published curve against bootstrap resamples)."""
    rows = max(np.shape(anchor_rate)[0], np.shape(test_rate)[0])
    ra, qa = (np.broadcast_to(np.asarray(a, float), (rows, np.shape(anchor_rate)[1]))
              for a in (anchor_rate, anchor_psnr))
    rt, qt = (np.broadcast_to(np.asarray(a, float), (rows, np.shape(test_rate)[1])) for a in (test_rate, test_psnr))
    out = np.full(rows, math.nan)
    if ra.shape[1] < MIN_POINTS or rt.shape[1] < MIN_POINTS:
        return out
    with np.errstate(divide="ignore", invalid="ignore"):
        xa, ya = _sorted_rows(qa, np.log10(ra))
        xt, yt = _sorted_rows(qt, np.log10(rt))
    fast = (np.isfinite(ya).all(1) & np.isfinite(xa).all(1) & np.isfinite(yt).all(1) & np.isfinite(xt).all(1)
            & (np.diff(xa, axis=1) > 0).all(1) & (np.diff(xt, axis=1) > 0).all(1))
    for row in np.flatnonzero(~fast):  # rare: the scalar path cleans and merges points
        out[row] = bd_rate(ra[row], qa[row], rt[row], qt[row]).bd_rate
    if not fast.any():
        return out
    xa, ya, xt, yt = xa[fast], ya[fast], xt[fast], yt[fast]
    lo = np.maximum(xa[:, 0], xt[:, 0])
    hi = np.minimum(xa[:, -1], xt[:, -1])
    shorter = np.minimum(xa[:, -1] - xa[:, 0], xt[:, -1] - xt[:, 0])
    with np.errstate(divide="ignore", invalid="ignore"):
        valid = (hi > lo) & ((hi - lo) / shorter >= MIN_OVERLAP)
        delta = (_pchip_integral(xt, yt, lo, hi) - _pchip_integral(xa, ya, lo, hi)) / (hi - lo)
    out[fast] = np.where(valid, (10.0**delta - 1.0) * 100.0, math.nan)
    return out


_COUNTS: dict[tuple[int, int, int], np.ndarray] = {}


def resample_counts(images: int, resamples: int = DEFAULT_BOOTSTRAP, seed: int = BOOTSTRAP_SEED) -> np.ndarray:
    """(resamples, images) multiplicities of a bootstrap over ``images`` images: row b says how often
    each image (in a fixed order) is drawn in resample b. One matrix per image count and seed, shared
    by every pair with that many images, so a report is reproducible and pairs are resampled alike."""
    key = (images, resamples, seed)
    if key not in _COUNTS:
        draws = np.random.default_rng([seed, images]).integers(0, images, size=(resamples, images))
        counts = np.zeros((resamples, images))
        np.add.at(counts, (np.arange(resamples)[:, None], draws), 1.0)
        _COUNTS[key] = counts
    return _COUNTS[key]


def weighted_means(counts: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per resample (row of ``counts``), the mean of ``values`` (images × points) over the drawn
    images, skipping NaN as pandas' mean does (an MS-SSIM a small layer lacks); an infinite value
    drawn makes that mean infinite (the point is then dropped, as for the curve itself)."""
    finite = np.isfinite(values)
    sums = counts @ np.where(finite, values, 0.0)
    drawn = counts @ (~np.isnan(values)).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        means = sums / drawn
        for sign in (1.0, -1.0):
            hit = counts @ (values == sign * np.inf).astype(float)
            means = np.where(hit > 0, sign * np.inf, means)
    return means


def percentile_interval(samples: np.ndarray, level: float = CI_LEVEL) -> tuple[float, float, int]:
    """The percentile bootstrap interval of ``samples`` and how many were finite (a resample whose
    curves overlap too little has no BD-rate; it is left out, and callers say so)."""
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return math.nan, math.nan, 0
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high), int(finite.size)
