import math

import numpy as np
import pytest

from bench.anchors import published_curves
from bench.measuring.bdrate import (
    MIN_OVERLAP,
    bd_rate,
    bd_rate_rows,
    is_overlap_refusal,
    percentile_interval,
    resample_counts,
    weighted_means,
)

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


def test_overlap_refusals_are_told_from_other_refusals():
    disjoint = bd_rate(ANCHOR_BPP, ANCHOR_PSNR, [2.0, 3.0, 4.0], [40.0, 42.0, 44.0])
    small = bd_rate(ANCHOR_BPP, ANCHOR_PSNR, [1.0, 2.0, 4.0], [37.0, 41.0, 45.0])
    one_point = bd_rate([0.5], [32.0], ANCHOR_BPP, ANCHOR_PSNR)
    assert is_overlap_refusal(disjoint.reason) and is_overlap_refusal(small.reason)
    assert not is_overlap_refusal(one_point.reason) and not is_overlap_refusal("")
    assert not is_overlap_refusal(math.nan)  # an empty reason read back from bdrate.csv


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


# --- the vectorised path (bootstrap resamples, per-image curves) ---------------------------------


def test_rows_equal_the_bjontegaard_package_on_random_and_awkward_curves():
    rng = np.random.default_rng(5)
    rows = 200
    # monotone but noisy curves of 5 and 4 points (PCHIP's three- and two-sided slope rules, flat
    # stretches, sign changes), some with too little overlap
    anchor_rate = np.sort(rng.uniform(0.1, 2, (rows, 5)), axis=1)
    anchor_psnr = 28 + 5 * np.log(anchor_rate) + rng.normal(0, 0.4, (rows, 5))
    test_rate = np.sort(rng.uniform(0.1, 2, (rows, 4)), axis=1)
    test_psnr = 28.5 + 5 * np.log(test_rate) + rng.normal(0, 0.4, (rows, 4))
    test_psnr[0, 1] = test_psnr[0, 2]  # two equal PSNRs: merged by the scalar path
    test_rate[1, 0] = 0.0  # a zero rate: dropped by the scalar path
    anchor_psnr[2, -1] = np.inf  # a lossless point
    fast = bd_rate_rows(anchor_rate, anchor_psnr, test_rate, test_psnr)
    slow = np.array([bd_rate(anchor_rate[i], anchor_psnr[i], test_rate[i], test_psnr[i]).bd_rate for i in range(rows)])
    assert np.array_equal(np.isnan(fast), np.isnan(slow)) and 5 < np.isnan(slow).sum() < rows // 2
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-9, equal_nan=True)


def test_rows_with_two_points_are_linear_and_one_anchor_row_is_broadcast():
    anchor = (np.array([[0.2, 0.8]]), np.array([[30.0, 36.0]]))
    tests = (np.array([[0.18, 0.72], [0.22, 0.88]]), np.array([[30.0, 36.0], [30.0, 36.0]]))
    np.testing.assert_allclose(bd_rate_rows(*anchor, *tests), [-10.0, 10.0], atol=1e-9)


def test_resample_counts_are_fixed_draws_of_every_image_count():
    counts = resample_counts(24, 2000)
    assert counts.shape == (2000, 24) and (counts.sum(axis=1) == 24).all()
    assert np.array_equal(counts, resample_counts(24, 2000))  # the fixed seed: the same every time
    assert not np.array_equal(counts[0], counts[1])
    # each image is drawn once per resample on average
    assert counts.mean() == pytest.approx(1.0) and counts.mean(axis=0) == pytest.approx(np.ones(24), abs=0.1)


def test_weighted_means_skip_nan_like_pandas_and_keep_infinity():
    values = np.array([[1.0, np.nan, 5.0], [3.0, 4.0, np.inf]])
    counts = np.array([[2.0, 0.0], [1.0, 1.0], [0.0, 2.0]])
    np.testing.assert_array_equal(weighted_means(counts, values), [[1.0, np.nan, 5.0], [2.0, 4.0, np.inf],
                                                                   [3.0, 4.0, np.inf]])


def test_percentile_interval_leaves_out_resamples_without_a_value():
    samples = np.concatenate([np.arange(1.0, 101.0), [np.nan] * 10])
    low, high, valid = percentile_interval(samples)
    assert valid == 100 and low == pytest.approx(np.percentile(np.arange(1.0, 101.0), 2.5))
    assert high == pytest.approx(np.percentile(np.arange(1.0, 101.0), 97.5))
    low, high, valid = percentile_interval(np.array([np.nan, np.nan]))
    assert math.isnan(low) and math.isnan(high) and valid == 0
