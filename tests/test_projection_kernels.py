"""The projection's one-pass kernels (`dipsim.projection.kernels`) give the numbers of the numpy they replace, bit for
bit: the money to the fen half away from zero (`money.to_fen_array`), the days moved by whole years
(`projection.years.shift_days`), the points scaled where drifted."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from dipsim.money import to_fen_array
from dipsim.projection import kernels
from dipsim.projection.years import shift_days

amounts = st.lists(st.floats(min_value=-1e7, max_value=1e7, allow_nan=False), min_size=1, max_size=60)


@settings(max_examples=200, deadline=None)
@given(amounts, st.floats(min_value=0.5, max_value=2.0), st.randoms(use_true_random=False))
def test_take_grown_is_the_numpy_rounding(values, factor, rng):
    yuan = np.array(values)
    rows = np.array([rng.randrange(len(values)) for _ in range(2 * len(values))], np.int64)
    expected = to_fen_array(yuan[rows] * factor) / 100
    got = kernels.take_grown(yuan, rows, factor)
    assert got.tobytes() == expected.tobytes()


def test_take_grown_by_hand():
    """Half a fen away from zero: 0.125 x 1 -> 0.13, -0.125 -> -0.13; 1,000.05 x 1.037 = 1,037.05185 -> 1,037.05;
    -0.0 stays 0."""
    yuan = np.array([0.125, -0.125, 1_000.05, -0.0, 2.5])
    got = kernels.take_grown(yuan, np.array([0, 1, 3, 4, 0], np.int64), 1.0)
    assert got.tolist() == [0.13, -0.13, 0.0, 2.5, 0.13]
    assert kernels.take_grown(yuan, np.array([2], np.int64), 1.037).tolist() == [1_037.05]


def test_days_moved_by_a_table_of_their_range():
    """2024-02-29 (19782) two years on is 2026-02-28 (20512); -1 (no date) stays -1."""
    days = np.array([19782, -1, 19700, 19800], np.int64)
    rows = np.array([0, 1, 2, 3, 0], np.int64)
    table = shift_days(np.arange(19700, 19801), 2)
    got = kernels.take_looked_up(days, rows, table, 19700, -1)
    expected = np.where(days[rows] == -1, -1, shift_days(days[rows], 2))
    assert got.tolist() == expected.tolist() and got[0] == 20512 and got[1] == -1


def test_points_scaled_where_drifted():
    points = np.array([1.5, 2.0, 3.25])
    rows = np.array([2, 0, 1, 2], np.int64)
    drift = np.array([True, False, True, False])
    got = kernels.take_scaled_where(points, rows, drift, 1.1)
    assert got.tobytes() == (points[rows] * np.where(drift, 1.1, 1.0)).tobytes()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=2**64 - 1), min_size=1, max_size=80), st.data())
def test_kth_smallest_is_numpys_partition(values, data):
    """Random ranks, and many equal ones (hypothesis shrinks towards them)."""
    ranks = np.array(values, np.uint64)
    k = data.draw(st.integers(min_value=0, max_value=len(values) - 1))
    assert kernels.kth_smallest(ranks, k) == np.partition(ranks, k)[k]
