"""Vectorised draws from a discrete distribution given by its cumulative weights."""

from __future__ import annotations

import numpy as np


def sample_cdf(cdf: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Index drawn for each uniform in ``u`` from cumulative (unnormalised) weights ``cdf``."""
    return np.minimum(np.searchsorted(cdf, u * cdf[-1], side="right"), len(cdf) - 1)
