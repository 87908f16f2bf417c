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
        return math.nan, f"no {axis} overlap", None, 0.0, 0.0
    if fraction < MIN_OVERLAP:
        return (
            math.nan,
            f"{axis} overlap {fraction:.0%} of the shorter curve < {MIN_OVERLAP:.0%}",
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
