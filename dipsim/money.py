"""Money to the fen (分): amounts in yuan become whole fen so that a set of them sums exactly to a given total.

Totals are decided first (a pool's budget, to the fen); the parts are then rounded by the largest-remainder method
(最大余数法): every part is rounded down to the fen, and the fen still missing go one each to the parts with the
largest remainders (ties: the earlier part). No part moves by a fen or more from its exact value.
"""

from __future__ import annotations

import numpy as np

FEN_PER_YUAN = 100


def to_fen(yuan: float) -> int:
    """One amount in yuan to whole fen, half away from zero (a budget written with 2 decimals is exact)."""
    fen = abs(yuan) * FEN_PER_YUAN
    return int(np.copysign(np.floor(fen + 0.5), yuan))


def to_fen_array(yuan: np.ndarray) -> np.ndarray:
    """Amounts in yuan to whole fen (int64), each half away from zero."""
    yuan = np.asarray(yuan, dtype=np.float64)
    fen = np.abs(yuan) * FEN_PER_YUAN  # in place from here: a projection rounds millions of amounts a year
    fen += 0.5
    np.floor(fen, out=fen)
    return np.copysign(fen, yuan, out=fen).astype(np.int64)


def largest_remainder(yuan: np.ndarray, total_fen: int) -> np.ndarray:
    """Whole-fen parts (int64) of the amounts `yuan` that sum exactly to `total_fen`.

    The amounts must already sum to the total within one fen per part (they are a split of it); otherwise the
    rounding would move money that is not there to move, so a ValueError says so."""
    exact = np.asarray(yuan, dtype=np.float64) * FEN_PER_YUAN
    base = np.floor(exact)
    missing = total_fen - int(base.sum())
    if not 0 <= missing <= len(exact):
        raise ValueError(f"parts sum to {exact.sum() / FEN_PER_YUAN:,.4f} yuan, not the total "
                         f"{total_fen / FEN_PER_YUAN:,.2f}: cannot round them to it")
    remainder = exact - base
    order = np.lexsort((np.arange(len(exact)), -remainder))  # largest remainder first, then the earlier part
    out = base.astype(np.int64)
    out[order[:missing]] += 1
    return out
