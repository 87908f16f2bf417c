import math

import numpy as np
import pytest

from bench.anchors import published_curves
from bench.bdrate import MIN_OVERLAP, bd_rate

ANCHOR_BPP = [0.12, 0.25, 0.5, 1.0, 1.6]
ANCHOR_PSNR = [27.0, 30.0, 33.0, 36.0, 38.5]


def test_published_mbt2018_mean_vs_bpg444_kodak():
    curves = published_curves()
    bpg, mbt = curves["BPG-444"], curves["mbt2018-mean"]
    result = bd_rate(bpg.bpp, bpg.psnr, mbt.bpp, mbt.psnr)
    # The contract's reference value is about -3.3 %; PCHIP over all points gives -3.2835 %.
    assert -3.6 <= result.bd_rate <= -3.0
    assert result.bd_rate == pytest.approx(-3.2835, abs=0.1)
    assert result.reason == ""
    # mbt's PSNR range lies inside BPG's: the overlap is the whole mbt curve, 60 % of the union.
    assert result.overlap_psnr == pytest.approx((min(mbt.psnr), max(mbt.psnr)))
    assert result.overlap_fraction == pytest.approx(1.0)
    assert result.union_fraction == pytest.approx(0.603, abs=0.01)
    assert "union" in result.note
    assert result.bd_psnr == pytest.approx(0.1656, abs=0.01)


def test_rate_scaled_by_0_9_is_minus_ten_percent():
    test_bpp = [0.9 * r for r in ANCHOR_BPP]
    result = bd_rate(ANCHOR_BPP, ANCHOR_PSNR, test_bpp, ANCHOR_PSNR)
    assert result.bd_rate == pytest.approx(-10.0, abs=1e-9)
    assert result.ok and result.overlap_fraction == pytest.approx(1.0)
    # The same curve shifted left in log-rate is better in PSNR at equal rate.
    assert result.bd_psnr > 0


def test_constant_psnr_gain_is_bd_psnr():
    # At every rate the test is 0.5 dB better; over the common rate range BD-PSNR is exactly 0.5 dB
    # only if the curve is linear in log-rate, so build it that way.
    bpp = np.geomspace(0.1, 1.6, 6)
    psnr = 25.0 + 4.0 * np.log2(bpp / 0.1)
    result = bd_rate(bpp, psnr, bpp, psnr + 0.5)
    assert result.bd_psnr == pytest.approx(0.5, abs=1e-9)
    # linear in log2-rate with slope 4 dB/octave: 0.5 dB is 1/8 octave of rate
    assert result.bd_rate == pytest.approx((2 ** (-0.5 / 4) - 1) * 100, abs=1e-6)


def test_identical_curves_give_zero():
    result = bd_rate(ANCHOR_BPP, ANCHOR_PSNR, ANCHOR_BPP, ANCHOR_PSNR)
    assert result.bd_rate == pytest.approx(0.0, abs=1e-12)
    assert result.bd_psnr == pytest.approx(0.0, abs=1e-12)


def test_unsorted_and_duplicate_points_give_the_sorted_answer():
    order = [3, 0, 4, 1, 2]
    bpp = [ANCHOR_BPP[i] for i in order] + [ANCHOR_BPP[1]]
    psnr = [ANCHOR_PSNR[i] for i in order] + [ANCHOR_PSNR[1]]
    test_bpp = [0.8 * r for r in ANCHOR_BPP]
    result = bd_rate(bpp, psnr, test_bpp[::-1], ANCHOR_PSNR[::-1])
    assert result.bd_rate == pytest.approx(-20.0, abs=1e-9)


def test_points_with_equal_psnr_are_merged_in_log_rate():
    # Two anchor points at the same PSNR: rates 0.4 and 0.6 become one point at their geometric mean.
    bpp = [0.2, 0.4, 0.6, 1.2]
    psnr = [28.0, 32.0, 32.0, 36.0]
    test_bpp, test_psnr = [0.2, 0.5, 1.2], [28.0, 32.0, 36.0]
    merged = bd_rate([0.2, math.sqrt(0.4 * 0.6), 1.2], [28.0, 32.0, 36.0], test_bpp, test_psnr)
    direct = bd_rate(bpp, psnr, test_bpp, test_psnr)
    assert direct.bd_rate == pytest.approx(merged.bd_rate, abs=1e-12)


def test_two_points_are_enough_and_interpolate_linearly():
    result = bd_rate([0.25, 1.0], [30.0, 36.0], [0.25 * 1.1, 1.1], [30.0, 36.0])
    assert result.bd_rate == pytest.approx(10.0, abs=1e-9)


def test_one_point_gives_nan_with_reason():
    result = bd_rate([0.5], [32.0], ANCHOR_BPP, ANCHOR_PSNR)
    assert math.isnan(result.bd_rate) and math.isnan(result.bd_psnr)
    assert "too few distinct points" in result.reason
    assert result.describe().startswith("NaN (")


def test_disjoint_curves_give_nan_not_extrapolation():
    result = bd_rate(ANCHOR_BPP, ANCHOR_PSNR, [2.0, 3.0, 4.0], [40.0, 42.0, 44.0])
    assert math.isnan(result.bd_rate)
    assert result.reason == "no PSNR overlap"


def test_small_overlap_gives_nan_with_reason():
    # test PSNR range 37..45 overlaps the anchor's 27..38.5 by 1.5 dB: 19 % of the shorter range
    result = bd_rate(ANCHOR_BPP, ANCHOR_PSNR, [1.0, 2.0, 4.0], [37.0, 41.0, 45.0])
    assert math.isnan(result.bd_rate)
    assert result.overlap_fraction == pytest.approx(1.5 / 8.0)
    assert result.overlap_fraction < MIN_OVERLAP
    assert "overlap" in result.reason and "19%" in result.reason


def test_non_finite_and_zero_rate_points_are_dropped_with_a_note():
    bpp = ANCHOR_BPP + [0.0, 2.0]
    psnr = ANCHOR_PSNR + [20.0, float("inf")]
    result = bd_rate(bpp, psnr, [0.9 * r for r in ANCHOR_BPP], ANCHOR_PSNR)
    assert result.bd_rate == pytest.approx(-10.0, abs=1e-9)
    assert result.n_anchor == 5
    assert "dropped" in result.note


def test_mismatched_lengths_raise():
    with pytest.raises(ValueError, match="rates but"):
        bd_rate([0.1, 0.2], [30.0], ANCHOR_BPP, ANCHOR_PSNR)
