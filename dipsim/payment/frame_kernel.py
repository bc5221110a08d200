"""The Numba kernel of a settlement frame taken by rows (`budget.SettlementFrame.taken`: a projected year's cases
settle in their base cases' rows): each case's row and (row, month) cell, and the rows' sums, in one pass instead of
two takes and four bincounts. The same sums bit for bit: each accumulated case by case in the cases' order, as
numpy's bincount adds them."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def taken_rows(codes, cell, rows, cost, patient_paid, n_rows, n_cells):
    """(codes[rows], cell[rows], cases per row, cost per row, patient payments per row, per cell)."""
    n = rows.shape[0]
    out_codes = np.empty(n, np.int64)
    out_cell = np.empty(n, np.int64)
    cases = np.zeros(n_rows, np.int64)
    row_cost = np.zeros(n_rows, np.float64)
    row_paid = np.zeros(n_rows, np.float64)
    cell_paid = np.zeros(n_cells, np.float64)
    for i in range(n):
        code = codes[rows[i]]
        at = cell[rows[i]]
        out_codes[i] = code
        out_cell[i] = at
        cases[code] += 1
        row_cost[code] += cost[i]
        row_paid[code] += patient_paid[i]
        cell_paid[at] += patient_paid[i]
    return out_codes, out_cell, cases, row_cost, row_paid, cell_paid
